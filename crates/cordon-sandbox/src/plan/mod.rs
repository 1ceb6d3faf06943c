//! Per-layer plans: pure functions from a compiled policy and the host's capabilities to plain data.
//! Unit tests check them as data; `apply` turns each into syscalls; `explain`, doctor and the audit
//! record describe them. Each plan also states what it guarantees and what it cannot.

pub mod cgroup;
pub mod landlock;
pub mod net;
pub mod ns;
pub mod process;
pub mod seccomp;

use crate::caps::KernelCaps;
use cordon_policy::CompiledPolicy;
use serde::Serialize;

pub use cordon_schema::guarantee::{Guarantee, State};

/// Everything needed to start one session, computed before anything is changed on the host.
#[derive(Debug, Clone, Serialize)]
pub struct SessionPlan {
    pub landlock: landlock::LandlockPlan,
    pub seccomp: seccomp::SeccompPlan,
    pub ns: ns::NsPlan,
    pub cgroup: cgroup::CgroupPlan,
    pub net: net::NetPlan,
    pub process: process::ProcessPlan,
    pub guarantees: Vec<Guarantee>,
}

impl SessionPlan {
    pub fn degraded(&self) -> Vec<&Guarantee> {
        self.guarantees.iter().filter(|g| g.is_degraded()).collect()
    }

    /// With a mount namespace, the host trees the session's writes reach: those bound back
    /// writable over the read-only root (its private tmpfs mounts are not the host's). None without
    /// a mount namespace: then every tree the policy lets it write is the host's.
    pub fn host_writable(&self) -> Option<Vec<&std::path::Path>> {
        self.ns.mount.then(|| {
            self.ns
                .mounts
                .iter()
                .filter_map(|m| match m {
                    ns::MountOp::Writable { path } => Some(path.as_path()),
                    _ => None,
                })
                .collect()
        })
    }
}

/// Inputs that come from the command line rather than the policy. OS strings: arguments, paths and
/// the environment reach the command byte for byte, UTF-8 or not.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub session_id: String,
    pub argv: Vec<std::ffi::OsString>,
    /// Working directory inside the sandbox.
    pub cwd: std::path::PathBuf,
    /// The environment cordon was started with.
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

pub fn plan(policy: &CompiledPolicy, caps: &KernelCaps, inv: &Invocation) -> SessionPlan {
    let mut g = Vec::new();
    let ns = ns::plan(policy, caps, &mut g);
    let landlock = landlock::plan(policy, caps, &ns, &mut g);
    let seccomp = seccomp::plan(policy, caps, &mut g);
    let cgroup = cgroup::plan(policy, caps, &inv.session_id, &ns, &mut g);
    let net = net::plan(policy, &ns, &mut g);
    let mut seccomp = seccomp;
    if net.proxy_url.is_some() && seccomp.enabled && seccomp.notify {
        // Connects are shown to the supervisor so that one bypassing the proxy is named in the
        // summary; the network namespace is what refuses it.
        if let Some(arch) = seccomp::native_arch() {
            if let Some(nr) = cordon_policy::syscall_table::number(arch, "connect") {
                seccomp.rules.push(seccomp::ResolvedRule {
                    nr,
                    name: "connect".into(),
                    when: vec![],
                    action: cordon_policy::syscalls::DenyAction::Supervise,
                    reason: format!("a direct connection bypassing the egress proxy has no route; use {} (HTTPS_PROXY/HTTP_PROXY are set)", net.proxy_url.as_deref().unwrap_or("the proxy")),
                });
            }
        }
    }
    let process = process::plan(policy, caps, inv, &ns, &cgroup, &net, &mut g);
    SessionPlan { landlock, seccomp, ns, cgroup, net, process, guarantees: g }
}

#[cfg(test)]
mod tests;
