//! cordon-rules owns detection: rules over session events (conditions on fields, lists and macros,
//! rates and sequences within a time window) that raise an alert or stop the session, each with a
//! reason written for the agent. Pure: no syscalls, no storage; the caller feeds events.

mod engine;
pub mod error;
mod load;

pub use engine::{Alert, Engine};
pub use error::RulesError;
pub use load::{load, load_text, Action, Cond, Op, Rule, RuleSet};

/// Event kinds rules may match: from the supervisor today, from the sensor later.
/// Supervisor records (denial, egress, limit, start, end) and the sensor's event kinds
/// (docs/events.schema.json).
pub const KINDS: &[&str] = &[
    "denial", "egress", "limit", "start", "end", "exec", "fork", "exit", "open", "connect", "bind", "send", "unlink",
    "rename", "chmod", "chown", "mkdir", "truncate", "ptrace", "kill", "setid", "mount", "unshare", "setns", "bpf",
    "module", "memfd", "io_uring", "syscall", "net", "deny", "loss",
];

/// The names of the built-in rule sets (`builtin:NAME`).
pub const BUILTINS: &[&str] = &["agent"];

pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "agent" => Some(include_str!("builtin_agent.toml")),
        _ => None,
    }
}
