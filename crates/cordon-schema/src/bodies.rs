//! The bodies of the records a run writes that are not another type of this crate: the `start`
//! record (before the command runs), `limit`, and `end`. (`denial` is a [`Denial`](crate::Denial),
//! `egress` a [`Decision`](crate::egress::Decision), `alert` an [`Alert`](crate::Alert), `sensor` an
//! array of [`Event`](crate::Event)s, `sensor.summary` a [`Summary`](crate::sensor::Summary) without
//! its denials.)

use crate::guarantee::Guarantee;
use crate::outcome::{Ending, Peaks};
use serde::{Deserialize, Serialize};

/// Committed before the command runs: if this fails, nothing runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Start {
    /// argv, lossy UTF-8 (the exact bytes of non-UTF-8 arguments are in the notes of the end).
    pub command: Vec<String>,
    pub workspace: String,
    pub uid: u32,
    /// cordon's version.
    pub cordon: String,
    pub policy: PolicyRef,
    pub host: HostRef,
    pub guarantees: Vec<Guarantee>,
    pub allow_degraded: bool,
}

/// The policy a session ran under: its name, its files, and the text itself with its hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyRef {
    pub name: String,
    pub sources: Vec<String>,
    pub sha256: String,
    pub text: String,
    /// The agent identity whose policy this is, when it came from `cordon server`
    /// (`cordon run --identity NAME --server URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityRef>,
}

/// Which version of which identity's policy, from which server, and whether it was fetched for this
/// session or taken from the node's cache (the server unreachable).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdentityRef {
    pub name: String,
    pub version: i64,
    /// The server's SHA-256 of the text (the signature covers it).
    pub sha256: String,
    pub server: String,
    /// The server's key that signed it (hex).
    pub server_key: String,
    /// `server` or `cache`.
    pub from: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostRef {
    pub kernel: String,
    pub arch: String,
    pub landlock_abi: i32,
}

/// A resource limit the session hit (an OOM kill, a refused fork, the wall clock).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Limit {
    pub text: String,
}

/// How the command ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct End {
    pub ending: Ending,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub peaks: Peaks,
    pub denials_total: u64,
    pub notes: Vec<String>,
}

/// `cordon run --report FILE`: the whole session in one JSON document (`schema`:
/// `cordon.session.v1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub policy: ReportPolicy,
    pub workspace: String,
    pub command: Vec<String>,
    pub outcome: crate::outcome::Outcome,
    pub alerts: Vec<crate::Alert>,
    pub guarantees: Vec<Guarantee>,
    /// Names of the environment variables not passed to the command.
    pub env_dropped: Vec<String>,
    /// What the sensor counted, when it watched.
    pub sensor: Option<crate::sensor::Summary>,
    /// Changes to workspace files that run outside the sandbox (`fs.review`).
    #[serde(default)]
    pub review: crate::review::Review,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportPolicy {
    pub name: String,
    pub sources: Vec<String>,
}

/// The report's `schema` value.
pub const REPORT_SCHEMA: &str = "cordon.session.v1";
