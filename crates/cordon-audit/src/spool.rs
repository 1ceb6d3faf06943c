//! The recovery spool: records a session produced but the database would not take (locked by
//! another process, disk full, read-only) are written to a spool file instead of being lost; the next
//! cordon that opens the log for writing chains them in, behind a `recovered` record that names the
//! file, and seals the session. `cordon audit verify` lists spool files still waiting.
//!
//! The spool lives beside the database (`audit.db.spool/`); when that directory cannot be written
//! (the disk that filled is the same), in a fallback under /run (root: `/run/cordon/spool/`, others:
//! `$XDG_RUNTIME_DIR/cordon-spool/`), named after the database's path. Both are masked in sessions
//! (/run is private to a session in any case). Only directories and files owned by this user and
//! writable by no one else are read: a spool file is trusted to carry the log owner's records.

use crate::files::{private_dirs, sync_dir, unique_tmp};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The first line of a spool file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpoolHeader {
    pub cordon_spool: u32,
    /// Unique per spool file: importing twice is refused by it.
    pub id: String,
    pub session: String,
    /// Seal the session after importing (the run ended; its seal could not be written).
    pub seal: bool,
    /// Why the records were spooled.
    pub reason: String,
    pub db: String,
}

/// One record: the body exactly as it would have been chained.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpoolRecord {
    pub kind: String,
    pub ts_ms: i64,
    pub body: String,
}

/// A spool file found on disk.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub file: PathBuf,
    pub session: String,
    pub records: usize,
    /// Set when the file cannot be read or parsed (it is then kept, never deleted).
    pub problem: Option<String>,
}

pub use crate::files::{spool_dir as dir, spool_fallback_dir as fallback_dir};

/// The largest spool file read (a session's end records are small; sensor batches can be large).
pub const MAX_SPOOL_BYTES: u64 = 256 << 20;

/// Record kinds a spool may carry: what a run appends after its start (`RecordKind::spoolable`).
/// Never `start`, `seal` or `recovered`: those are cordon's own.
fn spoolable(kind: &str) -> bool {
    cordon_schema::RecordKind::parse(kind).is_some_and(|k| k.spoolable())
}

/// Writes `records` of `session` to a new spool file (fsynced) and returns its path. Tries the
/// spool directory beside the log, then the fallback; the error names both when neither works.
pub fn write(db: &Path, session: &str, records: &[SpoolRecord], seal: bool, reason: &str) -> Result<PathBuf, String> {
    let id = format!("{session}-{}-{}", now_ms(), std::process::id());
    let header = SpoolHeader {
        cordon_spool: 1,
        id: id.clone(),
        session: session.into(),
        seal,
        reason: reason.into(),
        db: db.display().to_string(),
    };
    let mut text = serde_json::to_string(&header).map_err(|e| e.to_string())? + "\n";
    for r in records {
        text.push_str(&(serde_json::to_string(r).map_err(|e| e.to_string())? + "\n"));
    }
    let mut errors = vec![];
    for d in std::iter::once(dir(db)).chain(fallback_dir(db)) {
        let file = d.join(format!("{id}.jsonl"));
        match write_file(&d, &file, text.as_bytes()) {
            Ok(()) => return Ok(file),
            Err(e) => errors.push(format!("{}: {e}", d.display())),
        }
    }
    Err(format!("no spool directory could be written ({})", errors.join("; ")))
}

fn write_file(d: &Path, file: &Path, bytes: &[u8]) -> Result<(), std::io::Error> {
    private_dirs(d)?;
    // A directory someone else made (or opened to others) would let them read or swap the records.
    for x in [Some(d), d.parent()].into_iter().flatten() {
        crate::files::check_owned(x, "spool directory").map_err(std::io::Error::other)?;
    }
    let tmp = unique_tmp(file);
    let res = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        sync_dir(file)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Spool files waiting for `db`, oldest first. Files cordon would not trust are listed with their
/// problem (and never imported).
pub fn pending(db: &Path) -> Vec<Pending> {
    let mut out: Vec<Pending> = vec![];
    let mut files: Vec<PathBuf> = vec![];
    for d in std::iter::once(dir(db)).chain(fallback_dir(db)) {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        if let Err(problem) = crate::files::check_owned(&d, "spool directory") {
            out.push(Pending { file: d, session: String::new(), records: 0, problem: Some(problem) });
            continue;
        }
        files.extend(
            rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")),
        );
    }
    files.sort_by_key(|p| std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok());
    out.extend(files.into_iter().filter_map(|f| match read(db, &f) {
        Ok((h, recs)) => Some(Pending { file: f, session: h.session, records: recs.len(), problem: None }),
        // Taken by a concurrent cordon that imported it meanwhile.
        Err(_) if !f.exists() => None,
        Err(e) => Some(Pending { file: f, session: String::new(), records: 0, problem: Some(e) }),
    }));
    out
}

/// Reads a spool file whole; anything wrong (owner, size, a damaged line, a kind cordon never
/// spools, another log's file) makes the whole file unreadable (it is kept).
pub fn read(db: &Path, file: &Path) -> Result<(SpoolHeader, Vec<SpoolRecord>), String> {
    crate::files::check_owned(file, "spool file")?;
    let size = std::fs::symlink_metadata(file).map(|m| m.len()).unwrap_or(0);
    if size > MAX_SPOOL_BYTES {
        return Err(format!(
            "spool file {} is {size} bytes, over the {} MiB limit",
            file.display(),
            MAX_SPOOL_BYTES >> 20
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read spool file {}: {e}", file.display()))?;
    let mut lines = text.lines();
    let h: SpoolHeader = serde_json::from_str(lines.next().unwrap_or(""))
        .map_err(|e| format!("spool file {}: bad header: {e}", file.display()))?;
    if h.db != db.display().to_string() {
        return Err(format!("spool file {} belongs to the log {}, not to {}", file.display(), h.db, db.display()));
    }
    let recs = lines
        .enumerate()
        .map(|(i, l)| {
            let r: SpoolRecord =
                serde_json::from_str(l).map_err(|e| format!("spool file {} line {}: {e}", file.display(), i + 2))?;
            if !spoolable(&r.kind) {
                return Err(format!(
                    "spool file {} line {}: kind `{}` is never spooled",
                    file.display(),
                    i + 2,
                    r.kind
                ));
            }
            Ok(r)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((h, recs))
}

/// Removes an imported spool file (and makes the removal durable).
pub fn remove(file: &Path) -> Result<(), std::io::Error> {
    std::fs::remove_file(file)?;
    sync_dir(file)?;
    // An emptied fallback directory goes too (remove_dir leaves a directory that is not empty).
    if let Some(d) = file.parent().filter(|d| !d.as_os_str().as_encoded_bytes().ends_with(b".spool")) {
        let _ = std::fs::remove_dir(d);
        let _ = d.parent().map(std::fs::remove_dir);
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
