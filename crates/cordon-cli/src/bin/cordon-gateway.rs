//! `cordon-gateway`: what `cordon gateway` runs (it execs this binary, installed next to it). Its own
//! binary so that the gateway's async runtime and MCP stack are not loaded by every `cordon run`.
//! Like `cordon`, it serves `cordon-gateway supervise` for the sessions of its upstream servers.

use anyhow::{bail, Result};
use clap::Parser;
use cordon_gateway::cli::{GatewayArgs, GatewayCommand, RunArgs};
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
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find cordon's own binary: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(GatewayCommand::Pin(p)) = a.command {
        let cfg = cordon_gateway::config::load(&p.config)?;
        rt.block_on(cordon_gateway::gateway::run_pin(cfg, &exe, options(p.run)))?;
        return Ok(0);
    }
    if !a.stdio && a.listen.is_none() {
        bail!("say where to serve: --stdio (one client on standard input and output), --listen 127.0.0.1:PORT (MCP's streamable HTTP at /mcp), or both");
    }
    let Some(config) = a.config else { bail!("--config FILE is required") };
    let cfg = cordon_gateway::config::load(&config)?;
    let on = cordon_gateway::gateway::Listeners { stdio: a.stdio, listen: a.listen };
    rt.block_on(cordon_gateway::gateway::run(cfg, &exe, options(a.run), on))?;
    Ok(0)
}

fn options(r: RunArgs) -> cordon_gateway::gateway::Options {
    let audit = match (r.audit, r.no_audit) {
        (_, true) => AuditChoice::Off,
        (Some(p), false) => AuditChoice::Path(p),
        (None, false) => AuditChoice::Default,
    };
    cordon_gateway::gateway::Options { audit, allow_degraded: r.allow_degraded }
}
