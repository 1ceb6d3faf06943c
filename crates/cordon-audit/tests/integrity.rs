//! The log never says "ok" about what it cannot read, never lets a writer re-seal damage, creates
//! its key once under concurrency, keeps every file private, and loses nothing the database would
//! not take (issue 11, items 1, 2, 5, 6, 7, 9, 10). Real SQLite files in temporary directories.

use cordon_audit::{spool, verify, verify_with, AuditError, Head, Store};
use rusqlite::Connection;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        if let Some(f) = spool::fallback_dir(&self.0.join("audit.db")) {
            let _ = std::fs::remove_dir_all(f);
        }
    }
}

impl std::ops::Deref for Dir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("cordon-integrity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    Dir(d)
}

/// Three sealed sessions of 3 records + seal: seq 1..=12, head names 12.
fn build(d: &Path) -> PathBuf {
    let p = d.join("audit.db");
    let mut s = Store::open(&p).expect("open");
    for i in 0..3 {
        let id = format!("sess{i}");
        let items = vec![
            ("start".to_string(), 1, json!({"command": ["true"]})),
            ("denial".to_string(), 2, json!({"n": i})),
            ("end".to_string(), 3, json!({"exit": 0})),
        ];
        s.append(&id, &items).expect("append");
        s.seal(&id, 4).expect("seal");
    }
    p
}

fn sql(p: &Path, q: &str) {
    Connection::open(p).expect("open").execute_batch(q).expect(q);
}

fn not_ok(p: &Path) -> String {
    let r = verify(p).expect("verify");
    assert!(!r.ok(), "must not verify: {r:?}");
    r.unreadable.clone().or(r.first_bad.map(|b| b.what)).unwrap_or_default()
}

#[test]
fn a_dropped_or_renamed_table_is_not_ok() {
    let d = dir("drop");
    let p = build(&d);
    sql(&p, "DROP TABLE records");
    let why = not_ok(&p);
    assert!(why.contains("no `records` table") && why.contains("names record 12"), "{why}");
    let d2 = dir("rename");
    let p2 = build(&d2);
    sql(&p2, "ALTER TABLE records RENAME TO old");
    assert!(not_ok(&p2).contains("no `records` table"));
}

#[test]
fn an_overwritten_or_random_file_is_not_ok() {
    let d = dir("garble");
    let p = build(&d);
    // The log's pages live in the WAL until a checkpoint; move them into the main file first (with
    // them in the WAL, SQLite reads the intact copies and the log does verify, correctly).
    sql(&p, "PRAGMA wal_checkpoint(TRUNCATE)");
    let mut bytes = std::fs::read(&p).expect("read");
    bytes[..100].fill(b'x');
    std::fs::write(&p, &bytes).expect("write");
    let why = not_ok(&p);
    assert!(why.contains("not a readable SQLite database") || why.contains("cannot"), "{why}");
    let d2 = dir("random");
    let p2 = build(&d2);
    sql(&p2, "PRAGMA wal_checkpoint(TRUNCATE)");
    let noise: Vec<u8> = (0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&p2, noise).expect("write");
    let _ = std::fs::remove_file(d2.join("audit.db-wal"));
    not_ok(&p2);
}

#[test]
fn a_missing_file_is_not_ok() {
    let d = dir("missing");
    let r = verify(&d.join("nope.db")).expect("verify");
    assert!(!r.ok() && r.unreadable.is_some(), "{r:?}");
    assert!(!d.join("nope.db").exists(), "verify created the file");
}

#[test]
fn truncation_with_the_head_file_deleted_is_not_ok() {
    let d = dir("trunc-head");
    let p = build(&d);
    sql(&p, "DELETE FROM records WHERE seq > 8");
    std::fs::remove_file(d.join("audit.head")).expect("rm head");
    assert!(not_ok(&p).contains("head file"), "the missing head must be named");
    // And no writer re-seals the damage.
    match Store::open(&p) {
        Err(AuditError::Damaged { why, .. }) => assert!(why.contains("missing"), "{why}"),
        Ok(_) => panic!("a writer opened a log whose head was deleted"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn an_anchored_head_catches_a_rewritten_head() {
    let d = dir("anchor");
    let p = build(&d);
    let anchor = Store::open_read_only(&p).expect("ro").head().expect("head").expect("some");
    assert_eq!(anchor.seq, 12);
    let r = verify_with(&p, Some(&anchor)).expect("verify");
    assert!(r.ok() && r.anchor_matches == Some(true), "{r:?}");
    // Someone with the key cuts the last session and writes a fresh, validly signed head: only the
    // anchor kept elsewhere can tell.
    sql(&p, "DELETE FROM records WHERE seq > 8");
    let key: [u8; 32] = std::fs::read(d.join("audit.key")).expect("key").try_into().expect("32");
    let sk = ed25519_dalek::SigningKey::from_bytes(&key);
    let h8: Vec<u8> = Connection::open(&p)
        .expect("o")
        .query_row("SELECT hash FROM records WHERE seq = 8", [], |r| r.get(0))
        .expect("h");
    std::fs::write(d.join("audit.head"), Head::sign(&sk, 8, &h8).to_line()).expect("forge");
    assert!(verify(&p).expect("v").ok(), "without an anchor this is undetectable (documented)");
    let r = verify_with(&p, Some(&anchor)).expect("verify");
    assert!(!r.ok() && r.anchor_matches == Some(false), "{r:?}");
    assert!(r.first_bad.expect("bad").what.contains("truncated"));
}

#[test]
fn a_writer_refuses_a_log_that_lost_its_table() {
    let d = dir("writer-drop");
    let p = build(&d);
    sql(&p, "DROP TABLE records");
    assert!(matches!(Store::open(&p), Err(AuditError::Damaged { .. })));
    assert!(not_ok(&p).contains("no `records` table"), "opening must not have recreated the table");
}

#[test]
fn concurrent_first_use_signs_with_one_key() {
    let d = dir("concurrent");
    let p = d.join("fresh/audit.db");
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut s = Store::open(&p).expect("open");
                let id = format!("s{i}");
                s.append(&id, &[("start".into(), 1, json!({}))]).expect("append");
                s.seal(&id, 2).expect("seal");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let r = verify(&p).expect("verify");
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.sessions, r.sealed, r.head_seq), (20, 20, Some(40)));
}

#[test]
fn every_file_is_private() {
    let d = dir("modes");
    let p = d.join("new/audit.db");
    let mut s = Store::open(&p).expect("open");
    s.append("a", &[("start".into(), 1, json!({}))]).expect("append");
    s.seal("a", 2).expect("seal");
    for f in ["audit.db", "audit.db-wal", "audit.db-shm", "audit.key", "audit.head"] {
        let m = std::fs::metadata(d.join("new").join(f)).unwrap_or_else(|e| panic!("{f}: {e}")).permissions().mode()
            & 0o777;
        assert_eq!(m, 0o600, "{f} has mode {m:o}");
    }
    assert_eq!(std::fs::metadata(d.join("new")).expect("dir").permissions().mode() & 0o777, 0o700);
}

#[test]
fn read_only_opening_creates_nothing() {
    let d = dir("ro");
    let p = d.join("typo/audit.db");
    assert!(matches!(Store::open_read_only(&p), Err(AuditError::Missing { .. })));
    assert!(!d.join("typo").exists(), "a directory was created");
    let q = d.join("typo.db");
    assert!(matches!(Store::open_read_only(&q), Err(AuditError::Missing { .. })));
    assert_eq!(std::fs::read_dir(&*d).expect("ls").count(), 0, "something was created");
}

#[test]
fn session_prefixes_are_literal_and_unique() {
    let d = dir("prefix");
    let p = d.join("audit.db");
    let mut s = Store::open(&p).expect("open");
    for id in ["abc1", "abc2", "x_y", "xzy"] {
        s.append(id, &[("start".into(), 1, json!({}))]).expect("append");
    }
    assert_eq!(s.resolve_session("abc1").expect("exact"), "abc1");
    assert_eq!(s.resolve_session("x_").expect("literal _"), "x_y");
    match s.resolve_session("abc") {
        Err(AuditError::Ambiguous { candidates, .. }) => assert_eq!(candidates, vec!["abc1", "abc2"]),
        other => panic!("{other:?}"),
    }
    for bad in ["", "%", "_", "a%"] {
        assert!(matches!(s.resolve_session(bad), Err(AuditError::NoSession { .. })), "`{bad}` must match nothing");
    }
    assert_eq!(s.records("abc").expect("records").len(), 0, "records() takes an exact id");
}

#[test]
fn spooled_records_are_imported_once_and_sealed() {
    let d = dir("spool");
    let p = build(&d);
    let mut s = Store::open(&p).expect("open");
    s.append("late", &[("start".into(), 1, json!({"command": ["x"]}))]).expect("start");
    drop(s);
    let recs = vec![spool::SpoolRecord { kind: "end".into(), ts_ms: 9, body: r#"{"exit_code":42}"#.into() }];
    let f = spool::write(&p, "late", &recs, true, "database is locked").expect("spool");
    let copy = d.join("copy.jsonl");
    std::fs::copy(&f, &copy).expect("copy");
    let r = verify(&p).expect("verify");
    assert_eq!(r.pending.len(), 1, "verify lists the spool: {r:?}");
    assert_eq!(r.unfinished, vec!["late".to_string()]);
    let s = Store::open(&p).expect("open imports");
    assert!(s.imported()[0].contains("imported 1 record"), "{:?}", s.imported());
    let kinds: Vec<String> = s.records("late").expect("recs").into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["start", "recovered", "end", "seal"]);
    drop(s);
    assert!(!f.exists(), "the spool file is removed after import");
    let r = verify(&p).expect("verify");
    assert!(r.ok() && r.unfinished.is_empty() && r.pending.is_empty(), "{r:?}");
    // The same file again (a removal that did not happen): not imported twice.
    std::fs::rename(&copy, &f).expect("restore");
    let s = Store::open(&p).expect("open");
    assert!(s.imported()[0].contains("already imported"), "{:?}", s.imported());
    assert_eq!(s.records("late").expect("recs").len(), 4);
}

/// A hand-made spool file (as the log's owner could write one): header and records.
fn craft(p: &Path, name: &str, session: &str, seal: bool, records: &[(&str, &str)]) -> PathBuf {
    let d = spool::dir(p);
    std::fs::create_dir_all(&d).expect("spool dir");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let mut text = serde_json::to_string(&json!({"cordon_spool": 1, "id": name, "session": session, "seal": seal, "reason": "test", "db": p.display().to_string()})).expect("json") + "\n";
    for (k, b) in records {
        text += &(serde_json::to_string(&json!({"kind": k, "ts_ms": 5, "body": b})).expect("json") + "\n");
    }
    let f = d.join(format!("{name}.jsonl"));
    std::fs::write(&f, text).expect("write");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    f
}

#[test]
fn spool_files_that_cordon_never_writes_are_kept_not_imported() {
    let d = dir("craft");
    let p = build(&d);
    let mut s = Store::open(&p).expect("open");
    s.append("open1", &[("start".into(), 1, json!({}))]).expect("start");
    drop(s);
    // A seal record, records for a sealed session, records for a session that never started.
    let a = craft(&p, "a", "open1", false, &[("seal", "{}")]);
    let b = craft(&p, "b", "sess0", true, &[("end", "{\"exit_code\":0}")]);
    let c = craft(&p, "c", "ghost", true, &[("end", "{\"exit_code\":0}")]);
    let s = Store::open(&p).expect("open");
    let said = s.imported().join("\n");
    assert!(
        said.contains("`seal` is never spooled") && said.contains("already sealed") && said.contains("no start record"),
        "{said}"
    );
    drop(s);
    for f in [&a, &b, &c] {
        assert!(f.exists(), "{} kept", f.display());
    }
    let r = verify(&p).expect("verify");
    assert!(!r.ok(), "an unreadable spool file is evidence unread: {r:?}");
    assert_eq!(r.first_bad, None, "the chain itself is intact");
}

#[test]
fn spool_files_of_another_user_or_open_to_others_are_not_trusted() {
    let d = dir("owner");
    let p = build(&d);
    let f = craft(&p, "x", "sess0", true, &[("end", "{}")]);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let s = Store::open(&p).expect("open");
    assert!(s.imported().join("\n").contains("writable by other users"), "{:?}", s.imported());
    assert!(f.exists());
}

#[test]
fn a_key_or_database_someone_else_could_write_is_refused() {
    let d = dir("keymode");
    let p = build(&d);
    std::fs::set_permissions(d.join("audit.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    match Store::open(&p) {
        Err(e) => assert!(e.to_string().contains("readable by other users"), "{e}"),
        Ok(_) => panic!("a key others can read signed on"),
    }
    std::fs::set_permissions(d.join("audit.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    assert!(Store::open(&p).is_err(), "a database others can write is not trusted");
}

#[test]
fn a_log_file_with_a_second_name_is_refused() {
    let d = dir("nlink");
    let p = build(&d);
    std::fs::hard_link(&p, d.join("elsewhere")).expect("link");
    match Store::open(&p) {
        Err(e) => assert!(e.to_string().contains("hard links"), "{e}"),
        Ok(_) => panic!("a log with a second name was opened for writing"),
    }
}

#[test]
fn an_emptied_log_with_its_key_left_is_not_ok_and_an_anchor_catches_it() {
    let d = dir("emptied");
    let p = build(&d);
    let anchor = Store::open_read_only(&p).expect("ro").head().expect("head").expect("some");
    std::fs::write(&p, b"").expect("empty");
    for f in ["audit.db-wal", "audit.db-shm", "audit.head"] {
        let _ = std::fs::remove_file(d.join(f));
    }
    assert!(!verify(&p).expect("v").ok(), "a key without a head is a deleted head");
    let r = verify_with(&p, Some(&anchor)).expect("v");
    assert!(!r.ok(), "{r:?}");
    // The same with the table kept but emptied.
    let d2 = dir("emptied2");
    let p2 = build(&d2);
    sql(&p2, "DELETE FROM records");
    std::fs::remove_file(d2.join("audit.head")).expect("rm");
    assert!(!verify(&p2).expect("v").ok());
}

#[test]
fn records_outside_a_session_are_named() {
    let d = dir("outside");
    let p = build(&d);
    // Append, with correct hashes, a record after sess0's seal and one of a session that never started.
    let c = Connection::open(&p).expect("open");
    let (seq, prev): (i64, Vec<u8>) = c
        .query_row("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("tail");
    let h = cordon_audit::record_hash(&prev, seq + 1, "sess0", "end", 9, "{}");
    c.execute("INSERT INTO records VALUES (?1, 'sess0', 'end', 9, '{}', ?2, ?3)", rusqlite::params![seq + 1, prev, h])
        .expect("insert");
    drop(c);
    let r = verify(&p).expect("v");
    assert!(r.first_bad.as_ref().is_some_and(|b| b.what.contains("after the seal")), "{r:?}");
}

#[test]
fn a_writer_never_seals_over_a_log_cut_short_under_it() {
    let d = dir("under");
    let p = build(&d);
    let mut s = Store::open(&p).expect("open");
    let (seq, hash) = s.append("running", &[("start".into(), 1, json!({}))]).expect("start");
    s.set_anchor(seq, hash);
    sql(&p, "DELETE FROM records WHERE seq >= 9");
    match s.finish("running", &[("end".into(), 2, json!({"exit_code": 0}))], 3) {
        Err(AuditError::Damaged { why, .. }) => assert!(why.contains("cut short"), "{why}"),
        other => panic!("sealed over a cut log: {other:?}"),
    }
}

/// A writer that wrote its signed head still holds SQLite's lock on the database file. The head's
/// flock once opened and closed the file, and closing any descriptor of a file drops every POSIX
/// lock the process holds on it: another process's closing connection then took itself for the
/// last one and deleted the WAL under the writer (a gateway's log corrupt after its per-call
/// sessions ended). Probed with an open-file-description lock, which conflicts with this
/// process's own POSIX locks.
#[test]
fn a_writer_keeps_sqlites_locks_after_writing_its_head() {
    use nix::fcntl::{fcntl, FcntlArg};
    let d = dir("locks");
    let p = d.join("audit.db");
    let mut s = Store::open(&p).expect("open");
    s.append("a", &[("start".to_string(), 1, json!({"command": ["true"]}))]).expect("append");
    s.seal("a", 2).expect("seal");
    let probe = std::fs::File::open(&p).expect("probe");
    let mut fl: nix::libc::flock = write_probe();
    fcntl(&probe, FcntlArg::F_OFD_GETLK(&mut fl)).expect("F_OFD_GETLK");
    assert_ne!(i32::from(fl.l_type), nix::libc::F_UNLCK, "SQLite's lock on the database file was dropped");
    // Closing the probe drops the writer's locks too: the store goes first.
    drop(s);
    drop(probe);
}

/// A whole-file write lock request, for F_OFD_GETLK.
fn write_probe() -> nix::libc::flock {
    nix::libc::flock {
        l_type: nix::libc::F_WRLCK as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}
