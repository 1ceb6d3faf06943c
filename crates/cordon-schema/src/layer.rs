//! Which layer refused: one vocabulary for the supervisor's denials, the sensor's deny events and
//! the proxy's refusals.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The layer that refused: landlock, seccomp, network (a connection bypassing the egress proxy),
/// cgroup-bpf (the session's network rules), proxy (the egress proxy), mounts (the session's
/// filesystem view), dac (file permissions, not cordon) or landlock-or-dac (one of the two, when the policy is not known: `cordon monitor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(inline)]
pub enum Layer {
    // Landlock refused a file or port access.
    Landlock,
    // The session's seccomp filter refused the call.
    Seccomp,
    // A connection bypassing the egress proxy (the network namespace has no route).
    Network,
    // The session's cgroup-bpf network rules.
    CgroupBpf,
    // The egress proxy refused the destination.
    Proxy,
    // The session's filesystem, built from the policy: outside every grant nothing exists (ENOENT),
    // a read-only grant is a read-only mount (EROFS), a secret inside a grant is a mode-000 mask (EACCES).
    Mounts,
    // File permissions (discretionary access control), not cordon.
    Dac,
    // Landlock or file permissions, when the policy is not known (`cordon monitor`).
    LandlockOrDac,
}

impl Layer {
    pub const fn as_str(self) -> &'static str {
        match self {
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Network => "network",
            Layer::CgroupBpf => "cgroup-bpf",
            Layer::Proxy => "proxy",
            Layer::Mounts => "mounts",
            Layer::Dac => "dac",
            Layer::LandlockOrDac => "landlock-or-dac",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_name_is_the_display_name() {
        for l in [
            Layer::Landlock,
            Layer::Seccomp,
            Layer::Network,
            Layer::CgroupBpf,
            Layer::Proxy,
            Layer::Mounts,
            Layer::Dac,
            Layer::LandlockOrDac,
        ] {
            assert_eq!(serde_json::to_string(&l).expect("json"), format!("\"{l}\""));
        }
    }
}
