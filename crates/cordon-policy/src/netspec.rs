//! `[net] allow` entries: `HOST[:PORT]` where HOST is a domain, `*.domain`, an IP or a CIDR.

use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HostSpec {
    Domain { name: String },
    /// `*.example.com`: any subdomain (not the apex).
    Wildcard { suffix: String },
    Ip { addr: IpAddr },
    Cidr { addr: IpAddr, prefix: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetAllow {
    pub host: HostSpec,
    /// None = any port.
    pub port: Option<u16>,
    pub text: String,
}

pub fn parse_allow(s: &str) -> Result<NetAllow, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty entry".into());
    }
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let end = rest.find(']').ok_or("missing `]` after IPv6 address")?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected `:PORT` after `]`")?),
        };
        (host, port)
    } else if t.matches(':').count() == 1 {
        let (h, p) = t.split_once(':').ok_or("bad entry")?;
        (h, Some(p))
    } else {
        (t, None)
    };
    let port = match port {
        None => None,
        Some(p) => {
            let n: u32 = p.parse().map_err(|_| format!("port `{p}` is not a number"))?;
            if n == 0 || n > 65535 {
                return Err(format!("port {n} is out of range 1-65535"));
            }
            Some(n as u16)
        }
    };
    let host = parse_host(host)?;
    Ok(NetAllow { host, port, text: t.to_string() })
}

fn parse_host(h: &str) -> Result<HostSpec, String> {
    if h.is_empty() {
        return Err("missing host".into());
    }
    if let Some((a, p)) = h.split_once('/') {
        let addr: IpAddr = a.parse().map_err(|_| format!("`{a}` is not an IP address (CIDR needs one)"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("prefix `{p}` is not a number"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("prefix /{prefix} is longer than {max}"));
        }
        return Ok(HostSpec::Cidr { addr, prefix });
    }
    if let Ok(addr) = h.parse::<IpAddr>() {
        return Ok(HostSpec::Ip { addr });
    }
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h),
    };
    check_domain(name)?;
    let name = name.to_ascii_lowercase();
    Ok(if wild { HostSpec::Wildcard { suffix: name } } else { HostSpec::Domain { name } })
}

fn check_domain(d: &str) -> Result<(), String> {
    if d.len() > 253 {
        return Err("domain is longer than 253 characters".into());
    }
    if d.contains('*') {
        return Err("`*` is only allowed as the first label (`*.example.com`)".into());
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("`{d}` is not a valid domain name"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || label.starts_with('-') {
            return Err(format!("`{d}` is not a valid domain name (label `{label}`)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses() {
        assert_eq!(parse_allow("github.com:443").map(|a| a.port), Ok(Some(443)));
        assert!(matches!(parse_allow("*.pypi.org:443").map(|a| a.host), Ok(HostSpec::Wildcard { .. })));
        assert!(matches!(parse_allow("10.0.0.0/8").map(|a| a.host), Ok(HostSpec::Cidr { prefix: 8, .. })));
        assert!(matches!(parse_allow("[::1]:8080").map(|a| a.port), Ok(Some(8080))));
        assert!(parse_allow("github.com:0").is_err());
        assert!(parse_allow("git*hub.com").is_err());
        assert!(parse_allow("10.0.0.0/40").is_err());
        assert!(parse_allow("").is_err());
    }
}
