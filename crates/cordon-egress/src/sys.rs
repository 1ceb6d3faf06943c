//! The only unsafe code of the egress crate: zero-copy relaying with splice(2).

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these fds to us.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A larger pipe moves more per call; failure only costs speed.
    // SAFETY: F_SETPIPE_SZ takes an integer.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    Ok((r, w))
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets (sockets and pipes); plain fds and a length.
    cvt(unsafe { libc::splice(from, std::ptr::null_mut(), to, std::ptr::null_mut(), len, libc::SPLICE_F_MOVE) })
}

/// Moves bytes from `from` to `to` in the kernel until EOF, then half-closes `to`. Blocking sockets.
pub fn relay(from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
    let (pr, pw) = pipe()?;
    let mut total = 0u64;
    loop {
        let n = match splice(from.as_raw_fd(), pw.as_raw_fd(), 1 << 20) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return if total > 0 { Ok(total) } else { Err(e) };
            }
        };
        let mut left = n;
        while left > 0 {
            match splice(pr.as_raw_fd(), to.as_raw_fd(), left) {
                Ok(0) => return Ok(total),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    let _ = from.shutdown(std::net::Shutdown::Read);
                    return Ok(total + (n - left) as u64);
                }
            }
        }
        total += n as u64;
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
    Ok(total)
}
