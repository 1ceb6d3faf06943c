//! `cordon server --otlp-endpoint` (issue 16): the real server, real sessions recorded by the real
//! `cordon` (and a real `cordon gateway` run) ingested over TCP, exported to a receiver that decodes
//! with the official OpenTelemetry protobuf classes (tests/otlp/receiver.py, opentelemetry-proto
//! from PyPI): what it reads is what a collector would read from the same bytes.

mod common;
use cordon_audit::hex;

use common::server::{fixed_port, tempdir, Server};
use common::{Env, Who};
use cordon_audit::ship::{Batch, WireRecord};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");
const PY: &str = "/opt/cordon-test/mcp-venv/bin/python";

/// receiver.py, running: every span and log record it decoded, as JSON.
struct Receiver {
    child: Child,
    port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(tls: Option<(&Path, &Path)>) -> Receiver {
        Receiver::spawn(tls, 0, 1)
    }

    /// One that answers its first `n` requests 503 with Retry-After: `after` seconds.
    fn refusing(n: usize, after: u32) -> Receiver {
        Receiver::spawn(None, n, after)
    }

    fn spawn(tls: Option<(&Path, &Path)>, refuse: usize, after: u32) -> Receiver {
        assert!(Path::new(PY).exists(), "{PY} is missing: run ./scripts/setup-tests");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/receiver.py");
        let mut c = Command::new(PY);
        c.arg(script).arg("--refuse").arg(refuse.to_string()).arg("--retry-after").arg(after.to_string());
        if let Some((cert, key)) = tls {
            c.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("receiver.py");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the receiver's first line");
        let first: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("receiver.py said {line:?}"));
        let port = first["port"].as_u64().expect("port") as u16;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let (Ok(v), Ok(mut s)) = (serde_json::from_str::<Value>(&line), sink.lock()) {
                    s.push(v);
                }
            }
        });
        Receiver { child, port, seen }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn of(&self, signal: &str) -> Vec<Value> {
        self.seen.lock().expect("lock").iter().filter(|v| v["signal"] == signal).cloned().collect()
    }

    /// Waits until spans + logs number `n`, then returns (spans, logs).
    fn wait(&self, n: usize) -> (Vec<Value>, Vec<Value>) {
        let got = common::wait_for(Duration::from_secs(20), || {
            let (s, l) = (self.of("span"), self.of("log"));
            (s.len() + l.len() >= n).then_some((s, l))
        });
        got.unwrap_or_else(|| {
            panic!("the receiver got {} spans, {} logs of {n}", self.of("span").len(), self.of("log").len())
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server derives for a session: (trace id, span id), hex.
fn session_ids(node: &str, session: &str) -> (String, String) {
    let h = Sha256::digest(format!("cordon.session\0{node}\0{session}").as_bytes());
    (hex(&h[..16]), hex(&h[16..24]))
}

fn batch_of(db: &Path, node: &str) -> Batch {
    let s = cordon_audit::Store::open_read_only(db).expect("open the node's log");
    let records = s.records_after(0, 1_000_000).expect("records");
    let key = cordon_audit::public_key(db).expect("key");
    Batch {
        node: node.into(),
        public_key: hex(&key.to_bytes()),
        records: records.iter().map(WireRecord::from_record).collect(),
    }
}

fn post(srv: &Server, token: &str, batch: &Batch) -> u16 {
    srv.call("POST", "/api/v1/ingest", token, &serde_json::to_vec(batch).expect("json")).0
}

/// A counter's value on /metrics (0 when absent).
fn metric(srv: &Server, viewer: &str, series: &str) -> u64 {
    let (st, text) = srv.call("GET", "/metrics", viewer, b"");
    assert_eq!(st, 200, "{text}");
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0)
}

/// `n` sessions recorded by the real `cordon run` as `who`, each with a refused read.
fn recorded(who: Who, n: usize) -> Env {
    let e = Env::new(who);
    for i in 0..n {
        let o = e.run_sh(&format!("echo session {i}; cat /etc/shadow 2>/dev/null; true"));
        assert!(o.status.success(), "{}", common::show(&o));
    }
    e
}

#[test]
fn otlp_sessions_arrive_as_spans_with_derived_ids_and_other_records_as_logs_in_them() {
    if !common::need_root() {
        return;
    }
    for who in common::BOTH {
        let rx = Receiver::start(None);
        let dir = tempdir("otlp");
        let url = rx.url("http");
        let srv =
            Server::start_with(&dir.0, &["--otlp-endpoint", &url, "--otlp-header", "Authorization=Bearer otlp-s3cret"]);
        let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "v"));
        let e = recorded(who, 2);
        let batch = batch_of(&e.root.join("audit.db"), "n1");
        assert_eq!(post(&srv, &node, &batch), 200);
        let n = batch.records.len();
        let (spans, logs) = rx.wait(n);
        assert_eq!(spans.len() + logs.len(), n, "{who:?}: each record once");
        let ends: Vec<&WireRecord> = batch.records.iter().filter(|r| r.kind == "end").collect();
        assert_eq!(spans.len(), 2, "{who:?}: {spans:?}");
        for end in ends {
            let (trace, span) = session_ids("n1", &end.session);
            let s = spans.iter().find(|s| s["span_id"] == span).unwrap_or_else(|| panic!("{who:?}: no span {span}"));
            assert_eq!((s["trace_id"].as_str(), s["name"].as_str()), (Some(trace.as_str()), Some("cordon.session")));
            assert_eq!(s["resource"]["service.name"], "cordon");
            assert_eq!(s["resource"]["host.name"], "n1");
            assert_eq!(s["attributes"]["cordon.outcome"], "exited");
            let (start, end) = (s["start"].as_u64().expect("start"), s["end"].as_u64().expect("end"));
            assert!(0 < start && start <= end, "{s}");
        }
        for r in batch.records.iter().filter(|r| r.kind != "end") {
            let (trace, span) = session_ids("n1", &r.session);
            let seq = r.seq.to_string();
            let l =
                logs.iter().find(|l| l["attributes"]["cordon.seq"] == seq).unwrap_or_else(|| panic!("no log {seq}"));
            assert_eq!((l["trace_id"].as_str(), l["span_id"].as_str()), (Some(trace.as_str()), Some(span.as_str())));
            assert_eq!(
                (l["body"].as_str(), l["attributes"]["cordon.kind"].as_str()),
                (Some(r.body.as_str()), Some(r.kind.as_str()))
            );
        }
        assert!(rx.of("request").iter().all(|r| r["auth"] == "Bearer otlp-s3cret"));
        let exported = "cordon_server_otlp_records_exported_total";
        let done =
            common::wait_for(Duration::from_secs(10), || (metric(&srv, &viewer, exported) == n as u64).then_some(()));
        assert!(done.is_some(), "{who:?}: exported {} of {n}", metric(&srv, &viewer, exported));
        // A retry stores nothing new and exports nothing again.
        assert_eq!(post(&srv, &node, &batch), 200);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(rx.of("span").len() + rx.of("log").len(), n, "{who:?}: a retry was exported again");
    }
}

/// A gateway's tool call: a span in the gateway session's trace, its parent the gateway session's
/// span, with a link to the sandbox session the MCP server ran in; that session arrives as a span
/// with the linked ids, and the call's `tool_result` as a log in the call's span.
#[test]
fn otlp_a_tool_call_span_is_parented_by_its_gateway_session_and_linked_to_its_sandbox_session() {
    if !common::need_root() {
        return;
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/gateway");
    for who in common::BOTH {
        let rx = Receiver::start(None);
        let e = Env::new(who);
        for f in ["server.py", "client.py"] {
            std::fs::copy(fixtures.join(f), e.ws.join(f)).expect("fixture");
        }
        let cfg = e.write_policy(
            "gw.toml",
            &format!("pinning = \"off\"\n[servers.py]\ncommand = [\"{PY}\", \"server.py\"]\nworkspace = \"home/ws\"\n"),
        );
        let dir = tempdir("otlp");
        let srv = Server::start_with(&dir.0, &["--otlp-endpoint", &rx.url("http")]);
        let tf = e.root.join("node.token");
        std::fs::write(&tf, srv.token("node", "gw1") + "\n").expect("token file");
        if who == Who::Nobody {
            e.chown_all();
        }
        let mut c = e.command(PY);
        c.arg(e.ws.join("client.py")).args(["--", CORDON, "gateway", "--stdio", "--config"]).arg(&cfg);
        c.arg("--audit").arg(e.root.join("audit.db"));
        c.args(["--server", &format!("http://{}", srv.addr), "--server-token-file"]).arg(&tf);
        c.args(["--server-node", "gw1"]);
        if who == Who::Nobody {
            c.arg("--allow-degraded");
        }
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("client");
        let calls = serde_json::json!([{"tool": "py__echo", "args": {"text": "exported"}}]);
        child.stdin.take().expect("stdin").write_all(calls.to_string().as_bytes()).expect("calls");
        let o = child.wait_with_output().expect("wait");
        assert!(o.status.success(), "{who:?}: {}", common::show(&o));

        let spans = |name: &str| -> Vec<Value> { rx.of("span").into_iter().filter(|s| s["name"] == name).collect() };
        let call = common::wait_for(Duration::from_secs(20), || spans("cordon.tool_call").pop());
        let call = call.unwrap_or_else(|| panic!("{who:?}: no tool call span in {:?}", rx.of("span")));
        let gw = call["attributes"]["cordon.session"].as_str().expect("the call's session").to_string();
        let sandbox =
            call["attributes"]["cordon.tool.sandbox_session"].as_str().expect("its sandbox session").to_string();
        assert_ne!(gw, sandbox);
        let (gw_trace, gw_span) = session_ids("gw1", &gw);
        let (sb_trace, sb_span) = session_ids("gw1", &sandbox);
        assert_eq!((call["trace_id"].as_str(), call["parent_span_id"].as_str()), (Some(&*gw_trace), Some(&*gw_span)));
        assert_eq!(call["attributes"]["cordon.tool.decision"], "allow");
        let link = &call["links"][0];
        assert_eq!((link["trace_id"].as_str(), link["span_id"].as_str()), (Some(&*sb_trace), Some(&*sb_span)));
        // Both sessions end (the gateway's run is over): their spans carry the ids used above.
        let ended = common::wait_for(Duration::from_secs(20), || {
            let s = spans("cordon.session");
            let has = |t: &str, id: &str| s.iter().any(|x| x["trace_id"] == t && x["span_id"] == id);
            (has(&sb_trace, &sb_span) && has(&gw_trace, &gw_span)).then_some(())
        });
        assert!(ended.is_some(), "{who:?}: the sessions' spans did not both arrive: {:?}", spans("cordon.session"));
        let results: Vec<Value> =
            rx.of("log").into_iter().filter(|l| l["attributes"]["cordon.kind"] == "tool_result").collect();
        assert!(
            results.iter().any(|l| l["span_id"] == call["span_id"] && l["trace_id"] == gw_trace),
            "{who:?}: {results:?}"
        );
    }
}

/// A CA made here (openssl CLI), the receiver serving a certificate it signed for 127.0.0.1:
/// export over https trusts it with --otlp-ca-file, and fails (counted, logged once) without.
#[test]
fn otlp_over_https_trusts_the_ca_file_and_fails_counted_without_it() {
    if !common::need_root() {
        return;
    }
    let dir = tempdir("otlp-tls");
    let d = &dir.0;
    let ca = common::certs::ca(d, "ca");
    let (cert, key) = common::certs::leaf(d, "ca", "leaf");
    let rx = Receiver::start(Some((&cert, &key)));
    let url = rx.url("https");
    let e = recorded(Who::Root, 1);
    let batch = batch_of(&e.root.join("audit.db"), "n1");
    let n = batch.records.len();

    let trusted = Server::start_with(
        &d.join("a").tap_mkdir(),
        &["--otlp-endpoint", &url, "--otlp-ca-file", ca.to_str().expect("utf-8")],
    );
    assert_eq!(post(&trusted, &trusted.token("node", "n1"), &batch), 200);
    let (spans, logs) = rx.wait(n);
    assert_eq!((spans.len(), logs.len()), (1, n - 1));

    let untrusted = Server::start_with(&d.join("b").tap_mkdir(), &["--otlp-endpoint", &url]);
    let viewer = untrusted.token("viewer", "v");
    assert_eq!(post(&untrusted, &untrusted.token("node", "n1"), &batch), 200);
    let failed = "cordon_server_otlp_records_dropped_total{reason=\"export_failed\"}";
    let done =
        common::wait_for(Duration::from_secs(15), || (metric(&untrusted, &viewer, failed) == n as u64).then_some(()));
    assert!(
        done.is_some(),
        "dropped {} of {n}; log: {}",
        metric(&untrusted, &viewer, failed),
        untrusted.log.lock().expect("log")
    );
    assert_eq!(rx.of("span").len() + rx.of("log").len(), n, "nothing arrived from the untrusting server");
    let log = untrusted.log.lock().expect("log").clone();
    assert_eq!(log.matches("OTLP export to").count(), 1, "{log}");
    assert!(log.contains("TLS"), "{log}");
}

trait Mkdir {
    fn tap_mkdir(self) -> PathBuf;
}

impl Mkdir for PathBuf {
    fn tap_mkdir(self) -> PathBuf {
        std::fs::create_dir_all(&self).expect("mkdir");
        self
    }
}

/// An endpoint where nothing listens: every batch is still stored and acknowledged, each failed
/// export is tried again (once here: --otlp-retries 1), then counted as dropped, and the failure is
/// logged once. Stopping the server then ends it at once: nothing is left to send.
#[test]
fn otlp_an_unreachable_endpoint_never_holds_up_ingest_and_its_drops_are_counted() {
    if !common::need_root() {
        return;
    }
    let dead = format!("http://127.0.0.1:{}", fixed_port());
    let dir = tempdir("otlp");
    let mut srv = Server::start_with(&dir.0, &["--otlp-endpoint", &dead, "--otlp-retries", "1"]);
    let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "v"));
    let e = recorded(Who::Root, 3);
    let whole = batch_of(&e.root.join("audit.db"), "n1");
    let n = whole.records.len();
    for part in whole.records.chunks(4) {
        let b = Batch { node: whole.node.clone(), public_key: whole.public_key.clone(), records: part.to_vec() };
        assert_eq!(post(&srv, &node, &b), 200);
    }
    assert_eq!(srv.sql("SELECT count(*) FROM records"), n as i64);
    let failed = "cordon_server_otlp_records_dropped_total{reason=\"export_failed\"}";
    let done = common::wait_for(Duration::from_secs(30), || (metric(&srv, &viewer, failed) == n as u64).then_some(()));
    assert!(done.is_some(), "dropped {} of {n}", metric(&srv, &viewer, failed));
    assert_eq!(metric(&srv, &viewer, "cordon_server_otlp_records_exported_total"), 0);
    let log = srv.log.lock().expect("log").clone();
    assert_eq!(log.matches("OTLP export to").count(), 1, "logged once per kind: {log}");
    assert!(log.contains("failed after 2 tries (cannot connect"), "{log}");
    let retries = metric(&srv, &viewer, "cordon_server_otlp_retries_total");
    assert!(retries >= 1, "every failed request was tried again once: {retries} retries");
    // The exporting thread runs 10 nice steps below the server (at most 19).
    let (main, export) = (nice_of(srv.pid(), "cordon-server"), nice_of(srv.pid(), "cordon-otlp"));
    assert_eq!(export, (main + 10).min(19), "the server at nice {main}, its exporter at {export}");
    let st = srv.stop(Duration::from_secs(5));
    assert!(st.success(), "{st:?}");
    let log = srv.log.lock().expect("log").clone();
    assert!(!log.contains("not sent within"), "nothing was queued at the end: {log}");
}

/// A collector that answers its first two requests 503 with Retry-After: 1 (overloaded, or
/// restarting): each is sent again after the wait it asked for, every record arrives once, and the
/// retries are counted. The collector's token comes from a file (`--otlp-header @FILE`), so it is
/// not on the server's command line.
#[test]
fn otlp_a_refused_request_is_sent_again_and_every_record_arrives_once() {
    if !common::need_root() {
        return;
    }
    let rx = Receiver::refusing(2, 1);
    let dir = tempdir("otlp");
    let headers = dir.0.join("otlp-headers");
    std::fs::write(&headers, "# the collector's token\n\nAuthorization = Bearer from-a-file\n").expect("write");
    chmod_600(&headers);
    let at = format!("@{}", headers.display());
    let srv = Server::start_with(&dir.0, &["--otlp-endpoint", &rx.url("http"), "--otlp-header", &at]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", srv.pid())).expect("cmdline");
    assert!(!String::from_utf8_lossy(&cmdline).contains("from-a-file"), "the token is on the command line");
    let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "v"));
    let e = recorded(Who::Root, 2);
    let batch = batch_of(&e.root.join("audit.db"), "n1");
    let n = batch.records.len();
    assert_eq!(post(&srv, &node, &batch), 200);
    let (spans, logs) = rx.wait(n);
    assert_eq!(spans.len() + logs.len(), n, "each record once");
    assert_eq!(rx.of("refused").len(), 2);
    assert!(rx.of("request").iter().all(|r| r["auth"] == "Bearer from-a-file"), "{:?}", rx.of("request"));
    let exported = "cordon_server_otlp_records_exported_total";
    let done =
        common::wait_for(Duration::from_secs(10), || (metric(&srv, &viewer, exported) == n as u64).then_some(()));
    assert!(done.is_some(), "exported {} of {n}", metric(&srv, &viewer, exported));
    assert_eq!(metric(&srv, &viewer, "cordon_server_otlp_retries_total"), 2);
    let failed = "cordon_server_otlp_records_dropped_total{reason=\"export_failed\"}";
    assert_eq!(metric(&srv, &viewer, failed), 0);
}

/// A collector that refuses every request (503): with `--otlp-retries 1` each request is tried
/// exactly twice (what the collector saw: two refusals per retry counted), then its records are
/// counted as failed, each once.
#[test]
fn otlp_each_refused_request_is_tried_retries_plus_one_times_then_counted_failed() {
    if !common::need_root() {
        return;
    }
    let rx = Receiver::refusing(1_000_000, 0);
    let dir = tempdir("otlp");
    let srv = Server::start_with(&dir.0, &["--otlp-endpoint", &rx.url("http"), "--otlp-retries", "1"]);
    let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "v"));
    let e = recorded(Who::Root, 2);
    let batch = batch_of(&e.root.join("audit.db"), "n1");
    let n = batch.records.len() as u64;
    assert_eq!(post(&srv, &node, &batch), 200);
    let failed = "cordon_server_otlp_records_dropped_total{reason=\"export_failed\"}";
    let done = common::wait_for(Duration::from_secs(30), || (metric(&srv, &viewer, failed) == n).then_some(()));
    assert!(done.is_some(), "failed {} of {n}", metric(&srv, &viewer, failed));
    // The receiver's lines are read by a thread of this test: the last may come a moment after.
    let counts = || (rx.of("refused").len() as u64, metric(&srv, &viewer, "cordon_server_otlp_retries_total"));
    let even = common::wait_for(Duration::from_secs(10), || {
        let (refused, retries) = counts();
        (retries >= 1 && refused == 2 * retries).then_some(())
    });
    assert!(even.is_some(), "(refusals, retries): {:?}", counts());
    assert_eq!(metric(&srv, &viewer, "cordon_server_otlp_records_exported_total"), 0);
}

/// SIGTERM while a request waits to be sent again (its collector answered 503 with Retry-After:
/// 30): the server sends it at once, within its drain, rather than sleep through it, and exits 0
/// saying nothing was left behind. Without the drain the records would go with the process.
#[test]
fn otlp_what_is_queued_at_shutdown_is_sent_before_the_server_exits() {
    if !common::need_root() {
        return;
    }
    let rx = Receiver::refusing(1, 30);
    let dir = tempdir("otlp");
    let mut srv = Server::start_with(&dir.0, &["--otlp-endpoint", &rx.url("http")]);
    let node = srv.token("node", "n1");
    let e = recorded(Who::Root, 1);
    let batch = batch_of(&e.root.join("audit.db"), "n1");
    let n = batch.records.len();
    assert_eq!(post(&srv, &node, &batch), 200);
    let refused = common::wait_for(Duration::from_secs(20), || (!rx.of("refused").is_empty()).then_some(()));
    assert!(refused.is_some(), "the first request never came");
    assert!(rx.of("span").is_empty() && rx.of("log").is_empty(), "sent before the stop");
    let t = std::time::Instant::now();
    let st = srv.stop(Duration::from_secs(20));
    assert!(st.success(), "{st:?}");
    assert!(t.elapsed() < Duration::from_secs(15), "the drain slept on the Retry-After: {:?}", t.elapsed());
    let (spans, logs) = rx.wait(n);
    assert_eq!(spans.len() + logs.len(), n, "each record once");
    let log = srv.log.lock().expect("log").clone();
    assert!(!log.contains("not sent within"), "{log}");
}

fn chmod_600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The nice value of the first thread of `pid` named `comm` (/proc/PID/task/TID/stat, field 19).
fn nice_of(pid: u32, comm: &str) -> i64 {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks").flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if name.trim() == comm {
            let stat = std::fs::read_to_string(task.path().join("stat")).expect("stat");
            let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            return rest.split_whitespace().nth(16).and_then(|v| v.parse().ok()).expect("nice");
        }
    }
    panic!("no thread {comm} in process {pid}");
}

/// Bad --otlp-* values: a usage error naming the flag and what is wrong, never a panic.
#[test]
fn otlp_bad_flags_are_named_with_what_is_wrong() {
    let dir = tempdir("otlp-flags");
    let db = format!("sqlite:{}", dir.0.join("s.db").display());
    let not_pem = dir.0.join("not.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let run = |extra: &[&str]| {
        let o = Command::new(CORDON)
            .args(["server", "--listen", &format!("127.0.0.1:{}", fixed_port()), "--database", &db])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("cordon server");
        assert!(!o.status.success(), "{extra:?} was accepted: {}", common::show(&o));
        let text = common::err(&o);
        assert!(!text.contains("panicked"), "{text}");
        text
    };
    let np = not_pem.to_str().expect("utf-8");
    let bad_headers = dir.0.join("headers");
    std::fs::write(&bad_headers, "A=b\nnot a header\n").expect("write");
    chmod_600(&bad_headers);
    let bad_line = format!("@{}", bad_headers.display());
    for (extra, flag, what) in [
        (&["--otlp-endpoint", "grpc://h:4317"][..], "--otlp-endpoint", "neither http nor https"),
        (&["--otlp-endpoint", "localhost:4318"][..], "--otlp-endpoint", "scheme"),
        (&["--otlp-endpoint", "http://h:4318", "--otlp-header", "novalue"][..], "--otlp-header", "KEY=VALUE"),
        (&["--otlp-endpoint", "http://h:4318", "--otlp-header", "Host=x"][..], "--otlp-header", "set by the exporter"),
        (&["--otlp-endpoint", "https://h", "--otlp-ca-file", "/nonexistent.pem"][..], "--otlp-ca-file", "cannot read"),
        (&["--otlp-endpoint", "https://h", "--otlp-ca-file", np][..], "--otlp-ca-file", "no certificate"),
        (&["--otlp-header", "A=b"][..], "--otlp-endpoint", "required"),
        (&["--otlp-endpoint", "http://h:4318", "--otlp-header", "@/nonexistent/h"][..], "--otlp-header", "cannot read"),
        (&["--otlp-endpoint", "http://h:4318", "--otlp-header", "@/dev/zero"][..], "--otlp-header", "64 KiB"),
        (&["--otlp-endpoint", "http://h:4318", "--otlp-header", &bad_line][..], "--otlp-header", ":2: not a header"),
        (&["--otlp-endpoint", "http://h:4318", "--otlp-header", "@/etc/hostname"][..], "--otlp-header", "chmod 600"),
        (&["--otlp-endpoint", "http://h:4318", "--otlp-retries", "11"][..], "--otlp-retries", "11"),
        (&["--otlp-retries", "2"][..], "--otlp-endpoint", "required"),
    ] {
        let text = run(extra);
        assert!(text.contains(flag) && text.contains(what), "{extra:?}: {text}");
    }
    // A CA file for a plain-http endpoint would be ignored: refused instead.
    let system = "/etc/ssl/certs/ca-certificates.crt";
    if Path::new(system).exists() {
        let text = run(&["--otlp-endpoint", "http://h:4318", "--otlp-ca-file", system]);
        assert!(text.contains("--otlp-ca-file") && text.contains("plain http"), "{text}");
    }
}
