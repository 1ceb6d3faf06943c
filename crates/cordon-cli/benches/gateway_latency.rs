//! Added latency of `cordon gateway --stdio`: a trivial tool call (`echo`) to the Python MCP SDK test
//! server (tests/gateway/server.py, `mcp` 2.3.0 from /opt/cordon-test/mcp-venv) called directly, the
//! same server inside `cordon run --policy builtin:mcp-tool` (the sandbox's own share), and through
//! the gateway (`--no-audit`, audited, and audited with `audit_sync = "call"`), all over stdio with the same client (the gateway's own
//! rmcp client, `cordon_gateway::mcp::Client`), interleaved round by round so that they share the
//! machine's state. Prints median, p90, p99 and the differences. Then, on its own (each call costs
//! a server's start, seconds, not milliseconds: interleaving it would only slow the others' rounds),
//! the gateway with `isolation = "call"`: each call a fresh server in a fresh session, back to back;
//! then, as an agent calls (a pause between calls, in which a warm spare can start), `warm = true`
//! and `warm = false` interleaved, each call after a pause of CORDON_BENCH_THINK_MS.
//! `cargo bench -p cordon-cli --bench gateway_latency` (CORDON_BENCH_N: rounds, default 2000;
//! CORDON_BENCH_N_CALL: per-call calls, default 100; CORDON_BENCH_N_THINK: calls of each with a
//! pause, default 40; CORDON_BENCH_THINK_MS: the pause, default 1500; CORDON_TEST_MCP_PYTHON: the
//! Python with `mcp`).

use cordon_gateway::mcp::{Client, Json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct Case {
    name: &'static str,
    tool: &'static str,
    client: Client,
    child: tokio::process::Child,
    ms: Vec<f64>,
}

async fn connect(name: &'static str, tool: &'static str, argv: &[String], dir: &Path) -> Case {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let (w, r) = (child.stdin.take().expect("stdin"), child.stdout.take().expect("stdout"));
    let client = Client::connect(r, w, 8 << 20, Arc::new(|| {}), cordon_gateway::config::Protocol::Handshake)
        .await
        .unwrap_or_else(|e| panic!("{name}: initialize: {e}"));
    Case { name, tool, client, child, ms: vec![] }
}

async fn call(c: &Case) -> f64 {
    let args: Json = serde_json::from_str(r#"{"text": "x"}"#).expect("args");
    let t = Instant::now();
    let v = c.client.call(c.tool, Some(args)).await.unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(v["content"][0]["text"], "x", "{}: {v}", c.name);
    ms
}

fn main() {
    let n: usize = std::env::var("CORDON_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let py = std::env::var("CORDON_TEST_MCP_PYTHON").unwrap_or_else(|_| "/opt/cordon-test/mcp-venv/bin/python".into());
    let cordon = env!("CARGO_BIN_EXE_cordon").to_string();
    let dir = PathBuf::from(format!("/var/tmp/cordon-bench-gw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/gateway/server.py");
    std::fs::copy(&server, dir.join("server.py")).expect("server.py");
    let cfg = dir.join("gw.toml");
    std::fs::write(&cfg, format!("pinning = \"off\"\n[servers.py]\ncommand = [\"{py}\", \"server.py\"]\n"))
        .expect("gw.toml");
    // The same with each call's record fsynced before it is forwarded (audit_sync = "call").
    let cfg_sync = dir.join("gw-sync.toml");
    std::fs::write(
        &cfg_sync,
        format!("pinning = \"off\"\naudit_sync = \"call\"\n[servers.py]\ncommand = [\"{py}\", \"server.py\"]\n"),
    )
    .expect("gw-sync.toml");
    // Each call in a fresh server in a fresh session.
    let cfg_call = dir.join("gw-call.toml");
    std::fs::write(
        &cfg_call,
        format!("pinning = \"off\"\n[servers.py]\ncommand = [\"{py}\", \"server.py\"]\nisolation = \"call\"\n"),
    )
    .expect("gw-call.toml");
    // The same without a spare started ahead: each call starts its server.
    let cfg_cold = dir.join("gw-cold.toml");
    std::fs::write(
        &cfg_cold,
        format!("pinning = \"off\"\n[servers.py]\ncommand = [\"{py}\", \"server.py\"]\nisolation = \"call\"\nwarm = false\n"),
    )
    .expect("gw-cold.toml");
    let n_call: usize = std::env::var("CORDON_BENCH_N_CALL").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let db = dir.join("audit.db").display().to_string();
    let db_sync = dir.join("audit-sync.db").display().to_string();
    let cfgs = cfg.display().to_string();
    let cfgs_sync = cfg_sync.display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut cases = vec![
            connect("direct (python server.py)", "echo", &s(&[&py, "server.py"]), &dir).await,
            connect(
                "cordon run --policy builtin:mcp-tool --no-audit",
                "echo",
                &s(&[&cordon, "run", "--policy", "builtin:mcp-tool", "--no-audit", "--", &py, "server.py"]),
                &dir,
            )
            .await,
            connect(
                "cordon gateway --stdio --no-audit",
                "py__echo",
                &s(&[&cordon, "gateway", "--config", &cfgs, "--stdio", "--no-audit"]),
                &dir,
            )
            .await,
            connect(
                "cordon gateway --stdio (audited)",
                "py__echo",
                &s(&[&cordon, "gateway", "--config", &cfgs, "--stdio", "--audit", &db]),
                &dir,
            )
            .await,
            connect(
                "cordon gateway --stdio (audited, audit_sync=call)",
                "py__echo",
                &s(&[&cordon, "gateway", "--config", &cfgs_sync, "--stdio", "--audit", &db_sync]),
                &dir,
            )
            .await,
        ];
        for c in &cases {
            for _ in 0..200 {
                call(c).await;
            }
        }
        // Interleaved: each round calls every case once, starting with a different one each round.
        for round in 0..n {
            for k in 0..cases.len() {
                let i = (round + k) % cases.len();
                let ms = call(&cases[i]).await;
                cases[i].ms.push(ms);
            }
        }
        println!("{n} calls each, interleaved; ms per call (client send -> result parsed)");
        println!("{:<50} {:>8} {:>8} {:>8} {:>8}", "case", "p50", "p90", "p99", "mean");
        let mut p50 = vec![];
        let mut p99 = vec![];
        for c in &mut cases {
            let mean = c.ms.iter().sum::<f64>() / c.ms.len() as f64;
            let (a, b, d) = (pct(&mut c.ms, 0.5), pct(&mut c.ms, 0.9), pct(&mut c.ms, 0.99));
            println!("{:<50} {a:>8.3} {b:>8.3} {d:>8.3} {mean:>8.3}", c.name);
            p50.push(a);
            p99.push(d);
        }
        for (i, what) in [
            (1, "sandbox alone (cordon run) vs direct"),
            (2, "gateway --no-audit vs direct"),
            (3, "gateway audited vs direct"),
            (4, "gateway audited, audit_sync=call vs direct"),
            (2, "gateway --no-audit vs cordon run (the gateway's own share)"),
        ] {
            let base = if what.contains("vs cordon run") { 1 } else { 0 };
            println!("added, {what}: p50 {:+.3} ms, p99 {:+.3} ms", p50[i] - p50[base], p99[i] - p99[base]);
        }
        for c in &cases {
            c.client.close().await;
        }
        let cfgs_call = cfg_call.display().to_string();
        let mut per_call = connect(
            "cordon gateway --stdio --no-audit, isolation=call",
            "py__echo",
            &s(&[&cordon, "gateway", "--config", &cfgs_call, "--stdio", "--no-audit"]),
            &dir,
        )
        .await;
        for _ in 0..3 {
            call(&per_call).await;
        }
        for _ in 0..n_call {
            let ms = call(&per_call).await;
            per_call.ms.push(ms);
        }
        let c = &mut per_call;
        let mean = c.ms.iter().sum::<f64>() / c.ms.len() as f64;
        let (a, b, d) = (pct(&mut c.ms, 0.5), pct(&mut c.ms, 0.9), pct(&mut c.ms, 0.99));
        let (lo, hi) = (pct(&mut c.ms, 0.0), pct(&mut c.ms, 1.0));
        println!("{n_call} calls, one after another; ms per call");
        println!("{:<50} {a:>8.3} {b:>8.3} {d:>8.3} {mean:>8.3}  (min {lo:.1}, max {hi:.1})", c.name);
        println!("added, gateway isolation=call vs direct: p50 {:+.3} ms, p99 {:+.3} ms", a - p50[0], d - p99[0]);
        per_call.client.close().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), per_call.child.wait()).await;
        let cfgs_cold = cfg_cold.display().to_string();
        let think = think_rows(&cordon, [&cfgs_call, &cfgs_cold], &dir).await;
        for (c, label) in think.iter().zip(["warm", "cold"]) {
            println!("added, isolation=call {label}, with pauses, vs direct: p50 {:+.3} ms", c.1 - p50[0]);
        }
        for c in &mut cases {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), c.child.wait()).await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// `isolation = "call"` as an agent calls: a pause between calls (the model thinking), in which a
/// warm spare has time to start. The warm and the cold gateway take turns, so each waits at least
/// the pause between its own calls. Prints each row; returns (name, p50) per gateway.
async fn think_rows(cordon: &str, cfgs: [&str; 2], dir: &Path) -> Vec<(&'static str, f64)> {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, pause) = (env("CORDON_BENCH_N_THINK", 40) as usize, env("CORDON_BENCH_THINK_MS", 1500));
    let names = ["isolation=call, warm = true, after a pause", "isolation=call, warm = false, after a pause"];
    let mut cases = vec![];
    for (name, cfg) in names.into_iter().zip(cfgs) {
        let argv: Vec<String> =
            [cordon, "gateway", "--config", cfg, "--stdio", "--no-audit"].iter().map(|x| x.to_string()).collect();
        cases.push(connect(name, "py__echo", &argv, dir).await);
    }
    for round in 0..n + 2 {
        for c in &mut cases {
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            let ms = call(c).await;
            // The first two rounds warm the page cache and the spares.
            if round >= 2 {
                c.ms.push(ms);
            }
        }
    }
    println!("{n} calls each, a {pause} ms pause before each, the two interleaved; ms per call");
    let mut out = vec![];
    for c in &mut cases {
        let mean = c.ms.iter().sum::<f64>() / c.ms.len() as f64;
        let (a, b, d) = (pct(&mut c.ms, 0.5), pct(&mut c.ms, 0.9), pct(&mut c.ms, 0.99));
        println!("{:<50} {a:>8.3} {b:>8.3} {d:>8.3} {mean:>8.3}", c.name);
        out.push((c.name, a));
        c.client.close().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), c.child.wait()).await;
    }
    out
}
