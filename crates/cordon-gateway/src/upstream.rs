//! One upstream MCP server running inside its own cordon session: started through `cordon
//! supervise` (a long-lived, multi-threaded process cannot run a session itself) with its stdin
//! and stdout piped to the gateway, which speaks MCP to it over them.

use crate::config::{Server, ToolGrant};
use crate::mcp::{Client, OnChange, UpstreamError};
use crate::GatewayError;
use cordon_session::spec::{AuditChoice, SessionSpec};
use cordon_session::supervise::{self, Message};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Upstream {
    pub name: String,
    /// The cordon session it runs in.
    pub session: String,
    pub notices: Vec<String>,
    client: Client,
    /// The supervisor's pid, and how the session ended once it has (set after it was reaped).
    pid: u32,
    ended: Arc<Mutex<Option<String>>>,
    /// How long its session has to end once its stdin is closed before it is stopped.
    grace: Duration,
}

/// The session a server runs in: its command under its policy, in its workspace, with only the
/// environment it was given (PATH and the names in `env`); not interactive; watched by the sensor
/// when the server says `monitor = true`. `grant`: a call's tool's `[tools.NAME]` directories
/// (isolation = "call"), added as `--allow-read` / `--allow-write` are.
pub fn spec(s: &Server, audit: &AuditChoice, allow_degraded: bool, grant: Option<&ToolGrant>) -> SessionSpec {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let env = std::iter::once(("PATH".into(), path))
        .chain(s.env.iter().filter_map(|n| std::env::var_os(n).map(|v| (n.into(), v))))
        .chain(s.secrets.iter().map(|x| (x.name.clone().into(), x.value.0.clone().into())))
        .collect();
    SessionSpec {
        argv: s.argv.iter().map(Into::into).collect(),
        env,
        cwd: s.workspace.clone(),
        workspace: Some(s.workspace.clone()),
        policy: s.policy.clone(),
        project_policy: false,
        // A tool's net.allow (isolation = "call"): as --allow-net (its egress through the proxy).
        allow_net: grant.map(|g| g.net.clone()).unwrap_or_default(),
        publish: vec![],
        // fs.exec as --allow-read grants it (read and exec: a one-off grant has no exec-only kind,
        // and a script's interpreter reads what it runs).
        allow_read: grant.map(|g| g.read.iter().chain(&g.exec).cloned().collect()).unwrap_or_default(),
        allow_write: grant.map(|g| g.write.clone()).unwrap_or_default(),
        env_secret: s.secrets.iter().map(|x| x.name.clone()).collect(),
        allow_degraded,
        review_hold: false,
        audit: audit.clone(),
        report: None,
        events: None,
        head_copy: None,
        monitor: s.monitor,
        sensor_buffer: "16M".into(),
        kill_after: Some(Duration::from_secs(5)),
        interactive: false,
        identity: None,
    }
}

fn describe(msgs: &[Message], status: Option<std::process::ExitStatus>) -> String {
    match msgs.iter().rev().find(|m| !matches!(m, Message::Started { .. })) {
        Some(Message::Finished { exit_code, killed_by, .. }) => match killed_by {
            Some(k) => format!("stopped by {k}, exit code {exit_code}"),
            None => format!("the server exited with code {exit_code}"),
        },
        Some(Message::Failed { error }) => format!("the session failed: {error}"),
        _ => format!(
            "its supervisor ended without a report ({})",
            status.map_or("status unknown".to_string(), |s| s.to_string())
        ),
    }
}

impl Upstream {
    /// Starts `s` in its own session (`exe`: the cordon binary) and connects to it. A message from
    /// it over `max_message` bytes is discarded; `on_change` is told when it says its tools changed.
    pub async fn start(
        exe: &Path,
        s: &Server,
        opts: &crate::gateway::Options,
        max_message: usize,
        on_change: OnChange,
        config_file: &str,
        grant: Option<&ToolGrant>,
    ) -> Result<Upstream, GatewayError> {
        let fail = |why: String| GatewayError::Upstream { server: s.name.clone(), why };
        let (spec, exe_owned) = (spec(s, &opts.audit, opts.allow_degraded, grant), exe.to_path_buf());
        let (mut sup, first) = tokio::task::spawn_blocking(move || {
            let mut sup = supervise::spawn(&exe_owned, &spec, [Stdio::piped(), Stdio::piped(), Stdio::inherit()])?;
            let first = sup.next_message();
            Ok::<_, std::io::Error>((sup, first))
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(format!("cannot start `{} supervise`: {e}", exe.display())))?;
        let (session, notices) = match first {
            Some(Message::Started { session_id, notices }) => (session_id, notices),
            other => {
                let why = match &other {
                    Some(Message::Failed { error }) => format!("its session did not start: {error}"),
                    _ => "its session did not start (the supervisor said nothing)".into(),
                };
                let _ = tokio::task::spawn_blocking(move || sup.wait()).await;
                return Err(fail(why));
            }
        };
        let (stdin, stdout) = match (sup.child.stdin.take(), sup.child.stdout.take()) {
            (Some(i), Some(o)) => (i, o),
            _ => return Err(fail("no pipes to the server".into())),
        };
        let pid = sup.child.id();
        let ended = Arc::new(Mutex::new(None));
        {
            let ended = ended.clone();
            std::thread::spawn(move || {
                let text = match sup.wait() {
                    Ok((msgs, status)) => describe(&msgs, Some(status)),
                    Err(e) => format!("cannot wait for its supervisor: {e}"),
                };
                if let Ok(mut g) = ended.lock() {
                    *g = Some(text);
                }
            });
        }
        let io = tokio::process::ChildStdin::from_std(stdin)
            .and_then(|i| Ok((i, tokio::process::ChildStdout::from_std(stdout)?)));
        let (w, r) = io.map_err(|e| fail(format!("the server's pipes: {e}")))?;
        let up = |client| Upstream {
            name: s.name.clone(),
            session: session.clone(),
            notices: notices.clone(),
            client,
            pid,
            ended: ended.clone(),
            grace: Duration::from_secs(if s.monitor { 30 } else { 10 }),
        };
        let t0 = std::time::Instant::now();
        match tokio::time::timeout(s.start_timeout, Client::connect(r, w, max_message, on_change, s.protocol)).await {
            Ok(Ok(client)) => Ok(up(client)),
            Ok(Err(e)) => {
                stop(pid, &ended).await;
                let how = ended.lock().ok().and_then(|g| g.clone()).unwrap_or_default();
                let hint = match s.protocol {
                    crate::config::Protocol::Handshake => format!(
                        " (a server that speaks only the stateless revision refuses the handshake: protocol = \"2026-07-28\" or \"auto\" for servers.{} in {config_file})",
                        s.name
                    ),
                    _ => String::new(),
                };
                Err(fail(format!("it did not answer MCP's initialize in session {session}: {e}; {how}{hint}")))
            }
            Err(_) => {
                stop(pid, &ended).await;
                Err(fail(format!(
                    "it did not answer MCP's initialize within {:.1}s (waited {:.1}s since its session {session} \
                     started; start_timeout = \"{}s\"); is it an MCP server on stdio? A server that is slow to start \
                     (e.g. Python on a loaded machine): raise start_timeout for servers.{} in {}",
                    s.start_timeout.as_secs_f64(),
                    t0.elapsed().as_secs_f64(),
                    s.start_timeout.as_secs_f64(),
                    s.name,
                    config_file
                )))
            }
        }
    }

    /// How its session ended, once it has.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().ok().and_then(|g| g.clone())
    }

    /// Like [`Upstream::ended`], waiting up to `d` for the report (a server that just closed its
    /// pipes is being reaped).
    pub async fn ended_within(&self, d: Duration) -> Option<String> {
        let t = std::time::Instant::now();
        loop {
            if let Some(e) = self.ended() {
                return Some(e);
            }
            if t.elapsed() >= d {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn list_tools(&self) -> Result<Vec<crate::mcp::Json>, UpstreamError> {
        self.client.list_tools().await
    }

    pub async fn call(&self, tool: &str, args: Option<crate::mcp::Json>) -> Result<serde_json::Value, UpstreamError> {
        self.client.call(tool, args).await
    }

    /// Closes its stdin (an MCP server on stdio exits then) and gives its session `grace` to end
    /// (its supervisor records the end and the sensor's last events, which took over 3 s for a
    /// watched session on a loaded machine), then stops it (a SIGTERM, which the supervisor takes
    /// without cutting its end record short), and waits for its supervisor to be gone.
    pub async fn shutdown(&self) {
        self.client.close().await;
        if self.ended_within(self.grace).await.is_none() {
            stop(self.pid, &self.ended).await;
            let _ = self.ended_within(Duration::from_secs(30)).await;
        }
    }
}

/// SIGTERM to the supervisor (passed on to the server), a second one (the session is killed) if it
/// is still there after 2 s. Only while it has not been reaped, so the pid is still its own.
async fn stop(pid: u32, ended: &Mutex<Option<String>>) {
    use nix::sys::signal::{kill, Signal};
    let alive = || ended.lock().map(|g| g.is_none()).unwrap_or(false);
    for _ in 0..2 {
        if !alive() {
            return;
        }
        let _ = kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM);
        for _ in 0..100 {
            if !alive() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
