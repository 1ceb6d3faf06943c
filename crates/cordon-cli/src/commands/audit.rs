//! `cordon audit verify|ls|show|export|ship`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use cordon_schema::time::utc;
use std::io::Write as _;
use std::path::PathBuf;

mod follow;
pub mod ship;
mod show;

#[derive(Subcommand)]
#[command(about = "Inspect and verify the tamper-evident session record")]
pub enum AuditCmd {
    /// Check the whole log: any edit, deletion, insertion, reordering or truncation is named by its
    /// first bad record. Unfinished sessions and records waiting in the recovery spool are listed,
    /// not treated as tampering. A log that cannot be read (missing, not a database, its table
    /// gone) never verifies.
    ///
    /// Exit status: 0 the log verifies, 1 it does not (tampered or unreadable), 2 usage error.
    #[command(
        after_help = "Without an anchor, a log cut short together with its head file, re-signed with its own key, cannot be told from a shorter log: keep a copy of `cordon audit head` (or `cordon run --head-copy`) where the sessions' user cannot write, and check against it with --expect-head. docs/SECURITY.md says what the log guarantees."
    )]
    Verify(VerifyArgs),
    /// Print the log's signed head (the last sealed record, signed with the log's key) as one JSON
    /// line, to keep elsewhere as an anchor: `cordon audit verify --expect-head FILE` then detects
    /// records removed after it even if the head file next to the log was rewritten.
    Head(Common),
    /// List sessions.
    Ls(Common),
    /// A session's timeline: a header, then one line per record (time since the start, kind, what
    /// happened); refusals and alerts are marked `!`. `--json` prints the records as stored.
    Show(ShowArgs),
    /// A session's records as JSON lines or OpenTelemetry log JSON.
    Export(ExportArgs),
    /// Deliver the log to `cordon server`: every record the server has not acknowledged yet, in
    /// order, in batches; the server verifies the chain and the seals. The log stays the spool:
    /// nothing is removed, and a record the server stored already is counted once.
    Ship(ship::ShipArgs),
}

#[derive(Args)]
pub struct Common {
    /// The audit log (default: $CORDON_AUDIT, else $XDG_STATE_HOME/cordon/audit.db, or
    /// /var/lib/cordon/audit.db as root). Read-only commands never create it.
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// A head printed earlier by `cordon audit head` (or written by `cordon run --head-copy`): the
    /// log must still hold the record it names, signed by the same key.
    #[arg(long, value_name = "FILE")]
    pub expect_head: Option<PathBuf>,
}

#[derive(Args)]
pub struct ShowArgs {
    /// Session id, or a prefix that matches exactly one session (compared literally); or a gateway
    /// call, SESSION#N (its number as `cordon audit show SESSION` prints it): the call and its
    /// effects (processes, files written, connections, refusals) from the session it ran in.
    pub session: String,
    #[command(flatten)]
    pub common: Common,
    /// Only refusals: the supervisor's denials, the sensor's deny events, the proxy's refused
    /// connections.
    #[arg(long)]
    pub denials: bool,
    /// Only alerts (detection rules that fired).
    #[arg(long)]
    pub alerts: bool,
    /// Only entries of this kind: a record kind (start, denial, egress, limit, alert,
    /// sensor.summary, end, seal, ...) or a sensor event kind (sensor.exec, sensor.open, ...).
    /// Repeatable; with --denials or --alerts, an entry matching any of them is shown.
    #[arg(long, value_name = "K")]
    pub kind: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    OtlpJson,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Session id, or a prefix that matches exactly one session (compared literally).
    pub session: String,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// The audit log (default as for `cordon audit ls`).
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
}

fn path(p: &Option<PathBuf>) -> Result<PathBuf> {
    match p {
        Some(p) => Ok(cordon_audit::files::absolute(p)?),
        None => Ok(cordon_audit::default_path()),
    }
}

pub fn run(cmd: AuditCmd) -> Result<i32> {
    match cmd {
        AuditCmd::Verify(a) => verify(a),
        AuditCmd::Head(c) => head(c),
        AuditCmd::Ls(c) => ls(c),
        AuditCmd::Show(a) => show(a),
        AuditCmd::Export(a) => export(a),
        AuditCmd::Ship(a) => ship::run(a),
    }
}

fn verify(a: VerifyArgs) -> Result<i32> {
    let p = path(&a.common.audit)?;
    let expect = match &a.expect_head {
        None => None,
        Some(f) => match cordon_audit::Head::read(f) {
            Ok(Some(h)) => Some(h),
            // A usage error (exit 2): nothing was verified against an anchor that is not there.
            Ok(None) => return usage(&format!("--expect-head {}: no such file", f.display())),
            Err(m) => return usage(&format!("--expect-head: {m}")),
        },
    };
    let r = cordon_audit::verify_with(&p, expect.as_ref()).map_err(anyhow::Error::msg)?;
    if a.common.json {
        let mut v = serde_json::to_value(&r)?;
        v["ok"] = r.ok().into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if r.ok() { 0 } else { 1 });
    }
    match (&r.unreadable, &r.first_bad) {
        (Some(why), _) => println!("{}: UNREADABLE, nothing verified: {why}", p.display()),
        (None, Some(b)) => println!("{}: TAMPERED: first bad record {}: {}", p.display(), b.seq, b.what),
        (None, None) => {
            let anchored = if r.anchor_matches == Some(true) { ", and the anchored head is in it" } else { "" };
            println!(
                "{}: ok: {} records, {} sessions ({} sealed), chain and signatures verify{anchored}",
                p.display(),
                r.records,
                r.sessions,
                r.sealed
            )
        }
    }
    for u in &r.unfinished {
        println!("unfinished session {u} (started, never sealed: cordon was killed or is still running)");
    }
    for s in &r.pending {
        match &s.problem {
            None => println!("pending: {} record(s) of session {} in the recovery spool {} (not yet in the chain; the next `cordon run` imports them)", s.records, s.session, s.file.display()),
            Some(m) => println!("pending, UNREADABLE: {m}"),
        }
    }
    Ok(if r.ok() { 0 } else { 1 })
}

fn usage(msg: &str) -> Result<i32> {
    eprintln!(
        "cordon: error: {msg}\n  hint: give the file `cordon audit head` printed (or `cordon run --head-copy` wrote)"
    );
    Ok(2)
}

fn head(c: Common) -> Result<i32> {
    let p = path(&c.audit)?;
    let s = cordon_audit::Store::open_read_only(&p)?;
    let h = s
        .head()?
        .ok_or_else(|| anyhow::anyhow!("{} has no head file: no session was sealed in it yet", p.display()))?;
    // An anchor is only worth keeping if the log holds what it names.
    let r = cordon_audit::verify_with(&p, Some(&h)).map_err(anyhow::Error::msg)?;
    if r.anchor_matches != Some(true) {
        bail!(
            "the head of {} does not match the log (`cordon audit verify` says why); not printing it as an anchor",
            p.display()
        );
    }
    print!("{}", h.to_line());
    Ok(0)
}

fn ls(c: Common) -> Result<i32> {
    let s = cordon_audit::Store::open_read_only(&path(&c.audit)?)?;
    let rows = s.sessions()?;
    let mut out = std::io::stdout().lock();
    if c.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(0);
    }
    let header = format!(
        "{:<16}  {:<19}  {:>9}  {:>4}  {:>6}  {:>6}  {:<10}  {:<8}  {}",
        "SESSION", "STARTED (UTC)", "DURATION", "EXIT", "DENIED", "ALERTS", "STATE", "POLICY", "WORKSPACE  COMMAND"
    );
    writeln!(out, "{header}")?;
    for r in rows {
        writeln!(out, "{}", ls_line(&r))?;
    }
    Ok(0)
}

/// One session on one line: a multi-line or tabbed command is escaped, never spread over lines.
fn ls_line(r: &cordon_audit::SessionRow) -> String {
    let cmd = r.summary["command"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let (duration, exit, denied) = if r.end.is_null() {
        ("-".to_string(), "-".to_string(), "-".to_string())
    } else {
        (
            format!("{:.2}s", r.end["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0),
            r.end["exit_code"].as_i64().map_or("?".into(), |c| c.to_string()),
            r.end["denials_total"].as_u64().unwrap_or(0).to_string(),
        )
    };
    format!(
        "{:<16}  {:<19}  {:>9}  {:>4}  {:>6}  {:>6}  {:<10}  {:<8}  {}  {}",
        r.session,
        utc(r.started_ms),
        duration,
        exit,
        denied,
        r.alerts,
        state(r),
        r.summary["policy"]["name"].as_str().unwrap_or("?"),
        one_line(r.summary["workspace"].as_str().unwrap_or("?")),
        one_line(&cmd)
    )
}

/// sealed, unfinished, or `not run` when the command never started (the sandbox could not be set
/// up, or the program could not be executed): the session is recorded, nothing of it ran.
fn state(r: &cordon_audit::SessionRow) -> &'static str {
    match r.end["ending"]["kind"].as_str() {
        Some("setup_failed" | "exec_failed") => "not run",
        _ if r.sealed => "sealed",
        _ => "unfinished",
    }
}

/// Control characters shown as escapes (`\n`, `\t`, `\u{1b}`), so one record stays one line.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn show(a: ShowArgs) -> Result<i32> {
    let filter = show::Filter { denials: a.denials, alerts: a.alerts, kinds: a.kind };
    if let Some(msg) = filter.unknown_kind() {
        eprintln!("cordon: error: {msg}");
        return Ok(2);
    }
    let s = cordon_audit::Store::open_read_only(&path(&a.common.audit)?)?;
    // GATEWAY_SESSION#N: one call of a gateway, with its effects.
    if let Some((prefix, n)) = a.session.rsplit_once('#') {
        let Ok(n) = n.parse::<u64>() else {
            anyhow::bail!(
                "`{}`: a call is named SESSION#N (N: the call's number, as `cordon audit show SESSION` prints it, e.g. gw-1a2b#3)",
                a.session
            );
        };
        let id = s.resolve_session(prefix)?;
        let recs = s.records(&id)?;
        return show::call(&mut std::io::stdout().lock(), &s, &id, n, &recs, a.common.json);
    }
    let id = s.resolve_session(&a.session)?;
    let recs = s.records(&id)?;
    show::show(&mut std::io::stdout().lock(), &id, &recs, &filter, a.common.json)?;
    Ok(0)
}

fn export(a: ExportArgs) -> Result<i32> {
    let s = cordon_audit::Store::open_read_only(&path(&a.audit)?)?;
    let recs = s.records(&s.resolve_session(&a.session)?)?;
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Jsonl => {
            for r in recs {
                for (kind, ts, body) in entries(&r) {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"seq": r.seq, "session": r.session, "kind": kind, "ts_ms": ts, "body": body})
                    )?;
                }
            }
        }
        Format::OtlpJson => writeln!(out, "{}", serde_json::to_string(&otlp(&recs))?)?,
    }
    Ok(0)
}

fn otlp(recs: &[cordon_audit::Record]) -> serde_json::Value {
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
    serde_json::json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cordon"}}]}, "scopeLogs": [{"scope": {"name": "cordon.audit"}, "logRecords": logs}]}]})
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

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_escapes_control_characters() {
        assert_eq!(super::one_line("a\nb\tc"), "a\\nb\\tc");
    }
}
