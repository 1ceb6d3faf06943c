//! `fs.sanitize`: each configuration file that mixes settings with secrets is read by the
//! supervisor, its secrets taken out (cordon_policy::sanitize), and the copy staged in a private
//! directory (0700, the file 0400) that the sandbox binds read-only over the file's path. The
//! directory goes when the session is over. A file that cannot be read or understood, or a host
//! where the copy cannot be bound (no mount namespace), keeps the file hidden whole: never the
//! original with its secrets.

use cordon_policy::{CompiledPolicy, Masked};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The staged copies; removed on drop.
pub struct Staged {
    dir: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stages a copy of every `fs.sanitize` file that exists; says what was taken out of each.
pub fn stage(policy: &mut CompiledPolicy, session: &str, notices: &mut Vec<String>) -> Option<Staged> {
    if policy.fs.sanitize.is_empty() {
        return None;
    }
    if !policy.namespaces.mount {
        for s in std::mem::take(&mut policy.fs.sanitize) {
            notices.push(format!(
                "{}: hidden whole (a copy without its secrets needs a mount namespace, which the policy turns off)",
                s.entry
            ));
            hide(policy, &s.path, &s.entry, &s.origin);
        }
        return None;
    }
    collect_stale(PREFIX);
    let dir = std::env::temp_dir().join(format!("{PREFIX}{session}"));
    let staged = std::fs::DirBuilder::new().mode(0o700).create(&dir).ok().map(|_| Staged { dir: dir.clone() });
    if staged.is_some() {
        // Whose it is: a supervisor killed with SIGKILL cannot remove it; the next one does.
        let _ = std::fs::write(dir.join("pid"), std::process::id().to_string());
    }
    let mut keep = vec![];
    for (i, mut s) in std::mem::take(&mut policy.fs.sanitize).into_iter().enumerate() {
        let copy = dir.join(format!("{i}"));
        match copy_of(&s.path, s.format, &copy, staged.is_some()) {
            Ok(None) => keep.push(s),
            Ok(Some(removed)) => {
                if !removed.is_empty() {
                    notices.push(format!(
                        "{}: the session reads a copy without its secrets (removed: {})",
                        s.entry,
                        removed.join(", ")
                    ));
                }
                s.staged = Some(copy);
                keep.push(s);
            }
            Err(why) => {
                notices.push(format!("{}: hidden whole ({why})", s.entry));
                hide(policy, &s.path, &s.entry, &s.origin);
            }
        }
    }
    policy.fs.sanitize = keep;
    staged
}

const PREFIX: &str = "cordon-sanitized-";

/// Removes the staging directories named `prefix…` of this user's supervisors that are gone (killed
/// with SIGKILL: their copies hold no secret, but they are litter).
pub(crate) fn collect_stale(prefix: &str) {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let dir = e.path();
        let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == me);
        let pid: Option<i32> = std::fs::read_to_string(dir.join("pid")).ok().and_then(|p| p.trim().parse().ok());
        // Alive: the process exists (kill 0 says so even for EPERM, which cannot be ours anyway).
        let alive = pid.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
        if ours && pid.is_some() && !alive {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The copy of `path` at `copy`: None when there is no file (nothing to read); the names of the
/// keys taken out; Err(why) when the file must stay hidden.
fn copy_of(
    path: &Path,
    format: cordon_policy::sanitize::Format,
    copy: &Path,
    can_stage: bool,
) -> Result<Option<Vec<String>>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let s = cordon_policy::sanitize::sanitize(format, &text)?;
    if !can_stage {
        return Err(format!("cannot make a private directory in {}", std::env::temp_dir().display()));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(copy)
        .map_err(|e| format!("cannot stage its copy: {e}"))?;
    std::io::Write::write_all(&mut f, s.text.as_bytes()).map_err(|e| format!("cannot stage its copy: {e}"))?;
    Ok(Some(s.removed))
}

/// Back to denied: no read rule of its own, masked where a tree holds it.
fn hide(policy: &mut CompiledPolicy, path: &Path, entry: &str, origin: &str) {
    policy.fs.rules.retain(|r| !(r.path == path && r.origin.ends_with("(fs.sanitize)")));
    for r in policy.fs.rules.iter_mut().filter(|r| r.path == path) {
        r.access.read = false;
        r.access.exec = false;
    }
    policy.fs.deny.push(Masked { path: path.to_path_buf(), entry: entry.to_string(), origin: origin.to_string() });
}
