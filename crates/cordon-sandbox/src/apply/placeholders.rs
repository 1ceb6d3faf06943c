//! Placeholders (run by the supervisor before the session's init is cloned, held by the
//! [`crate::environment::Environment`] until it is dropped): what keeps an absent protected path
//! (`.envrc`, `.vscode/tasks.json`) from being created inside a session. Landlock cannot refuse one
//! name in a writable directory, and a check by the supervisor before letting a call through races
//! with the call; a mount point cannot be created over, renamed over, linked to or removed. So
//! before the session, as the invoking user, the supervisor makes a placeholder at the first
//! missing component of each such path (the mount plan names them: `MountOp::ReadOnly {
//! placeholder }`), and the session's init binds it read-only over itself.
//!
//! The placeholder is a unix socket inode of mode [`PLACEHOLDER_MODE`] (no one listens on it): it
//! has no data, so making and removing it costs no block (a directory's one block, freed at each
//! session's end, waited for the device's trim on a filesystem mounted with `discard`: ~2.4 ms
//! each); opening it to write fails (EACCES: no write bit), creating under it fails (ENOTDIR), and
//! git ignores it, so the
//! session's `git add -A` commits nothing of it (an empty file would be). Except where git reads
//! the name as a file whenever it exists (`.git/commondir`, `.git/config.worktree`; see
//! [`placeholder_file`]): there the placeholder is a file of mode [`PLACEHOLDER_FILE_MODE`], made
//! with O_EXCL, holding what git takes as if it were absent.
//!
//! Sessions in one workspace share placeholders: removing one would detach the bind in every other
//! session's mount namespace (Linux >= 3.18). So each session holds a shared flock on the directory
//! that holds its placeholders (a socket cannot be opened to be locked) for its whole run, taken
//! before it makes or finds them; at the end it removes them only when an exclusive lock on that
//! directory is granted at once (no other session holds it), and then also the placeholders other
//! sessions left there. A placeholder a crashed session left behind (a socket of that mode, or a
//! directory of [`PLACEHOLDER_DIR_MODE`] from before placeholders were sockets) is adopted by the
//! next session and removed.

use crate::error::SandboxError;
use crate::plan::ns::{
    is_placeholder_mode, placeholder_file, placeholders, NsPlan, PLACEHOLDER_FILE_MODE, PLACEHOLDER_MODE,
};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::{Mode, SFlag};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The placeholders of one environment, their directories locked (shared) until the value is
/// dropped; dropping it removes them where no other session holds their directory.
#[derive(Default)]
pub struct Placeholders {
    /// Each directory holding placeholders, locked shared, with the placeholders in it.
    dirs: Vec<(PathBuf, Flock<File>, Vec<Held>)>,
}

/// A placeholder this session holds: its path, device and inode.
type Held = (PathBuf, u64, u64);

impl Placeholders {
    /// Makes (or adopts) the placeholders `plan` binds. An error names the path, why it is
    /// protected and the cause: the session must not start without them.
    pub fn hold(plan: &NsPlan) -> Result<Placeholders, SandboxError> {
        let mut p = Placeholders::default();
        for (path, why) in placeholders(plan) {
            let dir = path.parent().unwrap_or(path).to_path_buf();
            let failed = |source| SandboxError::Placeholder {
                path: path.to_path_buf(),
                dir: dir.clone(),
                why: why.to_string(),
                source,
            };
            let at = match p.dirs.iter().position(|(d, _, _)| *d == dir) {
                Some(i) => i,
                None => {
                    let lock = lock_dir(&dir).map_err(failed)?;
                    p.dirs.push((dir.clone(), lock, vec![]));
                    p.dirs.len() - 1
                }
            };
            let held = hold_one(p.dirs[at].1.as_fd(), path).map_err(failed)?;
            if let Some((dev, ino)) = held {
                p.dirs[at].2.push((path.to_path_buf(), dev, ino));
            }
        }
        Ok(p)
    }
}

/// The directory `dir`, opened and locked shared (waiting while a session that ends removes its
/// placeholders there under the exclusive lock).
fn lock_dir(dir: &Path) -> std::io::Result<Flock<File>> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(dir)?;
    Flock::lock(f, FlockArg::LockShared).map_err(|(_, e)| std::io::Error::from(e))
}

/// The placeholder at `path`, made or found in `dir` (its parent, opened and locked once: each
/// call then looks up one name, not the whole path): its device and inode. None: there is no need
/// for one (the filesystem is read-only), or something that is not a placeholder is there now (the
/// bind holds it read-only as it is; a symlink is refused by the mount step).
fn hold_one(dir: BorrowedFd, path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    let name = path.file_name().map(Path::new).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let file = placeholder_file(path);
    let made = match file {
        None => {
            let mode = Mode::from_bits_truncate(PLACEHOLDER_MODE);
            nix::sys::stat::mknodat(dir, name, SFlag::S_IFSOCK, mode, 0).map_err(std::io::Error::from)
        }
        Some(content) => make_file(dir, name, content),
    };
    match made {
        Ok(()) => {}
        // Left by another session (running, or crashed): adopted below if it is a placeholder.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // Nothing can be made there, by the session either.
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => return Ok(None),
        Err(e) => return Err(e),
    }
    // No session removes a placeholder in this directory while this one holds it locked.
    let st = nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    if !is_placeholder_mode(st.st_mode) || regular != file.is_some() {
        return Ok(None);
    }
    Ok(Some((st.st_dev, st.st_ino)))
}

/// A placeholder file `name` in `dir`: made with O_EXCL (never over anything), `content` written,
/// read-only.
fn make_file(dir: BorrowedFd, name: &Path, content: &str) -> std::io::Result<()> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(PLACEHOLDER_FILE_MODE))?;
    let mut f = File::from(fd);
    f.write_all(content.as_bytes())?;
    f.set_permissions(std::fs::Permissions::from_mode(PLACEHOLDER_FILE_MODE))
}

impl Drop for Placeholders {
    fn drop(&mut self) {
        for (_, lock, held) in self.dirs.drain(..) {
            // Another session holds the directory: the last one to end removes them.
            if lock.relock(FlockArg::LockExclusiveNonblock).is_err() {
                continue;
            }
            // Everything through the locked directory's descriptor: its path may name another
            // directory by now (the session could rename one in the workspace and leave a symlink).
            let dir = lock.as_fd();
            for (path, dev, ino) in held {
                if let Some(name) = path.file_name() {
                    remove_if_ours(dir, name.as_ref(), Some((dev, ino)), placeholder_file(&path));
                }
            }
            // What sessions that ended while this one held the directory left there.
            let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else { continue };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_socket()) {
                    remove_if_ours(dir, e.file_name().as_ref(), None, None);
                }
            }
        }
    }
}

/// Removes the placeholder `name` in `dir` if it still is one (and the inode held, when given).
/// A directory placeholder another process holds locked (a session of a cordon from before
/// placeholders were sockets) or that is not empty, or a file placeholder whose content changed
/// (`file`), stays: it is in use, or a host process changed it and it is no longer cordon's.
fn remove_if_ours(dir: BorrowedFd, name: &Path, held: Option<(u64, u64)>, file: Option<&str>) {
    use nix::fcntl::{AtFlags, OFlag};
    use nix::unistd::UnlinkatFlags;
    let Ok(st) = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else { return };
    if !is_placeholder_mode(st.st_mode) || held.is_some_and(|h| h != (st.st_dev, st.st_ino)) {
        return;
    }
    let open =
        |flags: OFlag| nix::fcntl::openat(dir, name, flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty());
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => {
            let _ = nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
        }
        libc::S_IFDIR => {
            let Ok(fd) = open(OFlag::O_RDONLY | OFlag::O_DIRECTORY) else { return };
            if let Ok(_held) = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
                let _ = nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir);
            }
        }
        libc::S_IFREG => {
            let Ok(fd) = open(OFlag::O_RDONLY) else { return };
            let mut now = vec![];
            let same = std::io::Read::read_to_end(&mut File::from(fd), &mut now).is_ok()
                && file.is_some_and(|c| c.as_bytes() == now);
            if same {
                let _ = nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
            }
        }
        _ => {}
    }
}

impl std::fmt::Debug for Placeholders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.dirs.iter().flat_map(|(_, _, h)| h.iter().map(|(p, _, _)| p))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ns::{is_placeholder, MountOp};
    use std::os::unix::fs::MetadataExt;

    fn plan(paths: &[&Path]) -> NsPlan {
        NsPlan {
            user: false,
            pid: false,
            mount: true,
            ipc: false,
            uts: false,
            net: false,
            uid: 0,
            gid: 0,
            mounts: paths
                .iter()
                .map(|p| MountOp::ReadOnly { path: p.to_path_buf(), placeholder: true, why: "test".into() })
                .collect(),
            hide: None,
            hostname: None,
            memfd_noexec: false,
        }
    }

    fn socket(p: &Path, mode: u32) {
        nix::sys::stat::mknod(p, SFlag::S_IFSOCK, Mode::from_bits_truncate(mode), 0).expect("mknod");
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            p,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .expect("chmod");
    }

    #[test]
    fn sockets_are_made_shared_by_sessions_and_removed_by_the_last() {
        let t = crate::testutil::Tmp::new("placeholders");
        let (envrc, vscode) = (t.0.join(".envrc"), t.0.join(".vscode"));
        let a = Placeholders::hold(&plan(&[&envrc, &vscode])).expect("a");
        let md = envrc.symlink_metadata().expect("made");
        assert!(md.file_type().is_socket() && is_placeholder(&md), "{:o}", md.mode());
        // A second session adopts them; the first to end leaves them to it.
        let b = Placeholders::hold(&plan(&[&envrc])).expect("b");
        assert_eq!(format!("{b:?}"), format!("[{envrc:?}]"));
        drop(a);
        assert!(envrc.symlink_metadata().is_ok(), "another session still holds it");
        assert!(vscode.symlink_metadata().is_ok(), "its directory is still held by another session");
        drop(b);
        assert!(envrc.symlink_metadata().is_err(), "the last session removes what it held");
        assert!(vscode.symlink_metadata().is_err(), "and what ended sessions left in the directory");
    }

    #[test]
    fn what_is_not_a_placeholder_stays() {
        let t = crate::testutil::Tmp::new("placeholders-not");
        let (mine, sock, file) = (t.0.join("mine"), t.0.join("app.sock"), t.0.join(".envrc"));
        socket(&sock, 0o755);
        std::fs::write(&file, "export A=1\n").expect("write");
        let leftover = t.0.join(".husky");
        socket(&leftover, 0o1444);
        let p = Placeholders::hold(&plan(&[&mine, &file])).expect("hold");
        assert_eq!(format!("{p:?}"), format!("[{mine:?}]"), "a present file is no placeholder of this session");
        drop(p);
        assert!(mine.symlink_metadata().is_err() && leftover.symlink_metadata().is_err());
        assert!(sock.symlink_metadata().is_ok(), "a socket that is not cordon's stays");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "export A=1\n");
    }

    #[test]
    fn a_directory_placeholder_from_before_is_adopted_and_removed() {
        let t = crate::testutil::Tmp::new("placeholders-dir");
        let d = t.0.join(".envrc");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(crate::plan::ns::PLACEHOLDER_DIR_MODE))
            .expect("chmod");
        let p = Placeholders::hold(&plan(&[&d])).expect("hold");
        assert_eq!(format!("{p:?}"), format!("[{d:?}]"));
        drop(p);
        assert!(d.symlink_metadata().is_err());
    }

    #[test]
    fn the_end_works_in_the_locked_directory_even_if_its_name_now_leads_elsewhere() {
        let t = crate::testutil::Tmp::new("placeholders-moved");
        let (sub, moved, other) = (t.0.join("sub"), t.0.join("moved"), t.0.join("other"));
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::create_dir(&other).expect("mkdir");
        let victim = other.join("app.sock");
        socket(&victim, 0o1444);
        let p = Placeholders::hold(&plan(&[&sub.join(".envrc")])).expect("hold");
        std::fs::rename(&sub, &moved).expect("rename");
        std::os::unix::fs::symlink(&other, &sub).expect("symlink");
        drop(p);
        assert!(victim.symlink_metadata().is_ok(), "nothing is removed through the new name");
        assert!(moved.join(".envrc").symlink_metadata().is_err(), "the placeholder in the locked directory goes");
    }

    #[test]
    fn an_old_directory_placeholder_another_session_holds_stays() {
        let t = crate::testutil::Tmp::new("placeholders-old-held");
        let d = t.0.join(".envrc");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(crate::plan::ns::PLACEHOLDER_DIR_MODE))
            .expect("chmod");
        // How a session of an earlier cordon held it: a shared lock on the directory itself.
        let old = Flock::lock(File::open(&d).expect("open"), FlockArg::LockShared).expect("lock");
        drop(Placeholders::hold(&plan(&[&d])).expect("hold"));
        assert!(d.symlink_metadata().is_ok(), "still bound by the other session");
        drop(old);
        drop(Placeholders::hold(&plan(&[&d])).expect("hold"));
        assert!(d.symlink_metadata().is_err());
    }
}
