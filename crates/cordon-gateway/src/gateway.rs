//! The aggregator: the configured servers' tools under `SERVER__TOOL` names, each call routed by
//! the name in its JSON-RPC body, decided by the server's tool rules, forwarded, and recorded.

use crate::config::{Config, Server, SEP};
use crate::decide::{decide, Decision};
use crate::mcp::{Answer, Json, Tools, UpstreamError};
use crate::record::{args_hash, Log, ToolCall};
use crate::upstream::Upstream;
use crate::GatewayError;
use cordon_session::spec::AuditChoice;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one call may take before the caller is told the server did not answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// How the servers' sessions are run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the gateway and its servers' sessions are recorded.
    pub audit: AuditChoice,
    /// Start a server even when the host cannot enforce all of its policy (what is lost is printed).
    pub allow_degraded: bool,
}

pub struct Gateway {
    servers: Vec<(Server, Upstream)>,
    log: Arc<Log>,
    /// Who the calls come from ("stdio" for the one client on stdio).
    identity: String,
}

impl Gateway {
    /// Starts every server in its own session; if one cannot start, the ones started are stopped
    /// and nothing is served.
    pub async fn start(cfg: &Config, exe: &Path, opts: &Options, log: Arc<Log>) -> Result<Gateway, GatewayError> {
        let mut servers = vec![];
        for s in &cfg.servers {
            match Upstream::start(exe, s, opts).await {
                Ok(u) => {
                    for n in &u.notices {
                        eprintln!("cordon gateway: server {}: {n}", s.name);
                    }
                    eprintln!("cordon gateway: server {} runs in session {} (policy {})", s.name, u.session, s.policy);
                    servers.push((s.clone(), u));
                }
                Err(e) => {
                    for (_, u) in &servers {
                        u.shutdown().await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(Gateway { servers, log, identity: "stdio".into() })
    }

    pub async fn shutdown(&self) {
        for (_, u) in &self.servers {
            u.shutdown().await;
        }
    }

    fn names(&self) -> String {
        self.servers.iter().map(|(s, _)| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn record(&self, c: ToolCall) {
        // The store's writes block (fsync); this runtime is multi-threaded.
        if let Err(e) = tokio::task::block_in_place(|| self.log.call(&c)) {
            eprintln!("cordon gateway: cannot record the call to {}{SEP}{} in the audit log: {e}", c.server, c.tool);
        }
    }
}

impl Tools for Gateway {
    async fn list(&self) -> Vec<Json> {
        let mut all = vec![];
        for (s, u) in &self.servers {
            if u.ended().is_some() {
                continue;
            }
            match u.list_tools().await {
                Ok(tools) => {
                    for mut t in tools {
                        let Some(name) = t.get("name").and_then(|n| n.as_str()).map(str::to_string) else { continue };
                        // Denied tools are not offered; calling one by name is refused with the rule.
                        if decide(s, &name).allowed() {
                            t.insert("name".into(), format!("{}{SEP}{name}", s.name).into());
                            all.push(t);
                        }
                    }
                }
                Err(e) => eprintln!("cordon gateway: server {}: tools/list failed: {e}", s.name),
            }
        }
        all
    }

    async fn call(&self, name: String, args: Option<Json>) -> Answer {
        let t0 = Instant::now();
        let mut rec = ToolCall {
            identity: self.identity.clone(),
            server: String::new(),
            tool: name.clone(),
            args_sha256: args_hash(&args),
            decision: "deny".into(),
            rule: String::new(),
            duration_ms: 0,
            result_bytes: 0,
            is_error: true,
            error: None,
            session: None,
        };
        let found = name.split_once(SEP).and_then(|(srv, tool)| {
            self.servers.iter().find(|(s, _)| s.name == srv).map(|(s, u)| (s, u, tool.to_string()))
        });
        let Some((s, u, tool)) = found else {
            rec.rule = "tool names".into();
            let text = format!(
                "cordon gateway: no tool `{name}`: the gateway's tools are named SERVER{SEP}TOOL (servers: {}); tools/list shows them",
                self.names()
            );
            rec.error = Some(text.clone());
            rec.duration_ms = t0.elapsed().as_millis() as u64;
            self.record(rec);
            return Answer::ToolError(text);
        };
        rec.server = s.name.clone();
        rec.tool = tool.clone();
        rec.session = Some(u.session.clone());
        let d = decide(s, &tool);
        rec.rule = d.rule().to_string();
        if let Decision::Deny { rule, fix } = &d {
            let text = format!(
                "cordon gateway refused `{name}`: tool `{tool}` of server `{}` is not allowed by {rule}. To allow it: {fix}.",
                s.name
            );
            rec.session = None;
            rec.error = Some(text.clone());
            rec.duration_ms = t0.elapsed().as_millis() as u64;
            self.record(rec);
            return Answer::ToolError(text);
        }
        rec.decision = "allow".into();
        let answer = match u.ended() {
            Some(how) => Err(format!(
                "server `{}` is not running (its session {} ended: {how}); restart the gateway",
                s.name, u.session
            )),
            None => match tokio::time::timeout(CALL_TIMEOUT, u.call(&tool, args)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => {
                    let how = match e {
                        UpstreamError::Closed => {
                            u.ended_within(Duration::from_secs(2)).await.map_or(String::new(), |h| format!(" ({h})"))
                        }
                        _ => String::new(),
                    };
                    Err(format!("server `{}` failed during `{tool}` (session {}): {e}{how}", s.name, u.session))
                }
                Err(_) => Err(format!(
                    "server `{}` did not answer `{tool}` within {}s (session {})",
                    s.name,
                    CALL_TIMEOUT.as_secs(),
                    u.session
                )),
            },
        };
        rec.duration_ms = t0.elapsed().as_millis() as u64;
        match answer {
            Ok(v) => {
                rec.result_bytes = v.to_string().len() as u64;
                rec.is_error = v.get("isError").and_then(|b| b.as_bool()).unwrap_or(false);
                self.record(rec);
                Answer::Result(v)
            }
            Err(text) => {
                rec.error = Some(text.clone());
                self.record(rec);
                Answer::ToolError(format!("cordon gateway: {text}"))
            }
        }
    }
}

/// `cordon gateway --stdio`: opens the audit log, starts the servers, serves MCP on stdin and
/// stdout until the client closes stdin (or SIGINT/SIGTERM), stops the servers, seals the record.
pub async fn run_stdio(cfg: Config, exe: &Path, opts: Options) -> Result<(), GatewayError> {
    let audit = &opts.audit;
    let started = Instant::now();
    let log = Arc::new(match audit {
        AuditChoice::Off => Log::off(),
        AuditChoice::Path(p) => Log::open(p, &cfg)?,
        AuditChoice::Default => Log::open(&cordon_audit::default_path(), &cfg)?,
    });
    // The servers record their sessions in the same log as the gateway's.
    let server_opts = Options {
        audit: match audit {
            AuditChoice::Default => AuditChoice::Path(cordon_audit::default_path()),
            a => a.clone(),
        },
        ..opts.clone()
    };
    let gw = match Gateway::start(&cfg, exe, &server_opts, log.clone()).await {
        Ok(g) => Arc::new(g),
        Err(e) => {
            let _ = tokio::task::block_in_place(|| log.finish(started));
            return Err(e);
        }
    };
    eprintln!("cordon gateway: serving {} server(s) on stdio; audit session {}", cfg.servers.len(), log.session);
    let served = {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(i), Ok(t)) => (i, t),
            _ => return Err(GatewayError::Serve("cannot handle SIGINT/SIGTERM".into())),
        };
        tokio::select! {
            r = crate::mcp::serve(gw.clone(), tokio::io::stdin(), tokio::io::stdout()) => r,
            _ = int.recv() => Ok(()),
            _ = term.recv() => Ok(()),
        }
    };
    gw.shutdown().await;
    let sealed = tokio::task::block_in_place(|| log.finish(started));
    served.map_err(GatewayError::Serve)?;
    sealed?;
    Ok(())
}
