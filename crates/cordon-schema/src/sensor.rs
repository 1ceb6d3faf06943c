//! What the sensor counted over one session: events, loss (per CPU), refusals, the process tree,
//! and what became of the events output. The report's `sensor` and the `sensor.summary` record.

use crate::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Summary {
    pub events: u64,
    /// Records the programs tried to hand over (events + lost).
    pub attempted: u64,
    pub lost: u64,
    pub lost_per_cpu: Vec<u64>,
    pub decode_errors: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub denials_total: u64,
    /// The first denials (at most 10000), each with its layer and reason.
    pub denials: Vec<Event>,
    pub processes: usize,
    pub tree: String,
    pub seconds: f64,
    pub notes: Vec<String>,
    /// The events output (`--events`), when there is one: filled in by whoever writes it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub events_output: Option<OutputStatus>,
}

/// What became of the events handed to an events output: each one was written whole or is
/// counted in `lost`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct OutputStatus {
    /// The file, fifo or `-` (stdout).
    pub path: String,
    pub written: u64,
    /// Events not written (the first write error and everything after it).
    pub lost: u64,
    /// The first write error.
    pub error: Option<String>,
    /// Events are missing from the output.
    pub incomplete: bool,
    /// A final `loss` line with `incomplete: true` could be written at the end of the output.
    pub marked: bool,
}
