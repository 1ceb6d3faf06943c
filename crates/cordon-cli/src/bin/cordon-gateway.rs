//! `cordon-gateway`: what `cordon gateway` runs (it execs this binary, installed next to it). Its own
//! binary so that the gateway's async runtime and MCP stack are not loaded by every `cordon run`.
//! Like `cordon`, it serves `cordon-gateway supervise` for the sessions of its upstream servers.

use anyhow::{bail, Result};
use clap::Parser;
use cordon_gateway::cli::{CaCommand, GatewayArgs, GatewayCommand, RunArgs, TokenArgs};
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
    if let Some(GatewayCommand::Token(t)) = a.command {
        return token(t);
    }
    if let Some(GatewayCommand::Ca(c)) = a.command {
        let made = match c {
            CaCommand::Init { dir, force } => cordon_gateway::tls::ca_init(&dir, force)?,
            CaCommand::Issue { name, ca, san, out, force } => {
                cordon_gateway::tls::ca_issue(&ca, &name, &san, out.as_ref().unwrap_or(&ca), force)?
            }
        };
        for p in made {
            println!("{}", p.display());
        }
        return Ok(0);
    }
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
    let tls = match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => Some(cordon_gateway::tls::TlsFiles { cert, key, client_ca: a.client_ca }),
        _ => None,
    };
    let on = cordon_gateway::gateway::Listeners { stdio: a.stdio, listen: a.listen, tls };
    let opts = options(a.run);
    // Started before the servers: a bad --server or token file refuses the gateway first.
    let _follower = match (a.server, a.server_token_file, &opts.audit) {
        (Some(server), Some(token_file), audit) => {
            let log = match audit {
                AuditChoice::Path(p) => cordon_audit::files::absolute(p)?,
                _ => cordon_audit::default_path(),
            };
            let to = cordon_session::shipping::ShipTo { server, token_file, node: a.server_node };
            Some(cordon_session::shipping::spawn_follower(&exe.with_file_name("cordon"), &log, &to)?)
        }
        _ => None,
    };
    rt.block_on(cordon_gateway::gateway::run(cfg, &exe, opts, on))?;
    Ok(0)
}

/// `cordon gateway token`: checks the request against the config, mints, prints the token.
fn token(t: TokenArgs) -> Result<i32> {
    use cordon_gateway::config::SEP;
    let cfg = cordon_gateway::config::load(&t.config)?;
    if t.identity.is_empty() || t.identity.len() > 128 || t.identity.chars().any(char::is_control) {
        bail!(
            "--identity `{}`: a name of 1 to 128 characters without control characters, e.g. --identity ci-bot",
            t.identity.escape_debug()
        );
    }
    if cordon_gateway::token::RESERVED.contains(&t.identity.as_str()) {
        bail!(
            "--identity {}: reserved: the gateway records callers without a token as `http` and `stdio`, so a token \
             may not carry either name (its calls would be mistaken for theirs, and share their rate counts)\n  \
             hint: name the caller, e.g. --identity ci-bot",
            t.identity
        );
    }
    let ttl = cordon_policy::units::parse_duration(&t.ttl)
        .map_err(|e| anyhow::anyhow!("--ttl {}: {e}\n  hint: a duration such as 15m, 1h or 8h", t.ttl))?;
    if ttl.is_zero() || ttl > std::time::Duration::from_secs(30 * 86400) {
        bail!("--ttl {}: a token lives more than 0 and at most 30 days\n  hint: mint short-lived tokens (15m, 1h) and mint again", t.ttl);
    }
    for s in &t.scope {
        let server = s.split_once(SEP).map(|(a, _)| a);
        if !server.is_some_and(|n| cfg.servers.iter().any(|x| x.name == n)) {
            let names: Vec<&str> = cfg.servers.iter().map(|x| x.name.as_str()).collect();
            bail!("--scope {s}: not a tool of this gateway: a scope is SERVER{SEP}TOOL or SERVER{SEP}* with a server of {} ({})", t.config.display(), names.join(", "));
        }
    }
    let path = cordon_gateway::token::key_path(&t.config);
    let key = cordon_gateway::token::load_key(&path, true)?;
    let scopes = (!t.scope.is_empty()).then(|| t.scope.clone());
    let now = cordon_gateway::token::now_s();
    println!("{}", cordon_gateway::token::mint(&key, &t.identity, ttl, scopes, now));
    if !cfg.require_token {
        eprintln!(
            "cordon gateway: note: {} does not say require_token = true: the listener does not ask for tokens",
            t.config.display()
        );
    }
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
