//! Ingest and verify throughput of the audit log on a real SQLite file.
//! `cargo bench -p cordon-audit --bench audit` (CORDON_BENCH_EVENTS sets the count; default 1M).

use serde_json::json;
use std::time::Instant;

fn main() {
    let n: i64 = std::env::var("CORDON_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("cordon-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("audit.db");
    let mut s = cordon_audit::Store::open(&path).expect("open");
    let batch = 10_000;
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let items: Vec<(String, i64, serde_json::Value)> = (0..batch.min(n - done))
            .map(|i| ("open".to_string(), 1_700_000_000_000 + done + i, json!({"pid": 1234, "tid": 1234, "comm": "cc1", "path": format!("/work/src/file{}.c", i % 977), "flags": "O_RDONLY", "result": 3})))
            .collect();
        s.append("bench-session", &items).expect("append");
        done += items.len() as i64;
    }
    s.seal("bench-session", 1).expect("seal");
    let ingest = t.elapsed().as_secs_f64();
    drop(s);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let r = cordon_audit::verify(&path).expect("verify");
    let ver = t.elapsed().as_secs_f64();
    assert!(r.ok(), "{r:?}");
    println!(
        "ingest: {n} events in batches of {batch}: {:.2} s = {:.0} events/s (database {} MiB)",
        ingest,
        n as f64 / ingest,
        size >> 20
    );
    println!("verify: {} records: {:.2} s = {:.0} records/s", r.records, ver, r.records as f64 / ver);
    let _ = std::fs::remove_dir_all(&dir);
}
