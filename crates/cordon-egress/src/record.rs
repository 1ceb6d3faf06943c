//! One egress decision, in the form the audit log stores as it is.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    /// Milliseconds since the session's proxy started.
    pub at_ms: u64,
    pub allowed: bool,
    /// `connect`, `http`, `socks5` or `forward`.
    pub protocol: &'static str,
    pub host: String,
    pub port: u16,
    /// The address the proxy resolved and connected to (pinned), when it got that far.
    pub ip: Option<String>,
    /// The allowlist entry that allowed it, or why it was denied.
    pub rule: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    pub pid: u32,
    pub exe: String,
}
