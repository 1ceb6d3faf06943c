//! A real `cordon server` for end-to-end tests: started by the real `cordon` on a free loopback
//! port, its store SQLite in a temp dir or a database of a test's private PostgreSQL cluster,
//! killed by pid on drop; plus one-shot HTTP/1.1 exchanges and token minting through the real CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// Which store a test's server keeps its records in.
#[derive(Clone, Debug)]
#[allow(dead_code)]
pub enum Db {
    Sqlite(PathBuf),
    /// A database's URL in a test's private cluster, and the policy-signing key's file.
    Pg(String, PathBuf),
}

impl Db {
    pub fn spec(&self) -> String {
        match self {
            Db::Sqlite(p) => format!("sqlite:{}", p.display()),
            Db::Pg(url, _) => url.clone(),
        }
    }

    /// The arguments naming the store to `cordon server`.
    fn args(&self) -> Vec<String> {
        let mut a = vec!["--database".to_string(), self.spec()];
        if let Db::Pg(_, key) = self {
            a.extend(["--key".to_string(), key.display().to_string()]);
        }
        a
    }
}

pub struct Server {
    child: Child,
    pub addr: String,
    /// The SQLite file (for PostgreSQL: beside the key, unused).
    pub db: PathBuf,
    pub store: Db,
    /// What the server wrote to its stderr after its first line, as it arrives.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

#[allow(dead_code)]
impl Server {
    /// SQLite in `dir`, on a fixed free port below the ephemeral range (see [`fixed_port`]).
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    /// With more arguments to `cordon server`.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        Server::start_store(&Db::Sqlite(dir.join("server.db")), &format!("127.0.0.1:{}", fixed_port()), extra)
    }

    /// On `listen` (a test that restarts a server on its address needs one no other test's
    /// connection can be given meanwhile: see [`fixed_port`]).
    pub fn start_on(dir: &Path, listen: &str) -> Server {
        Server::start_store(&Db::Sqlite(dir.join("server.db")), listen, &[])
    }

    /// On a store of either kind.
    pub fn start_store(store: &Db, listen: &str, extra: &[&str]) -> Server {
        let db = match store {
            Db::Sqlite(p) => p.clone(),
            Db::Pg(_, key) => key.with_extension("db"),
        };
        let mut child = Command::new(CORDON)
            .args(["server", "--listen", listen])
            .args(store.args())
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
        Server { child, addr, db, store: store.clone(), log }
    }

    /// The server's process (`cordon` execs `cordon-server` in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as systemd stops it, and its exit status once it has ended (within `within`).
    pub fn stop(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        // The child has not been reaped (only `stop`, `kill` and Drop wait for it): the pid is
        // still its.
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

    /// SIGKILL and reap: through the Child, which never signals a pid it has already reaped (a
    /// reaped pid may belong to another test's process by now).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new token of `role` named `name`, from `cordon server token create`.
    pub fn token(&self, role: &str, name: &str) -> String {
        token_in(&self.store, role, name)
    }

    /// One number from the server's database, whichever store it is.
    pub fn sql(&self, q: &str) -> i64 {
        match &self.store {
            Db::Sqlite(p) => {
                let c = rusqlite::Connection::open(p).expect("open the server's database");
                c.query_row(q, [], |r| r.get(0)).expect(q)
            }
            Db::Pg(url, _) => super::postgres::count(url, q),
        }
    }

    /// One request with a bearer token: (status, body).
    pub fn call(&self, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, String) {
        let (st, _, b) = http(&self.addr, method, path, &[("Authorization", &bearer(token))], body);
        (st, b)
    }
}

/// A new token in `store`, from `cordon server token create`.
pub fn token_in(store: &Db, role: &str, name: &str) -> String {
    let o = Command::new(CORDON)
        .args(["server", "token", "create", "--role", role, "--name", name, "--database"])
        .arg(store.spec())
        .output()
        .expect("token create");
    assert!(o.status.success(), "{}", super::show(&o));
    super::out(&o).trim().to_string()
}

pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
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

/// One HTTP/1.1 exchange with `Connection: close`: (status, head, body, a chunked one joined).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    // A server may answer (413) before it read everything: a failed write is no failure here.
    let _ = s.write_all(body);
    let mut raw = vec![];
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, head.to_string(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
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
