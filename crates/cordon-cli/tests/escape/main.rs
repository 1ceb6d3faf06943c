//! The escape suite (tests/escape/cases.toml): every case runs its attack without cordon (the control,
//! which must work, or the case is SKIPPED with the reason) and inside `cordon run` with the default
//! profile, where it must fail for the reason the case names: the session printed its start line
//! (else SETUP FAILED), the attack saw the case's errno, the host is unchanged, cordon's own summary
//! and report (never the attack's output) hold the case's `report`, and as root the sensor's `deny`
//! event names the case's layer and the case's alert was raised. Runs as root and as nobody; writes
//! a table per category and per layer to target/tmp/escape-USER.txt (scripts/test prints it).

mod ablation;
mod case;
#[path = "../common/mod.rs"]
mod common;
mod listeners;
mod run;

use case::{Case, Cases, LAYERS};
use common::*;
use run::{run_case, Verdict};
use std::path::Path;

const CATEGORIES: [&str; 8] = [
    "credential theft",
    "filesystem escape",
    "persistence",
    "network exfiltration",
    "other processes",
    "privilege and kernel",
    "resource exhaustion",
    "tampering with cordon",
];

fn is_fail(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Escaped(_)
            | Verdict::HostChanged(_)
            | Verdict::SetupFailed(_)
            | Verdict::WrongReason(_)
            | Verdict::TimedOut(_)
            | Verdict::Blocked { reported: Some(false), .. }
            | Verdict::Blocked { sensed: Some(false), .. }
            | Verdict::Blocked { alerted: Some(false), .. }
    )
}

/// `got/expected`, or `-` where nothing is expected.
fn ratio(rs: &[&(Case, Verdict)], f: fn(&Verdict) -> Option<bool>) -> String {
    let all: Vec<bool> = rs.iter().filter_map(|(_, v)| f(v)).collect();
    if all.is_empty() {
        return "-".into();
    }
    format!("{}/{}", all.iter().filter(|x| **x).count(), all.len())
}

fn row(label: &str, rs: &[&(Case, Verdict)], root: bool) -> String {
    let count = |f: fn(&Verdict) -> bool| rs.iter().filter(|(_, v)| f(v)).count();
    let blocked = count(|v| matches!(v, Verdict::Blocked { .. }));
    let reported = ratio(rs, |v| match v {
        Verdict::Blocked { reported, .. } => *reported,
        _ => None,
    });
    let (sensed, alerted) = if root {
        (
            ratio(rs, |v| match v {
                Verdict::Blocked { sensed, .. } => *sensed,
                _ => None,
            }),
            ratio(rs, |v| match v {
                Verdict::Blocked { alerted, .. } => *alerted,
                _ => None,
            }),
        )
    } else {
        ("-".into(), "-".into())
    };
    format!(
        "{label:<26} {:>5} {:>7} {:>8} {:>7} {:>7} {:>7} {:>5} {:>5}\n",
        rs.len(),
        blocked,
        reported,
        sensed,
        alerted,
        count(|v| matches!(v, Verdict::Skipped(_))),
        count(|v| matches!(v, Verdict::KnownLimit(_))),
        count(is_fail),
    )
}

fn table(uname: &str, results: &[(Case, Verdict)]) -> String {
    let root = uname == "root";
    let mut out = format!("\nescape suite as {uname}: {} cases\n", results.len());
    let head = format!(
        "{:<26} {:>5} {:>7} {:>8} {:>7} {:>7} {:>7} {:>5} {:>5}\n",
        "", "cases", "blocked", "reported", "sensed", "alerted", "skipped", "known", "FAIL"
    );
    out.push_str(&head.replacen(&format!("{:<26}", ""), &format!("{:<26}", "category"), 1));
    for (i, name) in CATEGORIES.iter().enumerate() {
        let rs: Vec<&(Case, Verdict)> = results.iter().filter(|(c, _)| c.cat as usize == i + 1).collect();
        out.push_str(&row(&format!("{}. {name}", i + 1), &rs, root));
    }
    out.push_str(&head.replacen(&format!("{:<26}", ""), &format!("{:<26}", "deciding layer"), 1));
    for l in LAYERS {
        let rs: Vec<&(Case, Verdict)> = results.iter().filter(|(c, _)| c.layer.as_deref() == Some(l.name)).collect();
        if !rs.is_empty() {
            out.push_str(&row(l.name, &rs, root));
        }
    }
    let all: Vec<&(Case, Verdict)> = results.iter().collect();
    out.push_str(&row("all", &all, root));
    for l in LAYERS.iter().filter(|l| results.iter().any(|(c, _)| c.layer.as_deref() == Some(l.name))) {
        out.push_str(&format!("  {:<11} {}\n", l.name, l.what));
    }
    out.push_str(
        "(reported: cordon's summary and --report name the denial; sensed: the sensor's deny event names the\n \
         deciding layer; alerted: the case's builtin:agent rule fired; each x/y of the cases that expect it)\n",
    );
    if root {
        let blocked = results.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { .. })).count();
        let any_deny = results.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { any_deny: true, .. })).count();
        let any_alert = results.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { any_alert: true, .. })).count();
        out.push_str(&format!(
            "of {blocked} blocked: the sensor saw a refused call (any layer) in {any_deny}, a rule alerted in {any_alert}\n"
        ));
    }
    out
}

fn suite(who: Who) {
    if !need_root() {
        return;
    }
    let text = include_str!("../../../../tests/escape/cases.toml");
    let cases: Cases = toml::from_str(text).expect("tests/escape/cases.toml");
    let uname = match who {
        Who::Root => "root",
        Who::Nobody => "nobody",
    };
    let mut problems: Vec<String> = cases.case.iter().flat_map(case::problems).collect();
    for (i, c) in cases.case.iter().enumerate() {
        if cases.case[..i].iter().any(|d| d.id == c.id) {
            problems.push(format!("{}: a second case with this id", c.id));
        }
    }
    let filter = std::env::var("CORDON_ESCAPE_FILTER").ok();
    let mut results: Vec<(Case, Verdict)> = vec![];
    for (n, c) in cases.case.iter().enumerate() {
        if c.users.as_ref().is_some_and(|u| !u.iter().any(|x| x == uname)) {
            continue;
        }
        if filter.as_ref().is_some_and(|f| !f.split(',').any(|f| c.id.contains(f))) {
            continue;
        }
        let v = run_case(c, who, n);
        results.push((c.clone(), v));
    }
    let mut out = table(uname, &results);
    let mut failures = vec![];
    for (c, v) in &results {
        let layer = c.layer.as_deref().unwrap_or("?");
        match v {
            Verdict::Skipped(r) => {
                out.push_str(&format!("  SKIPPED {:<28} {} — {r}\n", c.id, c.what));
                record_skip(&format!("escape case {} as {uname}", c.id), r);
            }
            Verdict::KnownLimit(r) => {
                out.push_str(&format!("  KNOWN   {:<28} {} — {r}\n", c.id, c.what));
                record_skip(&format!("escape case {} as {uname} (known limit)", c.id), r);
            }
            Verdict::Escaped(r) => failures.push(format!("ESCAPED {} ({}): {r}", c.id, c.what)),
            Verdict::SetupFailed(r) => failures.push(format!("SETUP FAILED {} ({}): {r}", c.id, c.what)),
            Verdict::HostChanged(r) => failures.push(format!("HOST CHANGED {} ({}): {r}", c.id, c.what)),
            Verdict::WrongReason(r) => failures.push(format!("WRONG REASON {} (layer {layer}): {r}", c.id)),
            Verdict::TimedOut(r) => failures.push(format!("TIMED OUT {}: {r}", c.id)),
            Verdict::Blocked { reported, sensed, alerted, .. } => {
                if *reported == Some(false) {
                    failures.push(format!(
                        "UNREPORTED {}: cordon's summary/report lacks `{}`",
                        c.id,
                        c.report.as_deref().unwrap_or("")
                    ));
                }
                if *sensed == Some(false) {
                    let want = case::layer(layer).and_then(|l| l.sensor).unwrap_or(layer);
                    failures.push(format!(
                        "UNSENSED {}: no sensor deny event with layer {want} (case layer {layer})",
                        c.id
                    ));
                }
                if *alerted == Some(false) {
                    failures.push(format!("NO ALERT {}: rule {} did not fire", c.id, c.alert.as_deref().unwrap_or("")));
                }
            }
        }
    }
    for p in &problems {
        failures.push(format!("CASE {p}"));
    }
    for f in &failures {
        out.push_str(&format!("  FAIL    {f}\n"));
    }
    println!("{out}");
    // Where scripts/test prints it (and bench/escape-report reads it).
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::write(tmp.join(format!("escape-{uname}.txt")), &out);
    if let Ok(dir) = std::env::var("CORDON_ESCAPE_REPORT_DIR") {
        let _ = std::fs::write(Path::new(&dir).join(format!("escape-{uname}.txt")), &out);
    }
    assert!(failures.is_empty(), "{} case(s) failed as {uname}:\n{}", failures.len(), failures.join("\n"));
    let blocked = results.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { .. })).count();
    assert!(results.len() >= 80 || filter.is_some(), "the suite must have at least 80 cases");
    assert!(blocked > 0 || filter.is_some());
}

#[test]
fn escape_suite_as_root() {
    suite(Who::Root);
}

#[test]
fn escape_suite_as_nobody() {
    suite(Who::Nobody);
}
