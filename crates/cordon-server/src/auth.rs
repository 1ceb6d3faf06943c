//! Tokens and roles. A token is 32 random bytes (from /dev/urandom) in hex, printed once; the
//! server keeps only its SHA-256. `node` tokens write (ingest, as the node they are named for),
//! `viewer` tokens read (dashboard, metrics), `admin` tokens do both. A browser may carry a token
//! in an HttpOnly, SameSite=Strict cookie set by the login form; the cookie is honoured for reads
//! only, so a page elsewhere cannot make a browser write.

use sha2::{Digest, Sha256};
use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Node,
    Viewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "node" => Some(Role::Node),
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn may_write(self) -> bool {
        matches!(self, Role::Node | Role::Admin)
    }

    pub fn may_read(self) -> bool {
        matches!(self, Role::Viewer | Role::Admin)
    }
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    pub name: String,
}

/// A new random token: `cordon_` and 64 hex digits.
pub fn new_token() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!("cordon_{}", cordon_audit::hex(&b)))
}

pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// Where a request carries its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Bearer,
    Cookie,
}

pub const COOKIE: &str = "cordon_token";

/// The token of a request: the Authorization header (Bearer), else the login cookie.
pub fn token_of(headers: &axum::http::HeaderMap) -> Option<(String, Carrier)> {
    use axum::http::header::{AUTHORIZATION, COOKIE as COOKIE_H};
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?;
        return Some((t.trim().to_string(), Carrier::Bearer));
    }
    headers.get_all(COOKIE_H).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE).then(|| (v.to_string(), Carrier::Cookie))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_found_in_header_or_cookie() {
        let (a, b) = (new_token().expect("urandom"), new_token().expect("urandom"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 7 + 64);
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", "x=1; cordon_token=abc".parse().expect("header"));
        assert_eq!(token_of(&h), Some(("abc".into(), Carrier::Cookie)));
        h.insert("authorization", "Bearer def".parse().expect("header"));
        assert_eq!(token_of(&h), Some(("def".into(), Carrier::Bearer)));
        h.insert("authorization", "Basic def".parse().expect("header"));
        assert_eq!(token_of(&h), None, "another scheme is no token (and no fallback to the cookie)");
    }
}
