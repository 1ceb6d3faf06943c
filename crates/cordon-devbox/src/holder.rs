//! One pooled devbox: the process that holds its [`Environment`] (`cordon devbox-hold`, started by
//! the daemon; internal, not a clap verb). The daemon is multi-threaded and the sandbox's clone
//! needs a single-threaded caller, so each environment lives in a holder of its own, as each
//! gateway server lives in a `cordon supervise`.
//!
//! ```text
//! daemon ──Hold──> holder: overlay root over the snapshot, namespaces, cgroup ──Ready──> (waits: nothing of the agent runs)
//! daemon ──Claim(policy)──> holder: process plan from the claim's policy ──> the exec server runs, restricted
//! ```
//!
//! fd 1 is the control channel (moved away at start: /dev/null takes its place), fd 0 the exec
//! server's socket (the command inherits it as its stdin), fd 2 the devbox's log.

use crate::sys;
use crate::wire::{recv, send};
use cordon_sandbox::plan::landlock::{FsRule, EXECUTE, READ_FILE};
use cordon_sandbox::plan::ns::MountOp;
use cordon_sandbox::{EnvOptions, Environment, Invocation, KernelCaps, Launch};
use serde::{Deserialize, Serialize};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Where the cordon binary is bound read-only in every devbox's root, to run its exec server.
pub const EXEC_PATH: &str = "/run/.cordon-devbox/cordon";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToHolder {
    /// Prepare: `lower` (the snapshot's code) under `upper`/`work`, mounted at `ws`; the base policy.
    /// `env`: the devbox's environment (the snapshot's `env` and PATH).
    Hold {
        id: String,
        lower: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        ws: PathBuf,
        policy: String,
        env: Vec<(String, String)>,
        exe: PathBuf,
        /// The daemon's audit log: masked in the devbox, as a session's log is in its session.
        #[serde(default)]
        audit: Option<PathBuf>,
    },
    /// Run the exec server under `policy` (already judged no looser than the base; None: the base,
    /// whose process plan was made while the devbox waited).
    ///
    /// `secrets`: environment variables of this claim's exec server, so of its commands only.
    Claim {
        policy: Option<ClaimPolicy>,
        #[serde(default)]
        secrets: crate::secrets::Secrets,
    },
}

/// A claim's policy: built in (or a file, root's claims only), or the text its client sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimPolicy {
    Spec(String),
    /// `name`: the file the client read it from (for the record); its `extends` are built in only.
    Text {
        name: String,
        text: String,
    },
}

impl ClaimPolicy {
    pub fn name(&self) -> &str {
        match self {
            ClaimPolicy::Spec(s) => s,
            ClaimPolicy::Text { name, .. } => name,
        }
    }

    /// Loaded and compiled for workspace `ws` (a text reads no file: its `extends` were checked).
    pub fn load(&self, ws: &Path) -> Result<(cordon_policy::Loaded, cordon_policy::CompiledPolicy), String> {
        let cx = cordon_policy::Context::for_workspace(ws.to_path_buf());
        match self {
            ClaimPolicy::Spec(s) => cordon_policy::load_and_compile(s, &cx).map_err(|e| e.to_string()),
            ClaimPolicy::Text { name, text } => {
                let l = cordon_policy::load_text(name, text).map_err(|e| e.to_string())?;
                let c = cordon_policy::compile(&l, &cx);
                Ok((l, c))
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromHolder {
    Ready { init_pid: i32, cgroup: Option<PathBuf> },
    Running,
    Ended { code: i32 },
    Failed { error: String },
}

/// `cordon devbox-hold`: returns the process's exit status.
pub fn serve() -> i32 {
    let Ok(ctl) = sys::take_over(1) else { return 125 };
    let ctl = ctl.as_fd();
    let say = |m: FromHolder| {
        let _ = send(ctl, &m, &[]);
    };
    // The daemon gone, a claimed devbox ends (the signal is passed on to its exec server) and a
    // pooled one sees its channel close.
    let _ = cordon_sandbox::sys::set_pdeathsig(libc::SIGTERM);
    let Ok(Some((ToHolder::Hold { id, lower, upper, work, ws, policy, env: vars, exe, audit }, _))) =
        recv::<ToHolder>(ctl)
    else {
        say(FromHolder::Failed { error: "no Hold order on the control channel".into() });
        return 125;
    };
    let caps = KernelCaps::detect();
    let mask = |mut p: cordon_policy::CompiledPolicy| {
        if let Some(db) = &audit {
            cordon_session::recording::mask_log(&mut p, db);
        }
        p
    };
    let base = match compile(&policy, &ws) {
        Ok(p) => mask(p),
        Err(e) => {
            say(FromHolder::Failed { error: e });
            return 125;
        }
    };
    let mut envp = cordon_sandbox::plan::environment(&base, &caps, &format!("devbox-{id}"));
    if !cordon_sandbox::plan::root::overlay_workspace(&mut envp.ns.mounts, &ws, &lower, &upper, &work) {
        say(FromHolder::Failed {
            error: format!(
                "the policy {policy} gives the devbox no writable workspace at {} to lay the snapshot on",
                ws.display()
            ),
        });
        return 125;
    }
    add_exec_server(&mut envp.ns.mounts, &mut envp.landlock.fs_rules, &exe);
    if let Err(e) = placeholders_in_upper(&mut envp.ns.mounts, &ws, &lower, &upper) {
        say(FromHolder::Failed { error: e });
        return 125;
    }
    let env = match Environment::create(&envp, EnvOptions::default()) {
        Ok(e) if e.is_ready() => e,
        Ok(e) => {
            // Its outcome says why (the init's report); running it runs nothing.
            let inv =
                Invocation { session_id: id.clone(), argv: vec!["/bin/true".into()], cwd: ws.clone(), env: vec![] };
            let process = cordon_sandbox::plan::process(&base, &caps, &envp, &inv);
            let why = match e.run(&process, Launch::new(id)) {
                Ok(o) => format!("{:?} {}", o.ending, o.notes.join("; ")),
                Err(e) => e.to_string(),
            };
            say(FromHolder::Failed { error: format!("the devbox's init ended while it was set up: {why}") });
            return 125;
        }
        Err(e) => {
            say(FromHolder::Failed { error: e.to_string() });
            return 125;
        }
    };
    say(FromHolder::Ready { init_pid: env.init_pid(), cgroup: env.cgroup_dir().map(Path::to_path_buf) });
    let inv = Invocation {
        session_id: id.clone(),
        argv: vec![EXEC_PATH.into(), "devbox-exec-server".into()],
        cwd: ws.clone(),
        env: vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
    };
    // The base policy's process plan, made while the devbox waits: a claim under it only starts it.
    let mut process = cordon_sandbox::plan::process(&base, &caps, &envp, &inv);
    process.landlock.fs_rules.push(exec_rule());
    // Pooled: nothing runs until a claim (the channel closed instead: the environment is dropped).
    let Ok(Some((ToHolder::Claim { policy, secrets }, _))) = recv::<ToHolder>(ctl) else { return 0 };
    if let Some(policy) = policy {
        let claim = match policy.load(&ws) {
            Ok((_, p)) => mask(p),
            Err(e) => {
                say(FromHolder::Failed { error: e });
                return 125;
            }
        };
        // The claim's restrictions (Landlock, seccomp, rlimits, capabilities, hardening) are
        // applied to the exec server now; every command it starts inherits them, within the
        // environment's bounds.
        process = cordon_sandbox::plan::process(&claim, &caps, &envp, &inv);
        process.landlock.fs_rules.push(exec_rule());
    }
    // Bound after the policy's environment filter: the claimant chose each of them, by name.
    for (k, v) in secrets {
        process.env.retain(|(x, _)| x.as_os_str() != k.as_str());
        process.env.push((k.into(), v.0.into()));
    }
    say(FromHolder::Running);
    match env.run(&process, Launch::new(id)) {
        Ok(o) => {
            // The devbox's log (the daemon's store, out of the devbox's view).
            eprintln!("cordon devbox-hold: the exec server ended: {:?} {}", o.ending, o.notes.join("; "));
            say(FromHolder::Ended { code: o.exit_code });
            0
        }
        Err(e) => {
            say(FromHolder::Failed { error: e.to_string() });
            125
        }
    }
}

/// The placeholders that keep absent protected workspace paths (`.envrc`, `.git/hooks`, ...) from
/// being made belong in the devbox's upper layer, never in the snapshot (`lower`), which every
/// devbox of it shares. Made there (the upper is this devbox's alone, removed with it), and the mount plan
/// told they are made, so the sandbox makes none on the host.
fn placeholders_in_upper(mounts: &mut [MountOp], ws: &Path, lower: &Path, upper: &Path) -> Result<(), String> {
    use cordon_sandbox::plan::ns::{placeholder_file, PLACEHOLDER_FILE_MODE, PLACEHOLDER_MODE};
    use std::os::unix::fs::OpenOptionsExt;
    for m in mounts.iter_mut() {
        let MountOp::ReadOnly { path, placeholder, .. } = m else { continue };
        let Ok(rel) = path.strip_prefix(ws) else { continue };
        if !*placeholder || lower.join(rel).symlink_metadata().is_ok() {
            continue;
        }
        let at = upper.join(rel);
        let fail = |e: &dyn std::fmt::Display| format!("placeholder {} in the devbox's upper layer: {e}", at.display());
        if let Some(d) = at.parent() {
            std::fs::create_dir_all(d).map_err(|e| fail(&e))?;
        }
        match placeholder_file(path) {
            None => nix::sys::stat::mknod(
                &at,
                nix::sys::stat::SFlag::S_IFSOCK,
                nix::sys::stat::Mode::from_bits_truncate(PLACEHOLDER_MODE),
                0,
            )
            .map_err(|e| fail(&e))?,
            Some(content) => {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(PLACEHOLDER_FILE_MODE)
                    .open(&at)
                    .map_err(|e| fail(&e))?;
                f.write_all(content.as_bytes()).map_err(|e| fail(&e))?;
            }
        }
        *placeholder = false;
    }
    Ok(())
}

fn compile(spec: &str, ws: &Path) -> Result<cordon_policy::CompiledPolicy, String> {
    let cx = cordon_policy::Context::for_workspace(ws.to_path_buf());
    cordon_policy::load_and_compile(spec, &cx).map(|(_, p)| p).map_err(|e| e.to_string())
}

fn exec_rule() -> FsRule {
    FsRule { path: EXEC_PATH.into(), rights: READ_FILE | EXECUTE, why: "the devbox's exec server".into() }
}

/// The cordon binary bound read-only at [`EXEC_PATH`] (before the host's tree is detached), and
/// executable under the environment's Landlock ruleset.
fn add_exec_server(mounts: &mut Vec<MountOp>, rules: &mut Vec<FsRule>, exe: &Path) {
    let at = mounts.iter().position(|m| matches!(m, MountOp::DetachHost { .. })).unwrap_or(mounts.len());
    mounts.insert(at, MountOp::Bind { src: exe.to_path_buf(), dst: EXEC_PATH.into(), writable: false });
    rules.push(exec_rule());
}
