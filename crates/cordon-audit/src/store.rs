//! The SQLite store: open (WAL), append records in batches, seal sessions, keep the signed head.
//!
//! Opening for writing refuses a log that is not in the state its signed head describes (records
//! missing, table gone, head deleted): writing on top would re-seal the damage and hide it.
//! Read-only commands open with [`Store::open_read_only`], which creates nothing.

use crate::chain::{canonical, hex, record_hash};
use crate::files::{
    absolute, check_owned, check_single_link, head_path, lock_path, open_lock, private_dirs, private_file, sidecar,
    tighten, write_atomic,
};
use crate::head::Head;
use crate::spool;
use ed25519_dalek::{Signer, SigningKey};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
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
    #[error("audit log {path} does not exist")]
    Missing { path: String },
    #[error("audit log {path} is not usable: {why}")]
    Damaged { path: String, why: String },
    #[error("no session matching `{prefix}` in {path}")]
    NoSession { prefix: String, path: String },
    #[error("`{prefix}` matches {} sessions in {path}: {}", candidates.len(), candidates.join(", "))]
    Ambiguous { prefix: String, path: String, candidates: Vec<String> },
}

/// How hard a commit is pushed to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsynced (the start record, the end and the seal): survives power loss.
    Full,
    /// WAL with synchronous=NORMAL: survives a crash of cordon; on power loss the last batches
    /// since a checkpoint may be lost (the chain stays verifiable). For high-rate sensor batches.
    Batch,
}

/// `$CORDON_AUDIT` if set (a relative path is taken from the working directory); else
/// `$XDG_STATE_HOME/cordon/audit.db` (or `~/.local/state/...`), or `/var/lib/cordon/audit.db` as root.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CORDON_AUDIT").filter(|p| !p.is_empty()).map(PathBuf::from) {
        return absolute(&p).unwrap_or(p);
    }
    standard_path()
}

/// The log's place when nothing chooses another: `$XDG_STATE_HOME/cordon/audit.db` (or
/// `~/.local/state/...`), or `/var/lib/cordon/audit.db` as root.
pub fn standard_path() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/cordon/audit.db");
    }
    let base = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/nonexistent".into())).join(".local/state")
    });
    base.join("cordon/audit.db")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

pub struct Store {
    conn: Connection,
    /// The head's lock file (`<log>.lock`), open for the Store's life, flocked while the head is
    /// written. Not the database file: closing any descriptor of the database drops every POSIX
    /// lock this process holds on it, SQLite's included — a second Store in one process (the
    /// session's audit writer beside its recorder) dropped first took the recorder's SHARED lock with
    /// it, another process's closing connection then took the recorder for gone, checkpointed and
    /// deleted the WAL under it, and the recorder's last commit (the session's end and seal) went
    /// to a deleted file (seen in CI: "the log ends at record 45 but its signed head names record
    /// 48"). None when read-only.
    head_lock: Option<std::fs::File>,
    path: PathBuf,
    key: Option<SigningKey>,
    imported: Vec<String>,
    /// A record this writer committed earlier (its session's start): every later write checks it is
    /// still in the log, so that a log cut short meanwhile is never sealed over.
    anchor: Option<(i64, Vec<u8>)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionRow {
    pub session: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub records: i64,
    pub summary: serde_json::Value,
    pub sealed: bool,
    /// The `end` record's body (exit code, duration, denials), Null while unfinished.
    pub end: serde_json::Value,
    /// How many detection rules fired.
    pub alerts: i64,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, session TEXT NOT NULL, kind TEXT NOT NULL, ts_ms INTEGER NOT NULL, body TEXT NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL);
     CREATE INDEX IF NOT EXISTS records_session ON records(session, seq);";

impl Store {
    /// Opens (creating if needed) the log for writing; imports waiting spool files.
    ///
    /// SQLite answers "database is locked" at once, without its busy timeout, to a connection that
    /// opens while the last other one closes and checkpoints the WAL (it holds the WAL's lock
    /// exclusively for that moment). Many sessions starting and ending on one log meet this: the
    /// open is retried for up to 5 s before it is an error.
    pub fn open(path: &Path) -> Result<Store, AuditError> {
        retry_busy(|| Store::open_once(path))
    }

    fn open_once(path: &Path) -> Result<Store, AuditError> {
        let path = absolute(path).map_err(|e| io(path, format!("cannot resolve the path: {e}")))?;
        if let Some(d) = path.parent() {
            private_dirs(d).map_err(|e| io(&path, format!("cannot create {}: {e}", d.display())))?;
        }
        // Another user's file in a shared directory, or one with a second name, is not ours to trust.
        check_owned(&path, "the database").map_err(|m| damaged(&path, &m))?;
        crate::birth::database(&path, SCHEMA).map_err(|m| io(&path, m))?;
        private_file(&path).map_err(|e| io(&path, format!("cannot create the database file: {e}")))?;
        let conn = Connection::open(&path).map_err(db(&path))?;
        let head_lock =
            open_lock(&lock_path(&path)).map_err(|e| io(&path, format!("cannot open its lock file: {e}")))?;
        // The busy timeout first: switching to WAL needs a lock that a concurrent first writer may hold.
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db(&path))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;").map_err(db(&path))?;
        // The last connection to close checkpoints the WAL into the database (two flushes). Leaving
        // the WAL in place instead made every later open replay it (measured: ~500 reads, more than
        // the flushes saved).
        create_table(&conn).map_err(db(&path))?.map_err(|why| damaged(&path, why))?;
        for s in ["-wal", "-shm"] {
            tighten(&sidecar(&path, s)).map_err(|e| io(&path, format!("cannot make {s} private: {e}")))?;
        }
        crate::birth::drop_second_names(&path);
        let key_files = [crate::files::key_path(&path), crate::birth::candidate_path(&path)];
        for f in [path.clone(), sidecar(&path, "-wal"), sidecar(&path, "-shm"), head_path(&path), lock_path(&path)]
            .into_iter()
            .chain(key_files)
        {
            check_owned(&f, "the log's file").and_then(|_| check_single_link(&f)).map_err(|m| damaged(&path, &m))?;
        }
        check_owned(&spool::dir(&path), "the spool directory").map_err(|m| damaged(&path, &m))?;
        let empty: bool =
            conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM records)", [], |r| r.get(0)).map_err(db(&path))?;
        let key = crate::birth::log_key(&path, &head_lock, empty).map_err(|e| match e {
            crate::birth::KeyError::Io(m) => io(&path, m),
            crate::birth::KeyError::Lost(m) => damaged(&path, &m),
        })?;
        let mut s = Store { conn, head_lock: Some(head_lock), path, key: Some(key), imported: vec![], anchor: None };
        s.check_head()?;
        s.imported = s.import_spool();
        Ok(s)
    }

    /// Opens an existing log for reading: creates nothing, fails naming the path if it is missing
    /// or not a cordon log.
    pub fn open_read_only(path: &Path) -> Result<Store, AuditError> {
        retry_busy(|| Store::open_read_only_once(path))
    }

    fn open_read_only_once(path: &Path) -> Result<Store, AuditError> {
        let path = absolute(path).map_err(|e| io(path, format!("cannot resolve the path: {e}")))?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(damaged(&path, "not a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AuditError::Missing { path: path.display().to_string() })
            }
            Err(e) => return Err(io(&path, e.to_string())),
        }
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(db(&path))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db(&path))?;
        if !table_exists(&conn).map_err(db(&path))? {
            return Err(damaged(
                &path,
                "no `records` table: not a cordon audit log, or damaged (`cordon audit verify` says more)",
            ));
        }
        Ok(Store { conn, head_lock: None, path, key: None, imported: vec![], anchor: None })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening imported from the recovery spool, one line each, for the user.
    pub fn imported(&self) -> &[String] {
        &self.imported
    }

    /// Later writes check that record `seq` still has `hash` (see the field).
    pub fn set_anchor(&mut self, seq: i64, hash: Vec<u8>) {
        self.anchor = Some((seq, hash));
    }

    /// Inside a write transaction: the anchor is still there.
    fn check_anchor(path: &Path, anchor: &Option<(i64, Vec<u8>)>, tx: &Transaction) -> Result<(), AuditError> {
        if let Some((seq, hash)) = anchor {
            let at: Option<Vec<u8>> = tx
                .query_row("SELECT hash FROM records WHERE seq = ?1", [seq], |r| r.get(0))
                .optional()
                .map_err(db(path))?;
            if at.as_ref() != Some(hash) {
                return Err(damaged(path, &format!("record {seq}, this session's own start, is no longer in the log as written: the log was cut short or changed while the session ran; nothing is chained onto it")));
            }
        }
        Ok(())
    }

    pub fn set_durability(&self, d: Durability) -> Result<(), AuditError> {
        let q = match d {
            Durability::Full => "PRAGMA synchronous=FULL",
            Durability::Batch => "PRAGMA synchronous=NORMAL",
        };
        self.conn.execute_batch(q).map_err(db(&self.path))
    }

    /// Appends records in one transaction (the unit of durability).
    pub fn append(
        &mut self,
        session: &str,
        items: &[(String, i64, serde_json::Value)],
    ) -> Result<(i64, Vec<u8>), AuditError> {
        let raw: Vec<(&str, i64, String)> = items.iter().map(|(k, t, b)| (k.as_str(), *t, canonical(b))).collect();
        self.append_raw(session, &raw)
    }

    /// Appends records whose bodies are already serialized JSON (compact; the chain covers the
    /// bytes as given). For high-rate producers that serialize once for several outputs.
    pub fn append_raw<K: AsRef<str>>(
        &mut self,
        session: &str,
        items: &[(K, i64, String)],
    ) -> Result<(i64, Vec<u8>), AuditError> {
        let path = self.path.clone();
        // IMMEDIATE: take the write lock before reading the tail, so concurrent sessions appending
        // to one log serialize instead of racing for the same sequence number.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db(&path))?;
        Self::check_anchor(&path, &self.anchor, &tx)?;
        let tail = append_in(&tx, session, items).map_err(db(&path))?;
        tx.commit().map_err(db(&path))?;
        Ok(tail)
    }

    /// Appends the last records of a session and seals it in one transaction (one fsync), then
    /// writes the head file.
    pub fn finish(
        &mut self,
        session: &str,
        items: &[(String, i64, serde_json::Value)],
        ts_ms: i64,
    ) -> Result<(), AuditError> {
        let path = self.path.clone();
        let key = self.key.clone().ok_or_else(|| io(&path, "opened read-only".into()))?;
        let raw: Vec<(&str, i64, String)> = items.iter().map(|(k, t, b)| (k.as_str(), *t, canonical(b))).collect();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db(&path))?;
        Self::check_anchor(&path, &self.anchor, &tx)?;
        append_in(&tx, session, &raw).map_err(db(&path))?;
        let (seq, h) = seal_in(&tx, &key, session, ts_ms).map_err(db(&path))?;
        tx.commit().map_err(db(&path))?;
        self.write_head(seq, &h)
    }

    /// Seals a session: a record carrying an Ed25519 signature over the chain head, then the signed
    /// head file next to the database (written after the commit, so it never runs ahead of it).
    pub fn seal(&mut self, session: &str, ts_ms: i64) -> Result<(), AuditError> {
        let path = self.path.clone();
        let key = self.key.clone().ok_or_else(|| io(&path, "opened read-only".into()))?;
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db(&path))?;
        let (seq, h) = seal_in(&tx, &key, session, ts_ms).map_err(db(&path))?;
        tx.commit().map_err(db(&path))?;
        self.write_head(seq, &h)
    }

    /// Writes the head unless a newer one is there: concurrent sessions seal in one order and may
    /// finish writing in another; the head never moves backwards (a lock on the log's lock file
    /// orders the writers).
    fn write_head(&self, seq: i64, hash: &[u8]) -> Result<(), AuditError> {
        let key = self.key.as_ref().ok_or_else(|| io(&self.path, "opened read-only".into()))?;
        let hp = head_path(&self.path);
        let f = self.head_lock.as_ref().ok_or_else(|| io(&self.path, "opened read-only".into()))?;
        // Unlocked before returning; the descriptor stays open for the Store's life.
        use std::os::fd::AsRawFd;
        #[allow(deprecated)]
        nix::fcntl::flock(f.as_raw_fd(), nix::fcntl::FlockArg::LockExclusive)
            .map_err(|e| io(&hp, format!("cannot lock: {e}")))?;
        let r = (|| {
            if Head::read(&hp).ok().flatten().is_some_and(|h| h.seq >= seq && seq > 0) {
                return Ok(());
            }
            if seq == 0 && hp.exists() {
                return Ok(());
            }
            write_atomic(&hp, Head::sign(key, seq, hash).to_line().as_bytes()).map_err(|e| io(&hp, e.to_string()))
        })();
        #[allow(deprecated)]
        let _ = nix::fcntl::flock(f.as_raw_fd(), nix::fcntl::FlockArg::Unlock);
        r
    }

    /// The signed head of this log, as `cordon audit head` prints it.
    pub fn head(&self) -> Result<Option<Head>, AuditError> {
        Head::read(&head_path(&self.path)).map_err(|m| io(&self.path, m))
    }

    /// Before anything is written: the log must be what its signed head says it was.
    fn check_head(&self) -> Result<(), AuditError> {
        let head = Head::read(&head_path(&self.path)).map_err(|m| damaged(&self.path, &m))?;
        let sealed: i64 = self
            .conn
            .query_row("SELECT count(*) FROM records WHERE kind = 'seal'", [], |r| r.get(0))
            .map_err(db(&self.path))?;
        let Some(head) = head else {
            if sealed > 0 {
                return Err(damaged(&self.path, &format!("its signed head file {} is missing although {sealed} session(s) were sealed: records at the end may have been deleted. cordon will not write to it; `cordon audit verify` says more; record elsewhere with --audit NEWPATH", head_path(&self.path).display())));
            }
            // A new log gets its head (record 0) before its first record: from then on a missing
            // head file is always a deletion.
            return self.write_head(0, &[0u8; 32]);
        };
        let key = self.key.as_ref().map(|k| k.verifying_key());
        if !key.is_some_and(|k| head.signed_by(&k)) {
            return Err(damaged(&self.path, "its head file is not signed by this log's key; cordon will not write to it (`cordon audit verify` says more)"));
        }
        let at: Option<Vec<u8>> = if head.seq == 0 {
            Some(vec![0u8; 32])
        } else {
            self.conn
                .query_row("SELECT hash FROM records WHERE seq = ?1", [head.seq], |r| r.get(0))
                .optional()
                .map_err(db(&self.path))?
        };
        if at.map(|h| hex(&h)) != Some(head.hash.clone()) {
            return Err(damaged(&self.path, &format!("record {} is not the one its signed head names (records deleted or changed); cordon will not write to it. `cordon audit verify` says more; record elsewhere with --audit NEWPATH", head.seq)));
        }
        Ok(())
    }

    /// Chains in every readable spool file (each once: the `recovered` record carries its id).
    fn import_spool(&mut self) -> Vec<String> {
        let mut said = vec![];
        for p in spool::pending(&self.path) {
            if let Some(problem) = p.problem {
                said.push(format!("spool file kept, not imported: {problem}"));
                continue;
            }
            match self.import_one(&p.file) {
                Ok(Imported::Records(n)) => said.push(format!(
                    "imported {n} record(s) of session {} from the recovery spool {}",
                    p.session,
                    p.file.display()
                )),
                Ok(Imported::Before) => {
                    said.push(format!("spool file {} was already imported; removed", p.file.display()))
                }
                // Another cordon took it meanwhile.
                Ok(Imported::Gone) => {}
                Err(e) => said.push(format!("spool file {} kept, not imported: {e}", p.file.display())),
            }
        }
        said
    }

    fn import_one(&mut self, file: &Path) -> Result<Imported, String> {
        let key = self.key.clone().ok_or("opened read-only")?;
        let e = |x: rusqlite::Error| x.to_string();
        // Under the write lock: two cordons importing at once see the file in turn.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(e)?;
        if !file.exists() {
            return Ok(Imported::Gone);
        }
        let (h, recs) = spool::read(&self.path, file)?;
        let done: i64 = tx
            .query_row(
                "SELECT count(*) FROM records WHERE kind = 'recovered' AND session = ?1 AND json_extract(body, '$.spool') = ?2",
                params![h.session, h.id],
                |r| r.get(0),
            )
            .map_err(e)?;
        if done > 0 {
            drop(tx);
            remove_spool(file)?;
            return Ok(Imported::Before);
        }
        // A spool continues a session that started in this log and was not sealed.
        let (starts, seals): (i64, i64) = tx
            .query_row(
                "SELECT count(*) FILTER (WHERE kind = 'start'), count(*) FILTER (WHERE kind = 'seal') FROM records WHERE session = ?1",
                [&h.session],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(e)?;
        if starts == 0 {
            return Err(format!("session {} has no start record in this log", h.session));
        }
        if seals > 0 {
            return Err(format!("session {} is already sealed", h.session));
        }
        let note =
            canonical(&serde_json::json!({"spool": h.id, "file": file, "reason": h.reason, "records": recs.len()}));
        let mut items: Vec<(&str, i64, String)> = vec![(cordon_schema::RecordKind::Recovered.as_str(), now_ms(), note)];
        items.extend(recs.iter().map(|r| (r.kind.as_str(), r.ts_ms, r.body.clone())));
        append_in(&tx, &h.session, &items).map_err(e)?;
        let sealed = if h.seal { Some(seal_in(&tx, &key, &h.session, now_ms()).map_err(e)?) } else { None };
        tx.commit().map_err(e)?;
        if let Some((seq, hash)) = sealed {
            self.write_head(seq, &hash).map_err(|e| e.to_string())?;
        }
        remove_spool(file).map_err(|e| format!("imported, but could not remove it: {e}"))?;
        Ok(Imported::Records(recs.len()))
    }

    pub fn sessions(&self) -> Result<Vec<SessionRow>, AuditError> {
        let mut st = self
            .conn
            .prepare("SELECT session, MIN(ts_ms), MAX(CASE WHEN kind='end' THEN ts_ms END), COUNT(*), MAX(CASE WHEN kind='start' THEN body END), MAX(kind='seal'), MAX(CASE WHEN kind='end' THEN body END), SUM(kind='alert') FROM records GROUP BY session ORDER BY MIN(seq)")
            .map_err(db(&self.path))?;
        let rows = st
            .query_map([], |r| {
                Ok(SessionRow {
                    session: r.get(0)?,
                    started_ms: r.get(1)?,
                    ended_ms: r.get(2)?,
                    records: r.get(3)?,
                    summary: r
                        .get::<_, Option<String>>(4)?
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or(serde_json::Value::Null),
                    sealed: r.get::<_, i64>(5)? == 1,
                    end: r
                        .get::<_, Option<String>>(6)?
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or(serde_json::Value::Null),
                    alerts: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
                })
            })
            .map_err(db(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db(&self.path))
    }

    /// The one session whose id is `prefix` or starts with it (compared literally). An empty
    /// prefix, no match or several matches are errors; several name the candidates.
    pub fn resolve_session(&self, prefix: &str) -> Result<String, AuditError> {
        let none = || AuditError::NoSession { prefix: prefix.into(), path: self.path.display().to_string() };
        if prefix.is_empty() {
            return Err(none());
        }
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT session FROM records WHERE substr(session, 1, length(?1)) = ?1 ORDER BY session")
            .map_err(db(&self.path))?;
        let found: Vec<String> = st
            .query_map([prefix], |r| r.get(0))
            .map_err(db(&self.path))?
            .collect::<Result<_, _>>()
            .map_err(db(&self.path))?;
        if found.iter().any(|s| s == prefix) {
            return Ok(prefix.to_string());
        }
        match found.len() {
            0 => Err(none()),
            1 => Ok(found.into_iter().next().unwrap_or_default()),
            _ => Err(AuditError::Ambiguous {
                prefix: prefix.into(),
                path: self.path.display().to_string(),
                candidates: found,
            }),
        }
    }

    /// Up to `limit` records after record `after`, in the log's order: what a shipper sends next.
    pub fn records_after(&self, after: i64, limit: usize) -> Result<Vec<crate::Record>, AuditError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT seq, session, kind, ts_ms, body, prev, hash FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(db(&self.path))?;
        let rows = st.query_map(params![after, limit as i64], record_row).map_err(db(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db(&self.path))
    }

    /// The hash of record `seq`, if the log holds it.
    pub fn hash_at(&self, seq: i64) -> Result<Option<Vec<u8>>, AuditError> {
        self.conn
            .query_row("SELECT hash FROM records WHERE seq = ?1", [seq], |r| r.get(0))
            .optional()
            .map_err(db(&self.path))
    }

    /// Every record of one session (its exact id; see [`Store::resolve_session`]).
    pub fn records(&self, session: &str) -> Result<Vec<crate::Record>, AuditError> {
        let mut st = self
            .conn
            .prepare("SELECT seq, session, kind, ts_ms, body, prev, hash FROM records WHERE session = ?1 ORDER BY seq")
            .map_err(db(&self.path))?;
        let rows = st.query_map([session], record_row).map_err(db(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db(&self.path))
    }
}

/// A row of `SELECT seq, session, kind, ts_ms, body, prev, hash`.
fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<crate::Record> {
    Ok(crate::Record {
        seq: r.get(0)?,
        session: r.get(1)?,
        kind: r.get(2)?,
        ts_ms: r.get(3)?,
        body: r.get(4)?,
        prev: r.get(5)?,
        hash: r.get(6)?,
    })
}

/// Creates the table of a new log, under the write lock (many sessions may open a new log at once).
/// A log whose table is gone is refused, not re-created: `user_version` 1 marks a log that had one.
fn create_table(conn: &Connection) -> Result<Result<(), &'static str>, rusqlite::Error> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let res = (|| {
        if table_exists(conn)? {
            return Ok(Ok(()));
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != 0 {
            return Ok(Err("the database has no `records` table (dropped or renamed?); cordon will not write to it. `cordon audit verify` says more; record elsewhere with --audit NEWPATH"));
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch("PRAGMA user_version = 1")?;
        Ok(Ok(()))
    })();
    match &res {
        Ok(_) => conn.execute_batch("COMMIT")?,
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    res
}

/// What importing one spool file did.
enum Imported {
    Records(usize),
    /// Its records were chained before (its removal had not happened).
    Before,
    /// Another cordon imported it meanwhile.
    Gone,
}

fn remove_spool(file: &Path) -> Result<(), String> {
    match spool::remove(file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
        _ => Ok(()),
    }
}

fn table_exists(conn: &Connection) -> Result<bool, rusqlite::Error> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'records'", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
}

fn tail(tx: &Transaction) -> Result<(i64, Vec<u8>), rusqlite::Error> {
    Ok(tx
        .query_row("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .optional()?
        .unwrap_or((0, vec![0u8; 32])))
}

fn append_in<K: AsRef<str>>(
    tx: &Transaction,
    session: &str,
    items: &[(K, i64, String)],
) -> Result<(i64, Vec<u8>), rusqlite::Error> {
    let (mut seq, mut prev) = tail(tx)?;
    let mut st = tx.prepare_cached(
        "INSERT INTO records (seq, session, kind, ts_ms, body, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (kind, ts, b) in items {
        let kind = kind.as_ref();
        seq += 1;
        let h = record_hash(&prev, seq, session, kind, *ts, b);
        st.execute(params![seq, session, kind, ts, b, prev, h])?;
        prev = h;
    }
    Ok((seq, prev))
}

fn seal_in(tx: &Transaction, key: &SigningKey, session: &str, ts_ms: i64) -> Result<(i64, Vec<u8>), rusqlite::Error> {
    let (seq, head) = tail(tx)?;
    let msg = format!("cordon-seal-v1 {session} {} {}", seq + 1, hex(&head));
    let sig = key.sign(msg.as_bytes());
    let body = canonical(
        &serde_json::json!({"covers_seq": seq, "head": hex(&head), "signature": hex(&sig.to_bytes()), "public_key": hex(&key.verifying_key().to_bytes())}),
    );
    let h = record_hash(&head, seq + 1, session, cordon_schema::RecordKind::Seal.as_str(), ts_ms, &body);
    tx.execute(
        "INSERT INTO records (seq, session, kind, ts_ms, body, prev, hash) VALUES (?1, ?2, 'seal', ?3, ?4, ?5, ?6)",
        params![seq + 1, session, ts_ms, body, head, h],
    )?;
    Ok((seq + 1, h))
}

/// Retries an open that SQLite refused as busy without waiting (see [`Store::open`]), for up to 5 s.
fn retry_busy(mut open: impl FnMut() -> Result<Store, AuditError>) -> Result<Store, AuditError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match open() {
            Err(AuditError::Db { source, .. })
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

fn db(path: &Path) -> impl Fn(rusqlite::Error) -> AuditError + '_ {
    move |e| AuditError::Db { path: path.display().to_string(), source: e }
}

fn io(path: &Path, message: String) -> AuditError {
    AuditError::Io { path: path.display().to_string(), message }
}

fn damaged(path: &Path, why: &str) -> AuditError {
    AuditError::Damaged { path: path.display().to_string(), why: why.to_string() }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
