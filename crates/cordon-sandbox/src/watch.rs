//! A command running in its environment, watched to its end: [`Environment::run_order`] starts
//! the egress server and gives the init its order; [`Watch`] is the poll loop, one method per kind
//! of fd (the init's pidfd, the signalfd, the children's socket, the pty, the seccomp notification
//! fd) and one for the clocks; [`Environment::finish`] tears down and builds the [`Outcome`].

use crate::channel::{Handoff, Order, Report};
use crate::environment::Environment;
use crate::error::SandboxError;
use crate::plan::process::ProcessPlan;
use crate::pty::Pty;
use crate::report::{Denials, Ending, Outcome};
use crate::session::{attribute, ends_session, forwarded_set, signal_name, timing_on, Launch, Supervisor};
use crate::sys;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitStatus};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

impl Environment {
    pub(crate) fn run_order(
        mut self,
        order: &Order,
        process: &ProcessPlan,
        mut launch: Launch,
    ) -> Result<Outcome, SandboxError> {
        let start = Instant::now();
        let egress = if self.ready { self.serve_egress(&mut launch)? } else { None };
        if let Some(p) = self.pty.as_mut() {
            // The user's terminal goes raw and is relayed.
            p.enter_raw();
        }
        self.give(order);
        self.marks.mark("supervisor: order given");
        let sfd = SignalFd::with_flags(&forwarded_set(true), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(SandboxError::sys("signalfd"))?;
        let Environment { plan, init, pidfd, cgroups, nsock, pty, .. } = &mut self;
        let mut watch = Watch {
            init: *init,
            pidfd,
            cgroups,
            nsock,
            stdin_open: pty.is_some(),
            master_open: pty.is_some(),
            pty,
            sfd,
            sup: Supervisor {
                seccomp: &plan.seccomp,
                denials: Denials::default(),
                notify_fd: None,
                comm_cache: vec![],
                hook: launch.on_denial.take(),
                on_write: launch.on_write.take(),
                stop: false,
            },
            kill_after: launch.kill_after,
            wall_deadline: plan
                .cgroup
                .wall_time
                .filter(|_| !crate::ablate::off(crate::ablate::Ablate::Timer))
                .map(|w| start + w),
            kill_deadline: None,
            asked_to_end: None,
            escalate_at: None,
            escalated: None,
            wall_exceeded: false,
            stopped_by_rule: false,
        };
        let status = watch.run();
        let ended = watch.end();
        let init_status = status?;
        self.reaped = true;
        self.marks.mark("supervisor: init reaped");
        Ok(self.finish(ended, init_status, process, egress, launch.session_id, start))
    }

    /// Starts serving the listeners the init opened, when the plan has any.
    fn serve_egress(&mut self, launch: &mut Launch) -> Result<Option<Box<dyn crate::egress::Server>>, SandboxError> {
        if self.plan.net.listeners.is_empty() {
            return Ok(None);
        }
        let pid = self.init.as_raw();
        let listeners = crate::egress::Listeners {
            listeners: std::mem::take(&mut self.listeners)
                .into_iter()
                .zip(self.plan.net.listeners.iter())
                .map(|(fd, l)| (std::net::TcpListener::from(fd), l.role.clone()))
                .collect(),
            attribution: std::sync::Arc::new(move |peer| attribute(pid, peer)),
        };
        match launch.on_egress.take() {
            Some(start) => start(listeners).map(Some).map_err(SandboxError::Egress),
            None => Err(SandboxError::NoEgressServer),
        }
    }

    /// After the init was reaped: the cgroups' figures, the children's reports, the outcome.
    fn finish(
        mut self,
        ended: Ended,
        init_status: WaitStatus,
        process: &ProcessPlan,
        egress: Option<Box<dyn crate::egress::Server>>,
        session_id: String,
        start: Instant,
    ) -> Outcome {
        if let Some(m) = self.mask.take() {
            m.end();
        }
        let egress = egress.map(|h| h.finish()).unwrap_or_default();
        let published = self.publisher.take().map(|p| p.finish()).unwrap_or_default();
        let mut limits_hit = self.cgroups.events(&self.plan.cgroup);
        let peaks = self.cgroups.peaks(&self.plan.cgroup);
        self.cgroups.kill_all();
        let (ending, hidden, mut notes) = self.read_reports(process);
        let ending = ending.unwrap_or_else(|| match init_status {
            WaitStatus::Signaled(_, s, _) => Ending::Signaled { signal: s as i32 },
            WaitStatus::Exited(_, c) => {
                Ending::SetupFailed { error: format!("the session's init exited with {c} before the command ran") }
            }
            other => Ending::SetupFailed { error: format!("the session's init ended unexpectedly: {other:?}") },
        });
        if ended.stopped_by_rule {
            notes.push("the session was stopped by a detection rule (see the alerts)".into());
        }
        notes.extend(ended.escalated);
        if timing_on() {
            self.marks.print();
        }
        if ended.wall_exceeded {
            limits_hit.push(format!(
                "wall time limit {} reached: the session was terminated",
                self.plan.cgroup.wall_time.map(cordon_policy::units::fmt_duration).unwrap_or_default()
            ));
        }
        if ending == (Ending::Signaled { signal: libc::SIGSYS }) {
            notes.push("the command was killed by seccomp (SIGSYS) for a denied system call".into());
        }
        Outcome {
            session_id,
            exit_code: exit_code(&ending),
            ending,
            duration_ms: start.elapsed().as_millis() as u64,
            wall_time_exceeded: ended.wall_exceeded,
            denials: ended.denials,
            limits_hit,
            peaks,
            hidden_files: hidden,
            notes,
            egress,
            published,
        }
    }
}

impl Environment {
    /// What the init and the command reported: how the command ended (if they know), how many
    /// files were hidden, the process plan's notes and theirs.
    fn read_reports(&mut self, process: &ProcessPlan) -> (Option<Ending>, usize, Vec<String>) {
        let mut text = String::new();
        if let Some(r) = self.rep_r.take() {
            use std::io::Read;
            let _ = std::fs::File::from(r).read_to_string(&mut text);
        }
        self.marks.mark("supervisor: report read");
        let mut ending = None;
        let mut hidden = 0;
        let mut notes = process.notes.clone();
        for r in text.lines().filter_map(Report::decode) {
            match r {
                Report::SetupFailed(error) => ending = Some(Ending::SetupFailed { error }),
                Report::ExecFailed(errno) => {
                    let program = process.argv.first().map(|a| crate::plan::process::text(a)).unwrap_or_default();
                    ending = Some(Ending::ExecFailed { errno, program })
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
                Report::Mark { at_us, what } => self.marks.list.push((at_us, what)),
            }
        }
        (ending, hidden, notes)
    }
}

fn exit_code(ending: &Ending) -> i32 {
    match ending {
        Ending::Exited { code } => *code,
        Ending::Signaled { signal } => 128 + signal,
        Ending::SetupFailed { .. } => 125,
        Ending::ExecFailed { errno, .. } if *errno == libc::ENOENT => 127,
        Ending::ExecFailed { .. } => 126,
    }
}

/// What the loop leaves for the outcome.
pub(crate) struct Ended {
    denials: Denials,
    escalated: Option<String>,
    wall_exceeded: bool,
    stopped_by_rule: bool,
}

/// Which of the loop's fds are ready.
#[derive(Default)]
struct Ready {
    init_done: bool,
    signals: bool,
    sock: bool,
    stdin: bool,
    master: bool,
    notify: bool,
    notify_gone: bool,
}

/// Polls `fd` too, if there is one: its index in `fds`.
fn slot<'f>(fds: &mut Vec<PollFd<'f>>, fd: Option<std::os::fd::BorrowedFd<'f>>) -> Option<usize> {
    fd.map(|f| {
        fds.push(PollFd::new(f, PollFlags::POLLIN));
        fds.len() - 1
    })
}

pub(crate) struct Watch<'a> {
    init: nix::unistd::Pid,
    pidfd: &'a OwnedFd,
    cgroups: &'a crate::apply::cgroup::Cgroups,
    nsock: &'a mut Option<OwnedFd>,
    pty: &'a mut Option<Pty>,
    stdin_open: bool,
    master_open: bool,
    sfd: SignalFd,
    sup: Supervisor<'a>,
    kill_after: Option<Duration>,
    wall_deadline: Option<Instant>,
    kill_deadline: Option<Instant>,
    /// The first SIGINT/SIGTERM passed on, and when --kill-after kills the session.
    asked_to_end: Option<i32>,
    escalate_at: Option<Instant>,
    escalated: Option<String>,
    wall_exceeded: bool,
    stopped_by_rule: bool,
}

impl Watch<'_> {
    /// Until the init ends; its wait status.
    fn run(&mut self) -> Result<WaitStatus, SandboxError> {
        loop {
            let r = self.poll()?;
            self.on_pty(&r);
            self.on_notify(&r);
            if r.sock {
                self.on_handoff();
            }
            if r.signals {
                self.on_signals();
            }
            if r.init_done {
                return waitpid(self.init, None).map_err(SandboxError::sys("waitpid"));
            }
            self.on_clocks();
        }
    }

    fn kill_session(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
        self.cgroups.kill_all();
    }

    fn timeout(&self) -> PollTimeout {
        let now = Instant::now();
        let deadlines = [self.wall_deadline.filter(|_| !self.wall_exceeded), self.kill_deadline, self.escalate_at];
        match deadlines.into_iter().flatten().min() {
            Some(t) if t <= now => PollTimeout::ZERO,
            Some(t) => PollTimeout::try_from((t - now).as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        }
    }

    fn poll(&mut self) -> Result<Ready, SandboxError> {
        let timeout = self.timeout();
        let stdin = std::io::stdin();
        loop {
            let mut fds = vec![
                PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
            ];
            let sock = slot(&mut fds, self.nsock.as_ref().map(|s| s.as_fd()));
            let input = slot(&mut fds, self.stdin_open.then(|| stdin.as_fd()));
            let master = slot(&mut fds, self.pty.as_ref().filter(|_| self.master_open).map(|p| p.master_fd()));
            let notify = slot(&mut fds, self.sup.notify_fd.as_ref().map(|n| n.as_fd()));
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(SandboxError::Sys { call: "poll", source: e }),
            }
            let rev =
                |i: Option<usize>| i.and_then(|i| fds.get(i)).and_then(|f| f.revents()).unwrap_or(PollFlags::empty());
            // Only POLLIN means a request is waiting. POLLHUP alone means the filter has no users
            // left (the session is over); NOTIF_RECV would then block forever on Linux < 6.2.
            let n = rev(notify);
            return Ok(Ready {
                init_done: !rev(Some(0)).is_empty(),
                signals: !rev(Some(1)).is_empty(),
                sock: !rev(sock).is_empty(),
                stdin: !rev(input).is_empty(),
                master: !rev(master).is_empty(),
                notify: n.contains(PollFlags::POLLIN),
                notify_gone: !n.contains(PollFlags::POLLIN)
                    && n.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL),
            });
        }
    }

    fn on_pty(&mut self, r: &Ready) {
        let Some(p) = self.pty.as_ref() else { return };
        if r.stdin && !Pty::pump(std::io::stdin().as_fd(), p.master.as_fd()) {
            self.stdin_open = false;
        }
        if r.master && !Pty::pump(p.master.as_fd(), std::io::stdout().as_fd()) {
            self.master_open = false;
        }
    }

    fn on_notify(&mut self, r: &Ready) {
        if r.notify_gone {
            self.sup.notify_fd = None;
        }
        if r.notify {
            self.sup.handle_notification();
            if self.sup.stop {
                // A detection rule asked for the session to end.
                let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
                self.sup.stop = false;
                self.stopped_by_rule = true;
            }
        }
    }

    /// The command's seccomp notification fd (the listeners came while the environment was made).
    fn on_handoff(&mut self) {
        match self.nsock.as_ref().map(|s| sys::recv_fds(s.as_raw_fd())) {
            Some(Some((tag, mut fds))) if Handoff::from_tag(tag) == Some(Handoff::Notify) && !fds.is_empty() => {
                let fd = fds.remove(0);
                let _ = sys::notif_sync_wakeup(fd.as_raw_fd());
                self.sup.notify_fd = Some(fd)
            }
            Some(Some(_)) => {}
            Some(None) | None => *self.nsock = None,
        }
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.sfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGWINCH && self.pty.is_some() {
                // The kernel signals the command's foreground group when its pty is resized.
                if let Some(p) = self.pty.as_ref() {
                    p.resize();
                }
            } else if let Some(first) = self.asked_to_end.filter(|_| ends_session(sig)) {
                if self.escalated.is_none() {
                    let first = signal_name(first);
                    eprintln!("cordon: second signal ({}): killing the session", signal_name(sig));
                    self.escalated = Some(format!(
                        "the session was killed (SIGKILL) on a second signal ({}) after {first}",
                        signal_name(sig)
                    ));
                    self.escalate_at = None;
                    self.kill_session();
                }
            } else if sig != libc::SIGCHLD {
                if ends_session(sig) {
                    self.asked_to_end = Some(sig);
                    self.escalate_at = self.kill_after.map(|d| Instant::now() + d);
                }
                let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), sig);
            }
        }
    }

    /// The wall-time limit (SIGTERM, SIGKILL 3 s later) and --kill-after.
    fn on_clocks(&mut self) {
        let now = Instant::now();
        if let Some(w) = self.wall_deadline {
            if !self.wall_exceeded && now >= w {
                self.wall_exceeded = true;
                let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGTERM);
                self.kill_deadline = Some(now + Duration::from_secs(3));
            }
        }
        if self.kill_deadline.is_some_and(|k| now >= k) {
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
            self.kill_deadline = None;
        }
        if let (Some(at), Some(d), Some(first)) = (self.escalate_at, self.kill_after, self.asked_to_end) {
            if now >= at {
                let (d, first) = (cordon_policy::units::fmt_duration(d), signal_name(first));
                eprintln!("cordon: session did not end {d} after {first}: killing it");
                self.escalated =
                    Some(format!("the session was killed (SIGKILL): it did not end {d} after {first} (--kill-after)"));
                self.escalate_at = None;
                self.kill_session();
            }
        }
    }

    /// Output still in the pty, notifications that raced with the exit, signals since (dropped).
    fn end(mut self) -> Ended {
        if let Some(p) = self.pty.as_mut() {
            let _ = nix::fcntl::fcntl(&p.master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            while self.master_open && Pty::pump(p.master.as_fd(), std::io::stdout().as_fd()) {}
            p.restore();
        }
        *self.pty = None;
        if self.sup.notify_fd.is_some() {
            self.sup.handle_notification_nonblocking();
        }
        while let Ok(Some(_)) = self.sfd.read_signal() {}
        Ended {
            denials: self.sup.denials,
            escalated: self.escalated,
            wall_exceeded: self.wall_exceeded,
            stopped_by_rule: self.stopped_by_rule,
        }
    }
}
