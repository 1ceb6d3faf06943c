//! Startup cost of a confined `/bin/true`, interleaved with its peers in one run so that they share the
//! machine's state: bare exec, `cordon run` with the default profile, and bubblewrap with all
//! namespaces. Prints medians, p10/p90 and the ratios. `cargo bench -p cordon-cli --bench startup`
//! (CORDON_BENCH_N sets the rounds; default 300). `CORDON_BENCH_PHASES=N` instead runs
//! `cordon run --no-audit -- /bin/true` N times with `CORDON_TIMING=1` and prints where the time
//! goes: the median of each phase (the time from the mark before it), docs/BENCHMARKS.md's table.

use std::process::{Command, Stdio};
use std::time::Instant;

fn time(cmd: &[&str], dir: &std::path::Path) -> f64 {
    let t = Instant::now();
    let st = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(st.success(), "{cmd:?} failed: {st:?}");
    ms
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The `cordon-timing:` marks of one run: (series, label, microseconds since the series' start).
/// The CLI's marks (`cli`) count from cordon's start, the others from the supervisor's.
fn marks(stderr: &str) -> Vec<(bool, String, u64)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("cordon-timing: "))
        .filter_map(|l| {
            let (cli, rest) = match l.strip_prefix("cli ") {
                Some(r) => (true, r),
                None => (false, l),
            };
            let (us, label) = rest.trim_start().split_once(" us  ")?;
            Some((cli, label.trim().to_string(), us.trim().parse().ok()?))
        })
        .collect()
}

fn phases(n: usize, cordon: &str, ws: &std::path::Path) {
    let mut order: Vec<String> = vec![];
    let mut got: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for _ in 0..n {
        let o = Command::new(cordon)
            .args(["run", "--no-audit", "-q", "--", "/bin/true"])
            .current_dir(ws)
            .env("CORDON_TIMING", "1")
            .output()
            .expect("spawn");
        assert!(o.status.success(), "cordon failed: {}", String::from_utf8_lossy(&o.stderr));
        let m = marks(&String::from_utf8_lossy(&o.stderr));
        for series in [true, false] {
            let mut prev = 0;
            for (_, label, us) in m.iter().filter(|x| x.0 == series) {
                let key = format!("{}{label}", if series { "cli: " } else { "" });
                if !order.contains(&key) {
                    order.push(key.clone());
                }
                got.entry(key).or_default().push(us.saturating_sub(prev) as f64);
                prev = *us;
            }
        }
    }
    println!("where a session's start goes, {n} runs of `cordon run --no-audit -- /bin/true` (us, median [p10, p90] of the time since the previous mark):");
    for k in &order {
        let v = got.get_mut(k).expect("phase");
        println!("{:>7.0} [{:>6.0}, {:>6.0}]  {k}", pct(v, 0.5), pct(v, 0.1), pct(v, 0.9));
    }
}

fn main() {
    // Sessions are recorded (the default) in a throwaway log, not the machine's.
    std::env::set_var(
        "CORDON_AUDIT",
        std::env::temp_dir().join(format!("cordon-bench-audit-{}.db", std::process::id())),
    );
    let n: usize = std::env::var("CORDON_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let cordon = env!("CARGO_BIN_EXE_cordon");
    let ws = std::env::temp_dir().join(format!("cordon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&ws).expect("ws");
    if let Some(k) = std::env::var("CORDON_BENCH_PHASES").ok().and_then(|s| s.parse().ok()) {
        phases(k, cordon, &ws);
        let _ = std::fs::remove_dir_all(&ws);
        return;
    }
    let mut cases: Vec<(&str, Vec<&str>)> = vec![
        ("bare /bin/true", vec!["/bin/true"]),
        ("cordon run -- /bin/true", vec![cordon, "run", "--", "/bin/true"]),
    ];
    let have_bwrap = Command::new("bwrap").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if have_bwrap {
        cases.push((
            "bwrap --ro-bind / / --unshare-all --die-with-parent /bin/true",
            vec!["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "/bin/true"],
        ));
    } else {
        eprintln!("SKIPPED bwrap peer: bwrap not installed (scripts/setup installs it)");
    }
    // The audit log's share (start record + end + seal, fsynced), and a binary of an earlier commit
    // measured in the same run (CORDON_BENCH_OLD=path/to/old/cordon) for before/after comparisons.
    cases.push(("cordon run --no-audit -- /bin/true", vec![cordon, "run", "--no-audit", "--", "/bin/true"]));
    let old = std::env::var("CORDON_BENCH_OLD").ok();
    if let Some(o) = &old {
        cases.push(("OLD cordon run -- /bin/true", vec![o.as_str(), "run", "--", "/bin/true"]));
        cases
            .push(("OLD cordon run --no-audit -- /bin/true", vec![o.as_str(), "run", "--no-audit", "--", "/bin/true"]));
    }
    let extra = std::env::var("CORDON_BENCH_POLICY").ok();
    if let Some(p) = &extra {
        cases.push((
            "cordon run --policy $CORDON_BENCH_POLICY -- /bin/true",
            vec![cordon, "run", "--allow-degraded", "-q", "--policy", p.as_str(), "--", "/bin/true"],
        ));
    }
    for (_, c) in &cases {
        time(c, &ws); // warm up caches
    }
    let mut res: Vec<Vec<f64>> = vec![vec![]; cases.len()];
    for round in 0..n {
        // Rotate the order every round so that no case always runs after the same neighbour.
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            res[i].push(time(&cases[i].1, &ws));
        }
    }
    let _ = std::fs::remove_dir_all(&ws);
    let bare = pct(&mut res[0].clone(), 0.5);
    println!("startup, {n} interleaved rounds, wall time per command (ms):");
    println!("{:<62} {:>8} {:>8} {:>8} {:>9} {:>10}", "command", "median", "p10", "p90", "vs bare", "added ms");
    let mut medians = vec![];
    for (i, (name, _)) in cases.iter().enumerate() {
        let m = pct(&mut res[i], 0.5);
        medians.push(m);
        println!(
            "{:<62} {:>8.3} {:>8.3} {:>8.3} {:>8.2}x {:>10.3}",
            name,
            m,
            pct(&mut res[i], 0.1),
            pct(&mut res[i], 0.9),
            m / bare,
            m - bare
        );
    }
    if have_bwrap {
        println!("cordon / bwrap median ratio: {:.2}", medians[1] / medians[2]);
    }
    if let Some(db) = std::env::var_os("CORDON_AUDIT") {
        for f in cordon_audit::files::log_files(std::path::Path::new(&db)) {
            let _ = std::fs::remove_file(&f).or_else(|_| std::fs::remove_dir_all(&f));
        }
    }
}
