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

/// Lower-case hex. By table, not `format!` per byte: every shipped record carries two hashes, and
/// formatting them was about two thirds of the shipping node's CPU in the ingest benchmark.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

/// Hex of either case; `None` for anything else (a sign, a space, an odd length).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    // A plain loop: collecting an iterator of Options was 7% of the server's ingest CPU.
    let mut out = Vec::with_capacity(b.len() / 2);
    for p in b.chunks_exact(2) {
        out.push((nibble(p[0])? << 4) | nibble(p[1])?);
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_unhex_refuses_what_is_not_hex() {
        let b = [0x00, 0x0f, 0xa5, 0xff];
        assert_eq!(hex(&b), "000fa5ff");
        assert_eq!(unhex("000fa5ff"), Some(b.to_vec()));
        assert_eq!(unhex("000FA5FF"), Some(b.to_vec()));
        assert_eq!(unhex(""), Some(vec![]));
        assert_eq!(unhex("abc"), None, "odd length");
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("0é"), None, "not ASCII");
        assert_eq!(unhex("+f"), None, "a sign (u8::from_str_radix took it: two texts for one hash)");
        assert_eq!(unhex("0 "), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&all)), Some(all.clone()));
        assert_eq!(hex(&all[..3]), "000102");
    }

    #[test]
    fn a_record_hash_covers_every_field_and_where_each_ends() {
        let h = record_hash(&[1; 32], 2, "ab", "c", 3, "{}");
        assert_eq!(h.len(), 32);
        assert_eq!(h, record_hash(&[1; 32], 2, "ab", "c", 3, "{}"));
        for other in [
            record_hash(&[2; 32], 2, "ab", "c", 3, "{}"),
            record_hash(&[1; 32], 3, "ab", "c", 3, "{}"),
            record_hash(&[1; 32], 2, "a", "bc", 3, "{}"),
            record_hash(&[1; 32], 2, "ab", "c", 4, "{}"),
            record_hash(&[1; 32], 2, "ab", "c", 3, "{ }"),
        ] {
            assert_ne!(h, other);
        }
        assert_eq!(canonical(&serde_json::json!({"b": 1, "a": [true, null]})), r#"{"a":[true,null],"b":1}"#);
    }
}
