//! The snapshot store: `STORE/snapshots/HASH/` holds `code/` (the repository cloned at the commit the
//! ref names, after the setup commands ran in it) and `manifest.json`. HASH is a content hash over
//! the checked `devbox.toml` (its canonical form, not its text: comments and layout do not count)
//! and the commit, so a rebuild of what has not changed is a lookup ("up to date"), and any change
//! of the file, the policy's text or the code names another snapshot.
//!
//! A build works in `HASH.partial/` and publishes it with one rename; any failure removes the
//! partial directory, so a snapshot is either whole or absent. Builds of one store take turns (an
//! exclusive flock on `STORE/snapshots`); a `.partial` left by a build that was killed is removed by
//! the next build of the same hash, which holds the lock.

use crate::config::Devbox;
use crate::DevboxError;
use cordon_session::spec::{AuditChoice, SessionSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What `manifest.json` says about a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// The snapshot's name (hex SHA-256 of the canonical content, first 24 characters).
    pub hash: String,
    /// The whole hash.
    pub content_sha256: String,
    /// The devbox file it was built from, as named.
    pub file: String,
    pub repo: PathBuf,
    pub git_ref: String,
    pub commit: String,
    pub devbox: Devbox,
    /// Each setup step's command and how long it took.
    pub setup: Vec<StepTime>,
    /// When the build finished (seconds since the epoch).
    pub built_at: u64,
    pub cordon_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepTime {
    pub argv: Vec<String>,
    pub ms: u64,
}

/// A build's result.
#[derive(Debug, Clone)]
pub struct Built {
    pub hash: String,
    pub dir: PathBuf,
    pub commit: String,
    /// The snapshot already existed: nothing was built.
    pub up_to_date: bool,
}

/// What a build is doing, for the caller to show.
#[derive(Debug, Clone)]
pub enum Progress {
    Resolved { commit: String, hash: String },
    Cloning,
    Setup { n: usize, total: usize, cmd: String },
    SetupDone { n: usize, total: usize, ms: u64 },
    Published { dir: PathBuf },
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Resolved { commit, hash } => write!(f, "code at {commit}; snapshot {hash}"),
            Progress::Cloning => write!(f, "cloning the code"),
            Progress::Setup { n, total, cmd } => write!(f, "setup {n}/{total}: {cmd}"),
            Progress::SetupDone { n, total, ms } => write!(f, "setup {n}/{total} done in {:.1} s", *ms as f64 / 1e3),
            Progress::Published { dir } => write!(f, "snapshot ready: {}", dir.display()),
        }
    }
}

/// The store's snapshot directory.
pub fn snapshots(store: &Path) -> PathBuf {
    store.join("snapshots")
}

/// Reads a snapshot's manifest (`name`: its hash, or a unique prefix of one).
pub fn open(store: &Path, name: &str) -> Result<(PathBuf, Manifest), DevboxError> {
    let dir = snapshots(store);
    let store_err = |what: String, err| DevboxError::Store { path: store.display().to_string(), what, err };
    let mut found = vec![];
    let rd = std::fs::read_dir(&dir).map_err(|e| store_err("cannot list its snapshots".into(), e))?;
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.contains('.') && n.starts_with(name) && !name.is_empty() {
            found.push(n);
        }
    }
    let one = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(store_err(format!("no snapshot `{name}`"), std::io::Error::from(std::io::ErrorKind::NotFound)))
        }
        _ => {
            return Err(store_err(
                format!("`{name}` names {} snapshots; give more of the hash", found.len()),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ))
        }
    };
    let path = dir.join(&one);
    let text = std::fs::read(path.join("manifest.json"))
        .map_err(|e| store_err(format!("snapshot {one} has no manifest"), e))?;
    let m = serde_json::from_slice(&text)
        .map_err(|e| store_err(format!("snapshot {one}'s manifest.json does not parse"), std::io::Error::other(e)))?;
    Ok((path, m))
}

/// The snapshot's content hash: the checked file in canonical form (JSON, fields in a fixed order,
/// the policy's text rather than its path) and the commit.
pub fn content_hash(d: &Devbox, commit: &str) -> String {
    let canonical = serde_json::json!({
        "format": 1,
        "base": d.base,
        "commit": commit,
        "setup": d.setup,
        "setup_net": d.setup_net,
        "policy_text": d.policy_text,
        "env": d.env,
        "ready": d.ready,
    });
    let mut h = Sha256::new();
    h.update(canonical.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds (or finds) the snapshot `d` names in `store`. `exe`: the cordon binary, whose `cordon
/// supervise` runs each setup command.
pub fn build(d: &Devbox, store: &Path, exe: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Built, DevboxError> {
    let commit = resolve(d)?;
    let full = content_hash(d, &commit);
    let hash = full[..24].to_string();
    progress(Progress::Resolved { commit: commit.clone(), hash: hash.clone() });
    let store_err = |what: &str, err| DevboxError::Store { path: store.display().to_string(), what: what.into(), err };
    let snaps = snapshots(store);
    std::fs::create_dir_all(&snaps).map_err(|e| store_err("cannot create its snapshots directory", e))?;
    // Builds take turns: a second build of the same hash finds the first's result.
    let dirf = std::fs::File::open(&snaps).map_err(|e| store_err("cannot open its snapshots directory", e))?;
    let _lock = nix::fcntl::Flock::lock(dirf, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| store_err("cannot lock its snapshots directory", e.into()))?;
    let done = snaps.join(&hash);
    if done.join("manifest.json").is_file() {
        return Ok(Built { hash, dir: done, commit, up_to_date: true });
    }
    let partial = Partial::make(snaps.join(format!("{hash}.partial")))
        .map_err(|e| store_err("cannot make the build directory", e))?;
    let code = partial.0.join("code");
    progress(Progress::Cloning);
    clone(d, &commit, &code)?;
    let mut times = vec![];
    let total = d.setup.len();
    for (i, argv) in d.setup.iter().enumerate() {
        let cmd = argv.join(" ");
        progress(Progress::Setup { n: i + 1, total, cmd: cmd.clone() });
        let t = Instant::now();
        setup_step(d, exe, &code, &partial.0.join("setup.log"), argv).map_err(|(why, output)| DevboxError::Setup {
            file: d.file.clone(),
            n: i + 1,
            total,
            cmd,
            why,
            output,
        })?;
        let ms = t.elapsed().as_millis() as u64;
        progress(Progress::SetupDone { n: i + 1, total, ms });
        times.push(StepTime { argv: argv.clone(), ms });
    }
    let m = Manifest {
        format: 1,
        hash: hash.clone(),
        content_sha256: full,
        file: d.file.clone(),
        repo: d.repo.clone(),
        git_ref: d.git_ref.clone(),
        commit: commit.clone(),
        devbox: d.clone(),
        setup: times,
        built_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.as_secs()).unwrap_or(0),
        cordon_version: env!("CARGO_PKG_VERSION").into(),
    };
    let json =
        serde_json::to_vec_pretty(&m).map_err(|e| store_err("cannot write a manifest", std::io::Error::other(e)))?;
    let mut f =
        std::fs::File::create(partial.0.join("manifest.json")).map_err(|e| store_err("cannot write a manifest", e))?;
    f.write_all(&json).and_then(|_| f.sync_all()).map_err(|e| store_err("cannot write a manifest", e))?;
    std::fs::rename(&partial.0, &done).map_err(|e| store_err("cannot publish the snapshot", e))?;
    partial.keep();
    if let Ok(d) = std::fs::File::open(&snaps) {
        let _ = d.sync_all();
    }
    progress(Progress::Published { dir: done.clone() });
    Ok(Built { hash, dir: done, commit, up_to_date: false })
}

/// A build directory, removed on drop unless kept (published).
struct Partial(PathBuf, std::cell::Cell<bool>);

impl Partial {
    /// Made afresh: one a killed build left behind goes first (the caller holds the store's lock).
    fn make(p: PathBuf) -> std::io::Result<Partial> {
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
        std::fs::create_dir(&p)?;
        Ok(Partial(p, std::cell::Cell::new(false)))
    }

    fn keep(&self) {
        self.1.set(true);
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.1.get() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn git() -> Command {
    let mut c = Command::new("git");
    // The user's and the system's git configuration play no part in what the snapshot holds.
    c.env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null").env("GIT_TERMINAL_PROMPT", "0");
    c.stdin(Stdio::null());
    c
}

fn code_err(d: &Devbox, step: &str, message: String, hint: &str) -> DevboxError {
    DevboxError::Code { file: d.file.clone(), step: step.into(), message, hint: hint.into() }
}

/// The commit `code.ref` names in `code.repo`.
fn resolve(d: &Devbox) -> Result<String, DevboxError> {
    let repo = d.repo.display().to_string();
    if !d.repo.is_dir() {
        return Err(code_err(
            d,
            "code.repo",
            format!("{repo} is not a directory"),
            "code.repo is a local git repository, relative to the devbox file",
        ));
    }
    let run = |args: &[&str]| git().arg("-C").arg(&d.repo).args(args).output();
    let o = run(&["rev-parse", "--git-dir"])
        .map_err(|e| code_err(d, "code.repo", format!("cannot run git: {e}"), "install git"))?;
    if !o.status.success() {
        return Err(code_err(
            d,
            "code.repo",
            format!("{repo} is not a git repository: {}", String::from_utf8_lossy(&o.stderr).trim()),
            "code.repo is a local git repository (`git init` makes one)",
        ));
    }
    let spec = format!("{}^{{commit}}", d.git_ref);
    let o = run(&["rev-parse", "--verify", "--quiet", "--end-of-options", &spec])
        .map_err(|e| code_err(d, "code.ref", format!("cannot run git: {e}"), "install git"))?;
    let commit = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() || commit.is_empty() {
        return Err(code_err(
            d,
            "code.ref",
            format!("the ref `{}` does not exist in {repo}", d.git_ref),
            &format!("`git -C {repo} branch -a` and `git -C {repo} tag` list the refs there are"),
        ));
    }
    Ok(commit)
}

/// `code` made a clone of the repository at `commit` (its own objects: nothing shared with the
/// source repository, which the devbox must not be able to change).
fn clone(d: &Devbox, commit: &str, code: &Path) -> Result<(), DevboxError> {
    let fail = |what: &str, o: std::io::Result<std::process::Output>| -> Result<(), DevboxError> {
        match o {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(code_err(
                d,
                what,
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
                "the repository must be readable by root and hold the commit in one of its branches or tags",
            )),
            Err(e) => Err(code_err(d, what, format!("cannot run git: {e}"), "install git")),
        }
    };
    fail(
        "cloning the code",
        git().args(["clone", "--quiet", "--no-checkout", "--no-hardlinks", "--"]).arg(&d.repo).arg(code).output(),
    )?;
    fail(
        "checking out the commit",
        git()
            .arg("-C")
            .arg(code)
            .args(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit])
            .output(),
    )
}

/// One setup command in its own cordon session (through `cordon supervise`): the code directory is
/// the workspace, `setup_net` the only egress, its output appended to `log`. Err: (why, output).
fn setup_step(d: &Devbox, exe: &Path, code: &Path, log: &Path, argv: &[String]) -> Result<(), (String, String)> {
    let open = || std::fs::OpenOptions::new().create(true).append(true).open(log);
    let (out, err) = match (open(), open()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Err((format!("cannot open its log {}: {e}", log.display()), String::new()))
        }
    };
    let start = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> =
        std::env::vars_os().filter(|(k, _)| !d.env.contains_key(&*k.to_string_lossy())).collect();
    env.extend(d.env.iter().map(|(k, v)| (k.into(), v.into())));
    let spec = SessionSpec {
        argv: argv.iter().map(Into::into).collect(),
        env,
        cwd: code.to_path_buf(),
        workspace: Some(code.to_path_buf()),
        // The agent profile: the code directory writable, the system read-only, a private /tmp,
        // no home: what setup makes lands in the snapshot, nowhere else.
        policy: format!("builtin:{}", cordon_policy::builtin::DEFAULT),
        project_policy: false,
        allow_net: d.setup_net.clone(),
        publish: vec![],
        allow_read: vec![],
        allow_write: vec![],
        allow_degraded: false,
        review_hold: false,
        env_secret: vec![],
        audit: AuditChoice::Default,
        report: None,
        events: None,
        head_copy: None,
        monitor: false,
        sensor_buffer: "16M".into(),
        kill_after: None,
        interactive: false,
        identity: None,
    };
    let output = || {
        let all = std::fs::read(log).unwrap_or_default();
        String::from_utf8_lossy(&all[(start as usize).min(all.len())..]).into_owned()
    };
    let s = cordon_session::supervise::spawn(exe, &spec, [Stdio::null(), out.into(), err.into()])
        .map_err(|e| (format!("cannot start `{} supervise`: {e}", exe.display()), String::new()))?;
    let (msgs, status) = s.wait().map_err(|e| (format!("waiting for its session: {e}"), output()))?;
    use cordon_session::supervise::Message;
    for m in &msgs {
        if let Message::Failed { error } = m {
            return Err((format!("its session could not start: {error}"), output()));
        }
    }
    let code = msgs.iter().find_map(|m| match m {
        Message::Finished { exit_code, .. } => Some(*exit_code),
        _ => None,
    });
    match code {
        Some(0) => Ok(()),
        Some(c) => Err((format!("exit status {c}"), output())),
        None => Err((format!("its supervisor ended without a result ({status})"), output())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devbox(text: &str) -> Devbox {
        crate::config::parse("devbox.toml", text, Path::new("/srv")).expect("valid")
    }

    #[test]
    fn the_hash_follows_content_not_layout() {
        let a = devbox("code = { repo = \"a\", ref = \"main\" }\nsetup = [[\"make\"]]\n");
        let b = devbox("# a comment\ncode = {repo=\"a\",ref=\"main\"}\n\nsetup = [ [ \"make\" ] ]\n");
        let c = devbox("code = { repo = \"a\", ref = \"main\" }\nsetup = [[\"make\", \"all\"]]\n");
        assert_eq!(content_hash(&a, "c1"), content_hash(&b, "c1"));
        assert_ne!(content_hash(&a, "c1"), content_hash(&c, "c1"));
        assert_ne!(content_hash(&a, "c1"), content_hash(&a, "c2"));
    }
}
