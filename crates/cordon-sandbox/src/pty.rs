//! Interactive sessions: when cordon's stdin is a terminal, the command gets its own pseudo-terminal
//! as its controlling terminal (job control, /dev/tty, raw mode all work), the user's terminal is put
//! in raw mode and relayed, and window-size changes follow. Keystroke injection (TIOCSTI) could only
//! ever reach this inner terminal, never the user's shell.

use nix::sys::termios::{self, SetArg, Termios};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

pub struct Pty {
    pub master: OwnedFd,
    pub slave: Option<OwnedFd>,
    saved: Option<Termios>,
    /// Which of fds 0, 1, 2 are terminals (only those are replaced by the pty in the command).
    pub ttys: [bool; 3],
}

fn isatty(fd: RawFd) -> bool {
    // SAFETY-free: nix's isatty takes a borrowed fd.
    // SAFETY: 0, 1 and 2 are open for the life of the process (or isatty reports EBADF).
    nix::unistd::isatty(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).unwrap_or(false)
}

impl Pty {
    /// A pty when stdin is a terminal; None otherwise (pipes and files pass through untouched).
    pub fn open_if_interactive() -> Result<Option<Pty>, String> {
        if !isatty(0) {
            return Ok(None);
        }
        let p = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
        let _ = crate::sys::copy_winsize(0, p.slave.as_raw_fd());
        let slave = Some(p.slave);
        nix::fcntl::fcntl(&p.master, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(|e| format!("pty: {e}"))?;
        Ok(Some(Pty { master: p.master, slave, saved: None, ttys: [isatty(0), isatty(1), isatty(2)] }))
    }

    /// Puts the user's terminal in raw mode (restored by `restore` and on drop).
    pub fn enter_raw(&mut self) {
        // SAFETY: fd 0 is open for the life of the process.
        let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
        if let Ok(t) = termios::tcgetattr(stdin) {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            if termios::tcsetattr(stdin, SetArg::TCSADRAIN, &raw).is_ok() {
                self.saved = Some(t);
            }
        }
    }

    pub fn restore(&mut self) {
        if let Some(t) = self.saved.take() {
            // SAFETY: fd 0 is open for the life of the process.
            let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
            let _ = termios::tcsetattr(stdin, SetArg::TCSADRAIN, &t);
        }
    }

    /// In the supervisor once the session holds the slave.
    pub fn close_slave(&mut self) {
        self.slave = None;
    }

    pub fn resize(&self) {
        let _ = crate::sys::copy_winsize(0, self.master.as_raw_fd());
    }

    /// In the command's process: new session already made; take the slave as controlling terminal and
    /// as every standard fd that was a terminal.
    pub fn attach_child(&self) -> Result<(), String> {
        let s = self.slave.as_ref().map(|s| s.as_raw_fd()).ok_or("pty: no slave")?;
        crate::sys::set_controlling_tty(s).map_err(|e| format!("pty: TIOCSCTTY: {e}"))?;
        for (fd, tty) in self.ttys.iter().enumerate() {
            if *tty {
                // SAFETY: dup2 onto 0..2 of the slave we own; both fds are valid.
                if unsafe { libc::dup2(s, fd as RawFd) } < 0 {
                    return Err(format!("pty: dup2: {}", std::io::Error::last_os_error()));
                }
            }
        }
        Ok(())
    }

    /// Copies what is available from `from` to `to`. Returns false at EOF or error.
    pub fn pump(from: RawFd, to: RawFd) -> bool {
        let mut buf = [0u8; 16384];
        // SAFETY: borrowing fds the caller keeps open for this call.
        let (f, t) = unsafe { (std::os::fd::BorrowedFd::borrow_raw(from), std::os::fd::BorrowedFd::borrow_raw(to)) };
        match nix::unistd::read(f, &mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                let mut off = 0;
                while off < n {
                    match nix::unistd::write(t, &buf[off..n]) {
                        Ok(w) => off += w,
                        Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
                        Err(_) => return false,
                    }
                }
                true
            }
        }
    }

    pub fn master_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.master.as_fd()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.restore();
    }
}
