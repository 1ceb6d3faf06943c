//! A refusal the supervisor saw (seccomp, the network namespace), as the report and the audit log's
//! `denial` records hold it: distinct refusals with a count. The sensor reports the same fact per
//! call as an [`Event`](crate::Event) of kind `deny`, with the same [`Layer`].

use crate::Layer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct Denial {
    pub layer: Layer,
    pub pid: u32,
    pub comm: String,
    /// What was attempted, e.g. `ptrace(PTRACE_ATTACH, 1)` or `socket(AF_PACKET)`.
    pub what: String,
    /// The rule's reason, readable by a person or an agent.
    pub reason: String,
    pub count: u64,
}
