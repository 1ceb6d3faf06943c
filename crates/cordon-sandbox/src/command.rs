//! The command's side of a session: its process plan turned into an [`Order`] in the supervisor
//! (refused there if it cannot be passed to execve), and the command's process, forked by the
//! init once the order arrived, which confines itself on top of its environment and execs.

use crate::ablate::{off, Ablate};
use crate::apply;
use crate::channel::{Handoff, Order, OrderLandlock, Report};
use crate::error::SandboxError;
use crate::plan::landlock::{FsRule, LandlockPlan};
use crate::plan::process::ProcessPlan;
use crate::plan::EnvironmentPlan;
use crate::session::{fail, mark};
use crate::sys;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::ffi::{CString, OsStr, OsString};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// The bytes of an OS string for execve, whatever their encoding.
fn cstr(s: &OsStr) -> Result<CString, SandboxError> {
    CString::new(s.as_bytes()).map_err(|_| SandboxError::NulByte(s.to_os_string()))
}

/// The order for `process` in an environment planned as `env`. The process's Landlock ruleset is
/// always stacked (its own domain: the command cannot signal its init, as before the split); its
/// seccomp filter only when it differs from the environment's, which every command gets anyway.
pub fn order(process: &ProcessPlan, env: &EnvironmentPlan) -> Result<Order, SandboxError> {
    let bytes = |s: &OsStr| cstr(s).map(|c| c.into_bytes());
    let argv = process.argv.iter().map(|a| bytes(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = process
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            bytes(&kv)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let program = process.program.as_deref().map(|p| bytes(p.as_os_str())).transpose()?;
    let l = &process.landlock;
    let landlock = l.enabled().then(|| OrderLandlock {
        abi: l.abi,
        handled_fs: l.handled_fs,
        handled_net: l.handled_net,
        scopes: l.scopes,
        fs_rules: l.fs_rules.iter().map(|r| (r.path.as_os_str().as_bytes().to_vec(), r.rights)).collect(),
        net_rules: l.net_rules.clone(),
    });
    let seccomp = if process.seccomp.enabled && process.seccomp != env.seccomp {
        let own = crate::plan::seccomp::SeccompPlan { notify: false, ..process.seccomp.clone() };
        Some(apply::seccomp::build(&own)?.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect())
    } else {
        None
    };
    Ok(Order {
        argv,
        env: envp,
        program,
        cwd: process.cwd.as_os_str().as_bytes().to_vec(),
        rlimits: process.rlimits.clone(),
        landlock,
        seccomp,
    })
}

/// An order's parts as the command's process uses them.
struct Exec {
    argv: Vec<CString>,
    envp: Vec<CString>,
    program: Option<CString>,
    cwd: PathBuf,
    landlock: Option<LandlockPlan>,
    seccomp: Option<Vec<libc::sock_filter>>,
}

fn exec_parts(o: &Order) -> Option<Exec> {
    let c = |b: &Vec<u8>| CString::new(b.clone()).ok();
    Some(Exec {
        argv: o.argv.iter().map(c).collect::<Option<Vec<_>>>()?,
        envp: o.env.iter().map(c).collect::<Option<Vec<_>>>()?,
        program: match &o.program {
            Some(p) => Some(c(p)?),
            None => None,
        },
        cwd: PathBuf::from(OsString::from_vec(o.cwd.clone())),
        landlock: o.landlock.as_ref().map(|l| LandlockPlan {
            abi: l.abi,
            handled_fs: l.handled_fs,
            handled_net: l.handled_net,
            scopes: l.scopes,
            fs_rules: l
                .fs_rules
                .iter()
                .map(|(p, rights)| FsRule {
                    path: PathBuf::from(OsString::from_vec(p.clone())),
                    rights: *rights,
                    why: String::new(),
                })
                .collect(),
            net_rules: l.net_rules.clone(),
        }),
        seccomp: o
            .seccomp
            .as_ref()
            .map(|p| p.iter().map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k }).collect()),
    })
}

/// Installs a seccomp filter; with `listener`, passes its notification fd to the supervisor.
fn install(rep: RawFd, nsock: RawFd, prog: &[libc::sock_filter], listener: bool) {
    match sys::seccomp_install(prog, listener) {
        Ok(Some(fd)) => {
            let fds = [fd.as_raw_fd()];
            let tag = [Handoff::Notify.tag()];
            let iov = [IoSlice::new(&tag)];
            if let Err(e) = sendmsg::<()>(nsock, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None) {
                fail(rep, &format!("seccomp: passing the notification fd: {e}"));
            }
        }
        Ok(None) => {}
        Err(e) => fail(rep, &format!("seccomp: install filter: {e}")),
    }
}

/// The command's process: confine (the environment's rlimits and filter from the init's own memory,
/// then the order's), then exec. Never returns.
pub(crate) fn command_main(
    env: &EnvironmentPlan,
    env_filter: Option<&[libc::sock_filter]>,
    order: &Order,
    rep: RawFd,
    nsock: RawFd,
    pty: Option<&crate::pty::Pty>,
) -> ! {
    let _ = sys::set_pdeathsig(libc::SIGKILL);
    // Restore default dispositions and an empty mask for the command.
    sys::default_sigpipe();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let Some(x) = exec_parts(order) else { fail(rep, "the process plan has a NUL byte in a string") };
    if let Err(e) = nix::unistd::setsid() {
        fail(rep, &format!("setsid: {e}"));
    }
    if let Some(p) = pty {
        if let Err(e) = p.attach_child() {
            fail(rep, &e.to_string());
        }
    }
    sys::close_fds_from(3, &[rep, nsock]);
    // The environment's first: the order's can then only lower them (no CAP_SYS_RESOURCE left).
    for limits in [&env.rlimits, &order.rlimits] {
        if let Err(e) = apply::process::set_rlimits(limits) {
            fail(rep, &e.to_string());
        }
    }
    if let Err(e) = nix::unistd::chdir(&x.cwd) {
        fail(rep, &format!("chdir {}: {e}", x.cwd.display()));
    }
    no_privileges(rep);
    mark(rep, "command: hardened (rlimits, caps)");
    if let Some(l) = &x.landlock {
        if let Err(e) = apply::landlock::apply(l) {
            fail(rep, &e.to_string());
        }
    }
    mark(rep, "command: landlock applied");
    if let Some(prog) = env_filter {
        install(rep, nsock, prog, env.seccomp.notify);
    }
    if let Some(prog) = &x.seccomp {
        install(rep, nsock, prog, false);
    }
    let _ = nix::unistd::close(nsock);
    if !off(Ablate::NoDump) {
        let _ = sys::set_dumpable(false);
    }
    mark(rep, "command: seccomp installed, exec");
    let Some(program) = &x.program else {
        Report::ExecFailed(libc::ENOENT).send(rep);
        sys::exit_now(127);
    };
    let e = nix::unistd::execve(program, &x.argv, &x.envp).err().unwrap_or(nix::errno::Errno::EINVAL);
    Report::ExecFailed(e as i32).send(rep);
    sys::exit_now(if e == nix::errno::Errno::ENOENT { 127 } else { 126 })
}

/// no_new_privs and no capability left, or the report of why not and exit: the init bounds itself
/// with it before it waits, and the command again after its fork (the order cannot undo it).
pub(crate) fn no_privileges(rep: RawFd) {
    if let Err(e) = sys::set_no_new_privs() {
        fail(rep, &format!("no_new_privs: {e}"));
    }
    if !off(Ablate::Caps) {
        if let Err(e) = sys::drop_all_capabilities() {
            fail(rep, &format!("dropping capabilities: {e}"));
        }
    }
}
