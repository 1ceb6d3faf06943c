//! A server's tool rules: may this tool be listed and called? Pure: the answer names the rule that
//! decided and, for a refusal, what in gateway.toml would allow it.

use crate::config::Server;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { rule: String },
    Deny { rule: String, fix: String },
}

impl Decision {
    pub fn rule(&self) -> &str {
        match self {
            Decision::Allow { rule } | Decision::Deny { rule, .. } => rule,
        }
    }

    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// Deny first, then the allow list (when there is one), else allowed.
pub fn decide(s: &Server, tool: &str) -> Decision {
    let n = &s.name;
    if s.deny.iter().any(|d| d == tool) {
        return Decision::Deny {
            rule: format!("servers.{n}.tools.deny"),
            fix: format!("remove \"{tool}\" from servers.{n}.tools.deny in the gateway's config"),
        };
    }
    match &s.allow {
        Some(a) if a.iter().any(|x| x == tool) => Decision::Allow { rule: format!("servers.{n}.tools.allow") },
        Some(_) => Decision::Deny {
            rule: format!("servers.{n}.tools.allow"),
            fix: format!("add \"{tool}\" to servers.{n}.tools.allow in the gateway's config"),
        },
        None => Decision::Allow { rule: format!("servers.{n} (no tools.allow: every tool not denied)") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(allow: Option<&[&str]>, deny: &[&str]) -> Server {
        Server {
            name: "fs".into(),
            argv: vec!["/bin/true".into()],
            policy: "builtin:mcp-tool".into(),
            workspace: "/".into(),
            env: vec![],
            allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            call_timeout: crate::config::DEFAULT_CALL_TIMEOUT,
            start_timeout: crate::config::DEFAULT_START_TIMEOUT,
            isolation: Default::default(),
            warm: false,
            tool_grants: Default::default(),
            monitor: false,
            protocol: crate::config::Protocol::Handshake,
            rules: Default::default(),
            rate: None,
            secrets: vec![],
            scan: Default::default(),
        }
    }

    #[test]
    fn deny_wins_then_the_allow_list_then_everything() {
        let s = server(Some(&["read", "write"]), &["write"]);
        assert!(decide(&s, "read").allowed());
        match decide(&s, "write") {
            Decision::Deny { rule, fix } => {
                assert_eq!(rule, "servers.fs.tools.deny");
                assert!(fix.contains("remove \"write\""), "{fix}");
            }
            d => panic!("{d:?}"),
        }
        match decide(&s, "delete") {
            Decision::Deny { rule, fix } => {
                assert_eq!(rule, "servers.fs.tools.allow");
                assert!(fix.contains("add \"delete\" to servers.fs.tools.allow"), "{fix}");
            }
            d => panic!("{d:?}"),
        }
        assert!(decide(&server(None, &[]), "anything").allowed());
    }
}
