//! The aggregator: the configured servers' tools under `SERVER__TOOL` names, each call routed by
//! the name in its JSON-RPC body, decided by the server's tool rules, forwarded, and recorded.

use crate::config::{Config, Isolation, Pinning, Server, SEP};
use crate::decide::{decide, Decision};
use crate::mcp::{Answer, Caller, Json, OnChange, Tools, UpstreamError};
use crate::pin::{self, Check, Lock};
use crate::record::{args_hash, redact, Log, ToolCall, ToolResult};
use crate::secrets::{Found, Scan};
use crate::upstream::Upstream;
use crate::GatewayError;
use cordon_session::spec::AuditChoice;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the servers' sessions are run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the gateway and its servers' sessions are recorded.
    pub audit: AuditChoice,
    /// Start a server even when the host cannot enforce all of its policy (what is lost is printed).
    pub allow_degraded: bool,
}

/// One server and its tools as last listed.
struct Served {
    server: Server,
    /// Its process (`isolation = "server"`); None under `isolation = "call"`: each call starts a
    /// fresh one in a fresh session, and its tools are those listed at start.
    up: Option<Upstream>,
    /// Tool name -> its definition in wire form (None: not listed yet).
    tools: tokio::sync::Mutex<Option<BTreeMap<String, Json>>>,
    /// Set when the server said its tools changed: the next use lists them again.
    stale: Arc<AtomicBool>,
    /// Its calls in flight (isolation = "server"): call number -> whether another call to it was in
    /// flight at some time during it (then the session's events cannot be told apart by call).
    in_flight: Mutex<BTreeMap<u64, bool>>,
}

pub struct Gateway {
    servers: Vec<Served>,
    log: Arc<Log>,
    /// The pinned definitions (None: `pinning = "off"`).
    lock: Option<Lock>,
    /// The config as named, for the hints (`cordon gateway pin --config FILE`).
    config: String,
    /// (server, tool, served sha256) already alerted on: one alert per change, not per listing.
    alerted: Mutex<HashSet<(String, String, String)>>,
    /// What a per-call server is started with.
    exe: std::path::PathBuf,
    opts: Options,
    max_result_bytes: usize,
    /// Per-call servers being stopped after their answer was sent (awaited at the end).
    closing: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Each (server, tool, caller)'s recent calls, for the rates.
    limiter: crate::rules::Limiter,
    /// Servers started ahead for the next per-call call (`warm`, isolation = "call").
    spares: crate::spares::Spares,
    /// `[clients.CN]` scopes of client certificates' callers.
    clients: BTreeMap<String, Vec<String>>,
}

impl Gateway {
    /// Starts every server in its own session; if one cannot start, the ones started are stopped
    /// and nothing is served. A server that says its tools changed is named on `changed`.
    pub async fn start(
        cfg: &Config,
        exe: &Path,
        opts: &Options,
        log: Arc<Log>,
        lock: Option<Lock>,
        changed: tokio::sync::mpsc::Sender<usize>,
    ) -> Result<Gateway, GatewayError> {
        let mut servers: Vec<Served> = vec![];
        for (i, s) in cfg.servers.iter().enumerate() {
            let stale = Arc::new(AtomicBool::new(false));
            let on_change: OnChange = {
                let (stale, changed) = (stale.clone(), changed.clone());
                Arc::new(move || {
                    stale.store(true, Ordering::SeqCst);
                    let _ = changed.try_send(i);
                })
            };
            let started = Upstream::start(exe, s, opts, cfg.max_result_bytes, on_change, &cfg.file, None).await;
            let u = match started {
                Ok(u) => u,
                Err(e) => {
                    for sv in &servers {
                        if let Some(u) = &sv.up {
                            u.shutdown().await;
                        }
                    }
                    return Err(e);
                }
            };
            for n in &u.notices {
                eprintln!("cordon gateway: server {}: {n}", s.name);
            }
            if s.isolation == Isolation::Server {
                eprintln!("cordon gateway: server {} runs in session {} (policy {})", s.name, u.session, s.policy);
                servers.push(Served {
                    server: s.clone(),
                    up: Some(u),
                    tools: Default::default(),
                    stale,
                    in_flight: Default::default(),
                });
                continue;
            }
            // isolation = "call": this first server only lists the tools, then stops; each call
            // gets a fresh one.
            let listed = match tokio::time::timeout(s.call_timeout, u.list_tools()).await {
                Ok(Ok(t)) => Ok(t),
                Ok(Err(e)) => Err(format!("tools/list in session {}: {}", u.session, scrub(s, "", e.to_string()).0)),
                Err(_) => Err(format!("it did not answer tools/list within {}", secs(s.call_timeout))),
            };
            u.shutdown().await;
            let tools = match listed {
                Ok(t) => t,
                Err(why) => {
                    for sv in &servers {
                        if let Some(u) = &sv.up {
                            u.shutdown().await;
                        }
                    }
                    return Err(GatewayError::Upstream { server: s.name.clone(), why });
                }
            };
            let map: BTreeMap<String, Json> = tools
                .into_iter()
                .filter_map(|mut t| {
                    scrub_definition(s, &mut t);
                    Some((t.get("name")?.as_str()?.to_string(), t))
                })
                .collect();
            eprintln!(
                "cordon gateway: server {} (isolation = \"call\"): {} tool(s) listed in session {}; each call runs in a \
                 fresh server in a fresh session (policy {})",
                s.name,
                map.len(),
                u.session,
                s.policy
            );
            servers.push(Served {
                server: s.clone(),
                up: None,
                tools: tokio::sync::Mutex::new(Some(map)),
                stale,
                in_flight: Default::default(),
            });
        }
        let gw = Gateway {
            servers,
            log,
            lock,
            config: cfg.file.clone(),
            alerted: Default::default(),
            exe: exe.to_path_buf(),
            opts: opts.clone(),
            max_result_bytes: cfg.max_result_bytes,
            closing: Default::default(),
            limiter: Default::default(),
            spares: Default::default(),
            clients: cfg.clients.clone(),
        };
        for sv in gw.servers.iter().filter(|sv| sv.up.is_none() && sv.server.warm) {
            gw.spares.fill((sv.server.name.clone(), None), gw.recipe(&sv.server, None));
        }
        Ok(gw)
    }

    /// The scope a caller's client certificate has: its common name's `[clients.CN]`, else
    /// `[clients."*"]`; none without a certificate or such a table (every tool, as before).
    fn cert_scope(&self, who: &Caller) -> Option<&Vec<String>> {
        let cn = who.cert.as_ref()?;
        self.clients.get(cn).or_else(|| self.clients.get("*"))
    }

    /// What a per-call server of `s` (with `tool`'s grants, if it has any) is started with.
    fn recipe(&self, s: &Server, tool: Option<&str>) -> crate::spares::Recipe {
        crate::spares::Recipe {
            exe: self.exe.clone(),
            server: s.clone(),
            opts: self.opts.clone(),
            max_message: self.max_result_bytes,
            config: self.config.clone(),
            grant: tool.and_then(|t| s.tool_grants.get(t)).cloned(),
        }
    }

    pub async fn shutdown(&self) {
        let closing = std::mem::take(&mut *self.closing.lock().unwrap_or_else(|p| p.into_inner()));
        for h in closing {
            let _ = h.await;
        }
        for sv in &self.servers {
            if let Some(u) = &sv.up {
                u.shutdown().await;
            }
        }
        self.spares.drain().await;
    }

    fn names(&self) -> String {
        self.servers.iter().map(|sv| sv.server.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The tools server `i` serves: as last listed, or listed again when `fresh`, when never
    /// listed, or when it said they changed. A changed or new tool is alerted on when first seen.
    async fn listing(&self, i: usize, fresh: bool) -> Result<BTreeMap<String, Json>, UpstreamError> {
        let sv = &self.servers[i];
        let mut cached = sv.tools.lock().await;
        let stale = sv.stale.swap(false, Ordering::SeqCst);
        let up = match (&sv.up, cached.as_ref()) {
            // isolation = "call": the tools listed at start (alerted on then).
            (None, Some(t)) => {
                if fresh {
                    self.alert_changes(&sv.server, t);
                }
                return Ok(t.clone());
            }
            (None, None) => return Err(UpstreamError::Other("its tools were not listed".into())),
            (Some(u), _) => u,
        };
        if let (Some(t), false, false) = (cached.as_ref(), fresh, stale) {
            return Ok(t.clone());
        }
        let tools = match tokio::time::timeout(sv.server.call_timeout, up.list_tools()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(UpstreamError::Other(format!(
                    "it did not answer tools/list within {}s",
                    sv.server.call_timeout.as_secs_f64()
                )))
            }
        };
        let map: BTreeMap<String, Json> = tools
            .into_iter()
            .filter_map(|mut t| {
                scrub_definition(&sv.server, &mut t);
                Some((t.get("name")?.as_str()?.to_string(), t))
            })
            .collect();
        self.alert_changes(&sv.server, &map);
        *cached = Some(map.clone());
        Ok(map)
    }

    /// Records an alert (once each) for every tool served otherwise than pinned.
    fn alert_changes(&self, s: &Server, tools: &BTreeMap<String, Json>) {
        let Some(lock) = &self.lock else { return };
        for (name, t) in tools {
            let (change, pinned, now) = match lock.check(&s.name, t) {
                Check::Pinned(_) => continue,
                Check::Changed { pinned, now } => ("changed", Some(pinned), now),
                Check::New(now) => ("new", None, now),
            };
            let key = (s.name.clone(), name.clone(), now.sha256.clone());
            if !self.alerted.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
                continue;
            }
            let diff = pinned.as_ref().map(|p| pin::diff(&p.definition, &now.definition));
            let reason = match &diff {
                Some(d) => format!(
                    "tool `{name}` of server `{}` changed since it was pinned: blocked until pinned again ({})",
                    s.name,
                    pin::describe(d, 200)
                ),
                None => format!("tool `{name}` of server `{}` is not pinned: not served until pinned", s.name),
            };
            eprintln!("cordon gateway: ALERT: {reason}; `cordon gateway pin --config {}` accepts it", self.config);
            let alert = cordon_schema::Alert {
                rule: "gateway.pin".into(),
                action: cordon_schema::Action::Alert,
                ts_ms: crate::record::now_ms(),
                reason,
                event: serde_json::json!({
                    "server": s.name, "tool": name, "change": change,
                    "pinned_sha256": pinned.as_ref().map(|p| p.sha256.clone()),
                    "served_sha256": now.sha256,
                    "pinned": pinned.as_ref().map(|p| p.definition.clone()),
                    "served": now.definition,
                    "diff": diff,
                }),
            };
            if let Err(e) = self.log.alert(&alert) {
                eprintln!("cordon gateway: cannot record the alert in the audit log: {e}");
            }
        }
    }

    /// Whether `tool` as served may be listed and called under pinning: Ok(the pinned hash, None
    /// when pinning is off), or the refusal's text.
    fn pinned(&self, server: &str, tool: &str, def: Option<&Json>) -> Result<Option<String>, String> {
        let Some(lock) = &self.lock else { return Ok(None) };
        let cfg = &self.config;
        let Some(def) = def else {
            return Err(format!(
                "tool `{tool}` is not among the tools server `{server}` lists now; tools/list shows what is served"
            ));
        };
        match lock.check(server, def) {
            Check::Pinned(h) => Ok(Some(h)),
            Check::Changed { pinned, now } => Err(format!(
                "tool `{tool}` of server `{server}` changed since it was pinned ({}): blocked, as a definition \
                 changed under a reviewed tool may be a rug pull. To accept the change: review it, then run \
                 `cordon gateway pin --config {cfg}`",
                pin::describe(&pin::diff(&pinned.definition, &now.definition), 200)
            )),
            Check::New(_) => Err(format!(
                "tool `{tool}` of server `{server}` is not pinned: a tool is served only once pinned. To serve \
                 it: review it, then run `cordon gateway pin --config {cfg}`"
            )),
        }
    }

    /// Lists every server's tools anew (alerting on changes) and the tools that would be blocked.
    pub async fn check_all(&self) {
        for i in 0..self.servers.len() {
            if let Err(e) = self.listing(i, true).await {
                let e = scrub(&self.servers[i].server, "", e.to_string()).0;
                eprintln!("cordon gateway: server {}: tools/list failed: {e}", self.servers[i].server.name);
            }
        }
    }

    /// Server `i` said its tools changed: list them again (alerting on changes).
    pub async fn refresh(&self, i: usize) {
        if let Err(e) = self.listing(i, false).await {
            let e = scrub(&self.servers[i].server, "", e.to_string()).0;
            eprintln!("cordon gateway: server {}: tools/list failed: {e}", self.servers[i].server.name);
        }
    }

    /// Every server's tools, as the lock file records them.
    pub async fn lock_now(&self) -> Result<Lock, GatewayError> {
        let mut lock = Lock::default();
        for i in 0..self.servers.len() {
            let name = self.servers[i].server.name.clone();
            let tools = self
                .listing(i, true)
                .await
                .map_err(|e| GatewayError::Upstream { server: name.clone(), why: format!("tools/list: {e}") })?;
            lock.servers.insert(name, tools.iter().map(|(n, t)| (n.clone(), pin::pin(t))).collect());
        }
        Ok(lock)
    }
}

impl Tools for Gateway {
    async fn list(&self, who: &Caller) -> Vec<Json> {
        let mut all = vec![];
        for i in 0..self.servers.len() {
            let s = &self.servers[i].server;
            if self.servers[i].up.as_ref().is_some_and(|u| u.ended().is_some()) {
                continue;
            }
            match self.listing(i, true).await {
                Ok(tools) => {
                    for (name, mut t) in tools {
                        // Denied tools are not offered; calling one by name is refused with the rule.
                        // Nor are tools changed since pinned, or not pinned.
                        // Nor tools the caller's token does not name.
                        let served = format!("{}{SEP}{name}", s.name);
                        if decide(s, &name).allowed()
                            && self.pinned(&s.name, &name, Some(&t)).is_ok()
                            && who.may(&served)
                            && self.cert_scope(who).is_none_or(|sc| crate::token::in_scope(sc, &served))
                        {
                            t.insert("name".into(), served.into());
                            all.push(t);
                        }
                    }
                }
                Err(e) => {
                    eprintln!("cordon gateway: server {}: tools/list failed: {}", s.name, scrub(s, "", e.to_string()).0)
                }
            }
        }
        all
    }

    async fn call(&self, who: &Caller, name: String, args: Option<Json>) -> Answer {
        let t0 = Instant::now();
        let mut rec = ToolCall {
            call: 0,
            identity: who.identity.clone(),
            client_cert: who.cert.clone(),
            server: String::new(),
            tool: name.clone(),
            args_sha256: args_hash(&args),
            args: redact(&args),
            decision: "deny".into(),
            rule: String::new(),
            error: None,
            session: None,
            pinning: if self.lock.is_some() { Pinning::Lock } else { Pinning::Off }.as_str().into(),
            pin_sha256: None,
            isolation: self_isolation(&self.servers, &name).into(),
            secrets_in_args: 0,
        };
        let found = name.split_once(SEP).and_then(|(srv, tool)| {
            self.servers.iter().position(|sv| sv.server.name == srv).map(|i| (i, tool.to_string()))
        });
        let Some((i, tool)) = found else {
            rec.rule = "tool names".into();
            let text = format!(
                "cordon gateway: no tool `{name}`: the gateway's tools are named SERVER{SEP}TOOL (servers: {}); tools/list shows them",
                self.names()
            );
            rec.error = Some(text.clone());
            self.log.refused(&rec);
            return Answer::ToolError(text);
        };
        let s = &self.servers[i].server;
        rec.server = s.name.clone();
        rec.tool = tool.clone();
        // A refusal: nothing ran; its record is not waited for.
        let refuse = |mut rec: ToolCall, rule: String, text: String| {
            rec.rule = rule;
            rec.error = Some(text.clone());
            self.log.refused(&rec);
            Answer::ToolError(text)
        };
        if !who.may(&name) {
            let scopes = who.scopes.clone().unwrap_or_default().join(", ");
            let text = format!(
                "cordon gateway refused `{name}`: the caller's token (identity `{}`) does not name it: its scope is \
                 [{scopes}] (rule: token scope). To allow it: a token minted with --scope {name} (`cordon gateway token \
                 --config {} --identity {} --scope {name}`).",
                who.identity, self.config, who.identity
            );
            return refuse(rec, "token scope".into(), text);
        }
        if let Some(scope) = self.cert_scope(who).filter(|sc| !crate::token::in_scope(sc, &name)) {
            let cn = who.cert.as_deref().unwrap_or_default();
            let table = if self.clients.contains_key(cn) { cn } else { "*" };
            let text = format!(
                "cordon gateway refused `{name}`: the caller's client certificate (`{cn}`) may reach only [{}] \
                 (rule: [clients.\"{table}\"] scope in {}). To allow it: add \"{name}\" to that scope.",
                scope.join(", "),
                self.config
            );
            return refuse(rec, "client certificate scope".into(), text);
        }
        let d = decide(s, &tool);
        if let Decision::Deny { rule, fix } = &d {
            let text = format!(
                "cordon gateway refused `{name}`: tool `{tool}` of server `{}` is not allowed by {rule}. To allow it: {fix}.",
                s.name
            );
            return refuse(rec, rule.clone(), text);
        }
        let gone = self.servers[i].up.as_ref().and_then(|u| u.ended());
        if gone.is_none() && self.lock.is_some() {
            let rule = format!("pinning ({})", pin::lock_path(Path::new(&self.config)).display());
            match self.listing(i, false).await {
                Ok(tools) => match self.pinned(&s.name, &tool, tools.get(&tool)) {
                    Ok(h) => rec.pin_sha256 = h,
                    Err(why) => return refuse(rec, rule, format!("cordon gateway blocked `{name}`: {why}.")),
                },
                Err(e) => {
                    let (e, _) = scrub(s, &tool, e.to_string());
                    let text = format!(
                        "cordon gateway: cannot check `{name}` against its pin: server `{}` failed tools/list: {e}",
                        s.name
                    );
                    return refuse(rec, rule, text);
                }
            }
        }
        // Path arguments: judged against the tool's fs grants (the kernel judges them again).
        if let Some(rule) = s.rules.get(&tool) {
            let none = Json::new();
            let a = serde_json::Value::Object(args.clone().unwrap_or(none));
            if let Err(r) = crate::rules::check_paths(rule, &a, &s.workspace) {
                let field = format!(
                    "servers.{}.rules.{tool}.{}",
                    s.name,
                    if r.access == "read" { "paths" } else { "write_paths" }
                );
                let (grant, flag) = if r.access == "read" { ("fs.read", "read") } else { ("fs.write", "write") };
                let text = if !r.judged {
                    format!(
                        "cordon gateway refused `{name}`: argument `{}` = {:?} cannot be judged as a path the tool may \
                         {flag} (rule: {field} names `{}` as one): {}",
                        r.arg, r.value, r.pointer, r.reason
                    )
                } else {
                    format!(
                    "cordon gateway refused `{name}`: argument `{}` = {:?} is outside the tool's fs grants ({} access; \
                     rule: {field} names `{}` as a path the tool may {flag}): {}. To allow it: grant that directory \
                     in server `{}`'s policy ({}), or with [tools.{tool}] {grant} in it under isolation = \"call\"",
                        r.arg, r.value, r.access, r.pointer, r.reason, s.name, s.policy
                    )
                };
                return refuse(rec, field, text);
            }
        }
        // scan_secrets: tokens in the arguments are redacted before forwarding, or the call refused.
        let mut args = args;
        if s.scan != Scan::Off {
            let mut v = serde_json::Value::Object(args.clone().unwrap_or_default());
            let mut found = Found::default();
            crate::secrets::scan(&mut v, true, &[], &mut found);
            rec.secrets_in_args = found.count;
            if found.count > 0 {
                rec.args = redact(&v.as_object().cloned());
                let kinds = found.kinds.iter().copied().collect::<Vec<_>>().join(", ");
                if s.scan == Scan::Block {
                    let text = format!(
                        "cordon gateway refused `{name}`: its arguments carry {} credential(s) in a well-known format \
                         ({kinds}; rule: servers.{}.scan_secrets = \"block\"). To allow it: pass no credentials \
                         through tool arguments (give the server a secret: [servers.{}.secrets])",
                        found.count, s.name, s.name
                    );
                    return refuse(rec, format!("servers.{}.scan_secrets", s.name), text);
                }
                args = v.as_object().cloned();
            }
        }
        // The rate: counted per caller, for calls that pass every other rule.
        if let Some((rate, field)) = s.rate_of(&tool) {
            if let Err(wait) = self.limiter.take(&s.name, &tool, &who.identity, rate, Instant::now()) {
                let text = format!(
                    "cordon gateway refused `{name}`: caller `{}` reached its limit of {} calls to it ({field} = \
                     \"{}\"); retry in {:.0}s. To allow more: raise {field} in {}",
                    who.identity,
                    rate.describe(),
                    rate.describe(),
                    wait.as_secs_f64().ceil(),
                    self.config
                );
                return refuse(rec, field, text);
            }
        }
        rec.rule = d.rule().to_string();
        rec.decision = "allow".into();
        // isolation = "call": a fresh server in a fresh session (its own cgroup) for this call,
        // under the server's policy and the tool's [tools.NAME] grants; stopped after the answer.
        let own: Option<Upstream> = match &self.servers[i].up {
            Some(_) => None,
            None => {
                let granted = s.tool_grants.contains_key(&tool).then(|| tool.clone());
                let key = (s.name.clone(), granted.clone());
                let recipe = self.recipe(s, granted.as_deref());
                // The spare started ahead, else one now. A spare that failed while this call
                // waited for it was this call's server: its error is the answer (starting another
                // would make the call wait up to twice start_timeout), and the next call has a new
                // spare. One that had failed before the call came (at the gateway's start, say):
                // a server is started now.
                let started = match self.spares.take(&key).await {
                    Some((Ok(u), _)) => Ok(u),
                    Some((Err(e), true)) => Err(e),
                    Some((Err(_), false)) | None => recipe.start().await,
                };
                if s.warm {
                    self.spares.fill(key, recipe);
                }
                match started {
                    Ok(x) => Some(x),
                    Err(e) => {
                        // Nothing was forwarded: the call is recorded with the reason, no session.
                        let (e, found) = scrub(s, &tool, e.to_string());
                        let text = format!("cordon gateway: `{name}` did not run: its sandbox did not start: {e}");
                        let n = self.log.started(rec).await.unwrap_or(0);
                        self.log.ended(&ToolResult {
                            call: n,
                            server: s.name.clone(),
                            tool: tool.clone(),
                            duration_ms: t0.elapsed().as_millis() as u64,
                            result_bytes: 0,
                            is_error: true,
                            error: Some(text.clone()),
                            overlapped: false,
                            secrets_in_result: found,
                        });
                        return Answer::ToolError(text);
                    }
                }
            }
        };
        let Some(u) = self.servers[i].up.as_ref().or(own.as_ref()) else {
            return Answer::ToolError(format!("cordon gateway: `{name}`: server `{}` has no process", s.name));
        };
        rec.session = Some(u.session.clone());
        // The call is recorded before it is forwarded; one that cannot be recorded is not forwarded.
        let n = match self.log.started(rec).await {
            Ok(n) => n,
            Err(e) => {
                return Answer::ToolError(format!(
                    "cordon gateway: `{name}` was not forwarded: it could not be recorded in the audit log ({e}). \
                     Calls are forwarded only once recorded; see the gateway's stderr"
                ))
            }
        };
        let mut res = ToolResult {
            call: n,
            server: s.name.clone(),
            tool: tool.clone(),
            duration_ms: 0,
            result_bytes: 0,
            is_error: true,
            error: None,
            overlapped: false,
            secrets_in_result: 0,
        };
        // Calls to one server session at once: each is marked overlapped (its effects cannot be told
        // apart from the other's).
        let shared = own.is_none();
        if shared {
            let mut f = self.servers[i].in_flight.lock().unwrap_or_else(|p| p.into_inner());
            let others = !f.is_empty();
            for v in f.values_mut() {
                *v = true;
            }
            f.insert(n, others);
        }
        let limit = s.call_timeout;
        let answer = match u.ended() {
            Some(how) => Err(format!(
                "server `{}` is not running (its session {} ended: {how}); restart the gateway",
                s.name, u.session
            )),
            None => match tokio::time::timeout(limit, u.call(&tool, args)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(UpstreamError::Oversized { limit })) => Err(format!(
                    "server `{}` answered `{tool}` with more than max_result_bytes ({limit} bytes; session {}): \
                     discarded. To take it: raise max_result_bytes in {}",
                    s.name, u.session, self.config
                )),
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
                    "server `{}` did not answer `{tool}` within {} (session {}); the call was cancelled. A tool that \
                     needs longer: raise call_timeout for servers.{} in {}",
                    s.name,
                    secs(limit),
                    u.session,
                    s.name,
                    self.config
                )),
            },
        };
        res.duration_ms = t0.elapsed().as_millis() as u64;
        if shared {
            let mut f = self.servers[i].in_flight.lock().unwrap_or_else(|p| p.into_inner());
            res.overlapped = f.remove(&n).unwrap_or(false);
        }
        // The server's own secrets never reach the caller or the record, in a result or in an error's
        // text (a JSON-RPC error message, how its session ended); scan_secrets: tokens redacted or
        // withheld, the same in both.
        let answer = match answer {
            Ok(mut v) if s.scan != Scan::Off || !s.secrets.is_empty() => {
                let mut found = Found::default();
                crate::secrets::scan(&mut v, true, &s.secrets, &mut found);
                res.secrets_in_result = found.count;
                match withheld(s, &tool, "answered", &found) {
                    Some(why) => Err(why),
                    None => Ok(v),
                }
            }
            Err(text) => {
                let (text, found) = scrub(s, &tool, text);
                res.secrets_in_result = found;
                Err(text)
            }
            a => a,
        };
        let out = match answer {
            Ok(v) => {
                res.result_bytes = v.to_string().len() as u64;
                res.is_error = v.get("isError").and_then(|b| b.as_bool()).unwrap_or(false);
                self.log.ended(&res);
                Answer::Result(v)
            }
            Err(text) => {
                res.error = Some(text.clone());
                self.log.ended(&res);
                Answer::ToolError(format!("cordon gateway: {text}"))
            }
        };
        // A per-call server is stopped after its answer is sent (not on the answer path).
        if let Some(own) = own {
            let h = tokio::spawn(async move { own.shutdown().await });
            let mut closing = self.closing.lock().unwrap_or_else(|p| p.into_inner());
            closing.retain(|h| !h.is_finished());
            closing.push(h);
        }
        out
    }
}

/// The refusal's text when `scan_secrets = "block"` and `found` has credentials in what server `s`
/// `did` (answered, or failed with) for `tool`.
fn withheld(s: &Server, tool: &str, did: &str, found: &Found) -> Option<String> {
    if found.count == 0 || s.scan != Scan::Block {
        return None;
    }
    let kinds = found.kinds.iter().copied().collect::<Vec<_>>().join(", ");
    Some(format!(
        "server `{}` {did} `{tool}` with {} credential(s) ({kinds}): the {} is withheld (rule: servers.{}.scan_secrets \
         = \"block\"; \"redact\" would pass it with them replaced)",
        s.name,
        found.count,
        if did == "answered" { "result" } else { "error's text" },
        s.name
    ))
}

/// Text that came from server `s` (an error it answered `tool` with, how its session ended): its
/// own secrets replaced, tokens redacted or the text withheld, as in a result. With how many were found.
fn scrub(s: &Server, tool: &str, text: String) -> (String, u32) {
    if s.scan == Scan::Off && s.secrets.is_empty() {
        return (text, 0);
    }
    let mut v = serde_json::Value::String(text);
    let mut found = Found::default();
    crate::secrets::scan(&mut v, true, &s.secrets, &mut found);
    if let Some(why) = withheld(s, tool, "failed", &found) {
        return (why, found.count);
    }
    match v {
        serde_json::Value::String(t) => (t, found.count),
        other => (other.to_string(), found.count),
    }
}

/// A tool definition as server `s` serves it, its own secrets replaced (a description or schema
/// is text from the server too, shown to the caller and recorded in alerts).
fn scrub_definition(s: &Server, t: &mut Json) {
    if s.secrets.is_empty() {
        return;
    }
    let mut v = serde_json::Value::Object(std::mem::take(t));
    crate::secrets::scan(&mut v, false, &s.secrets, &mut Found::default());
    if let serde_json::Value::Object(o) = v {
        *t = o;
    }
}

/// The isolation of the server a gateway tool name (`SERVER__TOOL`) names ("server" when none).
fn self_isolation(servers: &[Served], name: &str) -> &'static str {
    let srv = name.split_once(SEP).map_or("", |(s, _)| s);
    servers.iter().find(|sv| sv.server.name == srv).map_or("server", |sv| sv.server.isolation.as_str())
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Where the servers' sessions are recorded: in the same log as the gateway's.
fn server_options(opts: &Options) -> Options {
    Options {
        audit: match &opts.audit {
            AuditChoice::Default => AuditChoice::Path(cordon_audit::default_path()),
            a => a.clone(),
        },
        ..opts.clone()
    }
}

/// `cordon gateway pin`: starts the servers, lists their tools, writes the lock file next to the
/// config and prints what changed against the previous one.
pub async fn run_pin(cfg: Config, exe: &Path, opts: Options) -> Result<(), GatewayError> {
    let path = pin::lock_path(Path::new(&cfg.file));
    let before = Lock::load(&path)?.unwrap_or_default();
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let gw = Gateway::start(&cfg, exe, &server_options(&opts), Arc::new(Log::off()), None, tx).await?;
    let now = gw.lock_now().await;
    gw.shutdown().await;
    let now = now?;
    for (s, tools) in &now.servers {
        let old = before.servers.get(s);
        for (n, p) in tools {
            match old.and_then(|o| o.get(n)) {
                None => println!("+ {s}{SEP}{n} (new) {}", p.sha256),
                Some(o) if o.sha256 != p.sha256 => {
                    println!("~ {s}{SEP}{n} (changed) {}", pin::describe(&pin::diff(&o.definition, &p.definition), 200))
                }
                Some(_) => println!("= {s}{SEP}{n}"),
            }
        }
        for n in old.into_iter().flat_map(|o| o.keys()).filter(|n| !tools.contains_key(*n)) {
            println!("- {s}{SEP}{n} (no longer served)");
        }
    }
    now.write(&path, &cfg.file)?;
    let count: usize = now.servers.values().map(BTreeMap::len).sum();
    eprintln!("cordon gateway: pinned {count} tool(s) of {} server(s) in {}", now.servers.len(), path.display());
    Ok(())
}

/// Where `cordon gateway` serves: its stdio (one client), an HTTP listener, or both.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub stdio: bool,
    pub listen: Option<std::net::SocketAddr>,
    /// TLS on the HTTP listener (`--tls-cert`, `--tls-key`, `--client-ca`).
    pub tls: Option<crate::tls::TlsFiles>,
}

/// The largest HTTP request body the listener takes (as the stdio line limit).
pub const MAX_HTTP_BODY: usize = crate::mcp::MAX_LINE;

/// Whether `--listen ADDR` may be served: a loopback address, unless every caller is identified
/// (`require_token`: each request carries a token from `cordon gateway token`; `mtls`: each
/// connection presents a certificate of `--client-ca`, checked in the handshake).
pub fn may_listen(addr: std::net::SocketAddr, require_token: bool, mtls: bool) -> Result<(), GatewayError> {
    if addr.ip().is_loopback() || require_token || mtls {
        return Ok(());
    }
    Err(GatewayError::Listen {
        addr: addr.to_string(),
        why: "not a loopback address: anyone who can reach it could call every tool. Serving beyond this \
              machine needs its callers identified: require_token = true in the config (every request carrying \
              a token from `cordon gateway token`), or client certificates (--tls-cert, --tls-key and \
              --client-ca)"
            .into(),
        hint: "listen on 127.0.0.1:PORT or [::1]:PORT (and reach it through an SSH tunnel from elsewhere), or set \
               require_token = true and give each caller a token, or give each caller a certificate \
               (`cordon gateway ca issue`) and serve with --client-ca"
            .into(),
    })
}

/// `--listen ADDR`: bound before anything starts (a port in use is an error with nothing started),
/// where [`may_listen`] allows it.
pub async fn bind(
    addr: std::net::SocketAddr,
    require_token: bool,
    mtls: bool,
) -> Result<tokio::net::TcpListener, GatewayError> {
    may_listen(addr, require_token, mtls)?;
    tokio::net::TcpListener::bind(addr).await.map_err(|e| GatewayError::Listen {
        addr: addr.to_string(),
        why: e.to_string(),
        hint: "choose another port (127.0.0.1:0 picks a free one and prints it)".into(),
    })
}

/// `cordon gateway --stdio` and/or `--listen ADDR`: opens the audit log, starts the servers, serves
/// MCP until the stdio client closes stdin (with --stdio) or SIGINT/SIGTERM, stops the servers,
/// seals the record.
pub async fn run(cfg: Config, exe: &Path, opts: Options, on: Listeners) -> Result<(), GatewayError> {
    // Anonymous HTTP callers are one identity (`http`): a rate would be one count for all of them.
    // With client certificates each caller is its certificate's name, counted apart.
    let mtls = on.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    if on.listen.is_some() && !mtls && !cfg.anonymous_rates.is_empty() {
        return Err(GatewayError::Config(cfg.anonymous_rates.clone()));
    }
    if !mtls && !cfg.clients.is_empty() {
        return Err(GatewayError::Clients { config: cfg.file.clone() });
    }
    // require_token: the key is checked (present, private) before anything starts.
    let tokens = if cfg.require_token {
        let key = crate::token::load_key(&crate::token::key_path(Path::new(&cfg.file)), false)?;
        Some(key.verifying_key())
    } else {
        None
    };
    // TLS: its files are read and checked before anything starts.
    let tls = match &on.tls {
        Some(f) => Some(crate::tls::server_config(f)?),
        None => None,
    };
    let listener = match on.listen {
        Some(a) => Some(bind(a, cfg.require_token, mtls).await?),
        None => None,
    };
    let lock = match cfg.pinning {
        Pinning::Off => None,
        Pinning::Lock => {
            let path = pin::lock_path(Path::new(&cfg.file));
            match Lock::load(&path)? {
                Some(l) => Some(l),
                None => {
                    return Err(GatewayError::NoLock { config: cfg.file.clone(), lock: path.display().to_string() })
                }
            }
        }
    };
    let audit = &opts.audit;
    let started = Instant::now();
    let log = Arc::new(match audit {
        AuditChoice::Off => Log::off(),
        AuditChoice::Path(p) => Log::open(p, &cfg)?,
        AuditChoice::Default => Log::open(&cordon_audit::default_path(), &cfg)?,
    });
    let (changed_tx, mut changed_rx) = tokio::sync::mpsc::channel::<usize>(16);
    let gw = match Gateway::start(&cfg, exe, &server_options(&opts), log.clone(), lock, changed_tx).await {
        Ok(g) => Arc::new(g),
        Err(e) => {
            let _ = tokio::task::block_in_place(|| log.finish(started));
            return Err(e);
        }
    };
    match cfg.pinning {
        Pinning::Off => eprintln!(
            "cordon gateway: pinning is off ({}: pinning = \"off\"): tool definitions are served unchecked",
            cfg.file
        ),
        Pinning::Lock => gw.check_all().await,
    }
    let mut where_ = vec![];
    if on.stdio {
        where_.push("stdio".to_string());
    }
    if let Some(l) = &listener {
        let a = l.local_addr().map_or("?".into(), |a| a.to_string());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mtls = match on.tls.as_ref().and_then(|t| t.client_ca.as_ref()) {
            Some(ca) => format!(" (clients need a certificate signed by {})", ca.display()),
            None => String::new(),
        };
        where_.push(format!("{scheme}://{a}{}{mtls}", crate::mcp::HTTP_PATH));
    }
    eprintln!(
        "cordon gateway: serving {} server(s) on {}; audit session {}",
        cfg.servers.len(),
        where_.join(" and "),
        log.session
    );
    // A server said its tools changed: list them again (alerting on what changed), tell the client.
    // HTTP clients on the stateless revision hear it on their `subscriptions/listen` streams.
    let (to_client, from_servers) = tokio::sync::mpsc::channel::<()>(1);
    let (bump, http_changes) = tokio::sync::watch::channel(0u64);
    let refresher = {
        let gw = gw.clone();
        tokio::spawn(async move {
            while let Some(i) = changed_rx.recv().await {
                gw.refresh(i).await;
                let _ = to_client.try_send(());
                bump.send_modify(|n| *n += 1);
            }
        })
    };
    let served = {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(i), Ok(t)) => (i, t),
            _ => return Err(GatewayError::Serve("cannot handle SIGINT/SIGTERM".into())),
        };
        let stdio = async {
            if on.stdio {
                crate::mcp::serve(gw.clone(), tokio::io::stdin(), tokio::io::stdout(), from_servers).await
            } else {
                std::future::pending().await
            }
        };
        // Ends (and so stops listening) when the select below does.
        let http = async {
            match listener {
                Some(l) => {
                    let http =
                        crate::mcp::Http { max_body: MAX_HTTP_BODY, tokens, tls: tls.clone(), changes: http_changes };
                    crate::mcp::serve_http(gw.clone(), l, http).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = stdio => r,
            r = http => r,
            _ = int.recv() => Ok(()),
            _ = term.recv() => Ok(()),
        }
    };
    refresher.abort();
    gw.shutdown().await;
    let sealed = tokio::task::block_in_place(|| log.finish(started));
    served.map_err(GatewayError::Serve)?;
    sealed?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::may_listen;

    #[test]
    fn beyond_loopback_only_with_callers_identified_by_token_or_certificate() {
        let (lo, any) = ("127.0.0.1:1".parse().expect("addr"), "0.0.0.0:1".parse().expect("addr"));
        assert!(may_listen(lo, false, false).is_ok());
        assert!(may_listen("[::1]:1".parse().expect("addr"), false, false).is_ok());
        let e = may_listen(any, false, false).expect_err("refused").to_string();
        assert!(
            e.contains("not a loopback address") && e.contains("--client-ca") && e.contains("require_token"),
            "{e}"
        );
        assert!(may_listen(any, true, false).is_ok(), "tokens");
        assert!(may_listen(any, false, true).is_ok(), "client certificates");
    }
}
