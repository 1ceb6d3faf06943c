//! The binary's few raw calls.

/// Restores the default action of SIGPIPE (the Rust runtime ignores it): a read-only command whose
/// reader went away (`cordon audit ls | head -1`) ends quietly, as other Unix tools do, instead of
/// panicking in `println!`. Not for `cordon run`, which must outlive its terminal to finish the record.
pub fn default_sigpipe() {
    // SAFETY: called at the start of main, before any thread exists; SIG_DFL installs no handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A pidfd of `pid`: readable once the process has ended (`cordon audit ship --watch-pid`).
pub fn pidfd_open(pid: libc::pid_t) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK as libc::c_uint) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(r as std::os::fd::RawFd) })
}
