//! cordon's eBPF sensor: what a session's processes really did, below the agent. BPF programs in
//! bpf/cordon.bpf.c (tracepoints for exec/fork/exit and the syscalls that matter; cgroup-bpf for the
//! session's network rules) report into a ring buffer, filtered in the kernel by the session's
//! cgroup v2 id; this crate decodes, attributes denials, rebuilds the process tree and counts loss.

pub mod attribute;
pub mod cgroup;
pub mod convert;
pub mod event;
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
pub use sensor::{Config, Feed, NetRules, OutputStatus, Sensor, SensorError, Summary};
