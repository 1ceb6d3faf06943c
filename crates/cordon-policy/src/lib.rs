//! cordon-policy owns the policy language: it reads TOML policies (and the built-in profiles), checks
//! them with errors that name file, line, column and field, and compiles them into a
//! [`CompiledPolicy`] of plain data. It makes no syscalls and knows nothing of Landlock or seccomp;
//! the sandbox crate turns the compiled policy into per-layer plans.

pub mod builtin;
pub mod compile;
pub mod compiled;
pub mod decide;
pub mod error;
pub mod explain;
pub mod export;
pub mod hostexec;
pub mod load;
pub mod model;
pub mod mountinfo;
pub mod netspec;
mod parse;
pub mod paths;
pub mod presets;
pub mod protect;
pub mod review;
pub mod sanitize;
pub mod syscall_table;
pub mod syscalls;
pub mod toolcall;
pub mod units;
mod validate;

pub use compile::compile;
pub use compiled::*;
pub use error::{Diagnostic, PolicyError, Warning};
pub use load::{load, load_text, Loaded};
pub use paths::Context;

/// Loads and compiles in one step.
pub fn load_and_compile(spec: &str, cx: &Context) -> Result<(Loaded, CompiledPolicy), PolicyError> {
    let l = load(spec)?;
    let c = compile(&l, cx);
    Ok((l, c))
}
