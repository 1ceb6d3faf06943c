//! The recovery spool: records a session produced but the database would not take (locked by
//! another process, disk full, read-only) are written to a spool file instead of being lost; the next
//! cordon that opens the log for writing chains them in, behind a `recovered` record that names the
//! file, and seals the session. `cordon audit verify` lists spool files still waiting.
//!
//! The spool lives beside the database (`audit.db.spool/`); when that directory cannot be written
//! (the disk that filled is the same), in `/var/tmp/cordon-spool-UID/` under a name derived from
//! the database's path.

use crate::files::{private_dirs, sync_dir, unique_tmp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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

/// The spool directory beside the database.
pub fn dir(db: &Path) -> PathBuf {
    crate::files::sidecar(db, ".spool")
}

/// The fallback directory, on another filesystem than most logs.
pub fn fallback_dir(db: &Path) -> PathBuf {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    let tag: String =
        Sha256::digest(db.as_os_str().as_encoded_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("/var/tmp/cordon-spool-{uid}")).join(tag)
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
    for d in [dir(db), fallback_dir(db)] {
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

/// Spool files waiting for `db`, oldest first.
pub fn pending(db: &Path) -> Vec<Pending> {
    let mut files: Vec<PathBuf> = vec![];
    for d in [dir(db), fallback_dir(db)] {
        if let Ok(rd) = std::fs::read_dir(&d) {
            files.extend(
                rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")),
            );
        }
    }
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .into_iter()
        .map(|f| match read(&f) {
            Ok((h, recs)) => Pending { file: f, session: h.session, records: recs.len(), problem: None },
            Err(e) => Pending { file: f, session: String::new(), records: 0, problem: Some(e) },
        })
        .collect()
}

/// Reads a spool file whole; any damaged line makes the whole file unreadable (it is kept).
pub fn read(file: &Path) -> Result<(SpoolHeader, Vec<SpoolRecord>), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read spool file {}: {e}", file.display()))?;
    let mut lines = text.lines();
    let h: SpoolHeader = serde_json::from_str(lines.next().unwrap_or(""))
        .map_err(|e| format!("spool file {}: bad header: {e}", file.display()))?;
    let recs = lines
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<SpoolRecord>(l)
                .map_err(|e| format!("spool file {} line {}: {e}", file.display(), i + 2))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((h, recs))
}

/// Removes an imported spool file (and makes the removal durable).
pub fn remove(file: &Path) -> Result<(), std::io::Error> {
    std::fs::remove_file(file)?;
    sync_dir(file)?;
    // An emptied fallback directory goes too (remove_dir leaves a directory that is not empty).
    if let Some(d) = file.parent().filter(|d| d.starts_with("/var/tmp")) {
        let _ = std::fs::remove_dir(d);
        let _ = d.parent().map(std::fs::remove_dir);
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
