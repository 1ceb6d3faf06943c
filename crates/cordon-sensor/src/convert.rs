//! Turns decoded records into events: wall-clock time, the session, the executable, decoded
//! addresses and errno names, and for refused calls the layer that refused and why.

use crate::attribute::{self, Attribution};
use crate::event::{Event, Kind, SCHEMA_VERSION};
use crate::kinds;
use crate::raw::{Hook, Raw, F_NOT_ENTERED};
use cordon_policy::syscalls::Arch;
use cordon_schema::Layer;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

pub struct Converter {
    pub session: String,
    pub arch: Arch,
    /// realtime - monotonic, in ns, so kernel timestamps become wall-clock times.
    pub clock_offset: i128,
    /// (pid, start time) -> executable.
    pub exes: HashMap<(u32, u64), String>,
    pub attribution: Attribution,
    /// tid -> (time, addr) of the last cgroup-bpf refusal, to attribute the EPERM connect() sees.
    pub net_refusals: HashMap<u32, (u64, String)>,
    /// Processes that are cordon's own setup (see Event::setup); tracked when the sensor saw the
    /// session start (the first process seen is its init).
    pub setup: std::collections::HashSet<u32>,
    pub track_setup: bool,
    seen_any: bool,
    setup_comm: String,
}

pub fn clock_offset() -> i128 {
    let real = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
        .unwrap_or(0);
    let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
        .unwrap_or(0);
    real - mono
}

/// EACCES, ENOENT, ... as the kernel headers name them.
pub fn errno_name(e: i64) -> String {
    match nix::errno::Errno::from_raw(e as i32) {
        nix::errno::Errno::UnknownErrno => format!("errno {e}"),
        n => format!("{n:?}"),
    }
}

/// A sockaddr as the process passed it.
pub fn sockaddr(b: &[u8]) -> Option<String> {
    let fam = u16::from_le_bytes([*b.first()?, *b.get(1)?]);
    match fam {
        1 => {
            let p = b.get(2..)?;
            if p.first() == Some(&0) {
                let end = p.len();
                Some(format!("unix:@{}", String::from_utf8_lossy(&p[1..end]).trim_end_matches('\0')))
            } else {
                let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
                Some(format!("unix:{}", String::from_utf8_lossy(&p[..end])))
            }
        }
        2 => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            let a = Ipv4Addr::new(*b.get(4)?, *b.get(5)?, *b.get(6)?, *b.get(7)?);
            Some(format!("{a}:{port}"))
        }
        10 => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            let mut o = [0u8; 16];
            o.copy_from_slice(b.get(8..24)?);
            Some(format!("[{}]:{port}", Ipv6Addr::from(o)))
        }
        16 => Some("netlink".into()),
        17 => Some("packet".into()),
        f => Some(format!("family {f}")),
    }
}

fn net_addr(family: u32, addr: &[u8; 16], port: u16) -> String {
    if family == 10 {
        format!("[{}]:{port}", Ipv6Addr::from(*addr))
    } else {
        format!("{}:{port}", Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    }
}

impl Converter {
    pub fn new(session: &str, attribution: Attribution) -> Converter {
        Converter {
            session: session.into(),
            arch: kinds::native_arch(),
            clock_offset: clock_offset(),
            exes: HashMap::new(),
            attribution,
            net_refusals: HashMap::new(),
            setup: Default::default(),
            track_setup: false,
            seen_any: false,
            setup_comm: String::new(),
        }
    }

    fn base(&mut self, h: &crate::raw::Hdr, kind: Kind) -> Event {
        let exe = match self.exes.get(&(h.pid, h.start)) {
            Some(e) => e.clone(),
            None => {
                // A process that was running before its first exec was seen (the session's init, or
                // one started before `cordon monitor` attached).
                let e = std::fs::read_link(format!("/proc/{}/exe", h.pid))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if self.exes.len() < 1 << 20 {
                    self.exes.insert((h.pid, h.start), e.clone());
                }
                e
            }
        };
        Event {
            v: SCHEMA_VERSION,
            kind,
            time: (h.ts as i128 + self.clock_offset).max(0) as u64,
            session: self.session.clone(),
            pid: h.pid,
            tid: h.tid,
            ppid: h.ppid,
            uid: h.uid,
            comm: h.comm.clone(),
            exe,
            ..Default::default()
        }
    }

    pub fn convert(&mut self, raw: &Raw) -> Event {
        let pid = raw.hdr().pid;
        if self.track_setup && !self.seen_any && raw.hdr().kind != crate::raw::EV_NET {
            self.setup.insert(pid);
            self.setup_comm = raw.hdr().comm.clone();
        }
        self.seen_any = true;
        // Setup processes run cordon's own code under its name until the command's exec. Should
        // that exec event be lost (a full ring buffer), the new name still ends the exemption, so
        // a lost record can never hide the agent from the rules.
        if self.setup.contains(&pid) && raw.hdr().comm != self.setup_comm && raw.hdr().kind != crate::raw::EV_NET {
            self.setup.remove(&pid);
        }
        let mut e = self.convert_inner(raw);
        if self.track_setup && !self.setup.is_empty() {
            match raw {
                Raw::Fork { h, child_pid, .. } if self.setup.contains(&h.pid) => {
                    self.setup.insert(*child_pid);
                }
                // The command's exec: from here on it is the agent.
                Raw::Exec { h, .. } => {
                    self.setup.remove(&h.pid);
                }
                Raw::Exit { h, .. } => {
                    e.setup = self.setup.remove(&h.pid);
                    return e;
                }
                _ => {}
            }
            e.setup = !matches!(raw, Raw::Exec { .. }) && self.setup.contains(&pid);
        }
        e
    }

    fn convert_inner(&mut self, raw: &Raw) -> Event {
        match raw {
            Raw::Exec { h, filename, argv, .. } => {
                let path = resolve(h.pid, filename);
                self.exes.insert((h.pid, h.start), path.clone());
                let mut e = self.base(h, Kind::Exec);
                e.path = Some(path);
                e.argv = Some(argv.clone());
                e
            }
            Raw::Fork { h, child_pid, child_start, .. } => {
                let mut e = self.base(h, Kind::Fork);
                if let Some(x) = self.exes.get(&(h.pid, h.start)).cloned() {
                    self.exes.insert((*child_pid, *child_start), x);
                }
                e.target_pid = Some(*child_pid as i64);
                e
            }
            Raw::Exit { h, code } => {
                let mut e = self.base(h, Kind::Exit);
                e.code = Some(*code);
                self.exes.remove(&(h.pid, h.start));
                e
            }
            Raw::Net { h, hook, allowed, family, sock_type, port, addr, .. } => {
                let what = match hook {
                    Hook::Connect4 | Hook::Connect6 => "connect",
                    Hook::Sendmsg4 | Hook::Sendmsg6 => "sendmsg",
                    Hook::SockCreate => "socket",
                };
                let a = if *hook == Hook::SockCreate {
                    format!("family {family} type {sock_type}")
                } else {
                    net_addr(*family, addr, *port)
                };
                // The decision itself; the refused call's own exit becomes the `deny` event.
                let mut e = self.base(h, Kind::Net);
                e.syscall = Some(what.into());
                e.addr = Some(a.clone());
                e.result = Some(i64::from(*allowed));
                if !allowed {
                    e.layer = Some(Layer::CgroupBpf);
                    e.reason = Some(attribute::net_reason(*hook, &a));
                    e.errno = Some("EPERM".into());
                    if self.net_refusals.len() > 4096 {
                        self.net_refusals.clear();
                    }
                    self.net_refusals.insert(h.tid, (h.ts, a));
                }
                e
            }
            Raw::Syscall { h, nr, ret, args, p1, p2, addr } => {
                let t = kinds::by_nr(self.arch, *nr);
                let name = t.map(|t| t.name.to_string()).unwrap_or_else(|| kinds::syscall_name(self.arch, *nr));
                let op = t.map_or(Kind::Syscall, |t| t.op);
                let mut e = self.base(h, op);
                e.syscall = Some(name.clone());
                e.result = Some(*ret);
                if *ret < 0 {
                    e.errno = Some(errno_name(-ret));
                }
                let dirfd_first = matches!(
                    name.as_str(),
                    "openat"
                        | "openat2"
                        | "unlinkat"
                        | "mkdirat"
                        | "fchmodat"
                        | "fchmodat2"
                        | "fchownat"
                        | "renameat"
                        | "renameat2"
                        | "execveat"
                );
                let single = t.is_some_and(|t| t.kind == kinds::SK_PATH);
                // For one-path calls the kernel side puts the working directory in p2 when the path
                // is relative (see cwd_into in the BPF program).
                let cwd = if single { p2.as_deref().filter(|c| c.starts_with('/')) } else { None };
                e.path = p1.as_ref().map(|p| {
                    if matches!(op, Kind::Memfd | Kind::Module) {
                        p.clone()
                    } else if let (Some(c), false) = (cwd, p.starts_with('/')) {
                        normalize(&format!("{c}/{p}"))
                    } else {
                        resolve_at(h.pid, if dirfd_first { args[0] as i32 } else { libc::AT_FDCWD }, p)
                    }
                });
                e.path2 = if single {
                    None
                } else {
                    p2.as_ref().map(|p| {
                        if name.starts_with("renameat") {
                            resolve_at(h.pid, args[2] as i32, p)
                        } else {
                            resolve(h.pid, p)
                        }
                    })
                };
                if !addr.is_empty() {
                    e.addr = sockaddr(addr);
                }
                e.flags = match name.as_str() {
                    "open" | "creat" => Some(args[1]),
                    "openat" => Some(args[2]),
                    "chmod" | "mkdir" => Some(args[1]),
                    "fchmodat" | "fchmodat2" | "mkdirat" => Some(args[2]),
                    "unshare" => Some(args[0]),
                    "setns" => Some(args[1]),
                    "ptrace" => Some(args[0]),
                    "kill" => Some(args[1]),
                    "tgkill" => Some(args[2]),
                    _ => None,
                };
                if op == Kind::Open {
                    let f = e.flags.unwrap_or(0);
                    e.write = Some(f & 3 != 0 || f & (libc::O_CREAT | libc::O_TRUNC) as u64 != 0 || name == "creat");
                }
                e.target_pid = match name.as_str() {
                    "kill" | "tkill" => Some(args[0] as i32 as i64),
                    "tgkill" => Some(args[1] as i32 as i64),
                    "ptrace" => Some(args[1] as i32 as i64),
                    _ => None,
                };
                let refused = *ret == -1 || *ret == -13 || (h.flags & F_NOT_ENTERED != 0 && *ret < 0);
                if refused {
                    let net_hint = self
                        .net_refusals
                        .get(&h.tid)
                        .filter(|(ts, _)| h.ts >= *ts && h.ts - ts < 5_000_000_000)
                        .map(|(_, a)| a.clone());
                    let (layer, reason) =
                        self.attribution.attribute(&name, op, &e, h.flags & F_NOT_ENTERED != 0, net_hint.as_deref());
                    e.op = Some(op);
                    e.kind = Kind::Deny;
                    e.layer = Some(layer);
                    e.reason = Some(reason);
                }
                e
            }
        }
    }
}

/// An absolute form of a path a process passed, lexically normalised. Relative paths are resolved
/// against the process's working directory (or the directory fd) as /proc shows it when the event
/// is read: correct unless the process changed directory in the meantime.
pub fn resolve(pid: u32, p: &str) -> String {
    resolve_at(pid, libc::AT_FDCWD, p)
}

pub fn resolve_at(pid: u32, dirfd: i32, p: &str) -> String {
    if p.starts_with('/') || p.is_empty() {
        return normalize(p);
    }
    let base = if dirfd == libc::AT_FDCWD { format!("/proc/{pid}/cwd") } else { format!("/proc/{pid}/fd/{dirfd}") };
    match std::fs::read_link(&base) {
        Ok(b) => normalize(&format!("{}/{p}", b.display())),
        Err(_) => p.to_string(),
    }
}

pub fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::Hdr;

    fn h(pid: u32, comm: &str) -> Hdr {
        Hdr {
            kind: crate::raw::EV_SYSCALL,
            flags: 0,
            pid,
            tid: pid,
            ppid: 1,
            uid: 0,
            ts: 0,
            start: pid as u64,
            comm: comm.into(),
        }
    }

    fn open(pid: u32, comm: &str) -> Raw {
        Raw::Syscall { h: h(pid, comm), nr: 257, ret: 3, args: [0; 6], p1: Some("/x".into()), p2: None, addr: vec![] }
    }

    #[test]
    fn setup_ends_at_exec_or_when_the_name_changes() {
        let mut c = Converter::new("s", Default::default());
        c.track_setup = true;
        assert!(c.convert(&open(10, "cordon")).setup, "the first process is the init");
        let fork = Raw::Fork {
            h: Hdr { kind: crate::raw::EV_FORK, ..h(10, "cordon") },
            child_pid: 11,
            child_tid: 11,
            child_start: 11,
        };
        c.convert(&fork);
        assert!(c.convert(&open(11, "cordon")).setup, "the command before its exec");
        // The exec record of 11 was lost: its next event carries the program's name.
        assert!(!c.convert(&open(11, "python3")).setup);
        assert!(!c.convert(&open(11, "cordon")).setup, "renaming itself back does not restore the exemption");
        let exec = Raw::Exec {
            h: Hdr { kind: crate::raw::EV_EXEC, ..h(10, "cordon") },
            old_pid: 10,
            filename: "/bin/sh".into(),
            argv: vec![],
        };
        assert!(!c.convert(&exec).setup);
        assert!(!c.convert(&open(10, "cordon")).setup, "after its exec the init's pid is the agent's");
    }

    #[test]
    fn addresses_and_paths() {
        let mut v4 = vec![2, 0, 0x01, 0xbb, 10, 0, 0, 1];
        v4.extend_from_slice(&[0; 8]);
        assert_eq!(sockaddr(&v4).as_deref(), Some("10.0.0.1:443"));
        let mut un = vec![1, 0];
        un.extend_from_slice(b"/run/x.sock\0\0\0");
        assert_eq!(sockaddr(&un).as_deref(), Some("unix:/run/x.sock"));
        assert_eq!(sockaddr(&[2]), None);
        assert_eq!(normalize("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(normalize("/../.."), "/");
        assert_eq!(errno_name(13), "EACCES");
    }
}
