//! PgStore's writes: the schema, a batch's ingest, a refusal, a policy version. Each in one
//! transaction that first takes an advisory lock on what it changes, so that several servers on
//! one database serialize per node (ingest) and per identity (policy versions).

use crate::ingest::{self, ChainView, Checked, Verdict};
use crate::store::REFUSALS_KEPT;
use cordon_audit::served::ServedPolicy;
use ed25519_dalek::SigningKey;
use postgres::{Client, Error, Transaction};
use std::cell::RefCell;

/// Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)).
const LOCK_SCHEMA: i32 = 0x636f_0001;
const LOCK_NODE: i32 = 0x636f_0002;
const LOCK_IDENTITY: i32 = 0x636f_0003;

/// SQLite's schema in PostgreSQL's types, plus a session's policy identity and devbox claim taken
/// from its start record when it arrives (the payload stays text, exactly as hashed).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (sha256 BYTEA PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('node', 'viewer', 'admin')), name TEXT NOT NULL, created_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, public_key TEXT NOT NULL, first_seen_ms BIGINT NOT NULL, last_seen_ms BIGINT NOT NULL, tail_seq BIGINT NOT NULL, tail_hash BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS records (node TEXT NOT NULL, seq BIGINT NOT NULL, session TEXT NOT NULL, kind TEXT NOT NULL, ts_ms BIGINT NOT NULL, payload TEXT NOT NULL, prev BYTEA NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (node, seq));
CREATE INDEX IF NOT EXISTS records_session ON records (session, node, seq);
CREATE INDEX IF NOT EXISTS records_alerts ON records (ts_ms) WHERE kind = 'alert';
CREATE TABLE IF NOT EXISTS sessions (node TEXT NOT NULL, session TEXT NOT NULL, started_ms BIGINT NOT NULL, ended_ms BIGINT, records BIGINT NOT NULL DEFAULT 0, start TEXT, outcome TEXT, exit_code BIGINT, denials BIGINT NOT NULL DEFAULT 0, alerts BIGINT NOT NULL DEFAULT 0, sealed BOOLEAN NOT NULL DEFAULT false,
  policy_identity TEXT, policy_version BIGINT, devbox BOOLEAN NOT NULL DEFAULT false, devbox_snapshot TEXT, devbox_latency_ms DOUBLE PRECISION, devbox_from_pool BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY (node, session));
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS devbox_pool_size BIGINT;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS devbox_pool_ready BIGINT;
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_ms);
CREATE INDEX IF NOT EXISTS sessions_devbox ON sessions (started_ms) WHERE devbox;
CREATE TABLE IF NOT EXISTS refusals (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts_ms BIGINT NOT NULL, node TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, first_seq BIGINT, last_seq BIGINT, records BIGINT NOT NULL, sessions TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS refusals_node ON refusals (node, id);
CREATE TABLE IF NOT EXISTS refusal_counts (node TEXT NOT NULL, reason TEXT NOT NULL, count BIGINT NOT NULL, first_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL, PRIMARY KEY (node, reason));
CREATE TABLE IF NOT EXISTS devbox_pools (node TEXT NOT NULL, snapshot TEXT NOT NULL, seq BIGINT NOT NULL, size BIGINT NOT NULL, ready BIGINT NOT NULL, PRIMARY KEY (node, snapshot));
CREATE TABLE IF NOT EXISTS policies (identity TEXT NOT NULL, version BIGINT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL, author TEXT NOT NULL, created_ms BIGINT NOT NULL, server_key TEXT NOT NULL, signature TEXT NOT NULL, PRIMARY KEY (identity, version));
CREATE TABLE IF NOT EXISTS stale (node TEXT NOT NULL, session TEXT NOT NULL, identity TEXT NOT NULL, ran_version BIGINT NOT NULL, newer_version BIGINT NOT NULL, marked_ms BIGINT NOT NULL, PRIMARY KEY (node, session));
";

/// Creates what is missing, one server at a time (two servers starting at once would otherwise
/// race in CREATE ... IF NOT EXISTS).
pub fn create_schema(c: &mut Client) -> Result<(), Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_SCHEMA])?;
    tx.batch_execute(SCHEMA)?;
    tx.commit()
}

struct TxView<'a, 'b> {
    tx: RefCell<&'a mut Transaction<'b>>,
    node: &'a str,
}

impl ChainView for TxView<'_, '_> {
    type Error = Error;
    fn pinned_key(&self) -> Result<Option<String>, Error> {
        Ok(self
            .tx
            .borrow_mut()
            .query_opt("SELECT public_key FROM nodes WHERE name = $1", &[&self.node])?
            .map(|r| r.get(0)))
    }
    fn tail(&self) -> Result<(i64, Vec<u8>), Error> {
        let row =
            self.tx.borrow_mut().query_opt("SELECT tail_seq, tail_hash FROM nodes WHERE name = $1", &[&self.node])?;
        Ok(row.map(|r| (r.get(0), r.get(1))).unwrap_or((0, vec![0u8; 32])))
    }
    fn hash_at(&self, seq: i64) -> Result<Option<Vec<u8>>, Error> {
        let row = self
            .tx
            .borrow_mut()
            .query_opt("SELECT hash FROM records WHERE node = $1 AND seq = $2", &[&self.node, &seq])?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// Judges and stores a batch with the node's chain locked: another server's ingest of the same
/// node waits here until this one commits, then judges against what this one stored.
pub fn ingest(c: &mut Client, batch: &Checked, now_ms: i64) -> Result<Verdict, Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&LOCK_NODE, &batch.node])?;
    let verdict = ingest::judge(&TxView { tx: RefCell::new(&mut tx), node: &batch.node }, batch)?;
    match &verdict {
        Verdict::Accepted(a) => {
            store_new(&mut tx, batch, a.new_from, now_ms)?;
            let started: std::collections::BTreeSet<&str> =
                batch.records[a.new_from..].iter().filter(|r| r.kind == "start").map(|r| r.session.as_str()).collect();
            // A policy version added meanwhile (this server or another) would not see these
            // sessions, nor they it: the identities they ran under are locked first, as adding a
            // version locks its identity (node lock, then identities in order: no cycle).
            let started: Vec<&str> = started.into_iter().collect();
            let ids: std::collections::BTreeSet<String> = tx
                .query(
                    "SELECT DISTINCT policy_identity FROM sessions WHERE node = $1 AND session = ANY($2) AND policy_identity IS NOT NULL",
                    &[&batch.node, &started],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for id in &ids {
                tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&LOCK_IDENTITY, id])?;
            }
            for s in started {
                mark_stale(&mut tx, Some(&batch.node), Some(s), None, now_ms)?;
            }
            tx.commit()?;
        }
        Verdict::Refused(r) => {
            tx.rollback()?;
            record_refusal(c, batch, r.reason, &r.detail, now_ms)?;
        }
    }
    Ok(verdict)
}

/// The records from `from` on, in one statement (arrays unnested), the node's tail moved, each
/// session's summary kept.
fn store_new(tx: &mut Transaction, b: &Checked, from: usize, now_ms: i64) -> Result<(), Error> {
    let new = &b.records[from..];
    let (tail_seq, tail_hash) = match new.last() {
        Some(last) => (Some(last.seq), Some(last.hash.clone())),
        None => (None, None),
    };
    tx.execute(
        "INSERT INTO nodes (name, public_key, first_seen_ms, last_seen_ms, tail_seq, tail_hash) VALUES ($1, $2, $3, $3, COALESCE($4::bigint, 0), COALESCE($5::bytea, decode(repeat('00', 32), 'hex')))
         ON CONFLICT (name) DO UPDATE SET last_seen_ms = $3, tail_seq = COALESCE($4, nodes.tail_seq), tail_hash = COALESCE($5, nodes.tail_hash)",
        &[&b.node, &b.public_key_hex, &now_ms, &tail_seq, &tail_hash],
    )?;
    let col = |f: fn(&cordon_audit::Record) -> i64| new.iter().map(f).collect::<Vec<i64>>();
    let text = |f: fn(&cordon_audit::Record) -> &str| new.iter().map(f).collect::<Vec<&str>>();
    let bytes = |f: fn(&cordon_audit::Record) -> &[u8]| new.iter().map(f).collect::<Vec<&[u8]>>();
    tx.execute(
        "INSERT INTO records (node, seq, session, kind, ts_ms, payload, prev, hash)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bytea[], $8::bytea[])",
        &[
            &b.node,
            &col(|r| r.seq),
            &text(|r| &r.session),
            &text(|r| &r.kind),
            &col(|r| r.ts_ms),
            &text(|r| &r.body),
            &bytes(|r| &r.prev),
            &bytes(|r| &r.hash),
        ],
    )?;
    // One row per session of the batch, made before its records' own updates (start, end, ...).
    let mut counts: Vec<(&str, i64, i64)> = vec![];
    for r in new {
        match counts.iter_mut().find(|c| c.0 == r.session) {
            Some(c) => c.2 += 1,
            None => counts.push((&r.session, r.ts_ms, 1)),
        }
    }
    let sess = tx.prepare(
        "INSERT INTO sessions (node, session, started_ms, records) VALUES ($1, $2, $3, $4) ON CONFLICT (node, session) DO UPDATE SET records = sessions.records + $4",
    )?;
    for (session, first_ms, n) in &counts {
        tx.execute(&sess, &[&b.node, session, first_ms, n])?;
    }
    for r in new {
        summarize(tx, &b.node, r)?;
    }
    Ok(())
}

/// A claim's pool, unless a later claim (by chain `seq`) of the same pool is there (as SQLite's).
const POOL_UPSERT: &str = "INSERT INTO devbox_pools (node, snapshot, seq, size, ready) VALUES ($1, $2, $3, $4, $5)
 ON CONFLICT (node, snapshot) DO UPDATE SET seq = excluded.seq, size = excluded.size, ready = excluded.ready WHERE excluded.seq > devbox_pools.seq";

/// A record's effect on its session's summary (as the SQLite store's `store_new`).
fn summarize(tx: &mut Transaction, node: &str, r: &cordon_audit::Record) -> Result<(), Error> {
    let v = || serde_json::from_str::<serde_json::Value>(&r.body).unwrap_or_default();
    let key: [&(dyn postgres::types::ToSql + Sync); 2] = [&node, &r.session];
    match r.kind.as_str() {
        "start" => {
            let s = v();
            let id = &s["policy"]["identity"];
            let d = &s["devbox"];
            let from_pool = d["from_pool"].as_bool().unwrap_or(d["from_pool"].as_i64().unwrap_or(0) != 0);
            tx.execute(
                "UPDATE sessions SET start = $3, started_ms = $4, policy_identity = $5, policy_version = $6, devbox = $7, devbox_snapshot = $8, devbox_latency_ms = $9, devbox_from_pool = $10, devbox_pool_size = $11, devbox_pool_ready = $12 WHERE node = $1 AND session = $2",
                &[&node, &r.session, &r.body, &r.ts_ms, &id["name"].as_str(), &id["version"].as_i64(), &d.is_object(), &d["snapshot"].as_str(), &d["latency_ms"].as_f64(), &from_pool, &d["pool_size"].as_i64(), &d["pool_ready"].as_i64()],
            )?;
            if let Some((snapshot, size, ready)) = crate::tally::pool_of(&s) {
                let (size, ready) = (size.min(i64::MAX as u64) as i64, ready.min(i64::MAX as u64) as i64);
                tx.execute(POOL_UPSERT, &[&node, &snapshot, &r.seq, &size, &ready])?;
            }
        }
        "end" => {
            let e = v();
            tx.execute(
                "UPDATE sessions SET ended_ms = $3, outcome = $4, exit_code = $5, denials = denials + $6 WHERE node = $1 AND session = $2",
                &[&node, &r.session, &r.ts_ms, &ingest::outcome(&e), &e["exit_code"].as_i64(), &e["denials_total"].as_i64().unwrap_or(0)],
            )?;
        }
        "sensor.summary" => {
            tx.execute(
                "UPDATE sessions SET denials = denials + $3 WHERE node = $1 AND session = $2",
                &[&node, &r.session, &v()["denials_total"].as_i64().unwrap_or(0)],
            )?;
        }
        "alert" => {
            tx.execute("UPDATE sessions SET alerts = alerts + 1 WHERE node = $1 AND session = $2", &key)?;
        }
        "seal" => {
            tx.execute("UPDATE sessions SET sealed = true WHERE node = $1 AND session = $2", &key)?;
        }
        _ => {}
    }
    Ok(())
}

/// Counts a refused batch and keeps its detail (the node's newest [`REFUSALS_KEPT`]).
pub fn record_refusal(c: &mut Client, batch: &Checked, reason: &str, detail: &str, now_ms: i64) -> Result<(), Error> {
    let mut tx = c.transaction()?;
    tx.execute(
        "INSERT INTO refusal_counts (node, reason, count, first_ms, last_ms) VALUES ($1, $2, 1, $3, $3)
         ON CONFLICT (node, reason) DO UPDATE SET count = refusal_counts.count + 1, last_ms = $3",
        &[&batch.node, &reason, &now_ms],
    )?;
    let named = crate::store::refusal_sessions(batch);
    tx.execute(
        "INSERT INTO refusals (ts_ms, node, reason, detail, first_seq, last_seq, records, sessions) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &now_ms,
            &batch.node,
            &reason,
            &detail,
            &batch.records.first().map(|r| r.seq),
            &batch.records.last().map(|r| r.seq),
            &(batch.records.len() as i64),
            &named,
        ],
    )?;
    tx.execute(
        "DELETE FROM refusals WHERE node = $1 AND id <= (SELECT id FROM refusals WHERE node = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        &[&batch.node, &REFUSALS_KEPT],
    )?;
    tx.commit()
}

/// The identity's next version, with its versions locked (two admins on two servers get two
/// versions, never one twice), and the sessions it makes stale.
pub fn put_policy(
    c: &mut Client,
    key: &SigningKey,
    identity: &str,
    text: &str,
    author: &str,
    now_ms: i64,
) -> Result<(ServedPolicy, usize), Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&LOCK_IDENTITY, &identity])?;
    let version: i64 =
        tx.query_one("SELECT coalesce(max(version), 0) + 1 FROM policies WHERE identity = $1", &[&identity])?.get(0);
    let p = ServedPolicy::sign(key, identity, version, text, author, now_ms);
    tx.execute(
        "INSERT INTO policies (identity, version, sha256, text, author, created_ms, server_key, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[&p.identity, &p.version, &p.sha256, &p.text, &p.author, &p.created_ms, &p.server_key, &p.signature],
    )?;
    let marked = mark_stale(&mut tx, None, None, Some(identity), now_ms)?;
    tx.commit()?;
    Ok((p, marked))
}

/// policies.rs's `mark_stale` over the identity and version the start record named.
fn mark_stale(
    tx: &mut Transaction,
    node: Option<&str>,
    session: Option<&str>,
    identity: Option<&str>,
    now_ms: i64,
) -> Result<usize, Error> {
    let n = tx.execute(
        "INSERT INTO stale (node, session, identity, ran_version, newer_version, marked_ms)
         SELECT s.node, s.session, p.identity, s.policy_version, max(p.version), $3
         FROM sessions s JOIN policies p ON p.identity = s.policy_identity
         WHERE ($1::text IS NULL OR s.node = $1) AND ($4::text IS NULL OR s.session = $4) AND ($2::text IS NULL OR p.identity = $2)
           AND p.version > s.policy_version
           AND p.created_ms <= coalesce(s.ended_ms, $3)
         GROUP BY s.node, s.session, p.identity, s.policy_version
         ON CONFLICT (node, session) DO NOTHING",
        &[&node, &identity, &now_ms, &session],
    )?;
    Ok(n as usize)
}
