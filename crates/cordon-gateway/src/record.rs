//! The gateway's evidence: one audit session per gateway run (a `start` naming the config and its
//! servers, a `tool_call` record per call, an `end` with the counts, and the seal), in the same log
//! as the servers' own sessions, which each `tool_call` names.

use cordon_audit::{AuditError, Store};
use cordon_schema::RecordKind;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;

/// The body of a `tool_call` record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    /// Who called ("stdio": the one client on the gateway's stdio).
    pub identity: String,
    pub server: String,
    /// The upstream's own name for the tool (served as `SERVER__TOOL`).
    pub tool: String,
    /// SHA-256 of the arguments as received (compact JSON; `null` when there were none).
    pub args_sha256: String,
    /// "allow" or "deny".
    pub decision: String,
    /// The rule that decided (a gateway.toml field).
    pub rule: String,
    pub duration_ms: u64,
    /// The result's size as JSON, in bytes (0 when there was none).
    pub result_bytes: u64,
    /// The upstream answered with a tool error, or the call failed.
    pub is_error: bool,
    /// Why the call failed, when it did (not the tool's own error text).
    pub error: Option<String>,
    /// The cordon session the server ran in (None: refused before it reached a server).
    pub session: Option<String>,
    /// "lock" (tools checked against the lock file) or "off" (the config's explicit unpinned mode).
    pub pinning: String,
    /// The pinned SHA-256 of the tool's definition the call was checked against (None: pinning off,
    /// or refused before the check).
    pub pin_sha256: Option<String>,
}

/// SHA-256 of the arguments' compact JSON, hex.
pub fn args_hash(args: &Option<crate::mcp::Json>) -> String {
    use sha2::{Digest, Sha256};
    let text = match args {
        Some(a) => serde_json::Value::Object(a.clone()).to_string(),
        None => "null".into(),
    };
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn new_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        b = (now_ms() as u64 ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    format!("gw-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// The gateway's audit session.
pub struct Log {
    store: Option<Mutex<Store>>,
    pub session: String,
    counts: Mutex<(u64, u64)>,
}

impl Log {
    /// Not recorded (`--no-audit`).
    pub fn off() -> Log {
        Log { store: None, session: new_id(), counts: Mutex::new((0, 0)) }
    }

    /// Opens the log at `path` and records the gateway's start.
    pub fn open(path: &Path, config: &crate::Config) -> Result<Log, AuditError> {
        let mut store = Store::open(path)?;
        let session = new_id();
        let start = serde_json::json!({
            "command": ["cordon", "gateway", "--config", config.file],
            "gateway": {
                "config": config.file,
                "pinning": config.pinning.as_str(),
                "lock": match config.pinning {
                    crate::config::Pinning::Lock => Some(crate::pin::lock_path(Path::new(&config.file)).display().to_string()),
                    crate::config::Pinning::Off => None,
                },
                "servers": config.servers.iter().map(|s| serde_json::json!({
                    "name": s.name, "command": s.argv, "policy": s.policy,
                    "workspace": s.workspace.display().to_string(),
                    "tools_allow": s.allow, "tools_deny": s.deny,
                    "call_timeout_ms": s.call_timeout.as_millis() as u64,
                })).collect::<Vec<_>>(),
            },
            "uid": nix_uid(),
            "cordon": env!("CARGO_PKG_VERSION"),
        });
        let (seq, hash) = store.append(&session, &[(RecordKind::Start.as_str().into(), now_ms(), start)])?;
        store.set_anchor(seq, hash);
        Ok(Log { store: Some(Mutex::new(store)), session, counts: Mutex::new((0, 0)) })
    }

    /// Records one call.
    pub fn call(&self, c: &ToolCall) -> Result<(), AuditError> {
        if let Ok(mut n) = self.counts.lock() {
            n.0 += 1;
            n.1 += u64::from(c.decision != "allow");
        }
        let Some(s) = &self.store else { return Ok(()) };
        let body = serde_json::to_value(c).unwrap_or_default();
        let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
        s.append(&self.session, &[(RecordKind::ToolCall.as_str().into(), now_ms(), body)]).map(|_| ())
    }

    /// Records an alert (a tool served otherwise than pinned).
    pub fn alert(&self, a: &cordon_schema::Alert) -> Result<(), AuditError> {
        let Some(s) = &self.store else { return Ok(()) };
        let body = serde_json::to_value(a).unwrap_or_default();
        let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
        s.append(&self.session, &[(RecordKind::Alert.as_str().into(), a.ts_ms, body)]).map(|_| ())
    }

    /// Records the end (calls made, calls refused) and seals the session.
    pub fn finish(&self, started: std::time::Instant) -> Result<(), AuditError> {
        let Some(s) = &self.store else { return Ok(()) };
        let (calls, refused) = self.counts.lock().map(|n| *n).unwrap_or_default();
        let end = serde_json::json!({
            "calls": calls, "refused": refused, "duration_ms": started.elapsed().as_millis() as u64,
        });
        let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
        s.finish(&self.session, &[(RecordKind::End.as_str().into(), now_ms(), end)], now_ms())
    }
}

fn nix_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}
