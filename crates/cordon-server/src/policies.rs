//! Policies by agent identity: versioned (never changed in place, never removed), each version
//! signed by the server's key with who made it and when; and sessions that ran under an older
//! version while a newer one existed ("stale"), found when a version is added and when a session's
//! records arrive. SQL over the store's connection; the store's trait calls these.

use cordon_audit::served::ServedPolicy;
use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection, OptionalExtension};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policies (identity TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL, author TEXT NOT NULL, created_ms INTEGER NOT NULL, server_key TEXT NOT NULL, signature TEXT NOT NULL, PRIMARY KEY (identity, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stale (node TEXT NOT NULL, session TEXT NOT NULL, identity TEXT NOT NULL, ran_version INTEGER NOT NULL, newer_version INTEGER NOT NULL, marked_ms INTEGER NOT NULL, PRIMARY KEY (node, session)) WITHOUT ROWID;
";

/// One version of an identity's policy, without its text (lists).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyRow {
    pub identity: String,
    pub version: i64,
    pub sha256: String,
    pub author: String,
    pub created_ms: i64,
    /// Lists of identities: how many versions; history: 0.
    pub versions: i64,
    /// Sessions of this identity marked stale (lists), 0 in a history.
    pub stale: i64,
}

/// A session that ran under an older version of its identity's policy while a newer one existed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StaleRow {
    pub node: String,
    pub session: String,
    pub identity: String,
    pub ran_version: i64,
    pub newer_version: i64,
    pub marked_ms: i64,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
}

/// Adds the next version of `identity`'s policy (signed by `key`) and marks the sessions still
/// running under an older one. Returns the new version and how many sessions were marked.
pub fn put(
    c: &mut Connection,
    key: &SigningKey,
    identity: &str,
    text: &str,
    author: &str,
    now_ms: i64,
) -> rusqlite::Result<(ServedPolicy, usize)> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 =
        tx.query_row("SELECT coalesce(max(version), 0) + 1 FROM policies WHERE identity = ?1", [identity], |r| {
            r.get(0)
        })?;
    let p = ServedPolicy::sign(key, identity, version, text, author, now_ms);
    tx.execute(
        "INSERT INTO policies (identity, version, sha256, text, author, created_ms, server_key, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![p.identity, p.version, p.sha256, p.text, p.author, p.created_ms, p.server_key, p.signature],
    )?;
    let marked = mark_stale(&tx, None, None, Some(identity), now_ms)?;
    tx.commit()?;
    Ok((p, marked))
}

/// The newest version of `identity`'s policy.
pub fn newest(c: &Connection, identity: &str) -> rusqlite::Result<Option<ServedPolicy>> {
    c.query_row(
        "SELECT identity, version, sha256, text, author, created_ms, server_key, signature FROM policies WHERE identity = ?1 ORDER BY version DESC LIMIT 1",
        [identity],
        |r| {
            Ok(ServedPolicy {
                identity: r.get(0)?,
                version: r.get(1)?,
                sha256: r.get(2)?,
                text: r.get(3)?,
                author: r.get(4)?,
                created_ms: r.get(5)?,
                server_key: r.get(6)?,
                signature: r.get(7)?,
            })
        },
    )
    .optional()
}

/// Every identity with its newest version; or, given one, its versions newest first.
pub fn rows(c: &Connection, identity: Option<&str>) -> rusqlite::Result<Vec<PolicyRow>> {
    let q = match identity {
        None => "SELECT p.identity, p.version, p.sha256, p.author, p.created_ms,
                    (SELECT count(*) FROM policies v WHERE v.identity = p.identity),
                    (SELECT count(*) FROM stale s WHERE s.identity = p.identity)
                 FROM policies p WHERE p.version = (SELECT max(version) FROM policies m WHERE m.identity = p.identity)
                 ORDER BY p.identity",
        Some(_) => "SELECT identity, version, sha256, author, created_ms, 0, 0 FROM policies WHERE identity = ?1 ORDER BY version DESC",
    };
    let mut st = c.prepare(q)?;
    let map = |r: &rusqlite::Row| {
        Ok(PolicyRow {
            identity: r.get(0)?,
            version: r.get(1)?,
            sha256: r.get(2)?,
            author: r.get(3)?,
            created_ms: r.get(4)?,
            versions: r.get(5)?,
            stale: r.get(6)?,
        })
    };
    match identity {
        None => st.query_map([], map)?.collect(),
        Some(i) => st.query_map([i], map)?.collect(),
    }
}

/// Marks stale the sessions (of `node`, that `session`, of `identity`: each when given) whose start record names a
/// version of their identity's policy older than one made before they ended (or while they still
/// run). Times are the node's for the session and the server's for the version: a node whose
/// clock is off by more than a session's length can be marked wrongly either way (docs/server.md).
pub fn mark_stale(
    c: &Connection,
    node: Option<&str>,
    session: Option<&str>,
    identity: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT OR IGNORE INTO stale (node, session, identity, ran_version, newer_version, marked_ms)
         SELECT s.node, s.session, p.identity, json_extract(s.start, '$.policy.identity.version'), max(p.version), ?3
         FROM sessions s JOIN policies p ON p.identity = json_extract(s.start, '$.policy.identity.name')
         WHERE (?1 IS NULL OR s.node = ?1) AND (?4 IS NULL OR s.session = ?4) AND (?2 IS NULL OR p.identity = ?2)
           AND p.version > json_extract(s.start, '$.policy.identity.version')
           AND p.created_ms <= coalesce(s.ended_ms, ?3)
         GROUP BY s.node, s.session",
        params![node, identity, now_ms, session],
    )
}

pub fn stale(c: &Connection, limit: usize) -> rusqlite::Result<Vec<StaleRow>> {
    let mut st = c.prepare(
        "SELECT t.node, t.session, t.identity, t.ran_version, t.newer_version, t.marked_ms, s.started_ms, s.ended_ms
         FROM stale t JOIN sessions s ON s.node = t.node AND s.session = t.session
         ORDER BY t.marked_ms DESC, t.node, t.session LIMIT ?1",
    )?;
    let rows = st.query_map([limit as i64], |r| {
        Ok(StaleRow {
            node: r.get(0)?,
            session: r.get(1)?,
            identity: r.get(2)?,
            ran_version: r.get(3)?,
            newer_version: r.get(4)?,
            marked_ms: r.get(5)?,
            started_ms: r.get(6)?,
            ended_ms: r.get(7)?,
        })
    })?;
    rows.collect()
}
