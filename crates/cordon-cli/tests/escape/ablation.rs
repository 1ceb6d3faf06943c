//! Layer ablation (issue 18): with the `ablation` feature, `cordon` leaves out the layers named in
//! `CORDON_ABLATE` (crates/cordon-sandbox/src/ablate.rs). For every switch, the cases that name the
//! layer it stands for (seccomp: the cases whose report names a call of its group) run as root with
//! that switch alone off, and the matrix records which turn from blocked to ESCAPED or HOST CHANGED.
//! A switch no case turns fails the test unless a judged pair row catches it with its partner (a
//! layer that stands behind another by design: the pair must turn a case that neither turns alone),
//! or [`KNOWN_UNCOVERED`] says why (printed).
//!
//! Without the feature, [`the_shipped_binary_has_no_ablation_switch`] runs instead.

use crate::case::{Case, Cases};
use crate::common::*;
#[cfg(feature = "ablation")]
use crate::run::{run_case_with, Verdict};

/// Switches that no row catches, and why. Each is printed under the matrix; one that a row does
/// catch fails the test (take it out of here). Empty today: every switch is caught alone or with
/// its partner in a judged `+` row.
#[cfg(feature = "ablation")]
const KNOWN_UNCOVERED: &[(&str, &str)] = &[];

#[cfg(feature = "ablation")]
#[derive(PartialEq)]
enum Kind {
    /// One switch: it must turn a case, or be caught with its partner in a `Pair` row, or be a
    /// known gap.
    Single,
    /// Switches that stand behind one another by design: deleting either alone is invisible by
    /// construction, so the row must turn at least one case that none of its switches turns alone
    /// (or the test fails). Its switches are then "caught with" the others.
    Pair,
    /// Shown, not judged: where a layer stands behind one that is caught alone anyway.
    Shown,
}

#[cfg(feature = "ablation")]
/// One row: the switches left out, and the cases it runs (by the layer they name, or by id).
struct Row {
    ablate: &'static str,
    layers: &'static [&'static str],
    ids: &'static [&'static str],
    kind: Kind,
}

#[cfg(feature = "ablation")]
const fn row(ablate: &'static str, layers: &'static [&'static str]) -> Row {
    Row { ablate, layers, ids: &[], kind: Kind::Single }
}

#[cfg(feature = "ablation")]
const fn pair(ablate: &'static str, layers: &'static [&'static str], ids: &'static [&'static str]) -> Row {
    Row { ablate, layers, ids, kind: Kind::Pair }
}

#[cfg(feature = "ablation")]
/// The switches (see ablate.rs) and the harness layers whose cases they may decide. Seccomp rows
/// name no layer: they run the seccomp cases whose `report` names a call of their group.
const ROWS: &[Row] = &[
    row("landlock-fs", &["landlock"]),
    Row {
        ablate: "landlock-scopes",
        layers: &[],
        ids: &["net-abstract", "proc-kill", "proc-stop"],
        kind: Kind::Single,
    },
    row("seccomp-ptrace", &[]),
    row("seccomp-mount", &[]),
    row("seccomp-ns", &[]),
    row("seccomp-bpf", &[]),
    row("seccomp-io-uring", &[]),
    row("seccomp-keyring", &[]),
    row("seccomp-kernel", &[]),
    row("seccomp-handle", &[]),
    row("seccomp-uffd", &[]),
    row("seccomp-socket", &[]),
    row("seccomp-tty", &[]),
    row("seccomp-personality", &[]),
    row("memfd-seal", &["memfd"]),
    row("memfd-sysctl", &["memfd"]),
    row("root", &["root"]),
    row("sealed", &["sealed"]),
    row("readonly", &["readonly"]),
    row("protect", &["readonly", "mountpoint"]),
    row("mask", &["mask"]),
    row("tmpfs", &["tmpfs"]),
    row("mountns", &["root", "mask"]),
    row("pidns", &["pidns"]),
    row("netns", &["netns", "cgroup-bpf"]),
    row("ipcns", &["ipcns"]),
    Row { ablate: "utsns", layers: &[], ids: &["priv-sethostname"], kind: Kind::Single },
    row("cgroup-limits", &["cgroup"]),
    row("timer", &["timer"]),
    row("rlimits", &["rlimit"]),
    row("env", &["env"]),
    row("caps", &["caps"]),
    row("nodump", &["nodump"]),
    row("egress", &["proxy"]),
    row("cgroup-bpf", &["cgroup-bpf", "netns"]),
    // Depth, judged: one layer behind another by design.
    // The scopes refuse what the namespaces already hide: a host process, the host's abstract sockets.
    pair("landlock-scopes,netns", &[], &["net-abstract"]),
    pair("landlock-scopes,pidns", &[], &["proc-kill", "proc-stop"]),
    // mount, chroot, pivot_root need CAP_SYS_ADMIN; raw and packet sockets CAP_NET_RAW.
    pair("seccomp-mount,caps", &[], &[]),
    pair("seccomp-socket,caps", &[], &[]),
    // The supervisor's MFD_NOEXEC_SEAL memfds and vm.memfd_noexec=2 each refuse the exec.
    pair("memfd-seal,memfd-sysctl", &["memfd"], &[]),
    // A new name outside the granted trees needs a write right Landlock does not give.
    pair("sealed,landlock-fs", &["sealed"], &[]),
    // The command's Landlock domain is nested in the init's: /proc/PID/environ of a process
    // outside it is refused (ptrace access mode), as for a dumpable one.
    pair("nodump,landlock-fs,landlock-scopes", &["nodump"], &[]),
    // What the sensor refuses has no route out of the session's network namespace.
    pair("cgroup-bpf,netns", &["cgroup-bpf"], &[]),
    // sethostname needs CAP_SYS_ADMIN over the UTS namespace: without both, the name of the
    // namespace cordon was started in changes (the case gives cordon a UTS namespace of its own).
    pair("utsns,caps", &[], &["priv-sethostname"]),
    // Shown: the built root's cases with Landlock gone too (the root is caught alone).
    Row { ablate: "root,landlock-fs", layers: &["root"], ids: &[], kind: Kind::Shown },
    // Shown: mq_open opens a file of the IPC namespace's mqueue mount, which Landlock refuses
    // (ipcns is caught alone by the System V cases).
    Row { ablate: "ipcns,landlock-fs", layers: &[], ids: &["proc-ipc-mqueue"], kind: Kind::Shown },
];

fn cases() -> Vec<Case> {
    let text = include_str!("../../../../tests/escape/cases.toml");
    let cases: Cases = toml::from_str(text).expect("tests/escape/cases.toml");
    cases.case
}

/// The cases a row runs: as root, no known limit, and named by the row.
#[cfg(feature = "ablation")]
fn selected<'a>(r: &Row, all: &'a [Case]) -> Vec<(usize, &'a Case)> {
    use cordon_sandbox::ablate::Ablate;
    let seccomp_group = |c: &Case| {
        let call = c.report.as_deref().and_then(|t| t.split('(').next()).unwrap_or("");
        Ablate::seccomp_group(call).map(|a| a.name())
    };
    all.iter()
        .enumerate()
        .filter(|(_, c)| c.known_limit.is_none() && c.users.as_ref().is_none_or(|u| u.iter().any(|x| x == "root")))
        .filter(|(_, c)| {
            let layer = c.layer.as_deref().unwrap_or("");
            r.layers.contains(&layer)
                || r.ids.contains(&c.id.as_str())
                || (layer == "seccomp" && r.ablate.split(',').any(|a| seccomp_group(c) == Some(a)))
        })
        .collect()
}

/// Some(true) turned, Some(false) held by cordon, None: the run proves nothing either way.
#[cfg(feature = "ablation")]
fn judged(v: &Verdict) -> Option<bool> {
    match v {
        Verdict::Escaped(_) | Verdict::HostChanged(_) => Some(true),
        Verdict::Blocked { .. } | Verdict::WrongReason(_) => Some(false),
        Verdict::SetupFailed(_) | Verdict::TimedOut(_) | Verdict::Skipped(_) | Verdict::KnownLimit(_) => None,
    }
}

#[cfg(feature = "ablation")]
fn cell(v: &Verdict) -> (&'static str, bool) {
    match v {
        Verdict::Escaped(_) => ("ESCAPED", true),
        Verdict::HostChanged(_) => ("HOST CHANGED", true),
        Verdict::Blocked { .. } => ("still blocked", false),
        Verdict::WrongReason(_) => ("held by another layer", false),
        Verdict::SetupFailed(_) => ("DID NOT START", false),
        Verdict::TimedOut(_) => ("timed out", false),
        Verdict::Skipped(_) => ("skipped", false),
        Verdict::KnownLimit(_) => ("known limit", false),
    }
}

#[cfg(feature = "ablation")]
#[test]
fn escape_ablation_matrix() {
    use cordon_sandbox::ablate::Ablate;
    use std::collections::HashMap;
    if !need_root() {
        return;
    }
    let all = cases();
    let filter = std::env::var("CORDON_ESCAPE_FILTER").ok();
    let mut failures: Vec<String> = vec![];
    // Every switch has its row, and every row names switches the binary knows.
    for a in Ablate::ALL {
        if !ROWS.iter().any(|r| r.kind == Kind::Single && r.ablate == a.name()) {
            failures.push(format!("layer {}: no row in the matrix", a.name()));
        }
    }
    for r in ROWS {
        for a in r.ablate.split(',') {
            assert!(Ablate::from_name(a).is_some(), "row `{}`: unknown switch {a}", r.ablate);
        }
    }
    // (switches, case id) -> turned (Some(true)), held (Some(false): blocked, or held by another
    // layer) or not known (None: did not start, timed out, skipped); each run once (a pair's cases
    // are run again with each of its switches put back where no other row ran that set).
    let mut turned_by: HashMap<(String, String), Option<bool>> = HashMap::new();
    let mut mark = 100_000;
    let mut run = |ablate: &str, c: &Case, turned_by: &mut HashMap<(String, String), Option<bool>>| -> Verdict {
        mark += 1;
        let vars = [("CORDON_ABLATE".to_string(), ablate.to_string())];
        // A mark of its own (the escape suites may run beside this in the same process).
        let v = run_case_with(c, Who::Root, mark, &vars);
        turned_by.insert((ablate.to_string(), c.id.clone()), judged(&v));
        v
    };
    struct Done {
        label: String,
        caught: usize,
        of: usize,
        cells: Vec<String>,
    }
    let mut done: Vec<(usize, Done)> = vec![];
    let mut notes = String::new();
    // Single rows first: a pair's cases are looked up in what they turned.
    let order = ROWS
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == Kind::Single)
        .chain(ROWS.iter().enumerate().filter(|(_, r)| r.kind != Kind::Single));
    for (ri, r) in order {
        if filter.as_ref().is_some_and(|f| !f.split(',').any(|f| r.ablate.contains(f))) {
            continue;
        }
        let sel = selected(r, &all);
        let mut caught = 0;
        let mut cells = vec![];
        for (_, c) in &sel {
            let v = run(r.ablate, c, &mut turned_by);
            let (text, turned) = cell(&v);
            if turned && r.kind == Kind::Pair {
                // Caught by the row only if it needs every one of its switches: with any one of
                // them put back (the others still out), the case must be held. A side run that
                // proves nothing (did not start, timed out) fails the row instead of excusing it.
                let switches: Vec<&str> = r.ablate.split(',').collect();
                let mut enough = vec![];
                let mut unknown = vec![];
                for back in &switches {
                    let rest = switches.iter().filter(|a| *a != back).copied().collect::<Vec<_>>().join(",");
                    let key = (rest.clone(), c.id.clone());
                    let t = match turned_by.get(&key) {
                        Some(t) => *t,
                        None => judged(&run(&rest, c, &mut turned_by)),
                    };
                    match t {
                        Some(true) => enough.push(rest),
                        Some(false) => {}
                        None => unknown.push(rest),
                    }
                }
                if !unknown.is_empty() {
                    failures.push(format!(
                        "row + {}: {} turned, but the run without only {} proved nothing (did not start or timed out)",
                        r.ablate,
                        c.id,
                        unknown.join(" / ")
                    ));
                }
                if !enough.is_empty() || !unknown.is_empty() {
                    cells.push(format!("{} {text}, but also without only {}", c.id, enough.join(" / ")));
                    continue;
                }
            }
            caught += usize::from(turned);
            if matches!(v, Verdict::SetupFailed(_) | Verdict::TimedOut(_)) && r.kind != Kind::Shown {
                notes.push_str(&format!("  ({} with {}: {v:?})\n", c.id, r.ablate));
            }
            cells.push(format!("{} {text}", c.id));
        }
        let label = match r.kind {
            Kind::Single => r.ablate.to_string(),
            Kind::Pair => format!("+ {}", r.ablate),
            Kind::Shown => format!("(+ {})", r.ablate),
        };
        done.push((ri, Done { label, caught, of: sel.len(), cells }));
    }
    done.sort_by_key(|(ri, _)| *ri);
    // The judgement: a single switch is caught alone, or with the other switches of a pair row
    // that catches a case none of them turns alone; a pair row must catch one.
    let caught_with = |name: &str| -> Option<String> {
        done.iter()
            .filter(|(ri, d)| ROWS[*ri].kind == Kind::Pair && d.caught > 0)
            .find(|(ri, _)| ROWS[*ri].ablate.split(',').any(|a| a == name))
            .map(|(ri, _)| ROWS[*ri].ablate.split(',').filter(|a| *a != name).collect::<Vec<_>>().join(","))
    };
    let mut out = String::from(
        "\nlayer ablation (as root): each row runs the cases of the layer(s) it leaves out (CORDON_ABLATE)\n\
         caught = cases that turned from blocked to ESCAPED or HOST CHANGED; `held by another layer`: still\n\
         blocked, with another errno than the case names (a layer behind it). Rows marked + leave out\n\
         layers that stand behind one another: judged, each must catch a case that needs all of them\n\
         (with any one put back, it is held), and its layers are then `caught with` the others; rows in\n\
         ( ) are shown, not judged\n",
    );
    out.push_str(&format!("{:<36} {:>7}  cases\n", "layer(s) left out", "caught"));
    for (ri, d) in &done {
        let r = &ROWS[*ri];
        let mut body = if d.cells.is_empty() { "(no case names this layer)".to_string() } else { d.cells.join(", ") };
        let known = KNOWN_UNCOVERED.iter().find(|(n, _)| *n == r.ablate);
        match r.kind {
            Kind::Single => match (d.caught, caught_with(r.ablate), known) {
                (0, Some(p), None) => body = format!("caught with {p}; alone: {body}"),
                (0, None, None) => failures.push(format!(
                    "layer {}: no case turns from blocked to escaped when it is left out, alone or with its partner",
                    r.ablate
                )),
                (n, _, Some(_)) if n > 0 => failures.push(format!(
                    "layer {}: {n} case(s) turn without it now: take it out of KNOWN_UNCOVERED",
                    r.ablate
                )),
                (0, Some(p), Some(_)) => {
                    failures.push(format!("layer {}: caught with {p} now: take it out of KNOWN_UNCOVERED", r.ablate))
                }
                _ => {}
            },
            Kind::Pair if d.caught == 0 => failures.push(format!(
                "layers {}: no case turns that none of them turns alone (the depth this row stands for is gone)",
                r.ablate
            )),
            _ => {}
        }
        out.push_str(&format!("{:<36} {:>7}  {body}\n", d.label, format!("{}/{}", d.caught, d.of)));
    }
    out.push_str(&notes);
    for (n, why) in KNOWN_UNCOVERED {
        out.push_str(&format!("  KNOWN_UNCOVERED {n}: {why}\n"));
    }
    for f in &failures {
        out.push_str(&format!("  FAIL    {f}\n"));
    }
    println!("{out}");
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::write(tmp.join("escape-ablation.txt"), &out);
    if filter.is_none() {
        assert!(failures.is_empty(), "{} layer(s) uncaught:\n{}", failures.len(), failures.join("\n"));
    }
}

/// The shipped binary (default features) has no ablation: `CORDON_ABLATE` is not in it, and a
/// session asked to leave seccomp out still refuses what seccomp refuses.
#[cfg(not(feature = "ablation"))]
#[test]
fn the_shipped_binary_has_no_ablation_switch() {
    let bin = std::fs::read(env!("CARGO_BIN_EXE_cordon")).expect("read the cordon binary");
    let needle = b"CORDON_ABLATE";
    assert!(!bin.windows(needle.len()).any(|w| w == needle), "the default cordon binary holds `CORDON_ABLATE`");
    if !need_root() {
        return;
    }
    let all = cases();
    let c = all.iter().find(|c| c.id == "priv-keyctl").expect("case priv-keyctl");
    for who in BOTH {
        let vars = [("CORDON_ABLATE".to_string(), "seccomp-keyring,seccomp-kernel,landlock-fs".to_string())];
        let v = crate::run::run_case_with(c, who, 200_000, &vars);
        assert!(
            matches!(v, crate::run::Verdict::Blocked { reported: Some(true), .. }),
            "{:?}: with CORDON_ABLATE the default binary let the keyring through or did not report it: {v:?}",
            who
        );
    }
}
