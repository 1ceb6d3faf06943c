//! Every kind of tampering with a real SQLite audit file is detected and the first bad record named;
//! an unfinished session is reported as unfinished, not as tampering.

use cordon_audit::{verify, Store};
use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};

/// A temporary directory, removed when the test ends (pass or fail).
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Dir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("cordon-audit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    Dir(d)
}

/// Three sealed sessions of 5 records each (+ seal): seq 1..=18.
fn build(d: &Path) -> PathBuf {
    let p = d.join("audit.db");
    let mut s = Store::open(&p).expect("open");
    for i in 0..3 {
        let id = format!("sess{i}");
        let items: Vec<(String, i64, serde_json::Value)> = vec![
            ("start".into(), 1000 + i, json!({"command": ["true"], "user": 0})),
            ("denial".into(), 1001 + i, json!({"what": "ptrace()", "n": i})),
            ("egress".into(), 1002 + i, json!({"host": "example.com", "allowed": false})),
            ("limit".into(), 1003 + i, json!({"text": "none"})),
            ("end".into(), 1004 + i, json!({"exit": 0})),
        ];
        s.append(&id, &items).expect("append");
        s.seal(&id, 1005 + i).expect("seal");
    }
    p
}

fn sql(p: &Path, q: &str) {
    Connection::open(p).expect("open").execute_batch(q).expect(q);
}

fn first_bad(p: &Path) -> (i64, String) {
    let r = verify(p).expect("verify");
    let b = r.first_bad.expect("tampering must be detected");
    (b.seq, b.what)
}

#[test]
fn clean_log_verifies() {
    let d = dir("clean");
    let p = build(&d);
    let r = verify(&p).expect("verify");
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.records, r.sessions, r.sealed), (18, 3, 3));
    assert!(r.unfinished.is_empty());
}

#[test]
fn edit_is_detected() {
    let d = dir("edit");
    let p = build(&d);
    sql(&p, "UPDATE records SET body = '{\"what\":\"nothing\"}' WHERE seq = 8");
    let (seq, what) = first_bad(&p);
    assert_eq!(seq, 8, "{what}");
    assert!(what.contains("modified"), "{what}");
}

#[test]
fn deletion_is_detected() {
    let d = dir("delete");
    let p = build(&d);
    sql(&p, "DELETE FROM records WHERE seq = 8");
    let (seq, what) = first_bad(&p);
    assert_eq!(seq, 9, "{what}");
    assert!(what.contains("missing"), "{what}");
}

#[test]
fn insertion_is_detected() {
    let d = dir("insert");
    let p = build(&d);
    // Make room and insert a plausible record at 8 with a correct hash over its own content.
    let c = Connection::open(&p).expect("open");
    let prev: Vec<u8> = c.query_row("SELECT hash FROM records WHERE seq = 7", [], |r| r.get(0)).expect("prev");
    c.execute_batch(
        "UPDATE records SET seq = seq + 1000 WHERE seq >= 8; UPDATE records SET seq = seq - 999 WHERE seq >= 1008;",
    )
    .expect("shift");
    let body = "{\"what\":\"innocent\"}";
    let h = cordon_audit::record_hash(&prev, 8, "sess1", "note", 1, body);
    c.execute("INSERT INTO records VALUES (8, 'sess1', 'note', 1, ?1, ?2, ?3)", rusqlite::params![body, prev, h])
        .expect("insert");
    drop(c);
    let (seq, what) = first_bad(&p);
    assert_eq!(seq, 9, "the record after the inserted one no longer follows: {what}");
}

#[test]
fn reordering_is_detected() {
    let d = dir("reorder");
    let p = build(&d);
    sql(&p, "UPDATE records SET seq = -1 WHERE seq = 8; UPDATE records SET seq = 8 WHERE seq = 9; UPDATE records SET seq = 9 WHERE seq = -1;");
    let (seq, _) = first_bad(&p);
    assert_eq!(seq, 8);
}

#[test]
fn truncation_is_detected() {
    let d = dir("truncate");
    let p = build(&d);
    sql(&p, "DELETE FROM records WHERE seq > 12");
    let (seq, what) = first_bad(&p);
    assert_eq!(seq, 13, "{what}");
    assert!(what.contains("truncated"), "{what}");
}

#[test]
fn a_rewritten_chain_fails_at_the_seal() {
    let d = dir("rewrite");
    let p = build(&d);
    // Edit a record and recompute every hash after it: without the key the seals cannot follow.
    let c = Connection::open(&p).expect("open");
    c.execute("UPDATE records SET body = '{\"what\":\"nothing\"}' WHERE seq = 8", []).expect("edit");
    let mut prev: Vec<u8> = c.query_row("SELECT hash FROM records WHERE seq = 7", [], |r| r.get(0)).expect("prev");
    for seq in 8..=18i64 {
        let (s, k, t, b): (String, String, i64, String) = c
            .query_row("SELECT session, kind, ts_ms, body FROM records WHERE seq = ?1", [seq], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .expect("row");
        let h = cordon_audit::record_hash(&prev, seq, &s, &k, t, &b);
        c.execute("UPDATE records SET prev = ?1, hash = ?2 WHERE seq = ?3", rusqlite::params![prev, h, seq])
            .expect("rehash");
        prev = h;
    }
    drop(c);
    let (seq, what) = first_bad(&p);
    assert!(what.contains("seal") || what.contains("head"), "{seq}: {what}");
}

#[test]
fn an_unfinished_session_is_not_tampering() {
    let d = dir("unfinished");
    let p = build(&d);
    let mut s = Store::open(&p).expect("open");
    s.append("crashed", &[("start".into(), 5, json!({"command": ["sleep", "9"]}))]).expect("append");
    drop(s);
    let r = verify(&p).expect("verify");
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.unfinished, vec!["crashed".to_string()]);
}

#[test]
fn opening_never_changes_an_existing_directory() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("perm");
    std::fs::set_permissions(&*d, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let _s = Store::open(&d.join("audit.db")).expect("open");
    let mode = std::fs::metadata(&*d).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777, "a shared directory like /tmp must keep its mode");
    let fresh = d.join("new/sub/audit.db");
    let _t = Store::open(&fresh).expect("open");
    assert_eq!(std::fs::metadata(d.join("new/sub")).expect("stat").permissions().mode() & 0o777, 0o700);
}
