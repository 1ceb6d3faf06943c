//! Why a session could not be started or supervised: [`SandboxError`], returned by
//! [`Session::run`](crate::session::Session::run). Each layer has its own error next to its code
//! (`CgroupError`, `SeccompError`, `PtyError`, `MountError`, `LandlockError`, `RlimitError`). Those
//! the supervisor meets are wrapped here, message and cause unchanged; those the session's own
//! processes meet after the clone (mounts, Landlock, rlimits, the pty's attach) are sent back as
//! text and end the session as [`Ending::SetupFailed`](crate::report::Ending::SetupFailed). Every
//! variant with an underlying error keeps it as its `source()`.

use crate::apply::cgroup::CgroupError;
use crate::apply::seccomp::SeccompError;
use crate::pty::PtyError;
use std::ffi::OsString;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// An argument or environment entry cannot be passed to execve.
    #[error("argument contains a NUL byte: {0:?}")]
    NulByte(OsString),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Pty(#[from] PtyError),
    /// A system call of the supervisor's own (pipe, socketpair, sigprocmask, signalfd, poll, waitpid).
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    /// clone(2) of the session's init into its namespaces.
    #[error("could not create the session's namespaces: {source}{}", userns_hint(source))]
    Namespaces {
        #[source]
        source: std::io::Error,
    },
    #[error("pidfd_open: {0}")]
    PidfdOpen(#[source] std::io::Error),
    /// The `on_cgroup` hook (the sensor) refused; its message as it gave it.
    #[error("{0}")]
    CgroupHook(String),
    /// The `on_egress` hook could not serve the session's egress listeners.
    #[error("egress proxy: {0}")]
    Egress(String),
    #[error("egress proxy: the plan has egress listeners but nothing serves them")]
    NoEgressServer,
    /// A `--publish` host address could not be listened on (in use, not this host's, a privileged port).
    #[error("--publish {publish}: cannot listen on the host: {source}{}", publish_hint(source))]
    Publish {
        publish: String,
        #[source]
        source: std::io::Error,
    },
    /// The placeholder that keeps an absent protected path from being made (see
    /// [`crate::apply::placeholders`]) could not be made: the session must not start without it.
    #[error("cannot keep {} from being created in the session ({why}): its placeholder (a socket inode, or for .git/commondir and .git/config.worktree a file, that cordon makes there for the session and removes after) cannot be made: {source}\n  hint: let the invoking user write {}, or, if the session may write the path, lift its protection (--allow-write for one run, [fs] unprotect in a policy)", path.display(), dir.display())]
    Placeholder {
        path: std::path::PathBuf,
        dir: std::path::PathBuf,
        why: String,
        #[source]
        source: std::io::Error,
    },
    /// A test build's layer ablation was asked for something it does not know (see [`crate::ablate`]).
    #[cfg(feature = "ablation")]
    #[error("{0}")]
    Ablation(String),
}

impl SandboxError {
    /// `call` failed with `source` (for `map_err`).
    pub(crate) fn sys(call: &'static str) -> impl FnOnce(nix::errno::Errno) -> SandboxError {
        move |source| SandboxError::Sys { call, source }
    }
}

fn publish_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "\n  hint: something on the host already listens there; pick another HOST_PORT",
        Some(libc::EACCES) => "\n  hint: ports below 1024 need root; pick a HOST_PORT of 1024 or more",
        Some(libc::EADDRNOTAVAIL) => "\n  hint: HOST_IP must be an address of this host (127.0.0.1 by default)",
        _ => "",
    }
}

/// EPERM or ENOSPC from clone: user namespaces are off or exhausted on most hosts.
fn userns_hint(e: &std::io::Error) -> &'static str {
    if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSPC)) {
        " (are user namespaces allowed? see `cordon doctor`)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{errno_source, io_source};
    use nix::errno::Errno;
    use std::error::Error as _;

    #[test]
    fn a_layer_error_keeps_its_message_and_its_cause_through_the_session_error() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let layer = CgroupError::Create { path: "/sys/fs/cgroup/cordon".into(), source: io };
        let text = layer.to_string();
        let e = SandboxError::from(layer);
        assert_eq!(e.to_string(), text);
        assert_eq!(io_source(&e).raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn a_failed_clone_says_what_failed_keeps_the_io_error_and_hints_at_user_namespaces() {
        let e = SandboxError::Namespaces { source: std::io::Error::from_raw_os_error(libc::EPERM) };
        let io = std::io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(
            e.to_string(),
            format!(
                "could not create the session's namespaces: {io} (are user namespaces allowed? see `cordon doctor`)"
            )
        );
        assert_eq!(io_source(&e).raw_os_error(), Some(libc::EPERM));
        let e = SandboxError::Namespaces { source: std::io::Error::from_raw_os_error(libc::ENOMEM) };
        assert!(!e.to_string().contains("hint") && !e.to_string().contains("doctor"), "{e}");
    }

    #[test]
    fn a_supervisor_syscall_error_names_the_call_and_keeps_the_errno() {
        let e = SandboxError::sys("pipe")(Errno::EMFILE);
        assert_eq!(e.to_string(), format!("pipe: {}", Errno::EMFILE));
        assert_eq!(errno_source(&e), Errno::EMFILE);
        let e = SandboxError::PidfdOpen(std::io::Error::from_raw_os_error(libc::ESRCH));
        assert_eq!(io_source(&e).raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn hook_errors_read_as_the_hook_wrote_them() {
        assert_eq!(SandboxError::CgroupHook("--monitor: no cgroup".into()).to_string(), "--monitor: no cgroup");
        assert_eq!(SandboxError::Egress("bind: in use".into()).to_string(), "egress proxy: bind: in use");
        assert_eq!(
            SandboxError::NoEgressServer.to_string(),
            "egress proxy: the plan has egress listeners but nothing serves them"
        );
        assert!(SandboxError::NoEgressServer.source().is_none());
    }
}
