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
    internal_range(ip).is_some()
}

/// The internal range an address is in, named with its prefix (for the refusal's reason).
pub fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v) => v4_range(v),
        IpAddr::V6(v) => {
            if let Some(m) = v.to_ipv4_mapped() {
                return v4_range(m);
            }
            let s = v.segments();
            if v.is_loopback() {
                Some("loopback (::1)")
            } else if v.is_unspecified() {
                Some("unspecified (::)")
            } else if v.is_multicast() {
                Some("multicast (ff00::/8)")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("unique local (fc00::/7)")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local (fe80::/10)")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation (2001:db8::/32)")
            } else {
                None
            }
        }
    }
}

fn v4_range(v: Ipv4Addr) -> Option<&'static str> {
    let o = v.octets();
    Some(match o {
        [127, ..] => "loopback (127.0.0.0/8)",
        [10, ..] => "private (10.0.0.0/8)",
        [172, b, ..] if (16..32).contains(&b) => "private (172.16.0.0/12)",
        [192, 168, ..] => "private (192.168.0.0/16)",
        [169, 254, 169, 254] => "link-local (169.254.0.0/16): the cloud metadata service",
        [169, 254, ..] => "link-local (169.254.0.0/16)",
        [0, 0, 0, 0] => "unspecified (0.0.0.0)",
        [0, ..] => "\"this network\" (0.0.0.0/8)",
        [255, 255, 255, 255] => "broadcast (255.255.255.255)",
        [a, ..] if (224..240).contains(&a) => "multicast (224.0.0.0/4)",
        [192, 0, 2, _] => "documentation (192.0.2.0/24)",
        [198, 51, 100, _] => "documentation (198.51.100.0/24)",
        [203, 0, 113, _] => "documentation (203.0.113.0/24)",
        [100, b, ..] if (b & 0xc0) == 64 => "shared address space (100.64.0.0/10)",
        [198, b, ..] if (b & 0xfe) == 18 => "benchmarking (198.18.0.0/15)",
        _ => return None,
    })
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
    let first = ips.first().copied();
    let ip = first.map(|i| i.to_string()).unwrap_or_default();
    let range = first.and_then(internal_range).unwrap_or("an internal range");
    let at = if first.is_some_and(|i| i.is_ipv6()) { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    Verdict::Deny {
        rule: "internal-address".into(),
        message: format!(
            "{host} is allowed by `{rule}`, but it resolves to internal address {ip}, in the {range} range; such addresses are reachable only when an IP or CIDR entry names them, e.g. --allow-net {at}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_address_is_named_with_its_real_range() {
        let r = |s: &str| internal_range(s.parse().expect("ip"));
        assert_eq!(r("192.0.2.10"), Some("documentation (192.0.2.0/24)"));
        assert_eq!(r("169.254.169.254"), Some("link-local (169.254.0.0/16): the cloud metadata service"));
        assert_eq!(r("10.1.2.3"), Some("private (10.0.0.0/8)"));
        assert_eq!(r("172.31.0.1"), Some("private (172.16.0.0/12)"));
        assert_eq!(r("172.32.0.1"), None);
        assert_eq!(r("100.100.0.1"), Some("shared address space (100.64.0.0/10)"));
        assert_eq!(r("::ffff:127.0.0.1"), Some("loopback (127.0.0.0/8)"));
        assert_eq!(r("fd00::1"), Some("unique local (fc00::/7)"));
        assert_eq!(r("93.184.216.34"), None);
        for ip in ["192.0.2.1", "198.18.0.1", "0.1.2.3", "224.0.0.1", "255.255.255.255", "2001:db8::1", "fe80::1"] {
            assert!(is_internal(ip.parse().expect("ip")), "{ip}");
        }
    }
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
