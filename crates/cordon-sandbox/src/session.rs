//! One session: the supervisor (this process) makes the session's environment (its init in fresh
//! namespaces, see [`crate::environment`]) and runs the command there (see [`crate::watch`]): it
//! forwards signals, answers seccomp notifications ([`Supervisor`]), keeps the wall clock, and
//! tears everything down. [`Session::run`] is both steps back to back.
//!
//! ```text
//! cordon (supervisor) ──clone(NEWUSER?|NEWPID|NEWNS|...)──> init (pid 1) ──fork──> command
//!   cgroups, signals,            mounts, hostname, lo,          rlimits, caps, Landlock,
//!   seccomp notify, wall clock   bounds, waits for the order,   seccomp, execve
//!                                reaps, forwards signals
//! ```

use crate::channel::Report;
use crate::environment::{EnvOptions, Environment};
use crate::error::SandboxError;
use crate::plan::SessionPlan;
use crate::report::{Denial, Denials, Outcome};
use crate::sys;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Signals the supervisor forwards to the command.
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

pub(crate) fn forwarded_set(with_chld: bool) -> SigSet {
    let mut s = SigSet::empty();
    for sig in FORWARDED {
        s.add(*sig);
    }
    if with_chld {
        s.add(Signal::SIGCHLD);
    }
    s
}

/// The caller's signal mask, put back when this is dropped: every way out of a session's setup
/// leaves the caller's mask as it found it. A session that ran ends with [`MaskGuard::end`].
pub(crate) struct MaskGuard {
    old: SigSet,
    armed: bool,
}

impl MaskGuard {
    /// Blocks `set` (on top of what the caller blocks).
    pub(crate) fn block(set: &SigSet) -> Result<MaskGuard, SandboxError> {
        let mut old = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(set), Some(&mut old)).map_err(SandboxError::sys("sigprocmask"))?;
        Ok(MaskGuard { old, armed: true })
    }

    /// The session is over: the caller's mask with SIGINT, SIGTERM, SIGHUP and SIGQUIT blocked
    /// (see [`Session::run`]).
    pub(crate) fn end(mut self) {
        let mut mask = self.old;
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
            mask.add(sig);
        }
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
        self.armed = false;
    }
}

impl Drop for MaskGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
        }
    }
}

/// Monotonic microseconds, comparable across the supervisor and its children (for CORDON_TIMING).
fn mono_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

pub(crate) fn timing_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CORDON_TIMING").is_some())
}

pub(crate) fn mark(rep: RawFd, what: &str) {
    if timing_on() {
        Report::Mark { at_us: mono_us(), what: what.to_string() }.send(rep);
    }
}

/// The supervisor's timing marks and the children's, printed in order at the end (CORDON_TIMING).
pub(crate) struct Marks {
    t0: u64,
    pub(crate) list: Vec<(u64, String)>,
}

impl Marks {
    pub(crate) fn new() -> Marks {
        Marks { t0: mono_us(), list: vec![] }
    }

    pub(crate) fn mark(&mut self, what: &str) {
        if timing_on() {
            self.list.push((mono_us(), what.to_string()))
        }
    }

    pub(crate) fn print(&mut self) {
        self.list.sort();
        // One write per mark: a line in pieces could interleave with other threads' output.
        for (t, w) in &self.list {
            let line = format!("cordon-timing: {:>8} us  {w}\n", t.saturating_sub(self.t0));
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
}

/// Called for every denial as it happens; returns true to stop the whole session (a rule said kill).
pub type DenialHook = Box<dyn FnMut(&Denial) -> bool>;

pub struct Session<'a> {
    pub plan: &'a SessionPlan,
    pub session_id: String,
    /// Give the command its own pseudo-terminal when stdin is a terminal.
    pub interactive: bool,
    pub on_denial: Option<DenialHook>,
    /// Called once the session's cgroups exist and before anything runs in them, with the v2
    /// directory (None when the host gave the session none). The eBPF sensor attaches here, so it
    /// sees the session from its first instruction; an error stops the session before it starts.
    pub on_cgroup: Option<CgroupHook>,
    /// Kill the whole session this long after the first SIGINT or SIGTERM passed on to it, if it
    /// has not ended (`--kill-after`). A second SIGINT or SIGTERM kills it at once in any case.
    pub kill_after: Option<Duration>,
    /// Serves the egress listeners the init opens when the plan has any (the proxy and the
    /// forwarders); without it such a session is refused.
    pub on_egress: Option<crate::egress::EgressHook>,
    /// Judges the write attempts the plan's write watch shows (see [`crate::writes`]); without
    /// it they are let through unjudged.
    pub on_write: Option<crate::writes::WriteHook>,
}

pub type CgroupHook = Box<dyn FnOnce(Option<&std::path::Path>) -> Result<(), String>>;

/// SIGINT and SIGTERM: a request to end the session. The first is passed on; a second one, or
/// `kill_after` after the first, kills the session.
pub(crate) fn ends_session(sig: i32) -> bool {
    sig == libc::SIGINT || sig == libc::SIGTERM
}

pub(crate) fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map(|s| s.to_string()).unwrap_or_else(|_| format!("signal {sig}"))
}

impl Session<'_> {
    /// Runs the session to its end: an environment made for it, then its command run there. On
    /// return SIGINT, SIGTERM, SIGHUP and SIGQUIT stay blocked (any that arrived are discarded):
    /// the session is over, and the caller's end-of-session records must not be cut short by one
    /// more Ctrl-C. On an error the caller's signal mask is as it was.
    pub fn run(&mut self) -> Result<Outcome, SandboxError> {
        // Refused before the host changes: a process plan the init could not be given.
        let order = crate::command::order(&self.plan.process, &self.plan.environment)?;
        let opts = EnvOptions { interactive: self.interactive, on_cgroup: self.on_cgroup.take() };
        let env = Environment::create(&self.plan.environment, opts)?;
        let launch = Launch {
            session_id: self.session_id.clone(),
            on_denial: self.on_denial.take(),
            on_egress: self.on_egress.take(),
            on_write: self.on_write.take(),
            kill_after: self.kill_after,
        };
        env.run_order(&order, &self.plan.process, launch)
    }
}

/// What a command run in a ready environment is given besides its process plan.
pub struct Launch {
    /// The session the outcome belongs to.
    pub session_id: String,
    pub on_denial: Option<DenialHook>,
    /// Serves the egress listeners the init opened when the plan has any (the proxy and the
    /// forwarders); without it such a run is refused.
    pub on_egress: Option<crate::egress::EgressHook>,
    /// Kill the whole session this long after the first SIGINT or SIGTERM passed on to it, if it
    /// has not ended (`--kill-after`). A second SIGINT or SIGTERM kills it at once in any case.
    pub kill_after: Option<Duration>,
    /// Judges the write attempts the plan's write watch shows.
    pub on_write: Option<crate::writes::WriteHook>,
}

impl Launch {
    pub fn new(session_id: impl Into<String>) -> Launch {
        Launch { session_id: session_id.into(), on_denial: None, on_egress: None, kill_after: None, on_write: None }
    }
}

pub(crate) struct Supervisor<'a> {
    pub(crate) seccomp: &'a crate::plan::seccomp::SeccompPlan,
    pub(crate) denials: Denials,
    pub(crate) notify_fd: Option<OwnedFd>,
    pub(crate) comm_cache: Vec<(u32, String)>,
    pub(crate) hook: Option<DenialHook>,
    pub(crate) on_write: Option<crate::writes::WriteHook>,
    pub(crate) stop: bool,
}

impl Supervisor<'_> {
    fn record(&mut self, d: Denial) {
        if let Some(h) = self.hook.as_mut() {
            if h(&d) {
                self.stop = true;
            }
        }
        self.denials.add(d);
    }
}

impl Supervisor<'_> {
    pub(crate) fn handle_notification(&mut self) {
        let Some(fd) = self.notify_fd.as_ref().map(|f| f.as_raw_fd()) else { return };
        let req = match sys::notif_recv(fd) {
            Ok(r) => r,
            Err(_) => return, // the caller died meanwhile
        };
        let nr = req.data.nr;
        let rule = self.seccomp.rules.iter().find(|r| crate::plan::seccomp::matches(r, nr, &req.data.args));
        // The write watch: a number no deny rule holds, let through as the filter would have.
        let watched = crate::plan::write_watch::find(&self.seccomp.watch, nr, &req.data.args);
        if let (None, Some(w)) = (rule, watched) {
            self.write_attempt(fd, w, &req);
            return;
        }
        let memfd = rule
            .is_some_and(|r| r.action == cordon_policy::syscalls::DenyAction::Supervise && r.name == "memfd_create");
        if memfd && self.memfd_for(fd, &req) {
            return;
        }
        if let Some(r) =
            rule.filter(|r| r.action == cordon_policy::syscalls::DenyAction::Supervise && r.name == "connect")
        {
            match remote_inet_target(&req) {
                Some(target) => {
                    let _ = sys::notif_deny(fd, req.id, libc::ENETUNREACH);
                    let comm = self.comm(req.pid);
                    self.record(Denial {
                        layer: crate::report::Layer::Network,
                        pid: req.pid,
                        comm,
                        what: format!("connect({target})"),
                        reason: connect_reason(&r.reason, &target),
                        count: 1,
                    });
                }
                // Loopback, unix sockets, unreadable arguments: the namespace decides.
                None => {
                    let _ = sys::notif_continue(fd, req.id);
                }
            }
            return;
        }
        let errno = match rule.map(|r| r.action) {
            Some(cordon_policy::syscalls::DenyAction::Errno(e))
            | Some(cordon_policy::syscalls::DenyAction::QuietErrno(e)) => e,
            _ => libc::EPERM,
        };
        let _ = sys::notif_deny(fd, req.id, errno);
        let name = rule.map(|r| r.name.clone()).unwrap_or_else(|| format!("syscall {nr}"));
        let what = describe_call(&name, &req.data.args);
        let comm = self.comm(req.pid);
        self.record(Denial {
            layer: crate::report::Layer::Seccomp,
            pid: req.pid,
            comm,
            what,
            reason: rule.map(|r| r.reason.clone()).unwrap_or_else(|| "denied by the seccomp filter".into()),
            count: 1,
        });
    }

    /// A watched write: read, let through, then judged (see [`crate::writes`]).
    fn write_attempt(&mut self, fd: RawFd, w: &crate::plan::write_watch::WatchedCall, req: &sys::SeccompNotif) {
        let attempt = crate::writes::read(w, req);
        // Failing, the caller died meanwhile (or the id is stale): nothing happened to judge.
        if sys::notif_continue(fd, req.id).is_err() {
            return;
        }
        let (Some(a), Some(hook)) = (attempt, self.on_write.as_mut()) else { return };
        if let Some(mut d) = hook(&a) {
            d.pid = req.pid;
            d.comm = self.comm(req.pid);
            self.record(d);
        }
    }

    /// memfd_create on the session's behalf: the same flags, but always MFD_NOEXEC_SEAL, so the
    /// memory can never be executed. Returns false to fall through to a recorded denial (MFD_EXEC).
    fn memfd_for(&mut self, fd: RawFd, req: &sys::SeccompNotif) -> bool {
        const MFD_CLOEXEC: u32 = 0x1;
        const MFD_ALLOW_SEALING: u32 = 0x2;
        const MFD_HUGETLB: u32 = 0x4;
        const MFD_NOEXEC_SEAL: u32 = 0x8;
        const MFD_EXEC: u32 = 0x10;
        const HUGE_SHIFT_MASK: u32 = 0x3f << 26;
        let flags = req.data.args[1] as u32;
        if flags & MFD_EXEC != 0 {
            return false;
        }
        let keep = flags & (MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | HUGE_SHIFT_MASK);
        match sys::memfd_create(c"cordon", keep | MFD_NOEXEC_SEAL) {
            Ok(m) => {
                // On failure the target died or the id is stale: nothing to answer.
                let _ = sys::notif_addfd_send(fd, req.id, m.as_raw_fd(), flags & MFD_CLOEXEC != 0);
            }
            Err(e) => {
                let _ = sys::notif_deny(fd, req.id, e.raw_os_error().unwrap_or(libc::ENOMEM));
            }
        }
        true
    }

    pub(crate) fn handle_notification_nonblocking(&mut self) {
        for _ in 0..1024 {
            let Some(fd) = self.notify_fd.as_ref() else { return };
            let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut p, PollTimeout::ZERO) {
                Ok(n) if n > 0 && p[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) => {
                    self.handle_notification()
                }
                _ => return,
            }
        }
    }

    fn comm(&mut self, pid: u32) -> String {
        if let Some((_, c)) = self.comm_cache.iter().find(|(p, _)| *p == pid) {
            return c.clone();
        }
        let c = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        if self.comm_cache.len() > 256 {
            self.comm_cache.clear();
        }
        self.comm_cache.push((pid, c.clone()));
        c
    }
}

/// The non-loopback IPv4/IPv6 address a notified connect() asks for, read from the caller's memory.
/// Only used to report and refuse early; the network namespace is the guard.
fn remote_inet_target(req: &sys::SeccompNotif) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let (ptr, len) = (req.data.args[1], (req.data.args[2] as usize).min(128));
    if ptr == 0 || len < 8 {
        return None;
    }
    let f = std::fs::File::open(format!("/proc/{}/mem", req.pid)).ok()?;
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, ptr).ok()?;
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    let port = u16::from_be_bytes([b[2], b[3]]);
    let ip: std::net::IpAddr = match family {
        libc::AF_INET => std::net::Ipv4Addr::new(b[4], b[5], b[6], b[7]).into(),
        libc::AF_INET6 if len >= 24 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[8..24]);
            std::net::Ipv6Addr::from(o).into()
        }
        _ => return None,
    };
    let loopback = match ip {
        std::net::IpAddr::V4(v) => v.is_loopback() || v.is_unspecified(),
        std::net::IpAddr::V6(v) => {
            v.is_loopback() || v.is_unspecified() || v.to_ipv4_mapped().is_some_and(|m| m.is_loopback())
        }
    };
    (!loopback).then(|| std::net::SocketAddr::new(ip, port).to_string())
}

/// The connect rule's reason for one address: a lookup (port 53) names no host to allow.
fn connect_reason(reason: &str, target: &str) -> String {
    if target.ends_with(":53") {
        reason.replace(
            "`--allow-net {target}`",
            "`--allow-net HOST[:PORT]` for the host it looked up (the proxy resolves names; this was a DNS lookup)",
        )
    } else {
        reason.replace("{target}", target)
    }
}

/// A short rendering of a denied call with the arguments that explain it.
pub fn describe_call(name: &str, a: &[u64; 6]) -> String {
    match name {
        "socket" => {
            let fam = match a[0] {
                17 => "AF_PACKET".to_string(),
                2 => "AF_INET".to_string(),
                10 => "AF_INET6".to_string(),
                16 => "AF_NETLINK".to_string(),
                40 => "AF_VSOCK".to_string(),
                38 => "AF_ALG".to_string(),
                n => format!("family {n}"),
            };
            if a[1] & 0xf == 3 {
                format!("socket({fam}, SOCK_RAW)")
            } else if a[0] == 16 {
                format!("socket({fam}, proto {})", a[2])
            } else {
                format!("socket({fam})")
            }
        }
        "ioctl" => match a[1] & 0xffff_ffff {
            0x5412 => "ioctl(TIOCSTI)".into(),
            0x541C => "ioctl(TIOCLINUX)".into(),
            c => format!("ioctl({c:#x})"),
        },
        "clone" | "unshare" => format!("{name}(flags={:#x})", a[0]),
        "ptrace" => format!("ptrace(request={}, pid={})", a[0], a[1] as i64),
        "process_vm_readv" | "process_vm_writev" | "pidfd_getfd" | "kcmp" => format!("{name}(pid={})", a[0] as i64),
        "personality" => format!("personality({:#x})", a[0]),
        _ => format!("{name}()"),
    }
}

/// Name overrides for tests that own their names: `CORDON_TEST_RESOLVE=name=ip,name=ip`. Read from
/// cordon's own environment (the session cannot set it); never touches the machine's resolver.
/// Who owns the client socket `peer` (an address inside the session's network namespace): the pid
/// and executable, found through the init's /proc view of the namespace's sockets.
pub(crate) fn attribute(init: i32, peer: std::net::SocketAddr) -> (u32, String) {
    let (file, want) = match peer {
        std::net::SocketAddr::V4(a) => ("tcp", format!("{:08X}:{:04X}", u32::from_ne_bytes(a.ip().octets()), a.port())),
        std::net::SocketAddr::V6(a) => {
            let o = a.ip().octets();
            let mut h = String::new();
            for c in o.chunks(4) {
                h.push_str(&format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])));
            }
            ("tcp6", format!("{h}:{:04X}", a.port()))
        }
    };
    let table = std::fs::read_to_string(format!("/proc/{init}/net/{file}")).unwrap_or_default();
    let Some(inode) = table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&want.as_str())).then(|| f.get(9).map(|s| s.to_string())).flatten()
    }) else {
        return (0, "?".into());
    };
    let needle = format!("socket:[{inode}]");
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if ns.is_some() && std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok() != ns {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        if fds.flatten().any(|f| std::fs::read_link(f.path()).map(|t| t.to_string_lossy() == needle).unwrap_or(false)) {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.display().to_string())
                .or_else(|_| std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim().to_string()))
                .unwrap_or_else(|_| "?".into());
            return (pid, exe);
        }
    }
    (0, "?".into())
}

pub(crate) fn fail(rep: RawFd, msg: &str) -> ! {
    Report::SetupFailed(msg.to_string()).send(rep);
    sys::exit_now(125)
}

#[cfg(test)]
mod tests {
    //! `Session::run` failing before its init is cloned: no root, no namespaces needed.
    use super::*;
    use crate::apply::cgroup::CgroupError;
    use crate::plan::cgroup::CgroupPlan;
    use crate::testutil::{io_source, Tmp};

    fn plan(argv: Vec<std::ffi::OsString>) -> SessionPlan {
        let cx = cordon_policy::Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
        let policy = cordon_policy::load_and_compile("builtin:agent", &cx).expect("builtin").1;
        let inv = crate::Invocation {
            session_id: "t1".into(),
            argv,
            cwd: "/home/u/ws".into(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        };
        let mut p = crate::plan(&policy, &crate::KernelCaps::detect(), &inv);
        p.environment.cgroup = CgroupPlan {
            v2_dir: None,
            v2_controllers: vec![],
            memory: None,
            processes: None,
            cpu: None,
            wall_time: None,
        };
        p
    }

    fn run(plan: &SessionPlan, on_cgroup: Option<CgroupHook>) -> Result<Outcome, SandboxError> {
        // The signal mask run() sets is this test thread's own.
        Session {
            plan,
            session_id: "t1".into(),
            interactive: false,
            on_denial: None,
            on_cgroup,
            kill_after: None,
            on_egress: None,
            on_write: None,
        }
        .run()
    }

    #[test]
    fn a_nul_byte_in_an_argument_is_refused_naming_the_argument() {
        let e = run(&plan(vec!["/bin/echo".into(), "a\0b".into()]), None).expect_err("NUL");
        assert!(matches!(&e, SandboxError::NulByte(a) if a == "a\0b"), "{e:?}");
        assert_eq!(e.to_string(), "argument contains a NUL byte: \"a\\0b\"");
    }

    #[test]
    fn a_cgroup_the_session_cannot_create_is_a_typed_error_keeping_its_cause() {
        let tmp = Tmp::new("session-cg");
        let file = tmp.0.join("file");
        std::fs::write(&file, "").expect("write");
        let mut p = plan(vec!["/bin/true".into()]);
        p.environment.cgroup.v2_dir = Some(file.join("cordon").join("t1"));
        let e = run(&p, None).expect_err("a file is no directory");
        assert!(matches!(&e, SandboxError::Cgroup(CgroupError::Create { .. })), "{e:?}");
        assert_eq!(io_source(&e).raw_os_error(), Some(libc::ENOTDIR));
        assert_eq!(e.to_string(), format!("cgroup: create {}: {}", file.join("cordon").display(), io_source(&e)));
    }

    /// The signals this thread has blocked, of those a session forwards.
    fn blocked_forwarded() -> Vec<Signal> {
        let mut cur = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, None, Some(&mut cur)).expect("sigprocmask");
        FORWARDED.iter().copied().filter(|s| cur.contains(*s)).collect()
    }

    #[test]
    fn a_session_that_fails_to_set_up_leaves_the_callers_signal_mask_as_it_was() {
        // Only SIGUSR1 blocked before: the failed session must leave exactly that.
        let mut before = SigSet::empty();
        before.add(Signal::SIGUSR1);
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None).expect("sigprocmask");
        let tmp = Tmp::new("session-mask");
        let file = tmp.0.join("file");
        std::fs::write(&file, "").expect("write");
        // A cgroup that cannot be created (after the signals were blocked for the clone).
        let mut p = plan(vec!["/bin/true".into()]);
        p.environment.cgroup.v2_dir = Some(file.join("cordon").join("t1"));
        run(&p, None).expect_err("a file is no directory");
        assert_eq!(blocked_forwarded(), [Signal::SIGUSR1], "after a failed cgroup");
        // A refusing hook, and an argument that cannot be passed.
        let hook: CgroupHook = Box::new(|_| Err("no".to_string()));
        run(&plan(vec!["/bin/true".into()]), Some(hook)).expect_err("the hook refused");
        assert_eq!(blocked_forwarded(), [Signal::SIGUSR1], "after a refusing hook");
        run(&plan(vec!["a\0b".into()]), None).expect_err("NUL");
        assert_eq!(blocked_forwarded(), [Signal::SIGUSR1], "after a NUL byte");
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).expect("sigprocmask");
    }

    #[test]
    fn a_refusing_cgroup_hook_stops_the_session_with_its_own_words() {
        let hook: CgroupHook = Box::new(|dir| {
            assert!(dir.is_none(), "the plan has no v2 cgroup");
            Err("--monitor: the session has no cgroup v2 directory".to_string())
        });
        let e = run(&plan(vec!["/bin/true".into()]), Some(hook)).expect_err("the hook refused");
        assert!(matches!(e, SandboxError::CgroupHook(_)), "{e:?}");
        assert_eq!(e.to_string(), "--monitor: the session has no cgroup v2 directory");
    }
}
