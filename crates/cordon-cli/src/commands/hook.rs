//! `cordon hook claude-code|codex`: the command an agent's hooks run around each tool call. Before
//! the call (PreToolUse) it reads what the call names — the files a shell command or an edit touches,
//! the host a fetch reaches — and, when the session's policy refuses one, denies the call with the
//! policy's reason and the one-run fix, so the agent reads why instead of guessing from an EACCES.
//! After it (PostToolUse) it adds the same reasons, and what the kernel refused during the call (the
//! session's refusal stream, `cordon_session::stream`), as context. Both agents
//! speak the same JSON (docs/hooks.md). It never allows a call: no output leaves the decision to the
//! agent's own permission rules, and the kernel's layers decide in any case.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use cordon_policy::toolcall::{self, Refusal, Touch};
use cordon_policy::{CompiledPolicy, Context};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

const LONG: &str = "Answer an agent's tool-call hook from the session's policy.

Claude Code and Codex run hook commands before and after each tool call, with the call as JSON on \
standard input. Before a call, cordon denies it when it names something the policy refuses (a file \
under ~/.ssh, a write outside the workspace, a host not in net.allow), with the policy's reason and \
the flag that would allow it; after a call, it adds those reasons and, inside a cordon session, what \
the sandbox refused during the call (the session's refusal stream) as context for the model. It \
never allows anything: with nothing to say it prints nothing, and the agent's own permission rules \
decide. This reads the call's text (the paths and URLs it names): the sandbox still decides what \
really happens. Input and output: docs/hooks.md.

The policy: --policy/--profile; else the workspace's trusted .cordon.toml; else, inside a cordon \
session, the session's built-in profile (CORDON_POLICY); else builtin:agent.

Claude Code (.claude/settings.json):
  {\"hooks\": {\"PreToolUse\": [{\"matcher\": \"\", \"hooks\": [{\"type\": \"command\", \"command\": \"cordon hook claude-code\"}]}],
             \"PostToolUse\": [{\"matcher\": \"\", \"hooks\": [{\"type\": \"command\", \"command\": \"cordon hook claude-code\"}]}]}}
Codex (~/.codex/config.toml):
  [[hooks.PreToolUse]]
  [[hooks.PreToolUse.hooks]]
  type = \"command\"
  command = \"cordon hook codex\"";

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Agent {
    ClaudeCode,
    Codex,
}

#[derive(Args)]
#[command(about = "Answer an agent's tool-call hook (Claude Code, Codex) from the policy", long_about = LONG)]
pub struct HookArgs {
    #[arg(value_enum)]
    pub agent: Agent,
    /// Built-in profile to judge by.
    #[arg(long, value_name = "NAME", conflicts_with = "policy")]
    pub profile: Option<String>,
    /// Policy file to judge by.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The session's workspace (default: the call's `cwd`, else the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

/// The most a hook input may be: a tool call's arguments, not a file upload.
const MAX_INPUT: u64 = 4 << 20;

fn input() -> Result<Value> {
    let mut buf = vec![];
    std::io::stdin().lock().take(MAX_INPUT + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_INPUT {
        bail!("the hook input on stdin is larger than {} MiB: not a tool call", MAX_INPUT >> 20);
    }
    let v: Value = serde_json::from_slice(&buf).map_err(|e| {
        anyhow::anyhow!("the hook input on stdin is not JSON ({e})\n  hint: the agent sends one JSON object per call; see docs/hooks.md")
    })?;
    if !v.is_object() {
        bail!("the hook input on stdin is not a JSON object\n  hint: see docs/hooks.md");
    }
    Ok(v)
}

fn policy(a: &HookArgs, ws: &Path) -> Result<CompiledPolicy> {
    if a.profile.is_some() || a.policy.is_some() {
        return Ok(super::load(&super::policy_spec(a.profile.as_deref(), a.policy.as_deref()), ws)?.1);
    }
    if let Some(c) = trusted_project(ws) {
        return Ok(c);
    }
    let spec = match std::env::var("CORDON_POLICY").ok().filter(|n| cordon_policy::builtin::text(n).is_some()) {
        Some(n) => format!("builtin:{n}"),
        None => format!("builtin:{}", cordon_policy::builtin::DEFAULT),
    };
    Ok(super::load(&spec, ws)?.1)
}

/// The workspace's project policy, loaded once, when `cordon run` would take it: a regular file
/// inside the workspace whose text is trusted (an agent's own edit must not speak for it).
fn trusted_project(ws: &Path) -> Option<CompiledPolicy> {
    use cordon_session::project;
    let file = project::resolve(ws, &project::find(ws)?).ok()?;
    let (loaded, c) = super::load(file.to_str()?, ws).ok()?;
    let store = project::store_path().ok()?;
    (project::check(&store, &file, &project::digest(&loaded)).ok()? == project::Trust::Trusted).then_some(c)
}

/// What the call names, by tool.
fn touches(agent: Agent, v: &Value, cx: &Context, cwd: &Path) -> Vec<Touch> {
    let tool = v["tool_name"].as_str().unwrap_or("");
    let input = &v["tool_input"];
    let s = |k: &str| input[k].as_str();
    let file = |k: &str, write: bool| -> Vec<Touch> {
        s(k).map(|f| {
            let p = cordon_policy::paths::normalize(&cwd.join(f));
            let probe = if write { cordon_policy::Probe::Write(p) } else { cordon_policy::Probe::Read(p) };
            Touch { probe, because: format!("{tool}'s `{k}`: {f}") }
        })
        .into_iter()
        .collect()
    };
    match tool {
        "Bash" | "shell" | "local_shell" | "exec_command" => match command_text(&input["command"]) {
            Some(c) => toolcall::shell(&c, cx, cwd),
            None => vec![],
        },
        "apply_patch" if agent == Agent::Codex => {
            let body = input["command"].as_str().or(input["input"].as_str()).or(input["patch"].as_str()).unwrap_or("");
            toolcall::patch(body, cx, cwd)
        }
        "Read" => file("file_path", false),
        "Write" | "Edit" | "MultiEdit" => file("file_path", true),
        "NotebookEdit" => file("notebook_path", true),
        "Glob" | "Grep" | "LS" => file("path", false),
        "WebFetch" => s("url").map(|u| toolcall::shell(u, cx, cwd)).unwrap_or_default(),
        _ => vec![],
    }
}

/// A command as text: a string, or an argv (`["bash", "-lc", "CMD"]` is CMD).
fn command_text(c: &Value) -> Option<String> {
    if let Some(s) = c.as_str() {
        return Some(s.to_string());
    }
    let argv: Vec<&str> = c.as_array()?.iter().filter_map(Value::as_str).collect();
    match argv.as_slice() {
        [sh, flag, cmd] if sh.ends_with("sh") && flag.starts_with('-') && flag.contains('c') => Some(cmd.to_string()),
        _ => Some(argv.join(" ")),
    }
}

fn words(rs: &[Refusal], policy: &str) -> String {
    let mut out = format!("cordon's policy `{policy}` refuses what this call names:");
    for r in rs {
        out.push_str(&format!("\n- {} {}: {}", toolcall::verb(&r.touch.probe), r.touch.because, r.reason));
        match &r.fix {
            Some(f) => out.push_str(&format!(" (to allow it for one run, the user adds `{f}` to `cordon run`)")),
            None => out.push_str(" (no one-run flag allows this)"),
        }
    }
    out
}

pub fn run(a: HookArgs) -> Result<i32> {
    let v = input()?;
    let event = v["hook_event_name"].as_str().unwrap_or("");
    if !matches!(event, "PreToolUse" | "PostToolUse") {
        return Ok(0);
    }
    let cwd = match v["cwd"].as_str() {
        Some(c) if Path::new(c).is_absolute() => PathBuf::from(c),
        _ => std::env::current_dir()?,
    };
    let ws = super::workspace(Some(a.workspace.as_deref().unwrap_or(&cwd)))?;
    let c = policy(&a, &ws)?;
    let cx = Context::for_workspace(ws);
    let mut rs = toolcall::refusals(&c, &touches(a.agent, &v, &cx, &cwd));
    // A one-run grant cordon would refuse (system trees, HOME itself) is no fix.
    for r in &mut rs {
        if let Some(dir) = r.fix.as_deref().and_then(|f| f.strip_prefix("--allow-write ")) {
            if cordon_session::guards::refuse_writable(Path::new(dir), "--allow-write", "").is_err() {
                r.fix = None;
            }
        }
    }
    let out = if event == "PreToolUse" {
        if rs.is_empty() {
            // The call goes ahead: where the session's refusals stand now is where it starts.
            kernel::mark(&v);
            return Ok(0);
        }
        let text = words(&rs, &c.name);
        json!({"hookSpecificOutput": {"hookEventName": event, "permissionDecision": "deny", "permissionDecisionReason": text}})
    } else {
        let during = kernel::since(&v);
        let mut parts = vec![];
        if !rs.is_empty() {
            parts.push(words(&rs, &c.name));
        }
        if !during.is_empty() {
            parts.push(format!("cordon's sandbox refused during this call:\n{}", during.join("\n")));
        }
        if parts.is_empty() {
            return Ok(0);
        }
        json!({"hookSpecificOutput": {"hookEventName": event, "additionalContext": parts.join("\n\n")}})
    };
    println!("{out}");
    Ok(0)
}

/// The kernel's refusals during one call, from the session's refusal stream
/// (`cordon_session::stream`, named by `CORDON_REFUSALS`): PreToolUse notes how long the stream is
/// (in a file named by the call's `tool_use_id` in the session's private /tmp), PostToolUse reads
/// what was appended since. Calls that run at the same time share their refusals; outside a
/// session, or without PreToolUse's note, there is nothing to read.
mod kernel {
    use serde_json::Value;
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    use std::path::PathBuf;

    fn stream() -> Option<PathBuf> {
        std::env::var_os(cordon_session::stream::ENV).map(PathBuf::from)
    }

    /// This user's notes, one per call in flight.
    fn note(v: &Value) -> Option<PathBuf> {
        let dir = std::env::temp_dir().join(format!("cordon-hook-{}", nix::unistd::geteuid()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Not a link, and ours: another user's directory could feed us a note.
                let md = dir.symlink_metadata().ok()?;
                if !md.is_dir() || md.uid() != nix::unistd::geteuid().as_raw() {
                    return None;
                }
            }
            Err(_) => return None,
        }
        let id: String = v["tool_use_id"]
            .as_str()
            .unwrap_or("last")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(128)
            .collect();
        Some(dir.join(if id.is_empty() { "last".into() } else { id }))
    }

    pub fn mark(v: &Value) {
        let Some(len) = stream().and_then(|s| std::fs::metadata(s).ok()).map(|m| m.len()) else { return };
        let Some(path) = note(v) else { return };
        let _ = std::fs::remove_file(&path);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        if let Ok(mut f) = f {
            let _ = std::io::Write::write_all(&mut f, len.to_string().as_bytes());
        }
    }

    /// One line per refusal, the same refusal counted once: `- WHAT by COMM[PID] (LAYER, ×N): REASON`.
    pub fn since(v: &Value) -> Vec<String> {
        let (Some(stream), Some(path)) = (stream(), note(v)) else { return vec![] };
        let Ok(at) = std::fs::read_to_string(&path) else { return vec![] };
        let _ = std::fs::remove_file(&path);
        let Ok(at) = at.trim().parse::<u64>() else { return vec![] };
        let Ok(mut f) = std::fs::File::open(stream) else { return vec![] };
        let mut buf = String::new();
        if f.seek(SeekFrom::Start(at)).is_err()
            || f.take(cordon_session::stream::MAX_BYTES).read_to_string(&mut buf).is_err()
        {
            return vec![];
        }
        let mut seen: Vec<(String, String, String, String, u64)> = vec![];
        let mut full = false;
        for line in buf.lines() {
            let Ok(d) = serde_json::from_str::<Value>(line) else { continue };
            if d["full"].as_bool() == Some(true) {
                full = true;
                continue;
            }
            let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
            let who = format!("{}[{}]", s("comm"), d["pid"].as_u64().unwrap_or(0));
            let (layer, what, reason) = (s("layer"), s("what"), s("reason"));
            match seen.iter_mut().find(|x| x.0 == layer && x.1 == what && x.3 == reason) {
                Some(x) => x.4 += 1,
                None => seen.push((layer, what, who, reason, 1)),
            }
        }
        let mut out: Vec<String> = seen
            .into_iter()
            .map(|(layer, what, who, reason, n)| {
                let times = if n > 1 { format!(", ×{n}") } else { String::new() };
                format!("- {what} by {who} ({layer}{times}): {reason}")
            })
            .collect();
        if full {
            out.push("- (more refusals than the stream holds: see the session's summary)".into());
        }
        out
    }
}
