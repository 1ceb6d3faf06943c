//! What the eBPF sensor costs a real workload and a syscall-bound one: each workload run bare, under
//! `cordon run` (with and without the write watch that names refusals when the sensor is off), and
//! under `cordon run --events FILE` (the sensor and the whole events pipeline: JSON lines, the
//! builtin rules, the audit log), in an order rotated each round and reversed every other round, so that every variant meets the machine in every state; ratios against bare are
//! taken per round (paired) and summarised by their median and range. Last, the sensor's own cost
//! taken apart: cordon's own CPU with the sensor minus without it (write watch off), paired, plus
//! its programs' run time in the kernel (a separate pass with kernel.bpf_stats_enabled=1).
//!
//! `sudo cargo bench -p cordon-cli --bench sensor_cost`; needs root (the sensor loads BPF programs).
//! - CORDON_BENCH_ROUNDS: paired rounds (default 8).
//! - CORDON_BENCH_ONLY: `compile` or `stat` to run one workload.
//! - CORDON_BENCH_OLD=path/to/old/cordon: also runs an older binary's two variants in the same
//!   rounds, for before/after figures from one run.
//! - CORDON_BENCH_SENSOR_BUFFER=SIZE: also runs `--events FILE --sensor-buffer SIZE` (the ring
//!   buffer's allocation is part of each session's fixed cost).
//!
//! Workloads:
//! 1. file-heavy: `python3 -m compileall -q` of a copy of /usr/lib/python3.11 in the workspace
//!    (its `__pycache__` directories deleted before each run, untimed), then `tar czf` of the tree.
//! 2. syscall-bound: one million `os.stat` in Python, and one million stat() in C (bench/statloop.c)
//!    to tell the interpreter's cost from the call's.
//!
//! Everything it creates (workspace, events file, report, audit log) lives in one directory under
//! /var/tmp, removed at the end, also when a run fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The directory holding everything the benchmark creates; removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Variant {
    name: String,
    /// Put before the workload's command (empty: bare).
    prefix: Vec<String>,
    /// Reads the session's report for the sensor's figures.
    report: bool,
}

#[derive(Default)]
struct Sample {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    events: Vec<u64>,
    lost: Vec<u64>,
    /// The loop's own (wall, CPU) seconds.
    inner: Vec<(f64, f64)>,
    /// cordon's own CPU seconds (every thread of the `cordon` process, not the session's), from
    /// the `cordon-timing: cpu:` line.
    own: Vec<f64>,
}

/// What one run measured.
struct Measured {
    wall: f64,
    cpu: f64,
    events: u64,
    lost: u64,
    inner: Option<(f64, f64)>,
    own: Option<f64>,
    /// The sensor's programs' run time in seconds (with kernel.bpf_stats_enabled=1).
    programs: Option<f64>,
}

struct Workload {
    name: &'static str,
    cmd: Vec<String>,
    /// Calls the workload makes, for a cost per call (syscall-bound workloads).
    calls: Option<f64>,
    /// Run before each timed run, untimed.
    prepare: Box<dyn Fn()>,
}

/// Wall and CPU time of the whole run, the sensor's events and losses (with `report`), and the
/// loop's own wall and CPU time when the workload prints `... in SECONDS s (cpu SECONDS s ...`.
fn run(ws: &Path, argv: &[String], report: Option<&Path>) -> Measured {
    let c0 = common::children_cpu();
    let t = Instant::now();
    let st = Command::new(&argv[0])
        .args(&argv[1..])
        .env("CORDON_TIMING", "1")
        .current_dir(ws)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    let wall = t.elapsed().as_secs_f64();
    let cpu = common::children_cpu() - c0;
    assert!(st.status.success(), "{argv:?}: {}\n{}", st.status, String::from_utf8_lossy(&st.stderr));
    let (mut events, mut lost) = (0, 0);
    if let Some(r) = report {
        let text = std::fs::read_to_string(r).unwrap_or_else(|e| panic!("report {}: {e}", r.display()));
        let v: serde_json::Value = serde_json::from_str(&text).expect("report is JSON");
        events = v["sensor"]["events"].as_u64().unwrap_or(0);
        lost = v["sensor"]["lost"].as_u64().unwrap_or(0);
    }
    let stderr = String::from_utf8_lossy(&st.stderr);
    let after = |l: &str, tag: &str| -> Option<f64> { l.split(tag).nth(1)?.split(' ').next()?.parse().ok() };
    let inner = stderr.lines().rev().find_map(|l| Some((after(l, " in ")?, after(l, "(cpu ")?)));
    let ms = |tag: &str, field: &str| {
        let l = stderr.lines().find(|l| l.starts_with(tag))?;
        after(l, field).map(|v| v / 1e3)
    };
    let own = ms("cordon-timing: cpu:", "cordon ");
    let programs = ms("cordon-timing: sensor programs:", " runs, ");
    Measured { wall, cpu, events, lost, inner, own, programs }
}

/// One million os.stat, timed by Python itself (the line the benchmark reads).
const PY_STAT: &str = "import os, sys, time
t = time.perf_counter()
c = time.process_time()
for _ in range(1000000): os.stat('.')
print(f'python: 1000000 stats in {time.perf_counter() - t:.6f} s (cpu {time.process_time() - c:.6f} s)', file=sys.stderr)";

fn median(v: &[f64]) -> f64 {
    let mut x = v.to_vec();
    common::median(&mut x)
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(*x), hi.max(*x)))
}

fn bench(w: &Workload, variants: &[Variant], rounds: usize, ws: &Path, report: &Path) {
    let mut samples: Vec<Sample> = variants.iter().map(|_| Sample::default()).collect();
    for r in 0..rounds {
        for k in 0..variants.len() {
            // Rotated each round, and reversed every other round, so that no variant always
            // follows the same one (a session's teardown may spill into the next run).
            let k = if r % 2 == 1 { variants.len() - 1 - k } else { k };
            let i = (k + r) % variants.len();
            let v = &variants[i];
            let argv: Vec<String> = v.prefix.iter().chain(w.cmd.iter()).cloned().collect();
            (w.prepare)();
            nix::unistd::sync();
            let m = run(ws, &argv, v.report.then_some(report));
            let s = &mut samples[i];
            s.wall.push(m.wall);
            s.cpu.push(m.cpu);
            s.events.push(m.events);
            s.lost.push(m.lost);
            s.inner.extend(m.inner);
            s.own.extend(m.own);
        }
    }
    println!("{}: {rounds} rounds, each variant once per round, in a rotating order", w.name);
    println!(
        "  {:<34} {:>8} {:>15}  {:>7}  {:>23}  {:>8}",
        "variant", "wall", "wall range", "cpu", "wall/bare, paired", "cpu/bare"
    );
    let bare = &samples[0];
    for (v, s) in variants.iter().zip(&samples) {
        let (lo, hi) = range(&s.wall);
        let ratios: Vec<f64> = s.wall.iter().zip(&bare.wall).map(|(a, b)| a / b).collect();
        let (rlo, rhi) = range(&ratios);
        let cpu_ratios: Vec<f64> = s.cpu.iter().zip(&bare.cpu).map(|(a, b)| a / b).collect();
        print!(
            "  {:<34} {:>7.3}s {:>6.3}-{:<6.3}s  {:>6.3}s  {:>6.3}x [{:.3}-{:.3}]  {:>7.3}x",
            v.name,
            median(&s.wall),
            lo,
            hi,
            median(&s.cpu),
            median(&ratios),
            rlo,
            rhi,
            median(&cpu_ratios)
        );
        if let (Some(n), true) = (w.calls, s.inner.len() == bare.inner.len() && !s.inner.is_empty()) {
            // The loop's own time, as the workload measured it: without starting and ending the
            // session, paired with bare round by round. Its CPU time is what the calls cost; its
            // wall time also holds whatever else ran on the machine.
            let per = |f: fn(&(f64, f64)) -> f64| -> (f64, f64, f64, f64) {
                let own: Vec<f64> = s.inner.iter().map(|t| f(t) / n * 1e9).collect();
                let extra: Vec<f64> = s.inner.iter().zip(&bare.inner).map(|(a, b)| (f(a) - f(b)) / n * 1e9).collect();
                let (lo, hi) = range(&extra);
                (median(&own), median(&extra), lo, hi)
            };
            let (c, cx, clo, chi) = per(|t| t.1);
            let (w, wx, _, _) = per(|t| t.0);
            print!(
                "  loop cpu {c:.0} ns/call, {cx:+.0} vs bare [{clo:+.0} to {chi:+.0}]; loop wall {w:.0} ns ({wx:+.0})"
            );
        }
        if v.report {
            let ev: Vec<f64> = s.events.iter().map(|e| *e as f64).collect();
            print!("  events {:.0}, lost {} at most", median(&ev), s.lost.iter().max().unwrap_or(&0));
        }
        if !s.own.is_empty() {
            print!("  cordon's own cpu {:.1} ms", median(&s.own) * 1e3);
        }
        println!();
    }
    sensor_share(w, variants, &samples, ws, report);
}

/// The sensor's cost taken apart, which the machine's noise cannot hide: cordon's own CPU with the
/// sensor minus without it (paired by round), plus the time its programs ran in the kernel (a
/// separate pass with kernel.bpf_stats_enabled=1, since keeping the figures costs time itself),
/// against the bare run's CPU.
fn sensor_share(w: &Workload, variants: &[Variant], samples: &[Sample], ws: &Path, report: &Path) {
    let (Some(plain), Some(events)) = (
        variants.iter().position(|v| v.name == "cordon run, write watch off"),
        variants.iter().position(|v| v.name == "cordon run --events FILE"),
    ) else {
        return;
    };
    let (p, e) = (&samples[plain].own, &samples[events].own);
    if p.len() != e.len() || p.is_empty() {
        return;
    }
    let extra: Vec<f64> = e.iter().zip(p).map(|(a, b)| a - b).collect();
    let rounds = p.len().clamp(3, 5);
    let programs: Vec<f64> = {
        let _stats = BpfStats::on();
        let argv: Vec<String> = variants[events].prefix.iter().chain(w.cmd.iter()).cloned().collect();
        (0..rounds)
            .filter_map(|_| {
                (w.prepare)();
                run(ws, &argv, Some(report)).programs
            })
            .collect()
    };
    let bare = median(&samples[0].cpu);
    let (lo, hi) = range(&extra);
    print!(
        "  the sensor's own cost: cordon's threads {:+.1} ms CPU [{:+.1} to {:+.1}]",
        median(&extra) * 1e3,
        lo * 1e3,
        hi * 1e3
    );
    if programs.is_empty() {
        println!(" (program time unknown: kernel.bpf_stats_enabled could not be set)");
        return;
    }
    let prog = median(&programs);
    println!(
        ", programs {:.1} ms ({} runs with bpf stats); together {:.2}% of the bare run's {:.3} s CPU",
        prog * 1e3,
        programs.len(),
        (median(&extra) + prog) / bare * 100.0,
        bare
    );
}

/// kernel.bpf_stats_enabled=1 while alive; the old value back when dropped.
struct BpfStats(Option<String>);

impl BpfStats {
    const PATH: &'static str = "/proc/sys/kernel/bpf_stats_enabled";

    fn on() -> BpfStats {
        let old = std::fs::read_to_string(Self::PATH).ok();
        if old.is_some() && std::fs::write(Self::PATH, "1").is_err() {
            return BpfStats(None);
        }
        BpfStats(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(Self::PATH, old.trim());
        }
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the sensor_cost benchmark needs root: it loads the sensor's BPF programs (sudo cargo bench -p cordon-cli --bench sensor_cost)");
        std::process::exit(2);
    }
    let rounds: usize = std::env::var("CORDON_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let only = std::env::var("CORDON_BENCH_ONLY").ok();
    let scratch = Scratch(PathBuf::from(format!("/var/tmp/cordon-bench-sensor-cost-{}", std::process::id())));
    let ws = scratch.0.join("ws");
    std::fs::create_dir_all(&ws).expect("workspace");
    // Outside the workspace: the session may not write its own audit log or events.
    std::env::set_var("CORDON_AUDIT", scratch.0.join("audit.db"));
    let events = scratch.0.join("events.jsonl");
    let report = scratch.0.join("report.json");

    let mut variants = vec![Variant { name: "bare".into(), prefix: vec![], report: false }];
    let mut cordons = vec![("", env!("CARGO_BIN_EXE_cordon").to_string())];
    if let Ok(old) = std::env::var("CORDON_BENCH_OLD") {
        cordons.push(("OLD ", old));
    }
    for (tag, bin) in &cordons {
        let s = |x: &str| x.to_string();
        variants.push(Variant {
            name: format!("{tag}cordon run"),
            prefix: vec![bin.clone(), s("run"), s("-q"), s("--")],
            report: false,
        });
        variants.push(Variant {
            name: format!("{tag}cordon run --events FILE"),
            prefix: vec![
                bin.clone(),
                s("run"),
                s("-q"),
                s("--events"),
                events.display().to_string(),
                s("--report"),
                report.display().to_string(),
                s("--"),
            ],
            report: true,
        });
    }

    // The write watch (refusals named without the sensor) is on in a plain run and off under the
    // sensor, which sees the refusals itself: the sensor's own cost is against a run without it.
    let bin = env!("CARGO_BIN_EXE_cordon").to_string();
    variants.insert(
        2,
        Variant {
            name: "cordon run, write watch off".into(),
            prefix: ["env", "CORDON_REFUSAL_WATCH=off", &bin, "run", "-q", "--"].map(String::from).to_vec(),
            report: false,
        },
    );
    if let Ok(size) = std::env::var("CORDON_BENCH_SENSOR_BUFFER") {
        let mut v = Variant {
            name: format!("cordon run --events --sensor-buffer {size}"),
            prefix: variants
                .iter()
                .find(|v| v.name == "cordon run --events FILE")
                .map(|v| v.prefix.clone())
                .unwrap_or_default(),
            report: true,
        };
        v.prefix.splice(2..2, ["--sensor-buffer".to_string(), size]);
        variants.push(v);
    }
    let mut workloads = vec![];
    if matches!(only.as_deref(), None | Some("compile")) {
        let lib = ws.join("lib");
        let st = Command::new("cp").arg("-a").arg("/usr/lib/python3.11").arg(&lib).status().expect("cp");
        assert!(st.success(), "copying /usr/lib/python3.11 into the workspace failed");
        let (lib2, out) = (lib.clone(), ws.join("out.tgz"));
        workloads.push(Workload {
            name: "file-heavy: compileall of a copy of /usr/lib/python3.11, then tar czf of it",
            cmd: ["sh", "-c", "/usr/bin/python3 -m compileall -q lib >/dev/null && tar czf out.tgz lib"]
                .map(String::from)
                .to_vec(),
            calls: None,
            prepare: Box::new(move || {
                let _ = std::fs::remove_file(&out);
                let st = Command::new("find")
                    .arg(&lib2)
                    .args(["-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}", "+"])
                    .status()
                    .expect("find");
                assert!(st.success(), "deleting __pycache__ failed");
            }),
        });
    }
    if matches!(only.as_deref(), None | Some("stat")) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/statloop.c");
        let st = Command::new("cc").args(["-O2", "-o"]).arg(ws.join("statloop")).arg(&src).status().expect("cc");
        assert!(st.success(), "compiling {} failed", src.display());
        workloads.push(Workload {
            name: "fixed cost: starting and ending a session (the C loop with 0 calls)",
            cmd: ["./statloop", ".", "0"].map(String::from).to_vec(),
            calls: None,
            prepare: Box::new(|| {}),
        });
        workloads.push(Workload {
            name: "syscall-bound: 1,000,000 os.stat in Python",
            cmd: ["/usr/bin/python3", "-c", PY_STAT].map(String::from).to_vec(),
            calls: Some(1e6),
            prepare: Box::new(|| {}),
        });
        workloads.push(Workload {
            name: "syscall-bound: 1,000,000 stat() in C (bench/statloop.c)",
            cmd: ["./statloop", ".", "1000000"].map(String::from).to_vec(),
            calls: Some(1e6),
            prepare: Box::new(|| {}),
        });
    }
    for w in &workloads {
        bench(w, &variants, rounds, &ws, &report);
    }
    drop(scratch);
}
