//! Per-layer plans: pure functions from a compiled policy and the host's capabilities to plain data.
//! Unit tests check them as data; `apply` turns each into syscalls; `explain`, doctor and the audit
//! record describe them. Each plan also states what it guarantees and what it cannot.

pub mod canon;
pub mod cgroup;
pub mod landlock;
pub mod net;
pub mod ns;
pub mod process;
pub mod root;
pub mod seccomp;
pub mod write_watch;

use crate::caps::KernelCaps;
use cordon_policy::CompiledPolicy;
use serde::Serialize;

pub use cordon_schema::guarantee::{Guarantee, State};

/// Everything needed to start one session, computed before anything is changed on the host: the
/// environment it runs in and the process it runs there.
#[derive(Debug, Clone, Serialize)]
pub struct SessionPlan {
    pub environment: EnvironmentPlan,
    pub process: process::ProcessPlan,
    /// The environment's guarantees, then the process's.
    pub guarantees: Vec<Guarantee>,
}

impl SessionPlan {
    pub fn degraded(&self) -> Vec<&Guarantee> {
        self.guarantees.iter().filter(|g| g.is_degraded()).collect()
    }

    /// See [`EnvironmentPlan::host_writable`].
    pub fn host_writable(&self) -> Option<Vec<&std::path::Path>> {
        self.environment.host_writable()
    }
}

/// The place a command runs, known before the command is: namespaces and the mount table, cgroups,
/// the network, and the most any command there may do. A ready environment holds this while it
/// waits; the process plan it is given later can only tighten it:
/// - the init confines itself with [`landlock`](Self::landlock), sets no_new_privs and drops every
///   capability before it waits, so the kernel bounds whatever a later process plan grants;
/// - the init's own code applies [`rlimits`](Self::rlimits) and installs [`seccomp`](Self::seccomp)
///   (with the session's only notification listener) in every command, before the process plan's
///   own filter, which has no listener.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnvironmentPlan {
    pub ns: ns::NsPlan,
    pub cgroup: cgroup::CgroupPlan,
    pub net: net::NetPlan,
    pub landlock: landlock::LandlockPlan,
    pub seccomp: seccomp::SeccompPlan,
    pub rlimits: Vec<(process::Rlimit, u64)>,
    pub guarantees: Vec<Guarantee>,
}

impl EnvironmentPlan {
    /// With a mount namespace, the host trees the session's writes reach: those bound writable
    /// into its root (its private tmpfs mounts are not the host's). None without
    /// a mount namespace: then every tree the policy lets it write is the host's.
    pub fn host_writable(&self) -> Option<Vec<&std::path::Path>> {
        self.ns.mount.then(|| {
            self.ns
                .mounts
                .iter()
                .filter_map(|m| match m {
                    ns::MountOp::Bind { src, writable: true, .. } => Some(src.as_path()),
                    // A devbox's writes reach its upper directory, never the snapshot under it.
                    ns::MountOp::Overlay { upper, .. } => Some(upper.as_path()),
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

/// The environment and the process plans of one session, the guarantees of both.
pub fn plan(policy: &CompiledPolicy, caps: &KernelCaps, inv: &Invocation) -> SessionPlan {
    let environment = environment(policy, caps, &inv.session_id);
    // One policy for both: the command's own layers are the environment's (computing them again
    // cost ~0.4 ms per start: Landlock's plan looks at every path of the policy).
    let (landlock, seccomp) = (environment.landlock.clone(), environment.seccomp.clone());
    let process = process::plan(policy, caps, inv, &environment, landlock, seccomp);
    let guarantees = environment.guarantees.iter().chain(&process.guarantees).cloned().collect();
    SessionPlan { environment, process, guarantees }
}

/// The environment plan: no command needed. `name` names its cgroups (the session id).
pub fn environment(policy: &CompiledPolicy, caps: &KernelCaps, name: &str) -> EnvironmentPlan {
    let mut g = Vec::new();
    let ns = ns::plan(policy, caps, &mut g);
    let landlock = landlock::plan(policy, caps, &ns, &mut g);
    let seccomp = seccomp::plan(policy, caps, &mut g);
    let cgroup = cgroup::plan(policy, caps, name, &ns, &mut g);
    let net = net::plan(policy, &ns, &mut g);
    let seccomp = with_connect_watch(seccomp, &net, policy.net.egress, ns.net);
    let rlimits = process::rlimits(policy, &cgroup);
    EnvironmentPlan { ns, cgroup, net, landlock, seccomp, rlimits, guarantees: g }
}

/// The process plan of a command in `env`. `policy` may be stricter than the environment's (a
/// claim that tightens); what it grants beyond the environment is bounded by the environment.
pub fn process(
    policy: &CompiledPolicy,
    caps: &KernelCaps,
    env: &EnvironmentPlan,
    inv: &Invocation,
) -> process::ProcessPlan {
    // The layers' guarantees are the environment's, which bounds them.
    let mut scratch = Vec::new();
    let landlock = landlock::plan(policy, caps, &env.ns, &mut scratch);
    let seccomp =
        with_connect_watch(seccomp::plan(policy, caps, &mut scratch), &env.net, policy.net.egress, env.ns.net);
    process::plan(policy, caps, inv, env, landlock, seccomp)
}

/// How the reason of the connect rule under `egress = "none"` begins.
const NO_NETWORK: &str = "the session has no network (net.egress = \"none\")";

/// The session is watched by the sensor, which sees the real refusals: the write watch and the
/// connect rule under `egress = "none"` are left out (they only name refusals; with them, a
/// connect would be refused before the sensor's cgroup-bpf rules see it).
pub fn without_refusal_watches(seccomp: &mut seccomp::SeccompPlan) {
    seccomp.watch.clear();
    seccomp.rules.retain(|r| !(r.name == "connect" && r.reason.starts_with(NO_NETWORK)));
}

/// Connects are shown to the supervisor so that one the session cannot make is named in the
/// summary: one bypassing the proxy, or any under `egress = "none"`. The network namespace is what
/// refuses it (the supervisor answers ENETUNREACH, as the namespace would). `{target}` in the
/// reason is the address the call asked for.
fn with_connect_watch(
    mut seccomp: seccomp::SeccompPlan,
    net: &net::NetPlan,
    egress: cordon_policy::Egress,
    netns: bool,
) -> seccomp::SeccompPlan {
    let reason = match &net.proxy_url {
        Some(url) => format!("a direct connection bypassing the egress proxy has no route; use {url} (HTTPS_PROXY/HTTP_PROXY are set)"),
        None if egress == cordon_policy::Egress::None && netns => format!("{NO_NETWORK}: nothing beyond its own loopback can be reached; if the task needs it, ask the user to run with `--allow-net {{target}}` (cordon's egress proxy then lets exactly that through)"),
        None => return seccomp,
    };
    if seccomp.enabled && seccomp.notify {
        if let Some(arch) = seccomp::native_arch() {
            if let Some(nr) = cordon_policy::syscall_table::number(arch, "connect") {
                seccomp.rules.push(seccomp::ResolvedRule {
                    nr,
                    name: "connect".into(),
                    when: vec![],
                    action: cordon_policy::syscalls::DenyAction::Supervise,
                    reason,
                });
                seccomp.watch.retain(|w| w.nr != nr);
            }
        }
    }
    seccomp
}

#[cfg(test)]
mod tests;
