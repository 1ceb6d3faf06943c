//! The command line of `cordon gateway`, shared by the `cordon` binary (its help, completions and
//! man page) and the `cordon-gateway` binary that serves (so that `cordon run` does not load the
//! gateway's runtime and MCP stack at every start).

use clap::{Args, Subcommand};
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
The configuration is checked whole before anything starts (errors name file:line:col and the field).

Tools are pinned: `cordon gateway pin --config gateway.toml` writes each tool's definition and hash \
into gateway.lock; a tool later served with another definition, or not pinned, is not listed and a \
call to it is refused (and alerted on in the audit log). Without a lock file the gateway does not \
start, unless the config says pinning = \"off\".

isolation = \"call\" on a server runs each tools/call in a fresh server in a fresh session (its own cgroup); \
monitor = true (root) watches a server's sessions with the eBPF sensor, and `cordon audit show GW#N` prints \
call N with what it did on the machine. require_token = true makes every HTTP request carry a token from \
`cordon gateway token` (identity recorded on every call, scopes limiting the tools).";

pub const PIN_LONG: &str = "Start the config's servers (each in its sandbox), list their tools and write \
each tool's definition (name, title, description, input and output schema, annotations) and its SHA-256 \
into the lock file next to the config (gateway.toml -> gateway.lock; pretty JSON, keys sorted, so that \
a diff shows what changed). Prints each tool: + new, ~ changed (with the change), = unchanged, - gone. \
Review what it prints before serving: the lock is what the gateway serves from then on.";

#[derive(Args, Debug)]
#[command(about = "Serve MCP servers through one endpoint, each in its own sandbox", long_about = LONG)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    /// The gateway's configuration (TOML): [servers.NAME] tables.
    #[arg(long, value_name = "FILE", required = true)]
    pub config: Option<PathBuf>,
    /// Serve MCP on standard input and output, to the one client that started cordon.
    #[arg(long)]
    pub stdio: bool,
    /// Serve MCP's streamable HTTP at http://ADDR/mcp (a loopback address: 127.0.0.1:PORT, [::1]:PORT;
    /// port 0 picks a free one, printed on stderr). Another address only when every caller is
    /// identified: require_token = true, or --client-ca. With --stdio too, both are served.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve the HTTP listener over TLS (https://ADDR/mcp) with this certificate (PEM; the chain,
    /// leaf first). `cordon gateway ca issue` makes one.
    #[arg(long, value_name = "FILE", requires_all = ["listen", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM; mode 0600).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: every client must present a certificate signed by this CA (PEM), checked in the
    /// handshake; its subject's common name is recorded on each of its calls and, without
    /// require_token, is the caller's identity.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Ship the audit log (the calls and the servers' sessions) to `cordon server` as it is written:
    /// a follower (`cordon audit ship --follow`) beside the gateway ships every 2 s and once more
    /// after the gateway ends; what the server did not take stays in the log.
    #[arg(long, value_name = "URL", requires = "server_token_file", conflicts_with = "no_audit")]
    pub server: Option<String>,
    /// A file holding the server's node token (`cordon server token create --role node`).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub server_token_file: Option<PathBuf>,
    /// The name this node ships under: the name of its node token (default: the host name).
    #[arg(long, value_name = "NAME", requires = "server")]
    pub server_node: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Pin the tools the config's servers serve now (writes the lock file next to the config).
    #[command(long_about = PIN_LONG)]
    Pin(PinArgs),
    /// Mint a caller token (EdDSA JWT) for a gateway with require_token = true.
    #[command(long_about = TOKEN_LONG)]
    Token(TokenArgs),
    /// A local certificate authority for the listener's TLS and its clients' certificates.
    #[command(subcommand)]
    Ca(CaCommand),
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Make a CA: DIR/ca.crt and DIR/ca.key (ECDSA P-256, 10 years; files 0600, never overwritten
    /// without --force). Give ca.crt to --client-ca, and to clients to check the listener with.
    Init {
        /// The directory (made if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Replace an existing CA (every certificate it signed stops verifying).
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate and key signed by the CA (for the listener, --tls-cert/--tls-key, or for
    /// a client), as OUT/NAME.crt and OUT/NAME.key (0600, never overwritten without --force).
    Issue {
        /// Its subject's common name (recorded on a client's calls) and the files' name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The CA's directory (`ca init DIR`).
        #[arg(long, value_name = "DIR", default_value = ".")]
        ca: PathBuf,
        /// A DNS name or IP address the certificate is for (a listener's: what clients connect to,
        /// e.g. --san localhost --san 127.0.0.1). Repeatable.
        #[arg(long, value_name = "NAME|IP")]
        san: Vec<String>,
        /// Where the files go (default: the CA's directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

pub const TOKEN_LONG: &str = "Mint a short-lived caller token: an EdDSA (Ed25519) JWT signed with the key kept \
next to the config (gateway.toml -> gateway.key, made with mode 0600 on first use; a key file others can \
read is refused). Printed on stdout. With require_token = true in the config, every request to the HTTP \
listener must carry one (Authorization: Bearer TOKEN); its identity is recorded on every call, and its \
scopes (when given) are the only tools it sees in tools/list and may call. Tokens are never passed to \
the upstream servers.";

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The gateway's configuration (TOML); the key is kept next to it.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Who the token identifies (recorded on every call made with it).
    #[arg(long, value_name = "NAME")]
    pub identity: String,
    /// How long it is valid: e.g. 15m, 1h, 8h (at most 30 days).
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub ttl: String,
    /// A tool it may list and call, as the gateway serves it (SERVER__TOOL, or SERVER__* for every
    /// tool of a server). Repeatable; absent: every tool.
    #[arg(long, value_name = "TOOL")]
    pub scope: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PinArgs {
    /// The gateway's configuration (TOML); the lock file is written next to it.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

/// How the servers are run (serving or pinning).
#[derive(Args, Debug)]
pub struct RunArgs {
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
