//! Stored records as OTLP: a session is a span, a gateway's tool call a span in the gateway's
//! trace linked to the sandbox session it ran in, every other record a log record carrying its
//! session's trace and span ids. Pure (but for the remembered session starts): no I/O.
//!
//! Ids are derived, not random: SHA-256 of the node and the session id (and the call), so a record
//! sent again maps to the same ids (a collector sees a duplicate, not a second session) and a
//! record can name its session's span before the span itself is sent (at the session's end).

use cordon_audit::Record;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Session starts remembered for their span's start time (an `end` without `duration_ms`, the
/// gateway's); forgotten all at once beyond this many (such a span then starts at its end).
const MAX_STARTS: usize = 65_536;

/// A session's (trace id, span id).
pub type Ids = ([u8; 16], [u8; 8]);

/// A session's span: (trace id, span id) from SHA-256("cordon.session\0NODE\0SESSION").
pub fn session_ids(node: &str, session: &str) -> Ids {
    let h = Sha256::digest(format!("cordon.session\0{node}\0{session}").as_bytes());
    let (mut t, mut s) = ([0u8; 16], [0u8; 8]);
    t.copy_from_slice(&h[..16]);
    s.copy_from_slice(&h[16..24]);
    (t, s)
}

/// A tool call's span id: SHA-256("cordon.call\0NODE\0SESSION\0CALL") (CALL: the call's number,
/// or `seq:N` for a refusal, which has none), bytes 0..8.
pub fn call_span_id(node: &str, session: &str, call: &str) -> [u8; 8] {
    let h = Sha256::digest(format!("cordon.call\0{node}\0{session}\0{call}").as_bytes());
    let mut s = [0u8; 8];
    s.copy_from_slice(&h[..8]);
    s
}

/// One batch's records as OTLP, and how many records went to each signal.
pub struct Mapped {
    pub spans: ResourceSpans,
    pub logs: ResourceLogs,
    pub n_spans: usize,
    pub n_logs: usize,
}

#[derive(Default)]
pub struct Mapper {
    starts: HashMap<(String, String), i64>,
    /// The last session's ids (records of one session come in runs: one hash per run).
    last: Option<(String, String, Ids)>,
}

impl Mapper {
    pub fn map(&mut self, node: &str, records: &[Record]) -> Mapped {
        let (mut spans, mut logs) = (Vec::new(), Vec::new());
        for r in records {
            // Parsed only where a field is read: most records (sensor events) go as they are.
            let body = || serde_json::from_str::<Value>(&r.body).unwrap_or_default();
            match r.kind.as_str() {
                "end" => spans.push(self.session_span(node, r, &body())),
                "tool_call" => spans.push(tool_call_span(node, r, &body())),
                "tool_result" => logs.push(log_record(node, r, self.ids(node, &r.session), Some(&body()))),
                kind => {
                    if kind == "start" {
                        self.remember(node, r);
                    }
                    logs.push(log_record(node, r, self.ids(node, &r.session), None));
                }
            }
        }
        let (n_spans, n_logs) = (spans.len(), logs.len());
        let resource = Some(resource(node));
        Mapped {
            spans: ResourceSpans {
                resource: resource.clone(),
                scope_spans: vec![ScopeSpans { scope: Some(scope()), spans, schema_url: String::new() }],
                schema_url: String::new(),
            },
            logs: ResourceLogs {
                resource,
                scope_logs: vec![ScopeLogs { scope: Some(scope()), log_records: logs, schema_url: String::new() }],
                schema_url: String::new(),
            },
            n_spans,
            n_logs,
        }
    }

    fn ids(&mut self, node: &str, session: &str) -> Ids {
        match &self.last {
            Some((n, s, ids)) if n == node && s == session => *ids,
            _ => {
                let ids = session_ids(node, session);
                self.last = Some((node.to_string(), session.to_string(), ids));
                ids
            }
        }
    }

    fn remember(&mut self, node: &str, r: &Record) {
        if self.starts.len() >= MAX_STARTS {
            self.starts.clear();
        }
        self.starts.insert((node.to_string(), r.session.clone()), r.ts_ms);
    }

    /// The session's span, sent at its `end`: it starts `duration_ms` before (a sandbox session's
    /// end says so), or at the remembered `start`, or else at the end.
    fn session_span(&mut self, node: &str, r: &Record, body: &Value) -> Span {
        let start = self.starts.remove(&(node.to_string(), r.session.clone()));
        let start = match body["duration_ms"].as_i64() {
            Some(d) if d >= 0 && d <= r.ts_ms => r.ts_ms - d,
            _ => start.unwrap_or(r.ts_ms),
        };
        let (trace, span) = session_ids(node, &r.session);
        let outcome = crate::ingest::outcome(body);
        let mut attributes = common_attrs(node, r);
        attributes.push(kv_str("cordon.outcome", outcome));
        if let Some(code) = body["exit_code"].as_i64() {
            attributes.push(kv_int("cordon.exit_code", code));
        }
        let failed = matches!(outcome, "setup_failed" | "exec_failed");
        Span {
            trace_id: trace.to_vec(),
            span_id: span.to_vec(),
            name: "cordon.session".into(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(start),
            end_time_unix_nano: nanos(r.ts_ms),
            attributes,
            status: failed.then(|| Status { message: outcome.into(), code: status::StatusCode::Error as i32 }),
            ..Default::default()
        }
    }
}

/// A gateway's tool call: a span in the gateway session's trace, child of its session span, with
/// a link to the sandbox session it ran in (the `session` of its body; none for a refusal).
fn tool_call_span(node: &str, r: &Record, body: &Value) -> Span {
    let (trace, parent) = session_ids(node, &r.session);
    let mut attributes = common_attrs(node, r);
    for (key, field) in [
        ("cordon.tool.server", "server"),
        ("cordon.tool.name", "tool"),
        ("cordon.tool.decision", "decision"),
        ("cordon.tool.rule", "rule"),
        ("cordon.tool.identity", "identity"),
        ("cordon.tool.args_sha256", "args_sha256"),
        ("cordon.tool.sandbox_session", "session"),
    ] {
        if let Some(v) = body[field].as_str() {
            attributes.push(kv_str(key, v));
        }
    }
    let links = match body["session"].as_str() {
        Some(sandbox) => {
            let (t, s) = session_ids(node, sandbox);
            vec![span::Link {
                trace_id: t.to_vec(),
                span_id: s.to_vec(),
                attributes: vec![kv_str("cordon.link", "sandbox_session")],
                ..Default::default()
            }]
        }
        None => vec![],
    };
    let denied = body["decision"].as_str() != Some("allow");
    Span {
        trace_id: trace.to_vec(),
        span_id: call_span_id(node, &r.session, &call_key(r, body)).to_vec(),
        parent_span_id: parent.to_vec(),
        name: "cordon.tool_call".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: nanos(r.ts_ms),
        end_time_unix_nano: nanos(r.ts_ms),
        attributes,
        links,
        status: denied.then(|| Status {
            message: body["error"].as_str().unwrap_or("denied").into(),
            code: status::StatusCode::Error as i32,
        }),
        ..Default::default()
    }
}

/// What names a call within its gateway session: its number, or (a refusal: number 0) its record.
fn call_key(r: &Record, body: &Value) -> String {
    match body["call"].as_u64() {
        Some(n) if n > 0 => n.to_string(),
        _ => format!("seq:{}", r.seq),
    }
}

/// Any other record: a log record in its session's span (a `tool_result`, whose `body` is
/// given: in its call's span).
fn log_record(node: &str, r: &Record, ids: Ids, tool_result: Option<&Value>) -> LogRecord {
    let (trace, mut span) = ids;
    if let Some(body) = tool_result {
        span = call_span_id(node, &r.session, &call_key(r, body));
    }
    let (severity, text) = match r.kind.as_str() {
        "denial" | "alert" | "limit" => (13, "WARN"),
        _ => (9, "INFO"),
    };
    LogRecord {
        time_unix_nano: nanos(r.ts_ms),
        observed_time_unix_nano: nanos(crate::now_ms()),
        severity_number: severity,
        severity_text: text.into(),
        event_name: format!("cordon.{}", r.kind),
        body: Some(AnyValue { value: Some(any_value::Value::StringValue(r.body.clone())) }),
        attributes: common_attrs(node, r),
        trace_id: trace.to_vec(),
        span_id: span.to_vec(),
        ..Default::default()
    }
}

/// Every item's attributes: where the record is in the node's chain. Strings go as they are (an
/// agent may control them; they are data to the collector).
fn common_attrs(node: &str, r: &Record) -> Vec<KeyValue> {
    vec![
        kv_str("cordon.node", node),
        kv_str("cordon.session", &r.session),
        kv_str("cordon.kind", &r.kind),
        kv_int("cordon.seq", r.seq),
    ]
}

fn resource(node: &str) -> Resource {
    Resource {
        attributes: vec![kv_str("service.name", "cordon"), kv_str("host.name", node), kv_str("cordon.node", node)],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "cordon-server".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

fn kv_str(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

fn kv_int(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(v)) }),
        ..Default::default()
    }
}

fn nanos(ms: i64) -> u64 {
    (ms.max(0) as u64).saturating_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(seq: i64, session: &str, kind: &str, ts_ms: i64, body: Value) -> Record {
        Record {
            seq,
            session: session.into(),
            kind: kind.into(),
            ts_ms,
            body: body.to_string(),
            prev: vec![],
            hash: vec![],
        }
    }

    #[test]
    fn sessions_become_spans_tool_calls_linked_spans_and_the_rest_logs_in_their_span() {
        let records = [
            rec(1, "s1", "start", 1000, json!({})),
            rec(2, "s1", "denial", 1100, json!({"layer": "seccomp"})),
            rec(3, "s1", "end", 1500, json!({"ending": {"kind": "exited"}, "exit_code": 0, "duration_ms": 400})),
            rec(4, "gw", "start", 900, json!({})),
            rec(5, "gw", "tool_call", 1200, json!({"call": 1, "decision": "allow", "session": "s1", "tool": "echo"})),
            rec(6, "gw", "tool_result", 1300, json!({"call": 1, "duration_ms": 100})),
            rec(7, "gw", "end", 1600, json!({"calls": 1})),
        ];
        let m = Mapper::default().map("n1", &records);
        assert_eq!((m.n_spans, m.n_logs), (3, 4));
        let spans = &m.spans.scope_spans[0].spans;
        let (s1_trace, s1_span) = session_ids("n1", "s1");
        let (gw_trace, gw_span) = session_ids("n1", "gw");
        assert_eq!((spans[0].trace_id.as_slice(), spans[0].span_id.as_slice()), (&s1_trace[..], &s1_span[..]));
        assert_eq!(spans[0].start_time_unix_nano, 1_100_000_000);
        let call = &spans[1];
        assert_eq!((call.trace_id.as_slice(), call.parent_span_id.as_slice()), (&gw_trace[..], &gw_span[..]));
        assert_eq!(call.links[0].span_id, s1_span.to_vec());
        assert_eq!(spans[2].start_time_unix_nano, 900_000_000, "the gateway's span starts at its remembered start");
        let logs = &m.logs.scope_logs[0].log_records;
        assert_eq!(logs[1].span_id, s1_span.to_vec());
        assert_eq!(logs[1].severity_text, "WARN");
        assert_eq!(logs[3].span_id, call.span_id, "a tool_result is logged in its call's span");
        assert_ne!(session_ids("n2", "s1"), session_ids("n1", "s1"));
    }
}
