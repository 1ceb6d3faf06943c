//! `audit verify` at the edges the mutation run found untested (docs/TESTING.md, Mutation testing):
//! what is not a log, a log no writer finished creating, which words a missing table gets, and a
//! missing head file. Each test is judged by what verify says of a real file.

use cordon_audit::files::{head_path, key_path};
use cordon_audit::{verify, Store};
use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("cordon-verify-edges-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    Dir(d)
}

fn unreadable(p: &Path) -> String {
    let r = verify(p).expect("verify");
    assert!(!r.ok(), "must not verify: {r:?}");
    r.unreadable.unwrap_or_else(|| panic!("unreadable expected: {:?}", r.first_bad))
}

/// A database file with no `records` table, `user_version` set as given, one other table.
fn other_database(p: &Path, version: i64) {
    Connection::open(p)
        .expect("open")
        .execute_batch(&format!("PRAGMA user_version = {version}; CREATE TABLE other (x);"))
        .expect("create");
}

#[test]
fn a_directory_is_not_a_log() {
    let d = dir("isdir");
    let p = d.0.join("audit.db");
    std::fs::create_dir(&p).expect("mkdir");
    assert!(unreadable(&p).contains("is not a regular file"));
}

#[test]
fn a_new_log_whose_table_is_dropped_names_no_record_of_its_head() {
    let d = dir("fresh");
    let p = d.0.join("audit.db");
    drop(Store::open(&p).expect("open"));
    Connection::open(&p).expect("open").execute_batch("DROP TABLE records").expect("drop");
    let why = unreadable(&p);
    assert!(why.contains("no `records` table") && !why.contains("names record"), "{why}");
}

#[test]
fn a_database_no_writer_finished_creating_is_an_empty_log() {
    let d = dir("unfinished");
    // Made empty by a writer killed at once, and made with another table but never versioned.
    for (name, make) in [("empty.db", None), ("other.db", Some(0))] {
        let p = d.0.join(name);
        match make {
            None => drop(std::fs::File::create(&p).expect("create")),
            Some(v) => other_database(&p, v),
        }
        let r = verify(&p).expect("verify");
        assert!(r.ok() && r.records == 0, "{name}: {r:?}");
    }
}

#[test]
fn a_missing_table_is_described_by_what_the_file_still_says() {
    let d = dir("words");
    // Versioned by a cordon writer: its table was dropped or renamed.
    let p = d.0.join("versioned.db");
    other_database(&p, 7);
    assert!(unreadable(&p).contains("no `records` table (dropped or renamed)"));
    // Not versioned, with content, and a key beside it (so not a log no writer finished).
    let p = d.0.join("unversioned.db");
    other_database(&p, 0);
    std::fs::write(key_path(&p), "not a key").expect("key");
    assert!(unreadable(&p).contains("no `records` table (never created, or dropped)"));
    // Empty, with a key beside it: the file was emptied.
    let p = d.0.join("emptied.db");
    drop(std::fs::File::create(&p).expect("create"));
    std::fs::write(key_path(&p), "not a key").expect("key");
    assert!(unreadable(&p).contains("no `records` table (dropped or renamed)"));
}

#[test]
fn records_without_a_head_file_or_key_are_not_ok_and_named_after_the_last() {
    let d = dir("nohead");
    let p = d.0.join("audit.db");
    let mut s = Store::open(&p).expect("open");
    // Unsealed: no seal for a missing key to fail on; only the head file is evidence of the end.
    s.append("sess", &[("start".into(), 1000, json!({"command": ["true"]}))]).expect("append");
    s.append("sess", &[("denial".into(), 1001, json!({"what": "x"}))]).expect("append");
    drop(s);
    std::fs::remove_file(head_path(&p)).expect("head");
    std::fs::remove_file(key_path(&p)).expect("key");
    let r = verify(&p).expect("verify");
    let b = r.first_bad.unwrap_or_else(|| panic!("a log that lost its head is not ok: {:?}", r.unreadable));
    assert!(b.what.contains("signed head file") && b.what.contains("is missing"), "{}", b.what);
    assert_eq!(b.seq, r.records + 1, "named after the last record it holds");
    // A table with no record, no key and no head: nothing was ever written, nothing is missing.
    let p = d.0.join("bare.db");
    drop(Store::open(&p).expect("open"));
    std::fs::remove_file(head_path(&p)).expect("head");
    std::fs::remove_file(key_path(&p)).expect("key");
    let r = verify(&p).expect("verify");
    assert!(r.ok() && r.records == 0, "{r:?}");
}
