//! Off the ingest path: a stored batch's new records are offered to a bounded queue (never waiting:
//! when it is full they are dropped and counted); one thread, at a lower CPU priority than the
//! server's, maps them to OTLP and sends them (worker.rs), retrying what the specification calls
//! retryable. At shutdown, [`Exporter::close`] lets it send what is queued for a bounded time.

use super::export::Target;
use super::worker::{Job, Worker};
use crate::metrics::{Metrics, Reason};
use cordon_audit::Record;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Batches waiting at most, and records in them at most: beyond either, new ones are dropped.
const MAX_BATCHES: usize = 1024;
pub(super) const MAX_RECORDS: usize = 200_000;

/// At shutdown, what is queued is sent for at most this long; the rest is dropped and counted.
pub const DRAIN: Duration = Duration::from_secs(10);

/// What the server and the exporting thread share.
pub(super) struct Shared {
    /// Records queued and not yet taken by the worker.
    pub queued: AtomicUsize,
    /// Set by [`Exporter::close`]: when the drain ends.
    deadline: Mutex<Option<Instant>>,
    closing: Condvar,
}

impl Shared {
    /// The drain's end, once the server is closing.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits `wait`, unless the server is closing or starts to meanwhile: then at once (the drain
    /// tries again now rather than spend its seconds asleep on a Retry-After).
    pub fn sleep(&self, wait: Duration) {
        let end = Instant::now() + wait;
        let mut d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        while d.is_none() {
            let now = Instant::now();
            if now >= end {
                return;
            }
            d = self.closing.wait_timeout(d, end - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

pub struct Exporter {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    /// Told once the worker has ended.
    done: Mutex<Receiver<()>>,
}

/// What [`Exporter::close`] saw.
#[derive(Debug, PartialEq)]
pub struct Drained {
    /// The worker ended (else the drain's time ran out with it still sending).
    pub ended: bool,
    /// Records not sent because the drain ended (counted as dropped, reason `shutdown`): those the
    /// worker gave up on and those still queued when it was not waited for longer.
    pub dropped: u64,
}

impl Exporter {
    /// Starts the exporting thread; a request that fails in a way that may pass is tried again up
    /// to `retries` times.
    pub fn start(target: Target, retries: u32, metrics: Arc<Metrics>) -> std::io::Result<Exporter> {
        let (tx, rx) = sync_channel(MAX_BATCHES);
        let (done_tx, done) = std::sync::mpsc::channel();
        let shared =
            Arc::new(Shared { queued: AtomicUsize::new(0), deadline: Mutex::new(None), closing: Condvar::new() });
        let worker = Worker::new(target, retries, metrics.clone(), shared.clone());
        std::thread::Builder::new().name("cordon-otlp".into()).spawn(move || {
            worker.run(rx);
            let _ = done_tx.send(());
        })?;
        Ok(Exporter { tx, shared, metrics, done: Mutex::new(done) })
    }

    /// Queues a stored batch's new records, or drops and counts them: never waits.
    pub fn offer(&self, node: &str, records: Vec<Record>) {
        let n = records.len();
        if n == 0 {
            return;
        }
        if self.shared.queued.fetch_add(n, Ordering::AcqRel) + n > MAX_RECORDS {
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            return self.drop_records("queue_full", n);
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Job { node: node.to_string(), records })
        {
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            self.drop_records("queue_full", n);
        }
    }

    /// The server is stopping: what is queued is sent (retries included) until `within` has
    /// passed; then the rest is dropped and counted. Returns once the worker has ended (a request
    /// under way is cut at the deadline), or a second after the deadline if it has not.
    pub fn close(&self, within: Duration) -> Drained {
        let deadline = Instant::now() + within;
        *self.shared.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        self.shared.closing.notify_all();
        // Wakes a worker waiting for work; a full queue means it is not waiting.
        let _ = self.tx.try_send(Job { node: String::new(), records: vec![] });
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let ended = done.recv_timeout(within + Duration::from_secs(1)).is_ok();
        // Once the worker has ended nothing takes from the queue: what is left there is counted
        // here (records offered while it ended). While it runs, it counts what it takes.
        let mut dropped = self.metrics.otlp_dropped.get_or_create(&Reason { reason: "shutdown".into() }).get();
        if ended {
            let left = self.shared.queued.swap(0, Ordering::AcqRel);
            self.drop_records("shutdown", left);
            dropped += left as u64;
        } else {
            dropped += self.shared.queued.load(Ordering::Acquire) as u64;
        }
        Drained { ended, dropped }
    }

    fn drop_records(&self, reason: &str, n: usize) {
        self.metrics.otlp_dropped.get_or_create(&Reason { reason: reason.into() }).inc_by(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            seq: 1,
            session: "s".into(),
            kind: "sensor".into(),
            ts_ms: 1,
            body: "{}".into(),
            prev: vec![],
            hash: vec![],
        }
    }

    fn refused() -> Target {
        let endpoint = super::super::cli::endpoint("http://127.0.0.1:9").expect("endpoint");
        Target { endpoint, headers: vec![], tls: None }
    }

    /// More records than the queue holds: dropped at once and counted, nothing waits.
    #[test]
    fn a_batch_beyond_the_queue_is_dropped_and_counted_not_waited_for() {
        let metrics = Arc::new(Metrics::default());
        let exporter = Exporter::start(refused(), 4, metrics.clone()).expect("start");
        let t = std::time::Instant::now();
        exporter.offer("n", vec![record(); MAX_RECORDS + 1]);
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let full = metrics.otlp_dropped.get_or_create(&Reason { reason: "queue_full".into() }).get();
        assert_eq!(full, MAX_RECORDS as u64 + 1);
        assert_eq!(exporter.shared.queued.load(Ordering::Acquire), 0);
    }

    /// Closing with an endpoint that refuses every connection: the retries' waits end at the
    /// drain's deadline, and every record is counted once, as failed or dropped at shutdown.
    #[test]
    fn closing_ends_the_retries_at_the_deadline_and_counts_every_record() {
        let metrics = Arc::new(Metrics::default());
        let exporter = Exporter::start(refused(), 4, metrics.clone()).expect("start");
        for _ in 0..5 {
            exporter.offer("n", vec![record(); 10]);
        }
        let t = Instant::now();
        let d = exporter.close(Duration::from_millis(300));
        assert!(d.ended, "the worker ended within the drain: {d:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "closing waited {:?}", t.elapsed());
        let count = |r: &str| metrics.otlp_dropped.get_or_create(&Reason { reason: r.into() }).get();
        assert_eq!(count("export_failed") + count("shutdown"), 50, "every record counted once");
        assert_eq!(metrics.otlp_exported.get(), 0);
    }
}
