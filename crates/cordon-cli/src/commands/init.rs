//! `cordon init`: a starting `.cordon.toml` for a project, naming the network presets its files
//! suggest, checked before it is written, and trusted (it is the user's own).

use anyhow::{bail, Result};
use clap::Args;
use cordon_session::project;
use std::path::{Path, PathBuf};

const LONG: &str = "Write a starting policy for this project: .cordon.toml in the workspace.

It extends a built-in profile (--profile; default `build` when the project has package manifests, \
whose caches a build writes, else `agent`) and lets the session reach the package registries the \
project's files name: requirements.txt, pyproject.toml, setup.py, Pipfile or uv.lock → @pypi; \
package.json → @npm; Cargo.toml → @crates. The file is checked before it is written and trusted: \
`cordon run` in this workspace then uses it when no policy is named, until its text changes (an \
agent that edits it cannot widen its next session: `cordon policy trust` after you have read it).

Examples:
  cordon init
  cordon init --profile claude-code
  cordon init --workspace ~/src/app --force";

#[derive(Args)]
#[command(about = "Write a starting .cordon.toml for this project", long_about = LONG)]
pub struct InitArgs {
    /// The built-in profile to extend: agent, build, readonly, strict, claude-code, codex.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The project's directory (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Replace an existing .cordon.toml.
    #[arg(long)]
    pub force: bool,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

/// (a file of the project, the preset it suggests).
const SIGNS: &[(&str, &str)] = &[
    ("requirements.txt", "pypi"),
    ("pyproject.toml", "pypi"),
    ("setup.py", "pypi"),
    ("Pipfile", "pypi"),
    ("uv.lock", "pypi"),
    ("package.json", "npm"),
    ("Cargo.toml", "crates"),
];

/// The presets the project's files suggest, each with the files that suggest it, in SIGNS' order.
fn suggested(ws: &Path) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = vec![];
    for (file, preset) in SIGNS {
        if !ws.join(file).is_file() {
            continue;
        }
        match out.iter_mut().find(|(p, _)| p == preset) {
            Some((_, files)) => files.push(file),
            None => out.push((preset, vec![file])),
        }
    }
    out
}

fn text(name: &str, profile: &str, presets: &[(&str, Vec<&str>)]) -> String {
    let mut t = format!(
        "# cordon's policy for this project, written by `cordon init`. `cordon policy explain .cordon.toml`\n\
         # says what it allows; `cordon run` uses it when no policy is named, as long as its text is the\n\
         # one you trusted (after editing it: `cordon policy trust`).\n\
         version = 1\n\
         name = {}\n\
         extends = [\"builtin:{profile}\"]\n",
        toml_string(name)
    );
    if !presets.is_empty() {
        t.push_str("\n[net]\negress = \"proxy\"\nallow = [\n");
        for (p, files) in presets {
            t.push_str(&format!("  \"@{p}\",  # {}\n", files.join(", ")));
        }
        t.push_str("]\n");
    }
    t
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn toml_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

pub fn run(a: InitArgs) -> Result<i32> {
    let ws = super::workspace(a.workspace.as_deref())?;
    let dest = ws.join(project::FILE);
    if !a.force && std::fs::symlink_metadata(&dest).is_ok() {
        bail!(
            "{} exists already\n  hint: `cordon policy explain {}` shows what it allows; --force replaces it",
            dest.display(),
            dest.display()
        );
    }
    let presets = suggested(&ws);
    let profile = match &a.profile {
        Some(p) => {
            let p = p.trim_start_matches("builtin:");
            if cordon_policy::builtin::text(p).is_none() {
                bail!(
                    "--profile {p}: no such built-in profile\n  hint: one of {}",
                    cordon_policy::builtin::names().join(", ")
                );
            }
            p.to_string()
        }
        None if presets.is_empty() => "agent".into(),
        None => "build".into(),
    };
    let name = ws.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "project".into());
    let body = text(&name, &profile, &presets);
    let digest = write_checked(&ws, &dest, &body, a.force)?;
    // The name just written (in the canonical workspace), not wherever it may point by now.
    project::trust(&project::store_path()?, &dest, &digest)?;
    if a.json {
        let v = serde_json::json!({
            "path": dest.to_string_lossy(),
            "profile": format!("builtin:{profile}"),
            "presets": presets.iter().map(|(p, f)| serde_json::json!({"preset": format!("@{p}"), "because": f})).collect::<Vec<_>>(),
            "trusted": digest,
        });
        println!("{v}");
        return Ok(0);
    }
    println!("wrote {} (extends builtin:{profile}), and trusted it", dest.display());
    for (p, files) in &presets {
        println!("  network: @{p}, because of {}", files.join(", "));
    }
    if presets.is_empty() {
        println!("  network: none (no package manifest found; add hosts under [net] allow)");
    }
    println!(
        "`cordon run -- CMD` in {} now uses it; `cordon policy explain {}` says what it allows",
        ws.display(),
        project::FILE
    );
    Ok(0)
}

/// Writes `body` to `dest` only once it loads and compiles as a policy, through a temporary file in
/// the same directory: `dest` is never half written, and without `force` never replaced (a link
/// fails if it exists, even when another `cordon init` raced this one). Returns its trust digest.
fn write_checked(ws: &Path, dest: &Path, body: &str, force: bool) -> Result<String> {
    let tmp = ws.join(format!(".cordon.toml.{}.tmp", std::process::id()));
    let result = (|| -> Result<String> {
        // create_new: a name planted in the workspace (a link to a file elsewhere) is never followed.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", tmp.display()))?;
        std::io::Write::write_all(&mut f, body.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
        drop(f);
        // Checked before it takes the real name (a policy error is positioned in the temporary file).
        let (loaded, _) = super::load(&tmp.to_string_lossy(), ws)?;
        if force {
            std::fs::rename(&tmp, dest).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dest.display()))?;
        } else {
            std::fs::hard_link(&tmp, dest).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    anyhow::anyhow!("{} exists already\n  hint: --force replaces it", dest.display())
                }
                _ => anyhow::anyhow!("cannot write {}: {e}", dest.display()),
            })?;
        }
        Ok(project::digest(&loaded))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_quotes_and_control_characters_stay_one_toml_string() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
