//! Listeners outside the sandbox that count what reaches them. A connection counts when it is
//! accepted (a datagram when it is received), and the listeners stay open until the harness has
//! seen the session end and waited [`SETTLE`] after it: a late arrival is an escape too.

use crate::common::Who;
use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the listeners stay open after the attack's session has exited.
pub const SETTLE: Duration = Duration::from_millis(300);

pub struct Listeners {
    counts: BTreeMap<&'static str, Arc<AtomicUsize>>,
    pub env: Vec<(String, String)>,
    paths: Vec<PathBuf>,
}

fn serve(incoming: impl Iterator<Item = ()> + Send + 'static, c: Arc<AtomicUsize>) {
    std::thread::spawn(move || {
        for () in incoming {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
}

impl Listeners {
    pub fn start(tag: &str, who: Who, home: &Path) -> Listeners {
        let mut counts = BTreeMap::new();
        let mut env = vec![];
        let mut paths = vec![];
        let mut add = |name: &'static str| {
            let c = Arc::new(AtomicUsize::new(0));
            counts.insert(name, c.clone());
            c
        };
        let tcp = |addr: &str, c: Arc<AtomicUsize>| -> Option<u16> {
            let l = TcpListener::bind(addr).ok()?;
            let port = l.local_addr().ok()?.port();
            // The accepted stream is dropped at once: the count is the connection itself.
            serve(std::iter::from_fn(move || l.accept().ok().map(drop)), c);
            Some(port)
        };
        if let Some(p) = tcp("127.0.0.1:0", add("tcp4")) {
            env.push(("TCP4_PORT".into(), p.to_string()));
        }
        if let Some(p) = tcp("[::1]:0", add("tcp6")) {
            env.push(("TCP6_PORT".into(), p.to_string()));
        }
        let host_ip = Command::new("hostname").arg("-I").output().ok().and_then(|o| {
            String::from_utf8_lossy(&o.stdout).split_whitespace().find(|a| a.contains('.')).map(String::from)
        });
        let hc = add("hostip");
        if let Some(ip) = host_ip {
            if let Some(p) = tcp(&format!("{ip}:0"), hc) {
                env.push(("HOST_IP".into(), ip));
                env.push(("HOSTIP_PORT".into(), p.to_string()));
            }
        }
        let uc = add("udp4");
        if let Ok(u) = UdpSocket::bind("127.0.0.1:0") {
            env.push(("UDP4_PORT".into(), u.local_addr().map(|a| a.port()).unwrap_or(0).to_string()));
            let mut b = [0u8; 64];
            serve(std::iter::from_fn(move || u.recv(&mut b).ok().map(drop)), uc);
        }
        let unix = |path: &Path, c: Arc<AtomicUsize>| {
            let _ = std::fs::remove_file(path);
            if let Ok(l) = UnixListener::bind(path) {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
                serve(std::iter::from_fn(move || l.accept().ok().map(drop)), c);
            }
        };
        let run_sock = PathBuf::from(format!("/run/cordon-esc-{tag}.sock"));
        unix(&run_sock, add("unix_run"));
        env.push(("UNIX_RUN".into(), run_sock.display().to_string()));
        let tmp_dir = PathBuf::from(format!("/tmp/cordon-esc-{tag}"));
        let _ = std::fs::create_dir_all(&tmp_dir);
        let _ = Command::new("chmod").arg("755").arg(&tmp_dir).status();
        let tmp_sock = tmp_dir.join("agent.sock");
        unix(&tmp_sock, add("unix_tmp"));
        env.push(("UNIX_TMP".into(), tmp_sock.display().to_string()));
        // A gpg-agent socket in HOME (no XDG_RUNTIME_DIR).
        let gnupg = home.join(".gnupg");
        let _ = std::fs::create_dir_all(&gnupg);
        let home_sock = gnupg.join("S.gpg-agent");
        unix(&home_sock, add("unix_home"));
        if who == Who::Nobody {
            let _ = Command::new("chown").args(["-R", "65534:65534"]).arg(&gnupg).status();
        }
        env.push(("UNIX_HOME".into(), home_sock.display().to_string()));
        paths.push(run_sock);
        paths.push(tmp_dir);
        let name = format!("cordon-esc-{tag}");
        let ac = add("abstract");
        {
            use std::os::linux::net::SocketAddrExt;
            if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
                if let Ok(l) = UnixListener::bind_addr(&addr) {
                    serve(std::iter::from_fn(move || l.accept().ok().map(drop)), ac);
                }
            }
        }
        env.push(("ABSTRACT".into(), name));
        Listeners { counts, env, paths }
    }

    /// What reached listener `name` so far. Call after the session ended and [`SETTLE`] passed.
    pub fn count(&self, name: &str) -> usize {
        self.counts.get(name).map_or(0, |c| c.load(Ordering::SeqCst))
    }

    pub fn known(&self, name: &str) -> bool {
        self.counts.contains_key(name)
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_dir_all(p);
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A connection that sends nothing and stays open still counts: an escape is the connection
    /// itself (counting after a read, as before, missed a peer that never wrote or closed).
    #[test]
    fn a_silent_open_connection_counts() {
        let home = std::env::temp_dir().join(format!("escape-listeners-{}", std::process::id()));
        let l = Listeners::start(&format!("t{}", std::process::id()), Who::Root, &home);
        let port: u16 = l.env.iter().find(|(k, _)| k == "TCP4_PORT").and_then(|(_, v)| v.parse().ok()).expect("port");
        let held = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let t = Instant::now();
        while l.count("tcp4") == 0 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(l.count("tcp4"), 1, "the open connection was not counted");
        drop(held);
        drop(l);
        let _ = std::fs::remove_dir_all(&home);
    }
}
