//! The crate's raw descriptor calls (the only `unsafe` here).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `fd` moved to a number at or above 10, close-on-exec, owned; the old number then holds /dev/null
/// (so nothing this process starts inherits the original through it).
pub fn take_over(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) makes a new descriptor and touches no memory.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `n` was just made by fcntl and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(n) };
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    // SAFETY: dup2 onto a descriptor number this process owns (it replaces the one moved above).
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(owned)
}

/// A borrowed view of a descriptor number this process keeps open for its whole life (0, 1, 2).
pub fn borrow_std(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the standard descriptors stay open until the process exits.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Takes ownership of a descriptor the kernel just made for this process (accept4).
pub fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller passes a descriptor it just received and nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
