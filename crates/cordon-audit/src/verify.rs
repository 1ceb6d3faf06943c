//! `cordon audit verify`: recomputes the chain, checks every seal and the signed head file, and names
//! the first bad record. A session that started and never sealed is reported as unfinished.

use crate::chain::{hex, record_hash, unhex};
use crate::store::{head_path, public_key};
use ed25519_dalek::{Signature, Verifier};
use rusqlite::Connection;
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
    pub head_seq: Option<i64>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

fn sig(s: &str) -> Option<Signature> {
    let b = unhex(s)?;
    let arr: [u8; 64] = b.as_slice().try_into().ok()?;
    Some(Signature::from_bytes(&arr))
}

pub fn verify(path: &Path) -> Result<VerifyReport, String> {
    if !path.exists() {
        return Err(format!("audit log {} does not exist", path.display()));
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| format!("audit log {}: {e}", path.display()))?;
    let key = public_key(path);
    let mut rep = VerifyReport::default();
    // A log whose first writer was killed before creating the table holds nothing yet.
    let has_table: bool = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'records'", [], |r| r.get::<_, i64>(0)).map(|n| n > 0).unwrap_or(false);
    if !has_table {
        return Ok(rep);
    }
    let mut st = conn.prepare("SELECT seq, session, kind, ts_ms, body, prev, hash FROM records ORDER BY seq").map_err(|e| e.to_string())?;
    let mut rows = st.query([]).map_err(|e| e.to_string())?;
    let mut prev = vec![0u8; 32];
    let mut expect = 1i64;
    let mut open: Vec<String> = vec![];
    let mut seen: std::collections::HashSet<String> = Default::default();
    let bad = |rep: &mut VerifyReport, seq: i64, what: String| {
        if rep.first_bad.is_none() {
            rep.first_bad = Some(Problem { seq, what });
        }
    };
    while let Some(r) = rows.next().map_err(|e| e.to_string())? {
        // Borrowed column values: no allocation per record.
        let e = |x: rusqlite::Error| x.to_string();
        let seq: i64 = r.get(0).map_err(e)?;
        let session = r.get_ref(1).map_err(e)?.as_str().map_err(|x| x.to_string())?;
        let kind = r.get_ref(2).map_err(e)?.as_str().map_err(|x| x.to_string())?;
        let ts: i64 = r.get(3).map_err(e)?;
        let body = r.get_ref(4).map_err(e)?.as_str().map_err(|x| x.to_string())?;
        let p = r.get_ref(5).map_err(e)?.as_blob().map_err(|x| x.to_string())?;
        let h = r.get_ref(6).map_err(e)?.as_blob().map_err(|x| x.to_string())?;
        rep.records += 1;
        if seq != expect {
            bad(&mut rep, seq, format!("record {seq} follows {}: records {expect}..{} are missing (deleted)", expect - 1, seq - 1));
        }
        if p != prev.as_slice() {
            bad(&mut rep, seq, format!("record {seq} does not follow the record before it (inserted, reordered or its predecessor changed)"));
        }
        if record_hash(p, seq, session, kind, ts, body) != h {
            bad(&mut rep, seq, format!("record {seq} ({kind} of session {session}) was modified: its hash does not match its content"));
        }
        if kind == "start" {
            if seen.insert(session.to_string()) {
                open.push(session.to_string());
            }
        } else if kind == "seal" {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let msg = format!("cordon-seal-v1 {session} {seq} {}", v["head"].as_str().unwrap_or(""));
            let good = v["head"].as_str() == Some(&hex(&prev)) && key.as_ref().zip(v["signature"].as_str().and_then(sig)).is_some_and(|(k, s)| k.verify(msg.as_bytes(), &s).is_ok());
            if !good {
                bad(&mut rep, seq, format!("the seal of session {session} (record {seq}) does not verify with this log's key"));
            }
            open.retain(|s| s != session);
            rep.sealed += 1;
        }
        prev.clear();
        prev.extend_from_slice(h);
        expect = seq + 1;
    }
    rep.sessions = seen.len();
    // The head file anchors the end of the log: fewer records than it names means truncation.
    if let Ok(t) = std::fs::read_to_string(head_path(path)) {
        let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
        let hseq = v["seq"].as_i64().unwrap_or(0);
        let hhash = v["hash"].as_str().unwrap_or("");
        let msg = format!("cordon-head-v1 {hseq} {hhash}");
        let signed = key.as_ref().zip(v["signature"].as_str().and_then(sig)).is_some_and(|(k, s)| k.verify(msg.as_bytes(), &s).is_ok());
        rep.head_seq = Some(hseq);
        if !signed {
            bad(&mut rep, hseq, "the head file's signature does not verify".into());
        } else if rep.records < hseq {
            let n = rep.records;
            bad(&mut rep, n + 1, format!("the log ends at record {n} but its signed head names record {hseq}: records were truncated"));
        } else {
            let at: Option<Vec<u8>> = conn.query_row("SELECT hash FROM records WHERE seq = ?1", [hseq], |r| r.get(0)).ok();
            if at.map(|h| hex(&h)) != Some(hhash.to_string()) {
                bad(&mut rep, hseq, format!("record {hseq} differs from the one the signed head names"));
            }
        }
    }
    rep.unfinished = open;
    Ok(rep)
}
