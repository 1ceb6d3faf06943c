//! The `cordon` binary: argument structs and wiring only. Policy lives in cordon-policy, enforcement
//! in cordon-sandbox.

mod commands;
mod render;
mod sys;

use clap::{Parser, Subcommand};

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
    Run(commands::run::RunArgs),
    Doctor(commands::doctor::DoctorArgs),
    Monitor(commands::monitor::MonitorArgs),
    #[command(subcommand)]
    Policy(commands::policy::PolicyCmd),
    #[command(subcommand)]
    Audit(commands::audit::AuditCmd),
    #[command(subcommand)]
    Rules(commands::rules::RulesCmd),
    /// One session for a service: reads its spec (JSON) on fd 3 and reports on fd 4 (internal; see
    /// cordon_session::supervise).
    #[command(hide = true)]
    Supervise,
}

fn main() {
    let cli = Cli::parse();
    // `run` and `monitor` keep SIGPIPE ignored: a closed output must not cut the audit record short.
    if !matches!(cli.cmd, Cmd::Run(_) | Cmd::Monitor(_) | Cmd::Supervise) {
        sys::default_sigpipe();
    }
    let code = match cli.cmd {
        Cmd::Run(a) => commands::run::run(a),
        Cmd::Doctor(a) => commands::doctor::run(a),
        Cmd::Monitor(a) => commands::monitor::run(a),
        Cmd::Policy(p) => commands::policy::run(p),
        Cmd::Audit(a) => commands::audit::run(a),
        Cmd::Rules(r) => commands::rules::run(r),
        Cmd::Supervise => Ok(cordon_session::supervise::serve()),
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("cordon: error: {e:#}");
            std::process::exit(125);
        }
    }
}
