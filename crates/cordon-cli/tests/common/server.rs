//! A real `cordon server` for end-to-end tests (dashboard.rs): started by the real `cordon` on a
//! free loopback port, its SQLite database in a temp dir, killed by pid on drop; plus one-shot
//! HTTP/1.1 exchanges and token minting through the real CLI.
//!
//! server.rs keeps its own copies of these (they grew there first); new tests use this module.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

pub struct Server {
    child: Child,
    pub addr: String,
    pub db: PathBuf,
    /// What the server wrote to its stderr after its first line, as it arrives.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// On a fixed free port below the ephemeral range (see [`fixed_port`]).
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    /// With more arguments to `cordon server`.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        let db = dir.join("server.db");
        let listen = format!("127.0.0.1:{}", fixed_port());
        let mut child = Command::new(CORDON)
            .args(["server", "--listen", &listen, "--database", &format!("sqlite:{}", db.display())])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cordon server");
        let mut line = String::new();
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        err.read_line(&mut line).expect("read the server's first line");
        let addr = line
            .trim()
            .strip_prefix("cordon server: listening on http://")
            .unwrap_or_else(|| panic!("the server did not say where it listens: {line:?}"))
            .to_string();
        // Keep reading its stderr so that it never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while err.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                }
                line.clear();
            }
        });
        Server { child, addr, db, log }
    }

    /// The server's process (`cordon` execs `cordon-server` in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as systemd stops it, and its exit status once it has ended (within `within`).
    #[allow(dead_code)]
    pub fn stop(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        // The child has not been reaped (only `stop` and Drop wait for it): the pid is still its.
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM the server");
        let t = std::time::Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait for the server") {
                return st;
            }
            assert!(t.elapsed() < within, "the server did not end within {within:?} of SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A new token of `role` named `name`, from `cordon server token create`.
    pub fn token(&self, role: &str, name: &str) -> String {
        let o = Command::new(CORDON)
            .args(["server", "token", "create", "--role", role, "--name", name, "--database"])
            .arg(format!("sqlite:{}", self.db.display()))
            .output()
            .expect("token create");
        assert!(o.status.success(), "{}", super::show(&o));
        super::out(&o).trim().to_string()
    }

    pub fn sql(&self, q: &str) -> i64 {
        let c = rusqlite::Connection::open(&self.db).expect("open the server's database");
        c.query_row(q, [], |r| r.get(0)).expect(q)
    }

    /// One request with a bearer token: (status, body).
    pub fn call(&self, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, String) {
        let auth = format!("Bearer {token}");
        let (st, _, b) = http(&self.addr, method, path, &[("Authorization", &auth)], body);
        (st, b)
    }
}

impl Drop for Server {
    /// SIGKILL and reap through the Child, which never signals a pid it has already reaped.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port in 20000..32000 (below ip_local_port_range's default 32768), chosen from
/// this process's id so that parallel test binaries rarely try the same ones.
pub fn fixed_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + ((std::process::id().wrapping_mul(89).wrapping_add(n * 17)) % 12000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000..32000");
}

/// One HTTP/1.1 exchange with `Connection: close`: (status, head, body; bodies here are never
/// chunked: the server sends a length for the small JSON answers these tests read).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let _ = s.write_all(body);
    let mut raw = vec![];
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A directory under /var/tmp, removed on drop.
pub struct TempDir(pub PathBuf);

pub fn tempdir(tag: &str) -> TempDir {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let p =
        PathBuf::from(format!("/var/tmp/cordon-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&p).expect("mkdir");
    TempDir(p)
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
