//! cordon-schema is the vocabulary the parts of cordon share: typed records with serde, and nothing
//! else (no kernel code, no I/O). It sits at the bottom of the crate graph beside cordon-policy, so
//! that the sandbox, the egress proxy, the sensor, the audit log and the engine exchange values of
//! one type instead of strings or each other's internals.
//!
//! Today it holds the egress decision; the session's events, denials and records move here next
//! (issue 12).

pub mod egress;
