//! What a session promises, layer by layer, and whether this host keeps each promise: the plan's
//! verdict, shown by `cordon explain` and doctor, stored in the start record and the report.

use serde::{Deserialize, Serialize};

/// One promise a session makes, and whether this host keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Guarantee {
    /// The layer that keeps it: filesystem, namespaces, seccomp, cgroups, network, ...
    pub layer: String,
    pub what: String,
    pub state: State,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Enforced, and how.
    Enforced { how: String },
    /// Not enforced as the policy asks. `feature` names what the host lacks; `instead` what is done.
    Degraded { feature: String, instead: String },
}

impl Guarantee {
    pub fn ok(layer: &str, what: impl Into<String>, how: impl Into<String>) -> Self {
        Guarantee { layer: layer.into(), what: what.into(), state: State::Enforced { how: how.into() } }
    }
    pub fn degraded(
        layer: &str,
        what: impl Into<String>,
        feature: impl Into<String>,
        instead: impl Into<String>,
    ) -> Self {
        Guarantee {
            layer: layer.into(),
            what: what.into(),
            state: State::Degraded { feature: feature.into(), instead: instead.into() },
        }
    }
    pub fn is_degraded(&self) -> bool {
        matches!(self.state, State::Degraded { .. })
    }
}
