//! What this host can enforce, as data for `cordon doctor` (and later the server's host inventory):
//! the kernel's capabilities for this user, the plan the default profile gets from them, and what
//! the eBPF sensor can do here. No printing: the caller renders the JSON.

use cordon_sandbox::caps::{KernelCaps, Userns};
use cordon_sandbox::{plan, Invocation, State};
use serde_json::{json, Value};

/// The host as one user sees it.
#[derive(Clone)]
pub struct Host {
    caps: KernelCaps,
}

impl Host {
    /// Probes this process's view of the host (Landlock ABI, seccomp, namespaces, cgroups).
    pub fn detect() -> Host {
        Host { caps: KernelCaps::detect() }
    }

    pub fn kernel(&self) -> &str {
        &self.caps.kernel
    }

    pub fn arch(&self) -> &str {
        &self.caps.arch
    }

    pub fn uid(&self) -> u32 {
        self.caps.uid
    }

    pub fn is_root(&self) -> bool {
        self.caps.is_root
    }

    /// Root's view, inferred by an unprivileged user from the host's mounts: root can write the
    /// cgroup hierarchies and does not need a user namespace.
    pub fn as_root_inferred(&self) -> Host {
        let mut c = self.caps.clone();
        c.uid = 0;
        c.is_root = true;
        c.userns = Userns::NotNeeded;
        c.cgroup.v2_base = c.cgroup.v2_mount.clone();
        c.cgroup.v1 = cordon_sandbox::caps::mount_table()
            .into_iter()
            .filter(|m| m.fstype == "cgroup")
            .flat_map(|m| {
                ["memory", "pids", "cpu"]
                    .into_iter()
                    .filter(move |c| m.options.split(',').any(|o| o == *c))
                    .map(move |c| (c.to_string(), m.point.clone()))
            })
            .collect();
        Host { caps: c }
    }

    /// Each layer's availability and what the default profile (`builtin:agent`) gets here.
    pub fn view(&self) -> Value {
        let caps = &self.caps;
        json!({
            "uid": caps.uid,
            "landlock": {"abi": caps.landlock_abi, "available": caps.landlock_abi > 0, "enforces": cordon_sandbox::plan::landlock::abi_features(caps.landlock_abi)},
            "seccomp": {"filter": caps.seccomp_filter, "user_notification": caps.seccomp_user_notif},
            "namespaces": match &caps.userns { Userns::NotNeeded => json!({"available": true, "via": "root"}), Userns::Allowed => json!({"available": true, "via": "unprivileged user namespace"}), Userns::Blocked(w) => json!({"available": false, "why": w}) },
            "cgroups": {
                "v2_mount": caps.cgroup.v2_mount, "v2_controllers": caps.cgroup.v2_controllers, "v2_writable_base": caps.cgroup.v2_base,
                "v1_writable": caps.cgroup.v1.iter().map(|(c, p)| json!({"controller": c, "mount": p})).collect::<Vec<_>>(),
            },
            "default_profile": default_profile(caps),
        })
    }
}

/// The default profile's guarantees on this host: enforced, or degraded and what is missing.
fn default_profile(caps: &KernelCaps) -> Value {
    let ws = std::env::temp_dir();
    let policy =
        match cordon_policy::load_and_compile("builtin:agent", &cordon_policy::Context::for_workspace(ws.clone())) {
            Ok((_, p)) => p,
            Err(e) => return json!({"error": format!("the built-in profile does not compile: {e}")}),
        };
    let inv = Invocation { session_id: "doctor".into(), argv: vec!["/bin/true".into()], cwd: ws, env: vec![] };
    let p = plan(&policy, caps, &inv);
    let guarantees: Vec<Value> = p
        .guarantees
        .iter()
        .map(|g| match &g.state {
            State::Enforced { how } => json!({"layer": g.layer, "what": g.what, "enforced": true, "how": how}),
            State::Degraded { feature, instead } => {
                json!({"layer": g.layer, "what": g.what, "enforced": false, "missing": feature, "instead": instead})
            }
        })
        .collect();
    let degraded = p.degraded().len();
    json!({"runs_without_degrading": degraded == 0, "degraded": degraded, "guarantees": guarantees})
}

/// What the eBPF sensor can do here: whether its programs load, BPF-LSM, tracefs/bpffs.
pub fn sensor_view() -> Value {
    serde_json::to_value(cordon_sensor::probe::probe()).unwrap_or(Value::Null)
}
