//! Two Stores of one log in one process (a session's recorder and its audit writer): dropping one
//! must not drop the other's SQLite locks. Closing any descriptor of the database file drops every
//! POSIX lock the process holds on it; a Store that kept its own descriptor of the database (for
//! the head's flock) took the recorder's SHARED lock with it when the writer's Store went, and
//! another process's closing connection then deleted the WAL under the recorder (CI: "the log ends
//! at record 45 but its signed head names record 48").

use std::os::unix::fs::MetadataExt;

/// This process's POSIX locks on the inode `ino`, from /proc/locks.
fn my_locks(ino: u64) -> usize {
    let me = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks")
        .expect("/proc/locks")
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"POSIX")
                && f.get(4) == Some(&me.as_str())
                && f.get(5).is_some_and(|dev_ino| dev_ino.rsplit(':').next() == Some(&ino.to_string()))
        })
        .count()
}

#[test]
fn dropping_one_store_keeps_the_other_stores_sqlite_locks() {
    let dir = std::env::temp_dir().join(format!("cordon-audit-locks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("audit.db");
    let mut recorder = cordon_audit::Store::open(&db).expect("the recorder's store");
    recorder.append("s", &[("start".into(), 1, serde_json::json!({}))]).expect("start");
    let ino = std::fs::metadata(&db).expect("db").ino();
    let before = my_locks(ino);
    assert!(before > 0, "the recorder's connection holds no lock on the database: nothing to test");
    let writer = cordon_audit::Store::open(&db).expect("the writer's store");
    drop(writer);
    assert_eq!(my_locks(ino), before, "dropping the writer's Store dropped the recorder's locks");
    recorder.finish("s", &[("end".into(), 2, serde_json::json!({}))], 3).expect("finish");
    drop(recorder);
    let _ = std::fs::remove_dir_all(&dir);
}
