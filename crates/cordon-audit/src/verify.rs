//! `cordon audit verify`: recomputes the chain, checks every seal and the signed head file (and,
//! when given, a head anchored elsewhere), and names the first bad record. A session that started
//! and never sealed is reported as unfinished. A log that cannot be read is never "ok".

use crate::chain::{hex, record_hash};
use crate::files::head_path;
use crate::head::{sig, Head};
use crate::spool::{self, Pending};
use cordon_schema::RecordKind;
use ed25519_dalek::{Verifier, VerifyingKey};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    pub seq: i64,
    pub what: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    pub records: i64,
    pub sessions: usize,
    pub sealed: usize,
    pub unfinished: Vec<String>,
    pub first_bad: Option<Problem>,
    /// The log could not be read (missing, not a database, table gone): nothing was verified.
    pub unreadable: Option<String>,
    pub head_seq: Option<i64>,
    /// The anchored head given with `--expect-head` was found in the log as signed.
    pub anchor_matches: Option<bool>,
    /// Records waiting in the recovery spool (not yet in the chain).
    pub pending: Vec<Pending>,
}

impl VerifyReport {
    /// Everything was read and holds (a spool file that cannot be read is evidence unread too).
    pub fn ok(&self) -> bool {
        self.first_bad.is_none() && self.unreadable.is_none() && self.pending.iter().all(|p| p.problem.is_none())
    }

    fn bad(&mut self, seq: i64, what: String) {
        if self.first_bad.is_none() {
            self.first_bad = Some(Problem { seq, what });
        }
    }
}

pub fn verify(path: &Path) -> Result<VerifyReport, String> {
    verify_with(path, None)
}

/// Verifies the log at `path`; `expect` is a head kept elsewhere (`cordon audit head` output).
pub fn verify_with(path: &Path, expect: Option<&Head>) -> Result<VerifyReport, String> {
    let mut rep = VerifyReport { pending: spool::pending(path), ..Default::default() };
    // The key before the head: a new log's writer names its key after writing head 0 (birth.rs),
    // so a key seen here had its head written before it.
    let key_exists = crate::files::key_path(path).exists();
    let key = crate::key::public_key(path);
    let head = Head::read(&head_path(path));
    let size = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Ok(unreadable(rep, format!("{} is not a regular file", path.display()))),
        Err(e) => return Ok(unreadable(rep, format!("cannot read {}: {e}", path.display()))),
    };
    let conn = match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(e) => return Ok(unreadable(rep, format!("cannot open {}: {e}", path.display()))),
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
    let has_table =
        match conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'records'", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(n) => n > 0,
            Err(e) => return Ok(unreadable(rep, format!("{} is not a readable SQLite database: {e}", path.display()))),
        };
    let named = match &head {
        Ok(Some(h)) if h.seq > 0 => format!("; its signed head names record {}", h.seq),
        _ => String::new(),
    };
    // A log is born with its head (record 0) and, right after, its key: a key without a head means
    // the head was deleted, whatever the database holds.
    if !has_table {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap_or(0);
        // Only a log whose first writer was killed before it made its table (and its key) is empty.
        if (size == 0 || version == 0) && named.is_empty() && !key_exists && expect.is_none() {
            return Ok(rep);
        }
        let why = if version == 0 && size > 0 && named.is_empty() {
            " (never created, or dropped)"
        } else {
            " (dropped or renamed)"
        };
        return Ok(unreadable(rep, format!("{} has no `records` table{why}{named}", path.display())));
    }
    // A candidate key renamed into place since the key was looked for is read as the key.
    let key = key.or_else(|e| {
        waiting_key(&conn, path, &head, key_exists).or_else(|| crate::key::public_key(path).ok()).ok_or(e)
    });
    if let Err(m) = chain(&conn, key.as_ref().ok(), &mut rep) {
        return Ok(unreadable(rep, format!("cannot read the records of {}: {m}{named}", path.display())));
    }
    check_head(&conn, path, head, key.as_ref().ok(), key_exists, &mut rep);
    if let Some(anchor) = expect {
        check_anchor(&conn, anchor, key.as_ref().ok(), &mut rep);
    }
    if let (Err(m), true) = (&key, rep.sealed > 0) {
        rep.bad(0, format!("the seals cannot be checked: {m}"));
    }
    Ok(rep)
}

/// A new log killed after its head 0 and before its key was named (see `birth`): the candidate
/// key that signed that head, for a log still without records. The next writer installs it.
fn waiting_key(
    conn: &Connection,
    path: &Path,
    head: &Result<Option<Head>, String>,
    key_exists: bool,
) -> Option<VerifyingKey> {
    let head = head.as_ref().ok()?.as_ref()?;
    let empty: bool = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM records)", [], |r| r.get(0)).ok()?;
    crate::birth::candidate_for_verify(path, head, empty && !key_exists)
}

fn unreadable(mut rep: VerifyReport, why: String) -> VerifyReport {
    rep.unreadable = Some(why);
    rep
}

/// Walks every record: sequence, links, hashes, seals.
fn chain(conn: &Connection, key: Option<&VerifyingKey>, rep: &mut VerifyReport) -> Result<(), String> {
    let e = |x: rusqlite::Error| x.to_string();
    let mut st =
        conn.prepare("SELECT seq, session, kind, ts_ms, body, prev, hash FROM records ORDER BY seq").map_err(e)?;
    let mut rows = st.query([]).map_err(e)?;
    let mut prev = vec![0u8; 32];
    let mut expect = 1i64;
    let mut open: Vec<String> = vec![];
    let mut seen: std::collections::HashSet<String> = Default::default();
    let mut sealed: std::collections::HashSet<String> = Default::default();
    while let Some(r) = rows.next().map_err(e)? {
        // Borrowed column values: no allocation per record.
        let seq: i64 = r.get(0).map_err(e)?;
        let session = r.get_ref(1).map_err(e)?.as_str().map_err(|x| x.to_string())?;
        let kind = r.get_ref(2).map_err(e)?.as_str().map_err(|x| x.to_string())?;
        let ts: i64 = r.get(3).map_err(e)?;
        let body = r.get_ref(4).map_err(e)?.as_str().map_err(|x| x.to_string())?;
        let p = r.get_ref(5).map_err(e)?.as_blob().map_err(|x| x.to_string())?;
        let h = r.get_ref(6).map_err(e)?.as_blob().map_err(|x| x.to_string())?;
        rep.records += 1;
        if seq != expect {
            rep.bad(
                seq,
                format!("record {seq} follows {}: records {expect}..{} are missing (deleted)", expect - 1, seq - 1),
            );
        }
        if p != prev.as_slice() {
            rep.bad(seq, format!("record {seq} does not follow the record before it (inserted, reordered or its predecessor changed)"));
        }
        if record_hash(p, seq, session, kind, ts, body) != h {
            rep.bad(
                seq,
                format!("record {seq} ({kind} of session {session}) was modified: its hash does not match its content"),
            );
        }
        // A session's records run from its start to its seal: anything outside was put there.
        if kind != RecordKind::Start.as_str() && !seen.contains(session) {
            rep.bad(seq, format!("record {seq} ({kind}) belongs to session {session}, which has no start record before it (deleted?)"));
        }
        if sealed.contains(session) {
            rep.bad(seq, format!("record {seq} ({kind}) comes after the seal of its session {session}"));
        }
        if kind == RecordKind::Start.as_str() {
            if seen.insert(session.to_string()) {
                open.push(session.to_string());
            } else {
                rep.bad(seq, format!("record {seq} is a second start of session {session}"));
            }
        } else if kind == RecordKind::Seal.as_str() {
            sealed.insert(session.to_string());
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let msg = format!("cordon-seal-v1 {session} {seq} {}", v["head"].as_str().unwrap_or(""));
            let good = v["head"].as_str() == Some(&hex(&prev))
                && key
                    .zip(v["signature"].as_str().and_then(sig))
                    .is_some_and(|(k, s)| k.verify(msg.as_bytes(), &s).is_ok());
            if !good {
                rep.bad(
                    seq,
                    format!("the seal of session {session} (record {seq}) does not verify with this log's key"),
                );
            }
            open.retain(|s| s != session);
            rep.sealed += 1;
        }
        prev.clear();
        prev.extend_from_slice(h);
        expect = seq + 1;
    }
    rep.sessions = seen.len();
    rep.unfinished = open;
    Ok(())
}

/// The head file anchors the end of the log: fewer records than it names means truncation, and a
/// log with records but no head file lost its end together with the head.
fn check_head(
    conn: &Connection,
    path: &Path,
    head: Result<Option<Head>, String>,
    key: Option<&VerifyingKey>,
    key_exists: bool,
    rep: &mut VerifyReport,
) {
    let hp = head_path(path);
    let h = match head {
        Err(m) => return rep.bad(0, m),
        Ok(None) if rep.records > 0 || key_exists => {
            return rep.bad(
                rep.records + 1,
                format!(
                    "the signed head file {} is missing: records at the end of the log may have been deleted with it",
                    hp.display()
                ),
            )
        }
        Ok(None) => return,
        Ok(Some(h)) => h,
    };
    rep.head_seq = Some(h.seq);
    if !key.is_some_and(|k| h.signed_by(k)) {
        return rep
            .bad(h.seq, format!("the head file {}'s signature does not verify with this log's key", hp.display()));
    }
    match_head(conn, &h, "its signed head", rep);
}

/// A head kept elsewhere: it must be signed by this log's key and found in the log.
fn check_anchor(conn: &Connection, anchor: &Head, key: Option<&VerifyingKey>, rep: &mut VerifyReport) {
    let own = key.map(|k| hex(&k.to_bytes()));
    if anchor.public_key.is_some() && anchor.public_key != own {
        rep.anchor_matches = Some(false);
        return rep.bad(
            anchor.seq,
            "the anchored head was signed by another key than this log's: the signing key was replaced".into(),
        );
    }
    if !key.is_some_and(|k| anchor.signed_by(k)) {
        rep.anchor_matches = Some(false);
        return rep.bad(anchor.seq, "the anchored head's signature does not verify with this log's key".into());
    }
    rep.anchor_matches = Some(match_head(conn, anchor, "the anchored head", rep));
}

/// Whether the record the head names is in the log as named; a problem is recorded if not.
fn match_head(conn: &Connection, h: &Head, what: &str, rep: &mut VerifyReport) -> bool {
    if h.seq == 0 {
        return true;
    }
    let last: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| r.get(0)).unwrap_or(0);
    if last < h.seq {
        rep.bad(
            last + 1,
            format!("the log ends at record {last} but {what} names record {}: records were truncated", h.seq),
        );
        return false;
    }
    let at: Option<Vec<u8>> =
        conn.query_row("SELECT hash FROM records WHERE seq = ?1", [h.seq], |r| r.get(0)).optional().ok().flatten();
    if at.map(|x| hex(&x)) != Some(h.hash.clone()) {
        rep.bad(h.seq, format!("record {} differs from the one {what} names", h.seq));
        return false;
    }
    true
}
