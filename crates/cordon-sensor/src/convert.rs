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
    /// pid -> the descriptors memfd_create returned to it (inherited by its children), so that a
    /// refused exec of one is attributed to the memfd's mode, not to Landlock.
    memfds: HashMap<u32, Vec<i32>>,
    seen_any: bool,
    setup_comm: String,
}

/// CLOCK_REALTIME - CLOCK_MONOTONIC (the clock of the kernel's event timestamps), in ns. Read with
/// the monotonic clock on both sides of the realtime one and the narrowest of a few tries kept: a
/// single pair read across a preemption put events milliseconds away from the records the
/// supervisor stamps with the realtime clock (an exec before the session's start, a tool call's
/// effects outside the call), which ordering and linking in the audit log rely on.
pub fn clock_offset() -> i128 {
    clock_offset_with_window().0
}

/// The offset and the width of the window (ns) it was read in.
pub fn clock_offset_with_window() -> (i128, i128) {
    let mut best: Option<(i128, i128)> = None;
    for _ in 0..16 {
        let (Some(m1), Some(real), Some(m2)) = (mono_ns(), real_ns(), mono_ns()) else {
            continue;
        };
        let width = m2 - m1;
        match best {
            Some((_, w)) if w <= width => {}
            _ => best = Some((real - (m1 + width / 2), width)),
        }
        // A window this narrow is as good as the clocks are: no preemption fell inside it.
        if width < 2_000 {
            break;
        }
    }
    best.unwrap_or((0, i128::MAX))
}

fn ns(id: nix::time::ClockId) -> Option<i128> {
    nix::time::clock_gettime(id).ok().map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
}

fn mono_ns() -> Option<i128> {
    ns(nix::time::ClockId::CLOCK_MONOTONIC)
}

fn real_ns() -> Option<i128> {
    ns(nix::time::ClockId::CLOCK_REALTIME)
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
            memfds: HashMap::new(),
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
                if let Some(fds) = self.memfds.get(&h.pid).cloned() {
                    self.memfds.insert(*child_pid, fds);
                }
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
                self.memfds.remove(&h.pid);
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
                        | "mknodat"
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
                    "chmod" | "mkdir" | "mknod" => Some(args[1]),
                    "fchmodat" | "fchmodat2" | "mkdirat" | "mknodat" => Some(args[2]),
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
                if op == Kind::Memfd && *ret >= 0 && self.memfds.len() < 1 << 16 {
                    let fds = self.memfds.entry(h.pid).or_default();
                    if fds.len() < 64 {
                        fds.push(*ret as i32);
                    }
                }
                let memfd = op == Kind::Exec && self.exec_of_memfd(h.pid, &name, args, p1.as_deref());
                let refused = *ret == -1 || *ret == -13 || (h.flags & F_NOT_ENTERED != 0 && *ret < 0);
                // A plant of a protected path meets the session's mounts, which answer otherwise.
                let plant = if !refused && *ret < 0 { self.attribution.protected_refusal(op, &e, -*ret) } else { None };
                if refused || plant.is_some() {
                    let net_hint = self
                        .net_refusals
                        .get(&h.tid)
                        .filter(|(ts, _)| h.ts >= *ts && h.ts - ts < 5_000_000_000)
                        .map(|(_, a)| a.clone());
                    let (layer, reason) = plant.unwrap_or_else(|| {
                        self.attribution.attribute(
                            &name,
                            op,
                            &e,
                            h.flags & F_NOT_ENTERED != 0,
                            net_hint.as_deref(),
                            memfd,
                        )
                    });
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

impl Converter {
    /// Whether an exec runs a descriptor memfd_create gave the process (or a parent it inherited it
    /// from): through /proc/self/fd/N, /proc/PID/fd/N, /dev/fd/N, or execveat(N, "", AT_EMPTY_PATH).
    fn exec_of_memfd(&self, pid: u32, name: &str, args: &[u64; 6], p1: Option<&str>) -> bool {
        let p = p1.unwrap_or("");
        let (owner, fd) = if name == "execveat" && p.is_empty() && args[4] & libc::AT_EMPTY_PATH as u64 != 0 {
            (pid, args[0] as i32)
        } else {
            let (who, n) = if let Some(n) = p.strip_prefix("/dev/fd/") {
                ("self", n)
            } else if let Some((who, n)) = p.strip_prefix("/proc/").and_then(|r| r.split_once("/fd/")) {
                (who, n)
            } else {
                return false;
            };
            let owner = match who {
                "self" | "thread-self" => Some(pid),
                w => w.parse().ok(),
            };
            match (owner, n.parse()) {
                (Some(o), Ok(fd)) => (o, fd),
                _ => return false,
            }
        };
        self.memfds.get(&owner).is_some_and(|fds| fds.contains(&fd))
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
    fn the_clock_offset_is_read_in_a_narrow_window() {
        let (offset, width) = clock_offset_with_window();
        assert!(width < 1_000_000, "the narrowest of 16 reads was {width} ns wide");
        // Against a second, independent read: the same offset within the windows and the clocks' drift.
        let again = clock_offset();
        assert!((offset - again).abs() < 2_000_000, "offsets {offset} and {again} differ");
        let real = real_ns().expect("CLOCK_REALTIME");
        let mono = mono_ns().expect("CLOCK_MONOTONIC");
        assert!((real - mono - offset).abs() < 5_000_000, "offset {offset} vs a plain read {}", real - mono);
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

    /// A session under builtin:agent with Landlock, HOME /home/u, the workspace /home/u/ws.
    fn agent_session() -> Converter {
        let cx = cordon_policy::Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
        let policy = cordon_policy::load_and_compile("builtin:agent", &cx).expect("builtin").1;
        Converter::new(
            "s",
            Attribution { policy: Some(std::sync::Arc::new(policy)), landlock: true, signal_scope: true },
        )
    }

    fn call(pid: u32, name: &str, ret: i64, args: [u64; 6], p1: &str, p2: Option<&str>) -> Raw {
        let nr = kinds::number(kinds::native_arch(), name).expect("syscall number") as u32;
        Raw::Syscall { h: h(pid, "t"), nr, ret, args, p1: Some(p1.into()), p2: p2.map(Into::into), addr: vec![] }
    }

    fn layer(e: &Event) -> &'static str {
        assert_eq!(e.kind, Kind::Deny, "{e:?}");
        e.layer.expect("a deny names its layer").as_str()
    }

    #[test]
    fn a_mode_000_mask_inside_a_granted_tree_is_the_sessions_mounts_not_landlock() {
        let mut c = agent_session();
        // /etc is readable (Landlock grants it); /etc/shadow is masked by a mode-000 file.
        let e = c.convert(&call(20, "openat", -13, [libc::AT_FDCWD as u64, 0, 0, 0, 0, 0], "/etc/shadow", None));
        assert_eq!(layer(&e), "mounts", "{e:?}");
        assert!(e.reason.as_deref().is_some_and(|r| r.contains("fs.deny") && r.contains("mask")), "{e:?}");
        // A workspace file matching fs.hide: the workspace is writable, the file masked.
        let e = c.convert(&call(20, "openat", -13, [libc::AT_FDCWD as u64, 0, 0, 0, 0, 0], "/home/u/ws/.env", None));
        assert_eq!(layer(&e), "mounts", "{e:?}");
        // A program in /tmp (writable, not in fs.exec) is still Landlock's.
        let e = c.convert(&call(20, "execve", -13, [0; 6], "/tmp/tool", None));
        assert_eq!(layer(&e), "landlock", "{e:?}");
    }

    #[test]
    fn a_device_node_is_landlocks_to_refuse_and_a_fifo_where_it_may_write_is_not() {
        let mut c = agent_session();
        let at = libc::AT_FDCWD as u64;
        let chr = (libc::S_IFCHR | 0o644) as u64;
        // mknod devnull c 1 3 in the workspace, a relative path (the kernel side adds the cwd).
        let e = c.convert(&call(21, "mknodat", -13, [at, 0, chr, 0x103, 0, 0], "devnull", Some("/home/u/ws")));
        assert_eq!(layer(&e), "landlock", "{e:?}");
        assert_eq!(e.path.as_deref(), Some("/home/u/ws/devnull"));
        assert!(e.reason.as_deref().is_some_and(|r| r.contains("device")), "{e:?}");
        // A fifo in the workspace: Landlock grants it, so an EACCES is the directory's permissions.
        let fifo = (libc::S_IFIFO | 0o644) as u64;
        let e = c.convert(&call(21, "mknodat", -13, [at, 0, fifo, 0, 0, 0], "/home/u/ws/f", None));
        assert_eq!(layer(&e), "dac", "{e:?}");
    }

    #[test]
    fn exec_of_a_memfd_is_refused_by_its_mode_not_by_landlock() {
        let mut c = agent_session();
        // The supervisor answers memfd_create (not entered; the fd it added is the result).
        let mk = Raw::Syscall {
            h: Hdr { flags: F_NOT_ENTERED, ..h(22, "python3") },
            nr: kinds::number(kinds::native_arch(), "memfd_create").expect("nr") as u32,
            ret: 5,
            args: [0; 6],
            p1: Some("x".into()),
            p2: None,
            addr: vec![],
        };
        assert_eq!(c.convert(&mk).kind, Kind::Memfd);
        // The child inherits the fd and runs it through /proc/self/fd.
        c.convert(&Raw::Fork {
            h: Hdr { kind: crate::raw::EV_FORK, ..h(22, "python3") },
            child_pid: 23,
            child_tid: 23,
            child_start: 23,
        });
        let e = c.convert(&call(23, "execve", -13, [0; 6], "/proc/self/fd/5", None));
        assert_eq!(layer(&e), "dac", "{e:?}");
        assert!(e.reason.as_deref().is_some_and(|r| r.contains("MFD_NOEXEC_SEAL")), "{e:?}");
        // execveat(fd, "", AT_EMPTY_PATH) in the parent.
        let e = c.convert(&call(22, "execveat", -13, [5, 0, 0, 0, libc::AT_EMPTY_PATH as u64, 0], "", None));
        assert_eq!(layer(&e), "dac", "{e:?}");
        // Another fd (a file, not a memfd) through /proc/self/fd stays Landlock's to judge.
        let e = c.convert(&call(23, "execve", -13, [0; 6], "/proc/self/fd/7", None));
        assert_eq!(layer(&e), "landlock", "{e:?}");
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
