//! `cordon rules check|show|test`.

use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
#[command(about = "Check, show and test detection rules")]
pub enum RulesCmd {
    /// Check rule files (errors give file:line:col, the field and a hint).
    Check {
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Print a rule set (e.g. builtin:agent).
    Show { spec: String },
    /// Run rules against a recorded session from the audit log.
    Test(TestArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// Session id (or unique prefix) in the audit log.
    pub session: String,
    #[arg(long, default_value = "builtin:agent")]
    pub rules: String,
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: RulesCmd) -> Result<i32> {
    match cmd {
        RulesCmd::Check { files } => {
            let mut bad = 0;
            for f in files {
                match cordon_rules::load(&f) {
                    Ok(s) => println!("{f}: ok ({} rules)", s.rules.len()),
                    Err(e) => {
                        bad += 1;
                        eprintln!("{e}");
                    }
                }
            }
            Ok(if bad > 0 { 1 } else { 0 })
        }
        RulesCmd::Show { spec } => {
            match spec.strip_prefix("builtin:").and_then(cordon_rules::builtin) {
                Some(t) => print!("{t}"),
                None => print!(
                    "{}",
                    cordon_policy::load::read_file(std::path::Path::new(&spec)).map_err(|e| anyhow::anyhow!("{e}"))?
                ),
            }
            Ok(0)
        }
        RulesCmd::Test(a) => {
            let set = cordon_rules::load(&a.rules).map_err(|e| anyhow::anyhow!("{e}"))?;
            let store =
                cordon_audit::Store::open_read_only(&a.audit.clone().unwrap_or_else(cordon_audit::default_path))?;
            let recs = store.records(&store.resolve_session(&a.session)?)?;
            let mut engine = cordon_rules::Engine::new(set);
            let mut alerts = vec![];
            for r in &recs {
                for (kind, ts, ev) in super::audit::entries(r) {
                    // Sensor events are matched by their own kind (open, exec, deny, ...).
                    // Records of kinds no rule can be about (alert, seal, ...) are skipped.
                    let Some(kind) = cordon_rules::Subject::parse(kind.strip_prefix("sensor.").unwrap_or(&kind)) else {
                        continue;
                    };
                    let n = ev["count"].as_u64().unwrap_or(1).clamp(1, 100_000);
                    for _ in 0..n {
                        alerts.extend(engine.feed(kind, ts, &ev));
                    }
                }
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&alerts)?);
            } else {
                for al in &alerts {
                    println!("{:?} [{}] {}", al.action, al.rule, al.reason);
                }
                println!("{} alert(s) over {} records", alerts.len(), recs.len());
            }
            Ok(0)
        }
    }
}
