//! What a caller asks for: one session, as data. The CLI builds it from its arguments; a service
//! builds it from a request.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Where the session is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditChoice {
    /// `$CORDON_AUDIT`, else the standard place.
    Default,
    Path(PathBuf),
    /// Not recorded (the user said so explicitly).
    Off,
}

#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// The command and its arguments.
    pub argv: Vec<OsString>,
    /// The caller's environment (the policy scrubs it).
    pub env: Vec<(OsString, OsString)>,
    /// The caller's working directory (the command starts there when it is inside the workspace).
    pub cwd: PathBuf,
    /// The writable workspace; None: `cwd`.
    pub workspace: Option<PathBuf>,
    /// `builtin:NAME` or a policy file.
    pub policy: String,
    /// Extra `--allow-net` entries (HOST[:PORT]); any switches egress to the proxy.
    pub allow_net: Vec<String>,
    /// Run even if the host cannot enforce everything; what is lost is reported.
    pub allow_degraded: bool,
    pub audit: AuditChoice,
    /// Output files, opened before the session starts.
    pub report: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub head_copy: Option<PathBuf>,
    /// Watch with the eBPF sensor (implied by `events`).
    pub monitor: bool,
    /// The sensor's ring buffer, e.g. `64M`.
    pub sensor_buffer: String,
    /// Kill the session this long after the first SIGINT/SIGTERM passed on.
    pub kill_after: Option<Duration>,
    /// Give the command a private pty when stdin is a terminal.
    pub interactive: bool,
}

impl SessionSpec {
    pub fn monitored(&self) -> bool {
        self.monitor || self.events.is_some()
    }
}
