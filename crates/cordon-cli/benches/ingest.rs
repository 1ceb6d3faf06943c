//! Sustained ingest into `cordon server` (issue 16): how many audit records per second the server
//! receives, verifies (sequence, links, every hash recomputed, every seal checked against the
//! pinned key) and stores, fed by the real node path, `cordon audit ship`, over loopback TCP.
//!
//! A real audit log is written first with cordon-audit (sessions of event records, each session
//! sealed), then shipped to a real `cordon server` (SQLite, every commit fsynced) started for the
//! run. Zero loss is counted at both ends: the log's records = the server's stored records = what
//! the server's metric says it ingested. The peer is the same rows written straight into a fresh
//! SQLite table with the same schema and durability, in batches of the same size: no HTTP, no JSON,
//! no verification — what storing alone costs on this disk.
//!
//! `cargo bench -p cordon-cli --bench ingest` (release). `CORDON_BENCH_RECORDS` (default
//! 1,000,000), `CORDON_BENCH_ROUNDS` (default 3, ship and peer interleaved). Prints one line per
//! round and the medians; `--json` anywhere in the arguments prints them as JSON.
//! `CORDON_BENCH_DASHBOARD=1` also times the dashboard over 10,001 sessions, one of 100,000 events.
//! `CORDON_BENCH_POSTGRES=1`: each round also ships the log to a server on PostgreSQL (a private
//! cluster started for the run, as the tests do: tests/common/postgres.rs), counted the same way.
//! `CORDON_BENCH_OTLP=URL`: the servers also export over OTLP to URL (`--otlp-endpoint`; e.g.
//! tests/otlp/receiver.py, which prints where it listens); each round then says how many records
//! were exported and dropped, and how long the export ran on after the ship ended (at most 120 s).

use cordon_audit::Store;

// The tests' private PostgreSQL cluster (it names `NOBODY` and `record_skip` of its parent).
#[path = "../tests/common/certs.rs"]
#[allow(dead_code)]
mod certs;
#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;
const NOBODY: u32 = 65534;
fn record_skip(what: &str, why: &str) {
    eprintln!("SKIPPED {what}: {why}");
}
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");
const SESSION_EVENTS: usize = 1000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A body like the sensor's exec/open/connect events (~200 bytes of JSON).
fn body(i: usize) -> serde_json::Value {
    match i % 3 {
        0 => serde_json::json!({"event": "exec", "pid": 4000 + i % 900, "ppid": 3999,
            "argv": ["cc", "-O2", "-c", format!("src/f{}.c", i % 40), "-o", format!("f{}.o", i % 40)],
            "path": "/usr/bin/cc", "uid": 1000}),
        1 => {
            serde_json::json!({"event": "open", "pid": 4000 + i % 900, "path": format!("/work/app/src/module_{}.py", i % 500),
            "flags": "O_RDONLY|O_CLOEXEC", "result": 0})
        }
        _ => serde_json::json!({"event": "connect", "pid": 4000 + i % 900, "addr": "127.0.0.1", "port": 3128,
            "decision": "allow", "host": "pypi.org"}),
    }
}

/// Writes `n` records (sessions of SESSION_EVENTS, each sealed) into a new log at `path`.
/// Returns how many records the log holds (the seals included).
fn write_log(path: &Path, n: usize) -> i64 {
    write_sessions(path, n, &mut |_| SESSION_EVENTS)
}

/// Writes `n` event records in sessions of `size(session number)` events, each sealed.
fn write_sessions(path: &Path, n: usize, size: &mut dyn FnMut(usize) -> usize) -> i64 {
    let mut st = Store::open(path).expect("open the bench log");
    st.set_durability(cordon_audit::Durability::Batch).expect("durability");
    let mut written = 0;
    let mut s = 0;
    while written < n {
        let session = format!("bench-{s:06}");
        let count = size(s).max(1).min(n - written);
        let items: Vec<(String, i64, serde_json::Value)> = (0..count)
            .map(|i| ("event".to_string(), 1_764_000_000_000 + (written + i) as i64, body(written + i)))
            .collect();
        st.append(&session, &items).expect("append");
        st.seal(&session, 1_764_000_000_000 + written as i64).expect("seal");
        written += count;
        s += 1;
    }
    let c = rusqlite::Connection::open(path).expect("reopen");
    c.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)).expect("count the log")
}

struct Server {
    child: std::process::Child,
    addr: String,
    /// `--database`'s value.
    db: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server on `pg` (a fresh database's URL) or else SQLite in `dir`.
fn start_server(dir: &Path, pg: Option<String>) -> Server {
    let db = pg.unwrap_or_else(|| format!("sqlite:{}", dir.join("server.db").display()));
    let otlp = std::env::var("CORDON_BENCH_OTLP").ok().filter(|u| !u.is_empty());
    let mut child = Command::new(CORDON)
        .args(["server", "--listen", "127.0.0.1:0", "--database", &db, "--key"])
        .arg(dir.join("server.key"))
        .args(otlp.iter().flat_map(|u| ["--otlp-endpoint", u.as_str()]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cordon server");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("the server's first line");
    let addr = line.trim().strip_prefix("cordon server: listening on http://").expect("where it listens").to_string();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut err, &mut std::io::sink());
    });
    Server { child, addr, db }
}

fn token(db: &str, role: &str, name: &str, out: &Path) {
    let o = Command::new(CORDON)
        .args(["server", "token", "create", "--role", role, "--name", name, "--database", db])
        .output()
        .expect("token create");
    assert!(o.status.success(), "token create: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(out, &o.stdout).expect("write the token");
}

/// CPU seconds (user + system) a live process has used, from /proc.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// User + system CPU seconds of the waited-for children so far.
fn children_cpu() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("rusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

struct Shipped {
    secs: f64,
    stored: i64,
    ingested: i64,
    ship_cpu: f64,
    server_cpu: f64,
    /// With CORDON_BENCH_OTLP: (exported, dropped, seconds the export ran on after the ship).
    otlp: Option<(i64, i64, f64)>,
}

/// Ships the whole log once to a fresh server (on a fresh PostgreSQL database when `pg`).
fn ship_round(dir: &Path, log: &Path, pg: Option<&postgres::Cluster>) -> Shipped {
    let sdir = dir.join("srv");
    let _ = std::fs::remove_dir_all(&sdir);
    std::fs::create_dir_all(&sdir).expect("server dir");
    let _ = std::fs::remove_dir_all(cordon_audit::files::ship_dir(log));
    let srv = start_server(&sdir, pg.map(postgres::Cluster::database));
    let node_tok = sdir.join("node.token");
    let view_tok = sdir.join("viewer.token");
    token(&srv.db, "node", "bench", &node_tok);
    token(&srv.db, "viewer", "bench-viewer", &view_tok);
    let (cpu0, srv0) = (children_cpu(), proc_cpu(srv.child.id()));
    let t0 = Instant::now();
    let o = Command::new(CORDON)
        .args(["audit", "ship", "--server", &format!("http://{}", srv.addr), "--server-node", "bench"])
        .arg("--server-token-file")
        .arg(&node_tok)
        .arg("--audit")
        .arg(log)
        .output()
        .expect("cordon audit ship");
    let secs = t0.elapsed().as_secs_f64();
    let (ship_cpu, server_cpu) = (children_cpu() - cpu0, proc_cpu(srv.child.id()) - srv0);
    assert!(o.status.success(), "ship failed: {}", String::from_utf8_lossy(&o.stderr));
    let stored: i64 = match srv.db.strip_prefix("sqlite:") {
        Some(p) => rusqlite::Connection::open(p)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)))
            .expect("count"),
        None => postgres::count(&srv.db, "SELECT count(*) FROM records"),
    };
    let viewer = std::fs::read_to_string(&view_tok).expect("viewer token");
    let ingested = metric(&srv.addr, &viewer);
    let otlp = std::env::var_os("CORDON_BENCH_OTLP")
        .map(|_| otlp_drained(&srv.addr, &viewer, stored, t0 + Duration::from_secs_f64(secs)));
    Shipped { secs, stored, ingested, ship_cpu, server_cpu, otlp }
}

/// Waits (at most 120 s) until every stored record was exported or dropped: (exported, dropped,
/// seconds since `shipped`).
fn otlp_drained(addr: &str, token: &str, stored: i64, shipped: Instant) -> (i64, i64, f64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = get(addr, token, "/metrics");
        let sum = |prefix: &str| -> i64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
                .map(|v| v as i64)
                .sum()
        };
        let (exported, dropped) =
            (sum("cordon_server_otlp_records_exported_total "), sum("cordon_server_otlp_records_dropped_total{"));
        if exported + dropped >= stored || Instant::now() > deadline {
            return (exported, dropped, shipped.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One GET with a token: the whole answer (head and body).
fn get(addr: &str, token: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token.trim()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    assert!(text.starts_with("HTTP/1.1 200"), "GET {path}: {}", text.lines().next().unwrap_or(""));
    text
}

/// `cordon_server_records_ingested_total` from /metrics.
fn metric(addr: &str, token: &str) -> i64 {
    get(addr, token, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("cordon_server_records_ingested_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
        .unwrap_or(-1)
}

/// The peer: the log's rows copied into a fresh table of the server's schema, 5000 a transaction.
fn peer_round(dir: &Path, log: &Path) -> f64 {
    let p = dir.join("peer.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
    }
    let src = rusqlite::Connection::open(log).expect("open the log");
    let mut dst = rusqlite::Connection::open(&p).expect("peer db");
    dst.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE records (node TEXT NOT NULL, seq INTEGER NOT NULL, session TEXT NOT NULL, kind TEXT NOT NULL, ts_ms INTEGER NOT NULL, payload TEXT NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (node, seq)) WITHOUT ROWID;").expect("schema");
    let t0 = Instant::now();
    let mut after = 0i64;
    loop {
        let mut q = src
            .prepare_cached(
                "SELECT seq, session, kind, ts_ms, body, prev, hash FROM records WHERE seq > ? ORDER BY seq LIMIT 5000",
            )
            .expect("select");
        type Row = (i64, String, String, i64, String, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = q
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("read");
        let Some(last) = rows.last() else { break };
        after = last.0;
        let tx = dst.transaction().expect("tx");
        {
            let mut ins =
                tx.prepare_cached("INSERT INTO records VALUES ('bench', ?, ?, ?, ?, ?, ?, ?)").expect("insert");
            for r in &rows {
                ins.execute(rusqlite::params![r.0, r.1, r.2, r.3, r.4, r.5, r.6]).expect("insert row");
            }
        }
        tx.commit().expect("commit");
    }
    t0.elapsed().as_secs_f64()
}

/// The dashboard over a big server: 10,000 sessions of 5 events and one of 100,000. Times (ms,
/// medians of 5): the sessions list (its newest 1,000), the big session's first page (2,000
/// records), and every page of it followed by its "next" links.
fn dashboard(dir: &Path) -> (f64, f64, f64, usize) {
    let log = dir.join("dash").join("audit.db");
    let big = 100_000;
    write_sessions(&log, 10_000 * 5 + big, &mut |s| if s == 10_000 { big } else { 5 });
    let sdir = dir.join("dash-srv");
    std::fs::create_dir_all(&sdir).expect("dir");
    let srv = start_server(&sdir, None);
    let (node_tok, view_tok) = (sdir.join("node.token"), sdir.join("viewer.token"));
    token(&srv.db, "node", "dash", &node_tok);
    token(&srv.db, "viewer", "v", &view_tok);
    let o = Command::new(CORDON)
        .args(["audit", "ship", "--server", &format!("http://{}", srv.addr), "--server-node", "dash"])
        .arg("--server-token-file")
        .arg(&node_tok)
        .arg("--audit")
        .arg(&log)
        .output()
        .expect("ship");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tok = std::fs::read_to_string(&view_tok).expect("token");
    let time = |path: &str| {
        let t = Instant::now();
        let page = get(&srv.addr, &tok, path);
        (t.elapsed().as_secs_f64() * 1000.0, page)
    };
    let mut list: Vec<f64> = (0..5).map(|_| time("/").0).collect();
    let mut first: Vec<f64> = (0..5).map(|_| time("/sessions/bench-010000").0).collect();
    let mut all = vec![];
    let mut pages = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let mut path = "/sessions/bench-010000".to_string();
        pages = 0;
        loop {
            let (_, page) = time(&path);
            pages += 1;
            // The "next" link: the one whose `after` is not 0 ("from the start").
            let next = page
                .split("<a href=\"")
                .filter_map(|x| x.split_once('"').map(|y| y.0))
                .find(|h| h.contains("after=") && !h.contains("after=0&"));
            match next {
                Some(h) if pages < 1000 => path = h.replace("&amp;", "&"),
                _ => break,
            }
        }
        all.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (median(&mut list), median(&mut first), median(&mut all), pages)
}

fn say_otlp(otlp: Option<(i64, i64, f64)>) {
    if let Some((exported, dropped, after)) = otlp {
        eprintln!(
            "  OTLP: {exported} records exported, {dropped} dropped; the export was done {after:.1} s after the ship"
        );
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let n = env_usize("CORDON_BENCH_RECORDS", 1_000_000);
    let rounds = env_usize("CORDON_BENCH_ROUNDS", 3).max(1);
    let dir = tempdir();
    let log = dir.join("node").join("audit.db");
    let t = Instant::now();
    let total = write_log(&log, n);
    eprintln!("ingest: wrote a log of {total} records ({n} events + seals) in {:.1} s", t.elapsed().as_secs_f64());
    let (mut ship, mut peer, mut on_pg) = (vec![], vec![], vec![]);
    let cluster =
        std::env::var_os("CORDON_BENCH_POSTGRES").is_some_and(|v| v != "0").then(postgres::Cluster::start).flatten();
    for r in 0..rounds {
        if let Some(pg) = &cluster {
            let Shipped { secs, stored, ingested, ship_cpu, server_cpu, otlp } = ship_round(&dir, &log, Some(pg));
            assert_eq!(stored, total, "loss on PostgreSQL: the log holds {total} records, the server stored {stored}");
            assert_eq!(
                ingested, total,
                "PostgreSQL: the server's metric says {ingested} ingested, the log holds {total}"
            );
            eprintln!(
                "round {}: PostgreSQL ship+verify+store {secs:.2} s = {:.0} records/s (stored {stored}, metric {ingested}; CPU: ship {ship_cpu:.2} s, server {server_cpu:.2} s)",
                r + 1,
                total as f64 / secs
            );
            on_pg.push(total as f64 / secs);
            say_otlp(otlp);
        }
        let Shipped { secs, stored, ingested, ship_cpu, server_cpu, otlp } = ship_round(&dir, &log, None);
        assert_eq!(stored, total, "loss: the log holds {total} records, the server stored {stored}");
        assert_eq!(ingested, total, "the server's metric says {ingested} ingested, the log holds {total}");
        let p = peer_round(&dir, &log);
        eprintln!(
            "round {}: ship+verify+store {:.2} s = {:.0} records/s (stored {stored}, metric {ingested}; CPU: ship {ship_cpu:.2} s, server {server_cpu:.2} s); peer (SQLite only) {:.2} s = {:.0} records/s",
            r + 1,
            secs,
            total as f64 / secs,
            p,
            total as f64 / p
        );
        say_otlp(otlp);
        ship.push(total as f64 / secs);
        peer.push(total as f64 / p);
    }
    let (ms, mp) = (median(&mut ship), median(&mut peer));
    let pg = (!on_pg.is_empty()).then(|| median(&mut on_pg));
    let spread = |v: &[f64]| format!("{:.0}-{:.0}", v[0], v[v.len() - 1]);
    if json {
        println!(
            "{}",
            serde_json::json!({"records": total, "rounds": rounds, "ship_records_per_s": ms, "ship_spread": spread(&ship),
                "peer_records_per_s": mp, "peer_spread": spread(&peer), "ratio": ms / mp,
                "postgres_records_per_s": pg, "postgres_spread": pg.map(|_| spread(&on_pg))})
        );
    } else {
        println!(
            "ingest: {total} records, {rounds} rounds: server {ms:.0} records/s (spread {}), SQLite alone {mp:.0} records/s (spread {}), ratio {:.2}",
            spread(&ship),
            spread(&peer),
            ms / mp
        );
        if let Some(pg) = pg {
            println!("ingest: on PostgreSQL {pg:.0} records/s (spread {})", spread(&on_pg));
        }
    }
    if std::env::var_os("CORDON_BENCH_DASHBOARD").is_some_and(|v| v != "0") {
        let (list, first, all, pages) = dashboard(&dir);
        if json {
            println!(
                "{}",
                serde_json::json!({"list_ms": list, "first_page_ms": first, "all_pages_ms": all, "pages": pages})
            );
        } else {
            println!(
                "dashboard: sessions list (10,001 sessions, newest 1,000 shown) {list:.1} ms; a 100,000-event session's first page {first:.1} ms, all {pages} pages {all:.0} ms (medians of 5)"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("cordon-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("bench dir");
    d
}
