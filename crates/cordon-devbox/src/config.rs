//! `devbox.toml`: what a devbox snapshot is made of. Every problem is reported with file:line:col,
//! the field and a hint, like a policy's, and all of them are found before anything is built.
//!
//! ```toml
//! base = "host"                          # the host's system trees (the only base for now)
//! code = { repo = "../app", ref = "main" }   # a local git repository (relative to this file)
//! setup = [["make", "deps"]]             # run once at build, in the code directory
//! setup_net = ["pypi.org:443", "@pypi"]  # the only egress setup commands have
//! policy = "builtin:agent"               # the agent's base policy (a file relative to this one)
//! env = { LANG = "C.UTF-8" }             # set for the agent's commands
//! ready = ["test", "-f", "Makefile"]     # the probe a claim waits for
//! ```

use crate::DevboxError;
use cordon_policy::error::Source;
use cordon_policy::Diagnostic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

type S<T> = Spanned<T>;

const FIELDS: &str = "the file takes base, code (repo, ref), setup, setup_net, policy, env and ready";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevbox {
    base: Option<S<String>>,
    code: Option<S<RawCode>>,
    #[serde(default)]
    setup: Vec<S<Vec<S<String>>>>,
    #[serde(default)]
    setup_net: Vec<S<String>>,
    policy: Option<S<String>>,
    #[serde(default)]
    env: BTreeMap<S<String>, S<String>>,
    ready: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCode {
    repo: Option<S<String>>,
    #[serde(rename = "ref")]
    git_ref: Option<S<String>>,
}

/// A checked `devbox.toml`. Paths are absolute; the policy's text is read (it names the snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Devbox {
    /// The file, as named.
    pub file: String,
    pub base: Base,
    /// The code's repository (absolute) and the ref to build from.
    pub repo: PathBuf,
    pub git_ref: String,
    pub setup: Vec<Vec<String>>,
    pub setup_net: Vec<String>,
    /// `builtin:NAME` or an absolute policy file path.
    pub policy: String,
    /// The policy's full text, every layer (what the snapshot's hash covers).
    pub policy_text: String,
    pub env: BTreeMap<String, String>,
    pub ready: Option<Vec<String>>,
}

/// Where the devbox's system trees come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// The host's own /usr, /etc, ... (read-only, as for `cordon run`).
    Host,
}

/// Environment names the devbox may not set: they decide what the dynamic loader or the shell runs.
const ENV_REFUSED: &[&str] = &["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV"];

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<Devbox, DevboxError> {
    let file = path.display().to_string();
    let text = cordon_policy::load::read_file(path)
        .map_err(|e| DevboxError::Read { path: file.clone(), err: read_problem(e) })?;
    let abs = std::path::absolute(path).map_err(|e| DevboxError::Read { path: file.clone(), err: e.to_string() })?;
    let base = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    parse(&file, &text, &base)
}

/// Checks `text` (the file `file`, whose relative paths are taken from `dir`).
pub fn parse(file: &str, text: &str, dir: &Path) -> Result<Devbox, DevboxError> {
    let src = Source::new(file, text);
    let raw: RawDevbox = toml::from_str(text).map_err(|e| {
        let hint = e.message().contains("unknown field").then(|| FIELDS.to_string());
        DevboxError::Config(vec![src.diag(e.span().unwrap_or(0..0), "", e.message().trim(), hint)])
    })?;
    let mut errs: Vec<Diagnostic> = vec![];
    let base = match &raw.base {
        None => Base::Host,
        Some(b) if b.get_ref() == "host" => Base::Host,
        Some(b) => {
            errs.push(src.diag(
                b.span(),
                "base",
                format!(
                    "base `{}` is not supported yet: devboxes are built on the host's system trees for now",
                    b.get_ref()
                ),
                Some(
                    "write base = \"host\" or leave it out; a root filesystem directory or tarball comes later".into(),
                ),
            ));
            Base::Host
        }
    };
    let (mut repo, mut git_ref) = (PathBuf::new(), String::new());
    match &raw.code {
        None => errs.push(src.diag(
            0..0,
            "code",
            "the devbox has no code",
            Some("add code = { repo = \"PATH\", ref = \"main\" } (a local git repository)".into()),
        )),
        Some(c) => {
            match &c.get_ref().repo {
                Some(r) if !r.get_ref().trim().is_empty() => repo = dir.join(r.get_ref()),
                Some(r) => errs.push(src.diag(r.span(), "code.repo", "empty repository path", Some(repo_hint()))),
                None => errs.push(src.diag(c.span(), "code.repo", "the code has no repository", Some(repo_hint()))),
            }
            match &c.get_ref().git_ref {
                Some(r) if valid_ref(r.get_ref()) => git_ref = r.get_ref().clone(),
                Some(r) => errs.push(src.diag(
                    r.span(),
                    "code.ref",
                    format!("`{}` is not a ref git can name", r.get_ref()),
                    Some(
                        "a branch, tag or commit, e.g. ref = \"main\"; it may not start with `-` or hold spaces".into(),
                    ),
                )),
                None => errs.push(src.diag(
                    c.span(),
                    "code.ref",
                    "the code has no ref",
                    Some("add ref = \"main\" (a branch, tag or commit)".into()),
                )),
            }
        }
    }
    let mut setup = vec![];
    for (i, cmd) in raw.setup.iter().enumerate() {
        if cmd.get_ref().is_empty() || cmd.get_ref()[0].get_ref().is_empty() {
            errs.push(src.diag(
                cmd.span(),
                format!("setup[{i}]"),
                "an empty command",
                Some("each setup step is a command and its arguments, e.g. [\"make\", \"deps\"]".into()),
            ));
        }
        setup.push(cmd.get_ref().iter().map(|a| a.get_ref().clone()).collect());
    }
    for (i, n) in raw.setup_net.iter().enumerate() {
        if let Err(e) = cordon_policy::netspec::parse_allow_item(n.get_ref()) {
            errs.push(src.diag(
                n.span(),
                format!("setup_net[{i}]"),
                e,
                Some("HOST[:PORT], *.domain, an IP or CIDR, or a preset such as @pypi".into()),
            ));
        }
    }
    let setup_net = raw.setup_net.iter().map(|n| n.get_ref().clone()).collect();
    let (mut policy, mut policy_text) = (format!("builtin:{}", cordon_policy::builtin::DEFAULT), String::new());
    if let Some(p) = &raw.policy {
        let named = p.get_ref();
        policy = if named.starts_with("builtin:") { named.clone() } else { dir.join(named).display().to_string() };
        match cordon_policy::load(&policy) {
            Ok(l) => policy_text = l.full_text(),
            Err(e) => errs.push(src.diag(
                p.span(),
                "policy",
                format!("the policy `{named}` does not load:\n{e}"),
                Some("builtin:NAME (agent, readonly, build, strict, ...) or a policy file relative to this one".into()),
            )),
        }
    } else if let Ok(l) = cordon_policy::load(&policy) {
        policy_text = l.full_text();
    }
    let mut env = BTreeMap::new();
    for (k, v) in &raw.env {
        let name = k.get_ref();
        let bad_name = name.is_empty() || name.contains('=') || name.contains('\0');
        if bad_name || ENV_REFUSED.contains(&name.as_str()) {
            errs.push(src.diag(
                k.span(),
                format!("env.{name}"),
                if bad_name {
                    "not an environment variable name".to_string()
                } else {
                    format!("{name} decides what runs before the agent's own command; a devbox does not set it")
                },
                Some("env sets plain variables, e.g. env = { LANG = \"C.UTF-8\" }".into()),
            ));
        } else if v.get_ref().contains('\0') {
            errs.push(src.diag(v.span(), format!("env.{name}"), "a NUL byte in the value", None));
        }
        env.insert(name.clone(), v.get_ref().clone());
    }
    let ready = match &raw.ready {
        Some(r) if r.get_ref().is_empty() || r.get_ref()[0].get_ref().is_empty() => {
            errs.push(src.diag(
                r.span(),
                "ready",
                "an empty probe",
                Some("ready is a command whose success means the devbox is ready, e.g. [\"python3\", \"-c\", \"import app\"]".into()),
            ));
            None
        }
        Some(r) => Some(r.get_ref().iter().map(|a| a.get_ref().clone()).collect()),
        None => None,
    };
    if !errs.is_empty() {
        return Err(DevboxError::Config(errs));
    }
    Ok(Devbox { file: file.to_string(), base, repo, git_ref, setup, setup_net, policy, policy_text, env, ready })
}

/// What a read failure was, without the policy wording `read_file` wraps it in.
fn read_problem(e: cordon_policy::PolicyError) -> String {
    match e {
        cordon_policy::PolicyError::Read { source, .. } => source.to_string(),
        cordon_policy::PolicyError::File { problem, .. } => problem.to_string(),
        other => other.to_string(),
    }
}

fn repo_hint() -> String {
    "code = { repo = \"PATH\", ref = \"main\" }: a local git repository, relative to this file".into()
}

/// A ref git reads as a ref, never as an option or more than one word.
fn valid_ref(r: &str) -> bool {
    !r.is_empty() && !r.starts_with('-') && !r.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Devbox, DevboxError> {
        parse("devbox.toml", text, Path::new("/srv"))
    }

    fn errors(text: &str) -> String {
        match check(text) {
            Err(e) => e.to_string(),
            Ok(d) => panic!("accepted: {d:?}"),
        }
    }

    #[test]
    fn a_full_file_is_read_with_paths_from_its_directory() {
        let d = check(
            "code = { repo = \"app\", ref = \"main\" }\nsetup = [[\"make\", \"deps\"]]\nsetup_net = [\"pypi.org:443\"]\nenv = { LANG = \"C.UTF-8\" }\nready = [\"true\"]\n",
        )
        .expect("valid");
        assert_eq!(d.repo, PathBuf::from("/srv/app"));
        assert_eq!((d.git_ref.as_str(), d.base), ("main", Base::Host));
        assert_eq!(d.setup, vec![vec!["make".to_string(), "deps".to_string()]]);
        assert_eq!(d.policy, "builtin:agent");
        assert!(d.policy_text.contains("builtin:agent"), "{}", d.policy_text);
        assert_eq!(d.ready, Some(vec!["true".to_string()]));
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_place_and_the_fields_there_are() {
        let e = errors("code = { repo = \"a\", ref = \"main\" }\nsetpu = []\n");
        assert!(e.starts_with("devbox.toml:2:1: error"), "{e}");
        assert!(e.contains("unknown field `setpu`") && e.contains("hint: the file takes base"), "{e}");
        let e = errors("code = { repo = \"a\", ref = \"main\", branch = \"x\" }\n");
        assert!(e.contains("devbox.toml:1:") && e.contains("unknown field `branch`"), "{e}");
    }

    #[test]
    fn every_problem_is_positioned_and_named() {
        let e = errors(
            "base = \"debian:12\"\ncode = { repo = \"a\", ref = \"-x\" }\nsetup = [[]]\nsetup_net = [\"http://x\"]\nenv = { LD_PRELOAD = \"/x.so\" }\nready = []\n",
        );
        for want in [
            "devbox.toml:1:8: error in `base`: base `debian:12` is not supported yet",
            "devbox.toml:2:28: error in `code.ref`",
            "devbox.toml:3:10: error in `setup[0]`: an empty command",
            "devbox.toml:4:14: error in `setup_net[0]`",
            "devbox.toml:5:9: error in `env.LD_PRELOAD`",
            "devbox.toml:6:9: error in `ready`: an empty probe",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn code_is_required_with_a_repo_and_a_ref() {
        assert!(errors("").contains("error in `code`: the devbox has no code"));
        assert!(errors("code = { ref = \"main\" }").contains("error in `code.repo`"));
        assert!(errors("code = { repo = \"a\" }").contains("error in `code.ref`: the code has no ref"));
    }

    #[test]
    fn a_policy_that_does_not_load_is_named() {
        let e = errors("code = { repo = \"a\", ref = \"main\" }\npolicy = \"builtin:nosuch\"\n");
        assert!(e.contains("devbox.toml:2:10: error in `policy`: the policy `builtin:nosuch` does not load"), "{e}");
    }
}
