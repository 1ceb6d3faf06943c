//! Refusals the supervisor cannot see as refusals, explained in the summary from what it does know.
//!
//! A protected file (`fs.protect`, e.g. `.git/config`) is a read-only bind: git rewrites its config
//! by creating `config.lock` next to it and renaming that over it, and the rename fails with EBUSY
//! ("Device or resource busy"), which names neither the file nor the fix. The kernel tells the
//! supervisor nothing, and without root there is no sensor; but the lock file is created in a
//! directory the session may write, which is the same inode inside and outside the session's mount
//! namespace, so an inotify watch on it (unprivileged, one descriptor, nothing on the session's
//! path) sees the attempt. What it cannot see: a write that opens the protected file itself (EROFS,
//! no event), a replacement through another temporary name, and attempts beyond the inotify queue
//! (16384 events by default, read when the session ends) — the note is then missing, never wrong.

use cordon_policy::CompiledPolicy;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Watches the directories of protected files for the lock files of an attempted rewrite.
pub struct ProtectWatch {
    inotify: Inotify,
    /// (directory's watch, lock file name, the protected file, its fs.protect entry)
    locks: Vec<(WatchDescriptor, OsString, PathBuf, String)>,
}

impl ProtectWatch {
    /// None when nothing protected is a file in a directory there (or inotify is unavailable: the
    /// notes are help, never enforcement).
    pub fn start(policy: &CompiledPolicy) -> Option<ProtectWatch> {
        let files: Vec<_> = policy
            .fs
            .protect
            .iter()
            .filter(|m| m.path.symlink_metadata().is_ok_and(|md| md.is_file()))
            .filter_map(|m| Some((m.path.parent()?.to_path_buf(), m.path.file_name()?.to_owned(), m)))
            .collect();
        if files.is_empty() {
            return None;
        }
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        let mut locks = vec![];
        for (dir, name, m) in files {
            let Ok(wd) = inotify.add_watch(&dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_ONLYDIR) else {
                continue;
            };
            let mut lock = name;
            lock.push(".lock");
            locks.push((wd, lock, m.path.clone(), m.entry.clone()));
        }
        (!locks.is_empty()).then_some(ProtectWatch { inotify, locks })
    }

    /// After the session: a note for each protected file something tried to rewrite.
    pub fn finish(self, workspace: &Path) -> Vec<String> {
        let mut hit: Vec<usize> = vec![];
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for ev in events {
                let Some(name) = &ev.name else { continue };
                if let Some(i) = self.locks.iter().position(|(wd, lock, _, _)| *wd == ev.wd && lock == name) {
                    if !hit.contains(&i) {
                        hit.push(i);
                    }
                }
            }
        }
        hit.sort_unstable();
        hit.iter().map(|&i| note(&self.locks[i].2, &self.locks[i].3, workspace)).collect()
    }
}

fn note(path: &Path, entry: &str, workspace: &Path) -> String {
    let rel = path.strip_prefix(workspace).unwrap_or(path).display().to_string();
    if rel == ".git/config" {
        return format!("{rel} is protected (read-only inside the session, fs.protect `{entry}`: its settings run code at the user's next git command), so git could not change it (`git config`, `git remote add`, ...: \"Device or resource busy\"). To set an identity, give it per command: `git -c user.name=NAME -c user.email=EMAIL commit ...`, or set GIT_AUTHOR_NAME, GIT_AUTHOR_EMAIL, GIT_COMMITTER_NAME and GIT_COMMITTER_EMAIL; any other setting: `git -c KEY=VALUE ...`, or ask the user to change {rel} outside the session");
    }
    format!("{rel} is protected (read-only inside the session, fs.protect `{entry}`): something tried to replace it through {rel}.lock and failed (\"Device or resource busy\"); ask the user to change it outside the session")
}
