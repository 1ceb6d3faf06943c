//! Placeholders (run by the supervisor before the session's init is cloned, held by the
//! [`crate::environment::Environment`] until it is dropped): what keeps an absent protected path (`.envrc`, `.vscode/tasks.json`) from being
//! created inside a session. Landlock cannot refuse one name in a writable directory, and a check
//! by the supervisor before letting a call through races with the call; a mount point cannot be
//! created over, renamed over, linked to or removed. So before the session, as the invoking user,
//! the supervisor makes an empty directory of mode [`PLACEHOLDER_MODE`] at the first missing
//! component of each such path (the mount plan names them: `MountOp::ReadOnly { placeholder }`),
//! and the session's init binds it read-only over itself. A directory, not a file: the session's
//! `git add -A` takes no empty directory into a commit, where an empty file would be. Except where
//! git reads the name as a file whenever it exists (`.git/commondir`, `.git/config.worktree`; see
//! [`placeholder_file`]): there a directory breaks every git command, so the placeholder is a file
//! of mode [`PLACEHOLDER_FILE_MODE`], made with O_EXCL, holding what git takes as if it were absent.
//!
//! Sessions in one workspace share a placeholder: removing it would detach the bind in every other
//! session's mount namespace (Linux >= 3.18), so each session holds a shared flock on it for its
//! whole run, and at the end removes it only when an exclusive lock is granted at once (no other
//! session holds it) and the path still names that empty placeholder. A placeholder a crashed
//! session left behind is an empty directory of that mode: the next session takes it over and
//! removes it.

use crate::error::SandboxError;
use crate::plan::ns::{
    is_placeholder, placeholder_file, placeholders, NsPlan, PLACEHOLDER_FILE_MODE, PLACEHOLDER_MODE,
};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The placeholders of one environment, each locked (shared) until the value is dropped; dropping
/// it removes those no other session holds.
#[derive(Default)]
pub struct Placeholders {
    held: Vec<(PathBuf, Flock<File>)>,
}

impl Placeholders {
    /// Makes (or takes over) the placeholders `plan` binds. An error names the path, why it is
    /// protected and the cause: the session must not start without them.
    pub fn hold(plan: &NsPlan) -> Result<Placeholders, SandboxError> {
        let mut p = Placeholders::default();
        for (path, why) in placeholders(plan) {
            match hold_one(path) {
                Ok(Some(lock)) => p.held.push((path.to_path_buf(), lock)),
                Ok(None) => {}
                Err(source) => {
                    return Err(SandboxError::Placeholder {
                        path: path.to_path_buf(),
                        dir: path.parent().unwrap_or(path).to_path_buf(),
                        why: why.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(p)
    }
}

/// The placeholder at `path`, made or found, locked shared. None: there is no need for one (the
/// filesystem is read-only), or something that is not a placeholder is there now (the bind holds
/// it read-only as it is; a symlink is refused by the mount step).
fn hold_one(path: &Path) -> std::result::Result<Option<Flock<File>>, std::io::Error> {
    let file = placeholder_file(path);
    for _ in 0..16 {
        let made = match file {
            None => std::fs::DirBuilder::new().mode(PLACEHOLDER_MODE).create(path),
            Some(content) => make_file(path, content),
        };
        let created = match made {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            // Nothing can be made there, by the session either.
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => return Ok(None),
            Err(e) => return Err(e),
        };
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(if file.is_some() { libc::O_NOFOLLOW } else { libc::O_DIRECTORY | libc::O_NOFOLLOW })
            .open(path)
        {
            Ok(f) => f,
            // Removed by the session that held it, since: make it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if !created && matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        if created {
            // The umask may have taken bits of the mode, which marks it as cordon's.
            let mode = if file.is_some() { PLACEHOLDER_FILE_MODE } else { PLACEHOLDER_MODE };
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        let md = f.metadata()?;
        if !is_placeholder(&md) || md.is_dir() == file.is_some() {
            return Ok(None);
        }
        let lock = Flock::lock(f, FlockArg::LockShared).map_err(|(_, e)| std::io::Error::from(e))?;
        // The session that ended may have removed it between our open and our lock.
        if path.symlink_metadata().is_ok_and(|now| now.dev() == md.dev() && now.ino() == md.ino()) {
            return Ok(Some(lock));
        }
    }
    Err(std::io::Error::other("it was replaced again and again while cordon made it"))
}

/// A placeholder file: made with O_EXCL (never over anything), `content` written, read-only.
fn make_file(path: &Path, content: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PLACEHOLDER_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.set_permissions(std::fs::Permissions::from_mode(PLACEHOLDER_FILE_MODE))
}

impl Drop for Placeholders {
    fn drop(&mut self) {
        for (path, lock) in self.held.drain(..) {
            // Another session holds it: that one removes it when it ends.
            if lock.relock(FlockArg::LockExclusiveNonblock).is_err() {
                continue;
            }
            let ours = lock.metadata().is_ok_and(|md| {
                is_placeholder(&md)
                    && path.symlink_metadata().is_ok_and(|now| now.dev() == md.dev() && now.ino() == md.ino())
            });
            if !ours {
                continue;
            }
            match placeholder_file(&path) {
                // Changed (by a host process): it stays, and is no longer ours.
                Some(content) => {
                    let same = std::fs::read(&path).is_ok_and(|now| now == content.as_bytes());
                    if same {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                // Not empty (a host process put something there): it stays, and is no longer ours.
                None => {
                    let _ = std::fs::remove_dir(&path);
                }
            }
        }
    }
}

impl std::fmt::Debug for Placeholders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.held.iter().map(|(p, _)| p)).finish()
    }
}
