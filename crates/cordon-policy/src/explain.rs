//! `cordon policy explain`: the compiled policy in plain words. It describes the same data the
//! sandbox plans are built from, so what is explained is what is enforced.

use crate::compiled::*;
use crate::units::{fmt_duration, fmt_size};
use std::collections::HashMap;
use std::fmt::Write;

fn list_paths(c: &CompiledPolicy, f: impl Fn(&Access) -> bool) -> String {
    let mut groups: Vec<(String, Vec<String>)> = vec![];
    let mut group_at: HashMap<&str, usize> = HashMap::new();
    for r in c.fs.rules.iter().filter(|r| f(&r.access)) {
        let p = shorten(c, &r.path.display().to_string());
        match group_at.get(r.entry.as_str()) {
            Some(&i) => groups[i].1.push(p),
            None => {
                group_at.insert(&r.entry, groups.len());
                groups.push((r.entry.clone(), vec![p]));
            }
        }
    }
    if groups.is_empty() {
        return "nothing".into();
    }
    groups
        .into_iter()
        .map(|(e, v)| {
            if v.len() == 1 && v[0] == e {
                e
            } else if e.starts_with('@') && v.len() > 4 {
                format!("{e} ({}, {} … {} paths)", v[0], v[1], v.len())
            } else if e.starts_with('@') {
                format!("{e} ({})", v.join(", "))
            } else {
                v.join(", ")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn shorten(c: &CompiledPolicy, p: &str) -> String {
    let h = c.home.display().to_string();
    if p == h {
        "~".into()
    } else if let Some(r) = p.strip_prefix(&format!("{h}/")) {
        format!("~/{r}")
    } else {
        p.to_string()
    }
}

pub fn explain(c: &CompiledPolicy) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Policy `{}` ({})", c.name, c.sources.join(" -> "));
    if !c.description.is_empty() {
        let _ = writeln!(s, "{}", c.description);
    }
    let _ = writeln!(s, "Workspace: {}", c.workspace.display());
    let _ = writeln!(s, "\nFiles (everything not listed is neither readable nor writable):");
    let _ = writeln!(s, "  can read:   {}", list_paths(c, |a| a.read));
    let _ = writeln!(s, "  can write:  {}", list_paths(c, |a| a.write));
    let _ = writeln!(s, "  can run:    {}", list_paths(c, |a| a.exec));
    if !c.fs.deny.is_empty() {
        let v: Vec<_> = c.fs.deny.iter().map(|m| shorten(c, &m.path.display().to_string())).collect();
        let shown =
            if v.len() > 8 { format!("{} … and {} more", v[..8].join(", "), v.len() - 8) } else { v.join(", ") };
        let _ = writeln!(s, "  never readable, even inside the trees above ({} paths): {shown}", v.len());
    }
    if !c.fs.protect.is_empty() {
        let v: Vec<_> = c.fs.protect.iter().map(|m| m.entry.clone()).collect();
        let _ = writeln!(s, "  read-only inside the workspace: {}", v.join(", "));
    }
    if !c.fs.hide.is_empty() {
        let _ = writeln!(s, "  unreadable files in the workspace: {}", c.fs.hide.join(", "));
    }
    let _ = writeln!(s, "  /tmp is private to the session ({}), and gone when it ends", fmt_size(c.fs.tmp_size));
    let _ = writeln!(s, "\nNetwork:");
    match c.net.egress {
        Egress::None => {
            let _ = writeln!(s, "  none: no connection leaves the session; only its own loopback works");
        }
        Egress::Proxy => {
            let v: Vec<_> = c.net.allow.iter().map(|a| a.text.clone()).collect();
            let _ = writeln!(
                s,
                "  only through cordon's egress proxy, to: {}",
                if v.is_empty() { "nothing".into() } else { v.join(", ") }
            );
        }
        Egress::Open => {
            let _ = writeln!(s, "  OPEN: the session may connect anywhere the host can (warned at every run)");
        }
    }
    if !c.net.listen.is_empty() {
        let _ = writeln!(s, "  may listen on: {:?}", c.net.listen);
    }
    let _ = writeln!(s, "\nProcesses and kernel:");
    let _ = writeln!(
        s,
        "  no capabilities, no privilege gain through setuid programs (no_new_privs); LD_* variables removed"
    );
    let mut cats: Vec<(String, Vec<String>)> = vec![];
    for r in c.syscalls.iter().filter(|r| r.action != crate::syscalls::DenyAction::Supervise) {
        let cat = r.reason.split(':').next().unwrap_or("other").to_string();
        let item = if r.when.is_empty() { r.name.clone() } else { format!("{} (some arguments)", r.name) };
        match cats.iter_mut().find(|(k, _)| *k == cat) {
            Some((_, v)) => {
                if !v.contains(&item) {
                    v.push(item)
                }
            }
            None => cats.push((cat, vec![item])),
        }
    }
    let _ = writeln!(
        s,
        "  denied system calls ({} rules, {}):",
        c.syscalls.len(),
        if c.kill_on_deny { "the process is killed" } else { "the call fails with an error" }
    );
    for (k, v) in cats {
        let _ = writeln!(s, "    {k}: {}", v.join(", "));
    }
    let ns = c.namespaces;
    let names: Vec<&str> = [("pid", ns.pid), ("mount", ns.mount), ("ipc", ns.ipc), ("uts", ns.uts), ("net", ns.net)]
        .iter()
        .filter(|(_, b)| *b)
        .map(|(n, _)| *n)
        .collect();
    let _ = writeln!(s, "  own namespaces: {}", if names.is_empty() { "none".into() } else { names.join(", ") });
    if ns.pid {
        let _ = writeln!(s, "  other processes are invisible; every process of the session ends with it");
    }
    let _ = writeln!(s, "\nLimits:");
    let l = &c.limits;
    let _ = writeln!(
        s,
        "  memory {}, processes {}, cpu {}, wall time {}, open files {}",
        l.memory.map(fmt_size).unwrap_or_else(|| "unlimited".into()),
        l.processes.map(|p| p.to_string()).unwrap_or_else(|| "unlimited".into()),
        l.cpu.map(|p| format!("{p}")).unwrap_or_else(|| "unlimited".into()),
        l.wall_time.map(fmt_duration).unwrap_or_else(|| "unlimited".into()),
        l.open_files.map(|p| p.to_string()).unwrap_or_else(|| "inherited".into())
    );
    let _ = writeln!(s, "\nEnvironment:");
    if c.env.keep.is_empty() {
        let _ = writeln!(s, "  passed through, except: {}", c.env.drop.join(", "));
    } else {
        let _ = writeln!(s, "  only: {} (minus {})", c.env.keep.join(", "), c.env.drop.join(", "));
    }
    for (k, v) in &c.env.set {
        let _ = writeln!(s, "  set {k}={v}");
    }
    if !c.tools.is_empty() {
        let _ = writeln!(
            s,
            "\nTool profiles (used by the tool gateway): {}",
            c.tools.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    if !c.tests.is_empty() {
        let _ = writeln!(s, "\n{} embedded examples; run `cordon policy test` to check them.", c.tests.len());
    }
    s
}
