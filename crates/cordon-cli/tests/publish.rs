//! `--publish [HOST_IP:]HOST_PORT:SESSION_PORT` (issue 17 #7): a dev server inside the session is
//! reachable from the host at the published port and nowhere else; bad entries and ports in use
//! stop the run before anything starts; open connections do not outlive the session.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port nothing on the host listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// GET / from the host's loopback at `port`; None when nothing answers.
fn get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body).filter(|b| !b.is_empty())
}

/// The session runs a web server on its port 3000 until the test creates `done` in the workspace.
const SERVER: &str = "python3 -m http.server 3000 --bind 127.0.0.1 >/dev/null 2>&1 & srv=$!; \
    i=0; while [ ! -e done ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; kill $srv";

fn spawn(e: &Env, extra: &[&str], script: &str) -> std::process::Child {
    let mut c = std::process::Command::new(if e.who == Who::Nobody { "setpriv" } else { env!("CARGO_BIN_EXE_cordon") });
    if e.who == Who::Nobody {
        c.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_cordon"));
        c.args(["run", "--allow-degraded"]);
    } else {
        c.arg("run");
    }
    c.args(extra)
        .args(["--", "/bin/sh", "-c", script])
        .current_dir(&e.ws)
        .env("HOME", &e.home)
        .env("CORDON_AUDIT", e.root.join("audit.db"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cordon")
}

fn finish(e: &Env, c: std::process::Child) -> std::process::Output {
    std::fs::write(e.ws.join("done"), "").expect("done");
    c.wait_with_output().expect("wait")
}

#[test]
fn a_published_dev_server_is_reachable_from_the_host() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        // Control: the same server in a session without --publish cannot be reached from the host.
        let port = free_port();
        let c = spawn(&e, &[], &format!("{SERVER}; echo served"));
        std::thread::sleep(Duration::from_millis(300));
        assert!(get(port).is_none(), "{who:?}: nothing answers on the host without --publish");
        let o = finish(&e, c);
        assert!(out(&o).contains("served"), "{}", show(&o));
        std::fs::remove_file(e.ws.join("done")).expect("rm done");
        // Published: the host's 127.0.0.1:PORT reaches the session's 3000.
        let rep = e.root.join("report.json");
        let publish = format!("{port}:3000");
        let c = spawn(&e, &["--publish", &publish, "--report", rep.to_str().unwrap_or("")], SERVER);
        let t = Instant::now();
        let body = loop {
            if let Some(b) = get(port).filter(|b| b.contains("200")) {
                break b;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{who:?}: the published server never answered");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(body.contains("README.md"), "{who:?}: the session's directory listing: {body}");
        let o = finish(&e, c);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        let s = err(&o);
        assert!(
            s.contains(&format!("published: 127.0.0.1:{port} -> session port 3000")),
            "{who:?}: said at the start: {s}"
        );
        assert!(
            s.contains(&format!("published 127.0.0.1:{port} -> session port 3000: ")),
            "{who:?}: counted at the end: {s}"
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&rep).expect("report")).expect("json");
        let p = &report["outcome"]["published"][0];
        assert_eq!(p["session_port"], 3000, "{report}");
        assert!(p["connections"].as_u64().unwrap_or(0) >= 1, "{report}");
        // The session's end closed the host's port.
        assert!(get(port).is_none(), "{who:?}: the port outlived the session");
    }
}

#[test]
fn a_connection_the_session_does_not_take_is_closed_and_counted() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let port = free_port();
    let publish = format!("{port}:3999");
    // Nothing listens on 3999 inside; the session waits until the test is done.
    let c = spawn(
        &e,
        &["--publish", &publish],
        "i=0; while [ ! -e done ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
    );
    let t = Instant::now();
    // The host's port is there from the start; the connection is closed without a byte.
    let mut s = loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the host port never opened");
        std::thread::sleep(Duration::from_millis(20));
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed, nothing sent");
    let o = finish(&e, c);
    assert!(o.status.success(), "{}", show(&o));
    assert!(err(&o).contains("1 not taken by the session (Connection refused"), "{}", show(&o));
}

#[test]
fn an_open_connection_does_not_keep_the_session_alive() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let port = free_port();
    let publish = format!("{port}:3000");
    let c = spawn(&e, &["--publish", &publish], SERVER);
    let t = Instant::now();
    // An idle client holds a connection to the session's server.
    let idle = loop {
        if let Some(s) = TcpStream::connect(("127.0.0.1", port)).ok().filter(|_| get(port).is_some()) {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the published server never answered");
        std::thread::sleep(Duration::from_millis(50));
    };
    let t = Instant::now();
    let o = finish(&e, c);
    assert!(o.status.success(), "{}", show(&o));
    assert!(t.elapsed() < Duration::from_secs(20), "the session's end waited for the client: {:?}", t.elapsed());
    // The session's end cut the relayed connection.
    idle.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!((&idle).read(&mut buf).unwrap_or(0), 0, "the connection was closed");
}

#[test]
fn bad_publish_entries_and_ports_in_use_stop_the_run_before_it_starts() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_port = busy.local_addr().expect("addr").port();
    let in_use = format!("{busy_port}:3000");
    let cases: [(&[&str], &str); 5] = [
        (&["--publish", "99999:1"], "--publish #1 `99999:1`: host port 99999 is out of range"),
        (&["--publish", "8080"], "expected [HOST_IP:]HOST_PORT:SESSION_PORT"),
        (&["--publish", "nonsense:80:1"], "`nonsense` is not an IPv4 address"),
        (&["--publish", &in_use], "already listens there"),
        (&["--publish", "18090:1", "--publish", "18090:2"], "published twice"),
    ];
    for (args, want) in cases {
        let o = e.run_sh_with(args, "touch ran", &[]);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", show(&o));
        assert!(err(&o).contains(want), "{args:?}: {}", show(&o));
        assert!(err(&o).contains("hint:"), "{args:?}: {}", show(&o));
        assert!(!e.ws.join("ran").exists(), "{args:?}: the command ran");
    }
    // A policy that shares the host's network has nothing to publish.
    let p = e.write_policy("open.toml", "version = 1\nextends = [\"builtin:agent\"]\n[net]\negress = \"open\"\n");
    let o = e.run_sh_with(&["--policy", p.to_str().unwrap_or(""), "--publish", "18091:1"], "touch ran", &[]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("needs the session's own network namespace"), "{}", show(&o));
    assert!(!e.ws.join("ran").exists());
    drop(busy);
}
