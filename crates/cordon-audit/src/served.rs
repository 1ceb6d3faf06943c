//! A policy `cordon server` serves for an agent identity, signed by the server's key: the server
//! signs what it serves, a node checks what it fetched (or cached) before a session runs under it.
//! The signature covers the identity, the version, the text's SHA-256, when and by whom the version
//! was made: a node cannot be given another identity's policy, an older version under a newer
//! number, or a text changed on the way or in its cache.

use crate::chain::{hex, unhex};
use crate::head::sig;
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// One version of one identity's policy, as the server serves it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServedPolicy {
    pub identity: String,
    pub version: i64,
    /// SHA-256 of `text`, hex.
    pub sha256: String,
    pub text: String,
    /// The name of the admin token that made this version.
    pub author: String,
    pub created_ms: i64,
    /// The server's public key (hex) and its signature (hex) over [`ServedPolicy::message`].
    pub server_key: String,
    pub signature: String,
}

/// Why a served policy is not to be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServedError {
    #[error("the policy's text does not match its SHA-256 (changed on the way or in the cache)")]
    Digest,
    #[error("`{0}` is not a public key")]
    Key(String),
    #[error("signed by {got}, but this node pinned the server's key {pinned}")]
    KeyChanged { pinned: String, got: String },
    #[error("the server's signature does not verify")]
    Signature,
    #[error("served for identity `{got}`, asked for `{asked}`")]
    Identity { asked: String, got: String },
}

/// An identity's name: 1 to 128 of `A-Z a-z 0-9 . _ @ -`, not starting with a dot (it names a
/// file in the node's cache and a URL path segment).
pub fn valid_identity(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

pub fn sha256_hex(text: &str) -> String {
    hex(&sha2::Sha256::digest(text.as_bytes()))
}

impl ServedPolicy {
    /// The bytes signed. Every field is free of newlines (identity by [`valid_identity`]; author
    /// names are refused with control characters by the server).
    fn message(&self) -> String {
        format!(
            "cordon-policy-v1\n{}\n{}\n{}\n{}\n{}",
            self.identity, self.version, self.sha256, self.created_ms, self.author
        )
    }

    pub fn sign(key: &SigningKey, identity: &str, version: i64, text: &str, author: &str, created_ms: i64) -> Self {
        let mut p = ServedPolicy {
            identity: identity.into(),
            version,
            sha256: sha256_hex(text),
            text: text.into(),
            author: author.into(),
            created_ms,
            server_key: hex(key.verifying_key().as_bytes()),
            signature: String::new(),
        };
        p.signature = hex(&key.sign(p.message().as_bytes()).to_bytes());
        p
    }

    /// Checks the text against its digest and the signature against the server's key, which must be
    /// `pinned` when the node has pinned one. Returns the key that signed it.
    pub fn check(&self, asked: &str, pinned: Option<&VerifyingKey>) -> Result<VerifyingKey, ServedError> {
        if self.identity != asked {
            return Err(ServedError::Identity { asked: asked.into(), got: self.identity.clone() });
        }
        if sha256_hex(&self.text) != self.sha256 {
            return Err(ServedError::Digest);
        }
        let key = unhex(&self.server_key)
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| ServedError::Key(self.server_key.clone()))?;
        if let Some(p) = pinned.filter(|p| **p != key) {
            return Err(ServedError::KeyChanged { pinned: hex(p.as_bytes()), got: self.server_key.clone() });
        }
        let ok = sig(&self.signature).is_some_and(|s| key.verify(self.message().as_bytes(), &s).is_ok());
        if !ok {
            return Err(ServedError::Signature);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn a_served_policy_checks_only_as_signed() {
        let k = key(1);
        let p = ServedPolicy::sign(&k, "ci-bot", 3, "version = 1\n", "ops", 1000);
        assert_eq!(p.check("ci-bot", None), Ok(k.verifying_key()));
        assert_eq!(p.check("ci-bot", Some(&k.verifying_key())), Ok(k.verifying_key()));
        let other = key(2).verifying_key();
        assert!(matches!(p.check("ci-bot", Some(&other)), Err(ServedError::KeyChanged { .. })));
        assert!(matches!(p.check("other", None), Err(ServedError::Identity { .. })));
        let changed = |f: &dyn Fn(&mut ServedPolicy)| {
            let mut q = p.clone();
            f(&mut q);
            q.check("ci-bot", None)
        };
        assert_eq!(changed(&|q| q.text.push(' ')), Err(ServedError::Digest));
        assert_eq!(
            changed(&|q| {
                q.text.push(' ');
                q.sha256 = sha256_hex(&q.text);
            }),
            Err(ServedError::Signature)
        );
        assert_eq!(changed(&|q| q.version = 4), Err(ServedError::Signature));
        assert_eq!(changed(&|q| q.created_ms = 1), Err(ServedError::Signature));
        assert_eq!(changed(&|q| q.author = "mallory".into()), Err(ServedError::Signature));
        assert_eq!(changed(&|q| q.signature = "00".into()), Err(ServedError::Signature));
        assert!(matches!(changed(&|q| q.server_key = "zz".into()), Err(ServedError::Key(_))));
        // Re-signed by another key: only a node that pinned the first one notices.
        let forged = ServedPolicy::sign(&key(2), "ci-bot", 3, "version = 1\n", "ops", 1000);
        assert!(forged.check("ci-bot", None).is_ok());
        assert!(matches!(forged.check("ci-bot", Some(&k.verifying_key())), Err(ServedError::KeyChanged { .. })));
    }

    #[test]
    fn identities_are_names_a_file_and_a_url_can_hold() {
        for ok in ["ci-bot", "a", "team.agent_1@prod", &"x".repeat(128)] {
            assert!(valid_identity(ok), "{ok}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", "a\nb", "é", &"x".repeat(129), "a%2f"] {
            assert!(!valid_identity(bad), "{bad:?}");
        }
    }
}
