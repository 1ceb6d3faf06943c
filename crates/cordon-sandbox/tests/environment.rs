//! Ready environments on the real kernel: made first, given a command later, and bounded whatever
//! that command's process plan says. The sandbox's clone needs a single-threaded caller, so this
//! test has no harness: `main` runs each case in a fresh process of this same binary
//! (`CORDON_ENV_CASE=name`), once as root and once as nobody (setpriv), and fails if any fails.
//! Needs root; without it the test fails unless CORDON_TESTS_ALLOW_SKIP is set.

use cordon_sandbox::plan::landlock::{FsRule, WRITE_FILE};
use cordon_sandbox::plan::process::Rlimit;
use cordon_sandbox::report::Ending;
use cordon_sandbox::{EnvOptions, Environment, EnvironmentPlan, Invocation, KernelCaps, Launch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A case: its name, and the function run with a fresh workspace.
type Case = (&'static str, fn(&Path));

const CASES: &[Case] = &[
    ("a_command_given_later_runs_with_its_own_restrictions", a_command_given_later_runs_with_its_own_restrictions),
    ("a_process_plan_cannot_widen_its_environment", a_process_plan_cannot_widen_its_environment),
    ("an_environment_dropped_unused_leaves_nothing", an_environment_dropped_unused_leaves_nothing),
];

fn main() {
    if let Ok(name) = std::env::var("CORDON_ENV_CASE") {
        let case = CASES.iter().find(|(n, _)| *n == name).expect("a known case");
        // Removed also when the case fails: the panic unwinds through the guard.
        let ws = Removed(workspace());
        (case.1)(&ws.0);
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        if std::env::var_os("CORDON_TESTS_ALLOW_SKIP").is_some() {
            println!("SKIPPED: environment tests need root (they run as root and as nobody)");
            return;
        }
        panic!("these tests need root (they run as root and as nobody); set CORDON_TESTS_ALLOW_SKIP=1 to skip them explicitly");
    }
    let exe = std::env::current_exe().expect("this test's binary");
    let mut failed = vec![];
    for (name, _) in CASES {
        for who in ["root", "nobody"] {
            let mut cmd = if who == "root" {
                Command::new(&exe)
            } else {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&exe);
                c
            };
            let st = cmd.env("CORDON_ENV_CASE", name).status().expect("run a case");
            println!("test {name} as {who} ... {}", if st.success() { "ok" } else { "FAILED" });
            if !st.success() {
                failed.push(format!("{name} as {who}"));
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

/// A directory removed when dropped.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh workspace of the user running the case (removed by `main` after the case).
fn workspace() -> PathBuf {
    let ws = std::env::temp_dir().join(format!("cordon-env-test-{}", std::process::id()));
    std::fs::create_dir_all(ws.join("open")).expect("mkdir");
    std::fs::create_dir_all(ws.join("sealed")).expect("mkdir");
    ws.canonicalize().expect("canonical")
}

fn setup(ws: &Path) -> (cordon_policy::CompiledPolicy, KernelCaps, Invocation) {
    let cx = cordon_policy::Context::for_workspace(ws.to_path_buf());
    let (_, policy) = cordon_policy::load_and_compile("builtin:agent", &cx).expect("builtin:agent");
    let inv = Invocation {
        session_id: format!("envtest{}", std::process::id()),
        argv: vec![],
        cwd: ws.to_path_buf(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
    };
    (policy, KernelCaps::detect(), inv)
}

fn sh(inv: &Invocation, script: &str) -> Invocation {
    Invocation { argv: vec!["/bin/sh".into(), "-c".into(), script.into()], ..inv.clone() }
}

/// Write rights beneath the workspace on `dir` only: every rule for the workspace or a tree that
/// holds it (such as /tmp) keeps its other rights.
fn writes_only_in(rules: &mut Vec<FsRule>, ws: &Path, dir: &Path) {
    use cordon_sandbox::plan::landlock::{EXECUTE, IOCTL_DEV, READ_DIR, READ_FILE};
    let write = rules.iter().find(|r| r.path == ws).expect("a rule for the workspace").rights;
    for r in rules.iter_mut().filter(|r| ws.starts_with(&r.path)) {
        r.rights &= READ_FILE | READ_DIR | EXECUTE | IOCTL_DEV;
    }
    rules.push(FsRule { path: dir.to_path_buf(), rights: write, why: "test".into() });
}

fn create(env: &EnvironmentPlan) -> Environment {
    let e = Environment::create(env, EnvOptions::default()).expect("an environment");
    assert!(e.is_ready(), "the environment's init failed during setup");
    e
}

fn exited(o: &cordon_sandbox::Outcome) -> i32 {
    match &o.ending {
        Ending::Exited { code } => *code,
        other => panic!("the command did not exit: {other:?} ({:?})", o.notes),
    }
}

fn a_command_given_later_runs_with_its_own_restrictions(ws: &Path) {
    let (policy, caps, inv) = setup(ws);
    let envp = cordon_sandbox::plan::environment(&policy, &caps, &inv.session_id);
    let env = create(&envp);
    // The command is known only now.
    std::thread::sleep(Duration::from_millis(200));
    let script = "echo a > open/f && ! (echo b > sealed/f) 2>/dev/null && ulimit -n > open/nofile";
    let mut process = cordon_sandbox::plan::process(&policy, &caps, &envp, &sh(&inv, script));
    writes_only_in(&mut process.landlock.fs_rules, ws, &ws.join("open"));
    process.rlimits.push((Rlimit::Nofile, 77));
    let o = env.run(&process, Launch::new("later")).expect("run");
    assert_eq!(exited(&o), 0, "{:?}", o.notes);
    assert_eq!(o.session_id, "later");
    assert_eq!(std::fs::read_to_string(ws.join("open/f")).expect("written"), "a\n");
    assert!(!ws.join("sealed/f").exists(), "the process plan forbids writing there");
    assert_eq!(std::fs::read_to_string(ws.join("open/nofile")).expect("written").trim(), "77");
}

fn a_process_plan_cannot_widen_its_environment(ws: &Path) {
    let (policy, caps, inv) = setup(ws);
    let mut envp = cordon_sandbox::plan::environment(&policy, &caps, &inv.session_id);
    // The environment writes only in open/, at most 64 files open, and no seccomp listener is
    // needed to refuse unshare.
    writes_only_in(&mut envp.landlock.fs_rules, ws, &ws.join("open"));
    envp.rlimits.push((Rlimit::Nofile, 64));
    let env = create(&envp);
    // A process plan that asks for more: the whole workspace writable, 4096 files, no filter of
    // its own, capabilities kept.
    let script =
        "ulimit -n > open/nofile; (echo b > sealed/f) 2>/dev/null; unshare -U true 2>/dev/null; echo $? > open/unshare";
    let mut process = cordon_sandbox::plan::process(&policy, &caps, &envp, &sh(&inv, script));
    assert!(process.landlock.fs_rules.iter().any(|r| r.path == ws && r.rights & WRITE_FILE != 0));
    process.rlimits.retain(|(r, _)| *r != Rlimit::Nofile);
    process.rlimits.push((Rlimit::Nofile, 4096));
    process.seccomp.enabled = false;
    process.drop_capabilities = false;
    let o = env.run(&process, Launch::new("wider")).expect("run");
    assert_eq!(exited(&o), 0, "{:?}", o.notes);
    // Bounded, not refused: each widening is simply not in force.
    assert!(!ws.join("sealed/f").exists(), "the environment's Landlock ruleset bounds the process's");
    assert_eq!(std::fs::read_to_string(ws.join("open/nofile")).expect("written").trim(), "64");
    let unshare = std::fs::read_to_string(ws.join("open/unshare")).expect("written");
    assert_ne!(unshare.trim(), "0", "the environment's seccomp filter refuses unshare");
    assert!(
        o.denials.items.iter().any(|d| d.layer.as_str() == "seccomp" && d.what.starts_with("unshare")),
        "reported through the environment's listener: {:?}",
        o.denials.items
    );
}

fn an_environment_dropped_unused_leaves_nothing(ws: &Path) {
    let (policy, caps, inv) = setup(ws);
    let envp = cordon_sandbox::plan::environment(&policy, &caps, &inv.session_id);
    let env = create(&envp);
    let init = nix::unistd::Pid::from_raw(env.init_pid());
    let cgroup = env.cgroup_dir().map(Path::to_path_buf);
    assert!(nix::sys::signal::kill(init, None).is_ok(), "the init waits");
    drop(env);
    assert_eq!(nix::sys::signal::kill(init, None), Err(nix::errno::Errno::ESRCH), "the init is gone");
    if let Some(dir) = cgroup {
        assert!(!dir.exists(), "{} removed", dir.display());
    }
}
