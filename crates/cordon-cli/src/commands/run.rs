//! `cordon run`: one confined session.

use anyhow::Result;
use clap::Args;
use cordon_session::spec::{AuditChoice, SessionSpec};
use std::path::PathBuf;

const LONG: &str = "Run CMD confined by a policy.

The command sees the workspace (default: the current directory) read-write, the system read-only, a \
private /tmp, and nothing else of the filesystem; it has no network, no capabilities and no secrets in \
its environment (with the default `agent` profile). When it ends, or cordon is killed, every process of \
the session ends too.

If the host cannot enforce something the policy asks for, cordon refuses to start and names the missing \
kernel feature; --allow-degraded runs anyway and prints what was actually enforced.

Exit status: CMD's own, 128+N if a signal N ended it, 125 if the sandbox could not be set up (nothing \
ran), 126 if CMD could not be executed, 127 if it was not found.

Examples:
  cordon run -- claude
  cordon run --profile readonly -- git log -p
  cordon run --policy team.toml --workspace ~/src/app -- make test
  cordon run --report session.json -- ./agent.py
  sudo cordon run --monitor -- make test          (live timeline of what really ran)
  sudo cordon run --events events.jsonl -- ./agent.py";

#[derive(Args)]
#[command(about = "Run a command confined by a policy", long_about = LONG)]
pub struct RunArgs {
    /// Built-in profile: agent (the default, unless the workspace has a trusted .cordon.toml: see
    /// `cordon init`), readonly, build, strict, claude-code, codex.
    #[arg(long, value_name = "NAME", conflicts_with = "policy")]
    pub profile: Option<String>,
    /// Policy file (TOML).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The directory the command may write (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Run even when the host cannot enforce everything the policy asks; what is lost is printed.
    #[arg(long)]
    pub allow_degraded: bool,
    /// Print nothing of cordon's own unless setup fails.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the guarantees in force before the command starts.
    #[arg(short, long)]
    pub verbose: bool,
    /// Allow network egress to HOST[:PORT] through cordon's proxy (repeatable). HOST is a domain,
    /// `*.domain`, an IP or a CIDR; or a preset of the hosts a tool really uses: @pypi, @npm,
    /// @crates, @github, @anthropic, @openai (`cordon policy explain` shows what they hold).
    /// Switches the policy's egress to "proxy".
    #[arg(long = "allow-net", value_name = "HOST[:PORT]|@PRESET")]
    pub allow_net: Vec<String>,
    /// Make the session's SESSION_PORT reachable from the host at HOST_IP:HOST_PORT (repeatable;
    /// HOST_IP is 127.0.0.1 unless given, `[::1]` for IPv6), e.g. `--publish 8080:3000` for a dev
    /// server the session runs on its port 3000. The session keeps its own network namespace:
    /// nothing else of it becomes reachable, and it reaches nothing more. A server inside must
    /// listen on the session's loopback (127.0.0.1 or ::1), which is where cordon connects.
    #[arg(long = "publish", value_name = "[HOST_IP:]HOST_PORT:SESSION_PORT")]
    pub publish: Vec<String>,
    /// Let the session read (and execute in) DIR for this run only, without a policy file
    /// (repeatable). Secrets stay masked: a grant cannot reach `@secrets`.
    #[arg(long = "allow-read", value_name = "DIR")]
    pub allow_read: Vec<PathBuf>,
    /// Let the session write DIR for this run only, without a policy file (repeatable). System
    /// trees, your home directory and where credentials live are refused, as for workspaces. A
    /// protected workspace path (fs.protect, e.g. `.envrc`) is writable in this run when named.
    #[arg(long = "allow-write", value_name = "DIR")]
    pub allow_write: Vec<PathBuf>,
    /// Hold the session's changes of files that run outside the sandbox (fs.review: Makefile, CI
    /// workflows, package.json, ...): at the end they are undone on disk and written to a patch
    /// outside the workspace, which the summary names with the command that applies it. The same
    /// as `[fs] review_mode = "hold"` in the policy.
    #[arg(long)]
    pub review: bool,
    /// The audit log to record this session in (default: $XDG_STATE_HOME/cordon/audit.db, or
    /// /var/lib/cordon/audit.db as root).
    #[arg(long, value_name = "PATH", conflicts_with = "no_audit")]
    pub audit: Option<PathBuf>,
    /// Do not record the session (cordon refuses to run when it cannot record, unless told this).
    #[arg(long)]
    pub no_audit: bool,
    /// Watch the session from the kernel with the eBPF sensor (root only): every exec, fork, exit,
    /// file, network and privilege call of every process, each refusal with the layer that refused
    /// it, and the process tree at the end. Without --events a readable timeline goes to stderr.
    /// The sensor also enforces the network rules in the kernel (cgroup-bpf). If the sensor cannot
    /// load, nothing runs.
    #[arg(long)]
    pub monitor: bool,
    /// Write every sensor event as a JSON line (schema: docs/events.schema.json) to FILE; implies
    /// --monitor.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// The sensor's ring buffer: kernel memory that holds events until cordon reads them (about
    /// 200 bytes each; 16M holds some 80k, while the reader keeps pace with 300k events/s here). A
    /// burst larger than this loses events; losses are always counted and reported. Rounded up to a
    /// power of two. Each session allocates and maps it at start: 64M costs ~15 ms more than 16M.
    #[arg(long, value_name = "SIZE", default_value = "16M")]
    pub sensor_buffer: String,
    /// Write the session outcome (ending, denials, limits hit, guarantees) as JSON to FILE. FILE is
    /// opened before the session starts (a wrong path fails then); a fifo must have a reader.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// After the seal, also write the log's signed head (`cordon audit head`) to FILE: keep it where
    /// the sessions' user cannot write, and check the log against it with `cordon audit verify
    /// --expect-head FILE` (it catches records removed together with the head file).
    #[arg(long, value_name = "FILE", conflicts_with = "no_audit")]
    pub head_copy: Option<PathBuf>,
    /// Kill the whole session DURATION (e.g. 10s) after the first SIGINT or SIGTERM cordon passes on
    /// to the command, if it has not ended by then. A second SIGINT or SIGTERM kills it at once.
    #[arg(long, value_name = "DURATION", value_parser = kill_after)]
    pub kill_after: Option<std::time::Duration>,
    /// Ship the audit log to `cordon server` (--server URL --server-token-file FILE): the start
    /// record as the session starts, the rest at its end. When the server cannot be reached the run
    /// still succeeds, says so, and `cordon audit ship` delivers later: the log is the spool.
    #[command(flatten)]
    pub ship: super::audit::ship::ServerArgs,
    /// Run under the policy `cordon server` holds for this agent identity (needs --server): fetched,
    /// its text and the server's signature checked against the server key this node pinned on first
    /// use, cached beside the audit log (used, and said, when the server cannot be reached); its
    /// version is in the session's start record. It cannot be widened on the command line
    /// (--allow-net, --allow-read, --allow-write, --publish are refused with it).
    #[arg(long, value_name = "NAME", requires = "server", conflicts_with_all = ["profile", "policy", "allow_net", "allow_read", "allow_write", "publish"])]
    pub identity: Option<String>,
    /// The command and its arguments. cordon's own options come before it; the first word that is
    /// not one starts the command (or everything after `--` is the command).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub cmd: Vec<std::ffi::OsString>,
}

fn kill_after(s: &str) -> Result<std::time::Duration, String> {
    match cordon_policy::units::parse_duration(s) {
        Ok(d) if d.is_zero() => {
            Err("must be at least 1s (a second SIGINT or SIGTERM already kills at once); e.g. 10s".into())
        }
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e}; write a duration, e.g. 10s, 2m or 1m30s")),
    }
}

/// A project policy the user trusted that is no longer a file (an agent may have removed it to run
/// its next session under the default profile) stops the run instead of giving way silently.
fn refuse_a_trusted_policy_gone(ws: &std::path::Path) -> Result<()> {
    use cordon_session::project;
    let (Ok(ws), Ok(store)) = (ws.canonicalize(), project::store_path()) else { return Ok(()) };
    let file = ws.join(project::FILE);
    if project::was_trusted(&store, &file).map_err(|e| anyhow::anyhow!("{e}"))? {
        anyhow::bail!(
            "the workspace's policy {} was trusted but is gone or not a regular file: an agent may have removed it to widen this session, so nothing was run\n  hint: restore it (`git checkout -- .cordon.toml`), or name a policy for this run (--profile agent, --policy FILE); to forget it, remove its line from {}",
            file.display(),
            store.display()
        );
    }
    Ok(())
}

/// The arguments as the engine's spec; `served`: the identity's policy from `cordon server`.
fn spec(a: &RunArgs, served: Option<super::identity::Fetched>) -> Result<SessionSpec> {
    let cwd = std::env::current_dir().map_err(|e| anyhow::anyhow!("cannot determine the current directory: {e}"))?;
    // No policy named: the workspace's own `.cordon.toml`, if it has one (and it is trusted).
    let named = a.profile.is_some() || a.policy.is_some() || served.is_some();
    let ws = cwd.join(a.workspace.as_deref().unwrap_or(&cwd));
    let project = if named { None } else { cordon_session::project::find(&ws) };
    if !named && project.is_none() {
        refuse_a_trusted_policy_gone(&ws)?;
    }
    Ok(SessionSpec {
        argv: a.cmd.clone(),
        env: std::env::vars_os().collect(),
        cwd,
        workspace: a.workspace.clone(),
        policy: match (&project, &served) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(s)) => s.path.display().to_string(),
            (None, None) => super::policy_spec(a.profile.as_deref(), a.policy.as_deref()),
        },
        project_policy: project.is_some(),
        allow_net: a.allow_net.clone(),
        publish: a.publish.clone(),
        allow_read: a.allow_read.clone(),
        allow_write: a.allow_write.clone(),
        env_secret: vec![],
        allow_degraded: a.allow_degraded,
        review_hold: a.review,
        audit: match (&a.audit, a.no_audit) {
            (_, true) => AuditChoice::Off,
            (Some(p), false) => AuditChoice::Path(p.clone()),
            (None, false) => AuditChoice::Default,
        },
        report: a.report.clone(),
        events: a.events.clone(),
        head_copy: a.head_copy.clone(),
        monitor: a.monitor,
        sensor_buffer: a.sensor_buffer.clone(),
        kill_after: a.kill_after,
        interactive: true,
        identity: served.map(|s| s.origin),
    })
}

/// User + system CPU of `who` (getrusage), in milliseconds.
fn cpu_ms(who: nix::sys::resource::UsageWho) -> f64 {
    let t = |v: nix::sys::time::TimeVal| v.tv_sec() as f64 * 1e3 + v.tv_usec() as f64 / 1e3;
    nix::sys::resource::getrusage(who).map(|u| t(u.user_time()) + t(u.system_time())).unwrap_or(f64::NAN)
}

pub fn run(a: RunArgs) -> Result<i32> {
    use cordon_session::timing;
    timing::start();
    let tm = timing::cli;
    let ship = super::audit::ship::Target::from_args(&a.ship)?;
    if ship.is_some() && a.no_audit {
        anyhow::bail!("--server ships the audit log, and --no-audit keeps none: drop one of them");
    }
    let served = match (&a.identity, &ship) {
        (Some(id), Some(t)) => Some(super::identity::policy_for(id, t, &audit_db(a.audit.as_deref()))?),
        _ => None,
    };
    // The engine's errors carry the whole text a user reads (message and hint).
    let p = cordon_session::prepare::prepare(spec(&a, served)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    tm("prepared: policy, plans, record, outputs");
    // The start record (committed by prepare) goes at once: the server then knows the session
    // runs (a policy changed meanwhile marks it stale). A failure here is said at the end.
    let early = match &ship {
        Some(t) => super::audit::ship::ship(&audit_db(a.audit.as_deref()), t, 5000).map_or(0, |s| s.accepted),
        None => 0,
    };
    crate::render::before(&p, a.quiet, a.verbose);
    let policy_name = p.policy.name.clone();
    let live = (!a.quiet).then(crate::render::live);
    let f = cordon_session::engine::run(p, live).map_err(|e| anyhow::anyhow!("{e}"))?;
    tm("session over");
    if timing::enabled() {
        // cordon's own CPU (every thread: supervisor, sensor reader, audit writer, proxy) apart from
        // the session's, which the benchmarks need to tell the sensor's cost from the workload's noise.
        let (own, session) = {
            use nix::sys::resource::UsageWho;
            (cpu_ms(UsageWho::RUSAGE_SELF), cpu_ms(UsageWho::RUSAGE_CHILDREN))
        };
        timing::line(&format!("cpu: cordon {own:.1} ms, session {session:.1} ms"));
    }
    crate::render::after(&f, &policy_name, a.quiet, a.verbose, a.monitor || a.events.is_some());
    tm("summary printed");
    if let Some(t) = &ship {
        deliver(t, a.audit.as_deref(), a.quiet, early);
        tm("shipped");
    }
    // The record is sealed and every output closed by the engine: the process exits (main) without
    // freeing the session's plan, policy and rules one allocation at a time.
    let code = f.outcome.exit_code;
    std::mem::forget(f);
    tm("exit");
    Ok(code)
}

/// The audit log a run writes: --audit, or the default.
fn audit_db(audit: Option<&std::path::Path>) -> PathBuf {
    match audit {
        Some(p) => cordon_audit::files::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
        None => cordon_audit::default_path(),
    }
}

/// Ships the log after the session (`early`: records shipped as it started); a failure is said,
/// never the session's exit status.
fn deliver(t: &super::audit::ship::Target, audit: Option<&std::path::Path>, quiet: bool, early: u64) {
    let db = audit_db(audit);
    match super::audit::ship::ship(&db, t, 5000) {
        Ok(s) if !quiet => {
            eprintln!("cordon: shipped {} record(s) to {}", early + s.accepted, t.server());
        }
        Ok(_) => {}
        Err(e) => eprintln!(
            "cordon: the session's record was NOT delivered to {}: {e:#}\n  it stays in the audit log {}; `cordon audit ship --server {} --server-token-file FILE` delivers it",
            t.server(),
            db.display(),
            t.server()
        ),
    }
}
