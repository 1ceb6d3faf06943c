//! Why a rule set could not be loaded: the file, what is wrong with it, and a hint.

use cordon_policy::error::{Diagnostic, FileProblem, PolicyError};

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The rule file could not be read.
    #[error("cannot read rule file {path}: {source}{}", read_hint(source))]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `builtin:NAME` with a name cordon does not ship.
    #[error("no built-in rule set `{name}`\n  hint: the built-in rule sets are: {}", builtin_list())]
    UnknownBuiltin { name: String },
    /// The file is not one cordon reads rules from: not a regular file, too large, or not UTF-8.
    #[error("cannot read {path}: {problem}\n  hint: {}", problem.hint())]
    File { path: String, problem: FileProblem },
    /// The rule set has one or more errors; each names its position.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

impl RulesError {
    /// The diagnostics, if this is a validation error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            RulesError::Invalid(d) => d,
            _ => &[],
        }
    }
}

/// Reading goes through cordon-policy's `read_file` (same limits as policy files); its errors are
/// told as the rule file's.
impl From<PolicyError> for RulesError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Read { path, source } => RulesError::Read { path, source },
            PolicyError::File { path, problem } => RulesError::File { path, problem },
            PolicyError::Invalid(d) => RulesError::Invalid(d),
        }
    }
}

fn read_hint(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("\n  hint: give the path of a TOML rule file, or a built-in set: {}", builtin_list())
    } else {
        String::new()
    }
}

fn builtin_list() -> String {
    crate::BUILTINS.iter().map(|n| format!("builtin:{n}")).collect::<Vec<_>>().join(", ")
}

fn render(d: &[Diagnostic]) -> String {
    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")
}
