//! One session: the supervisor (this process) starts the session's init in fresh namespaces, the init
//! sets up the mount table and forks the command's process, which confines itself and execs. The
//! supervisor then forwards signals, answers seccomp notifications, keeps the wall clock, and tears
//! everything down.
//!
//! ```text
//! cordon (supervisor) ──clone(NEWUSER?|NEWPID|NEWNS|...)──> init (pid 1) ──fork──> command
//!   cgroups, signals,            mounts, hostname, lo,          rlimits, caps, Landlock,
//!   seccomp notify, wall clock   reaps, forwards signals        seccomp, execve
//! ```

use crate::apply;
use crate::channel::{Handoff, Report};
use crate::error::SandboxError;
use crate::plan::SessionPlan;
use crate::report::{Denial, Denials, Ending, Outcome};
use crate::sys;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::ffi::CString;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

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

fn forwarded_set(with_chld: bool) -> SigSet {
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
struct MaskGuard {
    old: SigSet,
    armed: bool,
}

impl MaskGuard {
    /// Blocks `set` (on top of what the caller blocks).
    fn block(set: &SigSet) -> Result<MaskGuard, SandboxError> {
        let mut old = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(set), Some(&mut old)).map_err(SandboxError::sys("sigprocmask"))?;
        Ok(MaskGuard { old, armed: true })
    }

    /// The session is over: the caller's mask with SIGINT, SIGTERM, SIGHUP and SIGQUIT blocked
    /// (see [`Session::run`]).
    fn end(mut self) {
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

/// Everything prepared in the supervisor before the fork, so the children only make syscalls.
struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    program: Option<CString>,
    seccomp: Option<Vec<libc::sock_filter>>,
}

/// The bytes of an OS string for execve, whatever their encoding.
fn cstr(s: &std::ffi::OsStr) -> Result<CString, SandboxError> {
    CString::new(s.as_bytes()).map_err(|_| SandboxError::NulByte(s.to_os_string()))
}

fn prepare(plan: &SessionPlan) -> Result<Prepared, SandboxError> {
    let argv = plan.process.argv.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = plan
        .process
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            cstr(&kv)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let program = match &plan.process.program {
        Some(p) => Some(cstr(p.as_os_str())?),
        None => None,
    };
    let seccomp = if plan.seccomp.enabled { Some(apply::seccomp::build(&plan.seccomp)?) } else { None };
    Ok(Prepared { argv, envp, program, seccomp })
}

/// Monotonic microseconds, comparable across the supervisor and its children (for CORDON_TIMING).
fn mono_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

fn timing_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CORDON_TIMING").is_some())
}

fn mark(rep: RawFd, what: &str) {
    if timing_on() {
        Report::Mark { at_us: mono_us(), what: what.to_string() }.send(rep);
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
}

pub type CgroupHook = Box<dyn FnOnce(Option<&std::path::Path>) -> Result<(), String>>;

/// SIGINT and SIGTERM: a request to end the session. The first is passed on; a second one, or
/// `kill_after` after the first, kills the session.
fn ends_session(sig: i32) -> bool {
    sig == libc::SIGINT || sig == libc::SIGTERM
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map(|s| s.to_string()).unwrap_or_else(|_| format!("signal {sig}"))
}

impl Session<'_> {
    /// Runs the session to its end. On return SIGINT, SIGTERM, SIGHUP and SIGQUIT stay blocked (any
    /// that arrived are discarded): the session is over, and the caller's end-of-session records
    /// must not be cut short by one more Ctrl-C.
    pub fn run(&mut self) -> Result<Outcome, SandboxError> {
        let start = Instant::now();
        let t0 = mono_us();
        let mut marks: Vec<(u64, String)> = vec![];
        let mut mark_s = |what: &str| {
            if timing_on() {
                marks.push((mono_us(), what.to_string()))
            }
        };
        let plan = self.plan;
        let prepared = prepare(plan)?;
        mark_s("supervisor: seccomp program built");

        let (sync_r, sync_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SandboxError::sys("pipe"))?;
        let (rep_r, rep_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SandboxError::sys("pipe"))?;
        let (nsock_s, nsock_c) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(SandboxError::sys("socketpair"))?;

        // Block the signals we forward before the clone, so none is lost in between; the children
        // inherit the mask and the command's process clears it before exec.
        let mask = MaskGuard::block(&forwarded_set(true))?;
        let mut pty = if self.interactive { crate::pty::Pty::open_if_interactive()? } else { None };
        apply::cgroup::collect_stale(&plan.cgroup);
        let cgroups = apply::cgroup::create(&plan.cgroup)?;
        let v1_tasks = cgroups.v1_task_files();
        let v2_fd = cgroups.v2_dir_fd();
        mark_s("supervisor: cgroups created");
        if let Some(h) = self.on_cgroup.take() {
            h(cgroups.v2.as_deref()).map_err(SandboxError::CgroupHook)?;
            mark_s("supervisor: cgroup hook (sensor) done");
        }
        let flags = plan.ns.clone_flags();
        // Start the init directly in the v2 cgroup when the kernel can (clone3, Linux 5.7+).
        let mut placed_v2 = false;
        let cloned = match &v2_fd {
            Some(fd) => match sys::clone_into_cgroup(flags, fd.as_raw_fd()) {
                Ok(p) => {
                    placed_v2 = true;
                    Ok(p)
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::E2BIG)) => {
                    sys::clone_process(flags)
                }
                Err(e) => Err(e),
            },
            None => sys::clone_process(flags),
        };
        let pid = match cloned {
            Ok(p) => p,
            Err(e) => return Err(SandboxError::Namespaces { source: e }),
        };
        if pid == 0 {
            drop(sync_w);
            drop(rep_r);
            drop(nsock_s);
            init_main(plan, &prepared, sync_r, rep_w.as_raw_fd(), nsock_c.as_raw_fd(), pty.as_ref(), &v1_tasks);
        }
        drop(sync_r);
        drop(rep_w);
        drop(nsock_c);
        // Not dumpable: the session cannot ptrace us or read our memory through /proc even if it
        // reached our pid. (Set after the clone: the init must still write its own uid_map.)
        let _ = sys::set_dumpable(false);
        if let Some(p) = pty.as_mut() {
            // Only the session holds the slave now; the user's terminal goes raw and is relayed.
            p.close_slave();
            p.enter_raw();
        }
        let mut stdin_open = pty.is_some();
        let mut master_open = pty.is_some();
        let init = Pid::from_raw(pid);
        let stdin = std::io::stdin();
        let pidfd = sys::pidfd_open(pid).map_err(SandboxError::PidfdOpen)?;
        mark_s("supervisor: init cloned");
        drop(v2_fd);
        // The init joins the v1 cgroups itself; the v2 one was joined at clone time, or is joined
        // here. The init forks the command only after the "go" below.
        if !placed_v2 {
            if let Err(e) = cgroups.add_v2(pid) {
                let _ = kill(init, Signal::SIGKILL);
                let _ = waitpid(init, None);
                return Err(e.into());
            }
        }
        mark_s("supervisor: init moved into cgroups");
        let _ = nix::unistd::write(&sync_w, b"g");
        drop(sync_w);

        let mut sup = Supervisor {
            plan,
            denials: Denials::default(),
            notify_fd: None,
            comm_cache: vec![],
            hook: self.on_denial.take(),
            stop: false,
        };
        let sfd = SignalFd::with_flags(&forwarded_set(true), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(SandboxError::sys("signalfd"))?;
        let wall_deadline = plan.cgroup.wall_time.map(|w| start + w);
        let mut kill_deadline: Option<Instant> = None;
        // The first SIGINT/SIGTERM passed on, and when --kill-after kills the session.
        let mut asked_to_end: Option<i32> = None;
        let mut escalate_at: Option<Instant> = None;
        let mut escalated: Option<String> = None;
        let mut wall_exceeded = false;
        let mut stopped_by_rule = false;
        let mut nsock = Some(nsock_s);
        let mut egress: Option<Box<dyn crate::egress::Server>> = None;
        let init_status;
        loop {
            let now = Instant::now();
            let next =
                [wall_deadline.filter(|_| !wall_exceeded), kill_deadline, escalate_at].into_iter().flatten().min();
            let timeout = match next {
                Some(t) if t <= now => PollTimeout::ZERO,
                Some(t) => PollTimeout::try_from((t - now).as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            let mut fds =
                vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN), PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let has_sock = nsock.is_some();
            if let Some(s) = &nsock {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            let base = fds.len();
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            if master_open {
                if let Some(p) = &pty {
                    fds.push(PollFd::new(p.master_fd(), PollFlags::POLLIN));
                }
            }
            let has_notify = sup.notify_fd.is_some();
            if let Some(n) = &sup.notify_fd {
                fds.push(PollFd::new(n.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(SandboxError::Sys { call: "poll", source: e }),
            }
            let rev = |i: usize| fds.get(i).and_then(|f| f.revents()).unwrap_or(PollFlags::empty());
            let init_done = !rev(0).is_empty();
            let sig_ready = !rev(1).is_empty();
            let sock_ready = has_sock && !rev(2).is_empty();
            let mut idx = base;
            let stdin_ready = stdin_open && {
                idx += 1;
                !rev(idx - 1).is_empty()
            };
            let master_ready = master_open && {
                idx += 1;
                !rev(idx - 1).is_empty()
            };
            // Only POLLIN means a request is waiting. POLLHUP alone means the filter has no users
            // left (the session is over); NOTIF_RECV would then block forever on Linux < 6.2.
            let notif_rev = if has_notify { rev(idx) } else { PollFlags::empty() };
            let notif_ready = notif_rev.contains(PollFlags::POLLIN);
            let notif_gone = has_notify
                && !notif_ready
                && notif_rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL);
            drop(fds);
            if let Some(p) = &pty {
                if stdin_ready && !crate::pty::Pty::pump(std::io::stdin().as_fd(), p.master.as_fd()) {
                    stdin_open = false;
                }
                if master_ready && !crate::pty::Pty::pump(p.master.as_fd(), std::io::stdout().as_fd()) {
                    master_open = false;
                }
            }
            if notif_gone {
                sup.notify_fd = None;
            }
            if notif_ready {
                sup.handle_notification();
                if sup.stop {
                    // A detection rule asked for the session to end.
                    let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
                    sup.stop = false;
                    stopped_by_rule = true;
                }
            }
            if sock_ready {
                match nsock.as_ref().map(|s| sys::recv_fds(s.as_raw_fd())) {
                    Some(Some((tag, mut fds)))
                        if Handoff::from_tag(tag) == Some(Handoff::Notify) && !fds.is_empty() =>
                    {
                        sup.notify_fd = Some(fds.remove(0))
                    }
                    Some(Some((tag, fds))) if Handoff::from_tag(tag) == Some(Handoff::Listeners) => {
                        let listeners = crate::egress::Listeners {
                            listeners: fds
                                .into_iter()
                                .zip(plan.net.listeners.iter())
                                .map(|(fd, l)| (std::net::TcpListener::from(fd), l.role.clone()))
                                .collect(),
                            attribution: std::sync::Arc::new(move |peer| attribute(pid, peer)),
                        };
                        let started = match self.on_egress.take() {
                            Some(start) => start(listeners).map_err(SandboxError::Egress),
                            None => Err(SandboxError::NoEgressServer),
                        };
                        match started {
                            Ok(h) => egress = Some(h),
                            Err(e) => {
                                let _ = kill(init, Signal::SIGKILL);
                                return Err(e);
                            }
                        }
                    }
                    Some(Some(_)) => {}
                    Some(None) | None => nsock = None,
                }
            }
            if sig_ready {
                while let Ok(Some(info)) = sfd.read_signal() {
                    let sig = info.ssi_signo as i32;
                    if sig == libc::SIGWINCH && pty.is_some() {
                        // The kernel signals the command's foreground group when its pty is resized.
                        if let Some(p) = &pty {
                            p.resize();
                        }
                    } else if let Some(first) = asked_to_end.filter(|_| ends_session(sig)) {
                        if escalated.is_none() {
                            let first = signal_name(first);
                            eprintln!("cordon: second signal ({}): killing the session", signal_name(sig));
                            escalated = Some(format!(
                                "the session was killed (SIGKILL) on a second signal ({}) after {first}",
                                signal_name(sig)
                            ));
                            escalate_at = None;
                            let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
                            cgroups.kill_all();
                        }
                    } else if sig != libc::SIGCHLD {
                        if ends_session(sig) {
                            asked_to_end = Some(sig);
                            escalate_at = self.kill_after.map(|d| Instant::now() + d);
                        }
                        let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), sig);
                    }
                }
            }
            if init_done {
                init_status = waitpid(init, None).map_err(SandboxError::sys("waitpid"))?;
                mark_s("supervisor: init reaped");
                break;
            }
            let now = Instant::now();
            if let Some(w) = wall_deadline {
                if !wall_exceeded && now >= w {
                    wall_exceeded = true;
                    let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGTERM);
                    kill_deadline = Some(now + Duration::from_secs(3));
                }
            }
            if let Some(k) = kill_deadline {
                if now >= k {
                    let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
                    kill_deadline = None;
                }
            }
            if let (Some(at), Some(d), Some(first)) = (escalate_at, self.kill_after, asked_to_end) {
                if now >= at {
                    let (d, first) = (cordon_policy::units::fmt_duration(d), signal_name(first));
                    eprintln!("cordon: session did not end {d} after {first}: killing it");
                    escalated = Some(format!(
                        "the session was killed (SIGKILL): it did not end {d} after {first} (--kill-after)"
                    ));
                    escalate_at = None;
                    let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
                    cgroups.kill_all();
                }
            }
        }
        if let Some(p) = pty.as_mut() {
            // Output still buffered in the pty.
            let _ = nix::fcntl::fcntl(&p.master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            while master_open && crate::pty::Pty::pump(p.master.as_fd(), std::io::stdout().as_fd()) {}
            p.restore();
        }
        drop(pty);
        // Drain notifications that raced with the exit.
        if sup.notify_fd.is_some() {
            sup.handle_notification_nonblocking();
        }
        // Signals that arrived since are dropped; the ones that end a process stay blocked (see run).
        while let Ok(Some(_)) = sfd.read_signal() {}
        mask.end();

        let egress = egress.map(|h| h.finish()).unwrap_or_default();
        let mut limits_hit = cgroups.events(&plan.cgroup);
        let peaks = cgroups.peaks(&plan.cgroup);
        cgroups.kill_all();
        drop(cgroups);
        mark_s("supervisor: cgroups removed");

        // Read what the children reported.
        let mut text = String::new();
        {
            use std::io::Read;
            let mut f = std::fs::File::from(rep_r);
            let _ = f.read_to_string(&mut text);
        }
        mark_s("supervisor: report read");
        let mut ending = None;
        let mut hidden = 0;
        let mut notes = plan.process.notes.clone();
        for r in text.lines().filter_map(Report::decode) {
            match r {
                Report::SetupFailed(error) => ending = Some(Ending::SetupFailed { error }),
                Report::ExecFailed(errno) => {
                    ending = Some(Ending::ExecFailed {
                        errno,
                        program: plan.process.argv.first().map(|a| crate::plan::process::text(a)).unwrap_or_default(),
                    })
                }
                Report::Status(raw) if ending.is_none() => {
                    ending = Some(if libc::WIFSIGNALED(raw) {
                        Ending::Signaled { signal: libc::WTERMSIG(raw) }
                    } else {
                        Ending::Exited { code: libc::WEXITSTATUS(raw) }
                    });
                }
                Report::Status(_) => {}
                Report::Hidden(n) => hidden = n,
                Report::Note(n) => notes.push(n),
                Report::Mark { at_us, what } => marks.push((at_us, what)),
            }
        }
        let ending = ending.unwrap_or_else(|| match init_status {
            WaitStatus::Signaled(_, s, _) => Ending::Signaled { signal: s as i32 },
            WaitStatus::Exited(_, c) => {
                Ending::SetupFailed { error: format!("the session's init exited with {c} before the command ran") }
            }
            other => Ending::SetupFailed { error: format!("the session's init ended unexpectedly: {other:?}") },
        });
        if stopped_by_rule {
            notes.push("the session was stopped by a detection rule (see the alerts)".into());
        }
        notes.extend(escalated);
        if timing_on() {
            marks.sort();
            for (t, w) in &marks {
                eprintln!("cordon-timing: {:>8} us  {w}", t.saturating_sub(t0));
            }
        }
        if wall_exceeded {
            limits_hit.push(format!(
                "wall time limit {} reached: the session was terminated",
                plan.cgroup.wall_time.map(cordon_policy::units::fmt_duration).unwrap_or_default()
            ));
        }
        if let Ending::Signaled { signal } = ending {
            if signal == libc::SIGSYS {
                notes.push("the command was killed by seccomp (SIGSYS) for a denied system call".into());
            }
        }
        let exit_code = match &ending {
            Ending::Exited { code } => *code,
            Ending::Signaled { signal } => 128 + signal,
            Ending::SetupFailed { .. } => 125,
            Ending::ExecFailed { errno, .. } => {
                if *errno == libc::ENOENT {
                    127
                } else {
                    126
                }
            }
        };
        Ok(Outcome {
            session_id: self.session_id.clone(),
            ending,
            exit_code,
            duration_ms: start.elapsed().as_millis() as u64,
            wall_time_exceeded: wall_exceeded,
            denials: sup.denials,
            limits_hit,
            peaks,
            hidden_files: hidden,
            notes,
            egress,
        })
    }
}

struct Supervisor<'a> {
    plan: &'a SessionPlan,
    denials: Denials,
    notify_fd: Option<OwnedFd>,
    comm_cache: Vec<(u32, String)>,
    hook: Option<DenialHook>,
    stop: bool,
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
    fn handle_notification(&mut self) {
        let Some(fd) = self.notify_fd.as_ref().map(|f| f.as_raw_fd()) else { return };
        let req = match sys::notif_recv(fd) {
            Ok(r) => r,
            Err(_) => return, // the caller died meanwhile
        };
        let nr = req.data.nr;
        let rule = self.plan.seccomp.rules.iter().find(|r| crate::plan::seccomp::matches(r, nr, &req.data.args));
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
                        layer: "network".into(),
                        pid: req.pid,
                        comm,
                        what: format!("connect({target})"),
                        reason: r.reason.clone(),
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
            layer: "seccomp".into(),
            pid: req.pid,
            comm,
            what,
            reason: rule.map(|r| r.reason.clone()).unwrap_or_else(|| "denied by the seccomp filter".into()),
            count: 1,
        });
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

    fn handle_notification_nonblocking(&mut self) {
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
fn attribute(init: i32, peer: std::net::SocketAddr) -> (u32, String) {
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

fn fail(rep: RawFd, msg: &str) -> ! {
    Report::SetupFailed(msg.to_string()).send(rep);
    sys::exit_now(125)
}

/// The session's init: pid 1 of the new pid namespace. Never returns.
fn init_main(
    plan: &SessionPlan,
    prep: &Prepared,
    sync_r: OwnedFd,
    rep: RawFd,
    nsock: RawFd,
    pty: Option<&crate::pty::Pty>,
    v1_tasks: &[CString],
) -> ! {
    // Join the v1 cgroups first, as a single thread writing "0" (see Cgroups::v1_task_files).
    for t in v1_tasks {
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(t.as_bytes()));
        if let Err(e) = std::fs::write(path, "0") {
            fail(rep, &format!("cgroup: join {}: {e}", path.display()));
        }
    }
    if let Some(p) = pty {
        // The init never touches the user's terminal.
        let _ = nix::unistd::close(p.master.as_raw_fd());
    }
    let _ = sys::set_pdeathsig(libc::SIGKILL);
    mark(rep, "init: started");
    let ns = &plan.ns;
    if ns.user {
        let w = |p: &str, v: String| std::fs::write(p, v).map_err(|e| format!("user namespace: write {p}: {e}"));
        let r = w("/proc/self/setgroups", "deny".into())
            .and_then(|_| w("/proc/self/uid_map", format!("{0} {0} 1\n", ns.uid)))
            .and_then(|_| w("/proc/self/gid_map", format!("{0} {0} 1\n", ns.gid)));
        if let Err(e) = r {
            fail(rep, &e);
        }
    }
    mark(rep, "init: user namespace mapped");
    match apply::mounts::apply(ns) {
        Ok(r) => {
            Report::Hidden(r.hidden.len()).send(rep);
            if r.scan_truncated {
                Report::Note(
                    "the workspace is too large to scan fully for fs.hide patterns; deeper files were not hidden"
                        .into(),
                )
                .send(rep);
            }
        }
        Err(e) => fail(rep, &e.to_string()),
    }
    mark(rep, "init: mounts done");
    if ns.memfd_noexec {
        // Per pid namespace and inherited; it cannot be lowered from inside.
        if let Err(e) = std::fs::write("/proc/sys/vm/memfd_noexec", "2") {
            fail(rep, &format!("vm.memfd_noexec: {e}"));
        }
    }
    if let Some(h) = &ns.hostname {
        if let Err(e) = nix::unistd::sethostname(h) {
            fail(rep, &format!("uts namespace: sethostname: {e}"));
        }
    }
    if ns.net {
        if let Err(e) = sys::loopback_up() {
            fail(rep, &format!("network namespace: bring up lo: {e}"));
        }
    }
    if !plan.net.listeners.is_empty() {
        // The egress proxy's and forwarders' sockets live in the session's namespace; the supervisor
        // serves them from the host's.
        let mut socks = vec![];
        for l in &plan.net.listeners {
            match std::net::TcpListener::bind(l.addr) {
                Ok(s) => socks.push(s),
                Err(e) => fail(rep, &format!("egress: listen on {} inside the session: {e}", l.addr)),
            }
        }
        let fds: Vec<RawFd> = socks.iter().map(|s| s.as_raw_fd()).collect();
        let tag = [Handoff::Listeners.tag()];
        let iov = [IoSlice::new(&tag)];
        if let Err(e) = sendmsg::<()>(nsock, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None) {
            fail(rep, &format!("egress: passing listeners: {e}"));
        }
        drop(socks);
    }
    mark(rep, "init: hostname and loopback");
    let mut b = [0u8; 1];
    // Wait until the supervisor has put us in the session's cgroups (EOF: it died; just leave).
    match nix::unistd::read(&sync_r, &mut b) {
        Ok(1) => {}
        _ => sys::exit_now(125),
    }
    drop(sync_r);
    mark(rep, "init: released by the supervisor");
    let _ = sys::set_dumpable(false);
    if !ns.pid {
        let _ = sys::set_child_subreaper();
    }
    // This process is single-threaded (a fresh clone of a single-threaded supervisor).
    let child = match sys::fork_single_threaded() {
        Ok(ForkResult::Child) => command_main(plan, prep, rep, nsock, pty),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(rep, &format!("fork: {e}")),
    };
    // SAFETY: closing our copy of the socket; the command's process keeps its own.
    let _ = nix::unistd::close(nsock);
    let set = forwarded_set(true);
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == child => {
                        mark(rep, "init: command exited");
                        Report::Status((code & 0xff) << 8).send(rep);
                        sys::exit_now(0);
                    }
                    Ok(WaitStatus::Signaled(p, sig, core)) if p == child => {
                        Report::Status((sig as i32) | if core { 0x80 } else { 0 }).send(rep);
                        sys::exit_now(0);
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            },
            Ok(sig) => {
                let _ = kill(child, sig);
            }
            Err(_) => {}
        }
    }
}

/// The command's process: confine, then exec. Never returns.
fn command_main(plan: &SessionPlan, prep: &Prepared, rep: RawFd, nsock: RawFd, pty: Option<&crate::pty::Pty>) -> ! {
    let _ = sys::set_pdeathsig(libc::SIGKILL);
    // Restore default dispositions and an empty mask for the command.
    sys::default_sigpipe();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    if let Err(e) = nix::unistd::setsid() {
        fail(rep, &format!("setsid: {e}"));
    }
    if let Some(p) = pty {
        if let Err(e) = p.attach_child() {
            fail(rep, &e.to_string());
        }
    }
    sys::close_fds_from(3, &[rep, nsock]);
    if let Err(e) = apply::process::set_rlimits(&plan.process) {
        fail(rep, &e.to_string());
    }
    if let Err(e) = nix::unistd::chdir(&plan.process.cwd) {
        fail(rep, &format!("chdir {}: {e}", plan.process.cwd.display()));
    }
    if let Err(e) = sys::set_no_new_privs() {
        fail(rep, &format!("no_new_privs: {e}"));
    }
    if let Err(e) = sys::drop_all_capabilities() {
        fail(rep, &format!("dropping capabilities: {e}"));
    }
    mark(rep, "command: hardened (rlimits, caps)");
    if let Err(e) = apply::landlock::apply(&plan.landlock) {
        fail(rep, &e.to_string());
    }
    mark(rep, "command: landlock applied");
    if let Some(prog) = &prep.seccomp {
        match sys::seccomp_install(prog, plan.seccomp.notify) {
            Ok(Some(fd)) => {
                let fds = [fd.as_raw_fd()];
                let tag = [Handoff::Notify.tag()];
                let iov = [IoSlice::new(&tag)];
                if let Err(e) = sendmsg::<()>(nsock, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
                {
                    fail(rep, &format!("seccomp: passing the notification fd: {e}"));
                }
                drop(fd);
            }
            Ok(None) => {}
            Err(e) => fail(rep, &format!("seccomp: install filter: {e}")),
        }
    }
    let _ = nix::unistd::close(nsock);
    let _ = sys::set_dumpable(false);
    mark(rep, "command: seccomp installed, exec");
    let Some(program) = &prep.program else {
        Report::ExecFailed(libc::ENOENT).send(rep);
        sys::exit_now(127);
    };
    let e = nix::unistd::execve(program, &prep.argv, &prep.envp).err().unwrap_or(nix::errno::Errno::EINVAL);
    Report::ExecFailed(e as i32).send(rep);
    sys::exit_now(if e == nix::errno::Errno::ENOENT { 127 } else { 126 })
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
        p.cgroup = CgroupPlan {
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
        p.cgroup.v2_dir = Some(file.join("cordon").join("t1"));
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
        p.cgroup.v2_dir = Some(file.join("cordon").join("t1"));
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
