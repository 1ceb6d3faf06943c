//! The exporting thread: takes queued batches, maps them to one traces and one logs request, and
//! sends each, trying a retryable failure again after a growing wait (or the receiver's
//! Retry-After). While it waits, new batches queue up behind it (bounded: beyond the bound they are
//! dropped and counted), so a collector that is down costs memory no more than the queue's bound.

use super::export::{self, Failure, Target};
use super::map::Mapper;
use super::queue::Shared;
use crate::metrics::{Metrics, Reason};
use cordon_audit::Record;
use hyper::body::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records gathered into one pair of requests (traces, logs) at most.
const PER_REQUEST: usize = 10_000;
/// The wait before the first retry, doubled before each next one (exponential backoff, as the
/// OTLP specification asks), unless the receiver's Retry-After asks for longer; at most
/// [`MAX_WAIT`] either way.
const FIRST_WAIT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The wait before retry number `tries` (0 for the first), given what the receiver asked for.
fn backoff(tries: u32, asked: Option<Duration>) -> Duration {
    let doubled = FIRST_WAIT.saturating_mul(1 << tries.min(16));
    doubled.max(asked.unwrap_or_default()).min(MAX_WAIT)
}

/// One stored batch's new records; none: [`super::Exporter::close`]'s wake-up.
pub(super) struct Job {
    pub node: String,
    pub records: Vec<Record>,
}

pub(super) struct Worker {
    target: Target,
    /// Tries after the first, at most (--otlp-retries).
    retries: u32,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    /// Failure kinds already logged (each once: a down collector must not flood the log).
    logged: HashSet<&'static str>,
}

impl Worker {
    pub fn new(target: Target, retries: u32, metrics: Arc<Metrics>, shared: Arc<Shared>) -> Worker {
        Worker { target, retries, metrics, shared, logged: HashSet::new() }
    }

    /// Until the server closes: then what is queued is sent, and the worker ends.
    pub fn run(mut self, rx: Receiver<Job>) {
        if let Err(e) = crate::sys::lower_priority() {
            eprintln!("cordon server: OTLP export runs at the server's priority (setpriority: {e})");
        }
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return eprintln!("cordon server: OTLP export is off: cannot start its runtime: {e}"),
        };
        let mut mapper = Mapper::default();
        loop {
            let first = match self.shared.deadline() {
                None => rx.recv().ok(),
                Some(_) => rx.try_recv().ok(),
            };
            let Some(first) = first else { break };
            let mut jobs = vec![first];
            let mut n = jobs[0].records.len();
            while n < PER_REQUEST {
                let Ok(job) = rx.try_recv() else { break };
                n += job.records.len();
                jobs.push(job);
            }
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            if n > 0 {
                self.export(&rt, &mut mapper, jobs);
            }
        }
    }

    fn export(&mut self, rt: &tokio::runtime::Runtime, mapper: &mut Mapper, jobs: Vec<Job>) {
        let mut traces = ExportTraceServiceRequest::default();
        let mut logs = ExportLogsServiceRequest::default();
        let (mut n_spans, mut n_logs) = (0, 0);
        for job in jobs.iter().filter(|j| !j.records.is_empty()) {
            let m = mapper.map(&job.node, &job.records);
            (n_spans, n_logs) = (n_spans + m.n_spans, n_logs + m.n_logs);
            traces.resource_spans.push(m.spans);
            logs.resource_logs.push(m.logs);
        }
        drop(jobs);
        if n_spans > 0 {
            self.send(rt, "traces", traces.encode_to_vec().into(), n_spans);
        }
        if n_logs > 0 {
            self.send(rt, "logs", logs.encode_to_vec().into(), n_logs);
        }
    }

    /// Sends one request, again after each retryable failure while tries and the drain's time
    /// last; counts its records as exported or dropped, once.
    fn send(&mut self, rt: &tokio::runtime::Runtime, signal: &str, body: Bytes, n: usize) {
        let mut tries = 0;
        loop {
            if self.shared.deadline().is_some_and(|d| Instant::now() >= d) {
                return self.dropped("shutdown", n);
            }
            if tries > 0 {
                self.metrics.otlp_retries.inc();
            }
            // While closing, a request is cut at the drain's deadline (its own limit is 10 s).
            let post = export::post(&self.target, signal, body.clone());
            let sent = match self.shared.deadline() {
                None => rt.block_on(post),
                Some(d) => match rt
                    .block_on(async { tokio::time::timeout(d.saturating_duration_since(Instant::now()), post).await })
                {
                    Ok(r) => r,
                    Err(_) => return self.dropped("shutdown", n),
                },
            };
            let e = match sent {
                Ok(()) => {
                    self.metrics.otlp_exported.inc_by(n as u64);
                    return;
                }
                Err(e) => e,
            };
            if !e.retryable() || tries >= self.retries {
                self.log(&e);
                return self.dropped("export_failed", n);
            }
            self.shared.sleep(backoff(tries, e.retry_after()));
            tries += 1;
        }
    }

    fn dropped(&self, reason: &str, n: usize) {
        self.metrics.otlp_dropped.get_or_create(&Reason { reason: reason.into() }).inc_by(n as u64);
    }

    fn log(&mut self, e: &Failure) {
        if self.logged.insert(e.kind()) {
            let after = if e.retryable() { format!(" after {} tries", self.retries + 1) } else { String::new() };
            eprintln!(
                "cordon server: OTLP export to {} failed{after} ({e}): its records are dropped and counted (cordon_server_otlp_records_dropped_total{{reason=\"export_failed\"}}); this kind of failure is not logged again",
                self.target.endpoint.base()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waits_double_from_half_a_second_and_heed_retry_after_up_to_30_s() {
        let s = Duration::from_secs;
        assert_eq!(backoff(0, None), Duration::from_millis(500));
        assert_eq!(backoff(3, None), s(4));
        assert_eq!(backoff(0, Some(s(3))), s(3));
        assert_eq!(backoff(2, Some(s(1))), s(2));
        assert_eq!(backoff(0, Some(s(3600))), s(30));
        assert_eq!(backoff(40, None), s(30));
    }
}
