//! cordon-gateway owns `cordon gateway`: one MCP endpoint in front of the configured upstream MCP
//! servers, each started inside its own cordon session (through `cordon supervise`, see
//! cordon_session::supervise) under its own policy. Their tools are served under prefixed names
//! (`SERVER__TOOL`, so none can collide with or shadow another's), every `tools/call` is decided
//! by the server's tool rules (the tool name read from the JSON-RPC body) and recorded in the audit
//! log with the sandbox session it ran in.
//!
//! It does not own the protocol's wire format (the `rmcp` SDK does, behind [`mcp`] alone), the
//! sandbox (cordon-session) or the policy language (cordon-policy).

pub mod cli;
pub mod config;
pub mod decide;
pub mod gateway;
pub mod mcp;
pub mod pin;
pub mod record;
pub mod rules;
pub mod secrets;
pub mod spares;
pub mod tls;
pub mod token;
pub mod upstream;

pub use config::{Config, Server};

/// What can stop the gateway from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The io error is in the text, not a `source`: printed with its chain, it would say it twice.
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    /// The configuration has problems; each names its position.
    #[error("{}", config::render(.0))]
    Config(Vec<cordon_policy::Diagnostic>),
    /// An upstream server did not start (nothing is served then).
    #[error("server `{server}`: {why}")]
    Upstream { server: String, why: String },
    /// The lock file is not one `cordon gateway pin` wrote.
    #[error("the lock file {path}: {why}\n  hint: write it again with `cordon gateway pin --config CONFIG`")]
    Lock { path: String, why: String },
    /// Pinning is on (the default) and the config has no lock file.
    #[error(
        "no lock file {lock} for {config}: the gateway serves only tools whose definitions were pinned\n  \
         hint: `cordon gateway pin --config {config}` pins what the servers serve now (review it first); or \
         set pinning = \"off\" in {config} to serve tools unchecked"
    )]
    NoLock { config: String, lock: String },
    #[error("the audit log: {0}")]
    Audit(#[from] cordon_audit::AuditError),
    /// `--listen ADDR` cannot be served.
    #[error("--listen {addr}: {why}\n  hint: {hint}")]
    Listen { addr: String, why: String, hint: String },
    #[error("MCP on the gateway's stdio: {0}")]
    Serve(String),
    /// require_token: the key tokens are checked with cannot be used.
    #[error("require_token: {0}")]
    Token(#[from] token::TokenError),
    /// The listener's TLS (its files) cannot be set up.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// `[clients.CN]` tables with no listener that asks for client certificates: they would limit
    /// nothing, silently.
    #[error("{config}: its [clients.CN] tables limit callers by their client certificate, and no listener asks for one (--client-ca): they would limit nothing\n  hint: serve with --listen ADDR --tls-cert PEM --tls-key PEM --client-ca CA.pem, or remove the [clients] tables (the stdio client is never limited by them)")]
    Clients { config: String },
}
