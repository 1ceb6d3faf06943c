//! Prometheus metrics (prometheus-client, OpenMetrics text at /metrics). Counters count since the
//! server started (Prometheus handles the reset a restart makes); what was stored is in the
//! database.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    pub records: Counter,
    pub duplicates: Counter,
    pub batches: Counter,
    pub refusals: Family<Reason, Counter>,
    pub sessions: Family<Outcome, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let records = Counter::default();
        let duplicates = Counter::default();
        let batches = Counter::default();
        let refusals = Family::<Reason, Counter>::default();
        let sessions = Family::<Outcome, Counter>::default();
        registry.register(
            "cordon_server_records_ingested",
            "Records verified and stored (a record sent again is counted once)",
            records.clone(),
        );
        registry.register(
            "cordon_server_records_duplicate",
            "Records received again that the server already held (retries), not stored again",
            duplicates.clone(),
        );
        registry.register("cordon_server_ingest_batches", "Batches accepted", batches.clone());
        registry.register(
            "cordon_server_ingest_refusals",
            "Batches refused, by reason (key, conflict, reorder, gap, link, hash, seal)",
            refusals.clone(),
        );
        registry.register(
            "cordon_server_sessions",
            "Sessions whose end arrived, by outcome (exited, signaled, setup_failed, exec_failed)",
            sessions.clone(),
        );
        Metrics { registry, records, duplicates, batches, refusals, sessions }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}
