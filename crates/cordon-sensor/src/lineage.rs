//! The session's process tree, rebuilt from fork/exec/exit records. A process is identified by
//! (pid, start time), so a reused pid is a new node; a daemon that double-forks keeps its place
//! under the process that forked it, whoever reaps it later.

use crate::raw::Raw;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

type Key = (u32, u64);

#[derive(Debug, Clone, Serialize, Default)]
pub struct Node {
    pub pid: u32,
    pub start: u64,
    pub parent: Option<(u32, u64)>,
    pub comm: String,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub execs: u32,
    pub exit: Option<i32>,
    /// Set when this process was first seen through something other than its fork.
    pub seen_late: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Lineage {
    nodes: HashMap<Key, Node>,
    order: Vec<Key>,
    /// pid -> the newest process with that pid, to place records of processes whose fork we missed.
    by_pid: HashMap<u32, Key>,
}

const MAX_NODES: usize = 200_000;

impl Lineage {
    fn node(&mut self, pid: u32, start: u64, comm: &str) -> &mut Node {
        let k = (pid, start);
        if !self.nodes.contains_key(&k) && self.nodes.len() < MAX_NODES {
            self.order.push(k);
            self.nodes.insert(k, Node { pid, start, comm: comm.to_string(), seen_late: true, ..Default::default() });
            self.by_pid.insert(pid, k);
        }
        self.nodes.entry(k).or_default()
    }

    pub fn add(&mut self, r: &Raw) {
        match r {
            Raw::Fork { h, child_pid, child_start, .. } => {
                self.node(h.pid, h.start, &h.comm);
                let exe = self.nodes.get(&(h.pid, h.start)).and_then(|n| n.exe.clone());
                let argv = self.nodes.get(&(h.pid, h.start)).map(|n| n.argv.clone()).unwrap_or_default();
                let c = self.node(*child_pid, *child_start, &h.comm);
                c.parent = Some((h.pid, h.start));
                c.seen_late = false;
                c.exe = exe;
                c.argv = argv;
            }
            Raw::Exec { h, filename, argv, .. } => {
                let ppid = h.ppid;
                let pk = self.by_pid.get(&ppid).copied();
                let n = self.node(h.pid, h.start, &h.comm);
                if n.parent.is_none() && n.seen_late {
                    n.parent = pk;
                }
                n.exe = Some(filename.clone());
                n.argv = argv.clone();
                n.comm = h.comm.clone();
                n.execs += 1;
            }
            Raw::Exit { h, code } => {
                let n = self.node(h.pid, h.start, &h.comm);
                n.exit = Some(*code);
            }
            _ => {}
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.order.iter().filter_map(|k| self.nodes.get(k))
    }

    /// The parent of the process, by (pid, start).
    pub fn parent_of(&self, pid: u32) -> Option<u32> {
        let k = self.by_pid.get(&pid)?;
        self.nodes.get(k)?.parent.map(|p| p.0)
    }

    /// The tree as text, one process per line, children in fork order; at most `max` lines.
    pub fn render(&self, max: usize) -> String {
        let mut children: BTreeMap<Key, Vec<Key>> = BTreeMap::new();
        let mut roots = vec![];
        for k in &self.order {
            match self.nodes.get(k).and_then(|n| n.parent).filter(|p| self.nodes.contains_key(p)) {
                Some(p) => children.entry(p).or_default().push(*k),
                None => roots.push(*k),
            }
        }
        let mut out = String::new();
        let mut lines = 0;
        #[allow(clippy::too_many_arguments)]
        fn walk(
            l: &Lineage,
            k: Key,
            prefix: &str,
            last: bool,
            top: bool,
            ch: &BTreeMap<Key, Vec<Key>>,
            out: &mut String,
            lines: &mut usize,
            max: usize,
        ) {
            if *lines >= max {
                return;
            }
            let Some(n) = l.nodes.get(&k) else { return };
            let cmd =
                if n.argv.is_empty() { n.exe.clone().unwrap_or_else(|| n.comm.clone()) } else { n.argv.join(" ") };
            let cmd: String =
                if cmd.chars().count() > 90 { cmd.chars().take(87).chain("...".chars()).collect() } else { cmd };
            let exit = match n.exit {
                Some(c) => format!("  [{}]", crate::event::exit_text(c)),
                None => "  [running]".into(),
            };
            let branch = if top {
                ""
            } else if last {
                "└─ "
            } else {
                "├─ "
            };
            out.push_str(&format!("{prefix}{branch}{} {cmd}{exit}\n", n.pid));
            *lines += 1;
            let next_prefix =
                if top { prefix.to_string() } else { format!("{prefix}{}", if last { "   " } else { "│  " }) };
            if let Some(cs) = ch.get(&k) {
                for (i, c) in cs.iter().enumerate() {
                    walk(l, *c, &next_prefix, i + 1 == cs.len(), false, ch, out, lines, max);
                }
            }
        }
        for r in roots {
            walk(self, r, "", true, true, &children, &mut out, &mut lines, max);
        }
        if self.nodes.len() > lines {
            out.push_str(&format!("... {} more processes\n", self.nodes.len() - lines));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::Hdr;

    fn h(pid: u32, start: u64, ppid: u32) -> Hdr {
        Hdr { kind: 0, flags: 0, pid, tid: pid, ppid, uid: 0, ts: 0, start, comm: "sh".into() }
    }

    #[test]
    fn pid_reuse_makes_a_new_node_and_daemons_keep_their_parent() {
        let mut l = Lineage::default();
        l.add(&Raw::Fork { h: h(1, 1, 0), child_pid: 2, child_tid: 2, child_start: 2 });
        l.add(&Raw::Fork { h: h(2, 2, 1), child_pid: 3, child_tid: 3, child_start: 3 });
        l.add(&Raw::Exit { h: h(2, 2, 1), code: 0 });
        // 3 is reparented to 1 but keeps 2 as the process that made it.
        l.add(&Raw::Exec { h: h(3, 3, 1), old_pid: 3, filename: "/bin/daemon".into(), argv: vec!["daemon".into()] });
        // pid 2 reused.
        l.add(&Raw::Fork { h: h(1, 1, 0), child_pid: 2, child_tid: 2, child_start: 9 });
        assert_eq!(l.len(), 4);
        assert_eq!(l.nodes.get(&(3, 3)).and_then(|n| n.parent), Some((2, 2)));
        let t = l.render(100);
        assert!(t.contains("└─ 3 daemon"), "{t}");
        assert_eq!(t.lines().count(), 4, "{t}");
    }
}
