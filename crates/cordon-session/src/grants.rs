//! One-off grants from the command line (`--allow-read DIR`, `--allow-write DIR`): a directory
//! added to the compiled policy for this run, checked like a workspace for writes, and never a way
//! to reach what the policy masks. `--allow-write` of a protected workspace path (`.envrc`) takes
//! that path out of fs.protect for the run instead, and says so.

use crate::spec::SessionSpec;
use crate::{Result, SessionError};
use cordon_policy::{Access, CompiledPolicy, PathRule};
use std::path::{Path, PathBuf};

pub fn apply(spec: &SessionSpec, policy: &mut CompiledPolicy, notices: &mut Vec<String>) -> Result<()> {
    for p in &spec.allow_read {
        let dir = resolve(p, "--allow-read", &spec.cwd)?;
        refuse_secret(&dir, p, "--allow-read", policy)?;
        grant(policy, dir, p, "--allow-read", |a| {
            a.read = true;
            a.exec = true;
        });
    }
    for p in &spec.allow_write {
        if unprotect(p, &spec.cwd, policy, notices) {
            continue;
        }
        let dir = resolve(p, "--allow-write", &spec.cwd)?;
        refuse_secret(&dir, p, "--allow-write", policy)?;
        crate::guards::refuse_writable(
            &dir,
            "a one-off writable tree (--allow-write)",
            "hint: grant a project directory, or write the grant into a policy file if you really mean it",
        )?;
        grant(policy, dir, p, "--allow-write", |a| {
            a.read = true;
            a.write = true;
        });
    }
    Ok(())
}

/// `--allow-write` of a protected path (or of a path inside a protected directory): the protection
/// is lifted for this run, and the user told which. True when the policy's own grants then let the
/// session write it (nothing else to grant).
fn unprotect(p: &Path, cwd: &Path, policy: &mut CompiledPolicy, notices: &mut Vec<String>) -> bool {
    let abs = cordon_policy::paths::normalize(&if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) });
    // The nearest existing ancestor with its symlinks resolved (the policy's paths are canonical),
    // the rest as given: the path may not exist yet.
    let mut base = abs.as_path();
    let real = loop {
        if let Ok(r) = base.canonicalize() {
            break r.join(abs.strip_prefix(base).unwrap_or(Path::new("")));
        }
        match base.parent() {
            Some(b) => base = b,
            None => return false,
        }
    };
    let mut lifted = false;
    policy.fs.protect.retain(|m| {
        if !cordon_policy::paths::is_within(&real, &m.path) {
            return true;
        }
        notices.push(format!(
            "--allow-write {}: {} is writable in this run, and can be created (the policy protects it: {})",
            p.display(),
            m.entry,
            m.describe()
        ));
        lifted = true;
        false
    });
    lifted && cordon_policy::decide::fs_allows(policy, &real, Access { read: false, write: true, exec: false })
}

/// Absolute (against the caller's working directory), symlinks resolved, and a directory.
fn resolve(p: &Path, flag: &str, cwd: &Path) -> Result<PathBuf> {
    let abs = if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    let real = abs.canonicalize().map_err(|e| {
        SessionError::Refused(format!("{flag} {}: {e}\n  hint: give an existing directory", p.display()))
    })?;
    if !real.is_dir() {
        bail!("{flag} {}: not a directory\n  hint: grant the directory that holds it", p.display());
    }
    // The session gets its own fresh /tmp, /dev/shm and /run: the host's are not there to grant.
    if let Some(t) = ["/tmp", "/dev/shm", "/run"].iter().find(|t| real.starts_with(t)) {
        bail!(
            "{flag} {}: {t} is private to the session (a fresh tmpfs), so the host's {} cannot be granted\n  hint: put what the session needs elsewhere (e.g. under /var/tmp or the workspace)",
            p.display(),
            real.display()
        );
    }
    Ok(real)
}

/// A grant that would contain or sit inside a masked path (credentials, the audit log) is refused:
/// the mask would still hide it, and a user who asks for it should learn why here.
fn refuse_secret(dir: &Path, given: &Path, flag: &str, policy: &CompiledPolicy) -> Result<()> {
    for m in &policy.fs.deny {
        let real = m.path.canonicalize().unwrap_or_else(|_| m.path.clone());
        if dir.starts_with(&real) {
            bail!(
                "{flag} {}: it is inside {}, which is masked ({} in {}): a one-off grant cannot reach secrets\n  hint: if the task needs a credential, pass it another way (an environment variable the policy keeps)",
                given.display(),
                real.display(),
                m.entry,
                m.origin
            );
        }
    }
    Ok(())
}

fn grant(policy: &mut CompiledPolicy, dir: PathBuf, given: &Path, flag: &str, f: impl Fn(&mut Access)) {
    match policy.fs.rules.iter_mut().find(|r| r.path == dir) {
        Some(r) => f(&mut r.access),
        None => {
            let mut access = Access::default();
            f(&mut access);
            policy.fs.rules.push(PathRule {
                path: dir,
                access,
                entry: given.display().to_string(),
                origin: flag.to_string(),
            });
        }
    }
}
