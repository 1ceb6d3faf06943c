//! The kinds of audit record a session leaves, in the order a run writes them, and what a detection
//! rule can be about (a supervisor record or a sensor event kind).

use crate::Kind;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub enum RecordKind {
    /// Committed before the command runs: the policy, the plan, the command.
    #[serde(rename = "start")]
    Start,
    /// One distinct refusal seen by the supervisor (seccomp, the network namespace), with a count.
    #[serde(rename = "denial")]
    Denial,
    /// One decision of the egress proxy.
    #[serde(rename = "egress")]
    Egress,
    /// A resource limit the session hit.
    #[serde(rename = "limit")]
    Limit,
    /// A detection rule that fired.
    #[serde(rename = "alert")]
    Alert,
    /// Up to 1000 sensor events (a JSON array of events).
    #[serde(rename = "sensor")]
    Sensor,
    /// The sensor's counts: events, loss, outputs.
    #[serde(rename = "sensor.summary")]
    SensorSummary,
    /// How the command ended.
    #[serde(rename = "end")]
    End,
    /// The signature over the session's records.
    #[serde(rename = "seal")]
    Seal,
    /// Records imported from a recovery spool.
    #[serde(rename = "recovered")]
    Recovered,
    /// One MCP tool call through `cordon gateway` (in the gateway's own session): who, which server
    /// and tool, the arguments' hash, the decision and its rule, and the sandbox session it ran in.
    #[serde(rename = "tool_call")]
    ToolCall,
    /// How a `tool_call` that reached its server ended (written after it, off the answer path):
    /// the call's number, duration, result size, error.
    #[serde(rename = "tool_result")]
    ToolResult,
    /// One change to a workspace file that runs outside the sandbox (`fs.review`): path, created,
    /// modified or deleted, the diff's size, the pattern, the hashes before and after.
    #[serde(rename = "review")]
    Review,
}

impl RecordKind {
    pub const ALL: [RecordKind; 13] = [
        RecordKind::Start,
        RecordKind::Denial,
        RecordKind::Egress,
        RecordKind::Limit,
        RecordKind::Alert,
        RecordKind::Sensor,
        RecordKind::SensorSummary,
        RecordKind::End,
        RecordKind::Seal,
        RecordKind::Recovered,
        RecordKind::ToolCall,
        RecordKind::ToolResult,
        RecordKind::Review,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::Start => "start",
            RecordKind::Denial => "denial",
            RecordKind::Egress => "egress",
            RecordKind::Limit => "limit",
            RecordKind::Alert => "alert",
            RecordKind::Sensor => "sensor",
            RecordKind::SensorSummary => "sensor.summary",
            RecordKind::End => "end",
            RecordKind::Seal => "seal",
            RecordKind::Recovered => "recovered",
            RecordKind::ToolCall => "tool_call",
            RecordKind::ToolResult => "tool_result",
            RecordKind::Review => "review",
        }
    }

    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What a run appends after its start, and so what a recovery spool may carry. Never `start`,
    /// `seal` or `recovered`: those are cordon's own.
    pub const fn spoolable(self) -> bool {
        match self {
            RecordKind::Denial
            | RecordKind::Egress
            | RecordKind::Limit
            | RecordKind::Alert
            | RecordKind::Sensor
            | RecordKind::SensorSummary
            | RecordKind::End
            | RecordKind::ToolCall
            | RecordKind::ToolResult
            | RecordKind::Review => true,
            RecordKind::Start | RecordKind::Seal | RecordKind::Recovered => false,
        }
    }

    /// Whether detection rules can be about records of this kind.
    pub const fn rule_subject(self) -> bool {
        match self {
            RecordKind::Denial
            | RecordKind::Egress
            | RecordKind::Limit
            | RecordKind::Start
            | RecordKind::End
            | RecordKind::Review => true,
            RecordKind::Alert
            | RecordKind::Sensor
            | RecordKind::SensorSummary
            | RecordKind::Seal
            | RecordKind::Recovered
            | RecordKind::ToolCall
            | RecordKind::ToolResult => false,
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a detection rule is about: a supervisor record or a sensor event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Record(RecordKind),
    Event(Kind),
}

impl Subject {
    /// Every subject a rule may name: the supervisor's records, then the sensor's event kinds.
    pub fn all() -> impl Iterator<Item = Subject> {
        RecordKind::ALL
            .into_iter()
            .filter(|k| k.rule_subject())
            .map(Subject::Record)
            .chain(Kind::ALL.into_iter().map(Subject::Event))
    }

    pub fn parse(s: &str) -> Option<Subject> {
        Subject::all().find(|k| k.as_str() == s)
    }

    /// The fields a rule about this subject can read; None when they are not fixed (the start and
    /// end records). The keys of a serialized value (cheap at run time); a test checks them
    /// against the types' schemas.
    pub fn fields(self) -> Option<&'static [String]> {
        use std::sync::OnceLock;
        static DENIAL: OnceLock<Vec<String>> = OnceLock::new();
        static EGRESS: OnceLock<Vec<String>> = OnceLock::new();
        static LIMIT: OnceLock<Vec<String>> = OnceLock::new();
        static REVIEW: OnceLock<Vec<String>> = OnceLock::new();
        match self {
            Subject::Event(_) => Some(crate::Event::field_names()),
            Subject::Record(RecordKind::Denial) => Some(DENIAL.get_or_init(|| crate::keys(&sample_denial()))),
            Subject::Record(RecordKind::Egress) => Some(EGRESS.get_or_init(|| crate::keys(&sample_decision()))),
            Subject::Record(RecordKind::Limit) => {
                Some(LIMIT.get_or_init(|| crate::keys(&crate::bodies::Limit { text: String::new() })))
            }
            Subject::Record(RecordKind::Review) => Some(REVIEW.get_or_init(|| crate::keys(&sample_change()))),
            Subject::Record(_) => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Subject::Record(k) => k.as_str(),
            Subject::Event(k) => k.as_str(),
        }
    }
}

fn sample_denial() -> crate::Denial {
    crate::Denial {
        layer: crate::Layer::Seccomp,
        pid: 0,
        comm: String::new(),
        what: String::new(),
        reason: String::new(),
        count: 0,
    }
}

fn sample_change() -> crate::review::Change {
    crate::review::Change {
        path: String::new(),
        change: crate::review::ChangeKind::Modified,
        summary: String::new(),
        added: 0,
        removed: 0,
        excerpt: vec![],
        pattern: String::new(),
        entry: String::new(),
        runs: String::new(),
        before_sha256: None,
        after_sha256: None,
        before_mode: None,
        after_mode: None,
        hold: None,
    }
}

fn sample_decision() -> crate::egress::Decision {
    crate::egress::Decision {
        at_ms: 0,
        allowed: false,
        protocol: String::new(),
        host: String::new(),
        port: 0,
        ip: None,
        rule: String::new(),
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: 0,
        pid: 0,
        exe: String::new(),
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_kinds_have_their_wire_names() {
        for k in RecordKind::ALL {
            assert_eq!(serde_json::to_string(&k).expect("json"), format!("\"{k}\""));
            assert_eq!(RecordKind::parse(k.as_str()), Some(k));
        }
    }

    /// `ALL` is kept by hand; the schema is derived from the enum: a variant missing from ALL fails.
    #[test]
    fn every_record_kind_is_in_all() {
        let s: serde_json::Value = schemars::schema_for!(RecordKind).into();
        let text = s.to_string();
        let n = s["oneOf"].as_array().map_or(0, |v| v.len());
        assert_eq!(n, RecordKind::ALL.len(), "{text}");
    }

    #[test]
    fn subjects_are_the_rule_records_then_every_event_kind_with_no_name_twice() {
        let names: Vec<&str> = Subject::all().map(Subject::as_str).collect();
        assert_eq!(&names[..6], ["start", "denial", "egress", "limit", "end", "review"]);
        assert_eq!(names.len(), 6 + Kind::ALL.len());
        let mut d = names.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), names.len(), "a record kind and an event kind share a name");
        assert_eq!(Subject::parse("deny"), Some(Subject::Event(Kind::Deny)));
        assert_eq!(Subject::parse("denial"), Some(Subject::Record(RecordKind::Denial)));
        assert_eq!(Subject::parse("seal"), None);
    }

    #[test]
    fn a_subjects_fields_come_from_its_type() {
        let denial = Subject::Record(RecordKind::Denial).fields().expect("fixed");
        assert!(denial.contains(&"what".to_string()) && denial.contains(&"layer".to_string()), "{denial:?}");
        let egress = Subject::Record(RecordKind::Egress).fields().expect("fixed");
        assert!(egress.contains(&"host".to_string()) && egress.contains(&"allowed".to_string()), "{egress:?}");
        let open = Subject::Event(Kind::Open).fields().expect("fixed");
        assert!(open.contains(&"path".to_string()) && !open.contains(&"what".to_string()));
        assert_eq!(Subject::Record(RecordKind::End).fields(), None);
    }

    #[test]
    fn the_fields_are_the_properties_of_the_types_schemas() {
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let schema = |s: schemars::Schema| sorted(crate::properties(&s.into()));
        let fields = |k: RecordKind| sorted(Subject::Record(k).fields().expect("fixed").to_vec());
        assert_eq!(fields(RecordKind::Denial), schema(schemars::schema_for!(crate::Denial)));
        assert_eq!(fields(RecordKind::Egress), schema(schemars::schema_for!(crate::egress::Decision)));
        assert_eq!(fields(RecordKind::Limit), schema(schemars::schema_for!(crate::bodies::Limit)));
        assert_eq!(fields(RecordKind::Review), schema(schemars::schema_for!(crate::review::Change)));
    }
}
