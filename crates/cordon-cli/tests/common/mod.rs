//! Shared helpers for end-to-end tests: they run the real `cordon` binary, as root and as `nobody`
//! (through setpriv), against the real kernel, in temporary workspaces they remove afterwards.
#![allow(dead_code)]

pub mod certs;
pub mod postgres;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const NOBODY: u32 = 65534;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Root,
    Nobody,
}

pub const BOTH: [Who; 2] = [Who::Root, Who::Nobody];

/// Records a skip where scripts/test counts and lists it: a skipped test or case is never silently
/// a pass.
pub fn record_skip(what: &str, why: &str) {
    use std::io::Write;
    eprintln!("SKIPPED {what}: {why}");
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.log");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "{what}: {why}");
    }
}

/// These tests need root (to run as both users, and for cgroups). On a machine where they cannot
/// run, they fail; set CORDON_TESTS_ALLOW_SKIP=1 to have them skipped instead (and counted as such).
#[track_caller]
pub fn need_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CORDON_TESTS_ALLOW_SKIP").is_some() {
        record_skip(&std::panic::Location::caller().to_string(), "needs root");
        return false;
    }
    panic!("this test needs root (it runs cordon as root and as nobody); set CORDON_TESTS_ALLOW_SKIP=1 to skip it explicitly");
}

/// A temporary tree: `home/` (a fake HOME with credentials in it) and `home/ws/` (the workspace),
/// owned by the user the test runs cordon as. Removed on drop.
pub struct Env {
    pub root: PathBuf,
    pub home: PathBuf,
    pub ws: PathBuf,
    pub who: Who,
}

impl Env {
    pub fn new(who: Who) -> Env {
        let root = PathBuf::from(format!("/var/tmp/cordon-test-{}-{}", std::process::id(), uniq()));
        let home = root.join("home");
        let ws = home.join("ws");
        std::fs::create_dir_all(&ws).expect("mkdir ws");
        std::fs::create_dir_all(home.join(".ssh")).expect("mkdir .ssh");
        std::fs::write(home.join(".ssh/id_rsa"), "-----BEGIN FAKE KEY-----\n").expect("key");
        std::fs::write(home.join(".bashrc"), "# rc\n").expect("rc");
        std::fs::write(ws.join("README.md"), "hello\n").expect("readme");
        std::fs::write(ws.join(".env"), "API_KEY=sk-fake\n").expect(".env");
        for p in [&root, &home] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let e = Env { root, home, ws, who };
        if who == Who::Nobody {
            e.chown_all();
        }
        e
    }

    pub fn chown_all(&self) {
        let st =
            Command::new("chown").args(["-R", &format!("{NOBODY}:{NOBODY}")]).arg(&self.root).status().expect("chown");
        assert!(st.success());
    }

    /// Runs `cordon ARGS` as this env's user, with HOME set to the fake home and cwd the workspace.
    pub fn cordon(&self, args: &[&str]) -> Output {
        self.cordon_env(args, &[])
    }

    pub fn cordon_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(env!("CARGO_BIN_EXE_cordon"));
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("spawn cordon")
    }

    /// `cordon run [--allow-degraded for nobody] -- sh -c SCRIPT`: nobody has no writable cgroup on
    /// these hosts, so its sessions run degraded by explicit choice (tested separately).
    pub fn run_sh(&self, script: &str) -> Output {
        self.run_sh_with(&[], script, &[])
    }

    pub fn run_sh_with(&self, extra: &[&str], script: &str, env: &[(&str, &str)]) -> Output {
        let mut args = vec!["run"];
        if self.who == Who::Nobody {
            args.push("--allow-degraded");
        }
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
        self.cordon_env(&args, env)
    }

    /// [`Env::run_sh`], started and left running (its output piped): for sessions that overlap.
    pub fn spawn_sh(&self, script: &str) -> std::process::Child {
        let mut args = vec!["run"];
        if self.who == Who::Nobody {
            args.push("--allow-degraded");
        }
        args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
        let mut c = self.command(env!("CARGO_BIN_EXE_cordon"));
        c.args(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        c.spawn().expect("spawn cordon")
    }

    /// The control: the same script without cordon, as the same user.
    pub fn bare_sh(&self, script: &str) -> Output {
        let mut c = self.command("/bin/sh");
        c.args(["-c", script]);
        c.output().expect("spawn sh")
    }

    pub fn command(&self, prog: &str) -> Command {
        let mut c = match self.who {
            Who::Root => Command::new(prog),
            Who::Nobody => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={NOBODY}"),
                    format!("--regid={NOBODY}"),
                    "--clear-groups".into(),
                    "--".into(),
                    prog.into(),
                ]);
                c
            }
        };
        // Sessions are recorded in this test's own audit log, never the machine's.
        c.current_dir(&self.ws)
            .env("HOME", &self.home)
            .env("CORDON_AUDIT", self.root.join("audit.db"))
            .env_remove("CORDON_TESTS_ALLOW_SKIP");
        c
    }

    pub fn write_policy(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root.join(name);
        std::fs::write(&p, text).expect("policy");
        if self.who == Who::Nobody {
            self.chown_all();
        }
        p
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn uniq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn show(o: &Output) -> String {
    format!("status {:?}\n--- stdout\n{}--- stderr\n{}", o.status.code(), out(o), err(o))
}

pub fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

/// Polls `f` until it gives a value or `limit` passes: for tests that wait on an event the kernel
/// delivers asynchronously (a process gone, a file there), never for a guessed delay.
#[allow(dead_code)]
pub fn wait_for<T>(limit: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t.elapsed() > limit {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
pub mod server;
