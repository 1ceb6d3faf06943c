//! cordon's eBPF sensor: what a session's processes really did, below the agent. BPF programs in
//! bpf/cordon.bpf.c (tracepoints for exec/fork/exit and the syscalls that matter; cgroup-bpf for each
//! session's network rules), loaded once per process ([`Hub`]) and shared by its sessions, report
//! into each session's own ring buffer, filtered in the kernel by a map of session cgroup v2 ids;
//! this crate decodes, attributes denials, rebuilds the process tree and counts loss per session.

pub mod attribute;
pub mod cgroup;
pub mod convert;
pub mod event;
pub mod hub;
pub mod kinds;
pub mod lineage;
pub mod lsm;
pub mod mounts;
pub mod probe;
pub mod raw;
pub mod sensor;
mod sys;

pub use attribute::Attribution;
pub use event::Event;
pub use hub::Hub;
pub use sensor::{Config, Feed, NetRules, OutputStatus, Sensor, SensorError, Summary, IDLE_READ};
