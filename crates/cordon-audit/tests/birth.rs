//! A new log's key waits at `<log>.key.new` until head 0 is written (src/birth.rs). A crash between
//! the two is adopted by the next open and accepted by verify, but only for an empty log whose
//! head 0 that candidate signed: a candidate never stands in for a key that signed records.
//! Real SQLite files in temporary directories; the crash states are made by hand from a real log.

use cordon_audit::{verify, AuditError, Store};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("cordon-birth-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    Dir(d)
}

/// A new, empty log (table, key, head 0), closed.
fn new_log(d: &Path) -> PathBuf {
    let p = d.join("audit.db");
    drop(Store::open(&p).expect("open"));
    p
}

fn one_session(p: &Path) {
    let mut s = Store::open(p).expect("open");
    s.append("s1", &[("start".to_string(), 1, json!({"command": ["true"]}))]).expect("append");
    s.seal("s1", 2).expect("seal");
}

fn candidate(p: &Path) -> PathBuf {
    p.with_extension("key.new")
}

#[test]
fn a_log_killed_between_its_head_and_its_key_verifies_and_the_next_open_installs_the_key() {
    let d = dir("adopt");
    let p = new_log(&d.0);
    let key = std::fs::read(p.with_extension("key")).expect("key");
    std::fs::rename(p.with_extension("key"), candidate(&p)).expect("mv");
    let r = verify(&p).expect("verify");
    assert!(r.ok(), "{r:?}");
    one_session(&p);
    assert_eq!(std::fs::read(p.with_extension("key")).expect("key"), key, "the candidate is the key");
    assert!(!candidate(&p).exists());
    let r = verify(&p).expect("verify");
    assert!(r.ok() && r.sealed == 1, "{r:?}");
}

#[test]
fn a_log_killed_before_its_head_gets_a_new_key_and_head() {
    let d = dir("nohead");
    let p = new_log(&d.0);
    std::fs::rename(p.with_extension("key"), candidate(&p)).expect("mv");
    std::fs::remove_file(p.with_extension("head")).expect("rm head");
    assert!(verify(&p).expect("verify").ok());
    one_session(&p);
    assert!(!candidate(&p).exists());
    let r = verify(&p).expect("verify");
    assert!(r.ok() && r.sealed == 1, "{r:?}");
}

#[test]
fn a_candidate_never_stands_in_for_the_key_of_a_log_with_records() {
    let d = dir("records");
    let p = new_log(&d.0);
    one_session(&p);
    // The real key, moved to the candidate's name: the head it signed names record 2, not 0.
    std::fs::rename(p.with_extension("key"), candidate(&p)).expect("mv");
    assert!(!verify(&p).expect("verify").ok());
    assert!(matches!(Store::open(&p), Err(AuditError::Damaged { .. })), "a log with records lost its key");
}

#[test]
fn a_candidate_that_did_not_sign_the_head_is_not_adopted() {
    let d = dir("stranger");
    let p = new_log(&d.0);
    std::fs::remove_file(p.with_extension("key")).expect("rm");
    std::fs::write(candidate(&p), [7u8; 32]).expect("plant");
    std::fs::set_permissions(candidate(&p), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(!verify(&p).expect("verify").ok());
    assert!(Store::open(&p).is_err(), "head 0 was signed by another key");
}

#[test]
fn a_candidate_others_can_read_is_not_adopted() {
    let d = dir("readable");
    let p = new_log(&d.0);
    std::fs::rename(p.with_extension("key"), candidate(&p)).expect("mv");
    std::fs::set_permissions(candidate(&p), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(!verify(&p).expect("verify").ok(), "a key others could read may be known");
    assert!(Store::open(&p).is_err());
}

/// Where the filesystem cannot rename without replacing, the key and the database are linked to
/// their names and their temporary names removed after: a crash between left two names, which
/// every open refused. The next open removes cordon's own temporary name of the same file.
#[test]
fn a_crash_after_linking_leaves_no_second_name_that_blocks_the_log() {
    let d = dir("linked");
    let p = new_log(&d.0);
    std::fs::hard_link(p.with_extension("key"), candidate(&p)).expect("link the key");
    let tmp = d.0.join(format!("audit.db.tmp.{}.0", std::process::id()));
    std::fs::hard_link(&p, &tmp).expect("link the database");
    assert!(verify(&p).expect("verify").ok());
    one_session(&p);
    assert!(!candidate(&p).exists() && !tmp.exists(), "the temporary names are gone");
    let r = verify(&p).expect("verify");
    assert!(r.ok() && r.sealed == 1, "{r:?}");
    // Another file's name is never removed: a hard link under any other name still refuses.
    let other = d.0.join("elsewhere.db");
    std::fs::hard_link(&p, &other).expect("link");
    assert!(matches!(Store::open(&p), Err(AuditError::Damaged { .. })));
    assert!(other.exists());
}

/// A log that lost its key keeps that evidence: no run makes a new key for a log with a head or
/// records (one did, then refused the log: the old key's removal was covered over), and a key
/// moved to the candidate's name is not removed.
#[test]
fn a_lost_key_is_never_replaced() {
    let d = dir("lost");
    let p = new_log(&d.0);
    one_session(&p);
    let key = std::fs::read(p.with_extension("key")).expect("key");
    std::fs::rename(p.with_extension("key"), candidate(&p)).expect("mv");
    match Store::open(&p) {
        Err(AuditError::Damaged { why, .. }) => assert!(why.contains("will not make a new one"), "{why}"),
        other => panic!("opened: {:?}", other.map(|_| ())),
    }
    assert!(!p.with_extension("key").exists(), "a new key was made");
    assert_eq!(std::fs::read(candidate(&p)).expect("candidate kept"), key);
    // An empty log whose key was removed (its head 0 stays): refused too.
    let d2 = dir("lost-empty");
    let p2 = new_log(&d2.0);
    std::fs::remove_file(p2.with_extension("key")).expect("rm");
    assert!(matches!(Store::open(&p2), Err(AuditError::Damaged { .. })));
    assert!(!p2.with_extension("key").exists());
}

/// A FIFO in the key's or the head's place is refused, never waited on.
#[test]
fn a_fifo_for_the_key_or_the_head_is_refused_not_waited_on() {
    for f in ["key", "head"] {
        let d = dir(&format!("fifo-{f}"));
        let p = new_log(&d.0);
        let at = p.with_extension(f);
        std::fs::remove_file(&at).expect("rm");
        nix::unistd::mkfifo(&at, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        let q = p.clone();
        std::thread::spawn(move || {
            let _ = tx.send((verify(&q).map(|r| r.ok()), Store::open(&q).is_ok()));
        });
        let (verified, opened) = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("hung on the FIFO");
        assert!(!verified.unwrap_or(false) && !opened, "{f}: a FIFO was taken");
    }
}
