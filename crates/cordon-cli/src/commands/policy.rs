//! `cordon policy check|explain|test|export`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use cordon_policy::{decide, explain, export, Probe};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
#[command(about = "Check, explain, test and export policies")]
pub enum PolicyCmd {
    /// Check policy files; errors give file:line:col, the field and a hint. Exit status 1 on any error.
    Check(CheckArgs),
    /// Say in plain words what a policy lets a session do (default: builtin:agent).
    Explain(ExplainArgs),
    /// Run a policy's [[test]] examples against the compiled plan and, where possible, for real.
    Test(TestArgs),
    /// Export a policy for other enforcers: OCI seccomp JSON, an AppArmor profile, or the compiled JSON.
    Export(ExportArgs),
    /// List the built-in profiles.
    List,
    /// Trust a project's .cordon.toml as it is now, once you have read it. `cordon run` uses the
    /// workspace's .cordon.toml (when no policy is named) only while its text, and that of every
    /// file it extends, is the text trusted: an agent that edits it cannot widen its next session.
    Trust(TrustArgs),
}

#[derive(Args)]
pub struct TrustArgs {
    /// The policy file (default: .cordon.toml in the current directory).
    pub file: Option<PathBuf>,
    /// Print what was trusted as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Policy files, or builtin:NAME.
    #[arg(required = true)]
    pub files: Vec<String>,
    /// Print findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// Policy file or builtin:NAME.
    #[arg(default_value = "builtin:agent")]
    pub policy: String,
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Args)]
pub struct TestArgs {
    /// Policy file or builtin:NAME.
    pub policy: String,
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Only evaluate against the compiled plan; do not start sandboxes.
    #[arg(long)]
    pub plan_only: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    OciSeccomp,
    Apparmor,
    Json,
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: Format,
    /// Policy file or builtin:NAME.
    pub policy: String,
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(cmd: PolicyCmd) -> Result<i32> {
    match cmd {
        PolicyCmd::Check(a) => check(a),
        PolicyCmd::Explain(a) => {
            let ws = super::workspace(a.workspace.as_deref())?;
            let (_, mut c) = super::load(&a.policy, &ws)?;
            // As `cordon run` does: a bare repository the policy lets the session write is protected.
            cordon_session::remotes::protect(&mut c, &[], &mut vec![]);
            print!("{}", explain::explain(&c));
            Ok(0)
        }
        PolicyCmd::Test(a) => test(a),
        PolicyCmd::Trust(a) => trust(a),
        PolicyCmd::Export(a) => {
            let ws = super::workspace(a.workspace.as_deref())?;
            let (_, c) = super::load(&a.policy, &ws)?;
            let out = match a.format {
                Format::OciSeccomp => serde_json::to_string_pretty(&export::oci_seccomp(&c))? + "\n",
                Format::Apparmor => export::apparmor(&c),
                Format::Json => serde_json::to_string_pretty(&export::json(&c))? + "\n",
            };
            match a.output {
                Some(p) => std::fs::write(&p, out).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
                None => print!("{out}"),
            }
            Ok(0)
        }
        PolicyCmd::List => {
            for n in cordon_policy::builtin::names() {
                let text = cordon_policy::builtin::text(n).unwrap_or("");
                let desc = text.lines().find_map(|l| l.strip_prefix("description = ")).unwrap_or("").trim_matches('"');
                println!("builtin:{n:<12} {desc}");
            }
            Ok(0)
        }
    }
}

fn trust(a: TrustArgs) -> Result<i32> {
    use cordon_session::project;
    let file = match a.file {
        Some(f) => f,
        None => std::env::current_dir()?.join(project::FILE),
    };
    let canon = file.canonicalize().map_err(|e| {
        anyhow::anyhow!("{}: {e}\n  hint: `cordon init` writes a starting .cordon.toml", file.display())
    })?;
    if canon.to_str().is_none_or(|c| c.chars().any(char::is_control)) {
        bail!("{} has a path with a line break, a control character or bytes that are not UTF-8: it cannot be trusted\n  hint: rename the directories on its path", canon.display());
    }
    let ws = canon.parent().unwrap_or(Path::new("/")).to_path_buf();
    let (loaded, c) = super::load(&canon.to_string_lossy(), &ws)?;
    let digest = project::digest(&loaded);
    project::trust(&project::store_path()?, &canon, &digest)?;
    let files: Vec<String> = loaded.layers.iter().map(|l| l.name.clone()).collect();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"path": canon.to_string_lossy(), "policy": c.name, "files": files, "sha256": digest})
        );
    } else {
        println!("trusted {}: policy `{}` ({}), sha256 {}", canon.display(), c.name, files.join(" -> "), &digest[..16]);
    }
    Ok(0)
}

fn check(a: CheckArgs) -> Result<i32> {
    let mut bad = 0;
    let mut all = vec![];
    for f in &a.files {
        match cordon_policy::load(f) {
            Ok(l) => {
                let warnings = l.warnings();
                if !a.json {
                    println!("{f}: ok ({} file{})", l.layers.len(), if l.layers.len() == 1 { "" } else { "s" });
                    for w in &warnings {
                        eprintln!("cordon: WARNING: {w}");
                    }
                }
                let ws: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
                all.push(serde_json::json!({"file": f, "ok": true, "errors": [], "warnings": ws}));
            }
            Err(e) => {
                bad += 1;
                let diags = e.diagnostics();
                if a.json {
                    let errs: Vec<_> = if diags.is_empty() {
                        vec![serde_json::json!({"message": e.to_string()})]
                    } else {
                        diags.iter().map(|d| serde_json::json!({"file": d.file, "line": d.line, "col": d.col, "field": d.field, "message": d.message, "hint": d.hint})).collect()
                    };
                    all.push(serde_json::json!({"file": f, "ok": false, "errors": errs}));
                } else {
                    eprintln!("{e}");
                }
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(if bad > 0 { 1 } else { 0 })
}

fn test(a: TestArgs) -> Result<i32> {
    let ws = super::workspace(a.workspace.as_deref())?;
    let (_, c) = super::load(&a.policy, &ws)?;
    if c.tests.is_empty() {
        bail!("{} has no [[test]] examples", a.policy);
    }
    let exe = std::env::current_exe()?;
    let mut failed = 0;
    let mut results = vec![];
    for t in &c.tests {
        let d = decide::example(&c, &t.probe);
        let plan_ok = d.allow == t.expect_allow;
        // A real check where it is safe: read probes, and write probes on files that already exist
        // (opened for append, nothing written).
        let real = if a.plan_only {
            None
        } else {
            match &t.probe {
                Probe::Read(p) if p.exists() => {
                    Some(format!("exec < '{}'", p.display().to_string().replace('\'', "'\\''")))
                }
                Probe::Write(p) if p.is_file() => {
                    Some(format!("exec 3>> '{}'", p.display().to_string().replace('\'', "'\\''")))
                }
                _ => None,
            }
        };
        let real_result = real.map(|script| {
            let st = std::process::Command::new(&exe)
                .args(["run", "-q", "--allow-degraded", "--policy"])
                .arg(&a.policy)
                .arg("--workspace")
                .arg(&ws)
                .args(["--", "/bin/sh", "-c", &format!("{script} 2>/dev/null")])
                .stderr(std::process::Stdio::null())
                .status();
            st.map(|s| s.code() == Some(0)).unwrap_or(false)
        });
        let real_ok = real_result.map(|allowed| allowed == t.expect_allow);
        let ok = plan_ok && real_ok.unwrap_or(true);
        if !ok {
            failed += 1;
        }
        let expect = if t.expect_allow { "allow" } else { "deny" };
        let how = match real_ok {
            Some(_) => "plan + sandbox",
            None => "plan",
        };
        if !a.json {
            println!(
                "{} {:<40} expect {expect:<5} [{how}] {}  ({})",
                if ok { "PASS" } else { "FAIL" },
                t.name,
                d.reason,
                t.at
            );
            if let (Some(r), false) = (real_result, real_ok.unwrap_or(true)) {
                println!("     the sandbox {} it", if r { "allowed" } else { "denied" });
            }
        }
        results.push(serde_json::json!({"name": t.name, "at": t.at, "expect": expect, "plan": d.allow, "sandbox": real_result, "ok": ok, "reason": d.reason}));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!("{} passed, {} failed", c.tests.len() - failed, failed);
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
