//! Everything before the command runs, in the order that keeps a refusal harmless: the workspace,
//! the policy (with `--allow-net`), the rules, the host's capabilities, the plans and the
//! degradation verdict, the audit log's place, the log and every output opened, the start record.
//! Any error here means nothing ran.

use crate::outputs::{Output, Protected};
use crate::recording::{self, Recording};
use crate::spec::{AuditChoice, SessionSpec};
use crate::{Result, SessionError};
use cordon_policy::{CompiledPolicy, Context, Egress, Loaded};
use cordon_sandbox::{plan, Invocation, KernelCaps, SessionPlan, State};
use std::path::{Path, PathBuf};

/// A session ready to run: nothing of it has started but its record.
pub struct Prepared {
    pub spec: SessionSpec,
    pub session_id: String,
    pub workspace: PathBuf,
    pub loaded: Loaded,
    pub policy: CompiledPolicy,
    pub rules: cordon_rules::RuleSet,
    pub caps: KernelCaps,
    pub plan: SessionPlan,
    /// What the host cannot enforce and the caller accepted (`allow_degraded`).
    pub lost: Vec<String>,
    pub recording: Option<Recording>,
    /// The session's staging directory (`fs.sanitize` copies, the refusal stream), removed when
    /// the session is over.
    pub staging: Option<crate::staging::Staging>,
    /// The refusals as they happen, for the session to read (`cordon hook`).
    pub stream: Option<crate::stream::Stream>,
    pub report: Option<Output>,
    pub events: Option<Output>,
    pub head_copy: Option<Output>,
    /// The sensor's ring buffer in bytes.
    pub ring_bytes: u64,
    /// What the user should read before the command starts, one line each (without "cordon: ").
    pub notices: Vec<String>,
}

pub fn prepare(spec: SessionSpec) -> Result<Prepared> {
    crate::timing::mark("start");
    let ws = workspace(spec.workspace.as_deref().unwrap_or(&spec.cwd))?;
    crate::guards::refuse_system_workspace(&ws)?;
    if spec.monitored() && !nix::unistd::geteuid().is_root() {
        bail!("--monitor needs root: the eBPF sensor loads BPF programs, which this kernel allows only to root (kernel.unprivileged_bpf_disabled)\n  hint: run without --monitor (the sandbox itself works unprivileged), or with sudo");
    }
    let mut notices = vec![];
    // A project policy is resolved (a regular file inside the workspace, a path that can be a key)
    // before anything of it is read, and loaded from that canonical path.
    let project = spec.project_policy.then(|| crate::project::resolve(&ws, Path::new(&spec.policy))).transpose()?;
    let source = project.as_deref().and_then(Path::to_str).unwrap_or(&spec.policy);
    let (loaded, mut policy) = cordon_policy::load_and_compile(source, &Context::for_workspace(ws.clone()))?;
    if let Some(file) = &project {
        crate::project::require_trusted(file, &loaded)?;
        notices.push(format!("policy: {} (the workspace's own, trusted)", file.display()));
    }
    crate::timing::mark("policy loaded and compiled");
    allow_net(&spec.allow_net, &loaded, &mut policy, &mut notices)?;
    publish(&spec.publish, &mut policy, &mut notices)?;
    crate::grants::apply(&spec, &mut policy, &mut notices)?;
    // Secrets the caller names one by one reach the command whatever env.drop says (as env.set).
    for n in &spec.env_secret {
        if let Some((_, v)) = spec.env.iter().find(|(k, _)| k.as_os_str() == std::ffi::OsStr::new(n)) {
            policy.env.set.retain(|(k, _)| k != n);
            policy.env.set.push((n.clone(), v.to_string_lossy().into_owned()));
        }
    }
    let lifted: Vec<PathBuf> = spec
        .allow_write
        .iter()
        .map(|p| cordon_policy::paths::normalize(&spec.cwd.join(p)))
        .map(|p| p.canonicalize().unwrap_or(p))
        .collect();
    crate::remotes::protect(&mut policy, &lifted, &mut notices);
    let audit_path = match &spec.audit {
        AuditChoice::Off => None,
        AuditChoice::Default => Some(recording::log_path(None)?),
        AuditChoice::Path(p) => Some(recording::log_path(Some(p))?),
    };
    if let Some(db) = &audit_path {
        recording::mask_log(&mut policy, db);
    }
    crate::timing::mark("grants, audit path");
    let rules = rules(&policy)?;
    crate::timing::mark("rules");
    let caps = KernelCaps::detect();
    crate::timing::mark("host capabilities");
    let session_id = cordon_sandbox::new_session_id();
    let mut staging = crate::staging::Staging::new(&session_id);
    crate::sanitize::stage(&mut policy, &mut staging, &mut notices);
    crate::timing::mark("sanitize staged");
    let cwd = Some(spec.cwd.clone()).filter(|c| c.starts_with(&ws)).unwrap_or_else(|| ws.clone());
    let inv = Invocation { session_id: session_id.clone(), argv: spec.argv.clone(), cwd, env: spec.env.clone() };
    let mut plan = plan(&policy, &caps, &inv);
    crate::timing::mark("plan");
    let lost = verdict(&plan, &policy, spec.allow_degraded)?;
    // Made once the run is not refused; the root then holds them, so the plan is made again.
    let (made, created) = crate::caches::make(&policy);
    notices.extend(created);
    if made {
        plan = cordon_sandbox::plan(&policy, &caps, &inv);
    }
    crate::timing::mark("caches");
    let stream = crate::stream::stage(&mut plan, &mut staging);
    if let Some(w) =
        audit_path.as_deref().map(|db| recording::refuse_writable_location(db, &policy, &plan)).transpose()?.flatten()
    {
        notices.push(format!("DEGRADED: {w}"));
    }
    // The log first (every file of it then exists to compare the outputs with), then every output.
    crate::timing::mark("audit location checked");
    let recording = audit_path.as_deref().map(|db| Recording::open(db, &session_id)).transpose()?;
    if let Some(r) = &recording {
        notices.extend(r.imported().iter().map(|l| format!("audit: {l}")));
    }
    crate::timing::mark("audit log opened");
    let mut protected = Protected::default();
    if let Some(db) = &audit_path {
        for f in cordon_audit::files::log_files(db) {
            protected.add(&f, &format!("a file of the audit log {}", db.display()));
        }
    }
    let report = spec.report.as_deref().map(|p| Output::open(p, "--report", &mut protected)).transpose()?;
    let events = spec.events.as_deref().map(|p| Output::open(p, "--events", &mut protected)).transpose()?;
    let head_copy = spec.head_copy.as_deref().map(|p| Output::open(p, "--head-copy", &mut protected)).transpose()?;
    notices.extend(lost.iter().map(|l| format!("DEGRADED (accepted with --allow-degraded): {l}")));
    if policy.net.egress == Egress::Open {
        notices.push("WARNING: net.egress = \"open\": the session can reach any host this machine can".into());
    }
    let ring_bytes = ring_bytes(&spec)?;
    let mut p = Prepared {
        spec,
        session_id,
        workspace: ws,
        loaded,
        policy,
        rules,
        caps,
        plan,
        lost,
        recording,
        staging: Some(staging),
        stream,
        report,
        events,
        head_copy,
        ring_bytes,
        notices,
    };
    if let Some(ev) = &p.spec.events {
        // The file is written while the session runs: inside the workspace, the session could rewrite it.
        let abs = if ev.is_absolute() { ev.clone() } else { p.spec.cwd.join(ev) };
        let dir = abs.parent().and_then(|d| d.canonicalize().ok()).unwrap_or_default();
        if dir.starts_with(&p.workspace) {
            p.notices.push(format!("warning: --events {} is inside the workspace, which the session can write; the audit log is the tamper-evident record", ev.display()));
        }
    }
    crate::timing::mark("outputs");
    start_record(&mut p)?;
    crate::timing::mark("start record");
    Ok(p)
}

/// The workspace as a canonical directory.
fn workspace(raw: &Path) -> Result<PathBuf> {
    let ws = raw
        .canonicalize()
        .map_err(|e| SessionError::Refused(format!("workspace {} does not exist: {e}", raw.display())))?;
    if !ws.is_dir() {
        bail!("workspace {} is not a directory", ws.display());
    }
    Ok(ws)
}

/// `--allow-net` entries join the policy's allowlist and switch its egress to the proxy.
fn allow_net(
    entries: &[String],
    loaded: &Loaded,
    policy: &mut CompiledPolicy,
    notices: &mut Vec<String>,
) -> Result<()> {
    for (i, raw) in entries.iter().enumerate() {
        match cordon_policy::netspec::parse_allow_item(raw) {
            Ok(list) => {
                for e in list {
                    if let Some(w) = cordon_policy::netspec::warning(&e) {
                        notices.push(format!("WARNING: --allow-net #{}: {w}", i + 1));
                    }
                    policy.net.allow.push(e)
                }
            }
            Err(m) => bail!("--allow-net #{} `{raw}`: {m}\n  hint: write HOST[:PORT] or a preset, e.g. --allow-net github.com:443, --allow-net '*.pypi.org:443', --allow-net 127.0.0.1:11434, --allow-net @pypi ({})", i + 1, cordon_policy::presets::names()),
        }
    }
    if !entries.is_empty() && policy.net.egress != Egress::Open {
        policy.net.egress = Egress::Proxy;
        policy.namespaces.net = true;
    }
    if policy.net.egress == Egress::Proxy {
        notices
            .extend(loaded.warnings().iter().filter(|w| w.field.starts_with("net.")).map(|w| format!("WARNING: {w}")));
    }
    Ok(())
}

/// `--publish` entries join the policy's; publishing needs the session's own network namespace.
fn publish(entries: &[String], policy: &mut CompiledPolicy, notices: &mut Vec<String>) -> Result<()> {
    for (i, raw) in entries.iter().enumerate() {
        let p = cordon_policy::netspec::parse_publish(raw).map_err(|m| {
            SessionError::Refused(format!("--publish #{} `{raw}`: {m}\n  hint: write [HOST_IP:]HOST_PORT:SESSION_PORT, e.g. --publish 8080:3000 (the host's 127.0.0.1:8080 reaches the session's port 3000)", i + 1))
        })?;
        if !policy.net.publish.contains(&p) {
            policy.net.publish.push(p);
        }
    }
    if policy.net.publish.is_empty() {
        return Ok(());
    }
    if policy.net.egress == Egress::Open || !policy.namespaces.net {
        bail!("--publish needs the session's own network namespace, and policy `{}` shares the host's (net.egress = \"open\" or namespaces.net = false): a server in the session already listens on the host\n  hint: drop --publish, or use a policy with its own network (the default profile has one)", policy.name);
    }
    let mut seen = std::collections::HashSet::new();
    for p in &policy.net.publish {
        if !seen.insert(p.host) {
            bail!(
                "--publish: the host address {} is published twice\n  hint: give each session port its own HOST_PORT",
                p.host
            );
        }
        if let Some(w) = cordon_policy::netspec::publish_warning(p) {
            notices.push(format!("WARNING: --publish {w}"));
        }
        notices.push(format!("published: {p}"));
    }
    Ok(())
}

/// The detection rules named by the policy's `[monitor]` (the agent profile uses builtin:agent).
fn rules(policy: &CompiledPolicy) -> Result<cordon_rules::RuleSet> {
    let mut set = cordon_rules::RuleSet::default();
    for spec in &policy.monitor_rules {
        let s = cordon_rules::load(spec)?;
        set.sources.extend(s.sources);
        set.rules.extend(s.rules);
    }
    Ok(set)
}

/// What the host cannot enforce: refused unless accepted.
fn verdict(plan: &SessionPlan, policy: &CompiledPolicy, allow_degraded: bool) -> Result<Vec<String>> {
    let lost: Vec<String> = plan
        .degraded()
        .iter()
        .filter_map(|g| match &g.state {
            State::Degraded { feature, instead } => {
                Some(format!("{}: {} — needs {}; instead: {}", g.layer, g.what, feature, instead))
            }
            State::Enforced { .. } => None,
        })
        .collect();
    if !lost.is_empty() && !allow_degraded {
        let mut msg = format!("this host cannot enforce policy `{}` in full, so nothing was run:", policy.name);
        for l in &lost {
            msg.push_str(&format!("\n  - {l}"));
        }
        msg.push_str("\n  hint: `cordon doctor` shows what this host supports; --allow-degraded runs with the guarantees listed above");
        return Err(SessionError::Refused(msg));
    }
    Ok(lost)
}

fn ring_bytes(spec: &SessionSpec) -> Result<u64> {
    let n = cordon_policy::units::parse_size(&spec.sensor_buffer).map_err(|e| {
        SessionError::Refused(format!("--sensor-buffer `{}`: {e}\n  hint: a size such as 64K, 16M", spec.sensor_buffer))
    })?;
    if spec.monitored() && !(4096..=(1 << 30)).contains(&n) {
        bail!("--sensor-buffer {}: between 4K and 1G", spec.sensor_buffer);
    }
    Ok(n)
}

/// The session's start is committed before the command runs: a crash leaves it "unfinished".
fn start_record(p: &mut Prepared) -> Result<()> {
    let Some(rec) = p.recording.as_mut() else { return Ok(()) };
    let text = p.loaded.full_text();
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    };
    let (policy, plan, caps) = (&p.policy, &p.plan, &p.caps);
    let start = cordon_schema::bodies::Start {
        command: plan.process.argv_text(),
        workspace: p.workspace.to_string_lossy().into_owned(),
        uid: caps.uid,
        cordon: env!("CARGO_PKG_VERSION").into(),
        policy: cordon_schema::bodies::PolicyRef {
            name: policy.name.clone(),
            sources: policy.sources.clone(),
            sha256: hash,
            text,
            identity: p.spec.identity.clone(),
        },
        host: cordon_schema::bodies::HostRef {
            kernel: caps.kernel.clone(),
            arch: caps.arch.clone(),
            landlock_abi: caps.landlock_abi,
        },
        guarantees: plan.guarantees.clone(),
        allow_degraded: p.spec.allow_degraded,
    };
    rec.start(serde_json::to_value(&start).unwrap_or_default())
}
