//! `cordon-gateway`: what `cordon gateway` runs (it execs this binary, installed next to it). Its own
//! binary so that the gateway's async runtime and MCP stack are not loaded by every `cordon run`.
//! Like `cordon`, it serves `cordon-gateway supervise` for the sessions of its upstream servers.

use anyhow::{bail, Result};
use clap::Parser;
use cordon_gateway::cli::GatewayArgs;
use cordon_session::spec::AuditChoice;

#[derive(Parser)]
#[command(name = "cordon gateway", version)]
struct Cli {
    #[command(flatten)]
    args: GatewayArgs,
}

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "supervise") {
        std::process::exit(cordon_session::supervise::serve());
    }
    match run(Cli::parse().args) {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("cordon: error: {e:#}");
            std::process::exit(125);
        }
    }
}

pub fn run(a: GatewayArgs) -> Result<i32> {
    if !a.stdio {
        bail!("say where to serve: --stdio (the only listener so far)");
    }
    let cfg = cordon_gateway::config::load(&a.config)?;
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find cordon's own binary: {e}"))?;
    let audit = match (a.audit, a.no_audit) {
        (_, true) => AuditChoice::Off,
        (Some(p), false) => AuditChoice::Path(p),
        (None, false) => AuditChoice::Default,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let opts = cordon_gateway::gateway::Options { audit, allow_degraded: a.allow_degraded };
    rt.block_on(cordon_gateway::gateway::run_stdio(cfg, &exe, opts))?;
    Ok(0)
}
