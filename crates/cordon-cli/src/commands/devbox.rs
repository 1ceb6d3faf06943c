//! `cordon devbox`: snapshots a devbox is made from (docs/devbox.md).

use anyhow::Result;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// The default store. Not under /var/lib/cordon: that tree holds the audit log and its key, and no
/// session may have a workspace inside it (cordon_session::guards), while setup runs with the
/// snapshot's code directory as its workspace.
pub const DEFAULT_STORE: &str = "/var/lib/cordon-devbox";

const BUILD_LONG: &str = "Build the snapshot a devbox file describes.

The code is cloned at the commit `code.ref` names, each `setup` command runs once in its own cordon \
session (the code directory is its workspace, `setup_net` its only egress, recorded in the audit log), \
and the result is published in STORE/snapshots/HASH with a manifest.json. HASH covers the file's \
content (not its layout) and the commit: building again what has not changed says \"up to date\". A \
failed step leaves nothing behind.

Examples:
  sudo cordon devbox build devbox.toml
  cordon devbox build devbox.toml --store /var/tmp/devboxes --json";

#[derive(Subcommand)]
#[command(about = "Devboxes: snapshots of code and its dependencies, ready to claim")]
pub enum DevboxCmd {
    #[command(about = "Build (or find) the snapshot a devbox.toml describes", long_about = BUILD_LONG)]
    Build(BuildArgs),
    /// Ask the daemon to hold N prepared devboxes of SNAPSHOT (a hash or a unique prefix).
    Pool {
        #[arg(value_name = "SNAPSHOT")]
        snapshot: String,
        #[arg(long, value_name = "N")]
        size: usize,
        #[command(flatten)]
        at: Socket,
    },
    /// Claim a devbox of SNAPSHOT: its id, once its `ready` probe passed inside it.
    Claim {
        #[arg(value_name = "SNAPSHOT")]
        snapshot: String,
        /// A policy (file or builtin:NAME) no looser than the snapshot's: the devbox's commands run
        /// under it. Default: the snapshot's own.
        #[arg(long, value_name = "POLICY")]
        policy: Option<String>,
        /// Bind a secret into this claim only: an environment variable of every command run in it,
        /// of no other claim, never stored (the audit log records its name). NAME takes the value
        /// of this shell's variable NAME; NAME=@FILE the file's contents (one final newline
        /// dropped). Never NAME=VALUE: a value on the command line is visible to other users.
        /// Repeatable.
        #[arg(long = "secret", value_name = "NAME[=@FILE]")]
        secrets: Vec<String>,
        /// Print the answer as JSON (id, snapshot, workspace, latency_ms, from_pool).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: Socket,
    },
    /// Run CMD in a claimed devbox with this terminal's stdin, stdout and stderr; exits with its status.
    Exec {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        at: Socket,
        #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// List the daemon's devboxes, pooled and claimed (root; anyone else: its own claims), and the
    /// pools' sizes. --json: {"items": [...], "pools": [...]}.
    Ls {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: Socket,
    },
    #[command(about = "Measure claim-to-ready latency (and a cold `cordon run` of the same probe)", long_about = BENCH_LONG)]
    Bench(BenchArgs),
    /// Remove a claimed devbox: its processes, its cgroup, its writes.
    Rm {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        at: Socket,
    },
}

const BENCH_LONG: &str = "Measure claim-to-ready latency against a running daemon.

The pool is sized (--pool); each of --claims claims waits until the pool is full again (the pool is \
sized for the rate: every claim is warm unless a refill failed), is timed from the request to the \
answer (ready: the snapshot's `ready` probe passed inside), and its devbox removed. With --cold N, the \
same probe also runs N times as a one-shot `cordon run --no-audit` in a copy of the snapshot's code, \
interleaved with the claims. Prints p50/p99 in milliseconds.";

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// How many claims.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub claims: usize,
    /// The pool's size during the run.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub pool: usize,
    /// Also run the probe N times as a one-shot `cordon run` (0: not).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub cold: usize,
    /// The snapshot store (for the probe and the code the cold runs copy).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub at: Socket,
}

#[derive(Args)]
pub struct Socket {
    /// The daemon's socket.
    #[arg(long, value_name = "PATH", default_value = cordon_devbox::client::DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Args)]
pub struct BuildArgs {
    /// The devbox file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The snapshot store.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
    /// Print the result as JSON on standard output (hash, dir, commit, up_to_date).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: DevboxCmd) -> Result<i32> {
    use cordon_devbox::client::request;
    use cordon_devbox::wire::{Reply, Request};
    let ask = |at: &Socket, r: Request| request(&at.socket, &r).map_err(|e| anyhow::anyhow!("{e}"));
    match cmd {
        DevboxCmd::Build(a) => build(a),
        DevboxCmd::Pool { snapshot, size, at } => {
            if let Reply::Pooled { snapshot, ready } = ask(&at, Request::Pool { snapshot, size })? {
                println!("pool {snapshot}: {ready} devbox(es) ready");
            }
            Ok(0)
        }
        DevboxCmd::Claim { snapshot, policy, secrets, json, at } => {
            let policy_text = match policy.as_deref() {
                Some(p) if !p.starts_with("builtin:") => Some(read_policy(p)?),
                _ => None,
            };
            let secrets = secrets
                .iter()
                .map(|f| cordon_devbox::secrets::from_flag(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            cordon_devbox::secrets::check(&secrets).map_err(|e| anyhow::anyhow!("{e}"))?;
            let r = ask(&at, Request::Claim { snapshot, policy, policy_text, secrets })?;
            if let Reply::Claimed { id, snapshot, workspace, latency_ms, from_pool } = &r {
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "devbox {id} (snapshot {snapshot}, {}) ready in {latency_ms:.1} ms; its code at {}\n  cordon devbox exec {id} -- CMD",
                        if *from_pool { "from the pool" } else { "made at claim: the pool was empty" },
                        workspace.display()
                    );
                }
            }
            Ok(0)
        }
        DevboxCmd::Exec { id, at, cmd } => {
            cordon_devbox::client::exec(&at.socket, &id, cmd, vec![]).map_err(|e| anyhow::anyhow!("{e}"))
        }
        DevboxCmd::Ls { json, at } => {
            if let Reply::Devboxes { items, pools } = ask(&at, Request::Ls)? {
                if json {
                    println!("{}", serde_json::json!({"items": items, "pools": pools}));
                } else {
                    for p in pools {
                        println!("pool {}: {} of {} ready", p.snapshot, p.ready, p.size);
                    }
                    for i in items {
                        println!("{}  {:<8} snapshot {}  init pid {}", i.id, i.state, i.snapshot, i.pid);
                    }
                }
            }
            Ok(0)
        }
        DevboxCmd::Bench(a) => bench(a),
        DevboxCmd::Rm { id, at } => {
            ask(&at, Request::Rm { id: id.clone() })?;
            println!("devbox {id} removed");
            Ok(0)
        }
    }
}

/// A claim's policy file, read by the client as the user who runs it (the daemon reads none),
/// bounded.
fn read_policy(path: &str) -> Result<String> {
    use std::io::Read;
    let max = cordon_devbox::wire::MAX_POLICY_TEXT;
    let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot read policy file {path}: {e}"))?;
    let mut text = String::new();
    f.take(max as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("cannot read policy file {path}: {e}"))?;
    if text.len() > max {
        anyhow::bail!(
            "policy file {path} is larger than {} KiB\n  hint: a claim's policy is sent to the daemon whole",
            max / 1024
        );
    }
    Ok(text)
}

fn build(a: BuildArgs) -> Result<i32> {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find cordon's own binary: {e}"))?;
    let d = cordon_devbox::config::load(&a.file)?;
    let t0 = std::time::Instant::now();
    // On a terminal: a spinner with the current step and its elapsed time (finished steps stay as
    // lines above it); otherwise one plain line per step.
    let bar = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        let style = indicatif::ProgressStyle::with_template("{spinner} cordon: devbox: {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        pb.set_style(style);
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    });
    let mut show = |p: cordon_devbox::snapshot::Progress| {
        use cordon_devbox::snapshot::Progress;
        match &bar {
            Some(pb) => match p {
                Progress::SetupDone { .. } | Progress::Resolved { .. } => pb.println(format!("cordon: devbox: {p}")),
                _ => {
                    pb.reset_elapsed();
                    pb.set_message(p.to_string());
                }
            },
            None => {
                let _ = writeln!(std::io::stderr().lock(), "cordon: devbox: {p}");
            }
        }
    };
    let built = cordon_devbox::snapshot::build(&d, &a.store, &exe, &mut show);
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let b = built?;
    if a.json {
        let j = serde_json::json!({"hash": b.hash, "dir": b.dir, "commit": b.commit, "up_to_date": b.up_to_date});
        println!("{j}");
    } else if b.up_to_date {
        println!("snapshot {} is up to date ({})", b.hash, b.dir.display());
    } else {
        println!("snapshot {} built in {:.1} s ({})", b.hash, t0.elapsed().as_secs_f64(), b.dir.display());
    }
    Ok(0)
}

/// p50, p99 and the largest of `v` (milliseconds).
fn percentiles(v: &mut [f64]) -> serde_json::Value {
    if v.is_empty() {
        return serde_json::Value::Null;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    let round = |x: f64| (x * 100.0).round() / 100.0;
    serde_json::json!({"n": v.len(), "p50": round(at(0.50)), "p99": round(at(0.99)), "max": round(v[v.len() - 1])})
}

fn bench(a: BenchArgs) -> Result<i32> {
    use cordon_devbox::client::request;
    use cordon_devbox::wire::{Reply, Request};
    use std::time::{Duration, Instant};
    let ask = |r: Request| request(&a.at.socket, &r).map_err(|e| anyhow::anyhow!("{e}"));
    let (dir, m) = cordon_devbox::snapshot::open(&a.store, &a.snapshot)?;
    let probe = m.devbox.ready.clone().unwrap_or_else(|| vec!["/bin/true".into()]);
    ask(Request::Pool { snapshot: m.hash.clone(), size: a.pool })?;
    let pooled = || -> Result<usize> {
        match ask(Request::Ls)? {
            Reply::Devboxes { items, .. } => {
                Ok(items.iter().filter(|i| i.state == "pooled" && i.snapshot == m.hash).count())
            }
            _ => Ok(0),
        }
    };
    // The cold arm runs in a copy of the code (a one-shot session makes its placeholders in its
    // workspace: not in the snapshot).
    let copy = std::env::temp_dir().join(format!("cordon-devbox-bench-{}", std::process::id()));
    if a.cold > 0 {
        let st = std::process::Command::new("cp").arg("-a").arg(dir.join("code")).arg(&copy).status()?;
        anyhow::ensure!(st.success(), "cannot copy the snapshot's code to {}", copy.display());
    }
    let exe = std::env::current_exe()?;
    let cold_run = || -> Result<f64> {
        let t = Instant::now();
        let st = std::process::Command::new(&exe)
            .args(["run", "--no-audit", "--quiet", "--workspace"])
            .arg(&copy)
            .arg("--")
            .args(&probe)
            .current_dir(&copy)
            .stdin(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(st.success(), "the probe failed in a cold `cordon run` ({st})");
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let (mut wall, mut daemon, mut cold, mut warm_hits) = (vec![], vec![], vec![], 0usize);
    let result = (|| -> Result<()> {
        for i in 0..a.claims {
            let deadline = Instant::now() + Duration::from_secs(30);
            while pooled()? < a.pool {
                anyhow::ensure!(Instant::now() < deadline, "the pool did not refill in 30 s");
                std::thread::sleep(Duration::from_millis(2));
            }
            let t = Instant::now();
            let r = ask(Request::Claim { snapshot: m.hash.clone(), policy: None, policy_text: None, secrets: vec![] })?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if let Reply::Claimed { id, latency_ms, from_pool, .. } = r {
                wall.push(ms);
                daemon.push(latency_ms);
                warm_hits += usize::from(from_pool);
                ask(Request::Rm { id })?;
            }
            if i < a.cold {
                cold.push(cold_run()?);
            }
        }
        for _ in a.claims..a.cold {
            cold.push(cold_run()?);
        }
        Ok(())
    })();
    if a.cold > 0 {
        let _ = std::fs::remove_dir_all(&copy);
    }
    let _ = ask(Request::Pool { snapshot: m.hash.clone(), size: 0 });
    result?;
    let j = serde_json::json!({
        "snapshot": m.hash,
        "probe": probe,
        "pool": a.pool,
        "claims": wall.len(),
        "from_pool": warm_hits,
        "claim_to_ready_ms": percentiles(&mut wall),
        "daemon_claim_ms": percentiles(&mut daemon),
        "cold_run_ms": percentiles(&mut cold),
    });
    if a.json {
        println!("{j}");
    } else {
        println!("{}", serde_json::to_string_pretty(&j)?);
    }
    Ok(0)
}
