//! How much sooner a command starts in a ready environment than in a whole `cordon run`.
//!
//! `warm_start CORDON [RUNS]` (as root or not; default 50 runs), interleaved, each run:
//! - warm: a `warm_start serve WS` process makes a ready environment (builtin:agent, workspace WS)
//!   and says so; then the command is given (a line on its stdin) and it runs
//!   `/bin/date +%s%N` there. Measured: from the command given to the time date prints.
//! - cold: `CORDON run --no-audit --allow-degraded --workspace WS -- /bin/date +%s%N` (the
//!   flag matters only as nobody: no cgroups there), from spawn to the time
//!   date prints.
//!
//! Both include date's own start (the same in both); `total` is until the process ends. Prints
//! the medians in milliseconds.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        serve(Path::new(&args[2]));
        return;
    }
    let Some(cordon) = args.get(1) else {
        eprintln!("usage: warm_start CORDON [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(50);
    let ws = std::env::temp_dir().join(format!("cordon-warm-start-{}", std::process::id()));
    std::fs::create_dir_all(&ws).expect("workspace");
    let me = std::env::current_exe().expect("this program");
    let (mut warm, mut cold, mut warm_total, mut cold_total) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        // Interleaved, and alternating which goes first.
        for arm in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
            if arm == 0 {
                let (exec, total) = warm_run(&me, &ws);
                warm.push(exec);
                warm_total.push(total);
            } else {
                let (exec, total) = cold_run(cordon, &ws);
                cold.push(exec);
                cold_total.push(total);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&ws);
    println!("runs: {runs} each, interleaved; medians in ms");
    println!(
        "ready environment, command given -> date runs: {:.2} (until it ended: {:.2})",
        median(&mut warm),
        median(&mut warm_total)
    );
    println!(
        "cordon run --no-audit, spawn -> date runs:      {:.2} (until it ended: {:.2})",
        median(&mut cold),
        median(&mut cold_total)
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Reads date's output: the time it ran (ns since the epoch).
fn printed(out: impl std::io::Read) -> i128 {
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("date's output");
    line.trim().parse().unwrap_or_else(|_| panic!("date printed {line:?}"))
}

fn warm_run(me: &Path, ws: &Path) -> (f64, f64) {
    let mut child = Command::new(me)
        .arg("serve")
        .arg(ws)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("ready");
    assert_eq!(line, "ready\n", "the environment was not made");
    let given = now_ns();
    child.stdin.take().expect("stdin").write_all(b"go\n").expect("give the command");
    let ran = printed(child.stdout.take().expect("stdout"));
    assert!(child.wait().expect("wait").success());
    ((ran - given) as f64 / 1e6, (now_ns() - given) as f64 / 1e6)
}

fn cold_run(cordon: &str, ws: &Path) -> (f64, f64) {
    let start = now_ns();
    let mut child = Command::new(cordon)
        .args(["run", "--no-audit", "--allow-degraded", "--workspace"])
        .arg(ws)
        .args(["--", "/bin/date", "+%s%N"])
        .current_dir(ws)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cordon run");
    let ran = printed(child.stdout.take().expect("stdout"));
    assert!(child.wait().expect("wait").success());
    ((ran - start) as f64 / 1e6, (now_ns() - start) as f64 / 1e6)
}

/// Makes a ready environment, says so on stderr, and runs date there once a line arrives on stdin.
fn serve(ws: &Path) {
    use cordon_sandbox::{EnvOptions, Environment, Invocation, KernelCaps, Launch};
    let ws = ws.canonicalize().expect("workspace");
    let cx = cordon_policy::Context::for_workspace(ws.clone());
    let (_, policy) = cordon_policy::load_and_compile("builtin:agent", &cx).expect("builtin:agent");
    let caps = KernelCaps::detect();
    let id = cordon_sandbox::new_session_id();
    let envp = cordon_sandbox::plan::environment(&policy, &caps, &id);
    let env = Environment::create(&envp, EnvOptions::default()).expect("an environment");
    assert!(env.is_ready());
    eprintln!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("the command");
    // The command is known only now: its plan is made here, as a daemon would.
    let inv = Invocation {
        session_id: id,
        argv: vec!["/bin/date".into(), "+%s%N".into()],
        cwd: ws,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
    };
    let process = cordon_sandbox::plan::process(&policy, &caps, &envp, &inv);
    let o = env.run(&process, Launch::new("warm")).expect("run");
    assert_eq!(o.exit_code, 0, "{:?}", o.ending);
}
