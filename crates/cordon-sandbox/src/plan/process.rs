//! Process hardening and the command itself: environment, rlimits, capabilities, and what is executed.

use super::cgroup::{CgroupPlan, Mechanism};
use super::landlock::LandlockPlan;
use super::seccomp::SeccompPlan;
use super::{EnvironmentPlan, Guarantee, Invocation};
use crate::caps::KernelCaps;
use cordon_policy::{decide, CompiledPolicy};
use serde::{Deserialize, Serialize, Serializer};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Rlimit {
    Core,
    Nofile,
    Nproc,
    Data,
}

/// What runs in an environment and how it is confined on top of it: the command (arguments,
/// environment, working directory), its hardening and rlimits, its own Landlock ruleset and seccomp
/// filter. The command's arguments, paths and environment are OS strings, passed to execve byte for byte;
/// where they are written as JSON, bytes that are not UTF-8 show as U+FFFD ([`text`]) and a note
/// ([`ProcessPlan::notes`]) gives the exact bytes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessPlan {
    #[serde(serialize_with = "texts")]
    pub argv: Vec<OsString>,
    /// The program's path if it was found on the sandbox's PATH (None: exec will report "not found").
    #[serde(serialize_with = "opt_text")]
    pub program: Option<PathBuf>,
    #[serde(serialize_with = "one_text")]
    pub cwd: PathBuf,
    #[serde(serialize_with = "env_texts")]
    pub env: Vec<(OsString, OsString)>,
    /// Names of variables removed, for the report (values are never recorded), as [`text`].
    pub env_dropped: Vec<String>,
    /// Applied after the environment's, so they can only lower it.
    pub rlimits: Vec<(Rlimit, u64)>,
    pub drop_capabilities: bool,
    /// Stacked on the environment's ruleset (the kernel grants what both grant).
    pub landlock: LandlockPlan,
    /// Installed after the environment's filter, without a listener (the stricter action wins);
    /// not installed when it is the environment's own.
    pub seccomp: SeccompPlan,
    /// For the session's notes: each argument, the workspace and the working directory that is not
    /// UTF-8, with its exact bytes.
    pub notes: Vec<String>,
    /// What the process plan itself promises (hardening, the environment variables).
    pub guarantees: Vec<Guarantee>,
}

impl ProcessPlan {
    /// The command line as text for records (see [`text`]; the notes hold the exact bytes).
    pub fn argv_text(&self) -> Vec<String> {
        self.argv.iter().map(|a| text(a)).collect()
    }
}

/// An OS string as text for JSON records and messages: bytes that are not UTF-8 become U+FFFD.
pub fn text(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

/// The exact bytes of an OS string, readable and unambiguous: `a\xffb` (ASCII escapes, `\\` for a
/// backslash).
pub fn escaped(s: &OsStr) -> String {
    s.as_bytes().escape_ascii().to_string()
}

fn not_utf8_note(what: &str, s: &OsStr) -> Option<String> {
    s.to_str().is_none().then(|| {
        format!("{what} is not valid UTF-8: records show it as \"{}\"; its exact bytes are {}", text(s), escaped(s))
    })
}

fn texts<S: Serializer>(v: &[OsString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| text(x)))
}

fn one_text<S: Serializer>(v: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&text(v.as_os_str()))
}

fn opt_text<S: Serializer>(v: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(p) => s.serialize_some(&text(p.as_os_str())),
        None => s.serialize_none(),
    }
}

fn env_texts<S: Serializer>(v: &[(OsString, OsString)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|(k, x)| (text(k), text(x))))
}

/// Finds a program on PATH the way execvp does.
pub fn resolve_program(cmd: &OsStr, path_var: Option<&OsStr>, cwd: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if cmd.as_bytes().contains(&b'/') {
        let p = if Path::new(cmd).is_absolute() { PathBuf::from(cmd) } else { cwd.join(cmd) };
        return Some(p);
    }
    let path = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    path.as_bytes()
        .split(|b| *b == b':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(OsStr::from_bytes(d)).join(cmd))
        .find(|p| is_exec(p))
}

/// The rlimits a policy sets: no core dumps, its open-file limit, and the cgroup limits that fall
/// back to rlimits on this host.
pub fn rlimits(p: &CompiledPolicy, cg: &CgroupPlan) -> Vec<(Rlimit, u64)> {
    let mut rlimits = vec![(Rlimit::Core, 0)];
    if let Some(n) = p.limits.open_files {
        rlimits.push((Rlimit::Nofile, n));
    }
    if let Some((n, Mechanism::Rlimit)) = &cg.processes {
        rlimits.push((Rlimit::Nproc, *n));
    }
    if let Some((m, Mechanism::Rlimit)) = &cg.memory {
        rlimits.push((Rlimit::Data, *m));
    }
    rlimits
}

pub fn plan(
    p: &CompiledPolicy,
    caps: &KernelCaps,
    inv: &Invocation,
    envp: &EnvironmentPlan,
    landlock: LandlockPlan,
    seccomp: SeccompPlan,
) -> ProcessPlan {
    let (ns, net) = (&envp.ns, &envp.net);
    let mut g = Vec::new();
    let mut env = Vec::new();
    let mut dropped = Vec::new();
    for (k, v) in &inv.env {
        // A name that is not UTF-8 is judged by its text (U+FFFD for the odd bytes): the drop
        // patterns still apply to the rest of it, and it can never equal a name in env.keep.
        if crate::ablate::off(crate::ablate::Ablate::Env) || decide::env(p, &text(k)).allow {
            env.push((k.clone(), v.clone()));
        } else {
            dropped.push(text(k));
        }
    }
    let set = |k: &str, v: String, env: &mut Vec<(OsString, OsString)>| {
        env.retain(|(x, _)| x != k);
        env.push((k.into(), v.into()));
    };
    if ns.mount {
        for k in ["TMPDIR", "TMP", "TEMP"] {
            set(k, "/tmp".into(), &mut env);
        }
    }
    set("CORDON_SESSION", inv.session_id.clone(), &mut env);
    if let Some(url) = &net.proxy_url {
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            set(k, url.clone(), &mut env);
        }
        // Session-internal loopback stays direct; allowlisted host-loopback services have forwarders
        // at the same address inside, so going direct to them works too.
        for k in ["NO_PROXY", "no_proxy"] {
            set(k, "localhost,127.0.0.1,::1".into(), &mut env);
        }
    }
    set("CORDON_POLICY", p.name.clone(), &mut env);
    for (k, v) in &p.env.set {
        set(k, v.clone(), &mut env);
    }
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
    let program = inv.argv.first().and_then(|c| resolve_program(c, path_var, &inv.cwd));
    let mut notes: Vec<String> =
        inv.argv.iter().enumerate().filter_map(|(i, a)| not_utf8_note(&format!("command argument {i}"), a)).collect();
    notes.extend(not_utf8_note("the workspace path", p.workspace.as_os_str()));
    notes.extend(not_utf8_note("the working directory", inv.cwd.as_os_str()));

    g.push(Guarantee::ok(
        "process",
        "no capabilities; setuid programs gain nothing; not dumpable before exec; no core dumps",
        if caps.is_root {
            "all five capability sets emptied, securebits locked, no_new_privs, RLIMIT_CORE 0"
        } else {
            "no_new_privs, capability sets emptied, RLIMIT_CORE 0"
        },
    ));
    g.push(Guarantee::ok(
        "process",
        format!("secrets removed from the environment ({} variables dropped here)", dropped.len()),
        "env.drop patterns and LD_* removal",
    ));
    ProcessPlan {
        argv: inv.argv.clone(),
        program,
        cwd: inv.cwd.clone(),
        env,
        env_dropped: dropped,
        rlimits: rlimits(p, &envp.cgroup),
        drop_capabilities: true,
        landlock,
        seccomp,
        notes,
        guarantees: g,
    }
}
