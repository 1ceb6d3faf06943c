//! The files `cordon run` writes besides the audit log (`--report`, `--events`, `--head-copy`):
//! opened before the session starts, so that a wrong path fails before anything runs; never one of
//! the audit log's own files (compared by device and inode, and by name for files not yet there);
//! a fifo nobody reads is waited for a bounded time, then refused.

use crate::{Result, SessionError};
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an output fifo may wait for its reader.
const FIFO_WAIT: Duration = Duration::from_secs(5);

/// Files no output may be: the audit log's, and the outputs opened before.
#[derive(Default)]
pub struct Protected {
    names: Vec<(PathBuf, String)>,
    ids: Vec<((u64, u64), String)>,
}

impl Protected {
    pub fn add(&mut self, path: &Path, what: &str) {
        let p = lexical(path);
        if let Ok(m) = std::fs::metadata(&p) {
            self.ids.push(((m.dev(), m.ino()), what.to_string()));
        }
        self.names.push((p, what.to_string()));
    }

    /// After opening: the file actually opened (a symlink may have been swapped meanwhile) is none
    /// of the protected files as they are now.
    fn clash_opened(&self, path: &Path, file: &File) -> Option<&str> {
        let m = file.metadata().ok()?;
        let id = (m.dev(), m.ino());
        let now = self.names.iter().find(|(n, _)| std::fs::metadata(n).is_ok_and(|x| (x.dev(), x.ino()) == id));
        now.map(|(_, w)| w.as_str())
            .or_else(|| self.ids.iter().find(|(x, _)| *x == id).map(|(_, w)| w.as_str()))
            .or_else(|| self.clash(path))
    }

    fn clash(&self, path: &Path) -> Option<&str> {
        let p = lexical(path);
        if let Some((_, w)) = self.names.iter().find(|(n, _)| *n == p) {
            return Some(w);
        }
        let m = std::fs::metadata(&p).ok()?;
        self.ids.iter().find(|(id, _)| *id == (m.dev(), m.ino())).map(|(_, w)| w.as_str())
    }
}

/// `path` absolute, symlinks of its existing part resolved (cordon_audit::files::absolute).
fn lexical(path: &Path) -> PathBuf {
    cordon_audit::files::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// An output file, open for writing.
pub struct Output {
    pub path: PathBuf,
    pub file: File,
    regular: bool,
}

impl Output {
    /// Opens `path` for `flag` (named in errors), refusing protected files; adds it to them.
    pub fn open(path: &Path, flag: &str, protected: &mut Protected) -> Result<Output> {
        if let Some(what) = protected.clash(path) {
            bail!(
                "{flag} {}: that is {what}; writing it would destroy it\n  hint: give {flag} a path of its own",
                path.display()
            );
        }
        let md = std::fs::metadata(path).ok();
        if md.as_ref().is_some_and(|m| m.is_dir()) {
            bail!("{flag} {}: is a directory\n  hint: {flag} takes a file path", path.display());
        }
        let fifo = md.as_ref().is_some_and(|m| m.file_type().is_fifo());
        let file = if fifo { open_fifo(path, flag)? } else { open_file(path, flag)? };
        if let Some(what) = protected.clash_opened(path, &file) {
            bail!("{flag} {}: that is {what} (the path changed while it was opened); nothing was written to it\n  hint: give {flag} a path of its own", path.display());
        }
        protected.add(path, &format!("the file given to {flag}"));
        let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        Ok(Output { path: path.to_path_buf(), file, regular })
    }

    /// Replaces the file's content (a regular file is emptied first; a pipe just gets the bytes).
    pub fn replace(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, Write};
        if self.regular {
            self.file.set_len(0)?;
            self.file.rewind()?;
        }
        self.file.write_all(bytes)?;
        self.file.flush()
    }

    /// An events output: emptied (a regular file starts empty), as the sensor's sink takes it.
    pub fn into_events(self) -> Result<(PathBuf, File)> {
        if self.regular {
            self.file
                .set_len(0)
                .map_err(|e| SessionError::Refused(format!("--events {}: {e}", self.path.display())))?;
        }
        Ok((self.path, self.file))
    }
}

fn open_file(path: &Path, flag: &str) -> Result<File> {
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(|e| {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let hint = if !dir.is_dir() {
            format!("the directory {} does not exist", dir.display())
        } else {
            "choose a path you can write".into()
        };
        SessionError::Refused(format!("{flag} {}: cannot open for writing: {e}\n  hint: {hint}", path.display()))
    })
}

/// A fifo opens for writing only once a reader has it open: wait for one, bounded.
fn open_fifo(path: &Path, flag: &str) -> Result<File> {
    let t0 = Instant::now();
    loop {
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(f) => {
                let fail =
                    |e: nix::errno::Errno| SessionError::Refused(format!("{flag} {}: fcntl: {e}", path.display()));
                let flags = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETFL).map_err(fail)?;
                let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
                nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETFL(blocking)).map_err(fail)?;
                return Ok(f);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && t0.elapsed() < FIFO_WAIT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                bail!("{flag} {}: a fifo that nobody is reading (waited {} s)\n  hint: start its reader first, or give a regular file", path.display(), FIFO_WAIT.as_secs())
            }
            Err(e) => bail!("{flag} {}: cannot open for writing: {e}", path.display()),
        }
    }
}
