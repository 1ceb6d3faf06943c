//! A detection rule that fired, and what it asked for.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Record and show the alert; the session goes on.
    Alert,
    /// End the session (every process in its cgroup).
    Kill,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    pub rule: String,
    pub action: Action,
    pub ts_ms: i64,
    /// The rule's reason with {field} filled from the event.
    pub reason: String,
    /// The fields of the event the rule matched (those the rules read).
    pub event: serde_json::Value,
}
