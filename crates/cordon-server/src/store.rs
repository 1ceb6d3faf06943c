//! Where the server keeps what it verified: behind [`Store`], the embedded [`SqliteStore`] here
//! and the fleet's PostgreSQL store in store_pg.rs, the HTTP side the same for both. Ingest runs the pure
//! judgement of `ingest::judge` over a [`ChainView`] of the node's chain inside the store's own
//! transaction: the check and the write see the same chain.

use crate::auth::Role;
use crate::ingest::{self, ChainView, Checked, Verdict};
use crate::policies::{PolicyRow, StaleRow};
use cordon_audit::served::ServedPolicy;
use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path}: {message}")]
    Io { path: String, message: String },
    /// A PostgreSQL store's error; `url` has no password (pg_url::redact).
    #[error("database {url}: {source}")]
    Pg {
        url: String,
        #[source]
        source: postgres::Error,
    },
}

/// One session as the dashboard lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionRow {
    pub node: String,
    pub session: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub records: i64,
    /// The start record's payload (command, workspace, policy), Null if it has not arrived.
    pub start: serde_json::Value,
    /// How it ended (`exited`, `signaled`, `setup_failed`, `exec_failed`); None: unfinished.
    pub outcome: Option<String>,
    pub exit_code: Option<i64>,
    pub denials: i64,
    pub alerts: i64,
    pub sealed: bool,
}

/// A stored record (its payload is the exact JSON text the node's hash covers).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredRecord {
    pub seq: i64,
    pub kind: String,
    pub ts_ms: i64,
    pub payload: String,
}

/// A node: the key its first batch pinned, how far its chain is held, its refused batches.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeRow {
    pub name: String,
    pub public_key: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The last record held: every record up to it is stored and verified.
    pub tail_seq: i64,
    pub sessions: i64,
    pub refusals: i64,
}

/// A refused batch and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefusalRow {
    pub ts_ms: i64,
    pub node: String,
    pub reason: String,
    pub detail: String,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub records: i64,
    pub sessions: String,
}

/// A devbox pool as its newest claim recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRow {
    pub node: String,
    pub snapshot: String,
    pub size: i64,
    pub ready: i64,
}

/// One `alert` record: a detection rule that fired in a session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertRow {
    pub node: String,
    pub session: String,
    pub seq: i64,
    pub ts_ms: i64,
    /// The record's body (rule, action, reason, the event).
    pub body: serde_json::Value,
}

/// How many batches of one node were refused for one reason (every one, whatever the detail cap).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefusalCount {
    pub node: String,
    pub reason: String,
    pub count: i64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// The dashboard's filters (all optional).
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub node: Option<String>,
    /// An ending kind, or `unfinished`.
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// One page of a session's records.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub after: i64,
    pub limit: usize,
}

/// Refusals kept in detail per node (the newest); every refusal is counted in `refusal_counts`
/// whatever the cap, so a node flooding the server with bad batches cannot grow its database
/// without bound, nor make a refusal go uncounted.
pub const REFUSALS_KEPT: i64 = 1000;
/// Session ids named in one refusal's row, at most (the rest counted).
const REFUSAL_SESSIONS: usize = 20;

pub trait Store: Send + Sync + 'static {
    fn add_token(&self, sha256: &[u8], role: Role, name: &str, now_ms: i64) -> Result<(), StoreError>;
    /// The role and name of the token whose SHA-256 this is.
    fn token(&self, sha256: &[u8]) -> Result<Option<(Role, String)>, StoreError>;
    /// Judges and, when it continues the node's chain, stores a batch (one transaction); a refusal
    /// is recorded in its own transaction, nothing of the batch stored.
    fn ingest(&self, batch: &Checked, now_ms: i64) -> Result<Verdict, StoreError>;
    fn sessions(&self, f: &SessionFilter, limit: usize) -> Result<Vec<SessionRow>, StoreError>;
    /// Every session with this id (one per node that sent one) and one page of its records: those
    /// after `page.after` (a seq), at most `page.limit + 1` (one more says another page follows).
    fn session(&self, id: &str, page: Page) -> Result<Vec<(SessionRow, Vec<StoredRecord>)>, StoreError>;
    fn refusals(&self, limit: usize) -> Result<Vec<RefusalRow>, StoreError>;
    fn refusal_counts(&self) -> Result<Vec<RefusalCount>, StoreError>;
    /// Adds the next version of an identity's policy, signed by `key`; marks the sessions still
    /// running under an older one stale. The new version and how many were marked.
    fn put_policy(
        &self,
        key: &SigningKey,
        identity: &str,
        text: &str,
        author: &str,
        now_ms: i64,
    ) -> Result<(ServedPolicy, usize), StoreError>;
    /// The newest version of an identity's policy.
    fn policy(&self, identity: &str) -> Result<Option<ServedPolicy>, StoreError>;
    /// Every identity's newest version; with `identity`, its history.
    fn policy_rows(&self, identity: Option<&str>) -> Result<Vec<PolicyRow>, StoreError>;
    fn stale(&self, limit: usize) -> Result<Vec<StaleRow>, StoreError>;
    /// How many sessions are marked stale.
    fn stale_count(&self) -> Result<i64, StoreError>;
    /// The newest alerts, every node's.
    fn alerts(&self, limit: usize) -> Result<Vec<AlertRow>, StoreError>;
    /// The newest devbox claims (start records with a `devbox` object), every node's.
    fn devbox_claims(&self, limit: usize) -> Result<Vec<crate::devbox_view::Claim>, StoreError>;
    /// Each pool (node × snapshot) as its newest claim recorded it, every node's, at most `limit`.
    fn devbox_pools(&self, limit: usize) -> Result<Vec<PoolRow>, StoreError>;
    fn nodes(&self) -> Result<Vec<NodeRow>, StoreError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (sha256 BLOB PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('node', 'viewer', 'admin')), name TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, public_key TEXT NOT NULL, first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL, tail_seq INTEGER NOT NULL, tail_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (node TEXT NOT NULL, seq INTEGER NOT NULL, session TEXT NOT NULL, kind TEXT NOT NULL, ts_ms INTEGER NOT NULL, payload TEXT NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (node, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_session ON records (session, node, seq);
CREATE INDEX IF NOT EXISTS records_alerts ON records (ts_ms) WHERE kind = 'alert';
CREATE INDEX IF NOT EXISTS records_starts ON records (ts_ms) WHERE kind = 'start';
CREATE TABLE IF NOT EXISTS sessions (node TEXT NOT NULL, session TEXT NOT NULL, started_ms INTEGER NOT NULL, ended_ms INTEGER, records INTEGER NOT NULL DEFAULT 0, start TEXT, outcome TEXT, exit_code INTEGER, denials INTEGER NOT NULL DEFAULT 0, alerts INTEGER NOT NULL DEFAULT 0, sealed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (node, session));
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_ms);
CREATE TABLE IF NOT EXISTS refusals (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, node TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, first_seq INTEGER, last_seq INTEGER, records INTEGER NOT NULL, sessions TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS refusals_node ON refusals (node, id);
CREATE TABLE IF NOT EXISTS devbox_pools (node TEXT NOT NULL, snapshot TEXT NOT NULL, seq INTEGER NOT NULL, size INTEGER NOT NULL, ready INTEGER NOT NULL, PRIMARY KEY (node, snapshot)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refusal_counts (node TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, PRIMARY KEY (node, reason)) WITHOUT ROWID;
";

/// The embedded store: one SQLite file (WAL, every commit fsynced: an acknowledged batch survives
/// power loss), one connection behind a mutex (writes serialize anyway in SQLite).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let e = db(path);
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|x| StoreError::Io {
                path: path.display().to_string(),
                message: format!("cannot create {}: {x}", d.display()),
            })?;
        }
        // Every node's evidence and the token digests: the server's user's only (SQLite gives its
        // -wal and -shm files the database's mode).
        let private = |x: std::io::Error| StoreError::Io { path: path.display().to_string(), message: x.to_string() };
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(private)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(private)?;
        }
        let conn = Connection::open(path).map_err(&e)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(&e)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;").map_err(&e)?;
        conn.execute_batch(SCHEMA).map_err(&e)?;
        conn.execute_batch(crate::policies::SCHEMA).map_err(&e)?;
        Ok(SqliteStore { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(db(&self.path))
    }
}

struct TxView<'a> {
    tx: &'a Transaction<'a>,
    node: &'a str,
}

impl ChainView for TxView<'_> {
    type Error = rusqlite::Error;
    fn pinned_key(&self) -> rusqlite::Result<Option<String>> {
        self.tx.query_row("SELECT public_key FROM nodes WHERE name = ?1", [self.node], |r| r.get(0)).optional()
    }
    fn tail(&self) -> rusqlite::Result<(i64, Vec<u8>)> {
        Ok(self
            .tx
            .query_row("SELECT tail_seq, tail_hash FROM nodes WHERE name = ?1", [self.node], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?
            .unwrap_or((0, vec![0u8; 32])))
    }
    fn hash_at(&self, seq: i64) -> rusqlite::Result<Option<Vec<u8>>> {
        self.tx
            .query_row("SELECT hash FROM records WHERE node = ?1 AND seq = ?2", params![self.node, seq], |r| r.get(0))
            .optional()
    }
}

impl Store for SqliteStore {
    fn add_token(&self, sha256: &[u8], role: Role, name: &str, now_ms: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO tokens (sha256, role, name, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![sha256, role.as_str(), name, now_ms],
            )
            .map(|_| ())
        })
    }

    fn token(&self, sha256: &[u8]) -> Result<Option<(Role, String)>, StoreError> {
        let row: Option<(String, String)> = self.with(|c| {
            c.query_row("SELECT role, name FROM tokens WHERE sha256 = ?1", [sha256], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })?;
        Ok(row.and_then(|(r, n)| Some((Role::parse(&r)?, n))))
    }

    fn ingest(&self, batch: &Checked, now_ms: i64) -> Result<Verdict, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let verdict = ingest::judge(&TxView { tx: &tx, node: &batch.node }, batch)?;
            match &verdict {
                Verdict::Accepted(a) => {
                    store_new(&tx, batch, a.new_from, now_ms)?;
                    // A session whose start arrives now may have run under an older version.
                    let started: std::collections::BTreeSet<&str> = batch.records[a.new_from..]
                        .iter()
                        .filter(|r| r.kind == "start")
                        .map(|r| r.session.as_str())
                        .collect();
                    for s in started {
                        crate::policies::mark_stale(&tx, Some(&batch.node), Some(s), None, now_ms)?;
                    }
                    tx.commit()?;
                }
                Verdict::Refused(r) => {
                    drop(tx);
                    record_refusal(c, batch, r.reason, &r.detail, now_ms)?;
                }
            }
            Ok(verdict)
        })
    }

    fn sessions(&self, f: &SessionFilter, limit: usize) -> Result<Vec<SessionRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLS} FROM sessions WHERE (?1 IS NULL OR node = ?1) AND (?2 IS NULL OR (?2 = 'unfinished' AND outcome IS NULL) OR outcome = ?2) AND (?3 IS NULL OR started_ms >= ?3) AND (?4 IS NULL OR started_ms < ?4) ORDER BY started_ms DESC, node, session LIMIT ?5"
            ))?;
            let rows =
                st.query_map(params![f.node, f.outcome, f.since_ms, f.until_ms, limit as i64], session_row)?;
            rows.collect()
        })
    }

    fn session(&self, id: &str, page: Page) -> Result<Vec<(SessionRow, Vec<StoredRecord>)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {COLS} FROM sessions WHERE session = ?1 ORDER BY node"))?;
            let rows: Vec<SessionRow> = st.query_map([id], session_row)?.collect::<rusqlite::Result<_>>()?;
            let mut out = vec![];
            let mut rs = c.prepare(
                "SELECT seq, kind, ts_ms, payload FROM records WHERE session = ?1 AND node = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
            )?;
            for row in rows {
                let recs = rs
                    .query_map(params![id, row.node, page.after, page.limit as i64 + 1], |r| {
                        Ok(StoredRecord { seq: r.get(0)?, kind: r.get(1)?, ts_ms: r.get(2)?, payload: r.get(3)? })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                out.push((row, recs));
            }
            Ok(out)
        })
    }

    fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.with(|c| SqliteStore::nodes_query(c))
    }

    fn put_policy(
        &self,
        key: &SigningKey,
        identity: &str,
        text: &str,
        author: &str,
        now_ms: i64,
    ) -> Result<(ServedPolicy, usize), StoreError> {
        self.with(|c| crate::policies::put(c, key, identity, text, author, now_ms))
    }

    fn policy(&self, identity: &str) -> Result<Option<ServedPolicy>, StoreError> {
        self.with(|c| crate::policies::newest(c, identity))
    }

    fn policy_rows(&self, identity: Option<&str>) -> Result<Vec<PolicyRow>, StoreError> {
        self.with(|c| crate::policies::rows(c, identity))
    }

    fn stale(&self, limit: usize) -> Result<Vec<StaleRow>, StoreError> {
        self.with(|c| crate::policies::stale(c, limit))
    }

    fn stale_count(&self) -> Result<i64, StoreError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM stale", [], |r| r.get(0)))
    }

    fn devbox_claims(&self, limit: usize) -> Result<Vec<crate::devbox_view::Claim>, StoreError> {
        self.with(|c| {
            // The partial index `records_starts`: one row per session, not every record.
            let mut st = c.prepare(
                "SELECT node, ts_ms, json_extract(payload, '$.devbox.snapshot'), json_extract(payload, '$.devbox.latency_ms'), json_extract(payload, '$.devbox.from_pool'),
                        json_extract(payload, '$.devbox.pool_size'), json_extract(payload, '$.devbox.pool_ready')
                 FROM records WHERE kind = 'start' AND json_type(payload, '$.devbox') = 'object' ORDER BY ts_ms DESC LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(crate::devbox_view::Claim {
                    node: r.get(0)?,
                    ts_ms: r.get(1)?,
                    snapshot: r.get::<_, Option<String>>(2)?.unwrap_or_else(|| "?".into()),
                    latency_ms: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                    from_pool: r.get::<_, Option<i64>>(4)?.unwrap_or(0) != 0,
                    pool: crate::devbox_view::pool(r.get::<_, Option<i64>>(5).ok().flatten(), r.get::<_, Option<i64>>(6).ok().flatten()),
                })
            })?;
            rows.collect()
        })
    }

    fn devbox_pools(&self, limit: usize) -> Result<Vec<PoolRow>, StoreError> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT node, snapshot, size, ready FROM devbox_pools ORDER BY node, snapshot LIMIT ?1")?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(PoolRow { node: r.get(0)?, snapshot: r.get(1)?, size: r.get(2)?, ready: r.get(3)? })
            })?;
            rows.collect()
        })
    }

    fn alerts(&self, limit: usize) -> Result<Vec<AlertRow>, StoreError> {
        self.with(|c| {
            // The partial index `records_alerts` holds only alert records: no scan of the rest.
            let mut st = c.prepare(
                "SELECT node, session, seq, ts_ms, payload FROM records WHERE kind = 'alert' ORDER BY ts_ms DESC, node, seq DESC LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(AlertRow {
                    node: r.get(0)?,
                    session: r.get(1)?,
                    seq: r.get(2)?,
                    ts_ms: r.get(3)?,
                    body: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                })
            })?;
            rows.collect()
        })
    }

    fn refusal_counts(&self) -> Result<Vec<RefusalCount>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT node, reason, count, first_ms, last_ms FROM refusal_counts ORDER BY last_ms DESC, node, reason",
            )?;
            let rows = st.query_map([], |r| {
                Ok(RefusalCount {
                    node: r.get(0)?,
                    reason: r.get(1)?,
                    count: r.get(2)?,
                    first_ms: r.get(3)?,
                    last_ms: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    fn refusals(&self, limit: usize) -> Result<Vec<RefusalRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT ts_ms, node, reason, detail, first_seq, last_seq, records, sessions FROM refusals ORDER BY id DESC LIMIT ?1")?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(RefusalRow {
                    ts_ms: r.get(0)?,
                    node: r.get(1)?,
                    reason: r.get(2)?,
                    detail: r.get(3)?,
                    first_seq: r.get(4)?,
                    last_seq: r.get(5)?,
                    records: r.get(6)?,
                    sessions: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// Counts a refused batch and keeps its detail (the node's newest [`REFUSALS_KEPT`] only).
fn record_refusal(c: &Connection, batch: &Checked, reason: &str, detail: &str, now_ms: i64) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO refusal_counts (node, reason, count, first_ms, last_ms) VALUES (?1, ?2, 1, ?3, ?3)
         ON CONFLICT (node, reason) DO UPDATE SET count = count + 1, last_ms = ?3",
        params![batch.node, reason, now_ms],
    )?;
    let named = refusal_sessions(batch);
    tx.execute(
        "INSERT INTO refusals (ts_ms, node, reason, detail, first_seq, last_seq, records, sessions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            now_ms,
            batch.node,
            reason,
            detail,
            batch.records.first().map(|r| r.seq),
            batch.records.last().map(|r| r.seq),
            batch.records.len() as i64,
            named
        ],
    )?;
    tx.execute(
        "DELETE FROM refusals WHERE node = ?1 AND id <= (SELECT id FROM refusals WHERE node = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![batch.node, REFUSALS_KEPT],
    )?;
    tx.commit()
}

/// The sessions a refused batch held, as its row names them (the first few, the rest counted).
pub(crate) fn refusal_sessions(batch: &Checked) -> String {
    let sessions: std::collections::BTreeSet<&str> = batch.records.iter().map(|r| r.session.as_str()).collect();
    let mut named = sessions.iter().take(REFUSAL_SESSIONS).copied().collect::<Vec<_>>().join(" ");
    if sessions.len() > REFUSAL_SESSIONS {
        named.push_str(&format!(" (and {} more)", sessions.len() - REFUSAL_SESSIONS));
    }
    named
}

impl SqliteStore {
    fn nodes_query(c: &Connection) -> rusqlite::Result<Vec<NodeRow>> {
        let mut st = c.prepare(
            "SELECT name, public_key, first_seen_ms, last_seen_ms, tail_seq,
                    (SELECT count(*) FROM sessions WHERE sessions.node = nodes.name),
                    (SELECT coalesce(sum(count), 0) FROM refusal_counts WHERE refusal_counts.node = nodes.name)
             FROM nodes ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(NodeRow {
                name: r.get(0)?,
                public_key: r.get(1)?,
                first_seen_ms: r.get(2)?,
                last_seen_ms: r.get(3)?,
                tail_seq: r.get(4)?,
                sessions: r.get(5)?,
                refusals: r.get(6)?,
            })
        })?;
        rows.collect()
    }
}

const COLS: &str = "node, session, started_ms, ended_ms, records, start, outcome, exit_code, denials, alerts, sealed";

fn session_row(r: &rusqlite::Row) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        node: r.get(0)?,
        session: r.get(1)?,
        started_ms: r.get(2)?,
        ended_ms: r.get(3)?,
        records: r.get(4)?,
        start: r
            .get::<_, Option<String>>(5)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null),
        outcome: r.get(6)?,
        exit_code: r.get(7)?,
        denials: r.get(8)?,
        alerts: r.get(9)?,
        sealed: r.get::<_, i64>(10)? != 0,
    })
}

/// A claim's pool, unless a later claim of the same pool is already there: later in the node's
/// chain (its `seq`), not by its clock, which may step back.
const POOL_UPSERT: &str = "INSERT INTO devbox_pools (node, snapshot, seq, size, ready) VALUES (?1, ?2, ?3, ?4, ?5)
 ON CONFLICT (node, snapshot) DO UPDATE SET seq = excluded.seq, size = excluded.size, ready = excluded.ready WHERE excluded.seq > devbox_pools.seq";

/// Inserts the records from index `from` on (those before it were already stored), moves the
/// node's tail, and keeps the per-session summary the dashboard lists.
fn store_new(tx: &Transaction, b: &Checked, from: usize, now_ms: i64) -> rusqlite::Result<()> {
    let (tail_seq, tail_hash) = match b.records.last() {
        Some(last) if from < b.records.len() => (Some(last.seq), Some(last.hash.clone())),
        _ => (None, None),
    };
    tx.execute(
        "INSERT INTO nodes (name, public_key, first_seen_ms, last_seen_ms, tail_seq, tail_hash) VALUES (?1, ?2, ?3, ?3, COALESCE(?4, 0), COALESCE(?5, zeroblob(32)))
         ON CONFLICT (name) DO UPDATE SET last_seen_ms = ?3, tail_seq = COALESCE(?4, tail_seq), tail_hash = COALESCE(?5, tail_hash)",
        params![b.node, b.public_key_hex, now_ms, tail_seq, tail_hash],
    )?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO records (node, seq, session, kind, ts_ms, payload, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut sess = tx.prepare_cached(
        "INSERT INTO sessions (node, session, started_ms, records) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (node, session) DO UPDATE SET records = records + ?4",
    )?;
    // One row per session of the batch, made before its records' own updates (start, end, ...):
    // (first record's time, records), in the order the sessions first appear.
    let mut counts: Vec<(&str, i64, i64)> = vec![];
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in &b.records[from..] {
        match at.get(r.session.as_str()) {
            Some(&i) => counts[i].2 += 1,
            None => {
                at.insert(&r.session, counts.len());
                counts.push((&r.session, r.ts_ms, 1));
            }
        }
    }
    for (session, first_ms, n) in &counts {
        sess.execute(params![b.node, session, first_ms, n])?;
    }
    for r in &b.records[from..] {
        ins.execute(params![b.node, r.seq, r.session, r.kind, r.ts_ms, r.body, r.prev, r.hash])?;
        let v = || serde_json::from_str::<serde_json::Value>(&r.body).unwrap_or_default();
        let key = params![b.node, r.session];
        match r.kind.as_str() {
            "start" => {
                tx.execute(
                    "UPDATE sessions SET start = ?3, started_ms = ?4 WHERE node = ?1 AND session = ?2",
                    params![b.node, r.session, r.body, r.ts_ms],
                )?;
                if let Some((snapshot, size, ready)) = crate::tally::pool_of(&v()) {
                    tx.prepare_cached(POOL_UPSERT)?.execute(params![
                        b.node,
                        snapshot,
                        r.seq,
                        size.min(i64::MAX as u64) as i64,
                        ready.min(i64::MAX as u64) as i64
                    ])?;
                }
            }
            "end" => {
                let e = v();
                tx.execute(
                    "UPDATE sessions SET ended_ms = ?3, outcome = ?4, exit_code = ?5, denials = denials + ?6 WHERE node = ?1 AND session = ?2",
                    params![
                        b.node,
                        r.session,
                        r.ts_ms,
                        crate::ingest::outcome(&e),
                        e["exit_code"].as_i64(),
                        e["denials_total"].as_i64().unwrap_or(0)
                    ],
                )?;
            }
            // The sensor's refusals (per call, every layer) add to the supervisor's (in `end`), as
            // `cordon audit show` counts them.
            "sensor.summary" => {
                tx.execute(
                    "UPDATE sessions SET denials = denials + ?3 WHERE node = ?1 AND session = ?2",
                    params![b.node, r.session, v()["denials_total"].as_i64().unwrap_or(0)],
                )?;
            }
            "alert" => {
                tx.execute("UPDATE sessions SET alerts = alerts + 1 WHERE node = ?1 AND session = ?2", key)?;
            }
            "seal" => {
                tx.execute("UPDATE sessions SET sealed = 1 WHERE node = ?1 AND session = ?2", key)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn db(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Db { path: path.display().to_string(), source: e }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(node: &str) -> Checked {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        Checked { node: node.into(), public_key_hex: String::new(), key, records: vec![] }
    }

    #[test]
    fn refusals_are_all_counted_and_each_nodes_newest_kept_in_detail() {
        struct Gone(std::path::PathBuf);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = Gone(std::env::temp_dir().join(format!("cordon-server-store-{}", std::process::id())));
        let dir = &dir.0;
        let store = SqliteStore::open(&dir.join("s.db")).expect("open");
        let n = REFUSALS_KEPT + 5;
        store
            .with(|c| {
                for i in 0..n {
                    record_refusal(c, &batch("flood"), "conflict", &format!("refusal {i}"), i)?;
                }
                for i in 0..3 {
                    record_refusal(c, &batch("quiet"), "gap", "a gap", i)?;
                }
                Ok(())
            })
            .expect("record");
        let counts = store.refusal_counts().expect("counts");
        let flood = counts.iter().find(|c| c.node == "flood").expect("flood counted");
        assert_eq!((flood.count, flood.first_ms, flood.last_ms), (n, 0, n - 1));
        assert_eq!(counts.iter().find(|c| c.node == "quiet").map(|c| c.count), Some(3));
        let rows = store.refusals(10 * REFUSALS_KEPT as usize).expect("rows");
        let kept: Vec<&RefusalRow> = rows.iter().filter(|r| r.node == "flood").collect();
        assert_eq!(kept.len() as i64, REFUSALS_KEPT, "the detail is capped per node");
        assert_eq!(kept[0].detail, format!("refusal {}", n - 1), "the newest is kept");
        assert_eq!(kept.last().map(|r| r.detail.clone()), Some("refusal 5".into()), "the oldest go first");
        assert_eq!(rows.iter().filter(|r| r.node == "quiet").count(), 3, "another node's refusals stay");
        let nodes_total: i64 = counts.iter().map(|c| c.count).sum();
        assert_eq!(nodes_total, n + 3);
    }

    #[test]
    fn sessions_that_ran_under_an_older_version_while_a_newer_existed_are_stale() {
        let dir = std::env::temp_dir().join(format!("cordon-server-stale-{}", std::process::id()));
        struct Gone(std::path::PathBuf);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _gone = Gone(dir.clone());
        let store = SqliteStore::open(&dir.join("s.db")).expect("open");
        let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let session = |id: &str, version: i64, ended: Option<i64>| {
            let name = if id == "other-identity" { "other" } else { "bot" };
            let start = serde_json::json!({"policy": {"identity": {"name": name, "version": version}}}).to_string();
            store
                .with(|c| {
                    c.execute(
                        "INSERT INTO sessions (node, session, started_ms, ended_ms, start, outcome) VALUES ('n1', ?1, 100, ?2, ?3, CASE WHEN ?2 IS NULL THEN NULL ELSE 'exited' END)",
                        params![id, ended, start],
                    )
                })
                .expect("insert");
        };
        let text = "version = 1\n";
        assert_eq!(store.put_policy(&key, "bot", text, "ops", 50).expect("v1").1, 0);
        session("ended-before", 1, Some(200));
        session("running", 1, None);
        session("ended-after", 1, Some(5000));
        session("other-identity", 0, None);
        let (v2, marked) = store.put_policy(&key, "bot", text, "ops", 1000).expect("v2");
        assert_eq!((v2.version, marked), (2, 2), "the running one and the one that ended after v2");
        let stale: Vec<String> = store.stale(100).expect("stale").into_iter().map(|r| r.session).collect();
        assert!(stale.contains(&"running".into()) && stale.contains(&"ended-after".into()), "{stale:?}");
        // A session whose records arrive late (it ran offline) is judged when its start comes.
        session("late", 1, Some(3000));
        session("late-current", 2, Some(3000));
        let mark =
            |s: &str| store.with(|c| crate::policies::mark_stale(c, Some("n1"), Some(s), None, 9000)).expect("mark");
        assert_eq!((mark("late"), mark("late-current"), mark("ended-before")), (1, 0, 0));
        assert_eq!(store.stale(100).expect("stale").len(), 3);
        assert_eq!(store.policy_rows(None).expect("rows")[0].stale, 3);
        assert_eq!(store.policy("bot").expect("newest").map(|p| p.version), Some(2));
        assert!(store.policy("bot").expect("newest").expect("v2").check("bot", Some(&key.verifying_key())).is_ok());
    }
}
