//! Manual check: `cargo run -p cordon-sensor --example smoke -- sh -c 'cat /etc/hostname'` as root.
fn main() {
    let root = cordon_sensor::cgroup::v2_root().expect("v2");
    let dir = root.join("cordon").join(format!("smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let cfg = cordon_sensor::Config {
        session: "smoke".into(),
        cgroup: dir.clone(),
        net: Some(cordon_sensor::NetRules { loopback_only: true, allow: vec![] }),
        attribution: Default::default(),
        seccomp_watch: vec![],
        session_start: true,
        ring_bytes: 1 << 20,
        idle_read: cordon_sensor::IDLE_READ,
        sink: Box::new(|f| {
            if let cordon_sensor::Feed::Event(e) = f {
                println!("{}", e.line())
            }
        }),
    };
    let t = std::time::Instant::now();
    let s = cordon_sensor::Sensor::start(cfg).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("loaded in {:?}", t.elapsed());
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The shell joins the cgroup itself, then becomes the command.
    let script = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", dir.display());
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(script).arg("sh").args(&args);
    let st = c.status().expect("spawn");
    let sum = s.finish();
    eprintln!("status {st}; {}", serde_json::to_string_pretty(&sum).expect("json"));
    let _ = std::fs::remove_dir(&dir);
    let _ = dir.parent().map(std::fs::remove_dir);
}
