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
    #[error("cannot ship the audit log to {server}: the follower refused to start (its reason is above)")]
    Refused { server: String },
}

/// Starts the follower of `log` (`cordon` is the cordon binary) and waits until it says it follows:
/// a bad URL or token file fails here, before the service starts. The follower watches this
/// process and ends after it; its stderr is the service's.
pub fn spawn_follower(cordon: &Path, log: &Path, to: &ShipTo) -> Result<Child, ShipError> {
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
    let mut line = String::new();
    let said = child.stdout.take().map(|o| BufReader::new(o).read_line(&mut line));
    if !matches!(said, Some(Ok(n)) if n > 0 && line.starts_with("following ")) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ShipError::Refused { server: to.server.clone() });
    }
    Ok(child)
}
