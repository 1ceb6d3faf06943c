//! The policy file as written: serde structures that keep the span of every value,
//! so that later checks can point at the exact line and column.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub version: Option<S<i64>>,
    pub name: Option<S<String>>,
    pub description: Option<S<String>>,
    /// Built-in profiles (`builtin:NAME`) or policy files, base first. A relative path is taken from
    /// the directory of this file after symlinks are followed (see `load`).
    #[serde(default)]
    pub extends: Vec<S<String>>,
    #[serde(default)]
    pub fs: RawFs,
    #[serde(default)]
    pub net: RawNet,
    #[serde(default)]
    pub syscalls: RawSyscalls,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub env: RawEnv,
    #[serde(default)]
    pub namespaces: RawNamespaces,
    #[serde(default)]
    pub monitor: RawMonitor,
    #[serde(default)]
    pub tools: BTreeMap<String, S<RawTool>>,
    #[serde(default, rename = "test")]
    pub tests: Vec<S<RawTest>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFs {
    #[serde(default)]
    pub read: Vec<S<String>>,
    #[serde(default)]
    pub write: Vec<S<String>>,
    #[serde(default)]
    pub exec: Vec<S<String>>,
    /// Paths that must stay unreadable even inside an allowed tree (masked).
    #[serde(default)]
    pub deny: Vec<S<String>>,
    /// Workspace-relative paths (or `@host-exec-auto`) that stay read-only inside the writable
    /// workspace; an absent one cannot be created.
    #[serde(default)]
    pub protect: Vec<S<String>>,
    /// Protected paths this policy lets the session write after all (each must be protected by
    /// this file or one it extends).
    #[serde(default)]
    pub unprotect: Vec<S<String>>,
    /// Workspace file-name patterns that are unreadable (e.g. `.env*`).
    #[serde(default)]
    pub hide: Vec<S<String>>,
    /// Workspace-relative patterns (or `@host-exec-manual`) of files that run outside the sandbox:
    /// writable, but every change is listed at the end of the session (`crate::review`).
    #[serde(default)]
    pub review: Vec<S<String>>,
    /// What happens to those changes: "list" (written in place and listed; the default) or "hold"
    /// (restored at the end and written to a patch for the user to apply).
    pub review_mode: Option<S<String>>,
    /// Directories in HOME made (mode 0700, by the invoking user) before the session when missing,
    /// so that a cache the policy grants works on first use; each must be under a write grant.
    #[serde(default)]
    pub create: Vec<S<String>>,
    /// Configuration files that mix settings with secrets (`~/.npmrc`, `~/.gitconfig`, ...): the
    /// session reads a copy with the secrets removed (see `sanitize.rs`).
    #[serde(default)]
    pub sanitize: Vec<S<String>>,
    /// Size of the private /tmp.
    pub tmp_size: Option<S<String>>,
    /// The write watch (refused writes named without root; see cordon-sandbox's `write_watch`):
    /// on unless false.
    pub watch_writes: Option<S<bool>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNet {
    pub egress: Option<S<String>>,
    #[serde(default)]
    pub allow: Vec<S<String>>,
    #[serde(default)]
    pub listen: Vec<S<i64>>,
    /// `[HOST_IP:]HOST_PORT:SESSION_PORT`: session ports reachable from the host.
    #[serde(default)]
    pub publish: Vec<S<String>>,
    pub udp: Option<S<bool>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyscalls {
    #[serde(default)]
    pub deny: Vec<S<String>>,
    /// Baseline entries to lift (e.g. `ptrace` for a debugger profile).
    #[serde(default)]
    pub allow: Vec<S<String>>,
    pub action: Option<S<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory: Option<S<String>>,
    pub processes: Option<S<i64>>,
    pub cpu: Option<S<f64>>,
    pub wall_time: Option<S<String>>,
    pub open_files: Option<S<i64>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnv {
    #[serde(default)]
    pub keep: Vec<S<String>>,
    #[serde(default)]
    pub drop: Vec<S<String>>,
    #[serde(default)]
    pub set: BTreeMap<String, S<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNamespaces {
    pub pid: Option<S<bool>>,
    pub mount: Option<S<bool>>,
    pub ipc: Option<S<bool>>,
    pub uts: Option<S<bool>>,
    pub net: Option<S<bool>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    #[serde(default)]
    pub rules: Vec<S<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    pub description: Option<S<String>>,
    #[serde(default)]
    pub command: Vec<S<String>>,
    pub fs: Option<RawFs>,
    pub net: Option<RawNet>,
    pub syscalls: Option<RawSyscalls>,
    pub limits: Option<RawLimits>,
    pub env: Option<RawEnv>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    pub name: Option<S<String>>,
    pub read: Option<S<String>>,
    pub write: Option<S<String>>,
    pub exec: Option<S<String>>,
    pub connect: Option<S<String>>,
    pub env: Option<S<String>>,
    pub syscall: Option<S<String>>,
    pub expect: Option<S<String>>,
}
