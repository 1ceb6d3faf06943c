//! The hash chain: each record's hash covers the previous hash and the record's canonical bytes.

use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    pub seq: i64,
    pub session: String,
    pub kind: String,
    pub ts_ms: i64,
    /// Canonical JSON (object keys sorted, no whitespace).
    pub body: String,
    pub prev: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Canonical bytes of a JSON value: serde_json's map is ordered by key, and compact output.
pub fn canonical(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub fn record_hash(prev: &[u8], seq: i64, session: &str, kind: &str, ts_ms: i64, body: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"cordon-audit-v1\0");
    h.update(prev);
    h.update(seq.to_be_bytes());
    for part in [session, kind] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(ts_ms.to_be_bytes());
    h.update((body.len() as u64).to_be_bytes());
    h.update(body.as_bytes());
    h.finalize().to_vec()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
