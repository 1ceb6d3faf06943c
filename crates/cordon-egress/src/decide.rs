//! Whether the session may reach `host:port`, and at which address.

use cordon_policy::compile::net_allows;
use cordon_policy::netspec::{HostSpec, NetAllow};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow: Vec<NetAllow>,
    /// Test-only name overrides (the tests own these names; the machine's resolver is never changed).
    pub resolve_override: Vec<(String, IpAddr)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow { addr: SocketAddr, rule: String },
    Deny { rule: String, message: String },
}

/// Addresses a name must never silently resolve to: loopback, private, link-local (cloud metadata
/// at 169.254.169.254), shared, documentation, multicast and unspecified ranges.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v4_internal(v),
        IpAddr::V6(v) => {
            if let Some(m) = v.to_ipv4_mapped() {
                return v4_internal(m);
            }
            let s = v.segments();
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8
        }
    }
}

fn v4_internal(v: Ipv4Addr) -> bool {
    let o = v.octets();
    v.is_loopback()
        || v.is_private()
        || v.is_link_local()
        || v.is_unspecified()
        || v.is_broadcast()
        || v.is_multicast()
        || v.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
}

fn covers(a: &NetAllow, ip: IpAddr, port: u16) -> bool {
    if a.port.is_some_and(|p| p != port) {
        return false;
    }
    match &a.host {
        HostSpec::Ip { addr } => *addr == ip,
        HostSpec::Cidr { .. } => net_allows(std::slice::from_ref(a), &ip.to_string(), port).is_some(),
        _ => false,
    }
}

pub fn allow_hint(host: &str, port: u16) -> String {
    format!("to allow it, the user can run `cordon run --allow-net {host}:{port} ...` or add \"{host}:{port}\" to [net] allow in the policy")
}

/// Decides and resolves. The connection must go to the returned address (pinned), never to a
/// fresh resolution of the name.
pub async fn decide(p: &Policy, host: &str, port: u16) -> Verdict {
    let host = host.trim_end_matches('.').trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let Some(rule) = net_allows(&p.allow, &host, port) else {
        return Verdict::Deny {
            rule: "net.allow".into(),
            message: format!("{host}:{port} is not in the session's network allowlist; {}", allow_hint(&host, port)),
        };
    };
    let rule = rule.text.clone();
    let ips: Vec<IpAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![ip]
    } else if let Some((_, ip)) = p.resolve_override.iter().find(|(n, _)| *n == host) {
        vec![*ip]
    } else {
        match tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port)))
            .await
        {
            Ok(Ok(it)) => it.map(|a| a.ip()).collect(),
            Ok(Err(e)) => return Verdict::Deny { rule, message: format!("{host} does not resolve: {e}") },
            Err(_) => return Verdict::Deny { rule, message: format!("resolving {host} timed out") },
        }
    };
    for ip in &ips {
        if !is_internal(*ip) || p.allow.iter().any(|a| covers(a, *ip, port)) {
            return Verdict::Allow { addr: SocketAddr::new(*ip, port), rule };
        }
    }
    Verdict::Deny {
        rule: "internal-address".into(),
        message: format!(
            "{host} resolves to internal address {} (loopback, private, link-local or metadata); such addresses are reachable only when an IP or CIDR entry names them, e.g. --allow-net {}:{port}",
            ips.first().map(|i| i.to_string()).unwrap_or_default(),
            ips.first().map(|i| i.to_string()).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_policy::netspec::parse_allow;

    fn pol(entries: &[&str]) -> Policy {
        Policy {
            allow: entries.iter().map(|e| parse_allow(e).expect("entry")).collect(),
            resolve_override: vec![
                ("api.test".into(), "127.0.0.1".parse().expect("ip")),
                ("pub.test".into(), "93.184.216.34".parse().expect("ip")),
            ],
        }
    }

    #[tokio::test]
    async fn allowlist_and_internal_addresses() {
        let p = pol(&["pub.test:443", "api.test:8080", "*.wild.test:443"]);
        assert!(matches!(decide(&p, "pub.test", 443).await, Verdict::Allow { .. }));
        assert!(matches!(decide(&p, "pub.test", 80).await, Verdict::Deny { .. }), "port must match");
        assert!(matches!(decide(&p, "evil.test", 443).await, Verdict::Deny { .. }));
        // A name resolving to loopback (DNS rebinding) is refused without an IP entry...
        assert!(
            matches!(decide(&p, "api.test", 8080).await, Verdict::Deny { ref rule, .. } if rule == "internal-address")
        );
        // ...and allowed with one.
        let p2 = pol(&["api.test:8080", "127.0.0.1:8080"]);
        assert!(matches!(decide(&p2, "api.test", 8080).await, Verdict::Allow { .. }));
        // Metadata endpoint.
        let p3 = pol(&["169.254.169.254:80"]);
        assert!(
            matches!(decide(&p3, "169.254.169.254", 80).await, Verdict::Allow { .. }),
            "explicit IP entries allow internal addresses"
        );
        assert!(is_internal("169.254.169.254".parse().expect("ip")));
        assert!(is_internal("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(is_internal("fd00::1".parse().expect("ip")));
        assert!(!is_internal("93.184.216.34".parse().expect("ip")));
    }
}
