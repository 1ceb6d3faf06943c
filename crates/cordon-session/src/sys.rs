//! The engine's raw calls: placing a supervisor's pipes on fixed descriptors in the child.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::Command;

/// In the child, before exec: `dup2(from, to)` for each pair (dup2 leaves `to` without
/// close-on-exec, so the new program inherits it; everything else keeps close-on-exec).
pub fn place_fds(cmd: &mut Command, pairs: Vec<(RawFd, RawFd)>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls dup2, which is
    // async-signal-safe; it allocates nothing (the Vec was built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            for (from, to) in &pairs {
                if libc::dup2(*from, *to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Takes ownership of a descriptor a syscall just returned.
pub fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: called only with a descriptor fcntl(F_DUPFD_CLOEXEC) has just created, which no other
    // owner holds; from now on the OwnedFd closes it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
