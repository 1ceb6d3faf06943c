//! How fast the sensor's reader keeps up, with a sink that does nothing:
//! `cargo run --release -p cordon-sensor --example rate -- ./openloop f 1000000` as root.
fn main() {
    let root = cordon_sensor::cgroup::v2_root().expect("v2");
    let dir = root.join("cordon").join(format!("rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cgroup");
    let cfg = cordon_sensor::Config {
        session: "rate".into(),
        cgroup: dir.clone(),
        net: None,
        attribution: Default::default(),
        seccomp_watch: vec![],
        session_start: false,
        ring_bytes: 16 << 20,
        idle_read: cordon_sensor::IDLE_READ,
        sink: Box::new(|_| {}),
    };
    let s = cordon_sensor::Sensor::start(cfg).unwrap_or_else(|e| panic!("{e}"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let script = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", dir.display());
    let st = std::process::Command::new("sh").arg("-c").arg(script).arg("sh").args(&args).status().expect("run");
    let sum = s.finish();
    eprintln!("status {st}; events {} lost {} in {:.2}s", sum.events, sum.lost, sum.seconds);
    let _ = std::fs::remove_dir(&dir);
    let _ = std::fs::remove_dir(dir.parent().expect("parent"));
}
