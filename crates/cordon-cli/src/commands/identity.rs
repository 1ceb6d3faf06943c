//! `cordon run --identity NAME --server URL`: the policy the server holds for an agent identity,
//! fetched, checked (its text against its SHA-256, the server's signature against the key this
//! node pinned the first time it fetched from that server) and cached beside the audit log, where
//! sessions cannot write. When the server cannot be reached, the cached version is used, checked
//! the same way, and the start record says so.

use super::audit::ship::Target;
use anyhow::{bail, Context as _, Result};
use cordon_audit::served::{valid_identity, ServedPolicy};
use cordon_schema::bodies::IdentityRef;
use std::path::{Path, PathBuf};

/// A policy file to run under, and what to record of where it came from.
pub struct Fetched {
    pub path: PathBuf,
    pub origin: IdentityRef,
}

/// The policy of `identity`, from the server or (unreachable) the cache beside `db`.
pub fn policy_for(identity: &str, t: &Target, db: &Path) -> Result<Fetched> {
    if !valid_identity(identity) {
        bail!("--identity {identity:?}: not an identity\n  hint: 1 to 128 of A-Z a-z 0-9 . _ @ -, not starting with a dot");
    }
    let dir = cache_dir(db, t.server());
    let pinned_file = dir.join("server.pub");
    let pinned = read_pinned(&pinned_file)?;
    let (doc, from) = match fetch(identity, t)? {
        Some(doc) => (doc, "server"),
        None => (cached(identity, &dir, t.server())?, "cache"),
    };
    doc.check(identity, pinned.as_ref()).map_err(|e| match e {
        cordon_audit::served::ServedError::KeyChanged { .. } => anyhow::anyhow!(
            "the policy of `{identity}` from {} is {e}: nothing was run\n  hint: if the server's key was replaced on purpose, remove {} and run again to pin the new one",
            t.server(),
            pinned_file.display()
        ),
        e => anyhow::anyhow!("the policy of `{identity}` ({from} of {}) is refused: {e}: nothing was run", t.server()),
    })?;
    // Never back: a version older than the one this node last ran (a replayed or rolled-back
    // answer) runs nothing.
    if let Some(last) = cached(identity, &dir, t.server()).ok().filter(|c| c.version > doc.version) {
        bail!(
            "{} served version {} of `{identity}`, older than version {} this node already ran: nothing was run\n  hint: if the server was restored from an older backup on purpose, remove {}",
            t.server(),
            doc.version,
            last.version,
            dir.join(format!("{identity}.json")).display()
        );
    }
    cordon_audit::files::private_dirs(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if pinned.is_none() {
        write(&pinned_file, doc.server_key.as_bytes())?;
        eprintln!(
            "cordon: pinned {}'s key {} (first use; kept in {})",
            t.server(),
            doc.server_key,
            pinned_file.display()
        );
    }
    if from == "server" {
        write(&dir.join(format!("{identity}.json")), &serde_json::to_vec(&doc)?)?;
    } else {
        eprintln!(
            "cordon: {} cannot be reached: running under the cached policy of `{identity}`, version {} (made {} UTC)",
            t.server(),
            doc.version,
            cordon_schema::time::utc(doc.created_ms)
        );
    }
    // The loader reads a file: the checked text, written for this run.
    let path = dir.join(format!("{identity}.toml"));
    write(&path, doc.text.as_bytes())?;
    Ok(Fetched {
        path,
        origin: IdentityRef {
            name: doc.identity,
            version: doc.version,
            sha256: doc.sha256,
            server: t.server().to_string(),
            server_key: doc.server_key,
            from: from.to_string(),
        },
    })
}

/// The server's answer; None when it cannot be reached or failed (5xx): then the cache serves.
fn fetch(identity: &str, t: &Target) -> Result<Option<ServedPolicy>> {
    let (status, body) = match t.get(&format!("/api/v1/policies/{identity}")) {
        Ok(a) => a,
        Err(_) => return Ok(None),
    };
    if status >= 500 {
        return Ok(None);
    }
    if status != 200 {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let why = v["error"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&body).into());
        bail!("{} refused the policy of `{identity}` ({status}): {why}", t.server());
    }
    serde_json::from_slice(&body)
        .map(Some)
        .with_context(|| format!("{} answered the policy of `{identity}` with something that is not one", t.server()))
}

fn cached(identity: &str, dir: &Path, server: &str) -> Result<ServedPolicy> {
    let file = dir.join(format!("{identity}.json"));
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{server} cannot be reached and this node has no cached policy for `{identity}`: nothing was run\n  hint: run once while the server is reachable"
        ),
        Err(e) => bail!("cannot read the cached policy {}: {e}", file.display()),
    };
    serde_json::from_slice(&bytes).with_context(|| format!("the cached policy {} is not one", file.display()))
}

/// The server's key this node pinned (hex in the file), None before the first fetch.
fn read_pinned(file: &Path) -> Result<Option<cordon_audit::served::VerifyingKey>> {
    match std::fs::read_to_string(file) {
        Ok(t) => cordon_audit::ship::parse_key(t.trim()).map(Some).ok_or_else(|| {
            anyhow::anyhow!("{} does not hold a key: remove it to pin the server's key again", file.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => bail!("cannot read the pinned key {}: {e}", file.display()),
    }
}

fn write(file: &Path, bytes: &[u8]) -> Result<()> {
    cordon_audit::files::write_atomic(file, bytes).with_context(|| format!("cannot write {}", file.display()))
}

/// `<log>.policies/<first 16 hex of sha256(server URL)>/`.
fn cache_dir(db: &Path, server: &str) -> PathBuf {
    use sha2::Digest;
    let tag: String = sha2::Sha256::digest(server.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
    cordon_audit::files::policy_cache_dir(db).join(tag)
}
