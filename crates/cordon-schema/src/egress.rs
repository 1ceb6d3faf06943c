//! One decision of the egress proxy, as the report and the audit log store it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct Decision {
    /// Milliseconds since the session's proxy started.
    pub at_ms: u64,
    pub allowed: bool,
    /// `connect`, `http`, `socks5` or `forward`.
    pub protocol: String,
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

impl Decision {
    /// One line: what was allowed or refused, by whom, and by which rule.
    pub fn describe(&self) -> String {
        let d = self;
        let who = if d.pid > 0 { format!(" by {}[{}]", d.exe, d.pid) } else { String::new() };
        if d.allowed {
            format!(
                "allowed {} {}:{} -> {} ({}; {} B up, {} B down, {} ms){who}",
                d.protocol,
                d.host,
                d.port,
                d.ip.as_deref().unwrap_or("?"),
                d.rule,
                d.bytes_up,
                d.bytes_down,
                d.duration_ms
            )
        } else {
            format!("DENIED {} {}:{}{who}: {}", d.protocol, d.host, d.port, d.rule)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_round_trips_through_json() {
        let d = Decision {
            at_ms: 3,
            allowed: false,
            protocol: "connect".into(),
            host: "example.com".into(),
            port: 443,
            ip: None,
            rule: "not in net.allow".into(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 1,
            pid: 7,
            exe: "/usr/bin/curl".into(),
        };
        let j = serde_json::to_string(&d).expect("json");
        assert_eq!(serde_json::from_str::<Decision>(&j).expect("back"), d);
    }
}
