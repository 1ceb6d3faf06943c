//! cordon-schema is the vocabulary the parts of cordon share: typed records with serde, and nothing
//! else (no kernel code, no I/O). It sits at the bottom of the crate graph beside cordon-policy, so
//! that the sandbox, the egress proxy, the sensor, the rules, the audit log and the engine exchange
//! values of one type instead of strings or each other's internals.
//!
//! - [`Event`] and its [`Kind`]: what the sensor saw (docs/events.schema.json is generated from
//!   them: [`events_schema`]; a test fails when the committed file differs).
//! - [`Denial`] and [`Layer`]: a refusal and the layer that made it.
//! - [`egress::Decision`]: one decision of the egress proxy.
//! - [`Alert`] and [`Action`]: a detection rule that fired.
//! - [`RecordKind`] and [`Subject`]: the audit record's kinds, and what a rule can be about.
//! - [`outcome::Outcome`]: how a session ended; [`guarantee::Guarantee`]: what it promised;
//!   [`sensor::Summary`]: what the sensor counted; [`review::Review`]: the changes to workspace files
//!   that run outside the sandbox.

mod alert;
pub mod bodies;
mod denial;
pub mod egress;
mod event;
pub mod guarantee;
mod layer;
pub mod outcome;
mod record;
pub mod review;
pub mod sensor;
pub mod time;

pub use alert::{Action, Alert};
pub use denial::Denial;
pub use event::{exit_text, Event, Kind, SCHEMA_VERSION};
pub use layer::Layer;
pub use record::{RecordKind, Subject};

/// The JSON schema of one event (docs/events.schema.json), generated from [`Event`].
pub fn events_schema() -> serde_json::Value {
    let mut v: serde_json::Value = schemars::schema_for!(Event).into();
    if let Some(m) = v.as_object_mut() {
        m.insert("$id".into(), "https://cordon.dev/schema/events/v1.json".into());
    }
    v
}

/// The property names of an object schema.
#[cfg(test)]
fn properties(schema: &serde_json::Value) -> Vec<String> {
    schema.get("properties").and_then(|p| p.as_object()).map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// The top-level keys of a value serialized to JSON.
fn keys<T: serde::Serialize>(v: &T) -> Vec<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => vec![],
    }
}

/// The schema as the committed file holds it.
pub fn events_schema_text() -> String {
    serde_json::to_string_pretty(&events_schema()).unwrap_or_default() + "\n"
}
