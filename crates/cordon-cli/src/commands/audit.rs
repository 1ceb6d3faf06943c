//! `cordon audit verify|ls|show|export`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Subcommand)]
#[command(about = "Inspect and verify the tamper-evident session record")]
pub enum AuditCmd {
    /// Check the whole log: any edit, deletion, insertion, reordering or truncation is named by its
    /// first bad record (exit status 1). Unfinished sessions are listed, not treated as tampering.
    Verify(Common),
    /// List sessions.
    Ls(Common),
    /// A session's timeline.
    Show(ShowArgs),
    /// A session's records as JSON lines or OpenTelemetry log JSON.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct Common {
    /// The audit log (default: $XDG_STATE_HOME/cordon/audit.db, /var/lib/cordon/audit.db as root).
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    /// Session id (or a unique prefix).
    pub session: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    OtlpJson,
}

#[derive(Args)]
pub struct ExportArgs {
    pub session: String,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
}

fn path(p: &Option<PathBuf>) -> PathBuf {
    p.clone().unwrap_or_else(cordon_audit::default_path)
}

pub fn run(cmd: AuditCmd) -> Result<i32> {
    match cmd {
        AuditCmd::Verify(c) => {
            let p = path(&c.audit);
            let r = cordon_audit::verify(&p).map_err(|e| anyhow::anyhow!(e))?;
            if c.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                match &r.first_bad {
                    None => println!("{}: ok: {} records, {} sessions ({} sealed), chain and signatures verify", p.display(), r.records, r.sessions, r.sealed),
                    Some(b) => println!("{}: TAMPERED: first bad record {}: {}", p.display(), b.seq, b.what),
                }
                for u in &r.unfinished {
                    println!("unfinished session {u} (started, never sealed: cordon was killed or is still running)");
                }
            }
            Ok(if r.ok() { 0 } else { 1 })
        }
        AuditCmd::Ls(c) => {
            let s = cordon_audit::Store::open(&path(&c.audit))?;
            let rows = s.sessions()?;
            if c.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in rows {
                    let cmd = r.summary["command"].as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")).unwrap_or_default();
                    println!("{}  {:>6} records  {}  {}  {}", r.session, r.records, if r.sealed { "sealed    " } else { "unfinished" }, r.summary["policy"]["name"].as_str().unwrap_or("?"), cmd);
                }
            }
            Ok(0)
        }
        AuditCmd::Show(a) => {
            let s = cordon_audit::Store::open(&path(&a.common.audit))?;
            let recs = s.records(&a.session)?;
            if recs.is_empty() {
                bail!("no session matching `{}` in {}", a.session, s.path().display());
            }
            if a.common.json {
                println!("{}", serde_json::to_string_pretty(&recs)?);
                return Ok(0);
            }
            let t0 = recs[0].ts_ms;
            for r in recs {
                for (kind, ts, body) in entries(&r) {
                    let text = if kind.starts_with("sensor.") { serde_json::from_value::<cordon_sensor::Event>(body.clone()).map(|e| e.line()).unwrap_or_else(|_| body.to_string()) } else { body.to_string() };
                    println!("+{:>8.3}s  #{:<6} {:<14} {}", (ts - t0) as f64 / 1000.0, r.seq, kind, text.chars().take(200).collect::<String>());
                }
            }
            Ok(0)
        }
        AuditCmd::Export(a) => {
            let s = cordon_audit::Store::open(&path(&a.audit))?;
            let recs = s.records(&a.session)?;
            if recs.is_empty() {
                bail!("no session matching `{}`", a.session);
            }
            match a.format {
                Format::Jsonl => {
                    for r in recs {
                        for (kind, ts, body) in entries(&r) {
                            println!("{}", serde_json::json!({"seq": r.seq, "session": r.session, "kind": kind, "ts_ms": ts, "body": body}));
                        }
                    }
                }
                Format::OtlpJson => {
                    let logs: Vec<serde_json::Value> = recs
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "timeUnixNano": (r.ts_ms as u128 * 1_000_000).to_string(),
                                "severityText": if r.kind == "denial" { "WARN" } else { "INFO" },
                                "body": {"stringValue": r.body},
                                "attributes": [
                                    {"key": "cordon.session", "value": {"stringValue": r.session}},
                                    {"key": "cordon.kind", "value": {"stringValue": r.kind}},
                                    {"key": "cordon.seq", "value": {"intValue": r.seq.to_string()}}
                                ]
                            })
                        })
                        .collect();
                    let doc = serde_json::json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cordon"}}]}, "scopeLogs": [{"scope": {"name": "cordon.audit"}, "logRecords": logs}]}]});
                    println!("{}", serde_json::to_string(&doc)?);
                }
            }
            Ok(0)
        }
    }
}

/// A record's entries: one, or for `sensor` records (batches of sensor events) one per event, with
/// kind `sensor.<event kind>`.
pub fn entries(r: &cordon_audit::Record) -> Vec<(String, i64, serde_json::Value)> {
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    match (r.kind.as_str(), body) {
        ("sensor", serde_json::Value::Array(evs)) => evs
            .into_iter()
            .map(|e| {
                let kind = format!("sensor.{}", e["kind"].as_str().unwrap_or("?"));
                let ts = e["time"].as_u64().map(|t| (t / 1_000_000) as i64).unwrap_or(r.ts_ms);
                (kind, ts, e)
            })
            .collect(),
        (_, body) => vec![(r.kind.clone(), r.ts_ms, body)],
    }
}
