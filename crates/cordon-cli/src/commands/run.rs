//! `cordon run`: one confined session.

use anyhow::{bail, Result};
use clap::Args;
use cordon_policy::Egress;
use cordon_sandbox::report::{Ending, Outcome};
use cordon_sandbox::session::Session;
use cordon_sandbox::{plan, Invocation, KernelCaps, State};
use std::path::PathBuf;

const LONG: &str = "Run CMD confined by a policy.

The command sees the workspace (default: the current directory) read-write, the system read-only, a
private /tmp, and nothing else of the filesystem; it has no network, no capabilities and no secrets in
its environment (with the default `agent` profile). When it ends, or cordon is killed, every process of
the session ends too.

If the host cannot enforce something the policy asks for, cordon refuses to start and names the missing
kernel feature; --allow-degraded runs anyway and prints what was actually enforced.

Exit status: CMD's own, 128+N if a signal N ended it, 125 if the sandbox could not be set up (nothing
ran), 126 if CMD could not be executed, 127 if it was not found.

Examples:
  cordon run -- claude
  cordon run --profile readonly -- git log -p
  cordon run --policy team.toml --workspace ~/src/app -- make test
  cordon run --report session.json -- ./agent.py
  sudo cordon run --monitor -- make test          (live timeline of what really ran)
  sudo cordon run --events events.jsonl -- ./agent.py";

#[derive(Args)]
#[command(about = "Run a command confined by a policy", long_about = LONG)]
pub struct RunArgs {
    /// Built-in profile: agent (default), readonly, build, strict.
    #[arg(long, value_name = "NAME", conflicts_with = "policy")]
    pub profile: Option<String>,
    /// Policy file (TOML).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The directory the command may write (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Run even when the host cannot enforce everything the policy asks; what is lost is printed.
    #[arg(long)]
    pub allow_degraded: bool,
    /// Print nothing of cordon's own unless setup fails.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the guarantees in force before the command starts.
    #[arg(short, long)]
    pub verbose: bool,
    /// Allow network egress to HOST[:PORT] through cordon's proxy (repeatable). HOST is a domain,
    /// `*.domain`, an IP or a CIDR. Switches the policy's egress to "proxy".
    #[arg(long = "allow-net", value_name = "HOST[:PORT]")]
    pub allow_net: Vec<String>,
    /// The audit log to record this session in (default: $XDG_STATE_HOME/cordon/audit.db, or
    /// /var/lib/cordon/audit.db as root).
    #[arg(long, value_name = "PATH", conflicts_with = "no_audit")]
    pub audit: Option<PathBuf>,
    /// Do not record the session (cordon refuses to run when it cannot record, unless told this).
    #[arg(long)]
    pub no_audit: bool,
    /// Watch the session from the kernel with the eBPF sensor (root only): every exec, fork, exit,
    /// file, network and privilege call of every process, each refusal with the layer that refused
    /// it, and the process tree at the end. Without --events a readable timeline goes to stderr.
    /// The sensor also enforces the network rules in the kernel (cgroup-bpf). If the sensor cannot
    /// load, nothing runs.
    #[arg(long)]
    pub monitor: bool,
    /// Write every sensor event as a JSON line (schema: docs/events.schema.json) to FILE; implies
    /// --monitor.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// The sensor's ring buffer: kernel memory that holds events until cordon reads them (about
    /// 200 bytes each; 64M absorbs a second and more of 300k events/s). A burst larger than this
    /// loses events; losses are always counted and reported. Rounded up to a power of two.
    #[arg(long, value_name = "SIZE", default_value = "64M")]
    pub sensor_buffer: String,
    /// Write the session outcome (ending, denials, limits hit, guarantees) as JSON to FILE. FILE is
    /// opened before the session starts (a wrong path fails then); a fifo must have a reader.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// After the seal, also write the log's signed head (`cordon audit head`) to FILE: keep it where
    /// the sessions' user cannot write, and check the log against it with `cordon audit verify
    /// --expect-head FILE` (it catches records removed together with the head file).
    #[arg(long, value_name = "FILE", conflicts_with = "no_audit")]
    pub head_copy: Option<PathBuf>,
    /// Kill the whole session DURATION (e.g. 10s) after the first SIGINT or SIGTERM cordon passes on
    /// to the command, if it has not ended by then. A second SIGINT or SIGTERM kills it at once.
    #[arg(long, value_name = "DURATION", value_parser = kill_after)]
    pub kill_after: Option<std::time::Duration>,
    /// The command and its arguments. cordon's own options come before it; the first word that is
    /// not one starts the command (or everything after `--` is the command).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub cmd: Vec<std::ffi::OsString>,
}

fn kill_after(s: &str) -> Result<std::time::Duration, String> {
    match cordon_policy::units::parse_duration(s) {
        Ok(d) if d.is_zero() => {
            Err("must be at least 1s (a second SIGINT or SIGTERM already kills at once); e.g. 10s".into())
        }
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e}; write a duration, e.g. 10s, 2m or 1m30s")),
    }
}

pub fn run(a: RunArgs) -> Result<i32> {
    let timing = std::env::var_os("CORDON_TIMING").is_some();
    let t0 = std::time::Instant::now();
    let tm = |what: &str| {
        if timing {
            eprintln!("cordon-timing: cli {:>8} us  {what}", t0.elapsed().as_micros());
        }
    };
    let ws = super::workspace(a.workspace.as_deref())?;
    crate::guards::refuse_system_workspace(&ws)?;
    if (a.monitor || a.events.is_some()) && !nix::unistd::geteuid().is_root() {
        bail!("--monitor needs root: the eBPF sensor loads BPF programs, which this kernel allows only to root (kernel.unprivileged_bpf_disabled)\n  hint: run without --monitor (the sandbox itself works unprivileged), or with sudo");
    }
    let spec = super::policy_spec(a.profile.as_deref(), a.policy.as_deref());
    tm("workspace resolved");
    let (loaded, mut policy) = super::load(&spec, &ws)?;
    for (i, raw) in a.allow_net.iter().enumerate() {
        match cordon_policy::netspec::parse_allow(raw) {
            Ok(e) => {
                if let Some(w) = cordon_policy::netspec::warning(&e).filter(|_| !a.quiet) {
                    eprintln!("cordon: WARNING: --allow-net #{}: {w}", i + 1);
                }
                policy.net.allow.push(e)
            }
            Err(m) => bail!("--allow-net #{} `{raw}`: {m}\n  hint: write HOST[:PORT], e.g. --allow-net github.com:443, --allow-net '*.pypi.org:443', --allow-net 127.0.0.1:11434", i + 1),
        }
    }
    if !a.allow_net.is_empty() && policy.net.egress != Egress::Open {
        policy.net.egress = Egress::Proxy;
        policy.namespaces.net = true;
    }
    if policy.net.egress == Egress::Proxy && !a.quiet {
        for w in loaded.warnings().iter().filter(|w| w.field.starts_with("net.")) {
            eprintln!("cordon: WARNING: {w}");
        }
    }
    let audit_path = if a.no_audit { None } else { Some(crate::recording::log_path(a.audit.as_deref())?) };
    if let Some(db) = &audit_path {
        crate::recording::mask_log(&mut policy, db);
    }
    tm("policy loaded and compiled");
    // Detection rules named by the policy's [monitor] (the agent profile uses builtin:agent).
    let mut rule_set = cordon_rules::RuleSet::default();
    for spec in &policy.monitor_rules {
        let s = cordon_rules::load(spec).map_err(|e| anyhow::anyhow!("{e}"))?;
        rule_set.sources.extend(s.sources);
        rule_set.rules.extend(s.rules);
    }
    let rule_set_for_sensor = rule_set.clone();
    let engine = std::rc::Rc::new(std::cell::RefCell::new(cordon_rules::Engine::new(rule_set)));
    let alerts: std::rc::Rc<std::cell::RefCell<Vec<cordon_rules::Alert>>> = Default::default();
    let caps = KernelCaps::detect();
    tm("host capabilities detected");
    let session_id = cordon_sandbox::new_session_id();
    let cwd = std::env::current_dir().ok().filter(|c| c.starts_with(&ws)).unwrap_or_else(|| ws.clone());
    let inv =
        Invocation { session_id: session_id.clone(), argv: a.cmd.clone(), cwd, env: std::env::vars_os().collect() };
    let plan = plan(&policy, &caps, &inv);
    tm("plans built");

    let lost: Vec<String> = plan
        .degraded()
        .iter()
        .map(|g| match &g.state {
            State::Degraded { feature, instead } => {
                format!("{}: {} — needs {}; instead: {}", g.layer, g.what, feature, instead)
            }
            State::Enforced { .. } => String::new(),
        })
        .collect();
    if !lost.is_empty() && !a.allow_degraded {
        let mut msg = format!("this host cannot enforce policy `{}` in full, so nothing was run:", policy.name);
        for l in &lost {
            msg.push_str(&format!("\n  - {l}"));
        }
        msg.push_str("\n  hint: `cordon doctor` shows what this host supports; --allow-degraded runs with the guarantees listed above");
        bail!(msg);
    }
    let unprotected_log = match &audit_path {
        Some(db) => crate::recording::refuse_writable_location(db, &policy, &plan)?,
        None => None,
    };
    // The log first (every file of it then exists to compare the outputs with), then every output:
    // a wrong path fails before anything runs, never after.
    let mut audit =
        audit_path.as_deref().map(|db| crate::recording::Recording::open(db, &session_id, a.quiet)).transpose()?;
    let mut protected = crate::outputs::Protected::default();
    if let Some(db) = &audit_path {
        for f in cordon_audit::files::log_files(db) {
            protected.add(&f, &format!("a file of the audit log {}", db.display()));
        }
    }
    let mut report_out =
        a.report.as_deref().map(|p| crate::outputs::Output::open(p, "--report", &mut protected)).transpose()?;
    let mut events_out =
        a.events.as_deref().map(|p| crate::outputs::Output::open(p, "--events", &mut protected)).transpose()?;
    let mut head_out =
        a.head_copy.as_deref().map(|p| crate::outputs::Output::open(p, "--head-copy", &mut protected)).transpose()?;
    if !a.quiet {
        if let Some(w) = &unprotected_log {
            eprintln!("cordon: DEGRADED: {w}");
        }
        for l in &lost {
            eprintln!("cordon: DEGRADED (accepted with --allow-degraded): {l}");
        }
        if policy.net.egress == Egress::Open {
            eprintln!("cordon: WARNING: net.egress = \"open\": the session can reach any host this machine can");
        }
        if a.verbose {
            eprintln!(
                "cordon: session {session_id}, policy `{}` ({}), workspace {}",
                policy.name,
                policy.sources.join(" -> "),
                ws.display()
            );
            for g in &plan.guarantees {
                if let State::Enforced { how } = &g.state {
                    eprintln!("cordon:   [{}] {} — {}", g.layer, g.what, how);
                }
            }
        }
    }
    // The session's start is committed before the command runs: a crash leaves it "unfinished".
    if let Some(rec) = audit.as_mut() {
        let text = loaded.full_text();
        let hash: String = {
            use sha2::Digest;
            sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
        };
        let start = serde_json::json!({
            "command": plan.process.argv_text(), "workspace": ws.to_string_lossy(), "uid": caps.uid, "cordon": env!("CARGO_PKG_VERSION"),
            "policy": {"name": policy.name, "sources": policy.sources, "sha256": hash, "text": text},
            "host": {"kernel": caps.kernel, "arch": caps.arch, "landlock_abi": caps.landlock_abi},
            "guarantees": plan.guarantees, "allow_degraded": a.allow_degraded,
        });
        rec.start(start)?;
    }
    let monitor = a.monitor || a.events.is_some();
    if let Some(ev) = &a.events {
        // The file is written while the session runs: inside the workspace, the session could rewrite it.
        let abs = if ev.is_absolute() { ev.clone() } else { std::env::current_dir().unwrap_or_default().join(ev) };
        let dir = abs.parent().and_then(|d| d.canonicalize().ok()).unwrap_or_default();
        if dir.starts_with(&ws) && !a.quiet {
            eprintln!("cordon: warning: --events {} is inside the workspace, which the session can write; the audit log is the tamper-evident record", ev.display());
        }
    }
    let ring_bytes = cordon_policy::units::parse_size(&a.sensor_buffer)
        .map_err(|e| anyhow::anyhow!("--sensor-buffer `{}`: {e}\n  hint: a size such as 64K, 16M", a.sensor_buffer))?;
    if monitor && !(4096..=(1 << 30)).contains(&ring_bytes) {
        bail!("--sensor-buffer {}: between 4K and 1G", a.sensor_buffer);
    }
    let sensor_cell: std::rc::Rc<std::cell::RefCell<Option<cordon_sensor::Sensor>>> = Default::default();
    let mut wiring: Option<crate::sensing::Built> = None;
    let on_cgroup: Option<cordon_sandbox::session::CgroupHook> = if monitor {
        let audit_writer = match &audit {
            Some(r) => Some(
                crate::sensing::AuditWriter::start(r.path().to_path_buf(), session_id.clone(), r.anchor())
                    .map_err(|e| anyhow::anyhow!("audit: {e}"))?,
            ),
            None => None,
        };
        let v2 = plan.cgroup.v2_dir.clone();
        let events = events_out.take().map(|o| o.into_events()).transpose()?;
        let built = crate::sensing::build(crate::sensing::Options {
            events,
            live: a.events.is_none() && !a.quiet,
            rules: rule_set_for_sensor.clone(),
            kill_cgroup: v2,
            audit: audit_writer,
        })?;
        let mut built = built;
        let sink = built.sink.take().ok_or_else(|| anyhow::anyhow!("sensor sink missing"))?;
        wiring = Some(built);
        let attribution = cordon_sensor::Attribution {
            policy: Some(std::sync::Arc::new(policy.clone())),
            landlock: plan.landlock.enabled(),
            signal_scope: plan.landlock.scopes & cordon_sandbox::plan::landlock::SCOPE_SIGNAL != 0,
        };
        let net = cordon_sensor::NetRules { loopback_only: policy.net.egress != Egress::Open, allow: vec![] };
        let (cell, sid) = (sensor_cell.clone(), session_id.clone());
        let mut seccomp_watch: Vec<u32> =
            plan.seccomp.rules.iter().filter(|r| r.nr >= 0).map(|r| r.nr as u32).collect();
        seccomp_watch.sort_unstable();
        seccomp_watch.dedup();
        Some(Box::new(move |dir: Option<&std::path::Path>| {
            let dir = dir.ok_or("--monitor: the session has no cgroup v2 directory, which the sensor filters on (is cgroup2 mounted and writable? see `cordon doctor`)")?;
            let s = cordon_sensor::Sensor::start(cordon_sensor::Config {
                session: sid,
                cgroup: dir.to_path_buf(),
                net: Some(net),
                attribution,
                session_start: true,
                seccomp_watch,
                ring_bytes: ring_bytes as u32,
                sink,
            })
            .map_err(|e| e.to_string())?;
            *cell.borrow_mut() = Some(s);
            Ok(())
        }))
    } else {
        None
    };
    let hook: cordon_sandbox::session::DenialHook = {
        let (engine, alerts) = (engine.clone(), alerts.clone());
        Box::new(move |d| {
            let ev = serde_json::to_value(d).unwrap_or_default();
            let found = engine.borrow_mut().feed("denial", now_ms(), &ev);
            let kill = found.iter().any(|a| a.action == cordon_rules::Action::Kill);
            alerts.borrow_mut().extend(found);
            kill
        })
    };
    let outcome = Session {
        plan: &plan,
        session_id: session_id.clone(),
        interactive: true,
        on_denial: Some(hook),
        on_cgroup,
        kill_after: a.kill_after,
        on_egress: Some(crate::egress::hook(plan.net.allow.clone())),
    }
    .run();
    let mut sensor_summary = sensor_cell.borrow_mut().take().map(|s| s.finish());
    let sensor_audit = wiring.as_mut().map(|w| w.finish_audit());
    let outcome = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(Err(e)) = &sensor_audit {
        eprintln!("cordon: audit: sensor events could not all be recorded: {e}");
    }
    if let Some(w) = &wiring {
        // The proxy's refusals are denials too; they come from the proxy, not the kernel.
        let extra: Vec<cordon_sensor::Event> =
            outcome.egress.iter().filter(|e| !e.allowed).map(|e| proxy_denial(&session_id, e)).collect();
        crate::sensing::finish_events(&w.shared, &session_id, &extra, sensor_summary.as_mut());
        alerts.borrow_mut().extend(w.shared.alerts.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
    }
    {
        // Egress decisions and limits are judged when the session ends.
        let mut eng = engine.borrow_mut();
        let t = now_ms();
        for e in &outcome.egress {
            let found = eng.feed("egress", t, &serde_json::to_value(e)?);
            alerts.borrow_mut().extend(found);
        }
        for l in &outcome.limits_hit {
            let found = eng.feed("limit", t, &serde_json::json!({"text": l}));
            alerts.borrow_mut().extend(found);
        }
    }
    let alerts = alerts.borrow().clone();
    if let Some(rec) = audit.as_mut() {
        let t = now_ms();
        let mut items: Vec<(String, i64, serde_json::Value)> = vec![];
        for d in &outcome.denials.items {
            items.push(("denial".into(), t, serde_json::to_value(d)?));
        }
        for e in &outcome.egress {
            items.push(("egress".into(), t, serde_json::to_value(e)?));
        }
        for l in &outcome.limits_hit {
            items.push(("limit".into(), t, serde_json::json!({"text": l})));
        }
        for al in &alerts {
            items.push(("alert".into(), al.ts_ms, serde_json::to_value(al)?));
        }
        if let Some(s) = &sensor_summary {
            let mut brief = serde_json::to_value(s)?;
            if let Some(o) = brief.as_object_mut() {
                o.remove("denials");
            }
            items.push(("sensor.summary".into(), t, brief));
        }
        items.push(("end".into(), t, serde_json::json!({"ending": outcome.ending, "exit_code": outcome.exit_code, "duration_ms": outcome.duration_ms, "peaks": outcome.peaks, "denials_total": outcome.denials.total, "notes": outcome.notes})));
        match rec.finish(items) {
            crate::recording::Finished::Sealed => {
                if let (Some(o), Some(line)) = (head_out.as_mut(), rec.head_line()) {
                    if let Err(e) = o.replace(line.as_bytes()) {
                        eprintln!("cordon: WARNING: --head-copy {}: {e}", o.path.display());
                    }
                }
            }
            crate::recording::Finished::Spooled { error, file } => eprintln!(
                "cordon: WARNING: the audit log {} did not take the end of this session ({error}); its records are kept in the recovery spool {} and go into the log (sealed) at the next cordon run; `cordon audit verify` lists them meanwhile",
                rec.path().display(),
                file.display()
            ),
            crate::recording::Finished::Lost { error } => eprintln!("cordon: WARNING: the end of this session could not be recorded ({error}); its records were printed above as `cordon: audit record (unsaved)` lines"),
        }
    }
    if let Some(out) = report_out.as_mut() {
        let doc = serde_json::json!({
            "schema": "cordon.session.v1",
            "policy": { "name": policy.name, "sources": policy.sources },
            "workspace": ws.to_string_lossy(),
            "command": plan.process.argv_text(),
            "outcome": outcome,
            "alerts": alerts,
            "guarantees": plan.guarantees,
            "env_dropped": plan.process.env_dropped,
            "sensor": sensor_summary,
        });
        // The command ran: a report that cannot be written is a warning, never a different exit.
        if let Err(e) = out.replace((serde_json::to_string_pretty(&doc)? + "\n").as_bytes()) {
            eprintln!("cordon: WARNING: --report {}: cannot write the report: {e}", out.path.display());
        }
    }
    tm("session over");
    summarize(&outcome, &a, &policy.name);
    if let (Some(s), false) = (&sensor_summary, a.quiet) {
        crate::sensing::summarize(s, a.monitor || a.events.is_some());
    }
    if let Some(rule) = wiring.as_ref().and_then(|w| w.shared.killed_by.lock().ok().and_then(|k| k.clone())) {
        eprintln!("cordon: the session was stopped by rule `{rule}` (cgroup.kill)");
    }
    if !a.quiet {
        // Identical alerts are counted, not repeated; the ones that stopped the session come first.
        let mut grouped: Vec<(&cordon_rules::Alert, usize)> = vec![];
        for al in &alerts {
            match grouped.iter_mut().find(|(g, _)| g.rule == al.rule && g.reason == al.reason) {
                Some((_, n)) => *n += 1,
                None => grouped.push((al, 1)),
            }
        }
        grouped.sort_by_key(|(g, _)| g.action != cordon_rules::Action::Kill);
        for (al, n) in grouped.iter().take(20) {
            let stop = if al.action == cordon_rules::Action::Kill { " (session stopped)" } else { "" };
            let times = if *n > 1 { format!(" ×{n}") } else { String::new() };
            eprintln!("cordon: alert [{}]{stop}{times}: {}", al.rule, al.reason);
        }
    }
    Ok(outcome.exit_code)
}

fn proxy_denial(session: &str, d: &cordon_egress::record::Decision) -> cordon_sensor::Event {
    let (host, port) = (&d.host, d.port);
    cordon_sensor::Event {
        v: cordon_sensor::event::SCHEMA_VERSION,
        kind: "deny".into(),
        time: (now_ms() as u64) * 1_000_000,
        session: session.into(),
        pid: d.pid,
        op: Some("connect".into()),
        addr: Some(format!("{host}:{port}")),
        layer: Some("proxy".into()),
        reason: Some(format!(
            "{}; if the task needs {host}:{port}, ask the user to add it (cordon run --allow-net {host}:{port})",
            cordon_egress::server::describe(d)
        )),
        ..Default::default()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn summarize(o: &Outcome, a: &RunArgs, policy: &str) {
    match &o.ending {
        Ending::SetupFailed { error } => {
            eprintln!("cordon: could not confine the command, so it did not run: {error}");
            return;
        }
        Ending::ExecFailed { errno, program } => {
            let e = std::io::Error::from_raw_os_error(*errno);
            let hint = if *errno == libc::EACCES {
                " (is it outside the policy's exec allowlist? `cordon policy explain` lists it)"
            } else {
                ""
            };
            eprintln!("cordon: cannot execute {program}: {e}{hint}");
            return;
        }
        _ => {}
    }
    if a.quiet {
        return;
    }
    let d = &o.denials;
    let anything = d.total > 0 || !o.limits_hit.is_empty() || !o.notes.is_empty() || !o.egress.is_empty() || a.verbose;
    if !anything {
        return;
    }
    let end = match o.ending {
        Ending::Exited { code } => format!("exit {code}"),
        Ending::Signaled { signal } => format!("killed by signal {signal}"),
        _ => String::new(),
    };
    eprintln!(
        "cordon: session {} (policy `{policy}`) ended: {end} after {:.2}s",
        o.session_id,
        o.duration_ms as f64 / 1000.0
    );
    if d.total > 0 {
        eprintln!("cordon: denied {} operation{}:", d.total, if d.total == 1 { "" } else { "s" });
        for x in d.items.iter().take(20) {
            let times = if x.count > 1 { format!(" ×{}", x.count) } else { String::new() };
            eprintln!("cordon:   {} by {}[{}]{times} ({}: {})", x.what, x.comm, x.pid, x.layer, x.reason);
        }
        if d.items.len() > 20 {
            eprintln!("cordon:   … and {} more kinds (see --report)", d.items.len() - 20);
        }
    }
    if !o.egress.is_empty() {
        let denied = o.egress.iter().filter(|e| !e.allowed).count();
        eprintln!("cordon: network: {} connection(s) through the egress proxy, {denied} denied:", o.egress.len());
        for e in o.egress.iter().take(20) {
            eprintln!("cordon:   {}", cordon_egress::server::describe(e));
        }
        if o.egress.len() > 20 {
            eprintln!("cordon:   … and {} more (see --report)", o.egress.len() - 20);
        }
    }
    for l in &o.limits_hit {
        eprintln!("cordon: limit: {l}");
    }
    for n in &o.notes {
        eprintln!("cordon: note: {n}");
    }
    if a.verbose && o.hidden_files > 0 {
        eprintln!("cordon: {} workspace file(s) matching fs.hide were unreadable", o.hidden_files);
    }
}
