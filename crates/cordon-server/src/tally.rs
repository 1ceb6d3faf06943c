//! What a stored batch adds to the metrics: refusals by layer, alerts by rule, egress decisions,
//! tool calls and their latency, sensor events and loss. A pure function over the new records.
//!
//! Every label value comes from a fixed set or is checked: a node writes the bodies, and a made-up
//! value must neither inject lines into `/metrics` nor add a series per value (an alert's rule name
//! is the one free-form label; it is kept only when it looks like a rule name, and the metrics cap
//! how many distinct ones they hold).

use cordon_audit::Record;
use serde_json::Value;

/// The longest rule name kept as a label.
const MAX_RULE: usize = 64;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// (layer, refusals): the supervisor's `denial` records (with their counts).
    pub denials: Vec<(&'static str, u64)>,
    /// One per `alert` record: its rule, or "other".
    pub alerts: Vec<String>,
    /// (allowed, denied) egress decisions.
    pub egress: (u64, u64),
    /// One per `tool_call` record: "allow", "deny" or "other".
    pub tool_calls: Vec<&'static str>,
    /// Seconds of each `tool_result`.
    pub tool_seconds: Vec<f64>,
    /// (events, lost) from `sensor.summary` records.
    pub sensor: (u64, u64),
    /// (seconds to ready, from the pool) of each devbox claim (a `start` with a `devbox` object).
    pub claims: Vec<(f64, bool)>,
}

pub fn tally(records: &[Record]) -> Tally {
    let mut t = Tally::default();
    for r in records {
        let body = || serde_json::from_str::<Value>(&r.body).unwrap_or_default();
        match r.kind.as_str() {
            "denial" => {
                let b = body();
                t.denials.push((layer(&b["layer"]), b["count"].as_u64().unwrap_or(1).max(1)));
            }
            "alert" => t.alerts.push(rule(&body()["rule"])),
            "egress" => match body()["allowed"].as_bool() {
                Some(true) => t.egress.0 += 1,
                _ => t.egress.1 += 1,
            },
            "tool_call" => t.tool_calls.push(match body()["decision"].as_str() {
                Some("allow") => "allow",
                Some("deny") => "deny",
                _ => "other",
            }),
            "tool_result" => {
                if let Some(ms) = body()["duration_ms"].as_u64() {
                    t.tool_seconds.push(ms as f64 / 1000.0);
                }
            }
            "start" => {
                let b = body();
                let d = &b["devbox"];
                if let Some(ms) = d["latency_ms"].as_f64().filter(|m| m.is_finite() && *m >= 0.0) {
                    t.claims.push((ms / 1000.0, d["from_pool"].as_bool().unwrap_or(false)));
                }
            }
            "sensor.summary" => {
                let b = body();
                t.sensor.0 += b["events"].as_u64().unwrap_or(0);
                t.sensor.1 += b["lost"].as_u64().unwrap_or(0);
            }
            _ => {}
        }
    }
    t
}

/// (snapshot, pool size, ready after the claim) of a start record that recorded its devbox's pool.
pub fn pool_of(start: &Value) -> Option<(String, u64, u64)> {
    let d = &start["devbox"];
    let (size, ready) = (d["pool_size"].as_u64()?, d["pool_ready"].as_u64()?);
    Some((snapshot(&d["snapshot"]), size, ready))
}

/// A snapshot's hash (lowercase hex, as `cordon devbox snapshot` names them), or "other".
fn snapshot(v: &Value) -> String {
    match v.as_str() {
        Some(s)
            if !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            s.to_string()
        }
        _ => "other".into(),
    }
}

/// A layer's name from the fixed vocabulary (cordon-schema's `Layer`), or "other".
fn layer(v: &Value) -> &'static str {
    serde_json::from_value::<cordon_schema::Layer>(v.clone()).map(|l| l.as_str()).unwrap_or("other")
}

/// A rule name that looks like one (letters, digits, `-_.:`, at most 64), or "other".
fn rule(v: &Value) -> String {
    match v.as_str() {
        Some(s)
            if !s.is_empty()
                && s.len() <= MAX_RULE
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            s.to_string()
        }
        _ => "other".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: &str, body: Value) -> Record {
        Record {
            seq: 1,
            session: "s".into(),
            kind: kind.into(),
            ts_ms: 0,
            body: body.to_string(),
            prev: vec![0; 32],
            hash: vec![0; 32],
        }
    }

    #[test]
    fn each_kind_counts_where_it_should() {
        let t = tally(&[
            rec("denial", serde_json::json!({"layer": "seccomp", "count": 3})),
            rec("denial", serde_json::json!({"layer": "cgroup-bpf", "count": 1})),
            rec("alert", serde_json::json!({"rule": "curl-pipe-sh"})),
            rec("egress", serde_json::json!({"allowed": true})),
            rec("egress", serde_json::json!({"allowed": false})),
            rec("egress", serde_json::json!({"allowed": false})),
            rec("tool_call", serde_json::json!({"decision": "deny"})),
            rec("tool_result", serde_json::json!({"duration_ms": 250})),
            rec("sensor.summary", serde_json::json!({"events": 900, "lost": 7})),
            rec("start", serde_json::json!({})),
            rec("start", serde_json::json!({"devbox": {"latency_ms": 12.5, "from_pool": true}})),
            rec("start", serde_json::json!({"devbox": {"latency_ms": -1.0, "from_pool": true}})),
            rec(
                "start",
                serde_json::json!({"devbox": {"latency_ms": 3.0, "from_pool": true, "snapshot": "ab12", "pool_size": 4, "pool_ready": 3}}),
            ),
        ]);
        assert_eq!(t.claims, vec![(0.0125, true), (0.003, true)]);
        let claim = serde_json::json!({"devbox": {"snapshot": "ab12", "pool_size": 4, "pool_ready": 3}});
        assert_eq!(pool_of(&claim), Some(("ab12".to_string(), 4, 3)));
        assert_eq!(pool_of(&serde_json::json!({"devbox": {"latency_ms": 3.0, "pool_size": 4}})), None);
        assert_eq!(t.denials, vec![("seccomp", 3), ("cgroup-bpf", 1)]);
        assert_eq!(t.alerts, vec!["curl-pipe-sh".to_string()]);
        assert_eq!(t.egress, (1, 2));
        assert_eq!(t.tool_calls, vec!["deny"]);
        assert_eq!(t.tool_seconds, vec![0.25]);
        assert_eq!(t.sensor, (900, 7));
    }

    #[test]
    fn labels_a_node_makes_up_become_other() {
        let t = tally(&[
            rec("denial", serde_json::json!({"layer": "x\"} 1\nfake 9", "count": 2})),
            rec("alert", serde_json::json!({"rule": "a\"}\nfake_metric 1"})),
            rec("alert", serde_json::json!({"rule": "r".repeat(65)})),
            rec("alert", serde_json::json!({"rule": 7})),
            rec("tool_call", serde_json::json!({"decision": "<script>"})),
            rec("denial", Value::String("not an object".into())),
            rec("start", serde_json::json!({"devbox": {"snapshot": "AB\"}\nfake 1", "pool_size": 1, "pool_ready": 0}})),
        ]);
        let claim = serde_json::json!({"devbox": {"snapshot": "AB\"}\nfake 1", "pool_size": 1, "pool_ready": 0}});
        assert_eq!(pool_of(&claim), Some(("other".to_string(), 1, 0)));
        assert_eq!(t.denials, vec![("other", 2), ("other", 1)]);
        assert_eq!(t.alerts, vec!["other", "other", "other"]);
        assert_eq!(t.tool_calls, vec!["other"]);
    }
}
