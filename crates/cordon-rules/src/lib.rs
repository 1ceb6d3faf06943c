//! cordon-rules owns detection: rules over session events (conditions on fields, lists and macros,
//! rates and sequences within a time window) that raise an alert or stop the session, each with a
//! reason written for the agent. Pure: no syscalls, no storage; the caller feeds events.

mod engine;
pub mod error;
mod load;

pub use cordon_schema::{Action, Alert, Subject};
pub use engine::Engine;
pub use error::RulesError;
pub use load::{load, load_text, placeholders, Cond, Op, Rule, RuleSet};

/// The kinds a rule may be about, by name: the supervisor's records (start, denial, egress, limit,
/// end) and the sensor's event kinds (docs/events.schema.json), from cordon-schema's types.
pub fn kinds() -> Vec<&'static str> {
    Subject::all().map(Subject::as_str).collect()
}

/// The names of the built-in rule sets (`builtin:NAME`).
pub const BUILTINS: &[&str] = &["agent"];

pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "agent" => Some(include_str!("builtin_agent.toml")),
        _ => None,
    }
}
