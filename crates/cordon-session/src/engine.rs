//! A prepared session run to its end: the sensor and its pipeline (when monitored), the supervisor's
//! denial hook feeding the rules, the egress proxy on the sandbox's listeners, the sandbox itself;
//! then the proxy's refusals and the egress and limits judged by the rules, the end of the record
//! and its seal (or the spool), the report.

use crate::pipeline::{self, LiveSink};
use crate::prepare::Prepared;
use crate::recording::{self, now_ms};
use crate::{Result, SessionError};
use cordon_policy::Egress;
use cordon_rules::{Alert, Engine};
use cordon_sandbox::report::Outcome;
use cordon_sandbox::session::{CgroupHook, DenialHook, Session};
use cordon_schema::{bodies, Event, Kind, Layer, RecordKind, Subject};
use std::cell::RefCell;
use std::rc::Rc;

/// How a session ended, for the caller to render.
pub struct Finished {
    pub outcome: Outcome,
    pub alerts: Vec<Alert>,
    pub sensor: Option<cordon_sensor::Summary>,
    /// The rule that stopped the session through the sensor, if one did.
    pub killed_by: Option<String>,
    /// Warnings from after the command ended (a record spooled, a report not written, ...), one
    /// line each (without "cordon: "); never a different exit status.
    pub warnings: Vec<String>,
    /// Audit records that nothing could keep, one JSON line each, to print as a last resort.
    pub unsaved: Vec<String>,
    /// Changes to workspace files that run outside the sandbox (`fs.review`).
    pub review: cordon_schema::review::Review,
    /// What the session no longer needs (its plan, policy and rules: plain data, the audit log and
    /// every output already closed). A caller that exits next may leave it unfreed.
    pub rest: Rest,
}

/// See [`Finished::rest`].
pub struct Rest(#[allow(dead_code)] Box<Prepared>);

/// Runs the session. `live` receives the timeline when the sensor watches and no events file does.
pub fn run(mut p: Prepared, live: Option<LiveSink>) -> Result<Finished> {
    // Hold mode's place, checked before anything starts.
    let hold = crate::review::hold::target(&p)?;
    let rules = Rc::new(RefCell::new(Engine::new(p.rules.clone())));
    let alerts: Rc<RefCell<Vec<Alert>>> = Default::default();
    let sensor_cell: Rc<RefCell<Option<cordon_sensor::Sensor>>> = Default::default();
    let mut wiring = None;
    let on_cgroup = if p.spec.monitored() {
        let (hook, built) = sensor_hook(&mut p, live, sensor_cell.clone())?;
        wiring = Some(built);
        Some(hook)
    } else {
        None
    };
    let hook: DenialHook = {
        let (rules, alerts) = (rules.clone(), alerts.clone());
        let mut stream = p.stream.take();
        Box::new(move |d| {
            if let Some(s) = stream.as_mut() {
                s.append(d);
            }
            let ev = serde_json::to_value(d).unwrap_or_default();
            let found = rules.borrow_mut().feed(Subject::Record(RecordKind::Denial), now_ms(), &ev);
            let kill = crate::effects::wants_kill(&found);
            alerts.borrow_mut().extend(found);
            kill
        })
    };
    let protect_watch = crate::hints::ProtectWatch::start(&p.policy);
    // Before the command's first instruction: the reviewed files as they are.
    let review_watch = crate::review::Watch::start(&p.policy, &p.workspace);
    crate::timing::mark("engine: protect and review watches started");
    // The write watch and the no-network connect rule name refusals without the sensor; with it,
    // the sensor sees the real refusals, so they are left out of the filter.
    let on_write = if p.spec.monitored() {
        cordon_sandbox::plan::without_refusal_watches(&mut p.plan.environment.seccomp);
        cordon_sandbox::plan::without_refusal_watches(&mut p.plan.process.seccomp);
        None
    } else if !crate::refusals::watch_wanted() || !p.policy.fs.watch_writes {
        p.plan.environment.seccomp.watch.clear();
        p.plan.process.seccomp.watch.clear();
        None
    } else {
        Some(crate::refusals::write_hook(p.policy.clone(), p.plan.environment.ns.mount))
    };
    let outcome = Session {
        plan: &p.plan,
        session_id: p.session_id.clone(),
        interactive: p.spec.interactive,
        on_denial: Some(hook),
        on_cgroup,
        kill_after: p.spec.kill_after,
        on_egress: Some(crate::egress::hook(p.plan.environment.net.allow.clone())),
        on_write,
    }
    .run();
    crate::timing::cli("engine: sandbox returned (supervisor's teardown done)");
    // The sanitized copies and the stream are bound (or the session never started): their staging
    // goes now, not at a drop the CLI's exit would skip.
    drop(p.staging.take());
    let mut sensor = sensor_cell.borrow_mut().take().map(|s| s.finish());
    let sensor_audit = wiring.as_mut().map(|w: &mut pipeline::Built| w.finish_audit());
    let mut outcome = outcome?;
    outcome.notes.extend(protect_watch.map(|w| w.finish(&p.workspace)).unwrap_or_default());
    // The session has ended: none of its processes is left to race hold mode's restores.
    crate::timing::cli("engine: sensor, staging, protect watch");
    let review = review_watch.map(|w| w.finish(hold.as_ref())).unwrap_or_default();
    crate::timing::cli("engine: review finished");
    let mut warnings = vec![];
    if let Some(Err(e)) = &sensor_audit {
        warnings.push(format!("audit: sensor events could not all be recorded: {e}"));
    }
    let mut killed_by = None;
    if let Some(w) = &wiring {
        // The proxy's refusals are denials too; they come from the proxy, not the kernel.
        let extra: Vec<Event> =
            outcome.egress.iter().filter(|e| !e.allowed).map(|e| proxy_denial(&p.session_id, e)).collect();
        pipeline::finish_events(&w.shared, &p.session_id, &extra, sensor.as_mut());
        alerts.borrow_mut().extend(w.shared.alerts.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
        killed_by = w.shared.killed_by.lock().ok().and_then(|k| k.clone());
    }
    let cache_hints = crate::caches::hint(&p.policy, &p.spec.argv, &outcome, sensor.as_ref());
    outcome.notes.extend(cache_hints);
    if sensor.is_none() {
        let hints = crate::refusals::hints(&p.policy, &p.spec.argv, &p.workspace, &outcome);
        outcome.notes.extend(hints);
    }
    crate::timing::cli("engine: hints");
    judge_at_end(&mut rules.borrow_mut(), &outcome, &review, &mut alerts.borrow_mut());
    let alerts = alerts.borrow().clone();
    let mut unsaved = vec![];
    record_end(&mut p, &outcome, &review, &alerts, sensor.as_ref(), &mut warnings, &mut unsaved);
    crate::timing::cli("engine: audit record ended and sealed");
    write_report(&mut p, &outcome, &review, &alerts, sensor.as_ref(), &mut warnings);
    crate::timing::cli("engine: report written");
    close(&mut p);
    drop(wiring);
    crate::timing::cli("engine: audit log and outputs closed");
    Ok(Finished { outcome, alerts, sensor, killed_by, warnings, unsaved, review, rest: Rest(Box::new(p)) })
}

/// The sensor, loaded when the session's cgroups exist and before its first instruction; its
/// events go through the pipeline (events file, timeline, rules, audit).
fn sensor_hook(
    p: &mut Prepared,
    live: Option<LiveSink>,
    cell: Rc<RefCell<Option<cordon_sensor::Sensor>>>,
) -> Result<(CgroupHook, pipeline::Built)> {
    let audit = match &p.recording {
        Some(r) => Some(
            pipeline::AuditWriter::start(r.path().to_path_buf(), p.session_id.clone(), r.anchor())
                .map_err(|e| SessionError::Refused(e.to_string()))?,
        ),
        None => None,
    };
    let events = p.events.take().map(|o| o.into_events()).transpose()?;
    let live = if p.spec.events.is_none() { live } else { None };
    let mut built = pipeline::build(pipeline::Options {
        events,
        live,
        rules: p.rules.clone(),
        kill_cgroup: p.plan.environment.cgroup.v2_dir.clone(),
        audit,
    })?;
    let sink = built.sink.take().ok_or_else(|| SessionError::Sensor("sensor sink missing".into()))?;
    let (policy, plan) = (&p.policy, &p.plan);
    let attribution = cordon_sensor::Attribution {
        policy: Some(std::sync::Arc::new(policy.clone())),
        landlock: plan.process.landlock.enabled(),
        signal_scope: plan.process.landlock.scopes & cordon_sandbox::plan::landlock::SCOPE_SIGNAL != 0,
    };
    let net = cordon_sensor::NetRules { loopback_only: policy.net.egress != Egress::Open, allow: vec![] };
    // A call is watched when some rule refuses it; quiet answers (probes) are not refusals.
    let mut seccomp_watch: Vec<u32> =
        plan.process.seccomp.rules.iter().filter(|r| r.nr >= 0 && !r.action.is_quiet()).map(|r| r.nr as u32).collect();
    seccomp_watch.sort_unstable();
    seccomp_watch.dedup();
    let (sid, ring_bytes) = (p.session_id.clone(), p.ring_bytes);
    let hook: CgroupHook = Box::new(move |dir: Option<&std::path::Path>| {
        let dir = dir.ok_or("--monitor: the session has no cgroup v2 directory, which the sensor filters on (is cgroup2 mounted and writable? see `cordon doctor`)")?;
        let s = cordon_sensor::Sensor::start(cordon_sensor::Config {
            session: sid,
            cgroup: dir.to_path_buf(),
            net: Some(net).filter(|_| !cordon_sandbox::ablate::off(cordon_sandbox::ablate::Ablate::CgroupBpf)),
            attribution,
            session_start: true,
            seccomp_watch,
            ring_bytes: ring_bytes as u32,
            idle_read: cordon_sensor::IDLE_READ,
            sink,
        })
        .map_err(|e| e.to_string())?;
        *cell.borrow_mut() = Some(s);
        Ok(())
    });
    Ok((hook, built))
}

/// Egress decisions, limits and changes to reviewed files are judged when the session ends.
fn judge_at_end(
    rules: &mut Engine,
    outcome: &Outcome,
    review: &cordon_schema::review::Review,
    alerts: &mut Vec<Alert>,
) {
    let t = now_ms();
    for e in &outcome.egress {
        alerts.extend(rules.feed(Subject::Record(RecordKind::Egress), t, &serde_json::to_value(e).unwrap_or_default()));
    }
    for l in &outcome.limits_hit {
        alerts.extend(rules.feed(Subject::Record(RecordKind::Limit), t, &val(&bodies::Limit { text: l.clone() })));
    }
    for c in &review.changes {
        alerts.extend(rules.feed(Subject::Record(RecordKind::Review), t, &val(c)));
    }
    // Not a rule's: an incomplete review is an alert under every policy that reviews files.
    if review.capped {
        let cap = crate::review::max_entries();
        alerts.push(Alert {
            rule: "review-capped".into(),
            action: cordon_schema::Action::Alert,
            ts_ms: t,
            reason: format!("the review of files that run outside the sandbox stopped at its cap of {cap} workspace entries (a session can create files to push one past it): files beyond it were not compared and nothing was held; review the workspace's CI, build and package files yourself"),
            event: serde_json::json!({ "entries": review.entries, "max_entries": cap }),
        });
    }
}

/// The end of the record and the seal; a failure is a warning (the command ran), never lost.
fn record_end(
    p: &mut Prepared,
    outcome: &Outcome,
    review: &cordon_schema::review::Review,
    alerts: &[Alert],
    sensor: Option<&cordon_sensor::Summary>,
    warnings: &mut Vec<String>,
    unsaved: &mut Vec<String>,
) {
    let Some(rec) = p.recording.as_mut() else { return };
    let t = now_ms();
    let mut items: Vec<(RecordKind, i64, serde_json::Value)> = vec![];
    items.extend(outcome.denials.items.iter().map(|d| (RecordKind::Denial, t, val(d))));
    items.extend(outcome.egress.iter().map(|e| (RecordKind::Egress, t, val(e))));
    items.extend(outcome.limits_hit.iter().map(|l| (RecordKind::Limit, t, val(&bodies::Limit { text: l.clone() }))));
    items.extend(review.changes.iter().map(|c| (RecordKind::Review, t, val(c))));
    items.extend(alerts.iter().map(|al| (RecordKind::Alert, al.ts_ms, val(al))));
    if let Some(s) = sensor {
        let mut brief = val(s);
        if let Some(o) = brief.as_object_mut() {
            o.remove("denials");
        }
        items.push((RecordKind::SensorSummary, t, brief));
    }
    let end = bodies::End {
        ending: outcome.ending.clone(),
        exit_code: outcome.exit_code,
        duration_ms: outcome.duration_ms,
        peaks: outcome.peaks.clone(),
        denials_total: outcome.denials.total,
        notes: outcome.notes.clone(),
    };
    items.push((RecordKind::End, t, val(&end)));
    match rec.finish(items) {
        recording::Finished::Sealed => {
            if let (Some(o), Some(line)) = (p.head_copy.as_mut(), rec.head_line()) {
                if let Err(e) = o.replace(line.as_bytes()) {
                    warnings.push(format!("WARNING: --head-copy {}: {e}", o.path.display()));
                }
            }
        }
        recording::Finished::Spooled { error, file } => warnings.push(format!(
            "WARNING: the audit log {} did not take the end of this session ({error}); its records are kept in the recovery spool {} and go into the log (sealed) at the next cordon run; `cordon audit verify` lists them meanwhile",
            rec.path().display(),
            file.display()
        )),
        recording::Finished::Lost { error, records } => {
            unsaved.extend(records);
            warnings.push(format!("WARNING: the end of this session could not be recorded ({error}); its records were printed above as `cordon: audit record (unsaved)` lines"));
        }
    }
}

/// The audit log (its database connection, the recording's lock) and the outputs closed at the
/// session's end, each here and not at a drop: what is left of `p` is plain data, which a caller
/// about to exit need not free.
fn close(p: &mut Prepared) {
    drop(p.stream.take());
    drop(p.recording.take());
    drop((p.report.take(), p.events.take(), p.head_copy.take()));
    drop(p.staging.take());
}

/// `--report`: the command ran, so a report that cannot be written is a warning.
fn write_report(
    p: &mut Prepared,
    outcome: &Outcome,
    review: &cordon_schema::review::Review,
    alerts: &[Alert],
    sensor: Option<&cordon_sensor::Summary>,
    warnings: &mut Vec<String>,
) {
    let Some(out) = p.report.as_mut() else { return };
    let report = bodies::Report {
        schema: bodies::REPORT_SCHEMA.into(),
        policy: bodies::ReportPolicy { name: p.policy.name.clone(), sources: p.policy.sources.clone() },
        workspace: p.workspace.to_string_lossy().into_owned(),
        command: p.plan.process.argv_text(),
        outcome: outcome.clone(),
        alerts: alerts.to_vec(),
        guarantees: p.plan.guarantees.clone(),
        env_dropped: p.plan.process.env_dropped.clone(),
        sensor: sensor.cloned(),
        review: review.clone(),
    };
    // Through a JSON value: the same key order as every other JSON document cordon writes.
    let doc = val(&report);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    if let Err(e) = out.replace(text.as_bytes()) {
        warnings.push(format!("WARNING: --report {}: cannot write the report: {e}", out.path.display()));
    }
}

/// A proxy refusal as a sensor-style denial event (for the events file and the rules).
fn proxy_denial(session: &str, d: &cordon_schema::egress::Decision) -> Event {
    let (host, port) = (&d.host, d.port);
    Event {
        v: cordon_schema::SCHEMA_VERSION,
        kind: Kind::Deny,
        time: (now_ms() as u64) * 1_000_000,
        session: session.into(),
        pid: d.pid,
        op: Some(Kind::Connect),
        addr: Some(format!("{host}:{port}")),
        layer: Some(Layer::Proxy),
        reason: Some(proxy_denial_reason(d)),
        ..Default::default()
    }
}

/// The proxy's own reason, plus how to allow the host when what refused it was the allowlist (and
/// only then: a host on the allowlist that resolved to an internal address needs an IP entry,
/// which the proxy's reason names).
fn proxy_denial_reason(d: &cordon_schema::egress::Decision) -> String {
    let (host, port) = (&d.host, d.port);
    if d.rule.starts_with("net.allow") {
        format!(
            "{}; if the task needs {host}:{port}, ask the user to add it (cordon run --allow-net {host}:{port})",
            d.describe()
        )
    } else {
        d.describe()
    }
}

/// A value the record holds as JSON (plain structs: cannot fail; `null` if it ever did).
fn val<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(rule: &str) -> cordon_schema::egress::Decision {
        cordon_schema::egress::Decision {
            at_ms: 0,
            allowed: false,
            protocol: "connect".into(),
            host: "docs.example".into(),
            port: 443,
            ip: None,
            rule: rule.into(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            pid: 0,
            exe: String::new(),
        }
    }

    /// One decision, one reason: a host that is on the allowlist is never told to get itself added.
    #[test]
    fn a_refusal_of_an_allowed_host_does_not_say_it_is_not_allowed() {
        let r = proxy_denial_reason(&decision("internal-address: docs.example is allowed by `docs.example:443`, but it resolves to 192.0.2.7, in the documentation (192.0.2.0/24) range; ..."));
        assert!(r.contains("documentation (192.0.2.0/24)") && !r.contains("ask the user to add it"), "{r}");
        let r = proxy_denial_reason(&decision("net.allow: docs.example:443 is not in the session's network allowlist"));
        assert!(r.contains("cordon run --allow-net docs.example:443"), "{r}");
    }
}
