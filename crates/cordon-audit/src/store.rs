//! The SQLite store: open (WAL), append records in batches, seal sessions, keep the signed head.

use crate::chain::{canonical, hex, record_hash};
use ed25519_dalek::{Signer, SigningKey};
use rusqlite::{params, Connection, OptionalExtension};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("audit log {path}: {message}")]
    Io { path: String, message: String },
}

/// `$CORDON_AUDIT` if set; else `$XDG_STATE_HOME/cordon/audit.db` (or `~/.local/state/...`), or
/// `/var/lib/cordon/audit.db` as root.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CORDON_AUDIT").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return p;
    }
    if nix_is_root() {
        return PathBuf::from("/var/lib/cordon/audit.db");
    }
    let base = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/nonexistent".into())).join(".local/state")
    });
    base.join("cordon/audit.db")
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))).unwrap_or(false)
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    key: SigningKey,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionRow {
    pub session: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub records: i64,
    pub summary: serde_json::Value,
    pub sealed: bool,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, AuditError> {
        let io = |m: String| AuditError::Io { path: path.display().to_string(), message: m };
        if let Some(d) = path.parent().filter(|d| !d.exists()) {
            // Only a directory cordon creates is made private; an existing one is left as it is.
            std::fs::create_dir_all(d).map_err(|e| io(format!("cannot create {}: {e}", d.display())))?;
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700));
        }
        let db = |e| AuditError::Db { path: path.display().to_string(), source: e };
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, session TEXT NOT NULL, kind TEXT NOT NULL, ts_ms INTEGER NOT NULL, body TEXT NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS records_session ON records(session, seq);",
        )
        .map_err(db)?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        let key = load_key(&key_path(path)).map_err(io)?;
        Ok(Store { conn, path: path.to_path_buf(), key })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records in one transaction (the unit of durability).
    pub fn append(&mut self, session: &str, items: &[(String, i64, serde_json::Value)]) -> Result<(i64, Vec<u8>), AuditError> {
        let raw: Vec<(&str, i64, String)> = items.iter().map(|(k, t, b)| (k.as_str(), *t, canonical(b))).collect();
        self.append_raw(session, &raw)
    }

    /// Appends records whose bodies are already serialized JSON (compact; the chain covers the
    /// bytes as given). For high-rate producers that serialize once for several outputs.
    pub fn append_raw<K: AsRef<str>>(&mut self, session: &str, items: &[(K, i64, String)]) -> Result<(i64, Vec<u8>), AuditError> {
        let p = self.path.display().to_string();
        let db = |e| AuditError::Db { path: p.clone(), source: e };
        // IMMEDIATE: take the write lock before reading the tail, so concurrent sessions appending
        // to one log serialize instead of racing for the same sequence number.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        let (mut seq, mut prev) = tx
            .query_row("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .optional()
            .map_err(db)?
            .unwrap_or((0, vec![0u8; 32]));
        {
            let mut st = tx.prepare_cached("INSERT INTO records (seq, session, kind, ts_ms, body, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)").map_err(db)?;
            for (kind, ts, b) in items {
                let kind = kind.as_ref();
                seq += 1;
                let h = record_hash(&prev, seq, session, kind, *ts, b);
                st.execute(params![seq, session, kind, ts, b, prev, h]).map_err(db)?;
                prev = h;
            }
        }
        tx.commit().map_err(db)?;
        Ok((seq, prev))
    }

    /// Seals a session: a record carrying an Ed25519 signature over the chain head, then the signed
    /// head file next to the database (written after the commit, so it never runs ahead of it).
    pub fn seal(&mut self, session: &str, ts_ms: i64) -> Result<(), AuditError> {
        let p = self.path.display().to_string();
        let db = |e| AuditError::Db { path: p.clone(), source: e };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        let (seq, head) = tx
            .query_row("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .optional()
            .map_err(db)?
            .unwrap_or((0, vec![0u8; 32]));
        let msg = format!("cordon-seal-v1 {session} {} {}", seq + 1, hex(&head));
        let sig = self.key.sign(msg.as_bytes());
        let body = canonical(&serde_json::json!({"covers_seq": seq, "head": hex(&head), "signature": hex(&sig.to_bytes()), "public_key": hex(&self.key.verifying_key().to_bytes())}));
        let h = record_hash(&head, seq + 1, session, "seal", ts_ms, &body);
        tx.execute("INSERT INTO records (seq, session, kind, ts_ms, body, prev, hash) VALUES (?1, ?2, 'seal', ?3, ?4, ?5, ?6)", params![seq + 1, session, ts_ms, body, head, h]).map_err(db)?;
        tx.commit().map_err(db)?;
        self.write_head(seq + 1, &h)
    }

    fn write_head(&self, seq: i64, hash: &[u8]) -> Result<(), AuditError> {
        let msg = format!("cordon-head-v1 {seq} {}", hex(hash));
        let sig = self.key.sign(msg.as_bytes());
        let doc = serde_json::json!({"seq": seq, "hash": hex(hash), "signature": hex(&sig.to_bytes())});
        let hp = head_path(&self.path);
        let tmp = hp.with_extension("head.tmp");
        let io = |e: std::io::Error| AuditError::Io { path: hp.display().to_string(), message: e.to_string() };
        std::fs::write(&tmp, canonical(&doc) + "\n").map_err(io)?;
        std::fs::rename(&tmp, &hp).map_err(io)
    }

    pub fn sessions(&self) -> Result<Vec<SessionRow>, AuditError> {
        let db = |e| AuditError::Db { path: self.path.display().to_string(), source: e };
        let mut st = self
            .conn
            .prepare("SELECT session, MIN(ts_ms), MAX(CASE WHEN kind='end' THEN ts_ms END), COUNT(*), MAX(CASE WHEN kind='start' THEN body END), MAX(kind='seal') FROM records GROUP BY session ORDER BY MIN(seq)")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(SessionRow {
                    session: r.get(0)?,
                    started_ms: r.get(1)?,
                    ended_ms: r.get(2)?,
                    records: r.get(3)?,
                    summary: r.get::<_, Option<String>>(4)?.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(serde_json::Value::Null),
                    sealed: r.get::<_, i64>(5)? == 1,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    pub fn records(&self, session: &str) -> Result<Vec<crate::Record>, AuditError> {
        let db = |e| AuditError::Db { path: self.path.display().to_string(), source: e };
        let mut st = self.conn.prepare("SELECT seq, session, kind, ts_ms, body, prev, hash FROM records WHERE session LIKE ?1 || '%' ORDER BY seq").map_err(db)?;
        let rows = st
            .query_map([session], |r| Ok(crate::Record { seq: r.get(0)?, session: r.get(1)?, kind: r.get(2)?, ts_ms: r.get(3)?, body: r.get(4)?, prev: r.get(5)?, hash: r.get(6)? }))
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }
}

pub(crate) fn key_path(db: &Path) -> PathBuf {
    db.with_extension("key")
}

pub(crate) fn head_path(db: &Path) -> PathBuf {
    db.with_extension("head")
}

/// The signing key lives next to the database, mode 0600, outside every sandbox (the state dir is in
/// @secrets, masked in sessions).
fn load_key(p: &Path) -> Result<SigningKey, String> {
    if let Ok(b) = std::fs::read(p) {
        let arr: [u8; 32] = b.as_slice().try_into().map_err(|_| format!("signing key {} is not 32 bytes", p.display()))?;
        return Ok(SigningKey::from_bytes(&arr));
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed)).map_err(|e| format!("random: {e}"))?;
    let tmp = p.with_extension("key.tmp");
    std::fs::write(&tmp, seed).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, p).map_err(|e| e.to_string())?;
    Ok(SigningKey::from_bytes(&seed))
}

pub(crate) fn public_key(db: &Path) -> Option<ed25519_dalek::VerifyingKey> {
    let b = std::fs::read(key_path(db)).ok()?;
    let arr: [u8; 32] = b.as_slice().try_into().ok()?;
    Some(SigningKey::from_bytes(&arr).verifying_key())
}
