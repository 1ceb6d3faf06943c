//! The eBPF sensor's cost and capacity, each measured against the unmonitored run in the same run.
//! `sudo cargo bench -p cordon-cli --bench sensor` (CORDON_BENCH_ROUNDS: rounds per variant, default 5).
//!
//! 1. sustained: 1.5M opens paced to 300k/s under `--events`: events/s and loss.
//! 2. file-heavy: 1M open/close of one file (bench/openloop.c), bare, `cordon run`, and
//!    `cordon run --events FILE`: wall time, CPU, events read, events lost.
//! 3. build: the C project of the build benchmark, `cordon run` vs `cordon run --events FILE`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

struct Run {
    wall: f64,
    cpu: f64,
    events: u64,
    lost: u64,
    sensor_s: f64,
}

fn run(ws: &Path, cmd: &[&str], report: Option<&Path>) -> Run {
    let c0 = common::children_cpu();
    let t = Instant::now();
    let st = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(ws)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(st.success(), "{cmd:?}: {st:?}");
    let wall = t.elapsed().as_secs_f64();
    let cpu = common::children_cpu() - c0;
    let (mut events, mut lost, mut sensor_s) = (0, 0, 0.0);
    if let Some(r) = report {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(r).expect("report")).expect("json");
        events = v["sensor"]["events"].as_u64().unwrap_or(0);
        lost = v["sensor"]["lost"].as_u64().unwrap_or(0);
        sensor_s = v["sensor"]["seconds"].as_f64().unwrap_or(0.0);
    }
    Run { wall, cpu, events, lost, sensor_s }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the sensor benchmark needs root (it loads BPF programs)");
        std::process::exit(2);
    }
    std::env::set_var(
        "CORDON_AUDIT",
        std::env::temp_dir().join(format!("cordon-bench-sensor-{}.db", std::process::id())),
    );
    let rounds: usize = std::env::var("CORDON_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let cordon = env!("CARGO_BIN_EXE_cordon");
    let ws = PathBuf::from(format!("/var/tmp/cordon-bench-sensor-{}", std::process::id()));
    std::fs::create_dir_all(&ws).expect("ws");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/openloop.c");
    let st = Command::new("cc").args(["-O2", "-o"]).arg(ws.join("openloop")).arg(&src).status().expect("cc");
    assert!(st.success());
    std::fs::write(ws.join("f"), "x").expect("f");
    let events = ws.join("events.jsonl");
    let report = ws.join("report.json");
    let (ev, rep) = (events.to_str().unwrap_or(""), report.to_str().unwrap_or(""));
    let med = |v: &[Run], f: &dyn Fn(&Run) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        common::median(&mut x)
    };
    // Sustained: paced at 300k/s, first, on a quiet machine (the flat-out rounds below leave
    // gigabytes of dirty pages whose writeback competes for the two cores).
    let paced = [cordon, "run", "-q", "--events", ev, "--report", rep, "--", "./openloop", "f", "1500000", "300000"];
    let paced_no_audit = [
        cordon,
        "run",
        "-q",
        "--no-audit",
        "--events",
        ev,
        "--report",
        rep,
        "--",
        "./openloop",
        "f",
        "1500000",
        "300000",
    ];
    let (mut s, mut sn) = (vec![], vec![]);
    for _ in 0..rounds.min(3) {
        for (with_audit, v) in [(true, &mut s), (false, &mut sn)] {
            let r = run(&ws, if with_audit { &paced } else { &paced_no_audit }, Some(&report));
            println!(
                "  round ({}): {} events read, {} lost, {:.2}s",
                if with_audit { "events file + audit log" } else { "events file, --no-audit" },
                r.events,
                r.lost,
                r.wall
            );
            v.push(r);
            nix::unistd::sync();
        }
    }
    let worst_no_audit = sn.iter().map(|r| r.lost).max().unwrap_or(0);
    println!("sustained without the audit log: lost in the worst round {worst_no_audit}");
    let worst_loss = s.iter().map(|r| r.lost).max().unwrap_or(0);
    println!("sustained: 1,500,000 opens paced at 300,000/s under --events, {} rounds", s.len());
    println!(
        "  events/s (median over the session) {:.0}, events read (median) {:.0}, lost in the worst round {worst_loss}",
        med(&s, &|r| r.events as f64 / r.sensor_s.max(1e-9)),
        med(&s, &|r| r.events as f64)
    );
    println!("  cpu of the whole run (median) {:.2}s for {:.2}s wall", med(&s, &|r| r.cpu), med(&s, &|r| r.wall));

    let bare = ["./openloop", "f", "1000000"];
    let plain = [cordon, "run", "-q", "--", "./openloop", "f", "1000000"];
    let mon = [cordon, "run", "-q", "--events", ev, "--report", rep, "--", "./openloop", "f", "1000000"];
    let (mut b, mut p, mut m) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        b.push(run(&ws, &bare, None));
        p.push(run(&ws, &plain, None));
        m.push(run(&ws, &mon, Some(&report)));
    }
    println!("file-heavy: 1,000,000 open/close, {rounds} rounds each, medians");
    let (wb, wp, wm) = (med(&b, &|r| r.wall), med(&p, &|r| r.wall), med(&m, &|r| r.wall));
    println!("  bare                      wall {wb:.3}s  cpu {:.3}s", med(&b, &|r| r.cpu));
    println!("  cordon run                wall {wp:.3}s  cpu {:.3}s", med(&p, &|r| r.cpu));
    println!(
        "  cordon run --events FILE  wall {wm:.3}s  cpu {:.3}s  ({:+.1}% wall vs cordon run)",
        med(&m, &|r| r.cpu),
        (wm / wp - 1.0) * 100.0
    );
    let evs = med(&m, &|r| r.events as f64);
    let lost = med(&m, &|r| r.lost as f64);
    let rate = med(&m, &|r| (r.events as f64) / r.sensor_s.max(1e-9));
    println!("  events read {evs:.0}, lost {lost:.0} (median), {rate:.0} events/s read while the loop runs flat out");

    // Build.
    nix::unistd::sync();
    common::write_project(&ws);
    let plain_b = [cordon, "run", "-q", "--", "make", "-s", "-j2", "prog"];
    let mon_b = [cordon, "run", "-q", "--events", ev, "--report", rep, "--", "make", "-s", "-j2", "prog"];
    let clean = || {
        Command::new("make").args(["-s", "clean"]).current_dir(&ws).status().expect("clean");
    };
    clean();
    run(&ws, &plain_b, None);
    let (mut pb, mut mb) = (vec![], vec![]);
    for i in 0..rounds * 2 {
        let order: [bool; 2] = if i % 2 == 0 { [false, true] } else { [true, false] };
        for monitored in order {
            clean();
            if monitored {
                mb.push(run(&ws, &mon_b, Some(&report)));
            } else {
                pb.push(run(&ws, &plain_b, None));
            }
        }
    }
    let (wp, wm) = (med(&pb, &|r| r.wall), med(&mb, &|r| r.wall));
    let (cp, cm) = (med(&pb, &|r| r.cpu), med(&mb, &|r| r.cpu));
    println!("build: 41 C files, make -j2, {} interleaved rounds each, medians", pb.len());
    println!("  cordon run                wall {wp:.3}s  cpu {cp:.3}s");
    println!(
        "  cordon run --events FILE  wall {wm:.3}s  cpu {cm:.3}s  events {:.0}, lost {:.0}",
        med(&mb, &|r| r.events as f64),
        med(&mb, &|r| r.lost as f64)
    );
    println!("  overhead: wall {:+.2}%, cpu {:+.2}%", (wm / wp - 1.0) * 100.0, (cm / cp - 1.0) * 100.0);

    let _ = std::fs::remove_dir_all(&ws);
    if let Some(db) = std::env::var_os("CORDON_AUDIT") {
        let db = PathBuf::from(db);
        for ext in ["db", "db-wal", "db-shm", "key", "head", "lock"] {
            let _ = std::fs::remove_file(db.with_extension(ext));
        }
    }
}
