//! A real workload: compiling a small C project (40 translation units, `make -j2`) in the workspace,
//! bare and under `cordon run`, interleaved. `cargo bench -p cordon-cli --bench build`
//! (CORDON_BENCH_BUILDS sets the rounds; default 10).

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    // Sessions are recorded (the default) in a throwaway log, not the machine's.
    std::env::set_var(
        "CORDON_AUDIT",
        std::env::temp_dir().join(format!("cordon-bench-audit-{}.db", std::process::id())),
    );
    let n: usize = std::env::var("CORDON_BENCH_BUILDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let cordon = env!("CARGO_BIN_EXE_cordon");
    let ws = std::path::PathBuf::from(format!("/var/tmp/cordon-bench-build-{}", std::process::id()));
    std::fs::create_dir_all(&ws).expect("ws");
    common::write_project(&ws);
    // Wall time, and CPU time (user + system of all descendants) which the machine's noise moves less.
    let cpu = common::children_cpu;
    let cpus = std::cell::RefCell::new((vec![], vec![]));
    let run = |cmd: &[&str]| -> f64 {
        Command::new("make").args(["-s", "clean"]).current_dir(&ws).status().expect("clean");
        let c0 = cpu();
        let t = Instant::now();
        let st = Command::new(cmd[0])
            .args(&cmd[1..])
            .current_dir(&ws)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(st.success(), "{cmd:?}: {st:?}");
        let w = t.elapsed().as_secs_f64();
        let used = cpu() - c0;
        let mut c = cpus.borrow_mut();
        if cmd[0] == "make" {
            c.0.push(used)
        } else {
            c.1.push(used)
        }
        w
    };
    let bare = ["make", "-s", "-j2", "prog"];
    let conf = [cordon, "run", "-q", "--", "make", "-s", "-j2", "prog"];
    run(&bare);
    run(&conf);
    cpus.borrow_mut().0.clear();
    cpus.borrow_mut().1.clear();
    let (mut b, mut c) = (vec![], vec![]);
    for i in 0..n {
        if i % 2 == 0 {
            b.push(run(&bare));
            c.push(run(&conf));
        } else {
            c.push(run(&conf));
            b.push(run(&bare));
        }
    }
    let _ = std::fs::remove_dir_all(&ws);
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (mb, mc) = (med(&mut b), med(&mut c));
    println!("build of 41 C files with make -j2, {n} interleaved rounds (seconds):");
    println!("  bare                 median {mb:.3}  min {:.3}  max {:.3}", b[0], b[b.len() - 1]);
    println!("  cordon run (agent)   median {mc:.3}  min {:.3}  max {:.3}", c[0], c[c.len() - 1]);
    println!("  wall overhead: {:+.2}%", (mc / mb - 1.0) * 100.0);
    let (mut cb, mut cc) = cpus.into_inner();
    let (xb, xc) = (med(&mut cb), med(&mut cc));
    println!("  cpu (user+sys) median: bare {xb:.3}s, cordon {xc:.3}s, overhead {:+.2}%", (xc / xb - 1.0) * 100.0);
    if let Some(db) = std::env::var_os("CORDON_AUDIT") {
        let db = std::path::PathBuf::from(db);
        for ext in ["db", "db-wal", "db-shm", "key", "head", "lock"] {
            let _ = std::fs::remove_file(db.with_extension(ext));
        }
    }
}
