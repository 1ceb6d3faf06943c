//! The audit writer: sensor events streamed into the session's record while it runs, in
//! hash-chained batches on their own thread, so a crash of cordon loses at most the last fraction of
//! a second (never a committed event), and a database that refuses a batch sends it to the recovery
//! spool instead of losing it.

use cordon_schema::RecordKind;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why sensor events are not all in the log.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The log could not be opened for the sensor's batches (nothing ran yet).
    #[error("audit: {0}")]
    Open(#[from] cordon_audit::AuditError),
    /// The writer thread could not be started.
    #[error("audit thread: {0}")]
    Thread(#[source] std::io::Error),
    /// Batches the database refused: each kept in the recovery spool, or lost (and said so).
    #[error("{}", .0.join("; "))]
    Spooled(Vec<String>),
    #[error("the audit writer panicked")]
    Panicked,
}

/// Streams sensor events into the audit record while the session runs, in batches, so a crash of
/// cordon loses at most the last fraction of a second (never a committed event).
pub struct AuditWriter {
    /// Chunks of (time in ms, the event as JSON).
    pub(crate) tx: mpsc::Sender<Vec<(i64, String)>>,
    pub(crate) thread: std::thread::JoinHandle<Result<u64, WriterError>>,
}

impl AuditWriter {
    /// `anchor`: the session's start record; no batch is chained onto a log that lost it.
    pub fn start(path: PathBuf, session: String, anchor: Option<(i64, Vec<u8>)>) -> Result<AuditWriter, WriterError> {
        let mut store = cordon_audit::Store::open(&path)?;
        if let Some((seq, hash)) = anchor {
            store.set_anchor(seq, hash);
        }
        // Batches: a crash of cordon loses none that was committed; a power loss may lose the last.
        store.set_durability(cordon_audit::Durability::Batch)?;
        let (tx, rx) = mpsc::channel::<Vec<(i64, String)>>();
        let thread = std::thread::Builder::new()
            .name("cordon-audit".into())
            .spawn(move || {
                let mut n = 0u64;
                let mut batch: Vec<(i64, String)> = vec![];
                let mut last = Instant::now();
                let mut spooled: Vec<String> = vec![];
                loop {
                    let got = rx.recv_timeout(Duration::from_millis(200));
                    let done = matches!(got, Err(mpsc::RecvTimeoutError::Disconnected));
                    if let Ok(chunk) = got {
                        batch.extend(chunk);
                        while let Ok(chunk) = rx.try_recv() {
                            batch.extend(chunk);
                            if batch.len() >= 20_000 {
                                break;
                            }
                        }
                    }
                    if !batch.is_empty()
                        && (done || batch.len() >= 5_000 || last.elapsed() >= Duration::from_millis(200))
                    {
                        // Up to 1000 events per record (kind `sensor`, body a JSON array): the chain
                        // covers every byte, and a record per event would cost more than the sensor.
                        let records: Vec<(&str, i64, String)> = batch
                            .chunks(1000)
                            .map(|c| {
                                let mut body =
                                    String::with_capacity(c.iter().map(|x| x.1.len() + 1).sum::<usize>() + 2);
                                body.push('[');
                                for (i, x) in c.iter().enumerate() {
                                    if i > 0 {
                                        body.push(',');
                                    }
                                    body.push_str(&x.1);
                                }
                                body.push(']');
                                (RecordKind::Sensor.as_str(), c[0].0, body)
                            })
                            .collect();
                        if let Err(e) = store.append_raw(&session, &records) {
                            // Never dropped: the batch waits in the recovery spool for the next open.
                            let recs: Vec<_> = records
                                .iter()
                                .map(|(k, t, b)| cordon_audit::spool::SpoolRecord {
                                    kind: k.to_string(),
                                    ts_ms: *t,
                                    body: b.clone(),
                                })
                                .collect();
                            match cordon_audit::spool::write(store.path(), &session, &recs, false, &e.to_string()) {
                                Ok(f) => spooled.push(format!(
                                    "{} events ({e}) kept in the recovery spool {}",
                                    batch.len(),
                                    f.display()
                                )),
                                Err(s) => spooled.push(format!("{} events LOST: {e}; {s}", batch.len())),
                            }
                        } else {
                            n += batch.len() as u64;
                        }
                        batch.clear();
                        last = Instant::now();
                    }
                    if done {
                        if std::env::var_os("CORDON_TIMING").is_some() {
                            let cpu = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
                                .map(|t| t.tv_sec() as f64 * 1e3 + t.tv_nsec() as f64 / 1e6)
                                .unwrap_or(f64::NAN);
                            crate::timing::line(&format!("audit writer: {n} events, {cpu:.1} ms CPU"));
                        }
                        return if spooled.is_empty() { Ok(n) } else { Err(WriterError::Spooled(spooled)) };
                    }
                }
            })
            .map_err(WriterError::Thread)?;
        Ok(AuditWriter { tx, thread })
    }
}

pub(crate) const CHUNK: usize = 512;

/// Hands events to the audit writer in chunks (a wake-up per event would cost more than the event);
/// what is pending goes when the chunk fills, every 100 ms, and when the sensor drops its sink.
pub(crate) struct Chunked {
    pub(crate) tx: mpsc::Sender<Vec<(i64, String)>>,
    pub(crate) pending: Vec<(i64, String)>,
    pub(crate) last: Instant,
}

impl Chunked {
    pub(crate) fn push(&mut self, ts: i64, json: String) {
        self.pending.push((ts, json));
        if self.pending.len() >= CHUNK || self.last.elapsed() >= Duration::from_millis(100) {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.tx.send(std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK)));
        }
        self.last = Instant::now();
    }
}

impl Drop for Chunked {
    fn drop(&mut self) {
        self.flush();
    }
}
