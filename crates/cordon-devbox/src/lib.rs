//! cordon-devbox: what a devbox is made from. It owns `devbox.toml` ([`config`]: checked, every
//! problem positioned like a policy's) and the snapshot store ([`snapshot`]: the code cloned at a
//! commit, the setup commands run once in cordon sessions, the result named by a content hash and
//! published by an atomic rename). It prints nothing (progress goes to a callback) and runs no
//! sandbox itself: setup sessions are `cordon supervise` children (cordon_session::supervise), so a
//! multi-threaded caller may build too.
//!
//! The daemon ([`daemon`]) holds warm pools: each pooled devbox is a `cordon devbox-hold` process
//! ([`holder`]) whose environment is made (an overlay root over the snapshot, namespaces, cgroup)
//! and waits; a claim judges its policy against the snapshot's ([`tighten`]: only tighter) and
//! starts the exec server ([`exec_server`]) under it, which runs every later `cordon devbox exec`.

pub mod client;
pub mod config;
pub mod daemon;
pub mod error;
pub mod exec_server;
pub mod holder;
pub mod secrets;
pub mod snapshot;
mod sys;
pub mod tighten;
pub mod wire;

pub use config::Devbox;
pub use error::DevboxError;
