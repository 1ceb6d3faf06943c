//! cordon-server owns the central side of the audit: nodes ship stretches of their hash-chained
//! logs, the server verifies each record with cordon-audit's own code against the chain it already
//! holds for that node (and each seal against the node's pinned key), stores what continues the
//! chain in one transaction and records what it refuses. It also owns tokens (who may write, who
//! may read), a server-rendered dashboard and Prometheus metrics. It knows nothing of sandboxes;
//! the `cordon-server` binary (crates/cordon-cli/src/bin) runs it, `cordon server` execs that.

pub mod auth;
pub mod cli;
pub mod devbox_view;
pub mod html;
pub mod http;
pub mod ingest;
pub mod listen;
pub mod metrics;
pub mod otlp;
pub mod pg_tls;
pub mod pg_url;
pub mod pg_write;
pub mod policies;
pub mod policy_pages;
pub mod policy_routes;
pub mod serve;
pub mod store;
pub mod store_pg;
pub mod sys;
pub mod tally;

pub use store::{SqliteStore, Store, StoreError};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
