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
