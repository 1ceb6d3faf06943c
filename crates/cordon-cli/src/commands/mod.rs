//! One file per verb.

pub mod audit;
pub mod daemon;
pub mod devbox;
pub mod doctor;
pub mod gateway;
pub mod hook;
pub mod identity;
pub mod init;
pub mod monitor;
pub mod policy;
pub mod rules;
pub mod run;
pub mod server;

use anyhow::{bail, Context as _, Result};
use cordon_policy::{CompiledPolicy, Context, Loaded};
use std::path::{Path, PathBuf};

/// Resolves `--workspace` (default: the current directory) to a canonical directory.
pub fn workspace(arg: Option<&Path>) -> Result<PathBuf> {
    let raw = match arg {
        Some(p) => p.to_path_buf(),
        None => std::env::current_dir().context("cannot determine the current directory")?,
    };
    let ws = raw.canonicalize().with_context(|| format!("workspace {} does not exist", raw.display()))?;
    if !ws.is_dir() {
        bail!("workspace {} is not a directory", ws.display());
    }
    Ok(ws)
}

/// Which policy to load: `--policy FILE`, `--profile NAME`, or the default profile.
pub fn policy_spec(profile: Option<&str>, policy: Option<&Path>) -> String {
    match (policy, profile) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(n)) => format!("builtin:{}", n.trim_start_matches("builtin:")),
        (None, None) => format!("builtin:{}", cordon_policy::builtin::DEFAULT),
    }
}

pub fn load(spec: &str, ws: &Path) -> Result<(Loaded, CompiledPolicy)> {
    let cx = Context::for_workspace(ws.to_path_buf());
    cordon_policy::load_and_compile(spec, &cx).map_err(|e| anyhow::anyhow!("{e}"))
}
