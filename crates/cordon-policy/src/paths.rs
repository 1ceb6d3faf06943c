//! Path entries: variables (`~`, `$HOME`, `$WORKSPACE`, `$TMP`) and groups (`@system`, `@secrets`, ...).
//! Everything here is lexical; the sandbox resolves symlinks when it opens the paths.

use std::path::{Component, Path, PathBuf};

/// Where a policy is being compiled for: the values of its variables.
#[derive(Debug, Clone)]
pub struct Context {
    /// The invoking user's home directory (`~`, `$HOME`).
    pub home: PathBuf,
    /// The session's workspace (`$WORKSPACE`, `@workspace`).
    pub workspace: PathBuf,
    /// The session's private temp dir as the sandboxed process sees it (`$TMP`, `@tmp`).
    pub tmp: PathBuf,
}

impl Context {
    /// A context with the calling user's home and the given workspace; the private tmp is `/tmp`.
    pub fn for_workspace(workspace: PathBuf) -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/nonexistent-home"));
        Context { home, workspace, tmp: PathBuf::from("/tmp") }
    }
}

pub struct Group {
    pub name: &'static str,
    pub about: &'static str,
    pub paths: &'static [&'static str],
}

/// The path groups a policy may name.
pub const GROUPS: &[Group] = &[
    Group {
        name: "@system",
        about: "the operating system: programs, libraries and configuration",
        paths: &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"],
    },
    Group { name: "@workspace", about: "the session's workspace", paths: &["$WORKSPACE"] },
    Group { name: "@tmp", about: "the session's private temp dir", paths: &["$TMP"] },
    Group {
        name: "@devices",
        about: "harmless devices and the terminal",
        paths: &[
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty",
            "/dev/pts",
            "/dev/ptmx",
            "/dev/shm",
        ],
    },
    Group {
        name: "@proc",
        about: "the session's own /proc, CPU topology and the memory settings runtimes probe",
        // transparent_hugepage: every Rust (jemalloc, std) and JVM start reads `enabled`; refusing
        // it raised alerts on every build and protected nothing.
        paths: &["/proc", "/sys/devices/system/cpu", "/sys/fs/cgroup", "/sys/kernel/mm/transparent_hugepage"],
    },
    Group {
        name: "@toolchains",
        about: "language toolchains and package caches in HOME",
        paths: &[
            "~/.cargo",
            "~/.rustup",
            "~/.npm",
            "~/.cache/pip",
            "~/.cache/go-build",
            "~/go",
            "~/.nvm",
            "~/.pyenv",
            "~/.local/bin",
            "~/.local/lib",
            "~/.bun",
            "~/.deno",
            "~/.gradle",
            "~/.m2",
            "~/.cache/yarn",
            "~/.local/share/pnpm",
            "~/.cache/uv",
        ],
    },
    Group {
        name: "@secrets",
        about: "credentials: keys, tokens, cloud and browser profiles, password hashes",
        paths: &[
            "~/.ssh",
            "~/.aws",
            "~/.gnupg",
            "~/.kube",
            "~/.docker",
            "~/.netrc",
            "~/.git-credentials",
            // git credential-store's file in the XDG place (`~/.config/git` is read by the agent).
            "~/.config/git/credentials",
            "~/.config/gcloud",
            "~/.azure",
            "~/.config/gh",
            "~/.npmrc",
            "~/.pypirc",
            "~/.cargo/credentials",
            "~/.cargo/credentials.toml",
            "~/.mozilla",
            "~/.config/google-chrome",
            "~/.config/chromium",
            "~/.password-store",
            "~/.local/share/keyrings",
            "~/.config/cordon",
            "~/.local/state/cordon",
            "~/.vault-token",
            "~/.terraform.d/credentials.tfrc.json",
            "~/.config/hub",
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/shadow-",
            "/etc/gshadow-",
            "/etc/sudoers",
            "/etc/ssh/ssh_host_rsa_key",
            "/etc/ssh/ssh_host_ecdsa_key",
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssh/ssh_host_dsa_key",
            "/etc/cordon",
            "/var/lib/cordon",
            // cordon's sensor: BPF objects and the kernel's tracing interfaces (self-protection).
            "/sys/fs/bpf",
            "/sys/kernel/tracing",
            "/sys/kernel/debug",
        ],
    },
];

pub fn group(name: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.name == name)
}

pub const VARS: &[&str] = &["$HOME", "$WORKSPACE", "$TMP"];

/// Checks the form of a path entry; returns a message and a hint on error.
pub fn check_entry(raw: &str) -> Result<(), (String, Option<String>)> {
    if raw.is_empty() {
        return Err(("empty path".into(), Some("remove the entry or write a path".into())));
    }
    if raw.contains('\0') {
        return Err(("path contains a NUL byte".into(), None));
    }
    if raw.starts_with('@') {
        if group(raw).is_none() {
            let names: Vec<_> = GROUPS.iter().map(|g| g.name).collect();
            return Err((format!("unknown path group `{raw}`"), Some(format!("known groups: {}", names.join(", ")))));
        }
        return Ok(());
    }
    if raw.contains('*') || raw.contains('?') || raw.contains('[') {
        return Err((
            "globs are not supported in path lists".into(),
            Some("name a directory: access to a directory covers everything beneath it".into()),
        ));
    }
    if let Some(rest) = raw.strip_prefix('~') {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Err(("`~user` is not supported".into(), Some("write `~/...` for the invoking user's home".into())));
        }
    } else if raw.starts_with('$') {
        let ok = VARS.iter().any(|v| raw == *v || (raw.starts_with(v) && raw.as_bytes().get(v.len()) == Some(&b'/')));
        if !ok {
            let var = raw.split('/').next().unwrap_or(raw);
            return Err((
                format!("unknown variable `{var}`"),
                Some(format!("known variables: ~, {}", VARS.join(", "))),
            ));
        }
    } else if !raw.starts_with('/') {
        return Err((
            format!("relative path `{raw}`"),
            Some(format!(
                "paths are absolute or start with ~, $WORKSPACE or a @group: did you mean \"$WORKSPACE/{raw}\"?"
            )),
        ));
    }
    if Path::new(raw).components().any(|c| c == Component::ParentDir) {
        return Err(("`..` is not allowed in paths".into(), Some("write the path without `..`".into())));
    }
    Ok(())
}

/// Checks a workspace-relative path (fs.protect).
pub fn check_relative(raw: &str) -> Result<(), (String, Option<String>)> {
    if raw.is_empty() {
        return Err(("empty path".into(), None));
    }
    if raw.starts_with('/') || raw.starts_with('~') || raw.starts_with('$') || raw.starts_with('@') {
        return Err((
            "protected paths are relative to the workspace".into(),
            Some(format!("write it as `{}`", raw.trim_start_matches(['/', '~', '$', '@']))),
        ));
    }
    if Path::new(raw).components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(("`..` and `.` are not allowed here".into(), None));
    }
    if raw.contains(['*', '?', '[']) {
        return Err(("globs are not supported in fs.protect".into(), Some("use fs.hide for name patterns".into())));
    }
    Ok(())
}

/// Checks a file-name pattern (fs.hide): a name with `*` wildcards, no `/`.
pub fn check_name_pattern(raw: &str) -> Result<(), (String, Option<String>)> {
    if raw.is_empty() || raw == "*" {
        return Err(("pattern must name something".into(), Some("e.g. `.env*`".into())));
    }
    if raw.contains('/') {
        return Err(("a name pattern cannot contain `/`".into(), Some("use fs.deny for paths".into())));
    }
    Ok(())
}

/// Expands one entry into absolute paths.
pub fn expand(raw: &str, cx: &Context) -> Vec<PathBuf> {
    if let Some(g) = group(raw) {
        return g.paths.iter().flat_map(|p| expand(p, cx)).collect();
    }
    let sub = |base: &Path, rest: &str| {
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            base.to_path_buf()
        } else {
            base.join(rest)
        }
    };
    let p = if let Some(r) = raw.strip_prefix('~') {
        sub(&cx.home, r)
    } else if let Some(r) = raw.strip_prefix("$HOME") {
        sub(&cx.home, r)
    } else if let Some(r) = raw.strip_prefix("$WORKSPACE") {
        sub(&cx.workspace, r)
    } else if let Some(r) = raw.strip_prefix("$TMP") {
        sub(&cx.tmp, r)
    } else {
        PathBuf::from(raw)
    };
    vec![normalize(&p)]
}

/// Lexical normalization: drops `.` and duplicate separators.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Is `p` equal to or beneath `root`? (component-wise, as `Path::starts_with`). Clean paths (no
/// empty or `.` components, no trailing `/`) are compared as bytes: the supervisor asks this for
/// every rule on every watched write, and walking components cost microseconds per call.
pub fn is_within(p: &Path, root: &Path) -> bool {
    within_of(p)(root)
}

/// `is_within` for one `p` against many roots: `p` is scanned once, a root only when the bytes
/// alone do not decide (a policy decision asks it for every rule; scanning both paths on each call
/// was a seventh of `cordon run`'s instructions before the sandbox starts).
pub fn within_of(p: &Path) -> impl Fn(&Path) -> bool + '_ {
    use std::os::unix::ffi::OsStrExt;
    let pb = p.as_os_str().as_bytes();
    let p_clean = clean(pb);
    move |root: &Path| {
        let rb = root.as_os_str().as_bytes();
        if p_clean {
            if rb == b"/" {
                return pb.first() == Some(&b'/');
            }
            // Equal bytes up to a component boundary of a clean path are equal components.
            if pb.starts_with(rb) && (pb.len() == rb.len() || pb[rb.len()] == b'/') {
                return true;
            }
            if clean(rb) {
                return false;
            }
        }
        p.starts_with(root)
    }
}

/// No empty or `.` component and no trailing `/` (but `/` itself): its bytes are its components.
/// One pass over the bytes.
fn clean(b: &[u8]) -> bool {
    match b {
        [] => false,
        [b'/'] => true,
        [.., b'/'] => false,
        _ => {
            let mut at_start = true;
            for (i, &c) in b.iter().enumerate() {
                if at_start && ((c == b'/' && i > 0) || (c == b'.' && b.get(i + 1).is_none_or(|&n| n == b'/'))) {
                    return false;
                }
                at_start = c == b'/';
            }
            true
        }
    }
}

#[cfg(test)]
mod within_tests {
    use super::is_within;
    use std::path::Path;

    #[test]
    fn is_within_agrees_with_path_starts_with() {
        let paths = [
            "/", "/a", "/a/b", "/ab", "/a/b/c", "a", "a/b", "ab", "/a/", "/a//b", "/a/./b", "./a", ".", "/a/..",
            "/a/../b", "a/", "", "/./a", "//a", "/a/b/", "/ä/b", "/a/b.", "/a/.b",
        ];
        for p in paths {
            for r in paths {
                assert_eq!(is_within(Path::new(p), Path::new(r)), Path::new(p).starts_with(r), "{p:?} within {r:?}");
            }
        }
    }
}

/// Glob match with `*` (any run) and `?` (one char), for names.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    // Iterative wildcard match with single-star backtracking: linear in practice, no allocation.
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) && p[pi] != b'*' {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    fn cx() -> Context {
        Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() }
    }
    #[test]
    fn expands() {
        assert_eq!(expand("~/.cargo", &cx()), vec![PathBuf::from("/home/u/.cargo")]);
        assert_eq!(expand("$WORKSPACE", &cx()), vec![PathBuf::from("/home/u/ws")]);
        assert!(expand("@system", &cx()).contains(&PathBuf::from("/usr")));
        assert_eq!(expand("/a/./b//c", &cx()), vec![PathBuf::from("/a/b/c")]);
    }
    #[test]
    fn checks() {
        assert!(check_entry("relative").is_err());
        assert!(check_entry("/a/../b").is_err());
        assert!(check_entry("@nope").is_err());
        assert!(check_entry("$NOPE/x").is_err());
        assert!(check_entry("~bob").is_err());
        assert!(check_entry("/a/*").is_err());
        assert!(check_entry("$WORKSPACE/x").is_ok());
        assert!(check_relative(".git/hooks").is_ok());
        assert!(check_relative("/abs").is_err());
    }
    #[test]
    fn globs() {
        assert!(name_matches(".env*", ".env"));
        assert!(name_matches(".env*", ".env.local"));
        assert!(!name_matches(".env*", "x.env"));
        assert!(name_matches("*.pem", "key.pem"));
        assert!(name_matches("*_TOKEN_*", "GH_TOKEN_X"));
        assert!(!name_matches("*_TOKEN", "TOKENS"));
        assert!(name_matches("a*b*c", "axxbyyc"));
        assert!(!name_matches("a*b*c", "axxbyy"));
        assert!(name_matches("*", ""));
    }
}
