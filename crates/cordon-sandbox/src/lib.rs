//! cordon-sandbox owns enforcement. It detects what the host can do ([`caps`]), turns a compiled
//! policy into one plain-data plan per layer ([`plan`]), applies those plans ([`apply`]) and runs a
//! supervised session ([`session`]): an environment made ready ([`environment`]), then a command
//! run in it ([`command`], [`watch`]). It knows nothing of TOML: policies arrive compiled.
//! Raw syscalls live in [`sys`] only.

pub mod ablate;
pub mod apply;
pub mod caps;
pub mod channel;
pub mod command;
pub mod egress;
pub mod environment;
pub mod error;
pub mod plan;
pub mod pty;
pub mod publish;
pub mod report;
pub mod session;
pub mod sys;
#[cfg(test)]
mod testutil;
pub mod watch;
pub mod writes;

pub use caps::KernelCaps;
pub use environment::{EnvOptions, Environment};
pub use error::SandboxError;
pub use plan::{plan, EnvironmentPlan, Guarantee, Invocation, SessionPlan, State};
pub use report::Outcome;
pub use session::Launch;

/// A fresh random session id (16 hex digits).
pub fn new_session_id() -> String {
    let mut b = [0u8; 8];
    use std::io::Read;
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        b = ((t as u64) ^ (std::process::id() as u64) << 32).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
