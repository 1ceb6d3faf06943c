//! A new log, made so that a crash at any step leaves a log that verifies.
//!
//! Its database appears whole: made (WAL, table) under a temporary name, then named. A first writer
//! killed while SQLite switched a fresh file to WAL left a hot rollback journal, which a read-only
//! open (`verify`) cannot roll back: "UNREADABLE" (found by `audit_log_birth_survives_a_kill_at_each_step`).
//!
//! Its key and its first head are made in the order a crash cannot break: the head (record 0)
//! is signed and in place before the key takes its name. `verify` reads a key without a head as a
//! deleted head, and the old order (key, then head) left exactly that when cordon was killed between
//! the two (seen in CI: `audit_log_survives_kill_9_at_random_points`, killed at 76 ms).
//!
//! The candidate key waits at `<log>.key.new`. A crash after the head and before the rename leaves
//! the candidate with the head it signed; the next open installs it, and `verify` accepts it for a
//! log that has no records yet.

use crate::files::{head_path, key_path, private_file, sync_dir, unique_tmp, write_atomic};
use crate::head::Head;
use ed25519_dalek::SigningKey;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where a new log's key waits until its head is written.
pub fn candidate_path(db: &Path) -> PathBuf {
    db.with_extension("key.new")
}

/// Why the log's key could not be had.
#[derive(Debug)]
pub enum KeyError {
    /// The files could not be read or written.
    Io(String),
    /// The log has a head or records but no key (nor a candidate that signed its head 0): the key
    /// was removed. No new one is made: it would sign nothing the log holds, and a run that
    /// replaced it would have destroyed the evidence that it was removed.
    Lost(String),
}

impl From<String> for KeyError {
    fn from(m: String) -> KeyError {
        KeyError::Io(m)
    }
}

/// The log's signing key. When there is none, one is made, only for a log that is `empty` and
/// has no head; its head 0 is written first. `lock` is the log's lock file, which orders this
/// against other writers of the head.
pub fn log_key(db: &Path, lock: &File, empty: bool) -> Result<SigningKey, KeyError> {
    #[allow(deprecated)]
    nix::fcntl::flock(lock.as_raw_fd(), nix::fcntl::FlockArg::LockExclusive)
        .map_err(|e| format!("cannot lock {}: {e}", crate::files::lock_path(db).display()))?;
    let r = locked(db, empty);
    #[allow(deprecated)]
    let _ = nix::fcntl::flock(lock.as_raw_fd(), nix::fcntl::FlockArg::Unlock);
    r
}

fn locked(db: &Path, empty: bool) -> Result<SigningKey, KeyError> {
    let p = key_path(db);
    if let Some(k) = crate::key::load(&p)? {
        return Ok(k);
    }
    let head = Head::read(&head_path(db))?;
    if let Some(k) = adoptable(db, head.as_ref(), empty)? {
        install(db, &p)?;
        return Ok(k);
    }
    if head.is_some() || !empty {
        return Err(KeyError::Lost(format!(
            "its signing key {} is missing although the log has {}: cordon will not make a new one (nothing it signed could be checked again). `cordon audit verify` says more; record elsewhere with --audit NEWPATH",
            p.display(),
            if empty { "a signed head" } else { "records" }
        )));
    }
    let key = SigningKey::from_bytes(&seed()?);
    write_candidate(db, &key)?;
    // The candidate's name is durable before a head signed by it can be.
    sync_dir(&candidate_path(db)).map_err(|e| format!("cannot sync the log's directory: {e}"))?;
    if head.is_none() && empty {
        let h = head_path(db);
        write_atomic(&h, Head::sign(&key, 0, &[0u8; 32]).to_line().as_bytes())
            .map_err(|e| format!("cannot write the head file {}: {e}", h.display()))?;
    }
    install(db, &p)?;
    Ok(key)
}

/// The candidate left by a crash between writing head 0 and naming the key: used when it is ours,
/// the log is empty and the head is record 0 signed by it. Anything else is not adopted.
pub fn adoptable(db: &Path, head: Option<&Head>, empty: bool) -> Result<Option<SigningKey>, String> {
    let Some(h) = head.filter(|h| h.seq == 0 && empty) else { return Ok(None) };
    let c = candidate_path(db);
    crate::key::trusted(&c)?;
    Ok(crate::key::load(&c)?.filter(|k| h.signed_by(&k.verifying_key())))
}

/// What verify accepts as the key of a log killed between its head 0 and its key's name: as
/// [`adoptable`], the candidate owned by the database's owner (verify may run as another user, root
/// auditing a user's log), private and with one name.
pub fn candidate_for_verify(db: &Path, head: &Head, empty: bool) -> Option<ed25519_dalek::VerifyingKey> {
    use std::os::unix::fs::MetadataExt;
    if head.seq != 0 || !empty {
        return None;
    }
    let c = candidate_path(db);
    let (m, owner) = (std::fs::symlink_metadata(&c).ok()?, std::fs::metadata(db).ok()?.uid());
    if !m.is_file() || m.uid() != owner || m.mode() & 0o077 != 0 || m.nlink() != 1 {
        return None;
    }
    let k = crate::key::read(&c).ok()??.verifying_key();
    head.signed_by(&k).then_some(k)
}

fn seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(seed)
}

/// A fresh candidate file (a leftover one that signed nothing is replaced, never followed).
fn write_candidate(db: &Path, key: &SigningKey) -> Result<(), String> {
    let c = candidate_path(db);
    let err = |e: std::io::Error| format!("cannot write the new signing key {}: {e}", c.display());
    match std::fs::remove_file(&c) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&c).map_err(err)?;
    f.write_all(&key.to_bytes()).and_then(|_| f.sync_all()).map_err(err)
}

/// Gives the candidate the key's name (never over a key) and makes the rename durable. Where the
/// filesystem cannot rename that way the key was linked: the candidate's name is then removed, or
/// the key would have two names, which every later open refuses.
fn install(db: &Path, p: &Path) -> Result<(), String> {
    let c = candidate_path(db);
    crate::key::install(&c, p)
        .and_then(|_| match std::fs::remove_file(&c) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(p),
        })
        .map_err(|e| format!("cannot install the signing key {}: {e}", p.display()))
}

/// Makes the database at `db` when there is none (another cordon may be making it at once: one
/// wins, the others use its file). An existing file is left to the caller.
pub fn database(db: &Path, schema: &str) -> Result<(), String> {
    match std::fs::symlink_metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => return Ok(()),
    }
    let tmp = unique_tmp(db);
    // A file at this name is a leftover of a killed process that had this pid: never reused.
    remove_tmp(&tmp);
    let made = (|| {
        private_file(&tmp).map_err(|e| e.to_string())?;
        let conn = rusqlite::Connection::open(&tmp).map_err(|e| e.to_string())?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; {schema} PRAGMA user_version = 1;"
        ))
        .map_err(|e| e.to_string())?;
        // Closing the only connection checkpoints the WAL into the file (fsynced) and removes it.
        conn.close().map_err(|(_, e)| e.to_string())?;
        match crate::key::install(&tmp, db) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e.to_string()),
            _ => sync_dir(db).map_err(|e| e.to_string()),
        }
    })();
    remove_tmp(&tmp);
    made.map_err(|e| format!("cannot create the database: {e}"))
}

/// The temporary database and its SQLite sidecars.
fn remove_tmp(tmp: &Path) {
    for f in ["", "-wal", "-shm", "-journal"] {
        let mut s = tmp.as_os_str().to_owned();
        s.push(f);
        let _ = std::fs::remove_file(PathBuf::from(s));
    }
}

/// Where the filesystem cannot rename without replacing, a new log's database and key are linked
/// to their names and their temporary names removed after: a crash between the two left the file
/// with two names, which every later open refuses (a second name could be a door into the log).
/// Those temporary names of the same file are cordon's own: removed here.
pub fn drop_second_names(db: &Path) {
    use std::os::unix::fs::MetadataExt;
    let same = |a: &Path, b: &Path| match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.is_file() && y.is_file() && x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    };
    let c = candidate_path(db);
    if same(&c, &key_path(db)) {
        let _ = std::fs::remove_file(&c);
    }
    if !std::fs::symlink_metadata(db).is_ok_and(|m| m.nlink() > 1) {
        return;
    }
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else { return };
    let prefix = format!("{}.tmp.", name.to_string_lossy());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) && same(&e.path(), db) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
