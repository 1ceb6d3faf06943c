//! The daemon's protocol: one request per connection, each a JSON message on a SOCK_SEQPACKET unix
//! socket (message boundaries kept, so a request and the descriptors it carries arrive together),
//! answered by one JSON message. `exec` carries the client's stdin, stdout and stderr (SCM_RIGHTS);
//! its answer comes from the devbox's exec server on the same connection, when the command ends.

use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// The largest message either side sends (below the default socket send buffer, 208 KiB: a
/// SOCK_SEQPACKET message must fit in it whole).
pub const MAX_MESSAGE: usize = 200 * 1024;

/// The largest policy text a claim may carry.
pub const MAX_POLICY_TEXT: usize = 128 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Hold `size` prepared devboxes of `snapshot` (a hash or a unique prefix of one).
    Pool {
        snapshot: String,
        size: usize,
    },
    /// A devbox of `snapshot`, restricted by `policy` (None: the snapshot's own): `builtin:NAME`,
    /// or the name of the file the client read `policy_text` from (the daemon reads no file).
    Claim {
        snapshot: String,
        policy: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy_text: Option<String>,
        /// Environment variables of this claim's commands only (`secrets.rs`): name, value.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secrets: crate::secrets::Secrets,
    },
    /// Run `argv` in devbox `id` with the three descriptors attached (stdin, stdout, stderr).
    Exec {
        id: String,
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    Ls,
    Rm {
        id: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Pooled {
        snapshot: String,
        ready: usize,
    },
    Claimed {
        id: String,
        snapshot: String,
        workspace: PathBuf,
        latency_ms: f64,
        from_pool: bool,
    },
    /// The command ended: its exit status (128+N for a signal).
    Exited {
        code: i32,
        /// The signal that ended it, if one did (`code` is then 128+N).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// The devboxes the asker may see (root: all; anyone else: its own claims), and the pools.
    Devboxes {
        items: Vec<Listed>,
        #[serde(default)]
        pools: Vec<PoolSize>,
    },
    Removed {
        id: String,
    },
    Error {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listed {
    pub id: String,
    pub snapshot: String,
    /// "pooled" or "claimed".
    pub state: String,
    /// Its init's pid.
    pub pid: i32,
    pub cgroup: Option<PathBuf>,
    /// Who claimed it (None: pooled).
    #[serde(default)]
    pub owner: Option<u32>,
}

/// One snapshot's pool: the size asked for and how many devboxes are ready in it now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolSize {
    pub snapshot: String,
    pub size: usize,
    pub ready: usize,
}

/// What the daemon hands the devbox's exec server (with stdin, stdout, stderr and the client's
/// connection attached, in that order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecOrder {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// Sends `v` as one message with `fds` attached.
pub fn send<T: Serialize>(sock: BorrowedFd<'_>, v: &T, fds: &[RawFd]) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let bytes = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    // Larger, it would arrive cut (SOCK_SEQPACKET keeps one message whole or truncates it).
    if bytes.len() > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a message of {} bytes: the daemon's protocol takes at most {} KiB",
                bytes.len(),
                MAX_MESSAGE / 1024
            ),
        ));
    }
    let iov = [std::io::IoSlice::new(&bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives one message and the descriptors attached to it; None: the peer closed.
pub fn recv<T: for<'de> Deserialize<'de>>(sock: BorrowedFd<'_>) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, fds) = loop {
        match cordon_sandbox::sys::recv_with_fds(sock.as_raw_fd(), &mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let v = serde_json::from_slice(&buf[..n]).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a message that does not parse: {e}"))
    })?;
    Ok(Some((v, fds)))
}

/// A SOCK_SEQPACKET socket connected to `path`.
pub fn connect(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let s = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)?;
    let addr = UnixAddr::new(path)?;
    connect(s.as_raw_fd(), &addr)?;
    Ok(s)
}
