//! Serves a session's egress listeners with cordon's proxy (cordon-egress): the sandbox hands over
//! the sockets its init opened inside the session; this starts the proxy on them with the policy's
//! allowlist, and returns its decisions when the session ends.

use cordon_sandbox::egress::{EgressHook, Listeners, Server};
use cordon_sandbox::plan::net::ListenerRole;

struct Proxy(cordon_egress::Handle);

impl Server for Proxy {
    fn finish(self: Box<Self>) -> Vec<cordon_schema::egress::Decision> {
        self.0.finish()
    }
}

/// The hook that starts the proxy for `allow` (the plan's net.allow).
pub fn hook(allow: Vec<cordon_policy::netspec::NetAllow>) -> EgressHook {
    Box::new(move |l: Listeners| {
        let listeners = l
            .listeners
            .into_iter()
            .map(|(sock, role)| {
                let role = match role {
                    ListenerRole::Proxy => cordon_egress::Role::Proxy,
                    ListenerRole::Forward { to, rule } => cordon_egress::Role::Forward { to, rule },
                };
                (sock, role)
            })
            .collect();
        let policy = cordon_egress::Policy { allow: ablated(allow), resolve_override: test_resolver() };
        let h = cordon_egress::start(listeners, policy, l.attribution).map_err(|e| e.to_string())?;
        Ok(Box::new(Proxy(h)) as Box<dyn Server>)
    })
}

/// A test build with the proxy ablated (cordon_sandbox::ablate): every IPv4 and IPv6 address is
/// allowed, internal ones included (names stay as the policy has them).
fn ablated(allow: Vec<cordon_policy::netspec::NetAllow>) -> Vec<cordon_policy::netspec::NetAllow> {
    use cordon_policy::netspec::{HostSpec, NetAllow};
    if !cordon_sandbox::ablate::off(cordon_sandbox::ablate::Ablate::Egress) {
        return allow;
    }
    let any = |addr: std::net::IpAddr| NetAllow {
        host: HostSpec::Cidr { addr, prefix: 0 },
        port: None,
        text: "ablated".into(),
    };
    let mut all = vec![any(std::net::Ipv4Addr::UNSPECIFIED.into()), any(std::net::Ipv6Addr::UNSPECIFIED.into())];
    all.extend(allow);
    all
}

/// `CORDON_TEST_RESOLVE=name=ip,...`: names the tests own, answered without DNS (never /etc/hosts).
fn test_resolver() -> Vec<(String, std::net::IpAddr)> {
    std::env::var("CORDON_TEST_RESOLVE")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().parse().ok()?))
        })
        .collect()
}
