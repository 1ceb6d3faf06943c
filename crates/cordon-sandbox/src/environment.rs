//! A ready environment: the session's init cloned into its namespaces and cgroups, its mounts,
//! hostname and network done, bounded (no_new_privs, no capabilities, the environment's Landlock
//! ruleset), and waiting for a command. [`Environment::run`] gives it one process plan, later; the
//! init forks the command only then.
//!
//! ```text
//! create: supervisor ──clone(NEWUSER?|NEWPID|NEWNS|...)──> init: mounts, lo, listeners, bounds ──> "ready", waits
//! run:    supervisor ──order (process plan, JSON)──> init ──fork──> command: rlimits, caps, Landlock, seccomp, execve
//! ```
//!
//! One command per environment: `run` consumes it. Dropping an environment that never ran kills
//! its init and removes its cgroups. Like the session, an environment needs a single-threaded
//! caller (clone), and it keeps the forwarded signals blocked in the calling thread while it lives.

use crate::ablate::{off, Ablate};
use crate::apply;
use crate::apply::cgroup::Cgroups;
use crate::channel::{Handoff, Order};
use crate::error::SandboxError;
use crate::plan::process::ProcessPlan;
use crate::plan::EnvironmentPlan;
use crate::report::Outcome;
use crate::session::{fail, forwarded_set, mark, CgroupHook, Marks, MaskGuard};
use crate::sys;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::ffi::CString;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// How an environment is made, besides its plan.
#[derive(Default)]
pub struct EnvOptions {
    /// Give the command its own pseudo-terminal when stdin is a terminal.
    pub interactive: bool,
    /// Called once the environment's cgroups exist and before anything runs in them, with the v2
    /// directory (None when the host gave it none). The eBPF sensor attaches here, so it sees the
    /// environment from its first instruction; an error stops it before it starts.
    pub on_cgroup: Option<CgroupHook>,
}

/// An environment whose init is set up and waits for its command (see the module's text).
pub struct Environment {
    pub(crate) plan: EnvironmentPlan,
    /// The environment's seccomp program, built before the clone (the init has its copy).
    pub(crate) init: Pid,
    pub(crate) pidfd: OwnedFd,
    pub(crate) cgroups: Cgroups,
    /// The init reads its order here; closed unread, it leaves.
    pub(crate) order_w: Option<OwnedFd>,
    /// Reports of the init and the command, read at the end.
    pub(crate) rep_r: Option<OwnedFd>,
    /// Fds from the children (the notification fd).
    pub(crate) nsock: Option<OwnedFd>,
    pub(crate) pty: Option<crate::pty::Pty>,
    /// The egress listeners the init opened, in the order of the plan's.
    pub(crate) listeners: Vec<OwnedFd>,
    /// Serves `--publish` once the environment is ready (see [`crate::publish`]).
    pub(crate) publisher: Option<crate::publish::Publisher>,
    /// False: the init ended during setup; its report says why, and `run` returns that outcome.
    pub(crate) ready: bool,
    /// Set once the init is reaped (nothing left to kill on drop).
    pub(crate) reaped: bool,
    pub(crate) mask: Option<MaskGuard>,
    pub(crate) marks: Marks,
    /// What keeps absent protected paths from being made; released (after the init is gone) when
    /// the environment is dropped.
    pub(crate) _placeholders: apply::placeholders::Placeholders,
}

impl Environment {
    /// Sets up an environment and waits until it is ready (or its init failed: see [`Self::is_ready`]).
    pub fn create(plan: &EnvironmentPlan, opts: EnvOptions) -> Result<Environment, SandboxError> {
        crate::ablate::announce()?;
        let mut marks = Marks::new();
        let filter = if plan.seccomp.enabled { Some(apply::seccomp::build(&plan.seccomp)?) } else { None };
        marks.mark("supervisor: seccomp program built");
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SandboxError::sys("pipe"));
        let ((order_r, order_w), (rep_r, rep_w)) = (pipe()?, pipe()?);
        let (nsock_s, nsock_c) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(SandboxError::sys("socketpair"))?;
        // --publish: the host's ports first (one in use stops everything here), and the pair on
        // which the supervisor asks the init for connections into the session.
        let published = crate::publish::bind(&plan.net.publish)?;
        let (psock_s, psock_c) = if published.is_empty() {
            (None, None)
        } else {
            let (s, c) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
                .map_err(SandboxError::sys("socketpair"))?;
            (Some(s), Some(c))
        };
        // Blocked before the clone, so none is lost in between; the init inherits the mask (it
        // waits for them) and the command's process clears it before exec. Restored on any error.
        let mask = MaskGuard::block(&forwarded_set(true))?;
        let mut pty = if opts.interactive { crate::pty::Pty::open_if_interactive()? } else { None };
        // Before anything else of the host changes: made, or refused.
        let placeholders = apply::placeholders::Placeholders::hold(&plan.ns)?;
        apply::cgroup::collect_stale(&plan.cgroup);
        let cgroups = apply::cgroup::create(&plan.cgroup)?;
        marks.mark("supervisor: cgroups created");
        if let Some(h) = opts.on_cgroup {
            h(cgroups.v2.as_deref()).map_err(SandboxError::CgroupHook)?;
            marks.mark("supervisor: cgroup hook (sensor) done");
        }
        let v2_fd = cgroups.v2_dir_fd();
        let (pid, placed_v2) = clone_init(crate::ablate::clone_flags(plan.ns.clone_flags()), v2_fd.as_ref())?;
        if pid == 0 {
            // The host's listeners stay with the supervisor.
            drop((order_w, rep_r, nsock_s, psock_s, published));
            let child = Child { order: order_r, rep: rep_w.as_raw_fd(), nsock: nsock_c.as_raw_fd(), publish: psock_c };
            init_main(plan, filter.as_deref(), child, pty.as_ref(), &cgroups.v1_task_files());
        }
        drop((order_r, rep_w, nsock_c, psock_c, v2_fd));
        let init = Pid::from_raw(pid);
        // Not dumpable: the session cannot ptrace us or read our memory through /proc even if it
        // reached our pid. (Set after the clone: the init must still write its own uid_map.)
        if !off(Ablate::NoDump) {
            let _ = sys::set_dumpable(false);
        }
        if let Some(p) = pty.as_mut() {
            // Only the session holds the slave now.
            p.close_slave();
        }
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = kill(init, Signal::SIGKILL);
                let _ = waitpid(init, None);
                return Err(SandboxError::PidfdOpen(e));
            }
        };
        marks.mark("supervisor: init cloned");
        let mut env = Environment {
            plan: plan.clone(),
            init,
            pidfd,
            cgroups,
            order_w: Some(order_w),
            rep_r: Some(rep_r),
            nsock: Some(nsock_s),
            pty,
            listeners: vec![],
            publisher: None,
            ready: false,
            reaped: false,
            mask: Some(mask),
            marks,
            _placeholders: placeholders,
        };
        // The init joins the v1 cgroups itself; the v2 one was joined at clone time, or is joined
        // here, before the init can fork anything.
        if !placed_v2 {
            env.cgroups.add_v2(pid)?;
        }
        env.marks.mark("supervisor: init moved into cgroups");
        env.wait_ready()?;
        if env.ready {
            if let Some(s) = psock_s {
                env.publisher = Some(crate::publish::Publisher::start(published, s));
            }
        }
        env.marks.mark("supervisor: environment ready");
        Ok(env)
    }

    /// Whether the init is set up and waiting; false if it ended during setup (`run` then returns
    /// the outcome saying why, without running anything).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The init's pid (in the caller's pid namespace).
    pub fn init_pid(&self) -> i32 {
        self.init.as_raw()
    }

    /// The cgroup v2 directory holding the environment, if it has one.
    pub fn cgroup_dir(&self) -> Option<&std::path::Path> {
        self.cgroups.v2.as_deref()
    }

    /// Collects the init's handoffs until it says it is ready, or ends.
    fn wait_ready(&mut self) -> Result<(), SandboxError> {
        while let Some(sock) = &self.nsock {
            let mut fds =
                [PollFd::new(sock.as_fd(), PollFlags::POLLIN), PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(SandboxError::Sys { call: "poll", source: e }),
            }
            let sock_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            let init_gone = fds[1].revents().is_some_and(|r| !r.is_empty());
            if sock_ready {
                match sys::recv_fds(sock.as_raw_fd()) {
                    Some((tag, fds)) if Handoff::from_tag(tag) == Some(Handoff::Listeners) => self.listeners = fds,
                    Some((tag, _)) if Handoff::from_tag(tag) == Some(Handoff::Ready) => {
                        self.ready = true;
                        return Ok(());
                    }
                    Some(_) => {}
                    None => return Ok(()),
                }
            } else if init_gone {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Runs `process` in this environment to its end (see [`crate::session::Launch`]). A process
    /// plan that cannot be passed to the init (a NUL byte, a filter too large) is refused before
    /// anything runs; the environment is then torn down.
    pub fn run(self, process: &ProcessPlan, launch: crate::session::Launch) -> Result<Outcome, SandboxError> {
        let order = crate::command::order(process, &self.plan)?;
        self.run_order(&order, process, launch)
    }

    /// Hands the init its order: it forks the command now.
    pub(crate) fn give(&mut self, order: &Order) {
        if let Some(w) = self.order_w.take() {
            sys::write_fd(w.as_raw_fd(), &order.encode());
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
            let _ = waitpid(self.init, None);
        }
        self.cgroups.kill_all();
        if let Some(p) = self.publisher.take() {
            p.finish();
        }
        if let Some(p) = self.pty.as_mut() {
            p.restore();
        }
    }
}

/// Clones the init, straight into the v2 cgroup when the kernel can (clone3, Linux 5.7+).
/// Returns its pid (0 in the init) and whether it was placed.
fn clone_init(flags: u64, v2: Option<&std::fs::File>) -> Result<(i32, bool), SandboxError> {
    let cloned = match v2 {
        Some(fd) => match sys::clone_into_cgroup(flags, fd.as_raw_fd()) {
            Ok(p) => return Ok((p, true)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::E2BIG)) => {
                sys::clone_process(flags)
            }
            Err(e) => Err(e),
        },
        None => sys::clone_process(flags),
    };
    cloned.map(|p| (p, false)).map_err(|source| SandboxError::Namespaces { source })
}

/// The init's ends of the channels.
struct Child {
    order: OwnedFd,
    rep: RawFd,
    nsock: RawFd,
    /// `--publish`: where the supervisor asks for connections into the session.
    publish: Option<OwnedFd>,
}

/// The session's init: pid 1 of the new pid namespace. Never returns.
fn init_main(
    plan: &EnvironmentPlan,
    filter: Option<&[libc::sock_filter]>,
    ch: Child,
    pty: Option<&crate::pty::Pty>,
    v1_tasks: &[CString],
) -> ! {
    let rep = ch.rep;
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
    let last = set_up(plan, rep, ch.nsock, pty.is_some());
    bound(plan, rep);
    // The host's tree detached and the root sealed (overlapped with the steps above) before the
    // supervisor hears "ready", and so before any command can be ordered.
    if let Err(e) = last.wait() {
        fail(rep, &e.to_string());
    }
    mark(rep, "init: host tree detached, root sealed");
    let tag = [Handoff::Ready.tag()];
    if sendmsg::<()>(ch.nsock, &[IoSlice::new(&tag)], &[], MsgFlags::empty(), None).is_err() {
        sys::exit_now(125);
    }
    // Wait for the command (EOF without one: the environment was dropped, or the supervisor died).
    let mut order = vec![];
    {
        use std::io::Read;
        let _ = std::fs::File::from(ch.order).read_to_end(&mut order);
    }
    if order.is_empty() {
        sys::exit_now(125);
    }
    let order = match Order::decode(&order) {
        Ok(o) => o,
        Err(e) => fail(rep, &e),
    };
    mark(rep, "init: released by the supervisor");
    if !plan.ns.pid {
        let _ = sys::set_child_subreaper();
    }
    // This process is single-threaded (a fresh clone of a single-threaded supervisor).
    let child = match sys::fork_single_threaded() {
        Ok(ForkResult::Child) => crate::command::command_main(plan, filter, &order, rep, ch.nsock, pty),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(rep, &format!("fork: {e}")),
    };
    let _ = nix::unistd::close(ch.nsock);
    if let Some(s) = ch.publish {
        // The command is forked: a thread of the init may now serve the supervisor's requests.
        let ports = plan.net.publish.iter().map(|p| p.session_port).collect();
        std::thread::spawn(move || crate::publish::serve_connects(s, ports));
    }
    reap(child, rep)
}

/// The user namespace's maps, the mounts, the hostname, loopback and the egress listeners.
fn set_up(plan: &EnvironmentPlan, rep: RawFd, nsock: RawFd, pty: bool) -> apply::mounts::Finishing {
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
    // Without the mount namespace every mount is left out too: it would be the host's.
    let mounted = match off(Ablate::MountNs) {
        true => Ok((Default::default(), apply::mounts::Finishing::done())),
        false => apply::mounts::apply_with(ns, pty, &mut |w| mark(rep, w)),
    };
    let last = match mounted {
        Ok((r, last)) => {
            crate::channel::Report::Hidden(r.hidden.len()).send(rep);
            if r.scan_truncated {
                crate::channel::Report::Note(
                    "the workspace is too large to scan fully for fs.hide patterns; deeper files were not hidden"
                        .into(),
                )
                .send(rep);
            }
            last
        }
        Err(e) => fail(rep, &e.to_string()),
    };
    mark(rep, "init: mounts done");
    // Per pid namespace: without the session's own it would be the host's.
    if ns.memfd_noexec && !off(Ablate::MemfdSysctl) && !off(Ablate::PidNs) {
        // Per pid namespace and inherited; it cannot be lowered from inside.
        if let Err(e) = std::fs::write("/proc/sys/vm/memfd_noexec", "2") {
            fail(rep, &format!("vm.memfd_noexec: {e}"));
        }
    }
    // Without the UTS namespace the name would be the host's.
    if let Some(h) = ns.hostname.as_ref().filter(|_| !off(Ablate::UtsNs)) {
        if let Err(e) = nix::unistd::sethostname(h) {
            fail(rep, &format!("uts namespace: sethostname: {e}"));
        }
    }
    if ns.net && !off(Ablate::NetNs) {
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
    }
    mark(rep, "init: hostname and loopback");
    last
}

/// The environment's bounds, on the init itself before it waits, so the kernel holds every command
/// forked later to them whatever its own plan says: no_new_privs, no capabilities, the
/// environment's Landlock ruleset (a later ruleset only narrows it).
fn bound(plan: &EnvironmentPlan, rep: RawFd) {
    if !off(Ablate::NoDump) {
        let _ = sys::set_dumpable(false);
    }
    crate::command::no_privileges(rep);
    if let Err(e) = apply::landlock::apply(&plan.landlock) {
        fail(rep, &e.to_string());
    }
    mark(rep, "init: bounded (no_new_privs, capabilities, landlock)");
}

/// Pid 1's work once the command runs: pass signals on, reap, report the command's status.
fn reap(child: Pid, rep: RawFd) -> ! {
    let set = forwarded_set(true);
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == child => {
                        mark(rep, "init: command exited");
                        crate::channel::Report::Status((code & 0xff) << 8).send(rep);
                        sys::exit_now(0);
                    }
                    Ok(WaitStatus::Signaled(p, sig, core)) if p == child => {
                        crate::channel::Report::Status((sig as i32) | if core { 0x80 } else { 0 }).send(rep);
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
