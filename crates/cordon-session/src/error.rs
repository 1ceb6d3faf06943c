//! The engine's errors. A refusal carries the whole text a user reads (what, why, and a hint);
//! errors of the parts below keep their own type.

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// cordon refuses to start (or to write somewhere): the message names the file, flag or feature
    /// and ends with a hint.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Policy(#[from] cordon_policy::PolicyError),
    #[error(transparent)]
    Audit(#[from] cordon_audit::AuditError),
    #[error(transparent)]
    Rules(#[from] cordon_rules::RulesError),
    /// The sandbox could not be set up (nothing ran).
    #[error(transparent)]
    Sandbox(#[from] cordon_sandbox::SandboxError),
    /// The sensor's pipeline could not be wired (nothing ran).
    #[error("{0}")]
    Sensor(String),
}

pub type Result<T, E = SessionError> = std::result::Result<T, E>;
