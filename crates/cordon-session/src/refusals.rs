//! Refusals named with their fix without the sensor (which needs root), from two sources:
//!
//! - **writes** the session attempts, shown by the seccomp write watch (see
//!   `cordon_sandbox::plan::write_watch`): each is compared with the policy, and one the policy
//!   refuses becomes a denial naming the path, the rule and the fix (`--allow-write DIR`, or
//!   `--profile build` for a package manager's cache). It is a prediction from the policy the
//!   session's mounts and Landlock are built from: the watch lets the call through before the
//!   kernel decides it and never sees its result.
//! - **reads and connections** are not watched (reads are the bulk of all calls and must not pay):
//!   when the session failed, paths its command line names (and, for git, the workspace's local
//!   remotes) that exist on the host but that the session cannot see, and hosts named in URLs that
//!   the policy does not let it reach, are named with `--allow-read` / `--allow-write` /
//!   `--allow-net`. A path put together at run time is missed.

use cordon_policy::decide;
use cordon_policy::{Access, CompiledPolicy};
use cordon_sandbox::report::Denial;
use cordon_sandbox::writes::{WriteAttempt, WriteHook};
use cordon_schema::outcome::Outcome;
use cordon_schema::Layer;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `CORDON_REFUSAL_WATCH=off` in cordon's own environment turns the write watch off (to measure
/// its cost), whatever the policy's `fs.watch_writes` (the setting for a write-heavy session that
/// would rather not pay the supervisor's round trip per write).
pub fn watch_wanted() -> bool {
    std::env::var_os("CORDON_REFUSAL_WATCH").is_none_or(|v| v != "off")
}

/// Judges the write watch's attempts against `policy`. `mounts`: the session has its own built
/// root (else Landlock alone refuses). Writes under one directory are one denial, counted.
pub fn write_hook(policy: CompiledPolicy, mounts: bool) -> WriteHook {
    let mut groups: Vec<(PathBuf, Denial)> = vec![];
    Box::new(move |a: &WriteAttempt| {
        let (path, d) = refused(&policy, a)?;
        let dir = fix_dir(&path);
        // A protected path's reason says why, what the session meets and how to allow it: one
        // line per protected path (its placeholder is no directory to group under).
        let protected = d.reason.contains(" is protected (");
        let key = if protected { path.clone() } else { dir.clone() };
        if let Some((_, g)) = groups.iter().find(|(k, _)| *k == key) {
            return Some(g.clone());
        }
        let read = decide::fs(&policy, &path, Access { read: true, write: false, exec: false }).allow;
        let (layer, errno) = match (mounts, read) {
            (true, _) if protected => (Layer::Mounts, ""),
            (true, true) => (Layer::Mounts, "it is read-only inside the session (\"Read-only file system\")"),
            (true, false) => (Layer::Mounts, "it is outside every grant: inside the session it does not exist (\"No such file or directory\") or its directory is read-only (\"Read-only file system\")"),
            (false, _) => (Layer::Landlock, "Landlock refuses it (\"Permission denied\")"),
        };
        let denial = Denial {
            layer,
            pid: 0,
            comm: String::new(),
            what: format!("write under {} (first: {} {})", dir.display(), a.call, path.display()),
            reason: if protected {
                d.reason.clone()
            } else {
                format!("{}: {errno}; {}", d.reason, fix(&policy, &path, &dir, &d.reason))
            },
            count: 1,
        };
        groups.push((key, denial.clone()));
        Some(denial)
    })
}

/// The first path of the attempt whose write the policy refuses and that the kernel will refuse
/// for that reason (not EEXIST or ENOENT, which it would return anyway), with the decision.
fn refused(policy: &CompiledPolicy, a: &WriteAttempt) -> Option<(PathBuf, decide::Decision)> {
    let write = Access { read: false, write: true, exec: false };
    let last = a.paths.len().checked_sub(1)?;
    // A link's source is only read.
    let first = if a.call.starts_with("link") { last } else { 0 };
    for (i, p) in a.paths.iter().enumerate().skip(first) {
        // The kernel's own trees: their grants are the policy's devices, and the kernel decides.
        if p.starts_with("/proc") || p.starts_with("/dev") || p.starts_with("/sys") {
            continue;
        }
        if decide::fs_allows(policy, p, write) || unmasked(policy, p, a, i == last) {
            continue;
        }
        let d = decide::fs(policy, p, write);
        // The host's tree is the session's wherever it is granted at all (bind mounts).
        let exists = p.symlink_metadata().is_ok();
        let creates = i == last && a.creates();
        if (exists && creates && !a.writes_existing()) || (!exists && !creates) {
            continue;
        }
        return Some((p.clone(), d));
    }
    None
}

/// A file whose name fs.hide matches (a venv's `cacert.pem`) where the session may write, but that
/// is not masked: fs.hide masks the files the start's scan finds, so not one the session makes,
/// nor one in a directory the scan skips (`.venv`, `node_modules`, ...). Writing it works, and is
/// no refusal. (A creating open of a file that was masked is refused and not named: the
/// supervisor does not know which files the scan masked.)
fn unmasked(policy: &CompiledPolicy, p: &Path, a: &WriteAttempt, target: bool) -> bool {
    let write = Access { read: false, write: true, exec: false };
    let hidden = |name: &str| policy.fs.hide.iter().any(|pat| cordon_policy::paths::name_matches(pat, name));
    let Ok(rel) = p.strip_prefix(&policy.workspace) else { return false };
    let skipped = rel.parent().is_some_and(|d| {
        d.components().any(|c| cordon_sandbox::plan::ns::HIDE_SKIP_DIRS.iter().any(|s| c.as_os_str() == *s))
    });
    p.file_name().and_then(|n| n.to_str()).is_some_and(hidden)
        && p.parent().is_some_and(|d| decide::fs_allows(policy, d, write))
        && (skipped || (target && a.creates()))
}

/// The directory a grant would name: the nearest one on the host that holds the path.
fn fix_dir(path: &Path) -> PathBuf {
    let mut d = path.parent().unwrap_or(path);
    while !d.is_dir() {
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    d.to_path_buf()
}

/// What the user can do about a refused write to `path` (in `dir`).
fn fix(policy: &CompiledPolicy, path: &Path, dir: &Path, reason: &str) -> String {
    if reason.contains("fs.deny") || reason.contains("fs.hide") {
        return "the policy keeps it from every session; if the task needs it changed, ask the user to do it outside the session".into();
    }
    for (names, cache) in crate::caches::TOOLS {
        let c = expand(cache, &policy.home);
        if path.starts_with(&c) {
            return format!("it is the cache of {}: if the task installs packages, ask the user to run with `--profile build` (it grants the toolchain caches)", names[0]);
        }
    }
    match crate::guards::refuse_writable(dir, "a one-off writable tree (--allow-write)", "") {
        Ok(()) => {
            format!("if the task needs to write there, ask the user to run with `--allow-write {}`", dir.display())
        }
        Err(e) => {
            let e = e.to_string();
            let why = e.lines().next().unwrap_or_default().trim_start_matches("refusing to use ");
            format!("`--allow-write {}` would be refused ({why}); write elsewhere (the workspace, /tmp), or ask the user for a narrower grant", dir.display())
        }
    }
}

fn expand(p: &str, home: &Path) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(p),
    }
}

/// The words of a command line, whole: each argument split at blanks, `=` and shell punctuation.
fn words(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .flat_map(|a| {
            a.split(|c: char| c.is_whitespace() || ";&|()<>`'\"=,".contains(c)).map(str::to_string).collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// After a failed session: paths the command names (or git's local remotes) that the session
/// cannot see, and hosts named in URLs it may not reach, each with its fix (see the module's doc).
pub fn hints(policy: &CompiledPolicy, argv: &[OsString], workspace: &Path, outcome: &Outcome) -> Vec<String> {
    if outcome.exit_code == 0 {
        return vec![];
    }
    let words = words(argv);
    let git = words.iter().any(|w| w.rsplit('/').next() == Some("git"));
    let mut named: Vec<(PathBuf, Option<String>)> = vec![];
    for w in &words {
        let p = w.strip_prefix("file://").unwrap_or(w);
        let p = match p.strip_prefix("~/") {
            Some(rest) => policy.home.join(rest),
            None if p.starts_with('/') => PathBuf::from(p),
            None => continue,
        };
        named.push((cordon_policy::paths::normalize(&p), None));
    }
    if git {
        named.extend(remotes(workspace).into_iter().map(|(name, p)| (p, Some(name))));
    }
    let read = Access { read: true, write: false, exec: false };
    let mut out: Vec<String> = vec![];
    let mut seen: Vec<PathBuf> = vec![];
    for (p, remote) in named {
        if p.symlink_metadata().is_err() || seen.contains(&p) || decide::fs(policy, &p, read).allow {
            continue;
        }
        seen.push(p.clone());
        let dir = if p.is_dir() { p.clone() } else { p.parent().unwrap_or(&p).to_path_buf() };
        let d = decide::fs(policy, &p, read);
        if d.reason.contains("fs.deny") || d.reason.contains("fs.hide") {
            out.push(format!("the session cannot see {}: {}; a one-off grant cannot reach it", p.display(), d.reason));
            continue;
        }
        let what = match &remote {
            Some(name) => format!("git remote `{name}` is {}", p.display()),
            None => format!("the command names {}", p.display()),
        };
        let (r, w) = (format!("--allow-read {}", dir.display()), format!("--allow-write {}", dir.display()));
        let how = if git {
            format!("to push to it, ask the user to run with `{w}`; to fetch from it, `{r}`")
        } else {
            format!("if the task needs it, ask the user to run with `{r}` (to read it) or `{w}` (to change it)")
        };
        out.push(format!("{what}, which the session cannot see ({}: it does not exist inside); {how}", d.reason));
    }
    out.extend(url_hints(policy, &words, outcome));
    out
}

/// `url = /path` or `file://` remotes of the workspace's git repository: (name, path).
fn remotes(workspace: &Path) -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string(workspace.join(".git/config")).unwrap_or_default();
    let (mut out, mut section) = (vec![], None::<String>);
    for line in text.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix("[remote \"").and_then(|s| s.strip_suffix("\"]")) {
            section = Some(s.to_string());
        } else if line.starts_with('[') {
            section = None;
        } else if let (Some(name), Some(url)) = (&section, line.strip_prefix("url")) {
            let url = url.trim_start().trim_start_matches('=').trim();
            let p = url.strip_prefix("file://").unwrap_or(url);
            if p.starts_with('/') {
                out.push((name.clone(), cordon_policy::paths::normalize(Path::new(p))));
            }
        }
    }
    out
}

/// Hosts named in URLs on the command line that the policy does not let the session reach (and
/// that the proxy has not already named).
fn url_hints(policy: &CompiledPolicy, words: &[String], outcome: &Outcome) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for w in words {
        let Some((scheme, rest)) = w.split_once("://") else { continue };
        let port = match scheme {
            "https" | "wss" => 443,
            "http" | "ws" => 80,
            "ftp" => 21,
            "ssh" | "git+ssh" => 22,
            "git" => 9418,
            _ => continue,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        let target = match hostport.rsplit_once(':') {
            Some((_, p)) if p.parse::<u16>().is_ok() && !hostport.ends_with(']') => hostport.to_string(),
            _ => format!("{hostport}:{port}"),
        };
        if hostport.is_empty() || out.iter().any(|o| o.contains(&format!("`--allow-net {target}`"))) {
            continue;
        }
        let d = decide::connect(policy, &target);
        let proxied = outcome.egress.iter().any(|e| !e.allowed && format!("{}:{}", e.host, e.port) == target);
        if d.allow || proxied {
            continue;
        }
        out.push(format!(
            "the command names {target} ({w}), which the session may not reach ({}); if the task needs it, ask the user to run with `--allow-net {target}`",
            d.reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_sandbox::plan::write_watch::Effect;

    fn compiled(spec: &str) -> CompiledPolicy {
        let cx = cordon_policy::Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
        cordon_policy::load_and_compile(spec, &cx).expect("builtin").1
    }

    fn attempt(call: &str, effect: Effect, flags: u64, paths: &[&str]) -> WriteAttempt {
        WriteAttempt { pid: 1, call: call.into(), paths: paths.iter().map(PathBuf::from).collect(), effect, flags }
    }

    /// Only what the kernel will refuse because of the policy: not writes it allows, not EEXIST
    /// (mkdir -p over /usr), not ENOENT of a path missing on the host too.
    #[test]
    fn a_write_is_named_only_when_the_policy_is_why_it_fails() {
        let p = compiled("builtin:agent");
        let mut hook = write_hook(p, true);
        let creat = 0o1 | 0o100 | 0o1000;
        assert!(hook(&attempt("openat", Effect::Open, creat, &["/home/u/ws/x"])).is_none(), "workspace");
        assert!(hook(&attempt("openat", Effect::Open, creat, &["/tmp/x"])).is_none(), "tmp");
        assert!(hook(&attempt("openat", Effect::Open, 0o1, &["/dev/null"])).is_none(), "devices");
        assert!(hook(&attempt("mkdir", Effect::Make, 0, &["/usr"])).is_none(), "EEXIST");
        assert!(hook(&attempt("unlink", Effect::Change, 0, &["/usr/no-such-file-here"])).is_none(), "ENOENT");
        assert!(hook(&attempt("openat", Effect::Open, 0o100, &["/etc/hostname"])).is_none(), "O_CREAT of a file there");
        let d = hook(&attempt("openat", Effect::Open, 0o1, &["/etc/hostname"])).expect("read-only");
        assert_eq!(d.layer, Layer::Mounts);
        assert!(d.what.contains("/etc/hostname") && d.reason.contains("Read-only file system"), "{d:?}");
        assert!(d.reason.contains("`--allow-write /etc` would be refused"), "/etc is a system tree: {d:?}");
        let d = hook(&attempt("renameat2", Effect::Move, 0, &["/home/u/ws/a", "/var/tmp/cordon-nowhere/b"]));
        let d = d.expect("outside the view");
        assert!(d.reason.contains("outside every grant") && d.reason.contains("--allow-write /var/tmp"), "{d:?}");
    }

    /// A file a host tool runs (.envrc): the refusal says why it is protected and how the user
    /// allows it, never to grant the whole workspace.
    #[test]
    fn a_write_to_a_protected_path_says_why_and_how_to_allow_it() {
        let mut hook = write_hook(compiled("builtin:agent"), true);
        let creat = 0o1 | 0o100 | 0o1000;
        let d = hook(&attempt("openat", Effect::Open, creat, &["/home/u/ws/.envrc"])).expect("protected");
        assert_eq!(d.layer, Layer::Mounts);
        assert!(
            d.reason.starts_with(".envrc is protected (@host-exec-auto: direnv runs it on the host when you cd here)"),
            "{d:?}"
        );
        assert!(d.reason.contains("allow with --allow-write .envrc (one run) or [fs] unprotect"), "{d:?}");
        assert!(!d.reason.contains("--allow-write /home/u/ws"), "{d:?}");
        // Writes under one directory are one denial: a new hook for the next.
        let mut hook = write_hook(compiled("builtin:agent"), true);
        let d = hook(&attempt("renameat2", Effect::Move, 0, &["/home/u/ws/s", "/home/u/ws/.husky/pre-commit"]));
        let d = d.expect("rename into a protected directory");
        assert!(d.reason.contains("husky runs its scripts") && d.reason.contains("--allow-write .husky "), "{d:?}");
    }

    #[test]
    fn urls_and_paths_on_the_command_line_are_words() {
        let argv: Vec<OsString> =
            ["git", "push", "file:///srv/r.git", "--repo=/srv/x", "curl https://example.com:8443/x"]
                .map(OsString::from)
                .into();
        let w = words(&argv);
        for x in ["file:///srv/r.git", "/srv/x", "https://example.com:8443/x"] {
            assert!(w.iter().any(|y| y == x), "{x}: {w:?}");
        }
    }
}
