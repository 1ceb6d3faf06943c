//! Off the ingest path: a stored batch's new records are offered to a bounded queue (never waiting:
//! when it is full they are dropped and counted); one thread, at a lower CPU priority than the
//! server's, maps them to OTLP and sends them. A failed request is counted and its records are
//! dropped: nothing is retried, so a down collector costs the server nothing but the attempt.

use super::export::{self, Failure, Target};
use super::map::Mapper;
use crate::metrics::{Metrics, Reason};
use cordon_audit::Record;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Batches waiting at most, and records in them at most: beyond either, new ones are dropped.
const MAX_BATCHES: usize = 1024;
const MAX_RECORDS: usize = 200_000;
/// Records gathered into one pair of requests (traces, logs) at most.
const PER_REQUEST: usize = 10_000;

struct Job {
    node: String,
    records: Vec<Record>,
}

pub struct Exporter {
    tx: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Exporter {
    /// Starts the exporting thread.
    pub fn start(target: Target, metrics: Arc<Metrics>) -> std::io::Result<Exporter> {
        let (tx, rx) = sync_channel(MAX_BATCHES);
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = Worker { target, metrics: metrics.clone(), queued: queued.clone(), logged: HashSet::new() };
        std::thread::Builder::new().name("cordon-otlp".into()).spawn(move || worker.run(rx))?;
        Ok(Exporter { tx, queued, metrics })
    }

    /// Queues a stored batch's new records, or drops and counts them: never waits.
    pub fn offer(&self, node: &str, records: Vec<Record>) {
        let n = records.len();
        if n == 0 {
            return;
        }
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > MAX_RECORDS {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return self.drop_records("queue_full", n);
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Job { node: node.to_string(), records })
        {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.drop_records("queue_full", n);
        }
    }

    fn drop_records(&self, reason: &str, n: usize) {
        self.metrics.otlp_dropped.get_or_create(&Reason { reason: reason.into() }).inc_by(n as u64);
    }
}

struct Worker {
    target: Target,
    metrics: Arc<Metrics>,
    queued: Arc<AtomicUsize>,
    /// Failure kinds already logged (each once: a down collector must not flood the log).
    logged: HashSet<&'static str>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        if let Err(e) = crate::sys::lower_priority() {
            eprintln!("cordon server: OTLP export runs at the server's priority (setpriority: {e})");
        }
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return eprintln!("cordon server: OTLP export is off: cannot start its runtime: {e}"),
        };
        let mut mapper = Mapper::default();
        // Ends when the server drops its Exporter (the channel closes).
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            let mut n = jobs[0].records.len();
            while n < PER_REQUEST {
                let Ok(job) = rx.try_recv() else { break };
                n += job.records.len();
                jobs.push(job);
            }
            let mut traces = ExportTraceServiceRequest::default();
            let mut logs = ExportLogsServiceRequest::default();
            let (mut n_spans, mut n_logs) = (0, 0);
            for job in &jobs {
                let m = mapper.map(&job.node, &job.records);
                (n_spans, n_logs) = (n_spans + m.n_spans, n_logs + m.n_logs);
                traces.resource_spans.push(m.spans);
                logs.resource_logs.push(m.logs);
            }
            drop(jobs);
            self.queued.fetch_sub(n, Ordering::AcqRel);
            if n_spans > 0 {
                let r = rt.block_on(export::post(&self.target, "traces", traces.encode_to_vec()));
                self.count(r, n_spans);
            }
            if n_logs > 0 {
                let r = rt.block_on(export::post(&self.target, "logs", logs.encode_to_vec()));
                self.count(r, n_logs);
            }
        }
    }

    fn count(&mut self, r: Result<(), Failure>, n: usize) {
        match r {
            Ok(()) => {
                self.metrics.otlp_exported.inc_by(n as u64);
            }
            Err(e) => {
                let reason = Reason { reason: "export_failed".into() };
                self.metrics.otlp_dropped.get_or_create(&reason).inc_by(n as u64);
                if self.logged.insert(e.kind()) {
                    eprintln!(
                        "cordon server: OTLP export to {} failed ({e}): its records are dropped and counted (cordon_server_otlp_records_dropped_total{{reason=\"export_failed\"}}); this kind of failure is not logged again",
                        self.target.endpoint.base()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More records than the queue holds: dropped at once and counted, nothing waits.
    #[test]
    fn a_batch_beyond_the_queue_is_dropped_and_counted_not_waited_for() {
        let metrics = Arc::new(Metrics::default());
        let endpoint = super::super::cli::endpoint("http://127.0.0.1:9").expect("endpoint");
        let target = Target { endpoint, headers: vec![], tls: None };
        let exporter = Exporter::start(target, metrics.clone()).expect("start");
        let r = Record {
            seq: 1,
            session: "s".into(),
            kind: "sensor".into(),
            ts_ms: 1,
            body: "{}".into(),
            prev: vec![],
            hash: vec![],
        };
        let t = std::time::Instant::now();
        exporter.offer("n", vec![r; MAX_RECORDS + 1]);
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let full = metrics.otlp_dropped.get_or_create(&Reason { reason: "queue_full".into() }).get();
        assert_eq!(full, MAX_RECORDS as u64 + 1);
        assert_eq!(exporter.queued.load(Ordering::Acquire), 0);
    }
}
