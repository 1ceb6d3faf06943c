//! Layer ablation (issue 18): with the `ablation` feature, `cordon` leaves out the layers named in
//! `CORDON_ABLATE` (crates/cordon-sandbox/src/ablate.rs). For every switch, the cases that name the
//! layer it stands for (seccomp: the cases whose report names a call of its group) run as root with
//! that switch alone off, and the matrix records which turn from blocked to ESCAPED or HOST CHANGED.
//! A switch no case turns fails the test, unless [`KNOWN_UNCOVERED`] says why (printed). A few
//! rows leave out two layers together, to show where one stands behind the other (not judged).
//!
//! Without the feature, [`the_shipped_binary_has_no_ablation_switch`] runs instead.

use crate::case::{Case, Cases};
use crate::common::*;
#[cfg(feature = "ablation")]
use crate::run::{run_case_with, Verdict};

/// Switches that no case turns today, and why. Each is printed under the matrix; one that does
/// turn a case fails the test (take it out of here).
#[cfg(feature = "ablation")]
const KNOWN_UNCOVERED: &[(&str, &str)] = &[
    ("landlock-scopes", "behind the pid and network namespaces: host processes and the host's abstract sockets are not there to reach (rows + landlock-scopes,pidns and + landlock-scopes,netns)"),
    ("seccomp-mount", "behind the missing capabilities: mount, chroot and pivot_root need CAP_SYS_ADMIN, which no process of the session has, and seccomp-ns keeps it from a user namespace that would give it (row + seccomp-mount,caps)"),
    ("seccomp-socket", "behind the missing capabilities: raw and packet sockets need CAP_NET_RAW (row + seccomp-socket,caps)"),
    ("memfd-seal", "one of a pair: vm.memfd_noexec=2 (memfd-sysctl) refuses the exec as well (row + memfd-seal,memfd-sysctl)"),
    ("memfd-sysctl", "one of a pair: the supervisor's MFD_NOEXEC_SEAL memfds (memfd-seal) refuse the exec as well (row + memfd-seal,memfd-sysctl)"),
    ("sealed", "behind Landlock: a new name outside the granted trees needs a write right Landlock does not give (row + sealed,landlock-fs)"),
    ("tmpfs", "cordon needs it to start: the masks are staged in the session's /tmp, and the built root has no other /tmp (the session does not start without it)"),
    ("nnp", "the kernel requires no_new_privs (or CAP_SYS_ADMIN) to enforce Landlock and seccomp, and the landlock crate sets it itself in restrict_self: it is never absent while those layers are"),
    ("nodump", "behind Landlock: the command's Landlock domain is nested in the init's, and Landlock refuses reading /proc/PID/environ of a process outside it (row + nodump,landlock-fs,landlock-scopes)"),
    ("cgroup-bpf", "behind the network namespace: what the sensor refuses has no route out of the session's namespace (row + cgroup-bpf,netns)"),
    ("ipcns", "no case: the host's System V IPC objects and POSIX queues are what it hides, and no case attacks them yet"),
    ("utsns", "no case: it only hides the host's name (sethostname needs a capability the session lacks)"),
    ("userns", "as root the session has no user namespace (root needs none to make the others); as nobody it is what makes them, not a confinement of its own"),
];

#[cfg(feature = "ablation")]
/// One row: the switches left out, and the cases it runs (by the layer they name, or by id).
struct Row {
    ablate: &'static str,
    layers: &'static [&'static str],
    ids: &'static [&'static str],
    /// Judged: a single switch must turn a case (or be a known gap). Pairs are shown, not judged.
    judged: bool,
}

#[cfg(feature = "ablation")]
const fn row(ablate: &'static str, layers: &'static [&'static str]) -> Row {
    Row { ablate, layers, ids: &[], judged: true }
}

#[cfg(feature = "ablation")]
/// The switches (see ablate.rs) and the harness layers whose cases they may decide. Seccomp rows
/// name no layer: they run the seccomp cases whose `report` names a call of their group.
const ROWS: &[Row] = &[
    row("landlock-fs", &["landlock"]),
    Row { ablate: "landlock-scopes", layers: &[], ids: &["net-abstract", "proc-kill", "proc-stop"], judged: true },
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
    row("ipcns", &[]),
    row("utsns", &[]),
    row("userns", &[]),
    row("cgroup-limits", &["cgroup"]),
    row("timer", &["timer"]),
    row("rlimits", &["rlimit"]),
    row("env", &["env"]),
    row("caps", &["caps"]),
    row("nnp", &["nnp"]),
    row("nodump", &["nodump"]),
    row("egress", &["proxy"]),
    row("cgroup-bpf", &["cgroup-bpf", "netns"]),
    // Depth: one layer behind another.
    Row { ablate: "memfd-seal,memfd-sysctl", layers: &["memfd"], ids: &[], judged: false },
    Row { ablate: "landlock-scopes,netns", layers: &[], ids: &["net-abstract"], judged: false },
    Row { ablate: "landlock-scopes,pidns", layers: &[], ids: &["proc-kill", "proc-stop"], judged: false },
    Row { ablate: "root,landlock-fs", layers: &["root"], ids: &[], judged: false },
    Row { ablate: "sealed,landlock-fs", layers: &["sealed"], ids: &[], judged: false },
    Row { ablate: "seccomp-socket,caps", layers: &[], ids: &[], judged: false },
    Row { ablate: "cgroup-bpf,netns", layers: &["cgroup-bpf"], ids: &[], judged: false },
    Row { ablate: "seccomp-mount,caps", layers: &[], ids: &[], judged: false },
    Row { ablate: "nodump,landlock-fs,landlock-scopes", layers: &["nodump"], ids: &[], judged: false },
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
    if !need_root() {
        return;
    }
    let all = cases();
    let filter = std::env::var("CORDON_ESCAPE_FILTER").ok();
    let mut failures: Vec<String> = vec![];
    // Every switch has its row, and every row names switches the binary knows.
    for a in Ablate::ALL {
        if !ROWS.iter().any(|r| r.judged && r.ablate == a.name()) {
            failures.push(format!("layer {}: no row in the matrix", a.name()));
        }
    }
    for r in ROWS {
        for a in r.ablate.split(',') {
            assert!(Ablate::from_name(a).is_some(), "row `{}`: unknown switch {a}", r.ablate);
        }
    }
    let mut out = String::from(
        "\nlayer ablation (as root): each row runs the cases of the layer(s) it leaves out (CORDON_ABLATE)\n\
         caught = cases that turned from blocked to ESCAPED or HOST CHANGED; `held by another layer`: still\n\
         blocked, with another errno than the case names (a layer behind it); rows marked + leave out two\n\
         layers together (depth, not judged)\n",
    );
    out.push_str(&format!("{:<26} {:>7}  cases\n", "layer(s) left out", "caught"));
    for (ri, r) in ROWS.iter().enumerate() {
        if filter.as_ref().is_some_and(|f| !f.split(',').any(|f| r.ablate.contains(f))) {
            continue;
        }
        let sel = selected(r, &all);
        let vars = [("CORDON_ABLATE".to_string(), r.ablate.to_string())];
        let mut caught = 0;
        let mut cells = vec![];
        for (n, c) in &sel {
            // A mark of its own (the escape suites may run beside this in the same process).
            let v = run_case_with(c, Who::Root, 100_000 + ri * 1000 + n, &vars);
            let (text, turned) = cell(&v);
            caught += usize::from(turned);
            if matches!(v, Verdict::SetupFailed(_) | Verdict::TimedOut(_)) && r.judged {
                out.push_str(&format!("  ({} with {}: {v:?})\n", c.id, r.ablate));
            }
            cells.push(format!("{} {text}", c.id));
        }
        let label = if r.judged { r.ablate.to_string() } else { format!("+ {}", r.ablate) };
        let body = if cells.is_empty() { "(no case names this layer)".to_string() } else { cells.join(", ") };
        out.push_str(&format!("{label:<26} {:>7}  {body}\n", format!("{caught}/{}", sel.len())));
        if !r.judged {
            continue;
        }
        let known = KNOWN_UNCOVERED.iter().find(|(n, _)| *n == r.ablate);
        match (caught, known) {
            (0, None) => failures
                .push(format!("layer {}: no case turns from blocked to escaped when it alone is left out", r.ablate)),
            (n, Some(_)) if n > 0 => failures
                .push(format!("layer {}: {n} case(s) turn without it now: take it out of KNOWN_UNCOVERED", r.ablate)),
            _ => {}
        }
    }
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
