//! The host-side directory of one session's private files — fs.sanitize's copies and the refusal
//! stream — that the sandbox binds in read-only. It lives on a tmpfs when the host has one
//! (/dev/shm): making and removing files there never waits for a filesystem journal, where on an
//! ext4 /tmp under I/O load each removal at a session's end cost milliseconds. It is made on first
//! use (a session with nothing to stage touches no filesystem) and removed on drop; one left by a
//! supervisor killed with SIGKILL is removed by the next session of the same user.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The directories' prefix, followed by the session id.
pub const PREFIX: &str = "cordon-session-";

/// One session's staging directory (made on first use).
pub struct Staging {
    session: String,
    dir: Option<PathBuf>,
    failed: bool,
    /// The directory, locked while this supervisor lives: a supervisor in another pid namespace
    /// (sharing /dev/shm) cannot tell by the pid whether this one is alive, and a pid is reused.
    lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

impl Staging {
    pub fn new(session: &str) -> Staging {
        Staging { session: session.to_string(), dir: None, failed: false, lock: None }
    }

    /// The directory, made 0700 (with the supervisor's pid, for collection) on first use; None when
    /// it cannot be made, which each user of it reports in its own words.
    pub fn dir(&mut self) -> Option<&Path> {
        if self.dir.is_none() && !self.failed {
            let base = base();
            collect_stale(&base);
            let dir = base.join(format!("{PREFIX}{}", self.session));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    // Locked, then marked with the pid (a collector skips it until then): a supervisor
                    // killed with SIGKILL cannot remove it; the next one does.
                    self.lock = lock(&dir, nix::fcntl::FlockArg::LockShared);
                    let _ = std::fs::write(dir.join("pid"), std::process::id().to_string());
                    self.dir = Some(dir);
                }
                Err(_) => self.failed = true,
            }
        }
        self.dir.as_deref()
    }

    /// Where the directory is or would be (for messages and tests).
    pub fn path(&self) -> PathBuf {
        base().join(format!("{PREFIX}{}", self.session))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// `dir` opened and locked (None when it cannot be).
fn lock(dir: &Path, how: nix::fcntl::FlockArg) -> Option<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .ok()?;
    nix::fcntl::Flock::lock(f, how).ok()
}

/// /dev/shm when it is a directory this user may write in (a tmpfs on every Linux distribution),
/// else the temporary directory.
pub fn base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let usable = shm.symlink_metadata().is_ok_and(|m| m.is_dir())
        && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK).is_ok();
    if usable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Removes the staging directories in `base` of this user's supervisors that are gone (killed with
/// SIGKILL: their copies hold no secret, but they are litter).
fn collect_stale(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = e.path();
        let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == me);
        let pid: Option<i32> = std::fs::read_to_string(dir.join("pid")).ok().and_then(|p| p.trim().parse().ok());
        // Alive: the process exists (kill 0 says so even for EPERM, which cannot be ours anyway),
        // or it holds the directory's lock (from another pid namespace too).
        let alive = pid.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
        if ours && pid.is_some() && !alive && lock(&dir, nix::fcntl::FlockArg::LockExclusiveNonblock).is_some() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_made_until_used_and_the_directory_goes_on_drop() {
        let id = format!("unit-{}", std::process::id());
        let s = Staging::new(&id);
        let at = s.path();
        drop(s);
        assert!(!at.exists(), "an unused staging makes nothing: {}", at.display());
        let mut s = Staging::new(&id);
        let dir = s.dir().expect("a staging directory").to_path_buf();
        assert_eq!(dir, at);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).expect("made").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "private to its user");
        let pid = std::fs::read_to_string(dir.join("pid")).expect("pid");
        assert_eq!(pid, std::process::id().to_string());
        drop(s);
        assert!(!dir.exists(), "removed on drop");
    }

    #[test]
    fn on_a_tmpfs_where_the_host_has_one() {
        let shm = nix::sys::statfs::statfs("/dev/shm").map(|f| f.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        if shm.unwrap_or(false) {
            assert_eq!(base(), Path::new("/dev/shm"));
        }
    }

    #[test]
    fn a_live_supervisor_s_directory_is_not_collected_even_when_its_pid_looks_gone() {
        let mut live = Staging::new(&format!("unit-live-{}", std::process::id()));
        let dir = live.dir().expect("made").to_path_buf();
        // As seen from another pid namespace, or after the pid was reused: a pid that is not alive.
        std::fs::write(dir.join("pid"), "999999999").expect("pid");
        collect_stale(&base());
        assert!(dir.exists(), "held by its lock");
        drop(live);
        assert!(!dir.exists());
    }
}
