//! `fs.review`: workspace files that run when a human runs something (issue 19, THREATS.md
//! category 3). They stay writable (agents edit build files for good reasons), but every change to
//! them is listed at the end of the session, recorded and alerted on. This module holds the pure
//! part: the form of a pattern, how a pattern matches a workspace-relative path, and what runs the
//! files of each pattern of `@host-exec-manual`. The walk that compares the files is the session's.

use crate::hostexec::{HOST_EXEC_MANUAL, REVIEW_SKIP_DIRS};
use serde::Serialize;

/// What happens to the session's changes of reviewed files (`fs.review_mode`, `cordon run --review`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewMode {
    /// Written in place, listed at the end, recorded and alerted on.
    #[default]
    List,
    /// Also held: restored to their state at the start, the session's versions written to a patch
    /// outside the workspace for the user to apply.
    Hold,
}

impl ReviewMode {
    pub fn parse(s: &str) -> Option<ReviewMode> {
        match s {
            "list" => Some(ReviewMode::List),
            "hold" => Some(ReviewMode::Hold),
            _ => None,
        }
    }
}

/// One compiled `fs.review` pattern: workspace-relative, `*`/`?` within a name, `**` across
/// directories.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewPattern {
    pub pattern: String,
    /// The entry as written: `@host-exec-manual` or the pattern itself.
    pub entry: String,
    /// The policy file it came from.
    pub origin: String,
    /// What runs the files it matches, in words.
    pub runs: String,
}

/// What runs the files of each `@host-exec-manual` pattern (a test checks that every pattern of the
/// group has its line here).
const RUNNERS: &[(&str, &str)] = &[
    (".github/workflows/**", "CI (GitHub Actions), with the project's secrets"),
    (".github/actions/**", "CI (GitHub Actions), with the project's secrets"),
    (".gitlab-ci.yml", "CI (GitLab), with the project's secrets"),
    (".circleci/**", "CI (CircleCI), with the project's secrets"),
    (".buildkite/**", "CI (Buildkite), with the project's secrets"),
    ("Jenkinsfile", "CI (Jenkins), with the project's secrets"),
    ("azure-pipelines.yml", "CI (Azure Pipelines), with the project's secrets"),
    (".travis.yml", "CI (Travis), with the project's secrets"),
    ("bitbucket-pipelines.yml", "CI (Bitbucket Pipelines), with the project's secrets"),
    ("**/Makefile", "make"),
    ("**/makefile", "make"),
    ("**/GNUmakefile", "make"),
    ("**/*.mk", "make (an included makefile)"),
    ("justfile", "just"),
    ("Justfile", "just"),
    ("Taskfile.yml", "task"),
    ("Rakefile", "rake"),
    ("**/CMakeLists.txt", "cmake"),
    ("**/build.gradle", "gradle"),
    ("**/build.gradle.kts", "gradle"),
    ("settings.gradle", "gradle"),
    ("settings.gradle.kts", "gradle"),
    ("gradlew", "./gradlew"),
    ("**/pom.xml", "maven (plugins)"),
    ("**/package.json", "npm/yarn/pnpm scripts (install hooks run on the next install)"),
    ("**/build.rs", "cargo build"),
    (".cargo/config", "cargo (runners, aliases, build settings)"),
    (".cargo/config.toml", "cargo (runners, aliases, build settings)"),
    ("**/setup.py", "pip install / python setup.py"),
    ("**/setup.cfg", "pip install (setuptools)"),
    ("**/pyproject.toml", "pip install (the build backend and its hooks)"),
    ("noxfile.py", "nox"),
    ("tox.ini", "tox"),
    ("**/Dockerfile", "docker build"),
    ("**/Dockerfile.*", "docker build"),
    ("**/*.dockerfile", "docker build"),
    ("**/Containerfile", "podman/docker build"),
    ("docker-compose*.yml", "docker compose"),
    ("docker-compose*.yaml", "docker compose"),
    ("compose.yml", "docker compose"),
    ("compose.yaml", "docker compose"),
    ("*.sh", "a person running the script"),
    ("**/.envrc", "direnv, on cd into its directory"),
    (".gitmodules", "git submodule update (fetches and checks out its URLs)"),
];

/// What runs the files a `@host-exec-manual` pattern matches.
pub fn runner(pattern: &str) -> Option<&'static str> {
    RUNNERS.iter().find(|(p, _)| *p == pattern).map(|(_, r)| *r)
}

/// The group `fs.review` may name.
pub const REVIEW_GROUP: &str = "@host-exec-manual";

/// Checks the form of one `fs.review` entry; a message and a hint on error.
pub fn check(raw: &str) -> Result<(), (String, Option<String>)> {
    let hint_rel = || {
        Some("write a pattern relative to the workspace, e.g. \"ci/*.sh\" or \"**/Makefile\" (`*` within a name, `**` across directories)".to_string())
    };
    if raw.is_empty() {
        return Err(("empty pattern".into(), hint_rel()));
    }
    if raw.contains('\0') {
        return Err(("pattern contains a NUL byte".into(), None));
    }
    if let Some(g) = raw.strip_prefix('@') {
        if raw == REVIEW_GROUP {
            return Ok(());
        }
        let hint = if raw == "@host-exec-auto" {
            "@host-exec-auto belongs in fs.protect (those files run without anyone asking, so they stay read-only)"
                .to_string()
        } else {
            format!("the group fs.review knows is {REVIEW_GROUP}")
        };
        return Err((format!("unknown review group `@{g}`"), Some(hint)));
    }
    if raw.starts_with(['/', '~', '$']) {
        return Err(("review patterns are relative to the workspace".into(), hint_rel()));
    }
    if raw.ends_with('/') {
        return Err((
            "a review pattern names files, not a directory".into(),
            Some(format!("write \"{}**\" for everything beneath it", raw)),
        ));
    }
    for seg in raw.split('/') {
        match seg {
            "" => return Err(("empty path component (`//`)".into(), hint_rel())),
            "." | ".." => return Err(("`.` and `..` are not allowed in review patterns".into(), hint_rel())),
            "**" => {}
            s if s.contains("**") => {
                return Err((
                    format!("`**` must be a whole path component, not part of `{s}`"),
                    Some("e.g. \"**/Makefile\" or \"ci/**\"".into()),
                ))
            }
            s if s.contains(['[', ']', '{', '}', '\\']) => {
                return Err((
                    "only `*`, `?` and `**` are wildcards in review patterns".into(),
                    Some("list each alternative as its own pattern".into()),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Does the workspace-relative path `rel` (components separated by `/`) match `pattern`? `*` and
/// `?` match within one component; `**` matches any number of components, none included. A pattern
/// without `/` names a file at the top of the workspace only (`*.sh`); write `**/` to match at any
/// depth.
pub fn matches(pattern: &str, rel: &str) -> bool {
    let r: Vec<&str> = rel.split('/').collect();
    Glob::new(pattern).matches(&r)
}

/// A pattern split into its components once, for a walk that matches every file against it.
#[derive(Debug, Clone)]
pub struct Glob {
    segs: Vec<String>,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob { segs: pattern.split('/').map(str::to_string).collect() }
    }

    /// Does the path whose components are `rel` match?
    pub fn matches(&self, rel: &[&str]) -> bool {
        // The last component first: it is literal or a name pattern in every pattern but `dir/**`,
        // and rejects nearly every file at once.
        if let (Some(last), Some(name)) = (self.segs.last(), rel.last()) {
            if last != "**" && !crate::paths::name_matches(last, name) {
                return false;
            }
        }
        let p: Vec<&str> = self.segs.iter().map(String::as_str).collect();
        segs(&p, rel)
    }
}

fn segs(p: &[&str], r: &[&str]) -> bool {
    match p.split_first() {
        None => r.is_empty(),
        Some((&"**", rest)) => (0..=r.len()).any(|i| segs(rest, &r[i..])),
        Some((first, rest)) => {
            r.split_first().is_some_and(|(name, rr)| crate::paths::name_matches(first, name) && segs(rest, rr))
        }
    }
}

/// Is the workspace directory `rel` (relative, `/`-separated) one the review walk does not enter?
/// A one-component entry of [`REVIEW_SKIP_DIRS`] is skipped at any depth (`node_modules` of a
/// package in a monorepo); a longer one where it is written (`.cargo/registry`).
pub fn skip_dir(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    REVIEW_SKIP_DIRS.iter().any(|s| if s.contains('/') { *s == rel } else { *s == name })
}

/// The compiled patterns of one `fs.review` entry.
pub fn expand(entry: &str, origin: &str) -> Vec<ReviewPattern> {
    if entry == REVIEW_GROUP {
        return HOST_EXEC_MANUAL
            .entries
            .iter()
            .map(|p| ReviewPattern {
                pattern: (*p).to_string(),
                entry: entry.to_string(),
                origin: origin.to_string(),
                runs: runner(p).unwrap_or("a person, outside the sandbox").to_string(),
            })
            .collect();
    }
    vec![ReviewPattern {
        pattern: entry.to_string(),
        entry: entry.to_string(),
        origin: origin.to_string(),
        runs: format!("named for review by {origin}"),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manual_pattern_says_what_runs_it_and_is_a_valid_pattern() {
        for p in HOST_EXEC_MANUAL.entries {
            assert!(runner(p).is_some(), "{p}: add what runs it to RUNNERS");
            assert_eq!(check(p), Ok(()), "{p}");
        }
        assert_eq!(RUNNERS.len(), HOST_EXEC_MANUAL.entries.len(), "a RUNNERS line for a pattern not in the group");
    }

    #[test]
    fn patterns_match_by_component() {
        let yes = [
            ("**/Makefile", "Makefile"),
            ("**/Makefile", "a/b/Makefile"),
            ("**/build.rs", "crates/x/build.rs"),
            (".github/workflows/**", ".github/workflows/x.yml"),
            (".github/workflows/**", ".github/workflows/sub/x.yml"),
            ("*.sh", "run.sh"),
            ("**/Dockerfile.*", "docker/Dockerfile.dev"),
            ("docker-compose*.yml", "docker-compose.prod.yml"),
            ("ci/**/deploy", "ci/deploy"),
        ];
        for (p, r) in yes {
            assert!(matches(p, r), "{p} should match {r}");
        }
        let no = [
            ("*.sh", "scripts/run.sh"),
            ("**/Makefile", "Makefile.bak"),
            ("**/Makefile", "src/Makefile/x"),
            (".github/workflows/**", ".github/CODEOWNERS"),
            ("justfile", "sub/justfile"),
            ("**/build.rs", "src/build.rs.txt"),
        ];
        for (p, r) in no {
            assert!(!matches(p, r), "{p} should not match {r}");
        }
    }

    #[test]
    fn checks_say_what_is_wrong() {
        assert_eq!(check("@host-exec-manual"), Ok(()));
        assert_eq!(check("ci/*.sh"), Ok(()));
        for bad in
            ["", "/etc/x", "~/x", "$WORKSPACE/x", "../x", "a/../b", "./x", "a//b", "dir/", "a**", "[ab].sh", "@nope"]
        {
            let e = check(bad).expect_err(bad);
            assert!(!e.0.is_empty(), "{bad}");
        }
        assert!(check("@host-exec-auto").expect_err("auto").1.expect("hint").contains("fs.protect"));
        assert!(check("dir/").expect_err("dir").1.expect("hint").contains("dir/**"));
    }

    #[test]
    fn dependency_and_build_directories_are_skipped_at_any_depth() {
        assert!(skip_dir("node_modules"));
        assert!(skip_dir("packages/a/node_modules"));
        assert!(skip_dir(".git"));
        assert!(skip_dir(".cargo/registry"));
        assert!(!skip_dir("x/.cargo/registry"));
        assert!(!skip_dir("src"));
    }
}
