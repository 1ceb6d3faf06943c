//! The command line of `cordon gateway`, shared by the `cordon` binary (its help, completions and
//! man page) and the `cordon-gateway` binary that serves (so that `cordon run` does not load the
//! gateway's runtime and MCP stack at every start).

use clap::Args;
use std::path::PathBuf;

pub const LONG: &str = "Serve the MCP servers named in a config file as one MCP server, each upstream server \
running inside its own cordon session under its own policy (default: builtin:mcp-tool: no network, \
read-only workspace, no HOME, tight limits).

Tools are served as SERVER__TOOL, so no server's tool can collide with or shadow another's. Every \
tools/call is decided by the server's tools.allow / tools.deny (a refusal is a tool error naming the \
rule and what would allow it) and recorded in the audit log (`tool_call` records in the gateway's own \
session, each naming the session its server runs in).

Example gateway.toml:
  [servers.files]
  command = [\"mcp-server-filesystem\", \"/srv/docs\"]
  workspace = \"/srv/docs\"
  tools.deny = [\"write_file\", \"edit_file\"]

A client such as Claude Code starts it as its MCP server: `cordon gateway --config gateway.toml --stdio`.
The configuration is checked whole before anything starts (errors name file:line:col and the field).";

#[derive(Args, Debug)]
#[command(about = "Serve MCP servers through one endpoint, each in its own sandbox", long_about = LONG)]
pub struct GatewayArgs {
    /// The gateway's configuration (TOML): [servers.NAME] tables.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Serve MCP on standard input and output, to the one client that started cordon.
    #[arg(long)]
    pub stdio: bool,
    /// The audit log for the calls and the servers' sessions (default: as for `cordon run`).
    #[arg(long, value_name = "PATH", conflicts_with = "no_audit")]
    pub audit: Option<PathBuf>,
    /// Record nothing (neither the calls nor the servers' sessions).
    #[arg(long)]
    pub no_audit: bool,
    /// Start the servers even when the host cannot enforce all of their policies; what is lost is
    /// printed for each.
    #[arg(long)]
    pub allow_degraded: bool,
}
