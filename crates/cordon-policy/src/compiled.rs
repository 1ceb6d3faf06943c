//! The compiled policy: plain data with every variable and group expanded, ready for the sandbox to
//! turn into per-layer plans. Every item remembers where it came from.

use crate::netspec::NetAllow;
use crate::syscalls::SyscallRule;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Access {
    pub fn describe(&self) -> String {
        let mut v = vec![];
        if self.read {
            v.push("read");
        }
        if self.write {
            v.push("write");
        }
        if self.exec {
            v.push("exec");
        }
        v.join("+")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathRule {
    pub path: PathBuf,
    pub access: Access,
    /// The entry as written (e.g. `@system`) and the file it came from.
    pub entry: String,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Masked {
    pub path: PathBuf,
    pub entry: String,
    pub origin: String,
}

/// A configuration file read as a copy without its secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sanitize {
    pub path: PathBuf,
    pub format: crate::sanitize::Format,
    pub entry: String,
    pub origin: String,
    /// Where the session staged the copy (set by the session, never by a policy).
    pub staged: Option<PathBuf>,
}

/// A workspace path kept read-only (`fs.protect`); an absent one cannot be created either.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protected {
    pub path: PathBuf,
    /// The path as written, relative to the workspace (`.git/hooks`, `.idea/`), and where it came
    /// from: the policy file, or the group and the file that named it (`@host-exec-auto in
    /// builtin:agent`).
    pub entry: String,
    pub origin: String,
    /// Why it is protected (the group's name and its reason for the path), quoted in refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl Protected {
    /// Why it is protected (`@host-exec-auto: direnv runs it ...`), or the entry and its file, for
    /// refusals and `cordon policy explain`.
    pub fn describe(&self) -> String {
        match &self.why {
            Some(w) => w.clone(),
            None => format!("fs.protect `{}` from {}", self.entry, self.origin),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FsPolicy {
    /// Allowed trees, merged per path.
    pub rules: Vec<PathRule>,
    /// Paths that stay unreadable even inside allowed trees.
    pub deny: Vec<Masked>,
    /// Absolute paths inside the workspace that stay read-only and, when absent, cannot be created.
    pub protect: Vec<Protected>,
    /// File-name patterns inside the workspace that are unreadable.
    pub hide: Vec<String>,
    /// Workspace files whose changes are listed at the end of the session (`fs.review`).
    pub review: Vec<crate::review::ReviewPattern>,
    /// What happens to changes of those files (`fs.review_mode`).
    pub review_mode: crate::review::ReviewMode,
    /// Directories in HOME made before the session when missing (`fs.create`).
    pub create: Vec<Masked>,
    /// Files the session reads as a copy without their secrets (`fs.sanitize`): readable, out of
    /// `deny`; the session stages each copy and binds it over the path.
    pub sanitize: Vec<Sanitize>,
    pub tmp_size: u64,
    /// Refused writes named without the sensor by the seccomp write watch (`fs.watch_writes`; on
    /// by default): each write-intent call costs a round trip to the supervisor.
    pub watch_writes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    None,
    Proxy,
    Open,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetPolicy {
    pub egress: Egress,
    pub allow: Vec<NetAllow>,
    pub listen: Vec<u16>,
    /// Session ports reachable from the host (`publish`, `--publish`).
    pub publish: Vec<crate::netspec::Publish>,
    pub udp: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    pub memory: Option<u64>,
    pub processes: Option<u64>,
    pub cpu: Option<f64>,
    pub wall_time: Option<Duration>,
    pub open_files: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnvPolicy {
    /// Patterns of variables to keep; empty = keep everything not dropped.
    pub keep: Vec<String>,
    pub drop: Vec<String>,
    pub set: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Namespaces {
    pub pid: bool,
    pub mount: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolPolicy {
    pub description: Option<String>,
    pub command: Vec<String>,
    pub extra_read: Vec<PathBuf>,
    pub extra_write: Vec<PathBuf>,
    pub extra_exec: Vec<PathBuf>,
    pub net_allow: Vec<NetAllow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "target", rename_all = "lowercase")]
pub enum Probe {
    Read(PathBuf),
    Write(PathBuf),
    Exec(PathBuf),
    Connect(String),
    Env(String),
    Syscall(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub name: String,
    pub probe: Probe,
    pub expect_allow: bool,
    /// "file:line" of the [[test]] entry.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompiledPolicy {
    pub name: String,
    pub description: String,
    /// The files that made this policy, base first.
    pub sources: Vec<String>,
    pub workspace: PathBuf,
    pub home: PathBuf,
    pub fs: FsPolicy,
    pub net: NetPolicy,
    pub syscalls: Vec<SyscallRule>,
    pub kill_on_deny: bool,
    pub limits: Limits,
    pub env: EnvPolicy,
    pub namespaces: Namespaces,
    pub monitor_rules: Vec<String>,
    pub tools: Vec<(String, ToolPolicy)>,
    pub tests: Vec<Example>,
}
