//! `cordon-server`'s two jobs: create a token, or serve (one tokio runtime, graceful shutdown on
//! SIGINT/SIGTERM that lets requests in flight finish: an acknowledged batch is always stored).

use crate::auth::{digest, new_token};
use crate::cli::{self, Database, ServerArgs, ServerCommand, TokenCommand};
use crate::http::{router, App};
use crate::listen::{self, Limits};
use crate::metrics::Metrics;
use crate::store::{SqliteStore, Store, StoreError};
use crate::store_pg::PgStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn run(a: ServerArgs) -> Result<(), ServeError> {
    if let Some(ServerCommand::Token(TokenCommand::Create { role, name, database })) = a.command {
        let store = open(&cli::database(&database).map_err(ServeError::Usage)?)?;
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(ServeError::Usage("--name: 1 to 256 bytes, no control characters".into()));
        }
        let token = new_token().map_err(|source| ServeError::Io { what: "reading /dev/urandom".into(), source })?;
        store.add_token(&digest(&token), role, &name, crate::now_ms())?;
        println!("{token}");
        eprintln!("cordon server: created a {} token for `{name}`; it is shown only this once", role.as_str());
        return Ok(());
    }
    let Some(database) = a.database else {
        return Err(ServeError::Usage(
            "--database is required\n  hint: e.g. --database sqlite:/var/lib/cordon/server.db, or postgres://USER:PASSWORD@HOST:PORT/DATABASE for a fleet".into(),
        ));
    };
    if !a.listen.ip().is_loopback() && !a.allow_remote {
        return Err(ServeError::Usage(format!(
            "--listen {}: not a loopback address, and this server speaks plain HTTP: tokens and records would cross the network readable by anyone on the path\n  hint: listen on 127.0.0.1 behind a TLS-terminating proxy, or pass --allow-remote if such a proxy is in front",
            a.listen
        )));
    }
    let db = cli::database(&database).map_err(ServeError::Usage)?;
    let key_file = key_file(&db, a.key)?;
    let store = open(&db)?;
    // The key that signs served policies (made once, 0600).
    let key = cordon_audit::load_or_create(&key_file).map_err(ServeError::Usage)?;
    let metrics = Arc::new(Metrics::default());
    // Said after the listening line (the first line is where the server listens, for scripts).
    let mut exporting = None;
    let otlp = match a.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let target =
                crate::otlp::target(endpoint, a.otlp_headers.into_iter().flat_map(|h| h.0).collect(), a.otlp_ca_file)
                    .map_err(ServeError::Usage)?;
            let url = target.endpoint.url("{traces,logs}");
            let exporter = crate::otlp::Exporter::start(target, a.otlp_retries, metrics.clone())
                .map_err(|source| ServeError::Io { what: "starting the OTLP exporter".into(), source })?;
            exporting = Some(format!("cordon server: exporting records to {url} (OTLP/HTTP)"));
            Some(Arc::new(exporter))
        }
    };
    let exporter = otlp.clone();
    let app = App { store, metrics, key: Arc::new(key), otlp };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServeError::Io { what: "starting the runtime".into(), source })?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .map_err(|source| ServeError::Io { what: format!("--listen {}", a.listen), source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Io { what: "the listener".into(), source })?;
        eprintln!("cordon server: listening on http://{addr}");
        if let Some(line) = exporting {
            eprintln!("{line}");
        }
        let limits = Limits {
            max_connections: a.max_connections as usize,
            header_timeout: Duration::from_secs(a.header_timeout),
            request_timeout: Duration::from_secs(a.request_timeout),
        };
        listen::serve(listener, router(app), limits, shutdown())
            .await
            .map_err(|source| ServeError::Io { what: "serving".into(), source })
    })?;
    if let Some(e) = exporter {
        drain(&e);
    }
    Ok(())
}

/// Sends what the OTLP queue holds before the process ends, for at most [`crate::otlp::DRAIN`],
/// and says what was left (the database holds every record either way).
fn drain(e: &crate::otlp::Exporter) {
    let d = e.close(crate::otlp::DRAIN);
    if d.dropped > 0 {
        eprintln!(
            "cordon server: OTLP export: {} records not sent within the {} s drain at shutdown (the database holds them)",
            d.dropped,
            crate::otlp::DRAIN.as_secs()
        );
    }
}

fn open(db: &Database) -> Result<Arc<dyn Store>, ServeError> {
    Ok(match db {
        Database::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        Database::Postgres(url) => Arc::new(PgStore::open(url)?),
    })
}

/// The policy-signing key's file: --key, else beside a sqlite database. A fleet's servers must
/// sign with one key (nodes check a policy against it), and a PostgreSQL database has no "beside".
fn key_file(db: &Database, key: Option<PathBuf>) -> Result<PathBuf, ServeError> {
    match (key, db) {
        (Some(k), _) if k.extension().is_some_and(|e| e == "key") => Ok(k),
        (Some(k), _) => Err(ServeError::Usage(format!(
            "--key {}: the key's file name ends in .key\n  hint: e.g. --key /etc/cordon/server.key",
            k.display()
        ))),
        (None, Database::Sqlite(path)) => Ok(path.clone()),
        (None, Database::Postgres(_)) => Err(ServeError::Usage(
            "--key PATH.key is required with a PostgreSQL database: the key that signs served policies, the same file on every server of the database\n  hint: e.g. --key /etc/cordon/server.key (made if missing; copy it to the other servers)".into(),
        )),
    }
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
