//! `[net] allow` entries: `HOST[:PORT]` where HOST is a domain, `*.domain`, an IP or a CIDR.

use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HostSpec {
    Domain {
        name: String,
    },
    /// `*.example.com`: any subdomain (not the apex).
    Wildcard {
        suffix: String,
    },
    Ip {
        addr: IpAddr,
    },
    Cidr {
        addr: IpAddr,
        prefix: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetAllow {
    pub host: HostSpec,
    /// None = any port.
    pub port: Option<u16>,
    pub text: String,
}

/// Parses one allowlist item: `HOST[:PORT]`, or `@NAME` for a preset (several entries, each
/// remembering the preset it came from).
pub fn parse_allow_item(s: &str) -> Result<Vec<NetAllow>, String> {
    let t = s.trim();
    let Some(name) = t.strip_prefix('@') else { return parse_allow(t).map(|a| vec![a]) };
    let entries = crate::presets::get(name)
        .ok_or_else(|| format!("unknown preset `@{name}`; presets: {}", crate::presets::names()))?;
    entries
        .iter()
        .map(|e| {
            parse_allow(e).map(|mut a| {
                a.text = format!("{e} (@{name})");
                a
            })
        })
        .collect()
}

/// Parses `HOST[:PORT]`. IPv6 addresses take brackets (`[::1]:443`, `[::1]` for every port); an IPv6
/// range may go without them when it has no port (`fd00::/8`). A bare IPv6 address is refused:
/// `::1:443` is both port 443 of `::1` and the address `::1:443`. A host that ends in a number is an
/// IPv4 address or nothing: `0177.0.0.1`, `0x7f000001`, `127.1` and `256.1.1.1` are refused (other
/// tools read some of them as 127.0.0.1; cordon never takes them as domain names). A URL is answered
/// with the `HOST:PORT` to write instead.
pub fn parse_allow(s: &str) -> Result<NetAllow, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty entry".into());
    }
    if let Some((scheme, rest)) = t.split_once("://") {
        return Err(url_error(scheme, rest));
    }
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let end = rest.find(']').ok_or("missing `]` after IPv6 address")?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p if p.starts_with('/') => {
                return Err(format!(
                    "an address range is written without brackets: `{host}{p}` (a port cannot follow a range)"
                ))
            }
            p => Some(p.strip_prefix(':').ok_or("expected `:PORT` after `]`")?),
        };
        (host, port)
    } else if t.matches(':').count() > 1 {
        if !is_v6_cidr(t) {
            return Err(bare_v6_error(t));
        }
        (t, None)
    } else if let Some((h, p)) = t.split_once(':') {
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

/// `ADDR/PREFIX` with an IPv6 address.
fn is_v6_cidr(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(a, p)| a.parse::<Ipv6Addr>().is_ok() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// What to say about an unbracketed entry with more than one `:`.
fn bare_v6_error(t: &str) -> String {
    // `HEAD:PORT` where HEAD is an IPv6 address or range: the port was meant.
    if let Some((head, port)) = t.rsplit_once(':') {
        let head_ok = head.parse::<Ipv6Addr>().is_ok() || is_v6_cidr(head);
        if head_ok && !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) {
            let also = if t.parse::<Ipv6Addr>().is_ok() {
                format!(", or `[{t}]` for the address {t} on every port")
            } else {
                String::new()
            };
            return format!("`{t}` is ambiguous: an IPv6 address with a port must be in brackets; write `[{head}]:{port}` for port {port} of {head}{also}");
        }
    }
    if t.parse::<Ipv6Addr>().is_ok() {
        return format!(
            "`{t}` is a bare IPv6 address; write it in brackets: `[{t}]:PORT` for one port, or `[{t}]` for every port"
        );
    }
    format!("`{t}` has more than one `:`; write HOST:PORT, with an IPv6 address in brackets (e.g. [::1]:443)")
}

/// What to say about `SCHEME://...`: the `HOST:PORT` the URL names.
fn url_error(scheme: &str, rest: &str) -> String {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let has_port = match hostport.strip_prefix('[') {
        Some(r) => r.contains("]:"),
        None => hostport.contains(':'),
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        "ssh" | "sftp" | "git+ssh" => Some(22),
        "git" => Some(9418),
        _ => None,
    };
    let write = if hostport.is_empty() {
        None
    } else if has_port {
        Some(hostport.to_string())
    } else {
        default_port.map(|p| format!("{hostport}:{p}"))
    };
    match write {
        Some(w) => format!("give HOST:PORT, not a URL: write `{w}`"),
        None => format!("give HOST:PORT, not a URL: write the host and the port `{scheme}://` uses, e.g. `host:PORT`"),
    }
}

/// A host whose last label is a number (decimal, or `0x` hex) is meant as an IPv4 address: the rule
/// of the URL standard's host parser. No top-level domain is numeric.
fn ends_in_number(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    let last = h.rsplit('.').next().unwrap_or(h);
    let hex = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X"));
    match hex {
        Some(x) => x.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// How inet_aton (and so curl, ping, browsers) reads a numeric host: one to four parts, each decimal,
/// octal (leading 0) or hex (0x), the last filling the remaining bytes. For the error message only.
fn inet_aton(h: &str) -> Option<Ipv4Addr> {
    let h = h.strip_suffix('.').unwrap_or(h);
    let parts: Vec<&str> = h.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = vec![];
    for p in &parts {
        let n = if let Some(x) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if x.is_empty() {
                Some(0)
            } else {
                u64::from_str_radix(x, 16).ok()
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse::<u64>().ok()
        };
        nums.push(n?);
    }
    let (last, first) = nums.split_last()?;
    if first.iter().any(|n| *n > 255) || *last >= 1u64 << (8 * (4 - first.len())) {
        return None;
    }
    let v = first.iter().enumerate().fold(*last, |acc, (i, n)| acc | n << (24 - 8 * i));
    u32::try_from(v).ok().map(Ipv4Addr::from)
}

fn numeric_error(h: &str) -> String {
    let read_as = match inet_aton(h) {
        Some(ip) => format!("; other tools may read it as {ip}: write `{ip}` if that is what you mean"),
        None => String::new(),
    };
    format!("`{h}` is not a valid IPv4 address (four numbers 0-255 without leading zeros, e.g. 10.0.0.1), and a name ending in a number is not a domain name{read_as}")
}

fn parse_host(h: &str) -> Result<HostSpec, String> {
    if h.is_empty() {
        return Err("missing host".into());
    }
    if let Some((a, p)) = h.split_once('/') {
        let addr: IpAddr = match a.parse() {
            Ok(addr) => addr,
            Err(_) if ends_in_number(a) => return Err(numeric_error(a)),
            Err(_) => return Err(format!("`{h}`: only an IP range takes a `/` (CIDR, e.g. 10.0.0.0/8); for a host write HOST[:PORT] without a path")),
        };
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
    if ends_in_number(name) {
        return Err(numeric_error(name));
    }
    check_domain(name)?;
    let name = name.to_ascii_lowercase();
    Ok(if wild { HostSpec::Wildcard { suffix: name } } else { HostSpec::Domain { name } })
}

/// A loud warning for an entry that opens far more than a host: a catch-all or very broad range
/// (shorter than /8), or any range (or an IP without a port) that reaches this host's own loopback,
/// where services that trust local clients listen. `None` for an ordinary entry. `cordon run` prints
/// it for `--allow-net`, and [`crate::Loaded::warnings`] for `[net] allow` in policies.
pub fn warning(a: &NetAllow) -> Option<String> {
    let text = &a.text;
    let ports = match a.port {
        Some(p) => format!("on port {p}"),
        None => "on every port".to_string(),
    };
    let loopback = "this host's own loopback (127.0.0.1, ::1), where services that trust local clients listen";
    match a.host {
        HostSpec::Ip { addr } if a.port.is_none() && is_this_host(addr) => {
            let one = if addr.is_ipv4() { format!("{addr}:PORT") } else { format!("[{addr}]:PORT") };
            Some(format!(
                "`{text}` opens every port of this host: {loopback}; give the one port the task needs ({one})"
            ))
        }
        // 0.0.0.0 and :: mean "this host" to connect(); a mapped 127.0.0.1 hides what it is.
        HostSpec::Ip { addr } if is_this_host(addr) && !addr.is_loopback() => Some(format!(
            "`{text}` names this host ({addr} reaches its own services like 127.0.0.1 does, {loopback}); write 127.0.0.1:PORT if that is what the task needs"
        )),
        HostSpec::Wildcard { ref suffix } if !suffix.contains('.') => Some(format!(
            "`{text}` allows every domain under the top-level domain `.{suffix}` {ports}; name the domains the task needs instead"
        )),
        HostSpec::Cidr { addr, prefix } => {
            let broad = prefix < 8;
            let lo = [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
            ];
            let reaches_lo = lo.iter().any(|ip| cidr_contains(addr, prefix, *ip));
            if !broad && !reaches_lo {
                return None;
            }
            let what = match addr {
                _ if prefix == 0 => format!("every {} address", if addr.is_ipv4() { "IPv4" } else { "IPv6" }),
                IpAddr::V4(_) if broad => {
                    format!("the /{prefix} range {addr}/{prefix} ({} addresses)", 1u64 << (32 - u32::from(prefix)))
                }
                IpAddr::V6(_) if broad => {
                    format!("the /{prefix} range {addr}/{prefix} (1/{} of all IPv6 addresses)", 1u64 << prefix)
                }
                _ => format!("the range {addr}/{prefix}"),
            };
            let among = if reaches_lo {
                format!("including {loopback}")
            } else {
                "private networks and cloud metadata (169.254.169.254) among them".to_string()
            };
            Some(format!("`{text}` opens {what} {ports}, {among}; name the hosts the task needs instead (HOST:PORT)"))
        }
        _ => None,
    }
}

/// Connecting to a loopback or unspecified address (0.0.0.0, ::) reaches this host itself.
fn is_this_host(ip: IpAddr) -> bool {
    let v4 = |v: Ipv4Addr| v.is_loopback() || v.is_unspecified();
    match ip {
        IpAddr::V4(v) => v4(v),
        IpAddr::V6(v) => v.is_loopback() || v.is_unspecified() || v.to_ipv4_mapped().is_some_and(v4),
    }
}

fn cidr_contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(h)) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            u32::from(h) & m == u32::from(n) & m
        }
        (IpAddr::V6(n), IpAddr::V6(h)) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            u128::from(h) & m == u128::from(n) & m
        }
        _ => false,
    }
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

    fn addr(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn err(s: &str) -> String {
        match parse_allow(s) {
            Ok(a) => panic!("`{s}` was accepted as {a:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn ipv6_takes_brackets_and_a_bare_one_is_refused_with_the_bracketed_form() {
        for (s, want) in [
            ("::1:443", "`[::1]:443`"),
            ("2001:db8::1:8080", "`[2001:db8::1]:8080`"),
            ("fd00::/8:443", "`[fd00::/8]:443`"),
            ("::1", "`[::1]`"),
            ("fe80::1", "`[fe80::1]:PORT`"),
        ] {
            let e = err(s);
            assert!(e.contains(want) && e.contains("IPv6"), "`{s}`: {e}");
        }
        // `::1:443` is also an address (…:1:443): the error offers both readings.
        assert!(err("::1:443").contains("`[::1:443]`"));
        assert!(err("a:b:c").contains("[::1]:443"), "{}", err("a:b:c"));
        let ip = |s: &str| parse_allow(s).map(|a| (a.host, a.port));
        assert_eq!(ip("[::1]:443"), Ok((HostSpec::Ip { addr: addr("::1") }, Some(443))));
        assert_eq!(ip("[::1]"), Ok((HostSpec::Ip { addr: addr("::1") }, None)));
        assert_eq!(ip("fd00::/8"), Ok((HostSpec::Cidr { addr: addr("fd00::"), prefix: 8 }, None)));
        assert_eq!(ip("[fd00::/8]:443"), Ok((HostSpec::Cidr { addr: addr("fd00::"), prefix: 8 }, Some(443))));
        assert!(err("[::1]443").contains("`:PORT`"));
    }

    #[test]
    fn numeric_hosts_that_are_not_ipv4_addresses_are_refused_not_taken_as_domains() {
        for (s, means) in [
            ("256.1.1.1", None),
            ("0177.0.0.1", Some("127.0.0.1")),
            ("0x7f000001", Some("127.0.0.1")),
            ("0x7f.1", Some("127.0.0.1")),
            ("1.2.3", Some("1.2.0.3")),
            ("127.1", Some("127.0.0.1")),
            ("2130706433", Some("127.0.0.1")),
            ("1.2.3.4.5", None),
            ("1.2.3.4.", Some("1.2.3.4")),
            ("example.123", None),
            ("0177.0.0.1:443", Some("127.0.0.1")),
            ("*.1.2.3", None),
            ("0177.0.0.0/8", Some("127.0.0.0")),
        ] {
            let e = err(s);
            assert!(e.contains("not a valid IPv4 address"), "`{s}`: {e}");
            match means {
                Some(m) => assert!(e.contains(&format!("`{m}`")), "`{s}` names what other tools read: {e}"),
                None => assert!(e.contains("four numbers 0-255"), "`{s}`: {e}"),
            }
        }
        for ok in ["1password.com:443", "123.example.com", "x1.y2.io:80", "10.0.0.1:22", "10.0.0.0/8", "0x.example.com"]
        {
            assert!(parse_allow(ok).is_ok(), "`{ok}`: {:?}", parse_allow(ok));
        }
    }

    #[test]
    fn a_url_is_answered_with_host_and_port() {
        for (s, want) in [
            ("http://x", Some("x:80")),
            ("https://x/path", Some("x:443")),
            ("https://x:8443/p?q=1", Some("x:8443")),
            ("HTTP://user:pw@x.org/", Some("x.org:80")),
            ("http://[::1]:8080/", Some("[::1]:8080")),
            ("wss://api.example.com", Some("api.example.com:443")),
            ("gopher://x", None),
        ] {
            let e = err(s);
            assert!(e.contains("give HOST:PORT, not a URL"), "`{s}`: {e}");
            if let Some(w) = want {
                assert!(e.contains(&format!("`{w}`")), "`{s}`: {e}");
            }
        }
        assert!(err("github.com/owner/repo").contains("without a path"), "{}", err("github.com/owner/repo"));
    }

    #[test]
    fn a_bracketed_range_is_refused_with_the_form_to_write() {
        let e = parse_allow("[::]/0").expect_err("bracketed range");
        assert!(e.contains("`::/0`"), "{e}");
    }

    #[test]
    fn catch_all_and_loopback_ranges_get_a_warning() {
        let w = |s: &str| warning(&parse_allow(s).unwrap_or_else(|e| panic!("`{s}`: {e}")));
        for (s, says) in [
            ("0.0.0.0/0", ["every IPv4 address", "loopback"]),
            ("::/0", ["every IPv6 address", "loopback"]),
            ("0.0.0.0/0:443", ["every IPv4 address", "port 443"]),
            ("0.0.0.0/1", ["/1", "loopback"]),
            ("100.0.0.0/6", ["/6", "addresses"]),
            ("127.0.0.0/8", ["127.0.0.0/8", "loopback"]),
            ("127.0.0.0/8:5432", ["port 5432", "loopback"]),
            ("127.0.0.1", ["every port", "loopback"]),
            ("[::1]", ["every port", "loopback"]),
            ("0.0.0.0", ["every port", "this host"]),
            ("::ffff:0:0/96", ["loopback", "127.0.0.1"]),
            ("2000::/3", ["/3", "IPv6"]),
            ("[::]:443", ["this host", "127.0.0.1:PORT"]),
            ("0.0.0.0:443", ["this host", "127.0.0.1:PORT"]),
            ("[::ffff:127.0.0.1]:80", ["this host", "loopback"]),
            ("0.0.0.0/8", ["0.0.0.0/8", "loopback"]),
            ("*.com:443", ["top-level domain", "`.com`"]),
        ] {
            let m = w(s).unwrap_or_else(|| panic!("no warning for `{s}`"));
            assert!(m.contains(&format!("`{s}`")), "names the entry: {m}");
            for x in says {
                assert!(m.contains(x), "`{s}`: `{x}` missing in: {m}");
            }
        }
        for quiet in [
            "github.com:443",
            "*.pypi.org:443",
            "10.0.0.0/8",
            "192.168.0.0/16:22",
            "fd00::/8",
            "127.0.0.1:11434",
            "[::1]:8080",
            "1.2.3.4",
        ] {
            assert_eq!(w(quiet), None, "`{quiet}`");
        }
    }
}

/// A session port reachable from the host: `[HOST_IP:]HOST_PORT:SESSION_PORT` (`--publish`,
/// `[net] publish`). The host side listens on HOST_IP (loopback unless given); each connection is
/// joined to the session's own loopback at SESSION_PORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Publish {
    pub host: std::net::SocketAddr,
    pub session_port: u16,
}

impl std::fmt::Display for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> session port {}", self.host, self.session_port)
    }
}

/// Parses `[HOST_IP:]HOST_PORT:SESSION_PORT`; an IPv6 host takes brackets (`[::1]:8080:3000`).
pub fn parse_publish(s: &str) -> Result<Publish, String> {
    let t = s.trim();
    let port = |x: &str, what: &str| -> Result<u16, String> {
        match x.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
            Ok(p) => Err(format!("{what} {p} is out of range 1-65535")),
            Err(_) => Err(format!("{what} `{x}` is not a number")),
        }
    };
    let (ip, rest) = if let Some(r) = t.strip_prefix('[') {
        let (ip, rest) = r.split_once("]:").ok_or("an IPv6 host is written `[ADDR]:HOST_PORT:SESSION_PORT`")?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
        (IpAddr::V6(ip), rest)
    } else {
        match t.matches(':').count() {
            1 => (IpAddr::V4(Ipv4Addr::LOCALHOST), t),
            2 => {
                let (ip, rest) = t.split_once(':').unwrap_or_default();
                let ip: Ipv4Addr = ip.parse().map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
                (IpAddr::V4(ip), rest)
            }
            _ => return Err("expected [HOST_IP:]HOST_PORT:SESSION_PORT".into()),
        }
    };
    let (h, s) = rest.split_once(':').ok_or("expected [HOST_IP:]HOST_PORT:SESSION_PORT")?;
    Ok(Publish { host: std::net::SocketAddr::new(ip, port(h, "host port")?), session_port: port(s, "session port")? })
}

/// What to say about a publish the user may not mean: a host address other than loopback makes
/// the session's server reachable from the network.
pub fn publish_warning(p: &Publish) -> Option<String> {
    (!p.host.ip().is_loopback())
        .then(|| format!("{p}: {} is not loopback, so the session's server is reachable from the network", p.host.ip()))
}

#[cfg(test)]
mod publish_tests {
    use super::*;

    #[test]
    fn publish_entries_parse_and_bad_ones_say_why() {
        let p = parse_publish("8080:3000").expect("ok");
        assert_eq!((p.host.to_string().as_str(), p.session_port), ("127.0.0.1:8080", 3000));
        assert_eq!(parse_publish("0.0.0.0:80:8000").expect("ok").host.to_string(), "0.0.0.0:80");
        assert_eq!(parse_publish("[::1]:8080:3000").expect("ok").host.to_string(), "[::1]:8080");
        assert!(publish_warning(&parse_publish("0.0.0.0:80:8000").expect("ok")).is_some());
        assert!(publish_warning(&p).is_none());
        for (bad, why) in [
            ("8080", "expected"),
            ("99999:1", "out of range"),
            ("0:1", "out of range"),
            ("a:1", "not a number"),
            ("1.2.3:1:2", "not an IPv4"),
            ("::1:8080:3000", "expected"),
            ("[zz]:1:2", "not an IPv6"),
            ("", "expected"),
        ] {
            let e = parse_publish(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
