//! The dashboard as a user sees it (issue 16): Debian's headless chromium, driven by playwright-core
//! (tests/browser/dashboard.mjs), signs in through the login form and visits every view of the real
//! `cordon server`, which holds real sessions recorded and shipped by the real `cordon`. The test
//! asserts on the rendered text and the DOM, and writes a screenshot of each view
//! (target/tmp/screenshots, or $CORDON_SCREENSHOTS: docs/screenshots holds the committed set).

mod common;

use common::server::{tempdir, Server, TempDir};
use common::{Env, Who};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Where scripts/setup-tests installs the pinned driver (tests/browser/package-lock.json).
const DRIVER: &str = "/opt/cordon-test/browser";
const HOSTILE: [&str; 3] = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "\x1b[31m"];
/// How the hostile values must read on screen: literally, the ANSI escape as a visible `\u{1b}`.
const HOSTILE_SHOWN: [&str; 3] = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "\\u{1b}[31m"];

/// Chromium and the driver are installed by scripts/setup-tests (CI runs it): missing, the test
/// fails, unless CORDON_TESTS_ALLOW_SKIP=1 (then it is recorded as skipped).
fn have_browser() -> bool {
    let driver = Path::new(DRIVER).join("node_modules/playwright-core/package.json");
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [(Path::new(CHROMIUM).exists(), CHROMIUM), (driver.exists(), DRIVER), (node, "node")]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what)
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {}: run scripts/setup-tests as root", missing.join(", "));
    if std::env::var_os("CORDON_TESTS_ALLOW_SKIP").is_some() {
        common::record_skip("dashboard.rs", &why);
        return false;
    }
    panic!("the dashboard test needs Debian's chromium and playwright-core: {why}; set CORDON_TESTS_ALLOW_SKIP=1 to skip it explicitly");
}

/// Headless chromium in a process group of its own (its zygote and renderers with it), on a fresh
/// profile; the whole group is killed on drop and the profile removed. Flags keep it off the
/// network (this machine has none: without them it stalls reaching Google).
struct Chromium {
    child: Child,
    profile: TempDir,
    endpoint: String,
}

impl Chromium {
    fn start() -> Chromium {
        use std::os::unix::process::CommandExt;
        let profile = tempdir("chromium");
        // Its temporary files (a singleton socket's directory, org.chromium.Chromium.XXXXXX) go
        // under the profile, removed with it, not left in /tmp; the path stays short enough for a
        // socket's address (108 bytes).
        let tmp = profile.0.join("tmp");
        std::fs::create_dir_all(&tmp).expect("chromium's TMPDIR");
        let child = Command::new(CHROMIUM)
            .env("TMPDIR", &tmp)
            .args([
                "--headless",
                "--no-sandbox", // The suite runs as root, where chromium's sandbox will not start.
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromium");
        let mut c = Chromium { child, profile, endpoint: String::new() };
        // Port 0: chromium picks a free port and writes it to DevToolsActivePort (no race).
        let file = c.profile.0.join("DevToolsActivePort");
        let port = common::wait_for(Duration::from_secs(20), || {
            let s = std::fs::read_to_string(&file).ok()?;
            s.lines().next()?.trim().parse::<u16>().ok()
        })
        .expect("chromium did not open its DevTools port within 20 s");
        c.endpoint = format!("http://127.0.0.1:{port}");
        c
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        // The group is ours (process_group(0) made the child its leader); signalled before the
        // reap, so its id cannot have been reused.
        let _ = killpg(nix::unistd::Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// What the browser rendered of one view (dashboard.mjs's `look`).
#[derive(serde::Deserialize, Debug)]
struct View {
    name: String,
    status: u16,
    url: String,
    text: String,
    scripts: usize,
    images: usize,
    handlers: usize,
    #[serde(rename = "loginForm")]
    login_form: bool,
}

#[derive(serde::Deserialize, Debug)]
struct Visit {
    anonymous: View,
    login: View,
    views: Vec<View>,
    dialogs: Vec<String>,
}

/// Runs the driver (killed if it outlives `limit`) and parses what it saw.
fn drive(spec: &serde_json::Value) -> Visit {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(spec.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (mut so, mut se) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let out = std::thread::spawn(move || std::io::read_to_string(&mut so).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(&mut se).unwrap_or_default());
    let status = common::wait_for(Duration::from_secs(60), || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    assert!(status.is_some_and(|s| s.success()), "the driver failed ({status:?}):\n{err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("the driver's report is no JSON ({e}):\n{out}\n{err}"))
}

/// Where screenshots go: $CORDON_SCREENSHOTS (relative to the workspace), else target/tmp.
fn screenshots() -> PathBuf {
    let dir = match std::env::var_os("CORDON_SCREENSHOTS") {
        Some(d) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(d),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
    };
    std::fs::create_dir_all(&dir).expect("the screenshots' directory");
    dir
}

/// The node's flags for `cordon run` / `cordon audit ship`, its token in a file under the env.
fn ship_args(e: &Env, srv: &Server, node: &str) -> Vec<String> {
    let tf = e.root.join("node.token");
    std::fs::write(&tf, srv.token("node", node) + "\n").expect("token file");
    let url = format!("http://{}", srv.addr);
    ["--server", &url, "--server-token-file", tf.to_str().expect("utf-8"), "--server-node", node]
        .map(String::from)
        .to_vec()
}

/// `cordon run SHIP EXTRA -- ARGV` as root in `e`: a session the real binary records and ships.
fn run(e: &Env, ship: &[String], extra: &[&str], argv: &[&str]) {
    let mut args = vec!["run"];
    args.extend(ship.iter().map(String::as_str));
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(argv);
    let o = e.cordon(&args);
    assert!(o.status.success(), "{}", common::show(&o));
    assert!(common::err(&o).contains("shipped"), "the session was not shipped: {}", common::show(&o));
}

/// The session of `node` whose start record holds `needle`.
fn session_of(srv: &Server, node: &str, needle: &str) -> String {
    let c = rusqlite::Connection::open(&srv.db).expect("the server's database");
    c.query_row(
        "SELECT session FROM sessions WHERE node = ?1 AND instr(start, ?2) > 0",
        rusqlite::params![node, needle],
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("no session of {node:?} with {needle:?}: {e}"))
}

/// Policy `ci-bot` version 1; a session under it still running when version 2 is put: stale.
fn stale_session(e: &Env, srv: &Server, ship: &[String]) {
    let admin = srv.token("admin", "ops");
    let v1 = "version = 1\nname = \"ci-bot\"\nextends = [\"builtin:agent\"]\n";
    assert_eq!(srv.call("PUT", "/api/v1/policies/ci-bot", &admin, v1.as_bytes()).0, 200);
    let mut args: Vec<&str> = vec!["run"];
    args.extend(ship.iter().map(String::as_str));
    args.extend_from_slice(&["--identity", "ci-bot", "--", "/bin/sh", "-c", "while [ ! -e go ]; do sleep 0.05; done"]);
    let mut c = e.command(env!("CARGO_BIN_EXE_cordon"));
    let mut running = c.args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let q = "SELECT count(*) FROM sessions WHERE outcome IS NULL AND instr(start, 'ci-bot') > 0";
    let seen = common::wait_for(Duration::from_secs(30), || (srv.sql(q) == 1).then_some(()));
    let v2 = format!("{v1}# v2: the same rules, a new version\n");
    let put = srv.call("PUT", "/api/v1/policies/ci-bot", &admin, v2.as_bytes());
    std::fs::write(e.ws.join("go"), "").expect("go");
    let st = running.wait().expect("wait");
    assert!(seen.is_some(), "the running session's start never reached the server");
    assert_eq!(put.0, 200, "{}", put.1);
    assert!(st.success(), "{st:?}");
}

/// Devbox claims as the daemon records them (start records with a `devbox` object, through
/// cordon-audit's writer: no daemon fixture yields a spread of claims cheaply), shipped by the real
/// `cordon audit ship`.
fn devbox_claims(srv: &Server) {
    let e = Env::new(Who::Root);
    {
        let mut st = cordon_audit::Store::open(&e.root.join("audit.db")).expect("the node's log");
        let t0 = now_ms();
        // A claim every 15 minutes over the last 6 hours: the chart has hours to draw.
        for i in 0..24i64 {
            let (snap, ms, pool) =
                if i < 20 { ("python-3.12", 4.0 + (i % 12) as f64, true) } else { ("node-20", 180.0, false) };
            let body = serde_json::json!({"devbox": {"id": format!("d{i}"), "snapshot": snap, "latency_ms": ms, "from_pool": pool}});
            let id = format!("d{i}");
            st.append(&id, &[("start".to_string(), t0 - (24 - i) * 15 * 60_000, body)]).expect("append");
            st.seal(&id, t0 - (24 - i) * 15 * 60_000).expect("seal");
        }
    }
    let mut args = vec!["audit".to_string(), "ship".to_string()];
    args.extend(ship_args(&e, srv, "devbox-host"));
    let o = e.cordon(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", common::show(&o));
}

/// A batch the server refuses (a shipped record changed), so the refusals view has a row.
fn refused_batch(e: &Env, srv: &Server) {
    use cordon_audit::ship::{Batch, WireRecord};
    let db = e.root.join("audit.db");
    let recs = cordon_audit::Store::open_read_only(&db).expect("log").records_after(0, 1).expect("records");
    let key = cordon_audit::public_key(&db).expect("key");
    let mut b = Batch {
        node: "n1".into(),
        public_key: key.to_bytes().iter().map(|b| format!("{b:02x}")).collect(),
        records: recs.iter().map(WireRecord::from_record).collect(),
    };
    b.records[0].ts_ms += 1;
    let token = srv.token("node", "n1");
    let (st, body) = srv.call("POST", "/api/v1/ingest", &token, &serde_json::to_vec(&b).expect("json"));
    assert_eq!(st, 409, "{body}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Asserts what every signed-in view must be: served, no element the data could have made (the
/// server sends no script, image or event handler), and the named strings on screen.
fn shows(v: &View, want: &[&str]) {
    assert_eq!(v.status, 200, "{}: {} at {}\n{}", v.name, v.status, v.url, v.text);
    assert_eq!((v.scripts, v.images, v.handlers), (0, 0, 0), "{}: markup from data in the DOM\n{}", v.name, v.text);
    assert!(!v.login_form, "{}: sent to the login form", v.name);
    for w in want {
        assert!(v.text.contains(w), "{}: no {w:?} on screen:\n{}", v.name, v.text);
    }
}

/// Every view, in chromium, over real sessions: a plain one, one refused a privileged call (a
/// seccomp denial and the `privilege-attempt` alert), one with hostile argv and paths from a node
/// with a hostile name, one marked stale by a newer policy version, devbox claims, a refused batch.
#[test]
fn dashboard_in_chromium_shows_each_view_escaped_and_signed_in() {
    if !common::need_root() || !have_browser() {
        return;
    }
    let dir = tempdir("dashboard");
    let srv = Server::start(&dir.0);
    let e = Env::new(Who::Root);
    let ship = ship_args(&e, &srv, "n1");
    run(&e, &ship, &[], &["/bin/sh", "-c", "echo hello from the dashboard test"]);
    run(&e, &ship, &[], &["/bin/sh", "-c", "unshare -U true; true"]);
    stale_session(&e, &srv, &ship);
    refused_batch(&e, &srv);
    // Token names hold no control characters: the node's name is hostile HTML only.
    let hostile_node = HOSTILE[..2].concat();
    let h = Env::new(Who::Root);
    let hship = ship_args(&h, &srv, &hostile_node);
    let script = "cat \"$1\" \"$2\" \"$3\"; cp /bin/true /tmp/t; /tmp/t; true";
    let mut argv = vec!["/bin/sh", "-c", script, "sh"];
    argv.extend_from_slice(&HOSTILE);
    run(&h, &hship, &["--monitor"], &argv);
    devbox_claims(&srv);

    let plain = session_of(&srv, "n1", "hello from the dashboard test");
    let denied = session_of(&srv, "n1", "unshare -U true");
    let hostile = session_of(&srv, &hostile_node, "onerror");
    let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let views = serde_json::json!([
        {"name": "sessions", "path": "/"},
        {"name": "session", "path": format!("/sessions/{plain}?node=n1")},
        {"name": "session-denied", "path": format!("/sessions/{denied}?node=n1")},
        {"name": "session-hostile", "path": format!("/sessions/{hostile}?node={}", enc(&hostile_node))},
        {"name": "alerts", "path": "/alerts"},
        {"name": "refusals", "path": "/refusals"},
        {"name": "policies", "path": "/policies"},
        {"name": "policy-history", "path": "/policies/ci-bot"},
        {"name": "stale", "path": "/stale"},
        {"name": "devboxes", "path": "/devboxes"},
    ]);
    let shots = screenshots();
    let chromium = Chromium::start();
    let viewer = srv.token("viewer", "alice");
    let visit = drive(&serde_json::json!({
        "endpoint": chromium.endpoint, "driver": DRIVER, "base": format!("http://{}", srv.addr),
        "token": viewer, "views": views, "screenshots": shots,
        "filter": {"node": "n1", "outcome": "exited"},
    }));
    drop(chromium);

    assert!(visit.dialogs.is_empty(), "a dialog opened: {:?}", visit.dialogs);
    let a = &visit.anonymous;
    assert!(a.status == 401 && a.login_form, "an anonymous load was not sent to sign in: {a:?}");
    assert!(!a.text.contains("hello from the dashboard test"), "{}", a.text);
    assert!(visit.login.url.ends_with('/') && !visit.login.login_form, "the login did not sign in: {:?}", visit.login);
    let by = |n: &str| visit.views.iter().find(|v| v.name == n).unwrap_or_else(|| panic!("no view {n}"));
    let count = format!("{} session(s)", srv.sql("SELECT count(*) FROM sessions"));
    let mut list = vec![count.as_str(), "echo hello from the dashboard test", "unshare -U true", "ci-bot"];
    list.extend_from_slice(&HOSTILE_SHOWN);
    shows(by("sessions"), &list);
    shows(by("session"), &["command /bin/sh -c echo hello from the dashboard test", "exited (exit 0)", "sealed"]);
    shows(by("session-denied"), &["DENIED [seccomp] unshare", "privilege-attempt"]);
    let mut hostile_text = vec!["DENIED exec /tmp/t [landlock]"];
    hostile_text.extend_from_slice(&HOSTILE_SHOWN);
    shows(by("session-hostile"), &hostile_text);
    shows(by("alerts"), &["privilege-attempt", &denied]);
    shows(by("refusals"), &["conflict", "n1"]);
    shows(by("policies"), &["ci-bot", "ops"]);
    shows(by("policy-history"), &["ci-bot", "ops"]);
    shows(by("stale"), &["existed: 1 (newest first)", "n1\t", "ci-bot\t1\t2\t"]);
    shows(by("devboxes"), &["python-3.12", "warm claims 20: p50 8.0 ms, p99 15.0 ms — goals met", "p99 goal 50 ms"]);
    // A snapshot only ever made at claim: no warm numbers (no "p50 0.0 ms"), its cold ones.
    shows(by("devboxes"), &["node-20", "warm claims: none", "made at claim: 4 (p50 180.0 ms"]);
    let f = by("sessions-filtered");
    shows(f, &["3 session(s)", "echo hello from the dashboard test"]);
    assert!(f.url.contains("node=n1") && f.url.contains("outcome=exited"), "{}", f.url);
    // (The nodes table above the list names every node: the session's id tells.)
    assert!(!f.text.contains(&hostile), "the filter kept another node's session:\n{}", f.text);
    for v in visit.views.iter().chain([&visit.anonymous]) {
        let png = shots.join(format!("{}.png", v.name));
        let head = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(head.starts_with(b"\x89PNG"), "{} is no PNG", png.display());
    }
}
