//! The signed head: `{seq, hash, signature, public_key}` of the last sealed record. Kept next to the
//! database and, where the user anchors it (`--head-copy`, `cordon audit head`), elsewhere: a log
//! cut short together with its head file is only detectable against a copy kept out of reach.

use crate::chain::{hex, unhex};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    pub signature: String,
    /// The key that signed it (absent in heads written before cordon 0.1's anchors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

fn message(seq: i64, hash: &str) -> String {
    format!("cordon-head-v1 {seq} {hash}")
}

impl Head {
    pub fn sign(key: &SigningKey, seq: i64, hash: &[u8]) -> Head {
        let hash = hex(hash);
        let sig = key.sign(message(seq, &hash).as_bytes());
        Head { seq, hash, signature: hex(&sig.to_bytes()), public_key: Some(hex(&key.verifying_key().to_bytes())) }
    }

    /// Whether `key` signed this head.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        sig(&self.signature).is_some_and(|s| key.verify(message(self.seq, &self.hash).as_bytes(), &s).is_ok())
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    /// Reads a head file. `Ok(None)`: there is none.
    pub fn read(path: &Path) -> Result<Option<Head>, String> {
        let Some(text) = crate::files::read_regular(path, 64 * 1024).map_err(|m| format!("head file: {m}"))? else {
            return Ok(None);
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| format!("head file {} is not a cordon head: {e}", path.display()))
    }
}

pub fn sig(s: &str) -> Option<Signature> {
    let b = unhex(s)?;
    let arr: [u8; 64] = b.as_slice().try_into().ok()?;
    Some(Signature::from_bytes(&arr))
}
