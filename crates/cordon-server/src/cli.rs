//! `cordon server`'s arguments, parsed by `cordon` (so a usage error reads like any other) and
//! again by the `cordon-server` binary it execs.

use crate::auth::Role;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const LONG: &str = "Serve the central audit: nodes ship their sessions' records (`cordon run --server URL`, `cordon audit ship`), the server verifies every record's hash chain and seal and keeps them; a dashboard and /metrics show them.

Every endpoint needs a token (`cordon server token create`): node tokens write, viewer tokens read, admin tokens do both. The server speaks plain HTTP: it listens on loopback unless --allow-remote (then put a TLS-terminating proxy in front). docs/server.md says what a verified record proves.

Examples:
  cordon server token create --database sqlite:/var/lib/cordon/server.db --role node --name build-7
  cordon server --database sqlite:/var/lib/cordon/server.db --listen 127.0.0.1:8480
  cordon server --database sqlite:/var/lib/cordon/server.db --otlp-endpoint https://otel.example:4318 --otlp-ca-file /etc/cordon/otel-ca.pem";

#[derive(Args, Debug)]
#[command(about = "Serve the central, verified audit and its dashboard", long_about = LONG, args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    /// Address and port to listen on (a loopback address unless --allow-remote).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,
    /// Listen on a non-loopback address (tokens and records then cross the network in plain HTTP:
    /// only behind a TLS-terminating proxy).
    #[arg(long)]
    pub allow_remote: bool,
    /// Where the server keeps what it verified: sqlite:PATH, or postgres://USER:PASSWORD@HOST:PORT/DB
    /// (several servers may share one PostgreSQL database), or @FILE holding either (keeps a
    /// password out of the process list).
    #[arg(long, value_name = "sqlite:PATH|postgres://...")]
    pub database: Option<String>,
    /// The key that signs served policies (a file NAME.key, made if missing): by default beside a
    /// sqlite database; required with PostgreSQL, every server of one database given the same key.
    #[arg(long, value_name = "PATH.key")]
    pub key: Option<PathBuf>,
    /// At most this many connections open at once; the next waits until one closes.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// Close a connection whose request header has not fully arrived within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Answer 408 to a request (its body included) not done within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
    /// Also send what the server stores, as OpenTelemetry (OTLP/HTTP, protobuf), to the collector
    /// at this URL: sessions and gateway tool calls as spans (a tool call linked to the sandbox
    /// session it ran in), every other record as a log record in its session's trace. Sent to
    /// URL/v1/traces and URL/v1/logs from a bounded queue, never delaying ingest: what cannot be
    /// queued or sent is dropped and counted on /metrics (cordon_server_otlp_records_dropped_total).
    /// The database remains the record; the export is a copy.
    #[arg(long, value_name = "URL", value_parser = crate::otlp::cli::endpoint)]
    pub otlp_endpoint: Option<crate::otlp::cli::Endpoint>,
    /// A header sent with every OTLP request, e.g. `Authorization=Bearer TOKEN` (repeatable), or
    /// `@FILE`: the headers in FILE, one KEY=VALUE a line (# starts a comment), which keeps a token
    /// off the command line, where every user of the machine can read it.
    #[arg(long = "otlp-header", value_name = "KEY=VALUE|@FILE", requires = "otlp_endpoint", value_parser = crate::otlp::cli::headers)]
    pub otlp_headers: Vec<crate::otlp::cli::Headers>,
    /// The CA certificate(s), PEM, that an https --otlp-endpoint's certificate must chain to
    /// (default: the system's bundle, /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, value_name = "PEM", requires = "otlp_endpoint", value_parser = crate::otlp::cli::ca_file)]
    pub otlp_ca_file: Option<crate::otlp::cli::CaFile>,
    /// Send an OTLP request again, at most this many times, when it failed in a way that may pass
    /// (no connection, no answer within 10 s, 429, 502, 503, 504): after 0.5 s, then twice as
    /// long each time, or as long as the collector's Retry-After asks (at most 30 s). 0: never.
    /// Meanwhile new records queue (bounded); at shutdown the queue is sent for at most 10 s.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "otlp_endpoint", value_parser = clap::value_parser!(u32).range(0..=10))]
    pub otlp_retries: u32,
}

#[derive(Subcommand, Debug)]
pub enum ServerCommand {
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print it once (only its SHA-256 is kept).
    Create {
        /// node: may ship records (as the node NAME); viewer: may read; admin: both.
        #[arg(long, value_enum)]
        role: Role,
        /// The node's name for a node token (records it ships are filed under it), else who holds it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The server's database: sqlite:PATH, postgres://..., or @FILE holding either.
        #[arg(long, value_name = "sqlite:PATH|postgres://...")]
        database: String,
    },
}

/// Which store a `--database` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    Sqlite(PathBuf),
    /// The URL as given (it may hold a password: show it only through `pg_url::redact`).
    Postgres(String),
}

/// `sqlite:PATH` or a `postgres://` / `postgresql://` URL; anything else is named (password
/// hidden) with what is supported.
pub fn database(spec: &str) -> Result<Database, String> {
    if let Some(file) = spec.strip_prefix('@') {
        return database(&spec_file(Path::new(file))?);
    }
    if let Some(p) = spec.strip_prefix("sqlite:").filter(|p| !p.is_empty()) {
        return Ok(Database::Sqlite(PathBuf::from(p)));
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Ok(Database::Postgres(spec.to_string()));
    }
    Err(format!(
        "--database {}: not a database this server knows\n  hint: sqlite:PATH (e.g. sqlite:/var/lib/cordon/server.db) or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
        crate::pg_url::redact(spec)
    ))
}

/// `--database @FILE`: the spec read from a file, so that a PostgreSQL password is not in the
/// process list (`ps`, /proc/PID/cmdline, `systemctl status`). A regular file, at most 4 KiB.
fn spec_file(file: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| format!("--database @{}: cannot read it: {e}", file.display());
    let meta = std::fs::metadata(file).map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("--database @{}: not a regular file\n  hint: a file holding one line, postgres://USER:PASSWORD@HOST:PORT/DATABASE (mode 0600)", file.display()));
    }
    let mut text = String::new();
    std::fs::File::open(file).and_then(|f| f.take(4096).read_to_string(&mut text)).map_err(cannot)?;
    let spec = text.trim();
    if spec.starts_with('@') || spec.is_empty() {
        return Err(format!(
            "--database @{}: holds no database (one line: sqlite:PATH or postgres://...)",
            file.display()
        ));
    }
    Ok(spec.to_string())
}

#[cfg(test)]
mod spec_file_tests {
    use super::*;

    #[test]
    fn a_database_spec_is_read_from_a_file_bounded_and_never_from_a_fifo_or_another_at() {
        let dir = std::env::temp_dir().join(format!("cordon-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("db.url");
        std::fs::write(&f, "postgres://u:s3cret@h/db\n").expect("write");
        assert_eq!(database(&format!("@{}", f.display())), Ok(Database::Postgres("postgres://u:s3cret@h/db".into())));
        std::fs::write(&f, "@/etc/passwd\n").expect("write");
        assert!(database(&format!("@{}", f.display())).is_err_and(|e| e.contains("holds no database")));
        assert!(database("@/dev/zero").is_err_and(|e| e.contains("not a regular file")));
        assert!(database(&format!("@{}", dir.join("none").display())).is_err_and(|e| e.contains("cannot read it")));
        std::fs::write(&f, "mysql://u:s3cret@h/db").expect("write");
        let e = database(&format!("@{}", f.display())).expect_err("refused");
        assert!(!e.contains("s3cret"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
