//! Verified ingest, as pure functions: [`check`] turns a request body into a [`Checked`] batch or
//! a 400 naming the field; [`judge`] decides, over a [`ChainView`] of what the server holds for
//! the node, whether the batch continues the node's chain (cordon-audit's `verify_run`: sequence,
//! links, recomputed hashes, seals against the pinned key), is a replay of stored records
//! (accepted, counted once), or is refused (409) with a reason.

use cordon_audit::ship::{parse_key, verify_run, Batch};
use cordon_audit::{record_hash, Record};
use ed25519_dalek::VerifyingKey;

/// The longest node name, session id or kind accepted.
const MAX_NAME: usize = 256;

/// A batch whose fields parsed: hex decoded, key valid, names of sane length.
#[derive(Debug, Clone)]
pub struct Checked {
    pub node: String,
    pub public_key_hex: String,
    pub key: VerifyingKey,
    pub records: Vec<Record>,
}

/// A 400: the body is not a batch; names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadBatch(pub String);

/// Parses a request body. Never panics on any input.
pub fn check(body: &[u8]) -> Result<Checked, BadBatch> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BadBatch(format!("the body is not UTF-8 (invalid byte at offset {})", e.valid_up_to())))?;
    let b: Batch = serde_json::from_str(text).map_err(|e| BadBatch(format!("the body is not a batch: {e}")))?;
    if b.node.is_empty() || b.node.len() > MAX_NAME {
        return Err(BadBatch(format!("`node`: must be 1 to {MAX_NAME} bytes")));
    }
    // PostgreSQL's TEXT cannot hold a NUL (SQLite can): refused here, the same on both stores,
    // instead of a store error. Other control characters are shown escaped.
    if b.node.contains('\0') {
        return Err(BadBatch("`node`: holds a NUL character".into()));
    }
    let key =
        parse_key(&b.public_key).ok_or_else(|| BadBatch("`public_key`: not a 32-byte Ed25519 key in hex".into()))?;
    let mut records = Vec::with_capacity(b.records.len());
    for (i, w) in b.records.into_iter().enumerate() {
        if w.session.len() > MAX_NAME || w.kind.is_empty() || w.kind.len() > MAX_NAME {
            return Err(BadBatch(format!("`records[{i}]`: session or kind empty or longer than {MAX_NAME} bytes")));
        }
        if w.session.contains('\0') || w.kind.contains('\0') {
            return Err(BadBatch(format!("`records[{i}]`: session or kind holds a NUL character")));
        }
        let r = w.into_record().ok_or_else(|| BadBatch(format!("`records[{i}].prev` or `.hash`: not hex")))?;
        if r.hash.len() != 32 || r.prev.len() != 32 {
            return Err(BadBatch(format!("`records[{i}].prev` or `.hash`: not 32 bytes")));
        }
        // Checked, not built: a tree per record would cost more than the rest of the check.
        if serde_json::from_str::<serde::de::IgnoredAny>(&r.body).is_err() {
            return Err(BadBatch(format!("`records[{i}].body`: not JSON text")));
        }
        records.push(r);
    }
    Ok(Checked { node: b.node, public_key_hex: b.public_key.to_ascii_lowercase(), key, records })
}

/// What the server holds for one node.
pub trait ChainView {
    type Error;
    /// The key pinned by the node's first accepted batch.
    fn pinned_key(&self) -> Result<Option<String>, Self::Error>;
    /// The last stored record: `(0, [0; 32])` for a node with none (the genesis).
    fn tail(&self) -> Result<(i64, Vec<u8>), Self::Error>;
    fn hash_at(&self, seq: i64) -> Result<Option<Vec<u8>>, Self::Error>;
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Accepted {
    /// Records stored by this batch.
    pub accepted: usize,
    /// Records the server already held (a retry), not stored again.
    pub duplicates: usize,
    /// The node's last stored record after this batch: what the shipper may forget.
    pub acked_seq: i64,
    pub acked_hash: String,
    /// Index of the first new record in the batch.
    #[serde(skip)]
    pub new_from: usize,
    /// Outcomes of the sessions this batch ended (their `end` records), for the metrics.
    #[serde(skip)]
    pub ended: Vec<String>,
    /// What the new records add to the metrics.
    #[serde(skip)]
    pub tally: crate::tally::Tally,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Refused {
    /// Short and stable (a metric label): key, conflict, reorder, gap, link, hash, seal.
    pub reason: &'static str,
    pub detail: String,
    pub seq: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Verdict {
    Accepted(Accepted),
    Refused(Refused),
}

pub fn judge<V: ChainView>(view: &V, b: &Checked) -> Result<Verdict, V::Error> {
    let refuse = |reason, detail: String, seq| Ok(Verdict::Refused(Refused { reason, detail, seq }));
    let pinned = view.pinned_key()?;
    // A node's key is pinned by its first batch: one with no record would pin a key that vouches
    // for nothing (a stolen node token's).
    if pinned.is_none() && b.records.is_empty() {
        return refuse(
            "empty",
            format!("node `{}`'s first batch holds no record: nothing to pin its key to", b.node),
            None,
        );
    }
    if let Some(pinned) = pinned {
        if pinned != b.public_key_hex {
            return refuse(
                "key",
                format!("node `{}` is pinned to another key ({pinned}) since its first batch: a different log, or a replaced key", b.node),
                None,
            );
        }
    }
    let (tail_seq, tail_hash) = view.tail()?;
    // Records the server holds already: a retry after a lost answer. Each must be the stored one.
    let mut from = 0;
    let mut last = 0i64;
    for r in &b.records {
        if r.seq <= last {
            return refuse(
                "reorder",
                format!("record {} comes after record {last} in the batch: records out of order", r.seq),
                Some(r.seq),
            );
        }
        last = r.seq;
        if r.seq > tail_seq {
            break;
        }
        let stored = view.hash_at(r.seq)?;
        let recomputed = record_hash(&r.prev, r.seq, &r.session, &r.kind, r.ts_ms, &r.body);
        if stored.as_deref() != Some(r.hash.as_slice()) || recomputed != r.hash {
            return refuse(
                "conflict",
                format!("record {} differs from the record {} the server holds for node `{}` (sent again changed, or a different log)", r.seq, r.seq, b.node),
                Some(r.seq),
            );
        }
        from += 1;
    }
    let new = &b.records[from..];
    if let Err(e) = verify_run((tail_seq, &tail_hash), &b.key, new) {
        let seq = e.seq();
        let detail = match e {
            cordon_audit::ship::Break::Gap { .. } if tail_seq > 0 || from > 0 => {
                format!("{e} (the server holds node `{}` up to record {tail_seq})", b.node)
            }
            _ => e.to_string(),
        };
        return refuse(e.reason(), detail, Some(seq));
    }
    let (acked_seq, acked_hash) = match new.last() {
        Some(r) => (r.seq, r.hash.clone()),
        None => (tail_seq, tail_hash),
    };
    let ended = new
        .iter()
        .filter(|r| r.kind == "end")
        .map(|r| outcome(&serde_json::from_str::<serde_json::Value>(&r.body).unwrap_or_default()).to_string())
        .collect();
    Ok(Verdict::Accepted(Accepted {
        accepted: new.len(),
        duplicates: from,
        acked_seq,
        acked_hash: cordon_audit::hex(&acked_hash),
        new_from: from,
        ended,
        tally: crate::tally::tally(new),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_are_not_batches_are_named_not_panicked_on() {
        let bad = |b: &[u8]| check(b).map(|_| ()).expect_err("refused").0;
        assert!(bad(b"\xff\xfe").contains("not UTF-8"), "{}", bad(b"\xff\xfe"));
        assert!(bad(b"{").contains("not a batch"));
        assert!(bad(br#"{"node":"n","records":[]}"#).contains("public_key"));
        assert!(bad(br#"{"node":"","public_key":"00","records":[]}"#).contains("`node`"));
        assert!(bad(br#"{"node":"n","public_key":"zz","records":[]}"#).contains("`public_key`"));
        let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let rec = |h: &str| {
            format!(
                r#"{{"node":"n","public_key":"{key}","records":[{{"seq":1,"session":"s","kind":"start","ts_ms":1,"body":"{{}}","prev":"{}","hash":"{h}"}}]}}"#,
                "00".repeat(32)
            )
        };
        assert!(bad(rec("xx").as_bytes()).contains("records[0].prev"));
        assert!(bad(rec("00").as_bytes()).contains("not 32 bytes"));
        assert!(check(rec(&"00".repeat(32)).as_bytes()).is_ok());
        let nul = rec(&"00".repeat(32)).replace(r#""session":"s""#, r#""session":"s\u0000""#);
        assert!(bad(nul.as_bytes()).contains("NUL character"), "{}", bad(nul.as_bytes()));
        assert!(bad(br#"{"node":"n\u0000","public_key":"00","records":[]}"#).contains("NUL character"));
    }
}

/// A session's outcome from its `end` record's body, one of a fixed set: it becomes a metrics label
/// and a filter value, and a node controls the body (a made-up kind must not write lines into
/// `/metrics` nor add a series per value).
pub fn outcome(end: &serde_json::Value) -> &'static str {
    match end["ending"]["kind"].as_str() {
        Some("exited") => "exited",
        Some("signaled") => "signaled",
        Some("setup_failed") => "setup_failed",
        Some("exec_failed") => "exec_failed",
        _ => "other",
    }
}

#[cfg(test)]
mod outcome_tests {
    #[test]
    fn an_outcome_is_one_of_a_fixed_set_whatever_the_node_sends() {
        let end = |k: &str| serde_json::json!({"ending": {"kind": k}});
        assert_eq!(super::outcome(&end("exited")), "exited");
        assert_eq!(super::outcome(&end("exec_failed")), "exec_failed");
        assert_eq!(super::outcome(&end("x\"} 1\nfake_metric 9")), "other");
        assert_eq!(super::outcome(&serde_json::json!({})), "other");
    }
}
