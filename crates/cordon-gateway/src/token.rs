//! Caller tokens: short-lived EdDSA (Ed25519) JWTs minted by `cordon gateway token` and signed with
//! a key kept next to the config (`gateway.toml` -> `gateway.key`: the 32-byte seed, hex, mode 0600,
//! made on first use). With `require_token = true` every HTTP request carries one (`Authorization:
//! Bearer`); its `sub` is the caller's identity, recorded on every call, and its `scope` (when
//! present) the gateway tool names (`SERVER__TOOL`, or `SERVER__*`) it may list and call.
//!
//! Checked: three parts, a header whose `alg` is `EdDSA` (never `none`, never an HMAC: a verifier
//! that takes the header's word for the algorithm can be fooled), the signature (strict Ed25519),
//! `exp` (required) and `nbf` against the clock, `iss` = `cordon-gateway`.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The issuer written into and required of every token.
pub const ISSUER: &str = "cordon-gateway";

/// Why a key cannot be used or a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token key {path}: {why}\n  hint: {hint}")]
    Key { path: String, why: String, hint: String },
    #[error("{0}")]
    Invalid(String),
}

/// The identities the gateway gives callers without a token (the listeners' names): never a token's,
/// so that a record's identity says which it was, and a rate's count is not shared with them.
pub const RESERVED: [&str; 2] = ["http", "stdio"];

/// What a valid token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    /// The caller's identity.
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The tools it may list and call (`SERVER__TOOL` or `SERVER__*`); absent: every tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
}

/// Who a call comes from: the listener's name (`stdio`, `http`) or a token's identity, and the
/// token's scopes (None: every tool).
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub identity: String,
    pub scopes: Option<Vec<String>>,
    /// The common name of the client certificate it presented (an mTLS listener, `--client-ca`).
    pub cert: Option<String>,
}

/// A client certificate's name as a caller identity: itself, unless it is empty or one of the
/// listeners' own names (`stdio`, `http`, which no token may carry either): then `cert:NAME`, so
/// that a certificate cannot pass for the local stdio client or the anonymous listener in records.
pub fn cert_identity(name: &str) -> String {
    if name.is_empty() || name == "stdio" || name == "http" {
        format!("cert:{name}")
    } else {
        name.to_string()
    }
}

impl Caller {
    pub fn anonymous(who: &str) -> Caller {
        Caller { identity: who.to_string(), scopes: None, cert: None }
    }

    /// Whether its token lets it list and call `tool` (the gateway's name, `SERVER__TOOL`).
    pub fn may(&self, tool: &str) -> bool {
        self.scopes.as_ref().is_none_or(|s| in_scope(s, tool))
    }
}

/// Whether `scope` (tools, or prefixes ending in `*`) names `tool`.
pub fn in_scope(scope: &[String], tool: &str) -> bool {
    scope.iter().any(|x| match x.strip_suffix('*') {
        Some(prefix) => tool.starts_with(prefix),
        None => x == tool,
    })
}

/// The key file of a config: its name with `.key`.
pub fn key_path(config: &Path) -> PathBuf {
    config.with_extension("key")
}

fn key_err(p: &Path, why: impl Into<String>, hint: impl Into<String>) -> TokenError {
    TokenError::Key { path: p.display().to_string(), why: why.into(), hint: hint.into() }
}

/// The signing key in `p`, made (0600) when `create` and there is none. A key file that others can
/// read or write, or that is not a regular file, is refused.
pub fn load_key(p: &Path, create: bool) -> Result<SigningKey, TokenError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    match std::fs::symlink_metadata(p) {
        Ok(m) => {
            if !m.file_type().is_file() {
                return Err(key_err(p, "not a regular file", "remove it; `cordon gateway token` makes a new one"));
            }
            if m.mode() & 0o077 != 0 {
                return Err(key_err(
                    p,
                    format!("its mode is {:o}: others can read it, so anyone could mint tokens", m.mode() & 0o777),
                    format!(
                        "chmod 600 {} (and, if others may have read it, remove it and mint new tokens)",
                        p.display()
                    ),
                ));
            }
            let text = std::fs::read_to_string(p).map_err(|e| key_err(p, e.to_string(), "check its permissions"))?;
            let seed = cordon_audit::unhex(text.trim())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| key_err(p, "not a key (64 hex digits)", "remove it; a new one is made on first use"))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut seed = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut seed))
                .map_err(|e| key_err(p, format!("reading /dev/urandom: {e}"), "check /dev/urandom"))?;
            let mut f =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(p).map_err(|e| {
                    key_err(p, format!("cannot create it: {e}"), "the config's directory must be writable")
                })?;
            let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            f.write_all(format!("{hex}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| key_err(p, format!("cannot write it: {e}"), "check the disk"))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(key_err(
            p,
            "missing: require_token needs the key tokens are signed with",
            "`cordon gateway token --config CONFIG --identity NAME` makes it (next to the config) and mints a token",
        )),
        Err(e) => Err(key_err(p, e.to_string(), "check its permissions")),
    }
}

/// A token for `identity`, valid from now for `ttl`, limited to `scopes` when given.
pub fn mint(key: &SigningKey, identity: &str, ttl: Duration, scopes: Option<Vec<String>>, now: i64) -> String {
    let header = b64(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let claims = Claims {
        iss: ISSUER.into(),
        sub: identity.into(),
        iat: now,
        nbf: now,
        exp: now + ttl.as_secs() as i64,
        scope: scopes,
    };
    let payload = b64(serde_json::to_string(&claims).unwrap_or_default().as_bytes());
    let signed = format!("{header}.{payload}");
    let sig = key.sign(signed.as_bytes());
    format!("{signed}.{}", b64(&sig.to_bytes()))
}

/// The claims of `token` if it is one this key signed, in force at `now` (seconds since the epoch).
pub fn verify(key: &VerifyingKey, token: &str, now: i64) -> Result<Claims, TokenError> {
    let bad = |m: String| TokenError::Invalid(m);
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(bad(format!("not a JWT: {} part(s), a JWT has 3 (header.payload.signature)", parts.len())));
    };
    let header: serde_json::Value = unb64(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("its header is not base64url JSON".into()))?;
    match header.get("alg").and_then(|a| a.as_str()) {
        Some("EdDSA") => {}
        Some(a) => {
            return Err(bad(format!("its alg is `{a}`: the gateway takes only EdDSA tokens (cordon gateway token)")))
        }
        None => return Err(bad("its header names no alg".into())),
    }
    let sig = unb64(s)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        .ok_or_else(|| bad("its signature is not 64 base64url bytes".into()))?;
    key.verify_strict(format!("{h}.{p}").as_bytes(), &sig).map_err(|_| {
        bad("its signature does not verify with this gateway's key (another key, or the token was altered)".into())
    })?;
    let c: Claims = unb64(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("its payload is not the claims cordon gateway token writes (iss, sub, nbf, exp)".into()))?;
    if c.iss != ISSUER {
        return Err(bad(format!("its issuer is `{}`, not {ISSUER}", c.iss)));
    }
    if RESERVED.contains(&c.sub.as_str()) {
        return Err(bad(format!("its identity `{}` is a listener's own name, which no token may carry", c.sub)));
    }
    if now >= c.exp {
        return Err(bad(format!("it expired {}s ago (identity `{}`): mint a new one", now - c.exp, c.sub)));
    }
    if now < c.nbf {
        return Err(bad(format!("it is not valid for another {}s (nbf)", c.nbf - now)));
    }
    Ok(c)
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 7515).
pub fn b64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// Decodes base64url without padding; None on any other character or a impossible length.
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for ch in s.bytes() {
        let v = B64.iter().position(|b| *b == ch)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificates_name_cannot_pass_for_a_listener() {
        assert_eq!(cert_identity("alice"), "alice");
        assert_eq!(cert_identity("stdio"), "cert:stdio");
        assert_eq!(cert_identity("http"), "cert:http");
        assert_eq!(cert_identity(""), "cert:");
    }

    #[test]
    fn base64url_round_trips() {
        for n in 0..40 {
            let d: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(unb64(&b64(&d)).as_deref(), Some(&d[..]), "{n}");
        }
        assert_eq!(b64(b"hi?"), "aGk_");
        assert_eq!(unb64("a=="), None);
    }

    #[test]
    fn a_token_verifies_with_its_key_only_within_its_time_and_never_with_another_alg() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let t = mint(&k, "ci", Duration::from_secs(60), Some(vec!["py__echo".into()]), 1000);
        let c = verify(&k.verifying_key(), &t, 1010).expect("valid");
        assert_eq!((c.sub.as_str(), c.exp), ("ci", 1060));
        assert!(verify(&k.verifying_key(), &t, 1060).is_err(), "expired at exp");
        assert!(verify(&SigningKey::from_bytes(&[8; 32]).verifying_key(), &t, 1010).is_err(), "another key");
        let parts: Vec<&str> = t.split('.').collect();
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), parts[1]);
        let e = verify(&k.verifying_key(), &none, 1010).expect_err("refused").to_string();
        assert!(e.contains("`none`"), "{e}");
        let hs = format!("{}.{}.{}", b64(br#"{"alg":"HS256"}"#), parts[1], parts[2]);
        assert!(verify(&k.verifying_key(), &hs, 1010).expect_err("refused").to_string().contains("HS256"));
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(br#"{"iss":"cordon-gateway","sub":"root","iat":1000,"nbf":1000,"exp":9999}"#),
            parts[2]
        );
        assert!(verify(&k.verifying_key(), &tampered, 1010).expect_err("refused").to_string().contains("signature"));
    }

    #[test]
    fn a_token_carrying_a_listeners_name_is_refused() {
        let k = SigningKey::from_bytes(&[7; 32]);
        for id in RESERVED {
            let t = mint(&k, id, Duration::from_secs(60), None, 1000);
            let e = verify(&k.verifying_key(), &t, 1001).map(|c| c.sub);
            assert!(matches!(&e, Err(TokenError::Invalid(m)) if m.contains("listener's own name")), "{id}: {e:?}");
        }
    }

    #[test]
    fn scopes_name_tools_or_a_servers_tools() {
        let c = Caller { identity: "x".into(), scopes: Some(vec!["py__echo".into(), "fs__*".into()]), cert: None };
        assert!(c.may("py__echo") && c.may("fs__read") && !c.may("py__env"));
        assert!(Caller::anonymous("stdio").may("anything"));
    }
}
