//! What leaves a node for `cordon server`: runs of the log's chain as they are stored (the exact
//! body bytes the hashes cover), and the check a receiver makes of such a run against the last
//! record it already holds. The chain is one per log (all sessions interleave in it), so a run is a
//! stretch of the log, not of one session: only then does every record's `prev` name a record the
//! receiver has.

use crate::chain::{hex, record_hash, unhex, Record};
use crate::head::sig;
use ed25519_dalek::{Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// One batch: the node's name, its log's public key (hex), and records in the log's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub node: String,
    pub public_key: String,
    pub records: Vec<WireRecord>,
}

/// A record as stored: `body` is the canonical JSON text the hash covers; `prev` and `hash` hex.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireRecord {
    pub seq: i64,
    pub session: String,
    pub kind: String,
    pub ts_ms: i64,
    pub body: String,
    pub prev: String,
    pub hash: String,
}

impl WireRecord {
    pub fn from_record(r: &Record) -> WireRecord {
        WireRecord {
            seq: r.seq,
            session: r.session.clone(),
            kind: r.kind.clone(),
            ts_ms: r.ts_ms,
            body: r.body.clone(),
            prev: hex(&r.prev),
            hash: hex(&r.hash),
        }
    }

    /// Back to a record; `None` when `prev` or `hash` is not hex.
    pub fn to_record(&self) -> Option<Record> {
        self.clone().into_record()
    }

    /// The same without copying the strings (a receiver's every record goes through this).
    pub fn into_record(self) -> Option<Record> {
        Some(Record {
            prev: unhex(&self.prev)?,
            hash: unhex(&self.hash)?,
            seq: self.seq,
            session: self.session,
            kind: self.kind,
            ts_ms: self.ts_ms,
            body: self.body,
        })
    }
}

/// Why a run does not continue a chain. `reason()` is a short stable name (a metric label).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Break {
    #[error("record {seq} comes after record {after} in the batch: records out of order")]
    Reorder { seq: i64, after: i64 },
    #[error("record {got} where record {expected} was due: records {expected}..{} are missing", got - 1)]
    Gap { expected: i64, got: i64 },
    #[error("record {seq} does not follow the record before it (its prev hash is not that record's hash)")]
    Link { seq: i64 },
    #[error("record {seq} ({kind} of session {session}) was modified: its hash does not match its content")]
    Hash { seq: i64, kind: String, session: String },
    #[error("the seal of session {session} (record {seq}) does not verify with the node's key")]
    Seal { seq: i64, session: String },
}

impl Break {
    pub fn reason(&self) -> &'static str {
        match self {
            Break::Reorder { .. } => "reorder",
            Break::Gap { .. } => "gap",
            Break::Link { .. } => "link",
            Break::Hash { .. } => "hash",
            Break::Seal { .. } => "seal",
        }
    }

    pub fn seq(&self) -> i64 {
        match self {
            Break::Reorder { seq, .. } | Break::Link { seq } | Break::Hash { seq, .. } | Break::Seal { seq, .. } => {
                *seq
            }
            Break::Gap { got, .. } => *got,
        }
    }
}

/// Checks that `records` continue a chain whose last record is `after` (`(0, [0; 32])`: the
/// genesis): consecutive sequence numbers, each `prev` the hash before it, each hash recomputed from
/// the content, each seal signed by `key` over the hash before it. Pure: reads nothing.
pub fn verify_run(after: (i64, &[u8]), key: &VerifyingKey, records: &[Record]) -> Result<(), Break> {
    let (mut seq, mut prev) = (after.0, after.1.to_vec());
    for r in records {
        if r.seq <= seq {
            return Err(Break::Reorder { seq: r.seq, after: seq });
        }
        if r.seq != seq + 1 {
            return Err(Break::Gap { expected: seq + 1, got: r.seq });
        }
        if r.prev != prev {
            return Err(Break::Link { seq: r.seq });
        }
        if record_hash(&r.prev, r.seq, &r.session, &r.kind, r.ts_ms, &r.body) != r.hash {
            return Err(Break::Hash { seq: r.seq, kind: r.kind.clone(), session: r.session.clone() });
        }
        if r.kind == cordon_schema::RecordKind::Seal.as_str() && !seal_verifies(key, r) {
            return Err(Break::Seal { seq: r.seq, session: r.session.clone() });
        }
        seq = r.seq;
        prev.clone_from(&r.hash);
    }
    Ok(())
}

/// Whether a seal record is `key`'s signature over the hash before it (as `Store::seal` signs).
pub fn seal_verifies(key: &VerifyingKey, seal: &Record) -> bool {
    let v: serde_json::Value = serde_json::from_str(&seal.body).unwrap_or_default();
    let Some(head) = v["head"].as_str() else { return false };
    let msg = format!("cordon-seal-v1 {} {} {head}", seal.session, seal.seq);
    head == hex(&seal.prev)
        && v["signature"].as_str().and_then(sig).is_some_and(|s| key.verify(msg.as_bytes(), &s).is_ok())
}

/// A public key from its hex form (as batches and heads carry it).
pub fn parse_key(s: &str) -> Option<VerifyingKey> {
    let b: [u8; 32] = unhex(s)?.as_slice().try_into().ok()?;
    VerifyingKey::from_bytes(&b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// The test's directory, removed when the test ends, pass or fail (a mutation run fails tests
    /// by the hundred: none may leave its log behind).
    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn log() -> (Dir, Vec<Record>, VerifyingKey) {
        let dir = std::env::temp_dir().join(format!(
            "cordon-ship-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let dir = Dir(dir);
        let db = dir.0.join("audit.db");
        let mut s = Store::open(&db).expect("open");
        let items = |k: &str| vec![(k.to_string(), 1, serde_json::json!({"x": k}))];
        s.append("a", &items("start")).expect("a");
        s.append("b", &items("start")).expect("b");
        s.append("a", &items("denial")).expect("a2");
        s.finish("a", &items("end"), 2).expect("seal a");
        let recs = s.records_after(0, 100).expect("records");
        let key = crate::public_key(&db).expect("key");
        (dir, recs, key)
    }

    #[test]
    fn a_stretch_of_the_log_verifies_from_the_genesis_and_from_any_record() {
        let (dir, recs, key) = log();
        assert_eq!(recs.len(), 5);
        assert_eq!(verify_run((0, &[0; 32]), &key, &recs), Ok(()));
        assert_eq!(verify_run((2, &recs[1].hash), &key, &recs[2..]), Ok(()));
        assert!(seal_verifies(&key, &recs[4]));
        let wire = WireRecord::from_record(&recs[3]);
        assert_eq!(wire.to_record().as_ref(), Some(&recs[3]));
        drop(dir);
    }

    #[test]
    fn every_kind_of_break_is_named_with_its_record() {
        let (dir, recs, key) = log();
        let g = (0, &[0u8; 32][..]);
        let mut tampered = recs.clone();
        tampered[2].body = r#"{"x":"nothing"}"#.into();
        assert_eq!(verify_run(g, &key, &tampered).map_err(|b| (b.reason(), b.seq())), Err(("hash", 3)));
        let mut swapped = recs.clone();
        swapped.swap(1, 2);
        assert_eq!(verify_run(g, &key, &swapped).map_err(|b| b.reason()), Err("gap"));
        assert_eq!(verify_run(g, &key, &[recs[1].clone(), recs[0].clone()]).map_err(|b| b.reason()), Err("gap"));
        assert_eq!(
            verify_run((1, &recs[0].hash), &key, &[recs[2].clone(), recs[1].clone()]).map_err(|b| b.reason()),
            Err("gap")
        );
        assert_eq!(
            verify_run((2, &recs[1].hash), &key, &[recs[2].clone(), recs[1].clone()]).map_err(|b| b.reason()),
            Err("reorder")
        );
        assert_eq!(verify_run((1, &[9; 32]), &key, &recs[1..]).map_err(|b| b.reason()), Err("link"));
        let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(verify_run(g, &other, &recs).map_err(|b| (b.reason(), b.seq())), Err(("seal", 5)));
        assert_eq!(parse_key(&hex(&key.to_bytes())), Some(key));
        assert_eq!(parse_key("zz"), None);
        drop(dir);
    }
}
