//! Prometheus metrics (prometheus-client, OpenMetrics text at /metrics). Counters count since the
//! server started (Prometheus handles the reset a restart makes); what was stored is in the
//! database.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::Mutex;

/// Distinct alert rules kept as labels; later new ones are counted under "other" (a node names
/// them, and each name would be a series held for the server's life).
const MAX_RULES: usize = 200;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabel {
    pub layer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// "true": served from a warm pool; "false": made at claim.
    pub from_pool: String,
}

/// 1 ms .. ~4 s, doubling: a claim's time to ready.
fn claim_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 13))
}

/// A devbox pool: the node that holds it and its snapshot.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolOf {
    pub node: String,
    pub snapshot: String,
}

/// The most pools (node × snapshot) kept as series; later ones are not shown (a node could make up
/// snapshots without end).
pub const MAX_POOLS: usize = 500;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    pub decision: String,
}

pub struct Metrics {
    registry: Registry,
    pub records: Counter,
    pub duplicates: Counter,
    pub batches: Counter,
    pub refusals: Family<Reason, Counter>,
    pub sessions: Family<Outcome, Counter>,
    pub denials: Family<LayerLabel, Counter>,
    pub alerts: Family<RuleLabel, Counter>,
    rules: Mutex<HashSet<String>>,
    pub egress: Family<DecisionLabel, Counter>,
    pub tool_calls: Family<DecisionLabel, Counter>,
    pub tool_seconds: Histogram,
    pub sensor_events: Counter,
    pub sensor_lost: Counter,
    /// Set from the database at each scrape.
    pub stale: Gauge,
    pub claims: Family<PoolLabel, Histogram, fn() -> Histogram>,
    /// Each pool's size and its devboxes left ready, as its newest claim recorded it: set from the
    /// database at each scrape (so every server of a fleet shows every node's pools).
    pub pool_size: Family<PoolOf, Gauge>,
    pub pool_ready: Family<PoolOf, Gauge>,
    pub otlp_exported: Counter,
    pub otlp_dropped: Family<Reason, Counter>,
    pub otlp_retries: Counter,
    /// Held through a scrape (see [`Metrics::scrape`]).
    scraping: Mutex<()>,
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
        let denials = Family::<LayerLabel, Counter>::default();
        registry.register(
            "cordon_server_denials",
            "Refusals the nodes' supervisors recorded, by layer (landlock, seccomp, network, cgroup-bpf, proxy, mounts, ...)",
            denials.clone(),
        );
        let alerts = Family::<RuleLabel, Counter>::default();
        registry.register("cordon_server_alerts", "Detection rules that fired, by rule", alerts.clone());
        let egress = Family::<DecisionLabel, Counter>::default();
        registry.register("cordon_server_egress_decisions", "Egress proxy decisions (allow, deny)", egress.clone());
        let tool_calls = Family::<DecisionLabel, Counter>::default();
        registry.register(
            "cordon_server_tool_calls",
            "Gateway tool calls, by decision (allow, deny)",
            tool_calls.clone(),
        );
        // 1 ms .. ~65 s, doubling.
        let tool_seconds = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 17));
        registry.register_with_unit(
            "cordon_server_tool_call_duration",
            "Time in the gateway of each allowed tool call, from the decision to the answer",
            prometheus_client::registry::Unit::Seconds,
            tool_seconds.clone(),
        );
        let sensor_events = Counter::default();
        registry.register(
            "cordon_server_sensor_events",
            "Events the nodes' eBPF sensors recorded",
            sensor_events.clone(),
        );
        let sensor_lost = Counter::default();
        registry.register(
            "cordon_server_sensor_events_lost",
            "Events the nodes' eBPF sensors lost (ring buffer full)",
            sensor_lost.clone(),
        );
        let stale = Gauge::default();
        registry.register(
            "cordon_server_stale_sessions",
            "Sessions that ran under an older version of their identity's policy than the newest",
            stale.clone(),
        );
        let claims = Family::<PoolLabel, Histogram, fn() -> Histogram>::new_with_constructor(claim_histogram);
        registry.register_with_unit(
            "cordon_server_devbox_claim_duration",
            "Devbox claims' time to ready (the probe passed), as the daemons recorded it, by from_pool",
            prometheus_client::registry::Unit::Seconds,
            claims.clone(),
        );
        let pool_size = Family::<PoolOf, Gauge>::default();
        registry.register(
            "cordon_server_devbox_pool_size",
            "Each devbox pool's size as set on its node, as the pool's newest claim recorded it",
            pool_size.clone(),
        );
        let pool_ready = Family::<PoolOf, Gauge>::default();
        registry.register(
            "cordon_server_devbox_pool_ready",
            "Devboxes left ready in each pool once its newest claim took one (0: the next claim is made cold)",
            pool_ready.clone(),
        );
        let otlp_exported = Counter::default();
        registry.register(
            "cordon_server_otlp_records_exported",
            "Records sent to the OTLP endpoint and acknowledged (2xx)",
            otlp_exported.clone(),
        );
        let otlp_dropped = Family::<Reason, Counter>::default();
        registry.register(
            "cordon_server_otlp_records_dropped",
            "Records not exported over OTLP, by reason (queue_full: the export queue was full; export_failed: the request failed for good or after its retries; shutdown: still queued when the server's drain at shutdown ended)",
            otlp_dropped.clone(),
        );
        let otlp_retries = Counter::default();
        registry.register(
            "cordon_server_otlp_retries",
            "OTLP requests sent again after a retryable failure (no connection, no answer in time, 429, 502, 503, 504)",
            otlp_retries.clone(),
        );
        Metrics {
            otlp_exported,
            otlp_dropped,
            otlp_retries,
            scraping: Mutex::default(),
            claims,
            pool_size,
            pool_ready,
            registry,
            records,
            duplicates,
            batches,
            refusals,
            sessions,
            denials,
            alerts,
            rules: Mutex::default(),
            egress,
            tool_calls,
            tool_seconds,
            sensor_events,
            sensor_lost,
            stale,
        }
    }
}

impl Metrics {
    /// Adds what a stored batch held.
    pub fn add(&self, t: &crate::tally::Tally) {
        for (layer, n) in &t.denials {
            self.denials.get_or_create(&LayerLabel { layer: layer.to_string() }).inc_by(*n);
        }
        for rule in &t.alerts {
            let rule = self.rule_label(rule);
            self.alerts.get_or_create(&RuleLabel { rule }).inc();
        }
        for (decision, n) in [("allow", t.egress.0), ("deny", t.egress.1)] {
            if n > 0 {
                self.egress.get_or_create(&DecisionLabel { decision: decision.into() }).inc_by(n);
            }
        }
        for d in &t.tool_calls {
            self.tool_calls.get_or_create(&DecisionLabel { decision: d.to_string() }).inc();
        }
        for s in &t.tool_seconds {
            self.tool_seconds.observe(*s);
        }
        for (secs, pool) in &t.claims {
            self.claims.get_or_create(&PoolLabel { from_pool: pool.to_string() }).observe(*secs);
        }
        self.sensor_events.inc_by(t.sensor.0);
        self.sensor_lost.inc_by(t.sensor.1);
    }

    fn rule_label(&self, rule: &str) -> String {
        let Ok(mut seen) = self.rules.lock() else { return "other".into() };
        if seen.contains(rule) || (seen.len() < MAX_RULES && seen.insert(rule.to_string())) {
            rule.to_string()
        } else {
            "other".into()
        }
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// A scrape: the gauges read from the database set, then everything encoded, one scrape at a
    /// time (another's clearing of the pool gauges must not fall between this one's set and encode).
    pub fn scrape(&self, stale: i64, pools: &[crate::store::PoolRow]) -> String {
        let _one = self.scraping.lock().unwrap_or_else(|e| e.into_inner());
        self.stale.set(stale);
        self.set_pools(pools);
        self.encode()
    }
}

impl Metrics {
    /// The pools as the database holds them now (at most [`MAX_POOLS`]: ask the store for no more).
    fn set_pools(&self, pools: &[crate::store::PoolRow]) {
        self.pool_size.clear();
        self.pool_ready.clear();
        for p in pools.iter().take(MAX_POOLS) {
            let pool = PoolOf { node: label_text(&p.node), snapshot: p.snapshot.clone() };
            self.pool_size.get_or_create(&pool).set(p.size);
            self.pool_ready.get_or_create(&pool).set(p.ready);
        }
    }
}

/// A node's name as a label value: its letters, digits and `-_.:`, anything else as `_` (a node
/// names itself; a quote or a newline must not reach the exposition).
fn label_text(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pools_set_their_gauges_under_clean_labels_and_a_gone_pool_goes() {
        let m = Metrics::default();
        let row =
            |node: &str, size, ready| crate::store::PoolRow { node: node.into(), snapshot: "ab12".into(), size, ready };
        m.set_pools(&[row("node-1", 4, 2), row("evil\"} 1\nfake 9", 1, 0), row("gone", 3, 3)]);
        m.set_pools(&[row("node-1", 4, 2), row("evil\"} 1\nfake 9", 1, 0)]);
        let text = m.encode();
        assert!(text.contains("cordon_server_devbox_pool_size{node=\"node-1\",snapshot=\"ab12\"} 4"), "{text}");
        assert!(text.contains("cordon_server_devbox_pool_ready{node=\"node-1\",snapshot=\"ab12\"} 2"), "{text}");
        assert!(text.contains("node=\"evil___1_fake_9\""), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("fake")), "{text}");
        assert!(!text.contains("gone"), "{text}");
    }
}
