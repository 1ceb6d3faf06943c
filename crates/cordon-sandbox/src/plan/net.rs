//! Network: with `egress = "proxy"` the session's init opens the egress proxy's listener inside the
//! session's network namespace (and one forwarder per allowlisted host-loopback service), and hands
//! them to the supervisor, which serves them from the host's namespace. Nothing else has a route out.

use super::{ns::NsPlan, Guarantee};
use cordon_policy::netspec::{HostSpec, NetAllow};
use cordon_policy::{CompiledPolicy, Egress};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ListenerRole {
    Proxy,
    Forward { to: SocketAddr, rule: String },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Listener {
    /// Where it listens inside the session.
    pub addr: SocketAddr,
    pub role: ListenerRole,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct NetPlan {
    pub listeners: Vec<Listener>,
    pub allow: Vec<NetAllow>,
    pub proxy_url: Option<String>,
    /// Session ports the supervisor makes reachable from the host: it listens there, and the init
    /// connects each client to the session's own loopback.
    pub publish: Vec<cordon_policy::netspec::Publish>,
}

pub const PROXY_PORT: u16 = 3128;

pub fn plan(p: &CompiledPolicy, ns: &NsPlan, g: &mut Vec<Guarantee>) -> NetPlan {
    let mut n = NetPlan { allow: p.net.allow.clone(), ..Default::default() };
    if ns.net {
        // Without a network namespace the session's ports are the host's own: nothing to publish
        // (cordon run refuses --publish then).
        n.publish = p.net.publish.clone();
    }
    match p.net.egress {
        Egress::None => return n,
        Egress::Open => {
            g.push(Guarantee::degraded(
                "network",
                "no network beyond the allowlist",
                "nothing: the policy says net.egress = \"open\"",
                "the session reaches anything the host can",
            ));
            return n;
        }
        Egress::Proxy => {}
    }
    if !ns.net {
        g.push(Guarantee::degraded(
            "network",
            "network only through cordon's egress proxy",
            "a network namespace",
            "no network at all (the proxy needs the namespace to be the only way out)",
        ));
        return n;
    }
    let mut port = PROXY_PORT;
    while p.net.listen.contains(&port) {
        port += 1;
    }
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    n.listeners.push(Listener { addr: SocketAddr::new(lo, port), role: ListenerRole::Proxy });
    n.proxy_url = Some(format!("http://127.0.0.1:{port}"));
    // Allowlisted services on the host's loopback are also reachable at the same address inside, for
    // clients that ignore proxy settings.
    for a in &p.net.allow {
        if let (HostSpec::Ip { addr }, Some(pt)) = (&a.host, a.port) {
            if addr.is_loopback()
                && pt != port
                && !p.net.listen.contains(&pt)
                && !n.listeners.iter().any(|l| l.addr.port() == pt && l.addr.ip() == *addr)
            {
                n.listeners.push(Listener {
                    addr: SocketAddr::new(*addr, pt),
                    role: ListenerRole::Forward { to: SocketAddr::new(*addr, pt), rule: a.text.clone() },
                });
            }
        }
    }
    let list: Vec<String> = p.net.allow.iter().map(|a| a.text.clone()).collect();
    g.push(Guarantee::ok(
        "network",
        format!("network only through cordon's egress proxy, to: {}", if list.is_empty() { "nothing".into() } else { list.join(", ") }),
        format!("empty network namespace; HTTP CONNECT, HTTP and SOCKS5 proxy on 127.0.0.1:{port} served by the supervisor; names resolved and pinned by the proxy; internal addresses only by explicit IP"),
    ));
    n
}
