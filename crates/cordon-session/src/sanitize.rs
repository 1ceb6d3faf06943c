//! `fs.sanitize`: each configuration file that mixes settings with secrets is read by the
//! supervisor, its secrets taken out (cordon_policy::sanitize), and the copy staged in the session's
//! private directory (crate::staging; the file 0400) that the sandbox binds read-only over the
//! file's path. The directory goes when the session is over. A file that cannot be read or understood, or a host
//! where the copy cannot be bound (no mount namespace), keeps the file hidden whole: never the
//! original with its secrets.

use crate::staging::Staging;
use cordon_policy::{CompiledPolicy, Masked};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Stages a copy of every `fs.sanitize` file that exists; says what was taken out of each.
pub fn stage(policy: &mut CompiledPolicy, staging: &mut Staging, notices: &mut Vec<String>) {
    if policy.fs.sanitize.is_empty() {
        return;
    }
    if !policy.namespaces.mount {
        for s in std::mem::take(&mut policy.fs.sanitize) {
            notices.push(format!(
                "{}: hidden whole (a copy without its secrets needs a mount namespace, which the policy turns off)",
                s.entry
            ));
            hide(policy, &s.path, &s.entry, &s.origin);
        }
        return;
    }
    let mut keep = vec![];
    for (i, mut s) in std::mem::take(&mut policy.fs.sanitize).into_iter().enumerate() {
        match copy_of(&s.path, s.format, staging, &format!("sanitized-{i}")) {
            Ok(None) => keep.push(s),
            Ok(Some(removed)) => {
                if !removed.is_empty() {
                    notices.push(format!(
                        "{}: the session reads a copy without its secrets (removed: {})",
                        s.entry,
                        removed.join(", ")
                    ));
                }
                s.staged = staging.dir().map(|d| d.join(format!("sanitized-{i}")));
                keep.push(s);
            }
            Err(why) => {
                notices.push(format!("{}: hidden whole ({why})", s.entry));
                hide(policy, &s.path, &s.entry, &s.origin);
            }
        }
    }
    policy.fs.sanitize = keep;
}

/// The copy of `path` at `copy`: None when there is no file (nothing to read); the names of the
/// keys taken out; Err(why) when the file must stay hidden.
fn copy_of(
    path: &Path,
    format: cordon_policy::sanitize::Format,
    staging: &mut Staging,
    name: &str,
) -> Result<Option<Vec<String>>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let s = cordon_policy::sanitize::sanitize(format, &text)?;
    let Some(dir) = staging.dir() else {
        return Err(format!("cannot make a private directory {}", staging.path().display()));
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(dir.join(name))
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
