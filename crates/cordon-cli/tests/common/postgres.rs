//! A private PostgreSQL cluster for one test: Debian's `initdb` into a temp dir, `postgres`
//! listening only on a unix socket in that dir (no TCP port to collide on), run as `nobody` when
//! the tests run as root (initdb refuses root). Stopped by pid and removed on drop. Its absence
//! fails the test (CI installs it: scripts/setup-tests) unless CORDON_TESTS_ALLOW_SKIP=1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The socket's port number (a name in the socket dir only: no TCP).
const PORT: u16 = 5432;

pub struct Cluster {
    child: Child,
    pub dir: PathBuf,
    bin: PathBuf,
    /// Its socket's number (and, with TLS, its loopback TCP port).
    port: u16,
    /// With TLS: the CA that signed its certificate (PEM).
    pub tls: Option<PathBuf>,
}

/// The newest installed server's bin dir (/usr/lib/postgresql/VERSION/bin).
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, b): &(u32, PathBuf)| b.join("initdb").exists() && b.join("postgres").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// Runs `cmd` as nobody when we are root (through setpriv), else as ourselves.
fn as_owner(bin: &Path, args: &[&str]) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

impl Cluster {
    /// A running cluster, or None when PostgreSQL is missing and skipping was allowed.
    #[track_caller]
    pub fn start() -> Option<Cluster> {
        Cluster::start_as(false, false)
    }

    /// As [`Cluster::start`], also listening on a loopback port where only TLS connections are
    /// let in (pg_hba: `hostssl` trusts, `host` rejects), with a certificate for 127.0.0.1 signed
    /// by a CA of its own (made with the openssl CLI).
    #[track_caller]
    pub fn start_tls() -> Option<Cluster> {
        Cluster::start_as(true, false)
    }

    /// As [`Cluster::start_tls`], and a TCP connection must also present a client certificate
    /// signed by the cluster's CA (`ca.pem`, `ca.key` in its `dir`: [`super::certs::client`]) that
    /// names the user (pg_hba `cert`).
    #[track_caller]
    pub fn start_tls_client_cert() -> Option<Cluster> {
        Cluster::start_as(true, true)
    }

    #[track_caller]
    fn start_as(tls: bool, client_cert: bool) -> Option<Cluster> {
        let Some(bin) = bin_dir() else {
            if std::env::var_os("CORDON_TESTS_ALLOW_SKIP").is_some() {
                super::record_skip(&std::panic::Location::caller().to_string(), "no PostgreSQL in /usr/lib/postgresql");
                return None;
            }
            panic!("no PostgreSQL server in /usr/lib/postgresql/*/bin (scripts/setup-tests installs Debian's `postgresql` as root); set CORDON_TESTS_ALLOW_SKIP=1 to skip");
        };
        let dir = std::env::temp_dir().join(format!("cordon-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("the cluster's dir");
        // Its socket is in it and it trusts every connection: its owner (and root) only.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod the cluster's dir");
        if nix::unistd::geteuid().is_root() {
            let nobody = nix::unistd::Uid::from_raw(super::NOBODY);
            nix::unistd::chown(&dir, Some(nobody), None).expect("chown the cluster's dir to nobody");
        }
        let data = dir.join("data");
        let data_s = data.to_str().expect("utf-8 temp dir");
        let o = as_owner(
            &bin.join("initdb"),
            &["-D", data_s, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
        )
        .output()
        .expect("run initdb");
        if !o.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("initdb failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        let dir_s = dir.to_str().expect("utf-8").to_string();
        let ca = if tls { Some(super::certs::for_postgres(&dir, &data, client_cert)) } else { None };
        // A TCP port for TLS, free when chosen: tried again on another if postgres could not bind it.
        for _ in 0..5 {
            let port = if tls { free_port() } else { PORT };
            let mut args: Vec<String> = ["-D", data_s, "-k", &dir_s, "-p", &port.to_string(), "-c", "fsync=on"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(["-c".into(), format!("listen_addresses={}", if tls { "127.0.0.1" } else { "" })]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let child = as_owner(&bin.join("postgres"), &args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start postgres");
            let mut c = Cluster { child, dir: dir.clone(), bin: bin.clone(), port, tls: ca.clone() };
            let t = Instant::now();
            while !c.psql("postgres", "SELECT 1").is_ok_and(|s| s == "1") {
                if let Ok(Some(_)) = c.child.try_wait() {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(60), "postgres did not come up within 60 s");
                std::thread::sleep(Duration::from_millis(100));
            }
            if c.child.try_wait().is_ok_and(|s| s.is_none()) {
                return Some(c);
            }
            // It ended (its port was taken meanwhile): its dir must outlive this Cluster.
            std::mem::forget(c);
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("postgres did not start on any of 5 loopback ports");
    }

    /// A new empty database's URL over TLS on the loopback port, verified against the cluster's CA
    /// (the libpq parameters cordon and psql read alike).
    pub fn database_tls(&self) -> String {
        let (port, ca) = (self.port, self.tls.as_ref().expect("a cluster started with start_tls"));
        let name = format!("t_{}", unique());
        self.psql("postgres", &format!("CREATE DATABASE {name}")).expect("create database");
        format!("postgres://postgres@127.0.0.1:{port}/{name}?sslmode=verify-full&sslrootcert={}", ca.display())
    }

    /// A new empty database and its URL (no password: the cluster trusts its private socket).
    pub fn database(&self) -> String {
        let name = format!("t_{}", unique());
        self.psql("postgres", &format!("CREATE DATABASE {name}")).expect("create database");
        self.url(&name)
    }

    pub fn url(&self, db: &str) -> String {
        let host: String = self.dir.to_str().expect("utf-8").replace('/', "%2F");
        format!("postgres://postgres@{host}:{}/{db}", self.port)
    }

    /// One statement through psql; its output unaligned, trimmed. Err: psql's stderr.
    pub fn psql(&self, db: &str, q: &str) -> Result<String, String> {
        let o = Command::new(self.bin.join("psql"))
            .args(["-h", self.dir.to_str().expect("utf-8"), "-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", q])
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (u64::from(t) << 16) ^ N.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown (its backends end with it); SIGKILL if it lingers.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One number from the database at `url` (made by [`Cluster::database`]), through psql.
pub fn count(url: &str, q: &str) -> i64 {
    let out = query(url, q).unwrap_or_else(|e| panic!("{q}: {e}"));
    out.parse().unwrap_or_else(|_| panic!("{q}: not a number: {out:?}"))
}

/// One statement on the database at `url`: its rows, one a line, fields joined by `|`.
pub fn query(url: &str, q: &str) -> Result<String, String> {
    let bin = bin_dir().ok_or("no PostgreSQL")?;
    let o = Command::new(bin.join("psql"))
        .args(["-d", url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", q])
        .output()
        .map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
