//! The proxy server: one tokio runtime on its own thread, accepting on listeners made inside the
//! session's network namespace. Bounded: at most MAX_CONNS connections at once, 64 KiB request heads,
//! 10 s to send one, 10 s to connect upstream.

use crate::decide::{decide, Policy, Verdict};
use crate::head::{read_head, split_host_port, HeadError};
use crate::record::Decision;
use crate::socks;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections served at once; more wait in the accept queue. Tunnels are relayed by splice(2) in
/// the kernel (a pipe per direction, no user-space buffers), two small-stack threads each.
pub const MAX_CONNS: usize = 1024;

/// Raises a listener's accept queue (std uses 128) so bursts of connections queue instead of
/// being refused.
pub fn deepen_backlog(l: &std::net::TcpListener) {
    use std::os::fd::AsFd;
    let _ = nix::sys::socket::listen(
        &l.as_fd(),
        nix::sys::socket::Backlog::new(4096).unwrap_or(nix::sys::socket::Backlog::MAXCONN),
    );
}

/// What a listener does.
#[derive(Debug, Clone)]
pub enum Role {
    /// HTTP CONNECT, HTTP forwarding and SOCKS5 on one port.
    Proxy,
    /// Forward every connection to this allowlisted address (a host-loopback service).
    Forward { to: SocketAddr, rule: String },
}

/// Who asked: the pid and executable behind a client connection (looked up by the caller, who
/// knows the session's processes).
pub type Attribution = Arc<dyn Fn(SocketAddr) -> (u32, String) + Send + Sync>;

pub struct Handle {
    decisions: Arc<Mutex<Vec<Decision>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// Stops the proxy (open tunnels are closed) and returns every decision.
    pub fn finish(mut self) -> Vec<Decision> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.decisions.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Ctx {
    policy: Policy,
    attribution: Attribution,
    decisions: Arc<Mutex<Vec<Decision>>>,
    started: Instant,
    slots: tokio::sync::Semaphore,
}

pub fn start(
    listeners: Vec<(std::net::TcpListener, Role)>,
    policy: Policy,
    attribution: Attribution,
) -> std::io::Result<Handle> {
    let decisions = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    for (l, _) in &listeners {
        l.set_nonblocking(true)?;
        deepen_backlog(l);
    }
    let ctx = Arc::new(Ctx {
        policy,
        attribution,
        decisions: decisions.clone(),
        started: Instant::now(),
        slots: tokio::sync::Semaphore::new(MAX_CONNS),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(MAX_CONNS + 16)
        .thread_name("cordon-egress")
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new().name("cordon-egress".into()).spawn(move || {
        rt.block_on(async move {
            for (l, role) in listeners {
                let Ok(l) = TcpListener::from_std(l) else { continue };
                let ctx = ctx.clone();
                tokio::spawn(accept_loop(l, role, ctx));
            }
            let _ = rx.await;
        });
        rt.shutdown_timeout(Duration::from_millis(200));
    })?;
    Ok(Handle { decisions, stop: Some(tx), thread: Some(thread) })
}

async fn accept_loop(l: TcpListener, role: Role, ctx: Arc<Ctx>) {
    loop {
        let Ok((s, peer)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let ctx = ctx.clone();
        let role = role.clone();
        tokio::spawn(async move {
            // Bounded: past MAX_CONNS a client waits for a slot instead of growing memory.
            let Ok(_slot) = ctx.slots.acquire().await else { return };
            let _ = s.set_nodelay(true);
            // Attribute now, while the client's socket exists.
            let att = ctx.attribution.clone();
            let who = tokio::task::spawn_blocking(move || att(peer)).await.unwrap_or((0, "?".into()));
            match role {
                Role::Proxy => serve(s, who, &ctx).await,
                Role::Forward { to, rule } => forward(s, who, to, rule, &ctx).await,
            }
        });
    }
}

type Who = (u32, String);

struct Pending<'a> {
    ctx: &'a Ctx,
    protocol: &'static str,
    who: Who,
    host: String,
    port: u16,
    t0: Instant,
}

impl Pending<'_> {
    fn record(&self, allowed: bool, ip: Option<SocketAddr>, rule: String, up: u64, down: u64) {
        let (pid, exe) = self.who.clone();
        let d = Decision {
            at_ms: self.t0.duration_since(self.ctx.started).as_millis() as u64,
            allowed,
            protocol: self.protocol.to_string(),
            host: self.host.clone(),
            port: self.port,
            ip: ip.map(|a| a.ip().to_string()),
            rule,
            bytes_up: up,
            bytes_down: down,
            duration_ms: self.t0.elapsed().as_millis() as u64,
            pid,
            exe,
        };
        self.ctx.decisions.lock().unwrap_or_else(|e| e.into_inner()).push(d);
    }
}

/// An allowed connection that is made: recorded when it ends, with its byte counts, or, if it never
/// gets there (the proxy stopped with the session while the tunnel was open, a write failed), when
/// it is dropped, so that a connection that happened is never missing from the record.
struct Opened<'a> {
    p: &'a Pending<'a>,
    ip: SocketAddr,
    rule: Option<String>,
}

impl<'a> Opened<'a> {
    fn new(p: &'a Pending<'a>, ip: SocketAddr, rule: String) -> Self {
        Opened { p, ip, rule: Some(rule) }
    }

    fn close(mut self, up: u64, down: u64) {
        if let Some(rule) = self.rule.take() {
            self.p.record(true, Some(self.ip), rule, up, down);
        }
    }
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        if let Some(rule) = self.rule.take() {
            self.p.record(true, Some(self.ip), format!("{rule} (not finished when recorded: bytes not counted)"), 0, 0);
        }
    }
}

/// Relays both directions of an established tunnel in the kernel (splice), off the async workers.
/// Returns (client -> upstream, upstream -> client) byte counts.
async fn tunnel(s: TcpStream, up: TcpStream) -> (u64, u64) {
    let (Ok(a), Ok(b)) = (s.into_std(), up.into_std()) else { return (0, 0) };
    tokio::task::spawn_blocking(move || {
        let _ = a.set_nonblocking(false);
        let _ = b.set_nonblocking(false);
        let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else { return (0, 0) };
        let back =
            std::thread::Builder::new().stack_size(64 * 1024).spawn(move || crate::sys::relay(&b2, &a2).unwrap_or(0));
        let up_bytes = crate::sys::relay(&a, &b).unwrap_or(0);
        let down = back.ok().and_then(|t| t.join().ok()).unwrap_or(0);
        (up_bytes, down)
    })
    .await
    .unwrap_or((0, 0))
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn http_error(code: u16, reason: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nX-Cordon-Denied: 1\r\n\r\n{body}", body.len()).into_bytes()
}

async fn serve(mut s: TcpStream, who: Who, ctx: &Ctx) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] == 5 {
        return socks5(s, who, ctx).await;
    }
    let head = match read_head(&mut s, first.to_vec()).await {
        Ok(h) => h,
        Err(HeadError::TooLarge) => {
            let _ = s
                .write_all(&http_error(
                    431,
                    "Request Header Fields Too Large",
                    "cordon egress proxy: request head over 64 KiB\n",
                ))
                .await;
            return;
        }
        Err(HeadError::Malformed(m)) => {
            let _ = s.write_all(&http_error(400, "Bad Request", &format!("cordon egress proxy: {m}\n"))).await;
            return;
        }
        Err(HeadError::Timeout) | Err(HeadError::Closed) => return,
    };
    if head.method.eq_ignore_ascii_case("CONNECT") {
        let Some((host, port)) = split_host_port(&head.target, 443) else {
            let _ =
                s.write_all(&http_error(400, "Bad Request", "cordon egress proxy: CONNECT needs host:port\n")).await;
            return;
        };
        let p = Pending { ctx, protocol: "connect", who: who.clone(), host: host.clone(), port, t0: Instant::now() };
        match decide(&ctx.policy, &host, port).await {
            Verdict::Deny { rule, message } => {
                let _ = s
                    .write_all(&http_error(
                        403,
                        "Forbidden",
                        &format!("cordon: CONNECT {host}:{port} denied ({rule}): {message}\n"),
                    ))
                    .await;
                p.record(false, None, format!("{rule}: {message}"), 0, 0);
            }
            Verdict::Allow { addr, rule } => match connect(addr).await {
                Err(e) => {
                    let _ = s
                        .write_all(&http_error(
                            502,
                            "Bad Gateway",
                            &format!("cordon: {host}:{port} ({addr}) allowed by `{rule}` but unreachable: {e}\n"),
                        ))
                        .await;
                    p.record(true, Some(addr), format!("{rule} (connect failed: {e})"), 0, 0);
                }
                Ok(mut up) => {
                    let opened = Opened::new(&p, addr, rule);
                    if s.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_err() {
                        return;
                    }
                    let mut sent = 0u64;
                    if !head.rest.is_empty() {
                        sent += head.rest.len() as u64;
                        if up.write_all(&head.rest).await.is_err() {
                            return;
                        }
                    }
                    let (a, b) = tunnel(s, up).await;
                    opened.close(sent + a, b);
                }
            },
        }
        return;
    }
    // Plain HTTP through the proxy: absolute-form target.
    let Some(rest) = head.target.strip_prefix("http://") else {
        let _ = s
            .write_all(&http_error(
                400,
                "Bad Request",
                "cordon egress proxy: expected CONNECT or an absolute http:// URL (https goes through CONNECT)\n",
            ))
            .await;
        return;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some((host, port)) = split_host_port(authority, 80) else {
        let _ = s.write_all(&http_error(400, "Bad Request", "cordon egress proxy: bad host in URL\n")).await;
        return;
    };
    let p = Pending { ctx, protocol: "http", who, host: host.clone(), port, t0: Instant::now() };
    match decide(&ctx.policy, &host, port).await {
        Verdict::Deny { rule, message } => {
            let _ = s
                .write_all(&http_error(
                    403,
                    "Forbidden",
                    &format!("cordon: {} http://{host}:{port} denied ({rule}): {message}\n", head.method),
                ))
                .await;
            p.record(false, None, format!("{rule}: {message}"), 0, 0);
        }
        Verdict::Allow { addr, rule } => match connect(addr).await {
            Err(e) => {
                let _ = s
                    .write_all(&http_error(
                        502,
                        "Bad Gateway",
                        &format!("cordon: {host}:{port} allowed but unreachable: {e}\n"),
                    ))
                    .await;
                p.record(true, Some(addr), format!("{rule} (connect failed: {e})"), 0, 0);
            }
            Ok(mut up) => {
                let opened = Opened::new(&p, addr, rule);
                // The connection is pinned to this host: one request, then close.
                let mut out = format!("{} {path} {}\r\n", head.method, head.version);
                for (k, v) in &head.headers {
                    let kl = k.to_ascii_lowercase();
                    if kl.starts_with("proxy-") || kl == "connection" || kl == "keep-alive" {
                        continue;
                    }
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("Connection: close\r\n\r\n");
                let mut sent = out.len() as u64 + head.rest.len() as u64;
                if up.write_all(out.as_bytes()).await.is_err() || up.write_all(&head.rest).await.is_err() {
                    return;
                }
                let (a, b) = tunnel(s, up).await;
                sent += a;
                opened.close(sent, b);
            }
        },
    }
}

async fn socks5(mut s: TcpStream, who: Who, ctx: &Ctx) {
    let (host, port) = match socks::handshake(&mut s).await {
        Ok(x) => x,
        Err(_) => return,
    };
    let p = Pending { ctx, protocol: "socks5", who, host: host.clone(), port, t0: Instant::now() };
    match decide(&ctx.policy, &host, port).await {
        Verdict::Deny { rule, message } => {
            let _ = socks::reply(&mut s, socks::REP_NOT_ALLOWED).await;
            p.record(false, None, format!("{rule}: {message}"), 0, 0);
        }
        Verdict::Allow { addr, rule } => match connect(addr).await {
            Err(e) => {
                let _ = socks::reply(&mut s, socks::REP_HOST_UNREACHABLE).await;
                p.record(true, Some(addr), format!("{rule} (connect failed: {e})"), 0, 0);
            }
            Ok(up) => {
                let opened = Opened::new(&p, addr, rule);
                if socks::reply(&mut s, socks::REP_OK).await.is_err() {
                    return;
                }
                let (a, b) = tunnel(s, up).await;
                opened.close(a, b);
            }
        },
    }
}

async fn forward(s: TcpStream, who: Who, to: SocketAddr, rule: String, ctx: &Ctx) {
    let p = Pending { ctx, protocol: "forward", who, host: to.ip().to_string(), port: to.port(), t0: Instant::now() };
    match connect(to).await {
        Err(e) => p.record(true, Some(to), format!("{rule} (connect failed: {e})"), 0, 0),
        Ok(up) => {
            let opened = Opened::new(&p, to, rule);
            let (a, b) = tunnel(s, up).await;
            opened.close(a, b);
        }
    }
}

/// One line for a decision (the summary, the proxy's own log).
pub fn describe(d: &Decision) -> String {
    d.describe()
}
