//! `cordon daemon`: warm pools of devboxes, claimed over a unix socket (docs/devbox.md).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

const LONG: &str = "Hold warm pools of devboxes and hand them out over a unix socket (root).

A pooled devbox has its environment made (an overlay root over the snapshot's code, namespaces, a \
cgroup) and runs nothing of the agent; a claim applies its policy's restrictions (no looser than the \
snapshot's), runs the `ready` probe inside, and answers with the devbox's id. Every request is judged \
by the peer's uid (SO_PEERCRED): root and the --allow-uid users are served, anyone else is refused and \
the refusal logged. SIGTERM or SIGINT removes every devbox, then the daemon exits.

Example:
  sudo cordon daemon --foreground --allow-uid 1000";

#[derive(Args)]
#[command(about = "Hold warm pools of devboxes (root)", long_about = LONG)]
pub struct DaemonArgs {
    /// Stay in the foreground, logging to stderr (the only mode for now: a service manager runs it).
    #[arg(long, required = true)]
    pub foreground: bool,
    /// The socket to listen on.
    #[arg(long, value_name = "PATH", default_value = cordon_devbox::client::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The snapshot store (`cordon devbox build --store`); devboxes are made in DIR/devboxes.
    #[arg(long, value_name = "DIR", default_value = super::devbox::DEFAULT_STORE)]
    pub store: PathBuf,
    /// A user (uid) besides root who may pool, claim and use devboxes (repeatable).
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uid: Vec<u32>,
    /// A user (uid) besides root who may size pools (`cordon devbox pool`), and use the daemon
    /// (repeatable). Other users may claim from pools, not size them.
    #[arg(long = "pool-uid", value_name = "UID")]
    pub pool_uid: Vec<u32>,
    /// The largest pool of one snapshot.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_pool: usize,
    /// The most pooled devboxes, all snapshots together.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_pool_total: usize,
    /// Seconds a client has to send its request (one that connects and sends nothing is dropped).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub io_timeout: f64,
    /// Connections served at once; beyond it a connection is refused at once, naming the bound.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_connections: usize,
    /// The most devboxes one user (other than root) may hold at once, claims under way included;
    /// a claim beyond it is refused, naming the bound.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_claims_per_uid: u32,
    /// Seconds a claim's `ready` probe may run; a probe that takes longer fails the claim.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub probe_timeout: f64,
    /// The audit log each claim is recorded in (a session per claim: its start, every command run
    /// in it with its status, its end). Default: the engine's (as `cordon run`).
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
    /// Ship the audit log to `cordon server` as it is written (--server URL --server-token-file
    /// FILE): a follower (`cordon audit ship --follow`) beside the daemon ships every 2 s and once
    /// more after the daemon ends; what the server did not take stays in the log.
    #[command(flatten)]
    pub ship: super::audit::ship::ServerArgs,
}

/// `secs` as a Duration, or an error naming `flag`.
fn seconds(flag: &str, secs: f64) -> Result<std::time::Duration> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 86400.0) {
        anyhow::bail!("{flag} {secs}: give a number of seconds above 0 and at most 86400\n  hint: {flag} 5");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

pub fn run(a: DaemonArgs) -> Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("cordon daemon needs root (it makes namespaces, cgroups and overlay mounts for every devbox)\n  hint: sudo cordon daemon --foreground");
    }
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find cordon's own binary: {e}"))?;
    let audit = cordon_session::recording::log_path(a.audit.as_deref())?;
    // Started first: a bad --server or token file refuses the daemon before it makes anything.
    let _follower = match super::audit::ship::ship_to(&a.ship) {
        Some(to) => Some(cordon_session::shipping::spawn_follower(&exe, &audit, &to)?),
        None => None,
    };
    cordon_devbox::daemon::run(cordon_devbox::daemon::Options {
        socket: a.socket,
        store: a.store,
        allow_uids: a.allow_uid,
        pool_uids: a.pool_uid,
        max_pool: a.max_pool,
        max_pool_total: a.max_pool_total,
        exe,
        io_timeout: seconds("--io-timeout", a.io_timeout)?,
        max_connections: a.max_connections.max(1),
        probe_timeout: seconds("--probe-timeout", a.probe_timeout)?,
        audit,
        max_claims_per_uid: a.max_claims_per_uid as usize,
    })?;
    Ok(0)
}
