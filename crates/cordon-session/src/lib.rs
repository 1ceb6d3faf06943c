//! cordon-session is the engine that runs one session, for the CLI today and for long-lived
//! services next (gateway, devbox daemon, server). It knows no command line and prints nothing:
//! a [`SessionSpec`] is prepared ([`prepare::prepare`]: policy, rules, host capabilities, plans, the
//! degradation verdict, the guards on the workspace and the audit log, the outputs, the start record)
//! and run ([`engine::run`]: the sandbox, the egress proxy, the sensor and its pipeline, rule
//! effects, the end of the record, the report), ending in a [`engine::Finished`] that the caller
//! renders.

/// A refusal: returns `SessionError::Refused` with the formatted text.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(crate::SessionError::Refused(format!($($t)*)))
    };
}

pub mod audit_writer;
mod bytes;
pub mod caches;
pub mod effects;
pub mod egress;
pub mod engine;
pub mod error;
pub mod grants;
pub mod guards;
pub mod hints;
pub mod host;
pub mod monitor;
pub mod outputs;
pub mod pipeline;
pub mod prepare;
pub mod project;
pub mod recording;
pub mod refusals;
pub mod remotes;
pub mod review;
pub mod sanitize;
pub mod shipping;
pub mod spec;
pub mod staging;
pub mod stream;
pub mod supervise;
mod sys;
pub mod timing;

pub use error::{Result, SessionError};
pub use spec::SessionSpec;
