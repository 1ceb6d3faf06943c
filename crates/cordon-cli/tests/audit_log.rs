//! The audit log as a user meets it through the real binary (issue 11: items 1-10, 13, 14, 18, 19):
//! it never says "ok" about what it cannot read, no flag destroys it, no session writes it, a
//! session that ran is recorded even when the database fails, and bad paths fail before anything
//! runs. Tampering and locking are done with Python's sqlite3 (another SQLite client).

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn db(e: &Env) -> PathBuf {
    e.root.join("audit.db")
}

fn py_sql(p: &Path, q: &str) {
    let st = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
        .arg(p)
        .arg(q)
        .status()
        .expect("python3");
    assert!(st.success(), "{q}");
}

fn verify(e: &Env, extra: &[&str]) -> std::process::Output {
    let mut a = vec!["audit", "verify"];
    a.extend_from_slice(extra);
    e.cordon(&a)
}

/// Three sealed sessions; returns their ids.
fn sessions(e: &Env, n: usize) -> Vec<String> {
    for i in 0..n {
        let o = e.run_sh(&format!("exit {i}"));
        assert_eq!(o.status.code(), Some(i as i32), "{}", show(&o));
    }
    let o = e.cordon(&["audit", "ls", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ls json");
    v.as_array().expect("array").iter().map(|r| r["session"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn verify_never_says_ok_about_an_unreadable_log() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        sessions(&e, 3);
        assert_eq!(verify(&e, &[]).status.code(), Some(0), "control: the intact log verifies");
        py_sql(&db(&e), "DROP TABLE records");
        let o = verify(&e, &[]);
        assert_eq!(o.status.code(), Some(1), "{who:?}: {}", show(&o));
        assert!(
            out(&o).contains("UNREADABLE")
                && out(&o).contains("no `records` table")
                && out(&o).contains("names record 9"),
            "{}",
            show(&o)
        );
        // Random bytes in place of the database (and no WAL beside it).
        for f in ["audit.db-wal", "audit.db-shm"] {
            let _ = std::fs::remove_file(e.root.join(f));
        }
        let noise: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        std::fs::write(db(&e), noise).expect("noise");
        let o = verify(&e, &["--json"]);
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(v["ok"], false);
        assert!(v["unreadable"].is_string(), "{v}");
        // And a session refuses to write into it (nothing runs: the start cannot be recorded).
        let o = e.run_sh(&format!("touch {}/ran", e.ws.display()));
        assert_eq!(o.status.code(), Some(125), "{}", show(&o));
        assert!(!exists(&e.ws.join("ran")));
    }
}

#[test]
fn an_anchored_head_catches_what_the_head_file_cannot() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let anchor = e.root.join("anchor.json");
    let o = e.run_sh_with(&["--head-copy", &anchor.display().to_string()], "true", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    sessions(&e, 1);
    let head = e.cordon(&["audit", "head"]);
    assert_eq!(head.status.code(), Some(0), "{}", show(&head));
    let later = e.root.join("later.json");
    std::fs::write(&later, &head.stdout).expect("anchor 2");
    assert!(String::from_utf8_lossy(&std::fs::read(&anchor).expect("head copy")).contains("\"seq\":3"));
    assert_eq!(verify(&e, &["--expect-head", &later.display().to_string()]).status.code(), Some(0));
    // Delete the last session and the head file: detected even without an anchor.
    py_sql(&db(&e), "DELETE FROM records WHERE seq > 3");
    std::fs::remove_file(e.root.join("audit.head")).expect("rm head");
    let o = verify(&e, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(out(&o).contains("head file") && out(&o).contains("missing"), "{}", show(&o));
    // Someone with the key re-signs a head for the shorter log: only the anchor tells.
    std::fs::write(e.root.join("audit.head"), std::fs::read(&anchor).expect("old head")).expect("restore old head");
    assert_eq!(
        verify(&e, &[]).status.code(),
        Some(0),
        "without an anchor a cut at a seal is undetectable (documented)"
    );
    let o = verify(&e, &["--expect-head", &later.display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(out(&o).contains("truncated"), "{}", show(&o));
}

#[test]
fn no_output_flag_can_overwrite_the_audit_log() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    sessions(&e, 1);
    let key = std::fs::read(e.root.join("audit.key")).expect("key");
    // The database under another name: a bind mount (caught by device and inode), a symlink, a
    // dangling symlink to a log file not created yet, a path through `..`.
    let bound = e.root.join("innocent.json");
    std::fs::write(&bound, "").expect("mountpoint");
    nix::mount::mount(Some(&db(&e)), &bound, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).expect("bind");
    let _m = Mounted(bound.clone());
    let sym = e.root.join("sym.json");
    std::os::unix::fs::symlink(db(&e), &sym).expect("symlink");
    let dangling = e.root.join("dangling.json");
    std::os::unix::fs::symlink(e.root.join("audit.db-journal"), &dangling).expect("symlink");
    let dotdot = e.ws.join("../../audit.key");
    let targets = [
        db(&e),
        e.root.join("audit.db-wal"),
        e.root.join("audit.db-shm"),
        e.root.join("audit.key"),
        e.root.join("audit.head"),
        bound.clone(),
        sym,
        dangling,
        dotdot,
    ];
    for t in &targets {
        for flag in ["--report", "--events", "--head-copy"] {
            let marker = e.ws.join("ran");
            let o = e.run_sh_with(&[flag, &t.display().to_string()], &format!("touch {}", marker.display()), &[]);
            assert_eq!(o.status.code(), Some(125), "{flag} {}: {}", t.display(), show(&o));
            assert!(err(&o).contains("audit log"), "{}", show(&o));
            assert!(!exists(&marker), "{flag} {}: the command ran", t.display());
        }
    }
    assert_eq!(std::fs::read(e.root.join("audit.key")).expect("key"), key, "the key is untouched");
    assert!(!exists(&e.root.join("audit.db-journal")), "nothing was created through the dangling link");
    let o = verify(&e, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn a_log_the_session_could_write_is_refused_and_a_readable_one_is_masked() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let inws = e.ws.join("inws.db");
        let o = e.run_sh_with(&["--audit", &inws.display().to_string()], &format!("touch {}/ran", e.ws.display()), &[]);
        assert_eq!(o.status.code(), Some(125), "{who:?}: {}", show(&o));
        assert!(err(&o).contains("which the session may write"), "{}", show(&o));
        assert!(!exists(&e.ws.join("ran")) && !exists(&inws), "{who:?}: nothing runs, nothing is created");
        // A log in a tree the policy lets the session read is masked (control: readable bare).
        sessions(&e, 1);
        let pol = e.write_policy(
            "p.toml",
            &format!("version = 1\nextends = [\"builtin:agent\"]\n[fs]\nread = [\"{}\"]\n", e.root.display()),
        );
        let script = format!("cat {} > /dev/null && echo READ", db(&e).display());
        assert!(out(&e.bare_sh(&script)).contains("READ"), "control: the log is readable without cordon");
        let o = e.run_sh_with(&["--policy", &pol.display().to_string()], &format!("{script}; echo RAN"), &[]);
        assert!(out(&o).contains("RAN") && !out(&o).contains("READ"), "{who:?}: {}", show(&o));
    }
}

/// Holds an exclusive write lock on the log for `secs` from the moment `flag` appears.
fn lock_when(flag: &Path, p: &Path, secs: u32) -> std::process::Child {
    let script = "import sqlite3,sys,time,os\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.01)\nc=sqlite3.connect(sys.argv[2], isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(float(sys.argv[3]))\nc.execute('ROLLBACK')\n";
    Command::new("python3")
        .args(["-c", script])
        .arg(flag)
        .arg(p)
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3")
}

#[test]
fn a_session_that_ran_is_recorded_when_the_database_fails() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    sessions(&e, 1);
    let flag = e.ws.join("started");
    let report = e.root.join("report.json");
    let mut locker = lock_when(&flag, &db(&e), 8);
    let script = format!("touch {}; sleep 1; exit 42", flag.display());
    let o = e.run_sh_with(&["--report", &report.display().to_string()], &script, &[]);
    let _ = locker.wait();
    assert_eq!(o.status.code(), Some(42), "the command's status, not 125: {}", show(&o));
    assert!(err(&o).contains("recovery spool"), "{}", show(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("json");
    assert_eq!(r["outcome"]["exit_code"], 42);
    let v = verify(&e, &[]);
    assert_eq!(v.status.code(), Some(0), "{}", show(&v));
    assert!(out(&v).contains("pending: ") && out(&v).contains("unfinished session"), "{}", show(&v));
    // The next run imports and seals it.
    let o = e.run_sh("true");
    assert!(err(&o).contains("imported"), "{}", show(&o));
    let v = verify(&e, &[]);
    assert!(
        out(&v).contains(": ok:") && !out(&v).contains("pending") && !out(&v).contains("unfinished"),
        "{}",
        show(&v)
    );
    let id = r["outcome"]["session_id"].as_str().expect("id").to_string();
    let show_o = e.cordon(&["audit", "show", &id]);
    assert!(
        out(&show_o).contains("recovered") && out(&show_o).contains("exit 42") && out(&show_o).contains("seal"),
        "{}",
        show(&show_o)
    );
}

/// `n` sessions of `cordon run -- true` recording into `log`, started at once; their outputs.
fn runs_at_once(e: &Env, log: &std::path::Path, n: usize) -> Vec<std::process::Output> {
    let kids: Vec<_> = (0..n)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_cordon"))
                .args(["run", "--audit"])
                .arg(log)
                .args(["--", "true"])
                .current_dir(&e.ws)
                .env("HOME", &e.home)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    kids.into_iter().map(|k| k.wait_with_output().expect("wait")).collect()
}

#[test]
fn twenty_sessions_on_a_new_log_sign_with_one_key() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let fresh = e.root.join("fresh/audit.db");
    for o in runs_at_once(&e, &fresh, 20) {
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    }
    let o = e.cordon(&["audit", "verify", "--audit", &fresh.display().to_string(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((v["ok"].as_bool(), v["sealed"].as_u64()), (Some(true), Some(20)), "{}", show(&o));
}

/// Sessions starting while others end on one log, each its own process: SQLite answers an open
/// "database is locked" at once (no busy wait) while the last other connection checkpoints the WAL
/// on close. Seen once in CI as an 8-session engine test failure; no session may be refused for it.
#[test]
fn sessions_starting_while_others_end_are_never_refused_by_a_busy_log() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let log = e.root.join("churn/audit.db");
    let mut failures = vec![];
    for _round in 0..12 {
        for o in runs_at_once(&e, &log, 8) {
            if o.status.code() != Some(0) {
                failures.push(err(&o));
            }
        }
    }
    assert!(failures.is_empty(), "{} of 96 sessions refused: {}", failures.len(), failures.join("\n"));
}

#[test]
fn every_file_of_the_log_is_private() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let dir = e.root.join("state/cordon");
        let p = dir.join("audit.db");
        let flag = e.ws.join("running");
        let mut c = Command::new(env!("CARGO_BIN_EXE_cordon"));
        if who == Who::Nobody {
            c = Command::new("setpriv");
            c.args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
                "--".into(),
                env!("CARGO_BIN_EXE_cordon").into(),
            ]);
            std::fs::set_permissions(&e.root, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        let kid = c
            .arg("run")
            .args(if who == Who::Nobody { vec!["--allow-degraded"] } else { vec![] })
            .arg("--audit")
            .arg(&p)
            .args(["--", "/bin/sh", "-c"])
            .arg(format!("touch {}; sleep 2", flag.display()))
            .current_dir(&e.ws)
            .env("HOME", &e.home)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let t0 = Instant::now();
        while !exists(&flag) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // While the session runs, SQLite's -wal and -shm exist.
        for f in ["audit.db", "audit.db-wal", "audit.db-shm", "audit.key", "audit.head", "audit.lock"] {
            let m = std::fs::metadata(dir.join(f)).unwrap_or_else(|x| panic!("{who:?} {f}: {x}")).permissions().mode()
                & 0o777;
            assert_eq!(m, 0o600, "{who:?}: {f} has mode {m:o}");
        }
        for d in [&dir, &e.root.join("state")] {
            assert_eq!(
                std::fs::metadata(d).expect("dir").permissions().mode() & 0o777,
                0o700,
                "{who:?}: {}",
                d.display()
            );
        }
        let o = kid.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", err(&o));
    }
}

#[test]
fn a_relative_cordon_audit_is_taken_from_the_working_directory() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let o = e.cordon_env(&["run", "--", "true"], &[("CORDON_AUDIT", "../../rel/audit.db")]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(exists(&e.root.join("rel/audit.db")), "the log is where the relative path points");
    assert!(!exists(&db(&e)), "not the default");
    let o = e.cordon_env(&["audit", "verify"], &[("CORDON_AUDIT", "../../rel/audit.db")]);
    assert!(out(&o).contains(": ok: 3 records"), "{}", show(&o));
}

#[test]
fn session_prefixes_are_literal_and_must_be_unique() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let ids = sessions(&e, 2);
    for bad in ["", "%", "_", "%%"] {
        for verb in ["show", "export"] {
            let o = e.cordon(&["audit", verb, bad]);
            assert_ne!(o.status.code(), Some(0), "{verb} `{bad}`: {}", show(&o));
            assert!(err(&o).contains("no session matching"), "{}", show(&o));
        }
    }
    let o = e.cordon(&["audit", "export", &ids[0][..10]]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(out(&o).lines().all(|l| l.contains(&ids[0])), "only that session: {}", show(&o));
}

#[test]
fn read_only_commands_create_nothing() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let typo = e.root.join("typo/audit.db");
    let t = typo.display().to_string();
    for args in [
        vec!["audit", "ls", "--audit", &t],
        vec!["audit", "show", "abc", "--audit", &t],
        vec!["audit", "export", "abc", "--audit", &t],
        vec!["audit", "head", "--audit", &t],
        vec!["audit", "verify", "--audit", &t],
        vec!["rules", "test", "abc", "--audit", &t],
    ] {
        let o = e.cordon(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?}: {}", show(&o));
        assert!(err(&o).contains(&t) || out(&o).contains(&t), "{args:?} names the path: {}", show(&o));
        assert!(!exists(&e.root.join("typo")), "{args:?} created something");
    }
}

#[test]
fn outputs_are_checked_before_the_command_runs() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let marker = e.ws.join("ran");
    let script = format!("touch {}", marker.display());
    for bad in [e.root.join("missing/dir/report.json"), e.ws.clone()] {
        let o = e.run_sh_with(&["--report", &bad.display().to_string()], &script, &[]);
        assert_eq!(o.status.code(), Some(125), "{}", show(&o));
        assert!(err(&o).contains(&bad.display().to_string()), "{}", show(&o));
        assert!(!exists(&marker), "the command ran before the bad --report was found");
    }
    // A fifo nobody reads: refused after a bounded wait, for --report and --events.
    let fifo = e.root.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    for flag in ["--report", "--events"] {
        let t0 = Instant::now();
        let o = e.run_sh_with(&[flag, &fifo.display().to_string()], &script, &[]);
        assert_eq!(o.status.code(), Some(125), "{}", show(&o));
        assert!(err(&o).contains("nobody is reading"), "{}", show(&o));
        assert!(t0.elapsed() < Duration::from_secs(20), "bounded");
        assert!(!exists(&marker));
    }
    // With a reader, the report arrives through the fifo.
    let reader = Command::new("cat").arg(&fifo).stdout(Stdio::piped()).spawn().expect("cat");
    let o = e.run_sh_with(&["--report", &fifo.display().to_string()], "exit 3", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let got = reader.wait_with_output().expect("cat");
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("\"exit_code\": 3"),
        "{}",
        String::from_utf8_lossy(&got.stdout)
    );
}

#[test]
fn a_closed_pipe_ends_read_only_commands_quietly() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    sessions(&e, 2);
    for args in [vec!["doctor", "--json"], vec!["audit", "ls"], vec!["audit", "verify"], vec!["policy", "explain"]] {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        drop(r);
        let o = Command::new(env!("CARGO_BIN_EXE_cordon"))
            .args(&args)
            .current_dir(&e.ws)
            .env("HOME", &e.home)
            .env("CORDON_AUDIT", db(&e))
            .stdout(Stdio::from(w))
            .stderr(Stdio::piped())
            .output()
            .expect("spawn");
        use std::os::unix::process::ExitStatusExt;
        assert!(!err(&o).contains("panicked"), "{args:?}: {}", show(&o));
        assert!(
            o.status.signal() == Some(libc::SIGPIPE) || o.status.code() == Some(0),
            "{args:?}: {:?} {}",
            o.status,
            show(&o)
        );
    }
}

#[test]
fn system_trees_and_the_home_directory_are_not_workspaces() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let marker = e.ws.join("ran");
    for ws in [
        "/",
        "/etc",
        "/var/lib/dpkg",
        "/var/spool",
        "/var/cache",
        "/root/.config",
        "/proc",
        "/proc/sys",
        "/sys",
        "/dev",
        "/usr",
        "/usr/local",
        "/boot",
        "/var",
        "/var/lib",
        "/home",
        "/root",
    ] {
        if !Path::new(ws).is_dir() {
            continue;
        }
        let o = e.cordon(&["run", "--workspace", ws, "--", "/bin/sh", "-c", &format!("touch {}", marker.display())]);
        assert_eq!(o.status.code(), Some(125), "{ws}: {}", show(&o));
        assert!(err(&o).contains("refusing to use"), "{ws}: {}", show(&o));
        assert!(!exists(&marker));
    }
    // With HOME unset, the home directory comes from the password database.
    let mut c = Command::new(env!("CARGO_BIN_EXE_cordon"));
    let o = c
        .args(["run", "--workspace", "/root", "--", "true"])
        .current_dir(&e.ws)
        .env_remove("HOME")
        .env("CORDON_AUDIT", db(&e))
        .output()
        .expect("spawn");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("refusing to use"), "{}", show(&o));
}

/// Unmounts a tmpfs the test mounted, even when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_disk_mid_session_spools_elsewhere_and_loses_nothing() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let small = e.root.join("small");
    std::fs::create_dir_all(&small).expect("mkdir");
    nix::mount::mount(Some("tmpfs"), &small, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=512k,mode=0700"))
        .expect("mount tmpfs");
    let _m = Mounted(small.clone());
    let p = small.join("audit.db");
    let ps = p.display().to_string();
    let o = e.cordon(&["run", "--audit", &ps, "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // The session runs; meanwhile the disk fills up (from outside: the session cannot reach it).
    let flag = e.ws.join("started");
    let filler = small.join("filler");
    let fill = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; dd if=/dev/zero of={} bs=4k 2>/dev/null; true",
        flag.display(),
        filler.display()
    );
    let mut filling = Command::new("sh").args(["-c", &fill]).spawn().expect("sh");
    let o = e.cordon(&[
        "run",
        "--audit",
        &ps,
        "--",
        "/bin/sh",
        "-c",
        &format!("touch {}; sleep 1; echo lots of output; exit 7", flag.display()),
    ]);
    let _ = filling.wait();
    assert_eq!(o.status.code(), Some(7), "the command's status: {}", show(&o));
    assert!(err(&o).contains("recovery spool /run/cordon/spool/"), "spooled beside the full disk: {}", show(&o));
    let v = e.cordon(&["audit", "verify", "--audit", &ps]);
    assert!(out(&v).contains("pending: ") && v.status.code() == Some(0), "{}", show(&v));
    std::fs::remove_file(&filler).expect("free the disk");
    let o = e.cordon(&["run", "--audit", &ps, "--", "true"]);
    assert!(err(&o).contains("imported"), "{}", show(&o));
    let v = e.cordon(&["audit", "verify", "--audit", &ps]);
    assert!(
        out(&v).contains(": ok:") && !out(&v).contains("pending") && !out(&v).contains("unfinished"),
        "{}",
        show(&v)
    );
    assert!(!exists(&cordon_audit::spool::fallback_dir(&p).expect("root has one")), "the fallback spool is gone again");
    // Leave /run as it was: the fallback's parents, if this test made them and they are empty.
    let _ = std::fs::remove_dir("/run/cordon/spool");
    let _ = std::fs::remove_dir("/run/cordon");
}

#[test]
fn a_log_reached_through_a_symlink_into_the_workspace_is_refused() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let safe = e.root.join("safe");
    std::fs::create_dir_all(&safe).expect("mkdir");
    std::os::unix::fs::symlink(e.ws.join("real.db"), safe.join("audit.db")).expect("symlink");
    let o = e.run_sh_with(&["--audit", &safe.join("audit.db").display().to_string()], "touch ran", &[]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("which the session may write"), "{}", show(&o));
    assert!(!exists(&e.ws.join("real.db")) && !exists(&e.ws.join("ran")), "nothing created, nothing ran");
}

#[test]
fn a_log_file_with_a_second_name_is_refused_before_anything_runs() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    sessions(&e, 1);
    // A second name for the WAL in a tree the policy lets the session write.
    let wt = e.root.join("wt");
    std::fs::create_dir_all(&wt).expect("mkdir");
    std::fs::hard_link(e.root.join("audit.db-wal"), wt.join("cache.bin")).expect("link");
    let pol = e.write_policy(
        "p.toml",
        &format!("version = 1\nextends = [\"builtin:agent\"]\n[fs]\nwrite = [\"{}\"]\n", wt.display()),
    );
    let o = e.run_sh_with(
        &["--policy", &pol.display().to_string()],
        &format!(": > {}/cache.bin; touch {}/ran", wt.display(), e.ws.display()),
        &[],
    );
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("hard links"), "{}", show(&o));
    assert!(!exists(&e.ws.join("ran")));
}

#[test]
fn an_emptied_log_fails_verification_against_its_anchor() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let anchor = e.root.join("anchor.json");
    for _ in 0..2 {
        let o = e.run_sh_with(&["--head-copy", &anchor.display().to_string()], "true", &[]);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    }
    std::fs::write(db(&e), b"").expect("empty");
    for f in ["audit.db-wal", "audit.db-shm", "audit.head"] {
        let _ = std::fs::remove_file(e.root.join(f));
    }
    let o = verify(&e, &["--expect-head", &anchor.display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let o = verify(&e, &["--expect-head", &e.root.join("nope.json").display().to_string()]);
    assert_eq!(o.status.code(), Some(2), "a missing anchor file is a usage error: {}", show(&o));
}

#[test]
fn a_log_cut_short_while_a_session_runs_is_not_sealed_over() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    sessions(&e, 3);
    let (flag, cut) = (e.ws.join("started"), e.ws.join("cut"));
    // The session ends only once the cut is made (it said so in `cut`), 60 s at most: a fixed sleep
    // let a loaded machine end the session before the cutter ran (the test failed under load).
    let script = "import sqlite3,sys,time,os\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.01)\nc=sqlite3.connect(sys.argv[2]); c.execute('DELETE FROM records WHERE seq >= 7'); c.commit()\nopen(sys.argv[3], 'w').close()\n";
    let mut cutter =
        Command::new("python3").args(["-c", script]).arg(&flag).arg(db(&e)).arg(&cut).spawn().expect("python3");
    let o = e.run_sh(&format!(
        "touch {}; i=0; while [ ! -e {} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; exit 5",
        flag.display(),
        cut.display()
    ));
    let _ = cutter.wait();
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    assert!(err(&o).contains("cut short"), "{}", show(&o));
    let v = verify(&e, &[]);
    assert_eq!(v.status.code(), Some(1), "the cut is still visible: {}", show(&v));
}

#[test]
fn another_users_files_in_a_shared_directory_are_not_trusted() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    // A shared sticky directory where root keeps a log and nobody can create files.
    let shared = e.root.join("shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let p = shared.join("audit.db");
    let ps = p.display().to_string();
    // nobody plants a key of 32 zero bytes before root's first session: never used.
    let plant = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c"])
        .arg(format!("head -c 32 /dev/zero > {}/audit.key", shared.display()))
        .status()
        .expect("setpriv");
    assert!(plant.success());
    let o = e.cordon(&["run", "--audit", &ps, "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("not trusted"), "{}", show(&o));
    std::fs::remove_file(shared.join("audit.key")).expect("rm");
    let o = e.cordon(&["run", "--audit", &ps, "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // nobody plants a spool directory with a forged, sealed session: never imported.
    let forged = format!("{{\"cordon_spool\":1,\"id\":\"f\",\"session\":\"cafe\",\"seal\":true,\"reason\":\"x\",\"db\":\"{ps}\"}}\n{{\"kind\":\"end\",\"ts_ms\":1,\"body\":\"{{}}\"}}\n");
    let plant = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c"])
        .arg(format!("mkdir -m 700 {ps}.spool && cat > {ps}.spool/f.jsonl"))
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().map(|mut i| i.write_all(forged.as_bytes()));
            c.wait()
        })
        .expect("plant");
    assert!(plant.success());
    let o = e.cordon(&["run", "--audit", &ps, "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "a spool directory of another user: {}", show(&o));
    let v = e.cordon(&["audit", "ls", "--audit", &ps]);
    assert!(!out(&v).contains("cafe"), "{}", show(&v));
}

/// `cordon audit ls` for people (issue 17 #9): one line per session with its start, duration, exit,
/// denials, alerts, state, policy, workspace and command; a multi-line command stays on its line.
#[test]
fn audit_ls_has_a_line_per_session_with_exit_denials_and_alerts() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    assert!(e.run_sh("exit 0").status.success());
    assert_eq!(e.run_sh("unshare -U true; exit 3").status.code(), Some(3));
    assert!(e.run_sh("echo 'first\nsecond' >/dev/null").status.success());
    let o = e.cordon(&["audit", "ls"]);
    assert!(o.status.success(), "{}", show(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "a header and one line per session: {text}");
    assert!(lines[0].starts_with("SESSION") && lines[0].contains("EXIT") && lines[0].contains("ALERTS"), "{text}");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    // SESSION DATE TIME DURATION EXIT DENIED ALERTS STATE POLICY WORKSPACE COMMAND...
    let a = cols(lines[1]);
    assert_eq!((a[4].as_str(), a[5].as_str(), a[7].as_str()), ("0", "0", "sealed"), "{text}");
    let b = cols(lines[2]);
    assert_eq!((b[4].as_str(), b[5].as_str()), ("3", "1"), "exit 3, one denial: {text}");
    assert!(b[6].parse::<u32>().is_ok_and(|n| n >= 1), "the unshare raised an alert: {text}");
    assert!(lines[3].contains("echo 'first\\nsecond'"), "the newline is escaped: {text}");
    assert_eq!(a[9], e.ws.display().to_string(), "{text}");
}

/// `cordon audit show` for people (issue 17 #9): a header, then one line per record with its time,
/// kind and the fact in words, denials and alerts marked; `--json` keeps the machine format;
/// `--denials`, `--alerts` and `--kind K` filter (an unknown kind is a usage error naming the valid
/// ones). A session whose command never ran is listed by `ls` as such.
#[test]
fn audit_show_reads_as_a_timeline_and_filters() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    assert_eq!(e.run_sh("unshare -U true; exit 3").status.code(), Some(3));
    let o = e.cordon(&["run", "--", "/definitely/not/here"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    let o = e.cordon(&["audit", "ls", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ls json");
    let ids: Vec<String> =
        v.as_array().expect("array").iter().map(|r| r["session"].as_str().unwrap_or_default().into()).collect();
    assert_eq!(ids.len(), 2);

    let o = e.cordon(&["audit", "show", &ids[0]]);
    assert!(o.status.success(), "{}", show(&o));
    let text = out(&o);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("session {}", ids[0])) && first.contains("policy `agent`"), "{text}");
    assert!(text.contains("exit 3"), "{text}");
    assert!(!text.contains("{\""), "no raw JSON by default: {text}");
    let denied: Vec<&str> = text.lines().filter(|l| l.contains("DENIED")).collect();
    assert!(denied.iter().any(|l| l.contains("unshare")), "{text}");
    assert!(text.lines().any(|l| l.contains("ALERT")), "{text}");
    assert!(text.lines().any(|l| l.contains(" start ") && l.contains("/bin/sh -c")), "{text}");
    assert!(text.lines().any(|l| l.contains(" end ") && l.contains("exit 3")), "{text}");

    // Filters: only what was asked for, after the same header.
    let body = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["audit", "show", &ids[0]];
        a.extend_from_slice(args);
        let o = e.cordon(&a);
        assert!(o.status.success(), "{args:?} {}", show(&o));
        out(&o).lines().skip_while(|l| !l.starts_with("TIME")).skip(1).map(String::from).collect()
    };
    let d = body(&["--denials"]);
    assert!(!d.is_empty() && d.iter().all(|l| l.contains("DENIED")), "{d:#?}");
    let a = body(&["--alerts"]);
    assert!(!a.is_empty() && a.iter().all(|l| l.contains("ALERT")), "{a:#?}");
    let k = body(&["--kind", "end"]);
    assert_eq!(k.len(), 1, "{k:#?}");
    let o = e.cordon(&["audit", "show", &ids[0], "--kind", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        err(&o).contains("--kind nope") && err(&o).contains("denial") && err(&o).contains("sensor.exec"),
        "{}",
        show(&o)
    );

    let o = e.cordon(&["audit", "show", &ids[0], "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("show --json");
    assert!(j.as_array().is_some_and(|a| a.iter().any(|r| r["kind"] == "denial")), "{}", show(&o));

    let o = e.cordon(&["audit", "ls"]);
    let line = out(&o).lines().find(|l| l.starts_with(&ids[1][..16])).unwrap_or_default().to_string();
    assert!(line.contains("not run"), "{}", out(&o));
}
