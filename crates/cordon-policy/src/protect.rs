//! `fs.protect` and `fs.unprotect`: workspace paths kept read-only inside the writable workspace
//! (and, when absent, from being created), named one by one or by the group `@host-exec-auto`
//! (see [`crate::hostexec`]); and the opt-out of one of them, which must name one that the policy
//! or a policy it extends protects.

use crate::error::{Diagnostic, Source};
use crate::hostexec::{auto_reason, HOST_EXEC_AUTO, HOST_EXEC_MANUAL};
use crate::load::Layer;
use crate::model::{RawPolicy, S};
use crate::paths::check_relative;
use std::path::{Component, Path};

/// The workspace-relative paths an entry names, each with why it is protected: the group's entries
/// with their reasons, or the entry itself.
pub fn expand(entry: &str) -> Vec<(&str, Option<String>)> {
    if entry == HOST_EXEC_AUTO.name {
        return HOST_EXEC_AUTO
            .entries
            .iter()
            .map(|e| (*e, auto_reason(e).map(|r| format!("{}: {r}", HOST_EXEC_AUTO.name))))
            .collect();
    }
    vec![(entry, None)]
}

/// Checks one entry of fs.protect or fs.unprotect: a workspace-relative path or `@host-exec-auto`.
pub fn check(raw: &str) -> Result<(), (String, Option<String>)> {
    if raw == HOST_EXEC_AUTO.name {
        return Ok(());
    }
    if raw == HOST_EXEC_MANUAL.name {
        return Err((
            format!("{raw} is not a list of paths to keep read-only: its files are meant to be edited"),
            Some(format!("protect `{}` (files a host tool runs without asking)", HOST_EXEC_AUTO.name)),
        ));
    }
    if raw.starts_with('@') {
        return Err((
            format!("unknown group `{raw}` for workspace paths"),
            Some(format!("the group here is `{}`; or write a path relative to the workspace", HOST_EXEC_AUTO.name)),
        ));
    }
    check_relative(raw)
}

/// The entries as the same path: `.idea` and `.idea/`, `a//b` and `a/b`.
fn key(rel: &str) -> Vec<Component<'_>> {
    Path::new(rel).components().collect()
}

/// Every `fs.unprotect` entry of `raw` must name a path that it or the files it extends (`earlier`,
/// already loaded) protect; an opt-out of nothing is a typo that would leave the file protected.
pub fn check_unprotect(raw: &RawPolicy, src: &Source, earlier: &[Layer]) -> Vec<Diagnostic> {
    let protected: Vec<&str> = earlier
        .iter()
        .flat_map(|l| l.raw.fs.protect.iter())
        .chain(raw.fs.protect.iter())
        .flat_map(|e| expand(e.get_ref()))
        .map(|(rel, _)| rel)
        .collect();
    let mut out = vec![];
    for (i, e) in raw.fs.unprotect.iter().enumerate() {
        let names = |rel: &str| protected.iter().any(|p| key(p) == key(rel));
        let ok = expand(e.get_ref()).iter().any(|(rel, _)| names(rel));
        if !ok && check(e.get_ref()).is_ok() {
            out.push(not_protected(src, e, i, &protected));
        }
    }
    out
}

fn not_protected(src: &Source, e: &S<String>, i: usize, protected: &[&str]) -> Diagnostic {
    let list = if protected.is_empty() { "nothing".to_string() } else { protected.join(", ") };
    src.diag(
        e.span(),
        format!("fs.unprotect[{i}]"),
        format!("`{}` is not protected by this policy or the ones it extends", e.get_ref()),
        Some(format!("fs.unprotect names one of the protected paths: {list}")),
    )
}

/// Whether `rel` (as written in fs.unprotect) takes away the protected entry `entry`.
pub fn unprotects(unprotect: &str, entry: &str) -> bool {
    expand(unprotect).iter().any(|(rel, _)| key(rel) == key(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_expands_to_its_paths_with_their_reasons() {
        let v = expand("@host-exec-auto");
        let envrc = v.iter().find(|(p, _)| *p == ".envrc").expect(".envrc");
        assert_eq!(envrc.1.as_deref(), Some("@host-exec-auto: direnv runs it on the host when you cd here"));
        assert_eq!(expand(".git/hooks"), vec![(".git/hooks", None)]);
        assert!(check("@host-exec-auto").is_ok());
        assert!(check("@host-exec-manual").is_err());
        assert!(check("@nope").is_err() && check("/abs").is_err() && check("*.sh").is_err());
        assert!(unprotects(".idea", ".idea/") && unprotects("@host-exec-auto", ".envrc"));
        assert!(!unprotects(".envrc", ".envrc.local"));
    }
}
