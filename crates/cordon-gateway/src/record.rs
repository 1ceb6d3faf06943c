//! The gateway's evidence: one audit session per gateway run (a `start` naming the config and its
//! servers, a `tool_call` record per call, a `tool_result` per call that reached a server, an `end`
//! with the counts, and the seal), in the same log as the servers' own sessions, which each
//! `tool_call` names.
//!
//! The rule is that a call that ran is never reported as one that did not. So an allowed call's
//! `tool_call` record is committed before the call is forwarded, and the call is not forwarded when
//! it cannot be; its `tool_result` follows when the answer is in. Both go through one writer thread
//! that commits whatever is waiting in one transaction (group commit). A commit is written to the
//! log's WAL without waiting for the disk: from then on a crash or SIGKILL of the gateway cannot
//! lose it (the kernel holds it). The fsync that makes it survive a power loss runs in a thread of
//! its own, one per batch, off the answer path; `audit_sync = "call"` makes a call wait for it
//! before it is forwarded. At the end every record still waiting is written and the session is
//! sealed with an fsync; a call still open then gets a result saying the gateway ended first.

use cordon_audit::{AuditError, Durability, Store};
use cordon_schema::RecordKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

/// The body of a `tool_call` record: the call as decided, before it is forwarded (or refused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    /// The call's number in this gateway session (its `tool_result` names it); 0 for a refusal.
    pub call: u64,
    /// Who called ("stdio": the one client on the gateway's stdio).
    pub identity: String,
    /// The common name of the client certificate the caller presented (an mTLS listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    pub server: String,
    /// The upstream's own name for the tool (served as `SERVER__TOOL`).
    pub tool: String,
    /// SHA-256 of the arguments as received (compact JSON; `null` when there were none).
    pub args_sha256: String,
    /// A copy of the arguments with credentials taken out and long strings cut (see [`redact`]).
    pub args: Value,
    /// "allow" or "deny".
    pub decision: String,
    /// The rule that decided (a gateway.toml field).
    pub rule: String,
    /// Why the call was refused, when it was.
    pub error: Option<String>,
    /// The cordon session the server runs in (None: refused before it reached a server).
    pub session: Option<String>,
    /// "lock" (tools checked against the lock file) or "off" (the config's explicit unpinned mode).
    pub pinning: String,
    /// The pinned SHA-256 of the tool's definition the call was checked against (None: pinning off,
    /// or refused before the check).
    pub pin_sha256: Option<String>,
    /// "server" (the call ran in its server's long-lived session, shared with its other calls) or
    /// "call" (in a session of its own).
    #[serde(default = "server_isolation")]
    pub isolation: String,
    /// Well-known token formats found in the arguments (`scan_secrets`; redacted or blocked).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub secrets_in_args: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn server_isolation() -> String {
    "server".into()
}

/// The body of a `tool_result` record: how an allowed call ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolResult {
    /// The `call` of its `tool_call` record.
    pub call: u64,
    pub server: String,
    pub tool: String,
    /// Time in the gateway, from the decision to the answer.
    pub duration_ms: u64,
    /// The result's size as JSON, in bytes (0 when there was none).
    pub result_bytes: u64,
    /// The upstream answered with a tool error, or the call failed.
    pub is_error: bool,
    /// Why the call failed, when it did (not the tool's own error text).
    pub error: Option<String>,
    /// Another call to the same server session was in flight at some time during this one: the
    /// session's events in this call's time cannot be told apart (always false under
    /// `isolation = "call"`).
    #[serde(default)]
    pub overlapped: bool,
    /// Well-known token formats (and the server's own secrets) found in the result: redacted, or
    /// the result withheld (`scan_secrets = "block"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub secrets_in_result: u32,
}

/// SHA-256 of the arguments' compact JSON, hex.
pub fn args_hash(args: &Option<crate::mcp::Json>) -> String {
    use sha2::{Digest, Sha256};
    let text = match args {
        Some(a) => Value::Object(a.clone()).to_string(),
        None => "null".into(),
    };
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The arguments as recorded: a value under a key named like a credential (`token`, `password`,
/// `secret`, `api_key`, `auth`, ...) is `"[redacted]"`; a string in a well-known token format
/// (GitHub, GitLab, Slack, AWS, OpenAI/Anthropic-style `sk-`, a JWT, a PEM block) is replaced too;
/// strings over 256 bytes are cut to their first 128 with their size; arrays keep 64 items,
/// nesting 16 levels. The hash (`args_sha256`) is over the arguments as received.
pub fn redact(args: &Option<crate::mcp::Json>) -> Value {
    match args {
        None => Value::Null,
        Some(a) => redact_value(&Value::Object(a.clone()), 0),
    }
}

fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase().replace(['-', '.'], "_");
    ["token", "secret", "passw", "passphrase", "api_key", "apikey", "auth", "credential", "private_key", "cookie"]
        .iter()
        .any(|w| k.contains(w))
}

/// A string in a well-known credential format.
pub fn looks_secret(s: &str) -> bool {
    let s = s.trim();
    let prefixed = [
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
        "xoxa-",
        "xoxs-",
        "sk-",
        "AKIA",
        "ASIA",
    ]
    .iter()
    .any(|p| s.starts_with(p) && s.len() >= p.len() + 16 && !s.contains(char::is_whitespace));
    let jwt = s.starts_with("eyJ") && s.split('.').count() == 3 && !s.contains(char::is_whitespace);
    prefixed || jwt || s.contains("-----BEGIN") && s.contains("PRIVATE KEY")
}

fn redact_value(v: &Value, depth: usize) -> Value {
    if depth >= 16 {
        return "[nested deeper than 16]".into();
    }
    match v {
        Value::String(s) if looks_secret(s) => "[redacted: looks like a credential]".into(),
        Value::String(s) if s.len() > 256 => {
            let mut end = 128;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}... [{} bytes]", &s[..end], s.len()).into()
        }
        Value::Array(a) => {
            let mut out: Vec<Value> = a.iter().take(64).map(|x| redact_value(x, depth + 1)).collect();
            if a.len() > 64 {
                out.push(format!("[{} more items]", a.len() - 64).into());
            }
            Value::Array(out)
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let x =
                        if secret_key(k) && !x.is_null() { "[redacted]".into() } else { redact_value(x, depth + 1) };
                    (k.clone(), x)
                })
                .collect(),
        ),
        v => v.clone(),
    }
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

/// When a call's `tool_call` record counts as recorded, for forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Written to the log (survives the gateway's crash); fsynced in the next group (the default).
    Written,
    /// Fsynced (survives a power loss) before the call is forwarded: one fsync on the answer path.
    Synced,
}

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

enum Job {
    Append { kind: RecordKind, ts: i64, body: Value, ack: Option<(WaitFor, Ack)> },
    Finish { body: Value, ack: mpsc::Sender<Result<(), AuditError>> },
}

/// The fsync thread's state: batches written and batches known on disk.
#[derive(Default)]
struct Synced {
    written: u64,
    synced: u64,
    waiting: Vec<(u64, Ack)>,
    stop: bool,
}

/// The gateway's audit session.
pub struct Log {
    jobs: Option<Mutex<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub session: String,
    sync: WaitFor,
    counts: Mutex<(u64, u64)>,
    next: AtomicU64,
    /// Calls recorded as started and not yet ended: (server, tool).
    open: Mutex<BTreeMap<u64, (String, String)>>,
}

impl Log {
    /// Not recorded (`--no-audit`).
    pub fn off() -> Log {
        Log {
            jobs: None,
            writer: Mutex::new(None),
            session: new_id(),
            sync: WaitFor::Written,
            counts: Mutex::new((0, 0)),
            next: AtomicU64::new(1),
            open: Mutex::default(),
        }
    }

    /// Opens the log at `path`, records the gateway's start (fsynced) and starts the writer.
    pub fn open(path: &Path, config: &crate::Config) -> Result<Log, AuditError> {
        let mut store = Store::open(path)?;
        let session = new_id();
        let start = serde_json::json!({
            "command": ["cordon", "gateway", "--config", config.file],
            "gateway": {
                "config": config.file,
                "pinning": config.pinning.as_str(),
                "audit_sync": config.audit_sync.as_str(),
                "lock": match config.pinning {
                    crate::config::Pinning::Lock => Some(crate::pin::lock_path(Path::new(&config.file)).display().to_string()),
                    crate::config::Pinning::Off => None,
                },
                "servers": config.servers.iter().map(|s| serde_json::json!({
                    "name": s.name, "command": s.argv, "policy": s.policy,
                    "workspace": s.workspace.display().to_string(),
                    "tools_allow": s.allow, "tools_deny": s.deny,
                    "call_timeout_ms": s.call_timeout.as_millis() as u64,
                    "start_timeout_ms": s.start_timeout.as_millis() as u64,
                    // Names and where they came from: never a value.
                    "secrets": s.secrets.iter().map(|x| serde_json::json!({"name": x.name, "from": x.from})).collect::<Vec<_>>(),
                    "scan_secrets": s.scan.as_str(),
                })).collect::<Vec<_>>(),
            },
            "uid": nix_uid(),
            "cordon": env!("CARGO_PKG_VERSION"),
        });
        let (seq, hash) = store.append(&session, &[(RecordKind::Start.as_str().into(), now_ms(), start)])?;
        store.set_anchor(seq, hash);
        // From here commits are written without waiting for the disk; the fsync thread syncs them.
        store.set_durability(Durability::Batch)?;
        let wal = cordon_audit::files::sidecar(store.path(), "-wal");
        let (tx, rx) = mpsc::channel();
        let writer = {
            let session = session.clone();
            std::thread::Builder::new()
                .name("gw-audit".into())
                .spawn(move || write_loop(store, &session, wal, rx))
                .map_err(|e| AuditError::Io { path: path.display().to_string(), message: e.to_string() })?
        };
        let sync = match config.audit_sync {
            crate::config::AuditSync::Group => WaitFor::Written,
            crate::config::AuditSync::Call => WaitFor::Synced,
        };
        Ok(Log {
            jobs: Some(Mutex::new(tx)),
            writer: Mutex::new(Some(writer)),
            session,
            sync,
            counts: Mutex::new((0, 0)),
            next: AtomicU64::new(1),
            open: Mutex::default(),
        })
    }

    fn send(&self, j: Job) -> Result<(), String> {
        let Some(tx) = &self.jobs else { return Ok(()) };
        let tx = tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.send(j).map_err(|_| "the audit writer has stopped (the gateway's session is sealed)".to_string())
    }

    fn body<T: Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap_or_default()
    }

    /// Records a refused call (nothing ran: not waited for).
    pub fn refused(&self, c: &ToolCall) {
        self.count(true);
        let j = Job::Append { kind: RecordKind::ToolCall, ts: now_ms(), body: Self::body(c), ack: None };
        if let Err(e) = self.send(j) {
            eprintln!("cordon gateway: cannot record the refused call to {}.{}: {e}", c.server, c.tool);
        }
    }

    /// Records an allowed call before it is forwarded; its number, once the record is written (or
    /// fsynced, under `audit_sync = "call"`). An error: the call must not be forwarded.
    pub async fn started(&self, mut c: ToolCall) -> Result<u64, String> {
        self.count(false);
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        c.call = n;
        if self.jobs.is_none() {
            return Ok(n);
        }
        self.open.lock().unwrap_or_else(|p| p.into_inner()).insert(n, (c.server.clone(), c.tool.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let j =
            Job::Append { kind: RecordKind::ToolCall, ts: now_ms(), body: Self::body(&c), ack: Some((self.sync, tx)) };
        let r = match self.send(j) {
            Ok(()) => rx.await.unwrap_or_else(|_| Err("the audit writer stopped".into())),
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&n);
        }
        r.map(|_| n)
    }

    /// Records how a started call ended (not waited for: off the answer path).
    pub fn ended(&self, r: &ToolResult) {
        if self.jobs.is_none() {
            return;
        }
        // A call the end already closed (see finish) is not closed twice.
        if self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&r.call).is_none() {
            return;
        }
        let j = Job::Append { kind: RecordKind::ToolResult, ts: now_ms(), body: Self::body(r), ack: None };
        if let Err(e) = self.send(j) {
            eprintln!("cordon gateway: cannot record the result of call {} ({}.{}): {e}", r.call, r.server, r.tool);
        }
    }

    fn count(&self, refused: bool) {
        if let Ok(mut n) = self.counts.lock() {
            n.0 += 1;
            n.1 += u64::from(refused);
        }
    }

    /// Records an alert (a tool served otherwise than pinned); not waited for.
    pub fn alert(&self, a: &cordon_schema::Alert) -> Result<(), AuditError> {
        let j = Job::Append { kind: RecordKind::Alert, ts: a.ts_ms, body: Self::body(a), ack: None };
        self.send(j).map_err(|m| AuditError::Io { path: self.session.clone(), message: m })
    }

    /// Records a result for each call still open (the gateway ends before their answers), the end
    /// (calls made, calls refused), and seals the session: everything written and fsynced before
    /// this returns. Blocks.
    pub fn finish(&self, started: std::time::Instant) -> Result<(), AuditError> {
        if self.jobs.is_none() {
            return Ok(());
        }
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|p| p.into_inner()));
        for (call, (server, tool)) in open {
            let r = ToolResult {
                call,
                server,
                tool,
                duration_ms: 0,
                result_bytes: 0,
                is_error: true,
                error: Some(
                    "not answered: the gateway ended (stdin closed, SIGINT or SIGTERM) before the call did".into(),
                ),
                overlapped: false,
                secrets_in_result: 0,
            };
            let j = Job::Append { kind: RecordKind::ToolResult, ts: now_ms(), body: Self::body(&r), ack: None };
            if let Err(e) = self.send(j) {
                eprintln!("cordon gateway: cannot record the end of call {call} ({}.{}): {e}", r.server, r.tool);
            }
        }
        let (calls, refused) = self.counts.lock().map(|n| *n).unwrap_or_default();
        let end = serde_json::json!({
            "calls": calls, "refused": refused, "duration_ms": started.elapsed().as_millis() as u64,
        });
        let (tx, rx) = mpsc::channel();
        let sent = self.send(Job::Finish { body: end, ack: tx });
        let r = match sent {
            Ok(()) => rx.recv().unwrap_or_else(|_| {
                Err(AuditError::Io { path: self.session.clone(), message: "the audit writer stopped".into() })
            }),
            Err(m) => Err(AuditError::Io { path: self.session.clone(), message: m }),
        };
        if let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
        r
    }
}

/// The writer: takes every job waiting, commits them in one transaction, tells the callers waiting
/// for a write, and hands the batch to the fsync thread.
fn write_loop(mut store: Store, session: &str, wal: PathBuf, rx: mpsc::Receiver<Job>) {
    let state = Arc::new((Mutex::new(Synced::default()), Condvar::new()));
    let syncer = {
        let state = state.clone();
        std::thread::Builder::new().name("gw-fsync".into()).spawn(move || sync_loop(&state, &wal)).ok()
    };
    let mut batch_no = 0u64;
    'outer: while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < 1024 {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut items = vec![];
        let mut acks = vec![];
        let mut finish = None;
        let mut late = vec![];
        for j in jobs {
            match (j, finish.is_some()) {
                (Job::Append { kind, ts, body, ack }, false) => {
                    items.push((kind.as_str().to_string(), ts, body));
                    acks.extend(ack);
                }
                (Job::Finish { body, ack }, false) => finish = Some((body, ack)),
                (Job::Append { ack: Some((_, a)), .. }, true) => late.push(a),
                _ => {}
            }
        }
        for a in late {
            let _ = a.send(Err("the gateway's audit session is sealed".into()));
        }
        if !items.is_empty() {
            match store.append(session, &items) {
                Ok(_) => {
                    batch_no += 1;
                    let mut s = state.0.lock().unwrap_or_else(|p| p.into_inner());
                    s.written = batch_no;
                    for (how, a) in acks {
                        match how {
                            WaitFor::Written => {
                                let _ = a.send(Ok(()));
                            }
                            WaitFor::Synced => s.waiting.push((batch_no, a)),
                        }
                    }
                    state.1.notify_all();
                }
                Err(e) => {
                    eprintln!("cordon gateway: cannot write {} record(s) to the audit log: {e}", items.len());
                    for (_, a) in acks {
                        let _ = a.send(Err(e.to_string()));
                    }
                }
            }
        }
        if let Some((end, ack)) = finish {
            // The end and the seal in one transaction, fsynced (which syncs every batch before it).
            let r = store
                .set_durability(Durability::Full)
                .and_then(|_| store.finish(session, &[(RecordKind::End.as_str().into(), now_ms(), end)], now_ms()));
            let _ = ack.send(r);
            break 'outer;
        }
    }
    {
        let mut s = state.0.lock().unwrap_or_else(|p| p.into_inner());
        s.stop = true;
        state.1.notify_all();
    }
    if let Some(t) = syncer {
        let _ = t.join();
    }
}

/// The fsync thread: syncs the WAL whenever a batch was written since the last sync (one fsync
/// covers every batch written before it started), then tells the callers waiting for it.
fn sync_loop(state: &(Mutex<Synced>, Condvar), wal: &Path) {
    let mut s = state.0.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        while s.written == s.synced && !s.stop {
            s = state.1.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.written == s.synced {
            // Stopping, nothing left to sync; callers still waiting are told.
            for (_, a) in s.waiting.drain(..) {
                let _ = a.send(Err("the audit writer stopped".into()));
            }
            return;
        }
        let target = s.written;
        drop(s);
        let r = std::fs::File::open(wal).and_then(|f| f.sync_data());
        s = state.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = &r {
            eprintln!("cordon gateway: cannot fsync the audit log's WAL {}: {e}", wal.display());
        }
        s.synced = target;
        let (done, rest): (Vec<_>, Vec<_>) = s.waiting.drain(..).partition(|(b, _)| *b <= target);
        s.waiting = rest;
        for (_, a) in done {
            let _ = a.send(r.as_ref().map(|_| ()).map_err(|e| format!("fsync of {}: {e}", wal.display())));
        }
    }
}

fn nix_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credentials_are_taken_out_of_the_recorded_arguments() {
        let args = json!({
            "path": "/srv/a", "API-Key": "abc", "headers": {"Authorization": "Bearer x", "accept": "json"},
            "list": ["ok", "ghp_0123456789abcdefghij", "xoxb-1234567890123456789"],
            "jwt": "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", "long": "y".repeat(300), "password": null,
        });
        let r = redact(&args.as_object().cloned());
        assert_eq!(r["path"], "/srv/a");
        assert_eq!(r["API-Key"], "[redacted]");
        assert_eq!(r["headers"], json!({"Authorization": "[redacted]", "accept": "json"}));
        assert_eq!(r["list"][0], "ok");
        assert!(r["list"][1].as_str().is_some_and(|s| s.contains("credential")), "{r}");
        assert!(r["list"][2].as_str().is_some_and(|s| s.contains("credential")), "{r}");
        assert!(r["jwt"].as_str().is_some_and(|s| s.contains("credential")), "{r}");
        assert!(r["long"].as_str().is_some_and(|s| s.len() < 150 && s.ends_with("[300 bytes]")), "{r}");
        assert!(r["password"].is_null(), "{r}");
        assert_eq!(redact(&None), Value::Null);
        // Short strings with a token's prefix are not tokens.
        assert!(!looks_secret("sk-1") && !looks_secret("AKIA"));
    }
}
