//! Package managers and their caches. A granted cache that does not exist is not in the session's
//! root and cannot be made inside it, so `fs.create` directories (the build profile's ~/.cache and
//! ~/.npm) are made before the session. Under a policy that keeps a cache read-only, a package
//! manager fails (npm, cargo) or runs without it (pip), and the summary says to use `--profile
//! build` when the supervisor has evidence that this is what happened: the command line names the
//! package manager and the session failed, or the sensor saw a write under its cache refused.

use cordon_policy::decide;
use cordon_policy::{Access, CompiledPolicy};
use cordon_schema::outcome::Outcome;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Makes the policy's missing `fs.create` directories (0700, as the invoking user). Returns what
/// the user should read: what was made, and what could not be.
pub fn make(policy: &CompiledPolicy) -> (bool, Vec<String>) {
    let (mut made, mut notices) = (vec![], vec![]);
    for m in &policy.fs.create {
        if m.path.symlink_metadata().is_ok() {
            continue;
        }
        let write = Access { read: true, write: true, exec: false };
        let d = decide::fs(policy, &m.path, write);
        if !d.allow {
            notices.push(format!("fs.create `{}` ({}): not made: the policy does not let the session write it ({}); the tools that keep a cache there run without it or fail\n  hint: add it to fs.write, or remove it from fs.create", m.entry, m.origin, d.reason));
            continue;
        }
        match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&m.path) {
            Ok(()) => made.push(m.entry.clone()),
            Err(e) => notices.push(format!("WARNING: fs.create `{}` ({}): cannot make {}: {e}; the tools that keep a cache there run without it or fail in this session", m.entry, m.origin, m.path.display())),
        }
    }
    let any = !made.is_empty();
    if any {
        notices.insert(
            0,
            format!(
                "made {} (policy `{}` grants writing {} and lists {} in fs.create; mode 0700)",
                and_list(&made),
                policy.name,
                if made.len() == 1 { "it" } else { "them" },
                if made.len() == 1 { "it" } else { "them" },
            ),
        );
    }
    (any, notices)
}

fn and_list(v: &[String]) -> String {
    match v {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Package managers (as their command is spelled) and the cache each writes, as `builtin:build`
/// grants it (a test checks that it does).
pub const TOOLS: &[(&[&str], &str)] = &[
    (&["pip", "pip3", "pip3.11", "pip3.12", "pip3.13"], "~/.cache/pip"),
    (&["uv", "uvx"], "~/.cache/uv"),
    (&["npm", "npx"], "~/.npm"),
    (&["yarn"], "~/.cache/yarn"),
    (&["pnpm"], "~/.local/share/pnpm"),
    (&["cargo"], "~/.cargo"),
    (&["go"], "~/.cache/go-build"),
    (&["mvn"], "~/.m2"),
    (&["gradle", "gradlew"], "~/.gradle"),
];

/// The words of a command line: each argument split at blanks and shell punctuation (a `sh -c`
/// script names its programs too), each word's last path component.
fn words(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy())
        .flat_map(|a| {
            a.split(|c: char| c.is_whitespace() || ";&|()<>`'\"$=".contains(c)).map(str::to_string).collect::<Vec<_>>()
        })
        .map(|w| w.rsplit('/').next().unwrap_or(&w).to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// `text` names `path` or a path beneath it (not merely a longer name: `~/.npmrc` is not under
/// `~/.npm`).
fn mentions(text: &str, path: &str) -> bool {
    text.match_indices(path).any(|(i, _)| {
        text[i + path.len()..].chars().next().is_none_or(|c| c == '/' || c.is_whitespace() || "()\"',:;`".contains(c))
    })
}

/// The hint to use `--profile build`, for each package manager whose cache this policy keeps
/// read-only and that the session needed (see the module's doc).
pub fn hint(
    policy: &CompiledPolicy,
    argv: &[OsString],
    outcome: &Outcome,
    sensor: Option<&cordon_schema::sensor::Summary>,
) -> Vec<String> {
    let named = words(argv);
    let refused: Vec<&str> = sensor
        .map(|s| s.denials.iter().filter_map(|d| d.path.as_deref()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(outcome.denials.items.iter().map(|d| d.what.as_str()))
        .collect();
    let failed = outcome.exit_code != 0;
    let mut out = vec![];
    for (names, cache) in TOOLS {
        let path = expand(cache, &policy.home);
        let write = Access { read: true, write: true, exec: false };
        if decide::fs(policy, &path, write).allow {
            continue;
        }
        let tool = names.iter().find(|n| named.iter().any(|w| w == *n));
        let seen = refused.iter().any(|r| mentions(r, &path.to_string_lossy()));
        let why = match (tool, seen) {
            (_, true) => "a write under it was refused".to_string(),
            (Some(t), false) if failed => format!("the command ran {t} and failed (exit {})", outcome.exit_code),
            _ => continue,
        };
        out.push(format!(
            "{cache} (the cache of {}) is read-only under policy `{}`, and {why}: package managers fail without their cache (npm, cargo: ENOENT or \"Read-only file system\") or run without it (pip). If the task installs packages, ask the user to run with `--profile build` (it grants the toolchain caches; downloads also need --allow-net, e.g. @pypi, @npm, @crates)",
            names[0], policy.name
        ));
    }
    out
}

fn expand(p: &str, home: &Path) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_longer_name_is_not_a_path_beneath() {
        assert!(mentions("write under /h/.npm (first: openat /h/.npm/x)", "/h/.npm"));
        assert!(mentions("/h/.npm", "/h/.npm"));
        assert!(!mentions("openat /h/.npmrc", "/h/.npm"));
    }

    fn compiled(spec: &str) -> CompiledPolicy {
        let cx = cordon_policy::Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
        cordon_policy::load_and_compile(spec, &cx).expect("builtin").1
    }

    /// Every cache the hint names is one `--profile build` grants, and the default does not.
    #[test]
    fn the_build_profile_grants_every_cache_the_hint_names() {
        let (build, agent) = (compiled("builtin:build"), compiled("builtin:agent"));
        let write = Access { read: true, write: true, exec: false };
        for (names, cache) in TOOLS {
            let p = expand(cache, &build.home);
            assert!(decide::fs(&build, &p, write).allow, "{names:?}: {cache}");
            assert!(!decide::fs(&agent, &p, write).allow, "{names:?}: {cache}");
        }
        let made: Vec<_> = build.fs.create.iter().map(|m| m.entry.as_str()).collect();
        assert_eq!(made, ["~/.cache", "~/.npm"]);
        assert!(agent.fs.create.is_empty());
    }

    #[test]
    fn a_script_names_its_programs() {
        let argv: Vec<OsString> = ["/bin/sh", "-c", "cd /tmp && /usr/bin/npm install x; python3 -m pip download y"]
            .map(OsString::from)
            .into();
        let w = words(&argv);
        assert!(["npm", "pip", "sh"].iter().all(|n| w.iter().any(|x| x == n)), "{w:?}");
        assert!(!w.iter().any(|x| x == "cargo"));
    }
}
