//! The engine from a long-lived, multi-threaded process (issue 12): eight sessions started at once
//! from threads of this test process, each through its own `cordon supervise` process, each watched
//! by the sensor in its own cgroup; each outcome, events file and audit record belongs to its own
//! session.

mod common;
use common::*;
use cordon_session::spec::{AuditChoice, SessionSpec};
use cordon_session::supervise::{self, Message};
use std::process::Stdio;

fn spec(e: &Env, i: usize) -> SessionSpec {
    let ws = e.root.join(format!("ws{i}"));
    std::fs::create_dir_all(&ws).expect("ws");
    std::fs::write(ws.join("README.md"), format!("session {i}\n")).expect("readme");
    SessionSpec {
        allow_read: vec![],
        allow_write: vec![],
        env_secret: vec![],
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo {i} > marker; cat README.md > /dev/null; exit {i}").into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("HOME".into(), e.home.clone().into_os_string())],
        cwd: ws.clone(),
        workspace: Some(ws),
        policy: "builtin:agent".into(),
        project_policy: false,
        allow_net: vec![],
        publish: vec![],
        allow_degraded: false,
        review_hold: false,
        audit: AuditChoice::Path(e.root.join("audit.db")),
        report: None,
        events: Some(e.root.join(format!("events{i}.jsonl"))),
        head_copy: None,
        monitor: true,
        sensor_buffer: "4M".into(),
        kill_after: None,
        interactive: false,
        identity: None,
    }
}

#[test]
fn eight_sessions_at_once_from_one_threaded_process_each_keep_to_their_own() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_cordon"));
    let threads: Vec<_> = (1..=8usize)
        .map(|i| {
            let s = spec(&e, i);
            std::thread::spawn(move || {
                let sup = supervise::spawn(exe, &s, [Stdio::null(), Stdio::null(), Stdio::piped()]).expect("spawn");
                let (msgs, status) = sup.wait().expect("wait");
                (i, msgs, status)
            })
        })
        .collect();
    let mut ids = vec![];
    for t in threads {
        let (i, msgs, status) = t.join().expect("thread");
        assert_eq!(status.code(), Some(i as i32), "session {i}: {msgs:?}");
        let id = match msgs.first() {
            Some(Message::Started { session_id, .. }) => session_id.clone(),
            other => panic!("session {i} did not start: {other:?} / {msgs:?}"),
        };
        match msgs.last() {
            Some(Message::Finished { session_id, exit_code, .. }) => {
                assert_eq!((session_id, *exit_code), (&id, i as i32), "session {i}")
            }
            other => panic!("session {i} did not finish: {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(e.root.join(format!("ws{i}/marker"))).expect("marker").trim(),
            i.to_string()
        );
        // Its events: its own session only, its own command among them.
        let events = std::fs::read_to_string(e.root.join(format!("events{i}.jsonl"))).expect("events");
        let evs: Vec<serde_json::Value> = events.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        assert!(!evs.is_empty(), "session {i}: no events");
        assert!(evs.iter().all(|v| v["session"] == id.as_str()), "session {i}: another session's event in its file");
        let mine = format!("exit {i}");
        assert!(
            evs.iter().any(|v| v["kind"] == "exec" && v["argv"].to_string().contains(&mine)),
            "session {i}: its own exec is missing"
        );
        ids.push((i, id));
    }
    // The shared log: eight sealed sessions, each record of a session about that session.
    let r = cordon_audit::verify(&e.root.join("audit.db")).expect("verify");
    assert!(r.ok() && r.sealed == 8 && r.unfinished.is_empty(), "{r:?}");
    let store = cordon_audit::Store::open_read_only(&e.root.join("audit.db")).expect("log");
    for (i, id) in &ids {
        let recs = store.records(id).expect("records");
        let start = recs.iter().find(|r| r.kind == "start").expect("start");
        assert!(start.body.contains(&format!("exit {i}")), "session {i}'s start names its own command");
        let batches: Vec<&cordon_audit::Record> = recs.iter().filter(|r| r.kind == "sensor").collect();
        assert!(!batches.is_empty(), "session {i}: sensor events in the log");
        for b in batches {
            let evs: Vec<serde_json::Value> = serde_json::from_str(&b.body).expect("batch");
            assert!(evs.iter().all(|v| v["session"] == id.as_str()), "session {i}: a foreign event in its batch");
        }
    }
}

#[test]
fn a_refused_spec_is_reported_and_nothing_runs() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let mut s = spec(&e, 1);
    s.workspace = Some("/etc".into());
    let sup = supervise::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_cordon")),
        &s,
        [Stdio::null(), Stdio::null(), Stdio::null()],
    )
    .expect("spawn");
    let (msgs, status) = sup.wait().expect("wait");
    assert_eq!(status.code(), Some(125));
    match msgs.as_slice() {
        [Message::Failed { error }] => assert!(error.contains("refusing to use /etc"), "{error}"),
        other => panic!("{other:?}"),
    }
}
