//! Network egress through cordon's proxy, end to end, with real servers on the host's loopback (HTTP,
//! and HTTPS through CONNECT with a self-signed certificate), names the tests own (resolved through
//! CORDON_TEST_RESOLVE, never the machine's /etc/hosts), and bypass attempts that must fail.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A small HTTP server on 127.0.0.1 answering every request with `body`; counts requests.
struct Http {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn http_server(body: &'static str) -> Http {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let h = h.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let mut got = vec![];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ =
                    write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            });
        }
    });
    Http { port, hits }
}

/// An HTTPS server (python's ssl module) with a self-signed certificate made for the test.
struct Https {
    port: u16,
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn https_server() -> Https {
    let dir = std::path::PathBuf::from(format!("/var/tmp/cordon-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=secure.test", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success());
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    let script = format!(
        "import http.server, ssl\nclass H(http.server.BaseHTTPRequestHandler):\n  def do_GET(self):\n    b=b'tls-ok'\n    self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)\n  def log_message(self, *a): pass\ns=http.server.HTTPServer(('127.0.0.1',{port}),H)\nc=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('{d}/cert.pem','{d}/key.pem')\ns.socket=c.wrap_socket(s.socket, server_side=True)\ns.serve_forever()\n",
        d = dir.display()
    );
    let child = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("https");
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    Https { port, child, dir }
}

fn report(e: &Env) -> (std::path::PathBuf, String) {
    let p = e.root.join("report.json");
    (p.clone(), p.display().to_string())
}

fn egress_of(p: &std::path::Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).expect("report")).expect("json");
    v["outcome"]["egress"].as_array().cloned().unwrap_or_default()
}

#[test]
fn allowlisted_host_loopback_service_is_reachable_and_recorded() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let ok = http_server("hello-allowed");
        let other = http_server("must-not-see");
        let (rp, rs) = report(&e);
        let allow = format!("127.0.0.1:{}", ok.port);
        let script = format!(
            "curl -s http://127.0.0.1:{a}/ ; echo; curl -s --noproxy '' http://127.0.0.1:{a}/ ; echo; curl -s --noproxy '' http://127.0.0.1:{b}/ ; echo; curl -s -m 2 http://127.0.0.1:{b}/ ; echo rc=$?",
            a = ok.port,
            b = other.port
        );
        let o = e.run_sh_with(&["--allow-net", &allow, "--report", &rs], &script, &[]);
        let s = out(&o);
        assert_eq!(
            s.matches("hello-allowed").count(),
            2,
            "{who:?}: plain client (forwarder) and proxy client both reach it: {}",
            show(&o)
        );
        assert!(
            s.contains("not in the session's network allowlist")
                && s.contains(&format!("--allow-net 127.0.0.1:{}", other.port)),
            "403 body names the rule and the fix: {s}"
        );
        assert!(!s.contains("must-not-see"));
        assert_eq!(other.hits.load(std::sync::atomic::Ordering::SeqCst), 0, "{who:?}: the other host port saw nothing");
        let d = egress_of(&rp);
        assert!(
            d.iter().any(|x| x["allowed"] == true
                && x["port"] == ok.port
                && x["bytes_down"].as_u64().unwrap_or(0) > 0
                && x["exe"].as_str().is_some_and(|x| x.contains("curl"))
                && x["pid"].as_u64().unwrap_or(0) > 0),
            "{who:?}: {d:?}"
        );
        assert!(d.iter().any(|x| x["allowed"] == false && x["port"] == other.port), "{d:?}");
        assert!(err(&o).contains("DENIED http 127.0.0.1"), "summary shows denials: {}", err(&o));
    }
}

#[test]
fn https_through_connect_and_domain_matching() {
    if !need_root() {
        return;
    }
    let tls = https_server();
    for who in BOTH {
        let e = Env::new(who);
        let (rp, rs) = report(&e);
        let names = "secure.test=127.0.0.1,api.wild.test=127.0.0.1,evil.test=127.0.0.1,rebind.test=127.0.0.1";
        let p = tls.port;
        let script = format!(
            "curl -sk https://secure.test:{p}/; echo; curl -sk https://api.wild.test:{p}/; echo; curl -sk https://evil.test:{p}/; echo rc-evil=$?; curl -sk https://rebind.test:{p}/; echo rc-rebind=$?; curl -sk --proxy socks5h://127.0.0.1:3128 https://secure.test:{p}/; echo"
        );
        let allow_ip = format!("127.0.0.1:{p}");
        let a1 = format!("secure.test:{p}");
        let a2 = format!("*.wild.test:{p}");
        let mut args = vec!["--allow-net", &a1, "--allow-net", &a2, "--report", &rs];
        // rebind.test is allowed by name only: its loopback address must be refused.
        let a3 = format!("rebind.test:{p}");
        args.extend(["--allow-net", &a3]);
        // secure.test and the wildcard resolve to loopback, which needs an explicit IP entry.
        args.extend(["--allow-net", &allow_ip]);
        let o = e.run_sh_with(&args, &script, &[("CORDON_TEST_RESOLVE", names)]);
        let s = out(&o);
        assert_eq!(
            s.matches("tls-ok").count(),
            4,
            "{who:?}: exact, wildcard, rebind-via-ip-entry and SOCKS5: {}",
            show(&o)
        );
        assert!(s.contains("rc-evil=56"), "{who:?}: evil.test refused: {s}");
        let d = egress_of(&rp);
        assert!(d.iter().any(|x| x["host"] == "evil.test" && x["allowed"] == false), "{d:?}");
        assert!(d.iter().any(|x| x["protocol"] == "socks5" && x["allowed"] == true), "{d:?}");
        assert!(
            d.iter().any(|x| x["protocol"] == "connect"
                && x["host"] == "api.wild.test"
                && x["rule"] == format!("*.wild.test:{p}")),
            "{d:?}"
        );
    }
    // Without the IP entry, a name resolving to loopback is refused (DNS rebinding).
    let e = Env::new(Who::Root);
    let a = format!("rebind.test:{}", tls.port);
    let o = e.run_sh_with(
        &["--allow-net", &a],
        &format!("curl -sk https://rebind.test:{}/", tls.port),
        &[("CORDON_TEST_RESOLVE", "rebind.test=127.0.0.1")],
    );
    assert!(err(&o).contains("internal address 127.0.0.1") && !out(&o).contains("tls-ok"), "{}", show(&o));
    // One decision, one reason: the range is named, and a host on the allowlist is not told it is
    // not on it.
    assert!(err(&o).contains("in the loopback (127.0.0.0/8) range"), "{}", show(&o));
    assert!(!err(&o).contains("not in the session's network allowlist"), "{}", show(&o));
}

#[test]
fn bypassing_the_proxy_fails() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let l = TcpListener::bind("0.0.0.0:0").expect("bind");
        l.set_nonblocking(true).expect("nb");
        let port = l.local_addr().expect("addr").port();
        let allow = format!("127.0.0.1:{port}");
        let script = format!(
            "env | grep -E '^(HTTPS_PROXY|https_proxy|ALL_PROXY|NO_PROXY)=' | sort; \
             python3 -c \"import socket; socket.create_connection(('192.0.2.2', {port}), 2)\" 2>&1 | tail -1; \
             python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('192.0.2.2', 53))\" 2>&1 | tail -1; \
             python3 -c \"import socket; socket.getaddrinfo('example.com', 443)\" 2>&1 | tail -1; \
             python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)\" 2>&1 | tail -1"
        );
        let o = e.run_sh_with(&["--allow-net", &allow], &script, &[]);
        let s = out(&o);
        assert!(
            s.contains("HTTPS_PROXY=http://127.0.0.1:3128")
                && s.contains("ALL_PROXY=http://127.0.0.1:3128")
                && s.contains("https_proxy=")
                && s.contains("NO_PROXY=localhost,127.0.0.1,::1"),
            "{s}"
        );
        assert!(s.matches("Network is unreachable").count() >= 2, "{who:?}: direct TCP and UDP have no route: {s}");
        assert!(
            s.contains("Temporary failure in name resolution") || s.contains("Name or service not known"),
            "{who:?}: no DNS inside: {s}"
        );
        assert!(s.contains("Operation not permitted"), "raw sockets refused: {s}");
        assert!(
            err(&o).contains(&format!("connect(192.0.2.2:{port})")) && err(&o).contains("bypassing the egress proxy"),
            "{who:?}: the bypass is named in the summary: {}",
            err(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(l.accept().is_err(), "{who:?}: the host's address saw a direct connection");
    }
}

#[test]
fn hostile_clients_do_not_stall_others() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let ok = http_server("still-fine");
    let allow = format!("127.0.0.1:{}", ok.port);
    let script = format!(
        r#"python3 - <<'PY'
import socket, time, threading
P = ("127.0.0.1", 3128)
def ask(payload, read=True):
    s = socket.create_connection(P, 5); s.sendall(payload)
    return s.recv(200).decode(errors="replace") if read else s
print("malformed:", ask(b"CONNECT\r\n\r\n").split("\r\n")[0])
print("huge:", ask(b"GET http://x/ HTTP/1.1\r\nX: " + b"a" * 100000 + b"\r\n\r\n").split("\r\n")[0])
print("garbage:", repr(ask(b"\x00\x01\x02 nonsense\r\n\r\n").split("\r\n")[0]))
slow = [socket.create_connection(P, 5) for _ in range(50)]
for s in slow: s.sendall(b"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x")
half = socket.create_connection(P, 5); half.sendall(b"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n"); half.shutdown(socket.SHUT_WR)
t = time.time()
c = socket.create_connection(P, 5); c.sendall(b"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n")
s = b""
while True:
    d = c.recv(4096)
    if not d: break
    s += d
print("normal:", b"still-fine" in s, "in", round(time.time() - t, 2), "s")
PY"#,
        port = ok.port
    );
    let o = e.run_sh_with(&["--allow-net", &allow], &script, &[]);
    let s = out(&o);
    assert!(s.contains("malformed: HTTP/1.1 400"), "{}", show(&o));
    assert!(s.contains("huge: HTTP/1.1 431"), "{s}");
    assert!(s.contains("garbage: 'HTTP/1.1 400"), "{s}");
    let line = s.lines().find(|l| l.starts_with("normal:")).unwrap_or("");
    assert!(line.contains("True"), "{s}");
    let secs: f64 = line.split_whitespace().nth(3).and_then(|x| x.parse().ok()).unwrap_or(99.0);
    // A client stalled behind the slow ones would wait for their 10 s head timeout
    // (cordon_egress::head::HEAD_TIMEOUT); a loaded machine stays well under that.
    assert!(secs < 7.0, "a normal client waited {secs}s behind slow ones");
}

#[test]
fn malformed_allow_net_names_its_position() {
    let o = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["run", "--allow-net", "github.com:443", "--allow-net", "git*hub.com", "--", "/bin/true"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(125));
    let e = err(&o);
    assert!(e.contains("--allow-net #2 `git*hub.com`") && e.contains("hint:"), "{e}");
}
