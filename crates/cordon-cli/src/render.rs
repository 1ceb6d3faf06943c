//! What `cordon run` and `cordon monitor` print for a person: the live timeline, the summary at the
//! end of a session, the alerts. The engine returns data; this turns it into lines on stderr.

use cordon_schema::outcome::{Ending, Outcome};
use cordon_session::pipeline::{Live, LiveSink};

/// Before the command runs: what the user should read, and with -v the guarantees in force.
pub fn before(p: &cordon_session::prepare::Prepared, quiet: bool, verbose: bool) {
    if quiet {
        return;
    }
    for n in &p.notices {
        eprintln!("cordon: {n}");
    }
    if verbose {
        let (policy, ws) = (&p.policy, p.workspace.display());
        eprintln!(
            "cordon: session {}, policy `{}` ({}), workspace {ws}",
            p.session_id,
            policy.name,
            policy.sources.join(" -> ")
        );
        for g in &p.plan.guarantees {
            if let cordon_schema::guarantee::State::Enforced { how } = &g.state {
                eprintln!("cordon:   [{}] {} — {}", g.layer, g.what, how);
            }
        }
    }
}

/// After the session: what could not be kept, warnings, the summary, the alerts.
pub fn after(f: &cordon_session::engine::Finished, policy: &str, quiet: bool, verbose: bool, tree: bool) {
    for r in &f.unsaved {
        eprintln!("cordon: audit record (unsaved): {r}");
    }
    for w in &f.warnings {
        eprintln!("cordon: {w}");
    }
    let sensor_refused = f.sensor.as_ref().map_or(0, |s| s.denials_total);
    outcome(&f.outcome, quiet, verbose, policy, sensor_refused + f.alerts.len() as u64);
    review(&f.review);
    if let (Some(s), false) = (&f.sensor, quiet) {
        sensor(s, tree);
    }
    if let Some(rule) = &f.killed_by {
        eprintln!("cordon: the session was stopped by rule `{rule}` (cgroup.kill)");
    }
    if !quiet {
        alerts(&f.alerts);
    }
}

/// The live timeline on stderr.
pub fn live() -> LiveSink {
    Box::new(|l: Live<'_>| match l {
        Live::Event { at, event } => eprintln!("cordon: {:>8.3}s {}", at.as_secs_f64(), event.line()),
        Live::Alert(a) => eprintln!("cordon: ALERT [{}]: {}", a.rule, a.reason),
    })
}

/// Alerts, identical ones counted, not repeated; the ones that stopped the session first.
pub fn alerts(alerts: &[cordon_rules::Alert]) {
    let mut grouped: Vec<(&cordon_rules::Alert, usize)> = vec![];
    for al in alerts {
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

/// The end-of-session summary of the sandbox's side: how it ended, denials, egress, limits, notes.
/// With nothing to say, one line, so the user knows cordon was there. `elsewhere`: refusals and
/// alerts the sensor's summary and the alerts show after this.
pub fn outcome(o: &Outcome, quiet: bool, verbose: bool, policy: &str, elsewhere: u64) {
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
    if quiet {
        return;
    }
    let d = &o.denials;
    let anything = d.total > 0
        || !o.limits_hit.is_empty()
        || !o.notes.is_empty()
        || !o.egress.is_empty()
        || !o.published.is_empty()
        || verbose;
    let end = match o.ending {
        Ending::Exited { code } => format!("exit {code}"),
        Ending::Signaled { signal } => format!("killed by signal {signal}"),
        _ => String::new(),
    };
    let quietly = if anything || elsewhere > 0 { "" } else { "; nothing was refused" };
    eprintln!(
        "cordon: session {} (policy `{policy}`) ended: {end} after {:.2}s{quietly}",
        o.session_id,
        o.duration_ms as f64 / 1000.0
    );
    if !anything {
        return;
    }
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
            eprintln!("cordon:   {}", e.describe());
        }
        if o.egress.len() > 20 {
            eprintln!("cordon:   … and {} more (see --report)", o.egress.len() - 20);
        }
    }
    for p in &o.published {
        let refused = match (p.refused, &p.last_error) {
            (0, _) => String::new(),
            (n, Some(e)) => format!(
                ", {n} not taken by the session ({e}: does a server listen on its 127.0.0.1:{}?)",
                p.session_port
            ),
            (n, None) => format!(", {n} not taken by the session"),
        };
        eprintln!(
            "cordon: published {} -> session port {}: {} connection(s){refused}",
            p.host, p.session_port, p.connections
        );
    }
    for l in &o.limits_hit {
        eprintln!("cordon: limit: {l}");
    }
    for n in &o.notes {
        eprintln!("cordon: note: {n}");
    }
    if verbose && o.hidden_files > 0 {
        eprintln!("cordon: {} workspace file(s) matching fs.hide were unreadable", o.hidden_files);
    }
}

/// Changes to workspace files that run outside the sandbox, in their own section (printed even with
/// --quiet: they are for the person to review before running anything). Nothing when none changed.
pub fn review(r: &cordon_schema::review::Review) {
    use cordon_schema::review::Hold;
    const FILES: usize = 30;
    if !r.changes.is_empty() {
        eprintln!("cordon: changes to code that runs outside the sandbox (review before running anything):");
        for c in r.changes.iter().take(FILES) {
            let what = if c.summary.is_empty() { String::new() } else { format!(", {}", c.summary) };
            let how =
                if c.entry == c.pattern { format!("`{}`", c.pattern) } else { format!("{} `{}`", c.entry, c.pattern) };
            let held = if matches!(c.hold, Some(Hold::Held { .. })) { " — held" } else { "" };
            eprintln!("cordon:   {}: {}{what} ({how}: {}){held}", c.path, c.change.as_str(), c.runs);
            for l in &c.excerpt {
                eprintln!("cordon:       {l}");
            }
        }
        if r.changes.len() > FILES {
            eprintln!("cordon:   … and {} more (see --report or `cordon audit show`)", r.changes.len() - FILES);
        }
    }
    if let Some(h) = &r.held {
        eprintln!(
            "cordon: held: {} of these change(s) were undone on disk; the session's versions are in the patch {} (sha256 {})",
            h.files, h.path, h.sha256
        );
        eprintln!("cordon:   read it, then apply it with: {}", h.apply);
    }
    // Every one, even past the list's cut: each is on disk as the session left it.
    for c in &r.changes {
        if let Some(Hold::NotHeld { why }) = &c.hold {
            eprintln!("cordon: WARNING: NOT HELD (on disk as the session left it): {}: {why}", c.path);
        }
    }
    if r.capped {
        eprintln!(
            "cordon: WARNING: the review of files that run outside the sandbox stopped at {} workspace entries: files beyond them were not compared (only files both walks reached were), and nothing was held or put back; review the workspace's CI, build and package files yourself (`git status`)",
            cordon_session::review::max_entries()
        );
    }
}

const TREE_LINES: usize = 30;

/// The sensor's part of the end-of-session summary.
pub fn sensor(s: &cordon_schema::sensor::Summary, tree: bool) {
    let kinds: Vec<String> = s.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let unwritten = s.events_output.as_ref().filter(|o| o.lost > 0);
    let loss = match (s.lost, unwritten) {
        (1.., _) => format!(", {} LOST (ring buffer full; per CPU {:?})", s.lost, s.lost_per_cpu),
        (0, Some(_)) => ", the ring buffer dropped none".into(),
        (0, None) => ", none lost".into(),
    };
    eprintln!("cordon: sensor: {} events ({}){loss}", s.events, kinds.join(", "));
    if let Some(o) = unwritten {
        let what = if o.path == "-" { "the event stream on stdout" } else { "the events file" };
        eprintln!(
            "cordon: sensor: {}; {what} is incomplete{}",
            cordon_session::pipeline::loss_text(o),
            if o.marked { " (its last line says so)" } else { "" }
        );
    }
    if s.denials_total > 0 {
        let mut groups: Vec<(String, String, String, u64)> = vec![];
        for d in &s.denials {
            let what = format!(
                "{} {}",
                d.syscall.as_deref().unwrap_or("?"),
                d.path.as_deref().or(d.addr.as_deref()).unwrap_or("")
            );
            let layer = d.layer.map(|l| l.to_string()).unwrap_or_default();
            match groups.iter_mut().find(|g| g.0 == what && g.1 == layer) {
                Some(g) => g.3 += 1,
                None => groups.push((what, layer, d.reason.clone().unwrap_or_default(), 1)),
            }
        }
        eprintln!("cordon: sensor: {} refused call(s), by layer:", s.denials_total);
        for (what, layer, reason, n) in groups.iter().take(20) {
            let times = if *n > 1 { format!(" ×{n}") } else { String::new() };
            eprintln!("cordon:   [{layer}] {}{times}: {reason}", what.trim_end());
        }
        if groups.len() > 20 {
            eprintln!("cordon:   … and {} more (see --events)", groups.len() - 20);
        }
    }
    if tree && !s.tree.is_empty() {
        eprintln!("cordon: process tree ({} processes):", s.processes);
        let lines: Vec<&str> = s.tree.lines().collect();
        for l in lines.iter().take(TREE_LINES) {
            eprintln!("cordon:   {l}");
        }
        if lines.len() > TREE_LINES {
            eprintln!("cordon:   … {} more lines (the whole tree is in --report)", lines.len() - TREE_LINES);
        }
    }
    for n in &s.notes {
        eprintln!("cordon: sensor note: {n}");
    }
}
