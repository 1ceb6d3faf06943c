//! Interactive sessions: when cordon's stdin is a terminal, the command gets its own pseudo-terminal
//! as its controlling terminal (job control, /dev/tty, raw mode all work), the user's terminal is put
//! in raw mode and relayed, and window-size changes follow. Keystroke injection (TIOCSTI) could only
//! ever reach this inner terminal, never the user's shell.

use nix::sys::termios::{self, SetArg, Termios};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// Why the session's pseudo-terminal could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("openpty: {0}")]
    Open(#[source] nix::errno::Errno),
    /// Marking the master close-on-exec.
    #[error("pty: {0}")]
    CloseOnExec(#[source] nix::errno::Errno),
    #[error("pty: no slave")]
    NoSlave,
    #[error("pty: TIOCSCTTY: {0}")]
    ControllingTty(#[source] std::io::Error),
    #[error("pty: dup2: {0}")]
    Dup2(#[source] std::io::Error),
}

pub struct Pty {
    pub master: OwnedFd,
    pub slave: Option<OwnedFd>,
    saved: Option<Termios>,
    /// Which of fds 0, 1, 2 are terminals (only those are replaced by the pty in the command).
    pub ttys: [bool; 3],
}

fn isatty<F: AsFd>(f: F) -> bool {
    nix::unistd::isatty(f.as_fd()).unwrap_or(false)
}

impl Pty {
    /// A pty when stdin is a terminal; None otherwise (pipes and files pass through untouched).
    pub fn open_if_interactive() -> Result<Option<Pty>, PtyError> {
        if !isatty(std::io::stdin()) {
            return Ok(None);
        }
        let p = nix::pty::openpty(None, None).map_err(PtyError::Open)?;
        let _ = crate::sys::copy_winsize(0, p.slave.as_raw_fd());
        let slave = Some(p.slave);
        nix::fcntl::fcntl(&p.master, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
            .map_err(PtyError::CloseOnExec)?;
        Ok(Some(Pty {
            master: p.master,
            slave,
            saved: None,
            ttys: [isatty(std::io::stdin()), isatty(std::io::stdout()), isatty(std::io::stderr())],
        }))
    }

    /// Puts the user's terminal in raw mode (restored by `restore` and on drop).
    pub fn enter_raw(&mut self) {
        let stdin = std::io::stdin();
        if let Ok(t) = termios::tcgetattr(&stdin) {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            if termios::tcsetattr(&stdin, SetArg::TCSADRAIN, &raw).is_ok() {
                self.saved = Some(t);
            }
        }
    }

    pub fn restore(&mut self) {
        if let Some(t) = self.saved.take() {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &t);
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
    pub fn attach_child(&self) -> Result<(), PtyError> {
        let s = self.slave.as_ref().map(|s| s.as_raw_fd()).ok_or(PtyError::NoSlave)?;
        crate::sys::set_controlling_tty(s).map_err(PtyError::ControllingTty)?;
        for (fd, tty) in self.ttys.iter().enumerate() {
            if *tty {
                crate::sys::dup2(s, fd as RawFd).map_err(PtyError::Dup2)?;
            }
        }
        Ok(())
    }

    /// Copies what is available from `from` to `to`. Returns false at EOF or error.
    pub fn pump(f: std::os::fd::BorrowedFd<'_>, t: std::os::fd::BorrowedFd<'_>) -> bool {
        let mut buf = [0u8; 16384];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::io_source;

    fn pty(slave: Option<OwnedFd>) -> Pty {
        let (_, w) = nix::unistd::pipe().expect("pipe");
        Pty { master: w, slave, saved: None, ttys: [true, false, false] }
    }

    #[test]
    fn a_slave_that_is_no_terminal_fails_at_tiocsctty_keeping_the_io_error() {
        let (r, _w) = nix::unistd::pipe().expect("pipe");
        let e = pty(Some(r)).attach_child().expect_err("a pipe is no terminal");
        assert!(matches!(e, PtyError::ControllingTty(_)), "{e:?}");
        assert_eq!(io_source(&e).raw_os_error(), Some(libc::ENOTTY));
        assert_eq!(e.to_string(), format!("pty: TIOCSCTTY: {}", io_source(&e)));
    }

    #[test]
    fn no_slave_is_reported_as_such() {
        let e = pty(None).attach_child().expect_err("no slave");
        assert_eq!(e.to_string(), "pty: no slave");
        assert!(std::error::Error::source(&e).is_none());
    }
}
