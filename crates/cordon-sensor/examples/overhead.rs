//! What the sensor costs a process, as root: a command run in a cgroup of its own with no sensor
//! loaded (bare), with the sensor loaded but watching another cgroup (outside), and watched
//! (inside, with a sink that only counts), interleaved round by round.
//! `cargo run --release -p cordon-sensor --example overhead -- ROUNDS CMD ARGS...`
use cordon_sensor::{Config, Sensor};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn cfg(dir: &Path, n: Arc<AtomicU64>) -> Config {
    Config {
        session: "overhead".into(),
        cgroup: dir.to_path_buf(),
        net: None,
        attribution: Default::default(),
        seccomp_watch: cordon_sensor::kinds::baseline_watch(cordon_sensor::kinds::native_arch()),
        session_start: false,
        ring_bytes: 16 << 20,
        idle_read: cordon_sensor::IDLE_READ,
        sink: Box::new(move |f| {
            if let cordon_sensor::Feed::Event(_) = f {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }),
    }
}

/// With kernel.bpf_stats_enabled=1: the average run time of each of the sensor's programs that ran.
fn prog_stats(what: &str) {
    let names = ["sys_enter", "sys_exit", "on_exec", "on_fork", "on_exit"];
    let v: Vec<String> = libbpf_rs::query::ProgInfoIter::default()
        .filter(|p| names.contains(&p.name.to_string_lossy().as_ref()) && p.run_cnt > 0)
        .map(|p| format!("{} {} ns x {}", p.name.to_string_lossy(), p.run_time_ns / p.run_cnt, p.run_cnt))
        .collect();
    if !v.is_empty() {
        println!("    {what}: {}", v.join(", "));
    }
}

fn run(dir: &Path, cmd: &[String]) -> f64 {
    let script = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", dir.display());
    let t = Instant::now();
    let st = Command::new("sh").arg("-c").arg(script).arg("sh").args(cmd).status().expect("run");
    assert!(st.success(), "{cmd:?}: {st}");
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).expect("usage: overhead ROUNDS CMD ARGS...");
    let cmd = &args[1..];
    let base = cordon_sensor::cgroup::v2_root().expect("cgroup v2").join("cordon");
    let (dir, other) = (
        base.join(format!("overhead-{}", std::process::id())),
        base.join(format!("overhead-{}-other", std::process::id())),
    );
    for d in [&dir, &other] {
        std::fs::create_dir_all(d).expect("cgroup");
    }
    let (mut bare, mut outside, mut inside, mut events) = (vec![], vec![], vec![], 0);
    for _ in 0..rounds {
        bare.push(run(&dir, cmd));
        let n = Arc::new(AtomicU64::new(0));
        let s = Sensor::start(cfg(&other, n.clone())).unwrap_or_else(|e| panic!("{e}"));
        outside.push(run(&dir, cmd));
        prog_stats("outside");
        s.finish();
        let s = Sensor::start(cfg(&dir, n.clone())).unwrap_or_else(|e| panic!("{e}"));
        inside.push(run(&dir, cmd));
        prog_stats("watched");
        let sum = s.finish();
        events = n.load(Ordering::Relaxed);
        assert_eq!(sum.lost, 0, "events were lost: the comparison would flatter the sensor");
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let b = med(&mut bare);
    println!("{cmd:?}: {rounds} rounds, median bare {:.3}s", b);
    println!("  sensor loaded, another cgroup watched: {:.3}s ({:.3}x)", med(&mut outside), med(&mut outside) / b);
    println!("  watched ({events} events in the last round): {:.3}s ({:.3}x)", med(&mut inside), med(&mut inside) / b);
    for d in [&dir, &other] {
        let _ = std::fs::remove_dir(d);
    }
}
