//! The sensor's event is cordon's shared vocabulary (cordon-schema): one versioned schema
//! (docs/events.schema.json), written as JSON lines by `--events`, shown by `--monitor`, stored in
//! the audit record.

pub use cordon_schema::{exit_text, Event, Kind, SCHEMA_VERSION};
