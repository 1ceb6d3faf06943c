//! Process hardening and the command itself: environment, rlimits, capabilities, and what is executed.

use super::cgroup::{CgroupPlan, Mechanism};
use super::{ns::NsPlan, Guarantee, Invocation};
use crate::caps::KernelCaps;
use cordon_policy::{decide, CompiledPolicy};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Rlimit {
    Core,
    Nofile,
    Nproc,
    Data,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessPlan {
    pub argv: Vec<String>,
    /// The program's path if it was found on the sandbox's PATH (None: exec will report "not found").
    pub program: Option<PathBuf>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Names of variables removed, for the report (values are never recorded).
    pub env_dropped: Vec<String>,
    pub rlimits: Vec<(Rlimit, u64)>,
    pub drop_capabilities: bool,
}

/// Finds a program on PATH the way execvp does.
pub fn resolve_program(cmd: &str, path_var: Option<&str>, cwd: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if cmd.contains('/') {
        let p = if Path::new(cmd).is_absolute() { PathBuf::from(cmd) } else { cwd.join(cmd) };
        return Some(p);
    }
    let path = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(cmd)).find(|p| is_exec(p))
}

pub fn plan(p: &CompiledPolicy, caps: &KernelCaps, inv: &Invocation, ns: &NsPlan, cg: &CgroupPlan, net: &super::net::NetPlan, g: &mut Vec<Guarantee>) -> ProcessPlan {
    let mut env = Vec::new();
    let mut dropped = Vec::new();
    for (k, v) in &inv.env {
        if decide::env(p, k).allow {
            env.push((k.clone(), v.clone()));
        } else {
            dropped.push(k.clone());
        }
    }
    let set = |k: &str, v: String, env: &mut Vec<(String, String)>| {
        env.retain(|(x, _)| x != k);
        env.push((k.to_string(), v));
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
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
    let program = inv.argv.first().and_then(|c| resolve_program(c, path_var, &inv.cwd));

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
    g.push(Guarantee::ok("process", "no capabilities; setuid programs gain nothing; not dumpable before exec; no core dumps", if caps.is_root { "all five capability sets emptied, securebits locked, no_new_privs, RLIMIT_CORE 0" } else { "no_new_privs, capability sets emptied, RLIMIT_CORE 0" }));
    g.push(Guarantee::ok("process", format!("secrets removed from the environment ({} variables dropped here)", dropped.len()), "env.drop patterns and LD_* removal"));
    ProcessPlan { argv: inv.argv.clone(), program, cwd: inv.cwd.clone(), env, env_dropped: dropped, rlimits, drop_capabilities: true }
}
