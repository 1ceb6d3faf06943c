//! The fleet's store: PostgreSQL, which several servers may share. A few connections (each request
//! takes a free one, so readers do not queue behind an ingest), every write a transaction that
//! takes a transaction-scoped advisory lock on what it changes (a node's chain, an identity's
//! versions): two servers ingesting one node's batches judge and write one after the other, each
//! seeing the chain the other committed. Commits are synchronous (PostgreSQL's default): an
//! acknowledged batch is on the database's disk. The SQL of writes is in pg_write.rs.

use crate::auth::Role;
use crate::ingest::{Checked, Verdict};
use crate::pg_url::{hint, redact};
use crate::pg_write;
use crate::policies::{PolicyRow, StaleRow};
use crate::store::{
    AlertRow, NodeRow, Page, PoolRow, RefusalCount, RefusalRow, SessionFilter, SessionRow, Store, StoreError,
    StoredRecord,
};
use cordon_audit::served::ServedPolicy;
use ed25519_dalek::SigningKey;
use postgres::{Client, NoTls, Row};
use std::sync::Mutex;

/// Connections kept: enough that the dashboard reads beside ingest, few enough for a fleet of
/// servers on one database (max_connections is 100 by default).
const CONNECTIONS: usize = 4;

pub struct PgStore {
    config: postgres::Config,
    /// Plain, or TLS verified against the URL's sslrootcert (pg_tls.rs).
    tls: crate::pg_tls::Tls,
    /// The URL without its password, for errors.
    shown: String,
    slots: Vec<Mutex<Option<Client>>>,
}

/// Time limits the URL did not set: a server cut off while it holds a node's lock must not stall
/// every other server of the database (the lock waits end, the dead transaction is ended, the
/// connection found dead), nor a connect to an unreachable host hang a request.
fn bounded(mut config: postgres::Config) -> postgres::Config {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.keepalives_idle(std::time::Duration::from_secs(30));
    let limits = "-c lock_timeout=10s -c idle_in_transaction_session_timeout=60s";
    let options = match config.get_options() {
        Some(o) => format!("{limits} {o}"),
        None => limits.to_string(),
    };
    config.options(&options);
    config
}

impl PgStore {
    /// Connects (once, so that a wrong URL fails at start) and creates the schema if missing.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let (url, tls) =
            crate::pg_tls::from_url(url).map_err(|message| StoreError::Io { path: shown.clone(), message })?;
        let config: postgres::Config = url.parse().map_err(|e: postgres::Error| StoreError::Io {
            path: shown.clone(),
            message: format!("not a PostgreSQL URL: {e}\n  hint: postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
        })?;
        let config = bounded(config);
        let store = PgStore { config, tls, shown, slots: (0..CONNECTIONS).map(|_| Mutex::new(None)).collect() };
        store.with(pg_write::create_schema)?;
        Ok(store)
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let connected = match &self.tls {
            crate::pg_tls::Tls::Plain => self.config.connect(NoTls),
            crate::pg_tls::Tls::Verified { connector, .. } => self.config.connect(connector.clone()),
        };
        connected.map_err(|e| StoreError::Io { path: self.shown.clone(), message: self.why(&e) })
    }

    /// A failed connection's hint, naming the roots when the certificate did not verify and TLS
    /// when the server turned a plain connection away.
    fn why(&self, e: &postgres::Error) -> String {
        let said = e.as_db_error().map_or_else(|| chain(e), |d| d.message().to_string());
        let lower = said.to_lowercase();
        match &self.tls {
            // The server asks for a client certificate (pg_hba.conf `cert`), or judged the one sent.
            crate::pg_tls::Tls::Verified { client, .. }
                if lower.contains("client certificate")
                    || lower.contains("certificate authentication failed")
                    // The server's TLS alert about the certificate this side sent.
                    || (client.is_some() && lower.contains("received fatal alert")) =>
            {
                let sent = client.as_deref().map_or("none was sent".to_string(), |c| format!("sslcert={c} was sent"));
                format!("{said}\n  hint: the server wants a client certificate signed by its ssl_ca_file whose common name is the URL's user ({sent}): add sslcert=CERT&sslkey=KEY")
            }
            crate::pg_tls::Tls::Verified { roots, .. } if lower.contains("certificate") => format!(
                "{said}\n  hint: the server's certificate must be signed by a CA in sslrootcert={roots} and name the URL's host"
            ),
            crate::pg_tls::Tls::Plain if said.contains("no encryption") || said.contains("SSL off") => format!(
                "{said}\n  hint: the server lets this connection in only over TLS: add sslmode=verify-full&sslrootcert=CA.pem to the URL"
            ),
            _ => hint(&self.config, e),
        }
    }

    /// Runs `f` on a free connection (or waits for one), reconnecting one the server closed.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        let mut guard = self.slots.iter().find_map(|s| s.try_lock().ok()).unwrap_or_else(|| {
            // All busy: wait on one chosen at random (a fresh RandomState each call), so that
            // waiters spread out over the slots.
            let n = std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                std::thread::current().id(),
            );
            self.slots[n as usize % CONNECTIONS].lock().unwrap_or_else(|p| p.into_inner())
        });
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(self.connect()?);
        }
        let client = guard.as_mut().expect("just connected");
        f(client).map_err(|source| StoreError::Pg { url: self.shown.clone(), source })
    }

    fn rows<T>(
        &self,
        q: &str,
        p: &[&(dyn postgres::types::ToSql + Sync)],
        map: fn(&Row) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.with(|c| Ok(c.query(q, p)?.iter().map(map).collect()))
    }
}

/// The error and its causes, `: `-joined (a TLS failure's reason is two causes down).
fn chain(e: &postgres::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// A sync client closes its connection on its own runtime, which panics when dropped on a thread
/// inside tokio's (the server's shutdown): the clients are closed on a thread of their own.
impl Drop for PgStore {
    fn drop(&mut self) {
        let clients: Vec<Client> =
            self.slots.iter_mut().filter_map(|s| s.get_mut().unwrap_or_else(|p| p.into_inner()).take()).collect();
        let _ = std::thread::spawn(move || drop(clients)).join();
    }
}

const COLS: &str = "node, session, started_ms, ended_ms, records, start, outcome, exit_code, denials, alerts, sealed";

fn session_row(r: &Row) -> SessionRow {
    SessionRow {
        node: r.get(0),
        session: r.get(1),
        started_ms: r.get(2),
        ended_ms: r.get(3),
        records: r.get(4),
        start: r.get::<_, Option<String>>(5).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default(),
        outcome: r.get(6),
        exit_code: r.get(7),
        denials: r.get(8),
        alerts: r.get(9),
        sealed: r.get(10),
    }
}

impl Store for PgStore {
    fn add_token(&self, sha256: &[u8], role: Role, name: &str, now_ms: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO tokens (sha256, role, name, created_ms) VALUES ($1, $2, $3, $4)",
                &[&sha256, &role.as_str(), &name, &now_ms],
            )
            .map(|_| ())
        })
    }

    fn token(&self, sha256: &[u8]) -> Result<Option<(Role, String)>, StoreError> {
        let row = self.with(|c| c.query_opt("SELECT role, name FROM tokens WHERE sha256 = $1", &[&sha256]))?;
        Ok(row.and_then(|r| Some((Role::parse(r.get(0))?, r.get(1)))))
    }

    fn ingest(&self, batch: &Checked, now_ms: i64) -> Result<Verdict, StoreError> {
        self.with(|c| pg_write::ingest(c, batch, now_ms))
    }

    fn sessions(&self, f: &SessionFilter, limit: usize) -> Result<Vec<SessionRow>, StoreError> {
        let q = format!(
            "SELECT {COLS} FROM sessions WHERE ($1::text IS NULL OR node = $1) AND ($2::text IS NULL OR ($2 = 'unfinished' AND outcome IS NULL) OR outcome = $2) AND ($3::bigint IS NULL OR started_ms >= $3) AND ($4::bigint IS NULL OR started_ms < $4) ORDER BY started_ms DESC, node, session LIMIT $5"
        );
        self.rows(&q, &[&f.node, &f.outcome, &f.since_ms, &f.until_ms, &(limit as i64)], session_row)
    }

    fn session(&self, id: &str, page: Page) -> Result<Vec<(SessionRow, Vec<StoredRecord>)>, StoreError> {
        self.with(|c| {
            let rows: Vec<SessionRow> =
                c.query(&format!("SELECT {COLS} FROM sessions WHERE session = $1 ORDER BY node"), &[&id])?.iter().map(session_row).collect();
            let st = c.prepare(
                "SELECT seq, kind, ts_ms, payload FROM records WHERE session = $1 AND node = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            )?;
            let mut out = vec![];
            for row in rows {
                let recs = c
                    .query(&st, &[&id, &row.node, &page.after, &(page.limit as i64 + 1)])?
                    .iter()
                    .map(|r| StoredRecord { seq: r.get(0), kind: r.get(1), ts_ms: r.get(2), payload: r.get(3) })
                    .collect();
                out.push((row, recs));
            }
            Ok(out)
        })
    }

    fn refusals(&self, limit: usize) -> Result<Vec<RefusalRow>, StoreError> {
        self.rows(
            "SELECT ts_ms, node, reason, detail, first_seq, last_seq, records, sessions FROM refusals ORDER BY id DESC LIMIT $1",
            &[&(limit as i64)],
            |r| RefusalRow {
                ts_ms: r.get(0),
                node: r.get(1),
                reason: r.get(2),
                detail: r.get(3),
                first_seq: r.get(4),
                last_seq: r.get(5),
                records: r.get(6),
                sessions: r.get(7),
            },
        )
    }

    fn refusal_counts(&self) -> Result<Vec<RefusalCount>, StoreError> {
        self.rows(
            "SELECT node, reason, count, first_ms, last_ms FROM refusal_counts ORDER BY last_ms DESC, node, reason",
            &[],
            |r| RefusalCount {
                node: r.get(0),
                reason: r.get(1),
                count: r.get(2),
                first_ms: r.get(3),
                last_ms: r.get(4),
            },
        )
    }

    fn put_policy(
        &self,
        key: &SigningKey,
        identity: &str,
        text: &str,
        author: &str,
        now_ms: i64,
    ) -> Result<(ServedPolicy, usize), StoreError> {
        self.with(|c| pg_write::put_policy(c, key, identity, text, author, now_ms))
    }

    fn policy(&self, identity: &str) -> Result<Option<ServedPolicy>, StoreError> {
        let rows = self.rows(
            "SELECT identity, version, sha256, text, author, created_ms, server_key, signature FROM policies WHERE identity = $1 ORDER BY version DESC LIMIT 1",
            &[&identity],
            |r| ServedPolicy {
                identity: r.get(0),
                version: r.get(1),
                sha256: r.get(2),
                text: r.get(3),
                author: r.get(4),
                created_ms: r.get(5),
                server_key: r.get(6),
                signature: r.get(7),
            },
        )?;
        Ok(rows.into_iter().next())
    }

    fn policy_rows(&self, identity: Option<&str>) -> Result<Vec<PolicyRow>, StoreError> {
        let map = |r: &Row| PolicyRow {
            identity: r.get(0),
            version: r.get(1),
            sha256: r.get(2),
            author: r.get(3),
            created_ms: r.get(4),
            versions: r.get(5),
            stale: r.get(6),
        };
        match identity {
            None => self.rows(
                "SELECT p.identity, p.version, p.sha256, p.author, p.created_ms,
                    (SELECT count(*) FROM policies v WHERE v.identity = p.identity),
                    (SELECT count(*) FROM stale s WHERE s.identity = p.identity)
                 FROM policies p WHERE p.version = (SELECT max(version) FROM policies m WHERE m.identity = p.identity)
                 ORDER BY p.identity",
                &[],
                map,
            ),
            Some(i) => self.rows(
                "SELECT identity, version, sha256, author, created_ms, 0::bigint, 0::bigint FROM policies WHERE identity = $1 ORDER BY version DESC",
                &[&i],
                map,
            ),
        }
    }

    fn stale(&self, limit: usize) -> Result<Vec<StaleRow>, StoreError> {
        self.rows(
            "SELECT t.node, t.session, t.identity, t.ran_version, t.newer_version, t.marked_ms, s.started_ms, s.ended_ms
             FROM stale t JOIN sessions s ON s.node = t.node AND s.session = t.session
             ORDER BY t.marked_ms DESC, t.node, t.session LIMIT $1",
            &[&(limit as i64)],
            |r| StaleRow {
                node: r.get(0),
                session: r.get(1),
                identity: r.get(2),
                ran_version: r.get(3),
                newer_version: r.get(4),
                marked_ms: r.get(5),
                started_ms: r.get(6),
                ended_ms: r.get(7),
            },
        )
    }

    fn stale_count(&self) -> Result<i64, StoreError> {
        Ok(self.rows("SELECT count(*) FROM stale", &[], |r| r.get::<_, i64>(0))?.first().copied().unwrap_or(0))
    }

    fn alerts(&self, limit: usize) -> Result<Vec<AlertRow>, StoreError> {
        self.rows(
            "SELECT node, session, seq, ts_ms, payload FROM records WHERE kind = 'alert' ORDER BY ts_ms DESC, node, seq DESC LIMIT $1",
            &[&(limit as i64)],
            |r| AlertRow {
                node: r.get(0),
                session: r.get(1),
                seq: r.get(2),
                ts_ms: r.get(3),
                body: serde_json::from_str(r.get(4)).unwrap_or_default(),
            },
        )
    }

    fn devbox_claims(&self, limit: usize) -> Result<Vec<crate::devbox_view::Claim>, StoreError> {
        // The claim's fields were taken from the start record when it arrived (pg_write.rs): the
        // payload is text, exactly as hashed, and not every JSON text is a jsonb (\u0000).
        self.rows(
            "SELECT node, started_ms, devbox_snapshot, devbox_latency_ms, devbox_from_pool, devbox_pool_size, devbox_pool_ready FROM sessions WHERE devbox ORDER BY started_ms DESC LIMIT $1",
            &[&(limit as i64)],
            |r| crate::devbox_view::Claim {
                node: r.get(0),
                ts_ms: r.get(1),
                snapshot: r.get::<_, Option<String>>(2).unwrap_or_else(|| "?".into()),
                latency_ms: r.get::<_, Option<f64>>(3).unwrap_or(f64::NAN),
                from_pool: r.get(4),
                pool: crate::devbox_view::pool(r.get(5), r.get(6)),
            },
        )
    }

    fn devbox_pools(&self, limit: usize) -> Result<Vec<PoolRow>, StoreError> {
        self.rows(
            "SELECT node, snapshot, size, ready FROM devbox_pools ORDER BY node, snapshot LIMIT $1",
            &[&(limit as i64)],
            |r| PoolRow { node: r.get(0), snapshot: r.get(1), size: r.get(2), ready: r.get(3) },
        )
    }

    fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.rows(
            "SELECT name, public_key, first_seen_ms, last_seen_ms, tail_seq,
                    (SELECT count(*) FROM sessions WHERE sessions.node = nodes.name),
                    (SELECT coalesce(sum(count), 0)::bigint FROM refusal_counts WHERE refusal_counts.node = nodes.name)
             FROM nodes ORDER BY name",
            &[],
            |r| NodeRow {
                name: r.get(0),
                public_key: r.get(1),
                first_seen_ms: r.get(2),
                last_seen_ms: r.get(3),
                tail_seq: r.get(4),
                sessions: r.get(5),
                refusals: r.get(6),
            },
        )
    }
}
