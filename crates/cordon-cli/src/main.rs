//! The `cordon` binary: argument structs and wiring only. Policy lives in cordon-policy, enforcement
//! in cordon-sandbox.

mod commands;
mod render;
mod sys;

use clap::{CommandFactory, Parser, Subcommand};

const ABOUT: &str = "Run AI agents and the commands they write confined by the Linux kernel.

One declarative policy says what a session may read, write, execute, reach and consume; cordon compiles \
it into Landlock, seccomp, namespaces and cgroups, refuses to start when the host cannot enforce it (unless \
you accept a degraded mode, which is then reported), and tells you what was denied.";

#[derive(Parser)]
#[command(name = "cordon", version, about = "Run AI agents confined by the Linux kernel", long_about = ABOUT)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Run(Box<commands::run::RunArgs>),
    Init(commands::init::InitArgs),
    Hook(commands::hook::HookArgs),
    Doctor(commands::doctor::DoctorArgs),
    Monitor(commands::monitor::MonitorArgs),
    Gateway(cordon_gateway::cli::GatewayArgs),
    Server(cordon_server::cli::ServerArgs),
    #[command(subcommand)]
    Policy(commands::policy::PolicyCmd),
    #[command(subcommand)]
    Audit(commands::audit::AuditCmd),
    #[command(subcommand)]
    Rules(commands::rules::RulesCmd),
    #[command(subcommand)]
    Devbox(commands::devbox::DevboxCmd),
    Daemon(commands::daemon::DaemonArgs),
    /// Print shell completions (bash, zsh, fish, elvish or powershell) to standard output, e.g.
    /// `cordon completions bash > /etc/bash_completion.d/cordon`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, e.g. `cordon man | man -l -`.
    Man,
}

/// The man page: cordon(1) with every subcommand's page after it, from the same definitions as
/// --help.
fn man() -> anyhow::Result<i32> {
    use std::io::Write;
    let cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(out)?;
        clap_mangen::Man::new(sub.clone()).title(format!("cordon-{}", sub.get_name())).render(&mut out)?;
    }
    Ok(0)
}

fn main() {
    // `cordon supervise`: one session for a service, its spec (JSON) on fd 3, reports on fd 4
    // (cordon_session::supervise). Internal: not a clap verb, so no help, completion or man page
    // offers it.
    if std::env::args_os().nth(1).is_some_and(|a| a == "supervise") {
        std::process::exit(cordon_session::supervise::serve());
    }
    // `cordon devbox-hold` (one pooled devbox of `cordon daemon`: cordon_devbox::holder) and
    // `cordon devbox-exec-server` (the command a claim runs inside it): internal, like supervise.
    match std::env::args_os().nth(1) {
        Some(a) if a == "devbox-hold" => std::process::exit(cordon_devbox::holder::serve()),
        Some(a) if a == "devbox-exec-server" => std::process::exit(cordon_devbox::exec_server::serve()),
        _ => {}
    }
    let cli = Cli::parse();
    // `run`, `monitor`, `gateway` and `server` keep SIGPIPE ignored: a closed output must not cut the audit record short.
    if !matches!(cli.cmd, Cmd::Run(_) | Cmd::Monitor(_) | Cmd::Gateway(_) | Cmd::Server(_) | Cmd::Daemon(_)) {
        sys::default_sigpipe();
    }
    let code = match cli.cmd {
        Cmd::Run(a) => commands::run::run(*a),
        Cmd::Init(a) => commands::init::run(a),
        Cmd::Hook(a) => commands::hook::run(a),
        Cmd::Doctor(a) => commands::doctor::run(a),
        Cmd::Monitor(a) => commands::monitor::run(a),
        Cmd::Gateway(_) => commands::gateway::exec(),
        Cmd::Server(_) => commands::server::exec(),
        Cmd::Policy(p) => commands::policy::run(p),
        Cmd::Audit(a) => commands::audit::run(a),
        Cmd::Rules(r) => commands::rules::run(r),
        Cmd::Devbox(d) => commands::devbox::run(d),
        Cmd::Daemon(a) => commands::daemon::run(a),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cordon", &mut std::io::stdout());
            Ok(0)
        }
        Cmd::Man => man(),
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("cordon: error: {e:#}");
            std::process::exit(125);
        }
    }
}
