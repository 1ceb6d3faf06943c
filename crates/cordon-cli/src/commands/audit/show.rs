//! `cordon audit show SESSION` for people: a header (session, policy, workspace, command, how it
//! ended), then one line per record or sensor event: its time since the start, its kind and the fact
//! in words; refusals and alerts marked with `!` and the words DENIED and ALERT. `--denials`,
//! `--alerts` and `--kind K` keep only those entries; `--json` prints the records as stored (or,
//! with a filter, the matching entries as `cordon audit export` shapes them).

use super::{entries, one_line, utc};
use cordon_schema::bodies::{End, Limit, Start};
use cordon_schema::outcome::Ending;
use cordon_schema::{Denial, Event, Kind, RecordKind};
use serde_json::Value;
use std::io::Write;

/// Which entries to show; empty: all.
pub struct Filter {
    pub denials: bool,
    pub alerts: bool,
    pub kinds: Vec<String>,
}

impl Filter {
    pub fn any(&self) -> bool {
        self.denials || self.alerts || !self.kinds.is_empty()
    }

    /// A `--kind` that names no record kind and no sensor event kind: the usage error's text.
    pub fn unknown_kind(&self) -> Option<String> {
        let bad = self.kinds.iter().find(|k| !valid_kinds().contains(k))?;
        let records: Vec<&str> = RecordKind::ALL.iter().map(|k| k.as_str()).collect();
        let sensor: Vec<String> = Kind::ALL.iter().map(|k| format!("sensor.{}", k.as_str())).collect();
        Some(format!(
            "--kind {bad}: not a kind of record\n  hint: a record kind ({}) or a sensor event kind ({})",
            records.join(", "),
            sensor.join(", ")
        ))
    }

    fn keeps(&self, kind: &str, body: &Value) -> bool {
        if !self.any() {
            return true;
        }
        (self.denials && is_denial(kind, body))
            || (self.alerts && kind == RecordKind::Alert.as_str())
            || self.kinds.iter().any(|k| k == kind || (k == "sensor" && kind.starts_with("sensor.")))
    }
}

fn valid_kinds() -> Vec<String> {
    RecordKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .chain(Kind::ALL.iter().map(|k| format!("sensor.{}", k.as_str())))
        .collect()
}

fn is_denial(kind: &str, body: &Value) -> bool {
    kind == RecordKind::Denial.as_str()
        || kind == "sensor.deny"
        || (kind == RecordKind::Egress.as_str() && body["allowed"] == Value::Bool(false))
}

pub fn show(
    out: &mut impl Write,
    session: &str,
    recs: &[cordon_audit::Record],
    filter: &Filter,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        if !filter.any() {
            writeln!(out, "{}", serde_json::to_string_pretty(recs)?)?;
            return Ok(());
        }
        let kept: Vec<Value> = recs
            .iter()
            .flat_map(|r| entries(r).into_iter().map(move |e| (r, e)))
            .filter(|(_, (kind, _, body))| filter.keeps(kind, body))
            .map(|(r, (kind, ts, body))| {
                serde_json::json!({"seq": r.seq, "session": r.session, "kind": kind, "ts_ms": ts, "body": body})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&kept)?)?;
        return Ok(());
    }
    let gateway = gateway_start(recs);
    match &gateway {
        Some(g) => gateway_header(out, session, recs, g)?,
        None => header(out, session, recs)?,
    }
    writeln!(out, "{:<10} {:<1} {:<14} WHAT", "TIME", "", "KIND")?;
    let t0 = recs.first().map(|r| r.ts_ms).unwrap_or(0);
    // A gateway's calls: one line each, its result (a later record) folded into it.
    let results: std::collections::HashMap<u64, Value> = recs
        .iter()
        .filter(|r| r.kind == RecordKind::ToolResult.as_str())
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter_map(|b| Some((b["call"].as_u64()?, b)))
        .collect();
    let sealed = recs.iter().any(|r| r.kind == RecordKind::Seal.as_str());
    for r in recs {
        for (kind, ts, body) in entries(r) {
            if !filter.keeps(&kind, &body) {
                continue;
            }
            if kind == RecordKind::ToolResult.as_str() && !filter.kinds.iter().any(|k| k == &kind) {
                continue;
            }
            let refused = kind == RecordKind::ToolCall.as_str() && body["decision"] == "deny";
            let mark = if refused
                || is_denial(&kind, &body)
                || kind == RecordKind::Alert.as_str()
                || kind == RecordKind::Review.as_str()
            {
                "!"
            } else {
                ""
            };
            let text = if kind == RecordKind::ToolCall.as_str() {
                call_line(&body, body["call"].as_u64().and_then(|n| results.get(&n)), sealed)
            } else {
                words(&kind, &body)
            };
            writeln!(
                out,
                "{:<10} {mark:<1} {kind:<14} {}",
                format!("+{:.3}s", (ts - t0) as f64 / 1000.0),
                one_line(&text)
            )?;
        }
    }
    Ok(())
}

/// The `gateway` part of a gateway session's start record (`cordon gateway`), if it is one.
fn gateway_start(recs: &[cordon_audit::Record]) -> Option<Value> {
    let start = recs.iter().find(|r| r.kind == RecordKind::Start.as_str())?;
    let v: Value = serde_json::from_str(&start.body).ok()?;
    v.get("gateway").filter(|g| g.is_object()).cloned()
}

/// A gateway session in three lines: its config and servers, how it ended.
fn gateway_header(out: &mut impl Write, session: &str, recs: &[cordon_audit::Record], g: &Value) -> anyhow::Result<()> {
    let servers: Vec<String> = g["servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| format!("{} ({})", s["name"].as_str().unwrap_or("?"), s["policy"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    writeln!(
        out,
        "gateway session {session}  config {}  pinning {}",
        one_line(g["config"].as_str().unwrap_or("?")),
        g["pinning"].as_str().unwrap_or("?")
    )?;
    writeln!(out, "servers: {}", one_line(&servers.join(", ")))?;
    let end = recs
        .iter()
        .find(|r| r.kind == RecordKind::End.as_str())
        .and_then(|r| serde_json::from_str::<Value>(&r.body).ok());
    let sealed = recs.iter().any(|r| r.kind == RecordKind::Seal.as_str());
    let started = recs.first().map(|r| utc(r.ts_ms)).unwrap_or_default();
    let ended = match end {
        Some(e) => format!(
            "ended after {:.2}s: {} call(s), {} refused",
            e["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
            e["calls"].as_u64().unwrap_or(0),
            e["refused"].as_u64().unwrap_or(0)
        ),
        None => "unfinished (no end record: the gateway was killed, or it is still serving)".into(),
    };
    writeln!(out, "started {started} UTC, {ended}; {}", if sealed { "sealed" } else { "not sealed" })?;
    writeln!(out, "a call with its effects: cordon audit show {session}#N (N: the number after #)")?;
    Ok(())
}

/// Whether an entry of a server's session is an effect worth naming under a call: a process
/// started, a file written, made, renamed or removed, a connection, a refusal, an alert, a limit.
/// Cordon's own setup of the session is not.
fn effect(kind: &str, body: &Value) -> bool {
    if body["setup"] == true {
        return false;
    }
    match kind {
        "sensor.open" => body["write"] == true,
        "sensor.exec" | "sensor.connect" | "sensor.bind" | "sensor.net" | "sensor.unlink" | "sensor.rename"
        | "sensor.mkdir" | "sensor.truncate" | "sensor.chmod" | "sensor.chown" | "sensor.kill" | "sensor.ptrace"
        | "sensor.mount" | "sensor.deny" => true,
        k => {
            k == RecordKind::Denial.as_str()
                || k == RecordKind::Egress.as_str()
                || k == RecordKind::Alert.as_str()
                || k == RecordKind::Limit.as_str()
        }
    }
}

/// `cordon audit show GATEWAY#N`: call N of the gateway session `gw` (its records `recs`), then
/// what it did on the machine: the effects recorded in the sandbox session it ran in, from its
/// forwarding on. Under `isolation = "call"` the session is the call's own: everything from then
/// to the session's end is the call's. Under `"server"` the session is shared by the server's
/// calls: the effects are those between the call's forwarding and its answer, shown only when no
/// other call to that server was in flight meanwhile (otherwise they cannot be told apart, and
/// the output says so).
pub fn call(
    out: &mut impl Write,
    store: &cordon_audit::Store,
    gw: &str,
    n: u64,
    recs: &[cordon_audit::Record],
    json: bool,
) -> anyhow::Result<i32> {
    let body = |r: &cordon_audit::Record| serde_json::from_str::<Value>(&r.body).unwrap_or_default();
    let is = |r: &cordon_audit::Record, k: RecordKind| r.kind == k.as_str();
    let Some(c) = recs.iter().find(|r| is(r, RecordKind::ToolCall) && n > 0 && body(r)["call"] == n) else {
        anyhow::bail!(
            "session {gw} has no call #{n}\n  hint: `cordon audit show {gw}` lists its calls (refused calls ran nothing: they have no effects)"
        );
    };
    let cb = body(c);
    let result = recs.iter().find(|r| is(r, RecordKind::ToolResult) && body(r)["call"] == n);
    let rb = result.map(body);
    let sealed = recs.iter().any(|r| is(r, RecordKind::Seal));
    let session = cb["session"].as_str().unwrap_or("").to_string();
    let own = cb["isolation"] == "call";
    let overlapped = rb.as_ref().is_some_and(|r| r["overlapped"] == true);
    let (from, to) = match (own, &result) {
        (true, _) => (c.ts_ms, i64::MAX),
        (false, Some(r)) => (c.ts_ms, r.ts_ms),
        (false, None) => (c.ts_ms, i64::MAX),
    };
    let srecs = if session.is_empty() { vec![] } else { store.records(&session)? };
    let effects: Vec<(String, i64, Value)> =
        srecs.iter().flat_map(super::entries).filter(|(k, ts, b)| effect(k, b) && *ts >= from && *ts <= to).collect();
    let watched = srecs.iter().any(|r| r.kind == RecordKind::Sensor.as_str() || is(r, RecordKind::SensorSummary));
    let exact = own || (!overlapped && result.is_some());
    if json {
        let shown: Vec<Value> = if exact {
            effects.iter().map(|(k, ts, b)| serde_json::json!({"kind": k, "ts_ms": ts, "body": b})).collect()
        } else {
            vec![]
        };
        let v = serde_json::json!({
            "gateway_session": gw, "call": cb, "result": rb, "session": session, "isolation": cb["isolation"],
            "watched": watched, "exact": exact, "effects": shown,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    writeln!(out, "call {gw}#{n}  {}", one_line(&call_line(&cb, rb.as_ref(), sealed)))?;
    if cb["decision"] == "deny" || session.is_empty() {
        writeln!(out, "it ran nothing: no sandbox session")?;
        return Ok(0);
    }
    let scope = if own {
        format!("session {session} is the call's own (isolation = \"call\"): everything in it from the call's forwarding on is the call's")
    } else {
        format!(
            "session {session} is server `{}`'s, shared by its calls (isolation = \"server\"): what it did between this call's forwarding and its answer",
            cb["server"].as_str().unwrap_or("?")
        )
    };
    writeln!(out, "{}", one_line(&scope))?;
    if !watched {
        writeln!(
            out,
            "the session was not watched by the eBPF sensor (the server's config: monitor = true, as root): processes, \
             files and connections were not recorded; refusals the sandbox reported are below"
        )?;
    }
    if !own && result.is_none() {
        writeln!(out, "NOT ATTRIBUTED: the call has no result recorded, so where its effects end is not known; the session's events: cordon audit show {session}")?;
        return Ok(0);
    }
    if !exact {
        writeln!(
            out,
            "NOT ATTRIBUTED: another call to server `{}` was in flight in the same session during this one, so the \
             session's events in this time cannot be told apart by call (isolation = \"call\" gives each call a session \
             of its own); the session's events: cordon audit show {session}",
            cb["server"].as_str().unwrap_or("?")
        )?;
        return Ok(0);
    }
    writeln!(out, "{} effect(s):", effects.len())?;
    writeln!(out, "{:<10} {:<1} {:<14} WHAT", "TIME", "", "KIND")?;
    for (kind, ts, b) in &effects {
        let mark = if is_denial(kind, b) || kind == RecordKind::Alert.as_str() { "!" } else { "" };
        writeln!(
            out,
            "{:<10} {mark:<1} {kind:<14} {}",
            format!("+{:.3}s", (ts - c.ts_ms) as f64 / 1000.0),
            one_line(&words(kind, b))
        )?;
    }
    Ok(0)
}

/// One gateway call: who, server.tool, the decision and its rule, and how it ended (its
/// `tool_result`: duration, size, error), or that no result was recorded.
fn call_line(c: &Value, result: Option<&Value>, sealed: bool) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let head =
        format!("#{} {} {}.{}", c["call"].as_u64().unwrap_or(0), s(&c["identity"]), s(&c["server"]), s(&c["tool"]));
    if c["decision"] == "deny" {
        return format!("{head} DENIED by {}: {}", s(&c["rule"]), c["error"].as_str().unwrap_or(""));
    }
    let how = match result {
        Some(r) => {
            let state = match (r["error"].as_str(), r["is_error"].as_bool()) {
                (Some(e), _) => format!("FAILED: {e}"),
                (None, Some(true)) => "tool error".into(),
                _ => "ok".into(),
            };
            format!(
                "{} ms, {} bytes, {state}",
                r["duration_ms"].as_u64().unwrap_or(0),
                r["result_bytes"].as_u64().unwrap_or(0)
            )
        }
        None if sealed => "no result recorded".into(),
        None => "started, no result recorded: the gateway was killed or crashed while the call ran (or it is \
                 still running)"
            .into(),
    };
    format!("{head} allowed by {} in session {}: {how}", s(&c["rule"]), s(&c["session"]))
}

/// The session in three lines: who and where, what ran, how it ended.
fn header(out: &mut impl Write, session: &str, recs: &[cordon_audit::Record]) -> anyhow::Result<()> {
    let body = |k: RecordKind| -> Option<Value> {
        recs.iter().find(|r| r.kind == k.as_str()).and_then(|r| serde_json::from_str(&r.body).ok())
    };
    let start: Option<Start> = body(RecordKind::Start).and_then(|v| serde_json::from_value(v).ok());
    let end: Option<End> = body(RecordKind::End).and_then(|v| serde_json::from_value(v).ok());
    let sealed = recs.iter().any(|r| r.kind == RecordKind::Seal.as_str());
    match &start {
        Some(s) => {
            writeln!(out, "session {session}  policy `{}`  workspace {}", s.policy.name, one_line(&s.workspace))?;
            writeln!(out, "command: {}", one_line(&s.command.join(" ")))?;
        }
        None => writeln!(out, "session {session}  (no start record)")?,
    }
    let alerts = recs.iter().filter(|r| r.kind == RecordKind::Alert.as_str()).count();
    let started = recs.first().map(|r| utc(r.ts_ms)).unwrap_or_default();
    let ended = match &end {
        Some(e) => format!("{}; {} denial(s), {alerts} alert(s)", ending(e), e.denials_total + sensor_denials(recs)),
        None => "unfinished (no end record: cordon was killed, or the session is still running)".into(),
    };
    writeln!(out, "started {started} UTC, {ended}; {}", if sealed { "sealed" } else { "not sealed" })?;
    Ok(())
}

fn sensor_denials(recs: &[cordon_audit::Record]) -> u64 {
    recs.iter()
        .find(|r| r.kind == RecordKind::SensorSummary.as_str())
        .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
        .and_then(|v| v["denials_total"].as_u64())
        .unwrap_or(0)
}

fn ending(e: &End) -> String {
    let after = format!("after {:.2}s", e.duration_ms as f64 / 1000.0);
    match &e.ending {
        Ending::Exited { code } => format!("exit {code} {after}"),
        Ending::Signaled { signal } => format!("killed by signal {signal} {after} (exit {})", e.exit_code),
        Ending::SetupFailed { error } => format!("not run: could not confine the command: {error}"),
        Ending::ExecFailed { errno, program } => format!(
            "not run: cannot execute {program}: {} (exit {})",
            std::io::Error::from_raw_os_error(*errno),
            e.exit_code
        ),
    }
}

/// One entry in words; a body that does not parse is shown as its JSON.
fn words(kind: &str, body: &Value) -> String {
    let typed = |f: &dyn Fn() -> Option<String>| f().unwrap_or_else(|| body.to_string());
    match RecordKind::parse(kind) {
        Some(RecordKind::Start) => typed(&|| {
            let s: Start = serde_json::from_value(body.clone()).ok()?;
            Some(format!(
                "ran `{}` in {} under policy `{}` (uid {}, kernel {}, Landlock ABI {}{})",
                s.command.join(" "),
                s.workspace,
                s.policy.name,
                s.uid,
                s.host.kernel,
                s.host.landlock_abi,
                if s.allow_degraded { ", degraded accepted" } else { "" }
            ))
        }),
        Some(RecordKind::Denial) => typed(&|| {
            let d: Denial = serde_json::from_value(body.clone()).ok()?;
            let times = if d.count > 1 { format!(" ×{}", d.count) } else { String::new() };
            Some(format!("DENIED [{}] {} by {}[{}]{times}: {}", d.layer, d.what, d.comm, d.pid, d.reason))
        }),
        Some(RecordKind::Egress) => typed(&|| {
            let d: cordon_schema::egress::Decision = serde_json::from_value(body.clone()).ok()?;
            Some(d.describe())
        }),
        Some(RecordKind::Limit) => typed(&|| {
            let l: Limit = serde_json::from_value(body.clone()).ok()?;
            Some(format!("limit hit: {}", l.text))
        }),
        Some(RecordKind::Alert) => typed(&|| {
            let a: cordon_schema::Alert = serde_json::from_value(body.clone()).ok()?;
            let stop = if a.action == cordon_schema::Action::Kill { " (session stopped)" } else { "" };
            Some(format!("ALERT [{}]{stop}: {}", a.rule, a.reason))
        }),
        Some(RecordKind::SensorSummary) => typed(&|| {
            let s: cordon_schema::sensor::Summary = serde_json::from_value(body.clone()).ok()?;
            Some(format!(
                "sensor: {} events, {} lost, {} refused, {} processes",
                s.events, s.lost, s.denials_total, s.processes
            ))
        }),
        Some(RecordKind::End) => typed(&|| {
            let e: End = serde_json::from_value(body.clone()).ok()?;
            let notes = e.notes.iter().map(|n| format!("; note: {n}")).collect::<String>();
            Some(format!("{}, {} denial(s){notes}", ending(&e), e.denials_total))
        }),
        Some(RecordKind::Review) => typed(&|| {
            let c: cordon_schema::review::Change = serde_json::from_value(body.clone()).ok()?;
            let sha = |h: &Option<String>| h.as_deref().map_or("-".to_string(), |h| h[..h.len().min(12)].to_string());
            let hold = match &c.hold {
                None => String::new(),
                Some(cordon_schema::review::Hold::Held { patch, patch_sha256 }) => {
                    format!("; held in {patch} (sha256 {patch_sha256})")
                }
                Some(cordon_schema::review::Hold::NotHeld { why }) => format!("; NOT HELD: {why}"),
            };
            Some(format!(
                "REVIEW {} {}: {} (`{}`: {}; sha256 {} -> {}){hold}",
                c.path,
                c.change.as_str(),
                c.summary,
                c.pattern,
                c.runs,
                sha(&c.before_sha256),
                sha(&c.after_sha256)
            ))
        }),
        Some(RecordKind::Seal) => format!(
            "sealed: records up to #{} signed with the log's key",
            body["covers_seq"].as_i64().map_or("?".into(), |n| n.to_string())
        ),
        Some(RecordKind::Recovered) => match (body["records"].as_u64(), body["file"].as_str(), body["reason"].as_str())
        {
            (Some(n), Some(f), Some(why)) => {
                format!("imported {n} record(s) from the recovery spool {f} (the log had refused them: {why})")
            }
            _ => format!("imported from the recovery spool: {body}"),
        },
        Some(RecordKind::Sensor) | None if kind.starts_with("sensor.") => {
            typed(&|| serde_json::from_value::<Event>(body.clone()).ok().map(|e| e.line()))
        }
        _ => body.to_string(),
    }
}
