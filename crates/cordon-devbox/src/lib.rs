//! cordon-devbox: what a devbox is made from. It owns `devbox.toml` ([`config`]: checked, every
//! problem positioned like a policy's) and the snapshot store ([`snapshot`]: the code cloned at a
//! commit, the setup commands run once in cordon sessions, the result named by a content hash and
//! published by an atomic rename). It prints nothing (progress goes to a callback) and runs no
//! sandbox itself: setup sessions are `cordon supervise` children (cordon_session::supervise), so a
//! multi-threaded caller may build too.
//!
//! Not here yet: the daemon and its warm pool, claims (docs/devbox.md says what step 2 holds).

pub mod config;
pub mod error;
pub mod snapshot;

pub use config::Devbox;
pub use error::DevboxError;
