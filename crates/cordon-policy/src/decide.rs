//! Answers "would this policy allow X?" from the compiled policy alone. `cordon policy test` and
//! `explain` use it; the sandbox's plans are built from the same data, and the integration tests check
//! that the kernel agrees.

use crate::compiled::*;
use crate::paths::{is_within, name_matches};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    pub reason: String,
}

fn yes(r: impl Into<String>) -> Decision {
    Decision { allow: true, reason: r.into() }
}
fn no(r: impl Into<String>) -> Decision {
    Decision { allow: false, reason: r.into() }
}

/// Why an access is refused, before it is put in words.
enum FsVerdict<'a> {
    Allowed,
    Denied(&'a Masked),
    Hidden(&'a str, &'a str),
    Protected(&'a Protected),
    /// read, write, exec: the accesses no rule grants.
    Missing([bool; 3]),
}

fn fs_verdict<'a>(c: &'a CompiledPolicy, path: &'a Path, want: Access) -> FsVerdict<'a> {
    let inside = crate::paths::within_of(path);
    if let Some(m) = c.fs.deny.iter().find(|m| inside(&m.path)) {
        return FsVerdict::Denied(m);
    }
    if inside(&c.workspace) {
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if let Some(p) = c.fs.hide.iter().find(|p| name_matches(p, name)) {
                return FsVerdict::Hidden(name, p);
            }
        }
    }
    // Inside the workspace, and in a bare repository granted outside it (its hooks and config).
    if want.write {
        if let Some(m) = c.fs.protect.iter().find(|m| inside(&m.path)) {
            return FsVerdict::Protected(m);
        }
    }
    let mut have = Access::default();
    for r in c.fs.rules.iter().filter(|r| inside(&r.path)) {
        have.read |= r.access.read;
        have.write |= r.access.write;
        have.exec |= r.access.exec;
    }
    let missing = [want.read && !have.read, want.write && !have.write, want.exec && !have.exec];
    if missing.contains(&true) {
        FsVerdict::Missing(missing)
    } else {
        FsVerdict::Allowed
    }
}

/// Whether the policy allows it, without the words (the write watch asks on every watched call).
pub fn fs_allows(c: &CompiledPolicy, path: &Path, want: Access) -> bool {
    matches!(fs_verdict(c, path, want), FsVerdict::Allowed)
}

/// Filesystem access to `path` (absolute, lexically normalized).
pub fn fs(c: &CompiledPolicy, path: &Path, want: Access) -> Decision {
    match fs_verdict(c, path, want) {
        FsVerdict::Denied(m) => no(format!(
            "{} is in fs.deny ({} from {}); it is masked even inside allowed trees",
            path.display(),
            m.entry,
            m.origin
        )),
        FsVerdict::Hidden(name, p) => {
            no(format!("{name} matches fs.hide pattern `{p}`: such files are unreadable in the workspace"))
        }
        FsVerdict::Protected(m) => no(protected_reason(c, path, m)),
        FsVerdict::Missing(m) => {
            let names: Vec<&str> =
                ["read", "write", "exec"].iter().zip(m).filter(|(_, x)| *x).map(|(n, _)| *n).collect();
            no(format!("{} is not in the {} allowlist", path.display(), names.join("/")))
        }
        FsVerdict::Allowed => {
            let via: Vec<String> =
                c.fs.rules
                    .iter()
                    .filter(|r| is_within(path, &r.path))
                    .map(|r| format!("{} ({})", r.entry, r.origin))
                    .collect();
            yes(format!("allowed by {}", via.join(", ")))
        }
    }
}

/// Why a write to `path` (the protected path or inside it) is refused, and how the user allows it.
fn protected_reason(c: &CompiledPolicy, path: &Path, m: &Protected) -> String {
    let rel = path.strip_prefix(&c.workspace).unwrap_or(path).display().to_string();
    let entry = m.entry.trim_end_matches('/');
    // fs.unprotect names workspace paths; one outside (a bare repository's hooks) is lifted per run.
    let or_policy =
        if Path::new(entry).is_absolute() { String::new() } else { format!(" or [fs] unprotect = [\"{entry}\"]") };
    format!(
        "{rel} is protected ({}); it stays read-only and cannot be created inside the session; allow with --allow-write {entry} (one run){or_policy}",
        m.describe()
    )
}

/// Does an environment variable reach the sandbox?
pub fn env(c: &CompiledPolicy, name: &str) -> Decision {
    if name.starts_with("LD_") {
        return no("loader variables (LD_*) are always removed");
    }
    if c.env.set.iter().any(|(k, _)| k == name) {
        return yes("set by env.set");
    }
    if c.env.keep.iter().any(|k| k == name) {
        return yes("kept by name in env.keep");
    }
    if let Some(p) = c.env.drop.iter().find(|p| name_matches(p, name)) {
        return no(format!("matches env.drop pattern `{p}`"));
    }
    if !c.env.keep.is_empty() && !c.env.keep.iter().any(|k| name_matches(k, name)) {
        return no("not in env.keep");
    }
    yes("passed through")
}

/// Is a syscall denied (always, or under some argument condition)?
pub fn syscall(c: &CompiledPolicy, name: &str) -> Decision {
    let rules: Vec<_> =
        c.syscalls.iter().filter(|r| r.name == name && r.action != crate::syscalls::DenyAction::Supervise).collect();
    match rules.iter().find(|r| r.when.is_empty()) {
        Some(r) => no(format!("seccomp: {}", r.reason)),
        None if !rules.is_empty() => {
            // One reason per distinct rule: many argument rules share a reason (socket families).
            let mut reasons: Vec<&str> = vec![];
            for r in &rules {
                if !reasons.contains(&r.reason.as_str()) {
                    reasons.push(&r.reason);
                }
            }
            yes(format!("allowed except when: {}", reasons.join("; ")))
        }
        None => yes("not in the deny list"),
    }
}

/// Outbound connection to `host:port`.
pub fn connect(c: &CompiledPolicy, target: &str) -> Decision {
    let (host, port) = match target.rsplit_once(':') {
        Some((h, p)) => (h.trim_matches(['[', ']']), p.parse::<u16>().unwrap_or(0)),
        None => (target, 0),
    };
    match c.net.egress {
        Egress::None => no("net.egress = \"none\": the session has no network beyond its own loopback"),
        Egress::Open => yes("net.egress = \"open\""),
        Egress::Proxy => match crate::compile::net_allows(&c.net.allow, host, port) {
            Some(a) => yes(format!("allowed by net.allow `{}` through the egress proxy", a.text)),
            None => no(format!("{host}:{port} is not in net.allow")),
        },
    }
}

/// Evaluates one `[[test]]` example.
pub fn example(c: &CompiledPolicy, p: &Probe) -> Decision {
    let a = |read, write, exec| Access { read, write, exec };
    match p {
        Probe::Read(x) => fs(c, x, a(true, false, false)),
        Probe::Write(x) => fs(c, x, a(false, true, false)),
        Probe::Exec(x) => fs(c, x, a(false, false, true)),
        Probe::Connect(t) => connect(c, t),
        Probe::Env(n) => env(c, n),
        Probe::Syscall(n) => syscall(c, n),
    }
}
