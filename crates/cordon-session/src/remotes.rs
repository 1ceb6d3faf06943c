//! Bare git repositories outside the workspace that the session may write (a local remote granted
//! with `--allow-write ../remote.git` or `[fs] write`): their `hooks/` and `config` are protected
//! (`fs.protect`, read-only binds) without being named. git runs a bare repository's hooks on the
//! host at the user's next push to it, and its config can point git at programs
//! (`core.hooksPath`, `core.fsmonitor`, ...): the same category of files as the workspace's own
//! `.git/hooks` and `.git/config`, which `builtin:agent` protects. A push writes neither (objects,
//! refs, logs), so it still works.
//!
//! Automatic rather than named in a policy: a user who grants a remote for pushes does not think
//! of its hooks, and a grant written for one task must not silently become a way to run code on
//! the host. `--allow-write REMOTE/hooks` (or `REMOTE/config`) lifts one for a run, and says so.
//! It looks at each write grant outside the workspace and the directories directly in it (a grant
//! of a directory of remotes); a repository deeper down is not found.

use cordon_policy::paths::is_within;
use cordon_policy::{CompiledPolicy, Protected};
use std::path::{Path, PathBuf};

/// Why a bare repository's files are protected, quoted in refusals and `cordon policy explain`.
pub const WHY: &str = "a bare git repository the session can write: git runs its hooks on the host at the next push to it, and its config can point git at programs";

/// The entries a bare repository gets.
const FILES: [&str; 2] = ["hooks", "config"];

/// Adds the protection of every bare repository the policy lets the session write, except the
/// paths `lifted` names (`--allow-write` of one of them, or of a path inside), each with a notice.
pub fn protect(policy: &mut CompiledPolicy, lifted: &[PathBuf], notices: &mut Vec<String>) {
    let mut repos: Vec<PathBuf> = vec![];
    for r in policy.fs.rules.iter().filter(|r| r.access.write) {
        if is_within(&r.path, &policy.workspace) || is_within(&policy.workspace, &r.path) {
            continue;
        }
        let children = std::fs::read_dir(&r.path).into_iter().flatten().flatten().map(|d| d.path());
        for dir in std::iter::once(r.path.clone()).chain(children) {
            if is_bare(&dir) && !repos.contains(&dir) {
                repos.push(dir);
            }
        }
    }
    for repo in repos {
        for f in FILES {
            let path = repo.join(f);
            if policy.fs.protect.iter().any(|m| m.path == path) {
                continue;
            }
            let entry = path.display().to_string();
            if let Some(l) = lifted.iter().find(|l| is_within(l, &path)) {
                notices.push(format!(
                    "--allow-write {}: {entry} is writable in this run, and can be created ({WHY})",
                    l.display()
                ));
                continue;
            }
            let origin = "a bare repository granted for writing".to_string();
            policy.fs.protect.push(Protected { path, entry, origin, why: Some(WHY.to_string()) });
        }
    }
}

/// A bare repository as git finds one: `HEAD`, `objects/` and `refs/` in the directory itself (not
/// a workspace's `.git`, which the workspace's own protection covers).
fn is_bare(dir: &Path) -> bool {
    let plain = |p: &Path, d: bool| p.symlink_metadata().is_ok_and(|m| if d { m.is_dir() } else { m.is_file() });
    dir.file_name().is_some_and(|n| n != ".git")
        && plain(&dir.join("HEAD"), false)
        && plain(&dir.join("objects"), true)
        && plain(&dir.join("refs"), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_granted_bare_repository_gets_its_hooks_and_config_protected_unless_lifted() {
        let tmp = std::env::temp_dir().join(format!("cordon-remotes-{}", std::process::id()));
        let (ws, repo, plain) = (tmp.join("ws"), tmp.join("all/r.git"), tmp.join("all/notes"));
        for d in [&ws, &repo.join("objects"), &repo.join("refs"), &plain] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").expect("HEAD");
        let mut c = cordon_policy::load_and_compile("builtin:agent", &cordon_policy::Context::for_workspace(ws))
            .expect("policy")
            .1;
        let before = c.fs.protect.len();
        c.fs.rules.push(cordon_policy::PathRule {
            path: tmp.join("all"),
            access: cordon_policy::Access { read: true, write: true, exec: false },
            entry: "all".into(),
            origin: "test".into(),
        });
        let mut notices = vec![];
        let mut one = c.clone();
        protect(&mut one, &[], &mut notices);
        let added: Vec<_> = one.fs.protect[before..].iter().map(|m| m.path.clone()).collect();
        assert_eq!(added, vec![repo.join("hooks"), repo.join("config")]);
        assert!(notices.is_empty());
        protect(&mut c, &[repo.join("hooks/pre-receive")], &mut notices);
        assert_eq!(c.fs.protect.len(), before + 1);
        assert!(notices[0].contains("hooks is writable in this run"), "{notices:?}");
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
