//! `cordon gateway --stdio` under load (issue 14): throughput at 50 concurrent callers of a trivial
//! tool (`echo` of the Python MCP SDK test server, tests/gateway/server.py, in its sandbox) with
//! calls/s, p50/p99 and the gateway's peak RSS; then 200 concurrent callers, half of them calling a
//! hostile server of the same gateway (it floods: 1 MB answers; and hangs: calls past its 5 s
//! call_timeout), half the well-behaved one, whose p50/p99 are reported with the gateway's peak RSS.
//! The callers are concurrent requests of one client (the gateway's own rmcp client,
//! `cordon_gateway::mcp::Client`). Audited (a log in a temporary directory).
//! `cargo bench -p cordon-cli --bench gateway_load` (CORDON_BENCH_N: calls at 50 callers, default
//! 2000; CORDON_BENCH_SECS: seconds of the hostile phase, default 30; CORDON_TEST_MCP_PYTHON).

use cordon_gateway::mcp::{Client, Json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The gateway's peak resident set (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

async fn echo(c: &Client, tool: &str) -> f64 {
    let args: Json = serde_json::from_str(r#"{"text": "x"}"#).expect("args");
    let t = Instant::now();
    let v = c.call(tool, Some(args)).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_eq!(v["content"][0]["text"], "x", "{v}");
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let n: usize = std::env::var("CORDON_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let secs: u64 = std::env::var("CORDON_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let py = std::env::var("CORDON_TEST_MCP_PYTHON").unwrap_or_else(|_| "/opt/cordon-test/mcp-venv/bin/python".into());
    let dir = PathBuf::from(format!("/var/tmp/cordon-bench-gwload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/gateway/server.py");
    std::fs::copy(&server, dir.join("server.py")).expect("server.py");
    let cfg = dir.join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            "pinning = \"off\"\n[servers.py]\ncommand = [\"{py}\", \"server.py\"]\n\
             [servers.bad]\ncommand = [\"{py}\", \"server.py\"]\ncall_timeout = \"5s\"\n"
        ),
    )
    .expect("gw.toml");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cordon"))
            .args(["gateway", "--config", &cfg.display().to_string(), "--stdio", "--audit"])
            .arg(dir.join("audit.db"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cordon gateway");
        let pid = child.id().expect("pid");
        let (w, r) = (child.stdin.take().expect("stdin"), child.stdout.take().expect("stdout"));
        let c = Arc::new(Client::connect(r, w, 16 << 20, Arc::new(|| {}), cordon_gateway::config::Protocol::Handshake).await.expect("initialize"));
        for _ in 0..50 {
            echo(&c, "py__echo").await;
        }
        // 50 callers, n calls in all.
        let left = Arc::new(std::sync::atomic::AtomicUsize::new(n));
        let t0 = Instant::now();
        let mut tasks = vec![];
        for _ in 0..50 {
            let (c, left) = (c.clone(), left.clone());
            tasks.push(tokio::spawn(async move {
                let mut ms = vec![];
                while left
                    .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |x| {
                        x.checked_sub(1)
                    })
                    .is_ok()
                {
                    ms.push(echo(&c, "py__echo").await);
                }
                ms
            }));
        }
        let mut ms = vec![];
        for t in tasks {
            ms.extend(t.await.expect("caller"));
        }
        let wall = t0.elapsed().as_secs_f64();
        println!(
            "50 callers, {} calls: {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; gateway peak RSS {:.1} MiB",
            ms.len(),
            ms.len() as f64 / wall,
            pct(&mut ms, 0.5),
            pct(&mut ms, 0.99),
            pct(&mut ms, 1.0),
            peak_rss_mib(pid)
        );
        // 200 callers: 100 at the hostile server (floods and hangs), 100 at the good one.
        let end = Instant::now() + Duration::from_secs(secs);
        let mut bad = vec![];
        for i in 0..100 {
            let c = c.clone();
            bad.push(tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < end {
                    let args: Json = if i % 2 == 0 {
                        serde_json::from_str(r#"{"size": 1000000}"#).expect("args")
                    } else {
                        serde_json::from_str(r#"{"seconds": 3600}"#).expect("args")
                    };
                    let tool = if i % 2 == 0 { "bad__flood" } else { "bad__sleep" };
                    match c.call(tool, Some(args)).await {
                        Ok(v) if v["isError"] != true => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            }));
        }
        let mut good = vec![];
        for _ in 0..100 {
            let c = c.clone();
            good.push(tokio::spawn(async move {
                let mut ms = vec![];
                while Instant::now() < end {
                    ms.push(echo(&c, "py__echo").await);
                }
                ms
            }));
        }
        let mut ms = vec![];
        for t in good {
            ms.extend(t.await.expect("caller"));
        }
        let (mut ok, mut failed) = (0, 0);
        for t in bad {
            let (o, f) = t.await.expect("caller");
            ok += o;
            failed += f;
        }
        println!(
            "200 callers for {secs} s (100 at a hostile server: {ok} floods answered, {failed} calls failed or timed out; \
             100 at a good one): good server {} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; gateway peak RSS {:.1} MiB",
            ms.len(),
            pct(&mut ms, 0.5),
            pct(&mut ms, 0.99),
            pct(&mut ms, 1.0),
            peak_rss_mib(pid)
        );
        drop(c);
        let _ = child.wait().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
