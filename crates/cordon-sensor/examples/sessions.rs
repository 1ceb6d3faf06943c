//! The fixed cost of a session, as root: a full load per session (what every session paid before
//! one loaded object could serve many) against sessions added to and removed from one hub.
//! `cargo run --release -p cordon-sensor --example sessions -- 8` (8 sessions, 16 MiB rings, the
//! network programs attached to each, as `cordon run --monitor` does).
use cordon_sensor::{Config, Hub, NetRules, Sensor};
use nix::sys::resource::{getrusage, UsageWho};
use std::time::{Duration, Instant};

fn cfg(dir: &std::path::Path) -> Config {
    Config {
        session: "bench".into(),
        cgroup: dir.to_path_buf(),
        net: Some(NetRules { loopback_only: true, allow: vec![] }),
        attribution: Default::default(),
        seccomp_watch: cordon_sensor::kinds::baseline_watch(cordon_sensor::kinds::native_arch()),
        session_start: true,
        ring_bytes: 16 << 20,
        idle_read: cordon_sensor::IDLE_READ,
        sink: Box::new(|_| {}),
    }
}

/// CPU time (user + system) this process has used.
fn cpu() -> Duration {
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
            Duration::from_micros(us(u.user_time()) + us(u.system_time()))
        })
        .unwrap_or_default()
}

struct Cost {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Cost {
    fn new() -> Cost {
        Cost { wall: vec![], cpu: vec![] }
    }
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (t, c) = (Instant::now(), cpu());
        let r = f();
        self.wall.push(t.elapsed().as_secs_f64() * 1000.0);
        self.cpu.push((cpu() - c).as_secs_f64() * 1000.0);
        r
    }
    fn show(&self, what: &str) {
        let med = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        println!(
            "  {what:<8} median {:6.1} ms wall, {:6.1} ms CPU (n = {})",
            med(&self.wall),
            med(&self.cpu),
            self.wall.len()
        );
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let base = cordon_sensor::cgroup::v2_root().expect("cgroup v2").join("cordon");
    let dirs: Vec<_> = (0..n).map(|i| base.join(format!("bench-{}-{i}", std::process::id()))).collect();
    for d in &dirs {
        std::fs::create_dir_all(d).expect("cgroup");
    }
    for round in 0..2 {
        println!("round {}", round + 1);
        // One session at a time, each loading the programs (Sensor::start with no other session).
        let (mut start, mut stop) = (Cost::new(), Cost::new());
        for d in &dirs {
            let s = start.time(|| Sensor::start(cfg(d)).unwrap_or_else(|e| panic!("{e}")));
            stop.time(|| s.finish());
        }
        println!(" a full load per session:");
        start.show("start");
        stop.show("stop");
        // One hub, all sessions live at once.
        let (mut load, mut start, mut stop) = (Cost::new(), Cost::new(), Cost::new());
        let hub = load.time(|| Hub::load().unwrap_or_else(|e| panic!("{e}")));
        let live: Vec<Sensor> =
            dirs.iter().map(|d| start.time(|| hub.add_session(cfg(d)).unwrap_or_else(|e| panic!("{e}")))).collect();
        for s in live {
            stop.time(|| s.finish());
        }
        println!(" one hub, {n} sessions added and removed:");
        load.show("load");
        start.show("add");
        stop.show("remove");
    }
    for d in &dirs {
        let _ = std::fs::remove_dir(d);
    }
}
