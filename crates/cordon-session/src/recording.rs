//! One run's audit record: where the log is (never where the session can write), its start record
//! before the command runs, and at the end the records and the seal — or, when the database will
//! not take them, a recovery spool, so that a session that ran is never lost or reported as one
//! that did not.

use crate::{Result, SessionError};
use cordon_audit::{spool, Store};
use cordon_policy::{CompiledPolicy, Masked};
use cordon_sandbox::SessionPlan;
use cordon_schema::RecordKind;
use std::path::{Path, PathBuf};

/// The log's path: `--audit`, else `$CORDON_AUDIT`, else the default; absolute, symlinks resolved
/// (a link must not lead the checks to one place and SQLite to another).
pub fn log_path(arg: Option<&Path>) -> Result<PathBuf> {
    Ok(match arg {
        Some(p) => cordon_audit::files::absolute(p)
            .map_err(|e| SessionError::Refused(format!("--audit {}: {e}", p.display())))?,
        None => cordon_audit::default_path(),
    })
}

/// The log's files become masks of the session (unreadable even inside an allowed tree, and hard
/// links to them in the workspace are found by the scan that looks for links to credentials).
pub fn mask_log(policy: &mut CompiledPolicy, db: &Path) {
    for f in cordon_audit::files::log_files(db) {
        policy.fs.deny.push(Masked { path: f, entry: "the audit log".into(), origin: "cordon".into() });
    }
}

/// Refuses a log inside a tree the session may write: the session could rewrite its own evidence.
pub fn refuse_writable_location(db: &Path, policy: &CompiledPolicy, plan: &SessionPlan) -> Result<Option<String>> {
    if !plan.environment.ns.mount && !plan.process.landlock.enabled() {
        return Ok(Some(format!(
            "the audit log {} is not protected from the session: this host gives neither Landlock nor a mount namespace",
            db.display()
        )));
    }
    // The database (its directory holds key, head and spool), and the fallback spool elsewhere.
    let dir = db.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut places = vec![(format!("the audit log {}", db.display()), dir)];
    places.extend(cordon_audit::spool::fallback_dir(db).map(|f| (format!("its recovery spool {}", f.display()), f)));
    // The host trees the session can write, as the plan makes them (not a second reckoning here).
    let trees: Vec<&Path> = match plan.host_writable() {
        Some(v) => v,
        None => policy.fs.rules.iter().filter(|r| r.access.write).map(|r| r.path.as_path()).collect(),
    };
    for t in trees {
        let tree = t.canonicalize().unwrap_or_else(|_| t.to_path_buf());
        if let Some((what, _)) = places.iter().find(|(_, p)| p.starts_with(&tree)) {
            let from = match policy.fs.rules.iter().find(|r| r.path == t) {
                Some(r) => format!(" ({} in {})", r.entry, r.origin),
                None => String::new(),
            };
            bail!(
                "{what} is inside {}{from}, which the session may write: it could rewrite its own evidence, so nothing was run\n  hint: keep the log outside every writable tree (the default, $XDG_STATE_HOME/cordon or /var/lib/cordon, is), e.g. --audit {}",
                tree.display(),
                cordon_audit::standard_path().display()
            );
        }
    }
    Ok(None)
}

/// A run's record, open from the start record to the seal.
pub struct Recording {
    store: Store,
    session: String,
    /// The start record (seq, hash), once committed.
    start: Option<(i64, Vec<u8>)>,
}

/// What became of the end of the record.
pub enum Finished {
    Sealed,
    /// The database refused; the records are in this spool file.
    Spooled {
        error: String,
        file: PathBuf,
    },
    /// Neither the database nor any spool directory took them: the caller prints `records` (one
    /// JSON line each) as a last resort.
    Lost {
        error: String,
        records: Vec<String>,
    },
}

impl Recording {
    /// Opens the log (before the outputs, so that every file of the log exists when they are
    /// compared with it).
    pub fn open(db: &Path, session: &str) -> Result<Recording> {
        let store = Store::open(db).map_err(|e| {
            SessionError::Refused(format!(
                "{e}\n  hint: pass --audit PATH to record elsewhere, or --no-audit to run without a record"
            ))
        })?;
        Ok(Recording { store, session: session.to_string(), start: None })
    }

    /// What opening imported from the recovery spool, one line each.
    pub fn imported(&self) -> &[String] {
        self.store.imported()
    }

    /// Commits the start record: if this fails, nothing has run. Every later write checks that this
    /// record is still in the log.
    pub fn start(&mut self, start: serde_json::Value) -> Result<()> {
        let (seq, hash) = self.store.append(&self.session, &[(RecordKind::Start.as_str().into(), now_ms(), start)])?;
        self.store.set_anchor(seq, hash.clone());
        self.start = Some((seq, hash));
        Ok(())
    }

    /// The start record, for other writers of this session (the sensor's batches).
    pub fn anchor(&self) -> Option<(i64, Vec<u8>)> {
        self.start.clone()
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Appends the end of the session and seals it; on failure the records go to the spool.
    pub fn finish(&mut self, items: Vec<(RecordKind, i64, serde_json::Value)>) -> Finished {
        let items: Vec<(String, i64, serde_json::Value)> =
            items.into_iter().map(|(k, t, b)| (k.as_str().to_string(), t, b)).collect();
        let res = self.store.finish(&self.session, &items, now_ms());
        let error = match res {
            Ok(()) => return Finished::Sealed,
            Err(e) => e.to_string(),
        };
        // The seal may be all that failed: records already committed are not spooled again.
        let committed = self
            .store
            .records(&self.session)
            .map(|r| r.iter().any(|x| x.kind == RecordKind::End.as_str()))
            .unwrap_or(false);
        let rest: Vec<spool::SpoolRecord> = if committed {
            vec![]
        } else {
            items
                .iter()
                .map(|(k, t, b)| spool::SpoolRecord { kind: k.clone(), ts_ms: *t, body: cordon_audit::canonical(b) })
                .collect()
        };
        match spool::write(self.store.path(), &self.session, &rest, true, &error) {
            Ok(file) => Finished::Spooled { error, file },
            Err(e) => Finished::Lost {
                error: format!("{error}; and {e}"),
                records: rest
                    .iter()
                    .map(|r| {
                        serde_json::json!({"session": self.session, "kind": r.kind, "ts_ms": r.ts_ms, "body": r.body})
                            .to_string()
                    })
                    .collect(),
            },
        }
    }

    /// The signed head after the seal, for `--head-copy`.
    pub fn head_line(&self) -> Option<String> {
        self.store.head().ok().flatten().map(|h| h.to_line())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
