//! What a caller asks for: one session, as data. The CLI builds it from its arguments; a service
//! builds it from a request.

use crate::bytes;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Where the session is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditChoice {
    /// `$CORDON_AUDIT`, else the standard place.
    Default,
    Path(#[serde(with = "bytes::path")] PathBuf),
    /// Not recorded (the user said so explicitly).
    Off,
}

/// Serializable (JSON), with Unix strings and paths as bytes, so that a spec crosses to a
/// `cordon supervise` process unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionSpec {
    /// The command and its arguments.
    #[serde(with = "bytes::os_vec")]
    pub argv: Vec<OsString>,
    /// The caller's environment (the policy scrubs it).
    #[serde(with = "bytes::os_pairs")]
    pub env: Vec<(OsString, OsString)>,
    /// The caller's working directory (the command starts there when it is inside the workspace).
    #[serde(with = "bytes::path")]
    pub cwd: PathBuf,
    /// The writable workspace; None: `cwd`.
    #[serde(with = "bytes::opt_path")]
    pub workspace: Option<PathBuf>,
    /// `builtin:NAME` or a policy file.
    pub policy: String,
    /// `policy` is the workspace's own `.cordon.toml`, taken because no policy was named: it runs
    /// only if the user trusted its text ([`crate::project`]).
    #[serde(default)]
    pub project_policy: bool,
    /// Extra `--allow-net` entries (HOST[:PORT]); any switches egress to the proxy.
    pub allow_net: Vec<String>,
    /// `--publish [HOST_IP:]HOST_PORT:SESSION_PORT` entries: session ports reachable from the host.
    #[serde(default)]
    pub publish: Vec<String>,
    /// One-off grants without a policy file (`--allow-read`, `--allow-write`: directories).
    #[serde(with = "bytes::path_vec", default)]
    pub allow_read: Vec<PathBuf>,
    #[serde(with = "bytes::path_vec", default)]
    pub allow_write: Vec<PathBuf>,
    /// Names in `env` given to the command whatever the policy's env rules drop: secrets its caller
    /// passes one by one on purpose (the gateway's `[servers.S.secrets]`). Their values are in no
    /// record.
    #[serde(default)]
    pub env_secret: Vec<String>,
    /// Run even if the host cannot enforce everything; what is lost is reported.
    pub allow_degraded: bool,
    /// Hold the session's changes of reviewed files (`fs.review`) as a patch instead of leaving them
    /// in place, whatever the policy's `fs.review_mode` (`--review`).
    #[serde(default)]
    pub review_hold: bool,
    pub audit: AuditChoice,
    /// Output files, opened before the session starts.
    #[serde(with = "bytes::opt_path")]
    pub report: Option<PathBuf>,
    #[serde(with = "bytes::opt_path")]
    pub events: Option<PathBuf>,
    #[serde(with = "bytes::opt_path")]
    pub head_copy: Option<PathBuf>,
    /// Watch with the eBPF sensor (implied by `events`).
    pub monitor: bool,
    /// The sensor's ring buffer, e.g. `64M`.
    pub sensor_buffer: String,
    /// Kill the session this long after the first SIGINT/SIGTERM passed on.
    pub kill_after: Option<Duration>,
    /// Give the command a private pty when stdin is a terminal.
    pub interactive: bool,
    /// `policy` is this identity's, served by `cordon server`: recorded in the start record.
    #[serde(default)]
    pub identity: Option<cordon_schema::bodies::IdentityRef>,
}

impl SessionSpec {
    pub fn monitored(&self) -> bool {
        self.monitor || self.events.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn a_spec_with_bytes_that_are_not_utf8_round_trips() {
        let odd = || OsString::from_vec(vec![b'a', 0xff, b'b']);
        let spec = SessionSpec {
            argv: vec!["echo".into(), odd()],
            env: vec![(odd(), odd())],
            cwd: PathBuf::from(odd()),
            workspace: Some(PathBuf::from(odd())),
            policy: "builtin:agent".into(),
            project_policy: false,
            allow_net: vec![],
            publish: vec!["8080:3000".into()],
            allow_read: vec![PathBuf::from(odd())],
            allow_write: vec![],
            env_secret: vec![],
            allow_degraded: false,
            review_hold: false,
            audit: AuditChoice::Path(PathBuf::from(odd())),
            report: None,
            events: Some(PathBuf::from(odd())),
            head_copy: None,
            monitor: true,
            sensor_buffer: "64M".into(),
            kill_after: Some(Duration::from_secs(3)),
            interactive: false,
            identity: None,
        };
        let json = serde_json::to_string(&spec).expect("json");
        let back: SessionSpec = serde_json::from_str(&json).expect("back");
        assert_eq!(back.argv, spec.argv);
        assert_eq!(back.env, spec.env);
        assert_eq!((back.cwd, back.workspace, back.audit), (spec.cwd, spec.workspace, spec.audit));
        assert_eq!((back.events, back.kill_after), (spec.events, spec.kill_after));
        assert_eq!(back.allow_read, spec.allow_read);
    }
}
