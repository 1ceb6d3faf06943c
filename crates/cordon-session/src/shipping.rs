//! A long-lived service's audit log shipped to `cordon server` as it is written: the service (the
//! devbox daemon, the gateway) starts `cordon audit ship --follow --watch-pid SELF` beside itself.
//! The follower ends after the service does, shipping once more then, so the last records (the
//! sessions' ends and seals) are delivered too; what the server did not acknowledge stays in the
//! log, and `cordon audit ship` delivers it later.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where to ship: as `--server`, `--server-token-file`, `--server-node`.
#[derive(Clone, Debug)]
pub struct ShipTo {
    pub server: String,
    pub token_file: PathBuf,
    pub node: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("cannot start {cordon} to ship the audit log: {source}")]
    Spawn {
        cordon: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot ship the audit log to {server}: the follower refused to start, or did not say it follows within 10 s (its reason, if any, is above)")]
    Refused { server: String },
}

/// Starts the follower of `log` (`cordon` is the cordon binary) and waits until it says it follows:
/// a bad URL or token file fails here, before the service starts. The follower watches this
/// process and ends after it; its stderr is the service's.
pub fn spawn_follower(cordon: &Path, log: &Path, to: &ShipTo) -> Result<Follower, ShipError> {
    let mut c = Command::new(cordon);
    c.args(["audit", "ship", "--follow", "--audit"])
        .arg(log)
        .arg("--server")
        .arg(&to.server)
        .arg("--server-token-file")
        .arg(&to.token_file)
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if let Some(n) = &to.node {
        c.arg("--server-node").arg(n);
    }
    let mut child = c.spawn().map_err(|source| ShipError::Spawn { cordon: cordon.display().to_string(), source })?;
    // Its first line, waited for 10 s at most: a follower stuck before it (a token file on a dead
    // mount) must not hang the service's start.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
    }
    let line = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap_or_default();
    if !line.starts_with("following ") {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ShipError::Refused { server: to.server.clone() });
    }
    Ok(watch_follower(child))
}

/// The follower's pid; a thread reaps it and says so if it ends while the service runs (it only
/// ends by itself after the service): shipping has then stopped, the records stay in the log.
pub struct Follower(pub u32);

fn watch_follower(mut child: Child) -> Follower {
    use nix::sys::signal::{SigSet, SigmaskHow};
    let pid = child.id();
    // The thread is made with every signal blocked: a service that takes SIGTERM from a signalfd
    // blocks it in its own threads only after this, and a signal delivered to this thread would
    // take the default action (the whole process killed).
    let mut old = SigSet::empty();
    let blocked = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut old));
    let _ = std::thread::Builder::new().spawn(move || {
        let st = child.wait();
        eprintln!(
            "cordon: the audit log's follower (pid {pid}) ended ({}): the log is no longer shipped; its records stay in it, `cordon audit ship` delivers them",
            st.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
        );
    });
    if blocked.is_ok() {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    Follower(pid)
}
