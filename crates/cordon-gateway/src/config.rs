//! `gateway.toml`: the upstream MCP servers, each with its command, policy, workspace, the
//! environment it is given and its tool rules. Every problem is reported with file:line:col, the
//! field and a hint, like a policy's, and all of them are found before anything starts.
//!
//! ```toml
//! pinning = "lock"                   # the default: tools are served as pinned in gateway.lock
//! call_timeout = "60s"               # the default; a server's own call_timeout overrides it
//! max_result_bytes = "8M"            # the default: the largest message taken from a server
//! audit_sync = "group"               # the default: a call is forwarded once its record is written;
//!                                    # "call": once it is fsynced
//! start_timeout = "60s"              # the default: how long a server has to answer initialize
//!
//! [servers.files]
//! command = ["mcp-server-filesystem", "/srv/docs"]
//! policy = "builtin:mcp-tool"        # the default; or a policy file, relative to this file
//! workspace = "/srv/docs"            # the default: this file's directory
//! env = ["LANG"]                     # names passed from the gateway's environment
//! isolation = "server"               # one sandbox for the server process; "call": a fresh server in
//!                                    # a fresh sandbox for each tools/call
//! warm = true                        # isolation = "call": keep one server started ahead (per
//!                                    # tool with [tools.NAME] grants), used by the next call only
//! monitor = false                    # true: its sessions watched by the eBPF sensor (root), each
//!                                    # call's effects linked to it
//! protocol = "2025-11-25"            # the default: the initialize handshake; "2026-07-28": the
//!                                    # stateless revision (server/discover); "auto": ask, then fall back
//! tools.allow = ["read_text_file"]   # only these (absent: every tool)
//! tools.deny = ["write_file"]        # never these
//! ```

use crate::GatewayError;
use cordon_policy::error::Source;
use cordon_policy::Diagnostic;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

type S<T> = Spanned<T>;

/// The separator between a server's name and its tool's in the names the gateway serves.
pub const SEP: &str = "__";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    pinning: Option<S<String>>,
    call_timeout: Option<S<String>>,
    max_result_bytes: Option<S<RawSize>>,
    audit_sync: Option<S<String>>,
    start_timeout: Option<S<String>>,
    require_token: Option<S<bool>>,
    scan_secrets: Option<S<String>>,
    #[serde(default)]
    servers: BTreeMap<S<String>, S<RawServer>>,
    #[serde(default)]
    clients: BTreeMap<S<String>, S<RawClient>>,
}

/// `[clients.CN] scope = [...]`: what a caller with a client certificate of that common name may
/// list and call (`[clients."*"]`: any other certificate's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    scope: S<Vec<S<String>>>,
}

/// A size as a number of bytes or a string with a unit ("8M").
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    command: Option<S<Vec<S<String>>>>,
    policy: Option<S<String>>,
    workspace: Option<S<String>>,
    #[serde(default)]
    env: Vec<S<String>>,
    isolation: Option<S<String>>,
    warm: Option<S<bool>>,
    monitor: Option<S<bool>>,
    protocol: Option<S<String>>,
    call_timeout: Option<S<String>>,
    start_timeout: Option<S<String>>,
    #[serde(default)]
    tools: RawTools,
    rate: Option<S<String>>,
    #[serde(default)]
    rules: BTreeMap<S<String>, S<RawRule>>,
    #[serde(default)]
    secrets: BTreeMap<S<String>, S<RawSecret>>,
    scan_secrets: Option<S<String>>,
}

/// `[servers.S.secrets] NAME = { file = "PATH" }` or `{ env = "VAR" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    file: Option<S<String>>,
    env: Option<S<String>>,
}

/// `[servers.S.rules.TOOL]`: its path arguments and its rate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    paths: Vec<S<String>>,
    #[serde(default)]
    write_paths: Vec<S<String>>,
    rate: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTools {
    allow: Option<Vec<S<String>>>,
    #[serde(default)]
    deny: Vec<S<String>>,
}

/// A checked configuration: every command found, every policy compiled, every workspace a directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file, as named.
    pub file: String,
    pub servers: Vec<Server>,
    /// Whether tools are checked against the lock file.
    pub pinning: Pinning,
    /// The largest message taken from a server (a bigger one is discarded and its call fails).
    pub max_result_bytes: usize,
    /// When a call's record counts as written, for forwarding the call.
    pub audit_sync: AuditSync,
    /// Every HTTP request must carry a token from `cordon gateway token` (then the listener may be
    /// beyond loopback).
    pub require_token: bool,
    /// Without `require_token`, each `rate` as a problem naming its position: served over HTTP, every
    /// caller is `http` and would share one count (so `--listen` refuses such a config).
    pub anonymous_rates: Vec<Diagnostic>,
    /// `[clients.CN]`: the tools a client certificate's caller may reach, by its common name (`*`:
    /// any name not listed). A name not listed, with no `*`: every tool, as before tables existed.
    pub clients: BTreeMap<String, Vec<String>>,
}

/// `protocol`: how the gateway opens its connection to a server. The handshake (2025-11-25) is the
/// default: every server of that revision or the next that keeps it (the official SDKs do)
/// answers it. A server that speaks only the stateless revision (2026-07-28) needs "2026-07-28";
/// "auto" asks with `server/discover` and falls back to the handshake (a server that ignores the
/// question costs up to 10 s at each start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Handshake,
    Stateless,
    Auto,
}

impl Protocol {
    fn parse(s: &str) -> Option<Protocol> {
        match s {
            "2025-11-25" => Some(Protocol::Handshake),
            "2026-07-28" => Some(Protocol::Stateless),
            "auto" => Some(Protocol::Auto),
            _ => None,
        }
    }
}

/// `audit_sync`: a call is forwarded once its `tool_call` record is written to the log (it survives
/// the gateway's crash; fsynced with the next group, off the answer path), or once it is fsynced
/// (it survives a power loss; one fsync on every call's path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSync {
    Group,
    Call,
}

impl AuditSync {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditSync::Group => "group",
            AuditSync::Call => "call",
        }
    }
}

/// `pinning`: tools served only as pinned in the lock file, or explicitly unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    Lock,
    Off,
}

impl Pinning {
    pub fn as_str(self) -> &'static str {
        match self {
            Pinning::Lock => "lock",
            Pinning::Off => "off",
        }
    }
}

/// How long a call may take when neither the server nor the file says.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server has to answer `initialize` once its session started, when the file does not
/// say: a sandboxed Python server took up to 57 s on a loaded 2-core machine (its first imports
/// read thousands of files through the sandbox's mounts); one that does not start at all fails
/// within a second or two (it exits), so a long default costs only the truly hung.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest message taken from a server when the file does not say.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    /// The command; its first word resolved to an absolute path.
    pub argv: Vec<String>,
    /// `builtin:NAME` or an absolute policy file.
    pub policy: String,
    pub workspace: PathBuf,
    /// Names of the gateway's environment variables given to the server.
    pub env: Vec<String>,
    /// Only these tools (None: all of them).
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
    /// How long one call may take before the caller is told the server did not answer.
    pub call_timeout: Duration,
    /// How long it has to answer `initialize` once its session started.
    pub start_timeout: Duration,
    /// One sandbox for the server, or a fresh server in a fresh sandbox per call.
    pub isolation: Isolation,
    /// `isolation = "call"`: a server is started ahead for the next call (a warm spare), so that a
    /// call waits for no server start (default true).
    pub warm: bool,
    /// The policy's `[tools.NAME]` grants, by tool: added to a call's sandbox under
    /// `isolation = "call"` (read and write directories).
    pub tool_grants: BTreeMap<String, ToolGrant>,
    /// Watch its sessions with the eBPF sensor (root): their effects are recorded and linked to
    /// the calls (`cordon audit show CALL`).
    pub monitor: bool,
    /// The MCP revision the gateway speaks to it.
    pub protocol: Protocol,
    /// `[servers.S.rules.TOOL]`: path arguments and rates, by tool.
    pub rules: BTreeMap<String, crate::rules::ToolRule>,
    /// `rate`: the calls per caller of each of its tools that names none of its own.
    pub rate: Option<crate::rules::Rate>,
    /// `[servers.S.secrets]`: read at start, put in its environment only.
    pub secrets: Vec<crate::secrets::Secret>,
    /// `scan_secrets`: its calls' arguments and results scanned for well-known token formats.
    pub scan: crate::secrets::Scan,
}

impl Server {
    /// The rate a call of `tool` is held to, and the field that set it.
    pub fn rate_of(&self, tool: &str) -> Option<(crate::rules::Rate, String)> {
        let n = &self.name;
        match self.rules.get(tool).and_then(|r| r.rate) {
            Some(r) => Some((r, format!("servers.{n}.rules.{tool}.rate"))),
            None => self.rate.map(|r| (r, format!("servers.{n}.rate"))),
        }
    }
}

/// `isolation`: one sandbox (session, cgroup) for the server process, or one per `tools/call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    #[default]
    Server,
    Call,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Server => "server",
            Isolation::Call => "call",
        }
    }
}

/// What a policy's `[tools.NAME]` adds to a call of that tool: its `fs.read`, `fs.write`,
/// `fs.exec` directories and its `net.allow` entries (as written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolGrant {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub exec: Vec<PathBuf>,
    pub net: Vec<String>,
}

/// The policy a server runs under when its entry names none.
pub const DEFAULT_POLICY: &str = "builtin:mcp-tool";

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<Config, GatewayError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| GatewayError::Read { path: file.clone(), err })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = base.canonicalize().map_err(|err| GatewayError::Read { path: file.clone(), err })?;
    parse(&file, &text, &base, std::env::var_os("PATH").as_deref())
}

/// Checks `text` (the file `file`, whose relative paths are taken from `base`). `path_var`: the PATH
/// commands are searched in.
pub fn parse(file: &str, text: &str, base: &Path, path_var: Option<&std::ffi::OsStr>) -> Result<Config, GatewayError> {
    let src = Source::new(file, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let hint = if e.message().contains("duplicate key") {
            Some("each server is one `[servers.NAME]` table; give the second one another name".to_string())
        } else if e.message().contains("unknown field") {
            Some(
                "the file takes pinning, call_timeout, start_timeout, max_result_bytes, audit_sync, require_token, scan_secrets \
                 and [servers.NAME] tables; a server takes command, policy, workspace, env, isolation, warm, monitor, protocol, call_timeout, \
                 start_timeout, rate, scan_secrets, tools (allow, deny), [servers.NAME.secrets] and [servers.NAME.rules.TOOL] tables (paths, write_paths, rate); \
                 a [clients.CN] table takes scope"
                    .to_string(),
            )
        } else {
            None
        };
        GatewayError::Config(vec![src.diag(e.span().unwrap_or(0..0), "", e.message().trim(), hint)])
    })?;
    let mut errs = vec![];
    let mut servers = vec![];
    let require_token = raw.require_token.as_ref().is_some_and(|r| *r.get_ref());
    let mut anonymous_rates = vec![];
    let scan = |v: &Option<S<String>>, field: String, errs: &mut Vec<Diagnostic>| {
        let v = v.as_ref()?;
        let s = crate::secrets::Scan::parse(v.get_ref());
        if s.is_none() {
            errs.push(
                src.diag(
                    v.span(),
                    field,
                    format!("`{}` is not a scan_secrets mode", v.get_ref()),
                    Some(
                        "scan_secrets = \"off\" (the default), \"redact\" (well-known tokens in arguments and \
                     results replaced) or \"block\" (the call refused, the result withheld)"
                            .into(),
                    ),
                ),
            );
        }
        s
    };
    let scan_default = scan(&raw.scan_secrets, "scan_secrets".into(), &mut errs).unwrap_or_default();
    let pinning = match &raw.pinning {
        None => Pinning::Lock,
        Some(p) if p.get_ref() == "lock" => Pinning::Lock,
        Some(p) if p.get_ref() == "off" => Pinning::Off,
        Some(p) => {
            errs.push(src.diag(
                p.span(),
                "pinning",
                format!("`{}` is not a pinning mode", p.get_ref()),
                Some("pinning = \"lock\" (the default: tools as pinned by `cordon gateway pin`) or \"off\"".into()),
            ));
            Pinning::Lock
        }
    };
    let audit_sync =
        match &raw.audit_sync {
            None => AuditSync::Group,
            Some(p) if p.get_ref() == "group" => AuditSync::Group,
            Some(p) if p.get_ref() == "call" => AuditSync::Call,
            Some(p) => {
                errs.push(src.diag(
                p.span(),
                "audit_sync",
                format!("`{}` is not an audit_sync mode", p.get_ref()),
                Some(
                    "audit_sync = \"group\" (the default: a call is forwarded once its record is written, fsynced \
                     in groups) or \"call\" (once its record is fsynced)"
                        .into(),
                ),
            ));
                AuditSync::Group
            }
        };
    let timeout = |t: &Option<S<String>>, field: String, errs: &mut Vec<Diagnostic>| match t {
        None => None,
        Some(t) => match cordon_policy::units::parse_duration(t.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                let name = field.rsplit('.').next().unwrap_or("call_timeout").to_string();
                errs.push(src.diag(t.span(), field, "a zero timeout", Some(format!("e.g. {name} = \"60s\""))));
                None
            }
            Err(e) => {
                errs.push(src.diag(t.span(), field, e, Some("a duration such as \"90s\", \"5m\" or \"1m30s\"".into())));
                None
            }
        },
    };
    let call_timeout = timeout(&raw.call_timeout, "call_timeout".into(), &mut errs).unwrap_or(DEFAULT_CALL_TIMEOUT);
    let start_timeout = timeout(&raw.start_timeout, "start_timeout".into(), &mut errs).unwrap_or(DEFAULT_START_TIMEOUT);
    let max_result_bytes = match &raw.max_result_bytes {
        None => DEFAULT_MAX_RESULT_BYTES,
        Some(m) => {
            let v = match m.get_ref() {
                RawSize::Bytes(n) => Ok(*n),
                RawSize::Text(t) => cordon_policy::units::parse_size(t),
            };
            match v {
                Ok(n) if (1024..=1 << 30).contains(&n) => n as usize,
                Ok(n) => {
                    errs.push(src.diag(
                        m.span(),
                        "max_result_bytes",
                        format!("{n} bytes is out of range"),
                        Some("between 1K and 1G, e.g. max_result_bytes = \"8M\"".into()),
                    ));
                    DEFAULT_MAX_RESULT_BYTES
                }
                Err(e) => {
                    errs.push(src.diag(
                        m.span(),
                        "max_result_bytes",
                        e,
                        Some("a number of bytes or a size such as \"8M\"".into()),
                    ));
                    DEFAULT_MAX_RESULT_BYTES
                }
            }
        }
    };
    if raw.servers.is_empty() {
        errs.push(src.diag(
            0..0,
            "servers",
            "no servers configured",
            Some("add one: [servers.NAME] with command = [\"PROGRAM\", \"ARG\", ...]".into()),
        ));
    }
    for (name, s) in &raw.servers {
        let n = name.get_ref();
        let field = |f: &str| format!("servers.{n}.{f}");
        let before = errs.len();
        if n.is_empty() || n.contains(SEP) || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            errs.push(src.diag(
                name.span(),
                format!("servers.{n}"),
                format!("`{n}` cannot be a server name: the gateway serves its tools as `{n}{SEP}TOOL`"),
                Some(format!("use letters, digits, `-` and single `_` (no `{SEP}`), e.g. `files`")),
            ));
        }
        let s = s.get_ref();
        let argv = match &s.command {
            None => {
                errs.push(src.diag(
                    name.span(),
                    field("command"),
                    "missing: the program that serves MCP on its stdin and stdout",
                    Some("command = [\"PROGRAM\", \"ARG\", ...]".into()),
                ));
                None
            }
            Some(c) if c.get_ref().is_empty() || c.get_ref()[0].get_ref().is_empty() => {
                errs.push(src.diag(
                    c.span(),
                    field("command"),
                    "empty: it needs at least the program",
                    Some("command = [\"PROGRAM\", \"ARG\", ...]".into()),
                ));
                None
            }
            Some(c) => {
                let first = &c.get_ref()[0];
                match resolve_program(first.get_ref(), base, path_var) {
                    Ok(p) => Some(
                        std::iter::once(p.display().to_string())
                            .chain(c.get_ref()[1..].iter().map(|a| a.get_ref().clone()))
                            .collect::<Vec<_>>(),
                    ),
                    Err((msg, hint)) => {
                        errs.push(src.diag(first.span(), format!("{}[0]", field("command")), msg, Some(hint)));
                        None
                    }
                }
            }
        };
        let workspace = match &s.workspace {
            None => Some(base.to_path_buf()),
            Some(w) => {
                let p = base.join(w.get_ref());
                match p.canonicalize() {
                    Ok(c) if c.is_dir() => Some(c),
                    Ok(_) => {
                        errs.push(src.diag(
                            w.span(),
                            field("workspace"),
                            format!("{} is not a directory", p.display()),
                            Some("name the directory the server works on".into()),
                        ));
                        None
                    }
                    Err(e) => {
                        errs.push(src.diag(
                            w.span(),
                            field("workspace"),
                            format!("{}: {e}", p.display()),
                            Some("a relative path is taken from this file's directory".into()),
                        ));
                        None
                    }
                }
            }
        };
        let policy = match &s.policy {
            None => DEFAULT_POLICY.to_string(),
            Some(p) if p.get_ref().starts_with("builtin:") => p.get_ref().clone(),
            Some(p) => base.join(p.get_ref()).display().to_string(),
        };
        let mut tool_grants = BTreeMap::new();
        let mut compiled = None;
        if let Some(ws) = &workspace {
            let cx = cordon_policy::Context::for_workspace(ws.clone());
            match cordon_policy::load_and_compile(&policy, &cx) {
                Ok((_, c)) => {
                    for (t, tp) in &c.tools {
                        let g = ToolGrant {
                            read: tp.extra_read.clone(),
                            write: tp.extra_write.clone(),
                            exec: tp.extra_exec.clone(),
                            net: tp.net_allow.iter().map(|a| a.text.clone()).collect(),
                        };
                        tool_grants.insert(t.clone(), g);
                    }
                    compiled = Some(c);
                }
                Err(e) => {
                    let at = s.policy.as_ref().map_or(name.span(), |p| p.span());
                    let hint = if policy.starts_with("builtin:") {
                        format!("built-in profiles: {}", cordon_policy::builtin::names().join(", "))
                    } else {
                        "`cordon policy check FILE` shows every problem in it".into()
                    };
                    errs.push(src.diag(
                        at,
                        field("policy"),
                        format!("policy {policy} cannot be used:\n{e}"),
                        Some(hint),
                    ));
                }
            }
        }
        let isolation =
            match &s.isolation {
                None => Isolation::Server,
                Some(i) if i.get_ref() == "server" => Isolation::Server,
                Some(i) if i.get_ref() == "call" => Isolation::Call,
                Some(i) => {
                    errs.push(src.diag(
                    i.span(),
                    field("isolation"),
                    format!("`{}` is not an isolation", i.get_ref()),
                    Some(
                        "isolation = \"server\" (the default: one sandbox for the server process) or \"call\" (a \
                         fresh server in a fresh sandbox for each tools/call)"
                            .into(),
                    ),
                ));
                    Isolation::Server
                }
            };
        let warm = match &s.warm {
            Some(w) if *w.get_ref() && isolation != Isolation::Call => {
                errs.push(src.diag(
                    w.span(),
                    field("warm"),
                    "`warm = true` is for isolation = \"call\"",
                    Some("a server under isolation = \"server\" is one process, started with the gateway; drop `warm` or set isolation = \"call\"".into()),
                ));
                false
            }
            Some(w) => *w.get_ref(),
            None => isolation == Isolation::Call,
        };
        let protocol = match &s.protocol {
            None => Protocol::Handshake,
            Some(p) => Protocol::parse(p.get_ref()).unwrap_or_else(|| {
                errs.push(src.diag(
                    p.span(),
                    field("protocol"),
                    format!("`{}` is not an MCP revision the gateway speaks to servers", p.get_ref()),
                    Some("protocol = \"2025-11-25\" (the initialize handshake, the default), \"2026-07-28\" (the stateless revision) or \"auto\"".into()),
                ));
                Protocol::Handshake
            }),
        };
        for v in &s.env {
            let ok = !v.get_ref().is_empty() && !v.get_ref().contains('=') && !v.get_ref().contains('\0');
            if !ok {
                errs.push(src.diag(
                    v.span(),
                    field("env"),
                    format!("`{}` is not a variable name", v.get_ref()),
                    Some("list names only (e.g. \"LANG\"); their values come from the gateway's environment".into()),
                ));
            }
        }
        let names = |l: &[S<String>]| l.iter().map(|t| t.get_ref().clone()).collect::<Vec<_>>();
        let allow = s.tools.allow.as_deref().map(names);
        for t in s.tools.allow.iter().flatten().chain(&s.tools.deny) {
            if t.get_ref().is_empty() {
                errs.push(src.diag(
                    t.span(),
                    field("tools"),
                    "an empty tool name",
                    Some("name a tool the server lists, without the server's prefix".into()),
                ));
            }
        }
        for d in &s.tools.deny {
            if allow.as_ref().is_some_and(|a| a.contains(d.get_ref())) {
                errs.push(src.diag(
                    d.span(),
                    field("tools.deny"),
                    format!("`{}` is in both tools.allow and tools.deny", d.get_ref()),
                    Some("keep it in one list: deny would win".into()),
                ));
            }
        }
        let mut rate =
            |r: &Option<S<String>>, f: String, errs: &mut Vec<Diagnostic>| {
                let r = r.as_ref()?;
                if !require_token {
                    anonymous_rates.push(src.diag(
                    r.span(),
                    f.clone(),
                    "a rate is counted per caller, but without require_token or client certificates every HTTP \
                     caller is `http`: they would all share one count (one caller could spend everyone's calls)",
                    Some(
                        "set require_token = true (each caller's token identity gets its own count), serve with \
                         --client-ca (each certificate's name gets its own), or serve only --stdio (its one client)"
                            .into(),
                    ),
                ));
                }
                crate::rules::Rate::parse(r.get_ref())
                    .map_err(|e| {
                        let hint = "CALLS/UNIT, e.g. rate = \"10/min\" (units: s, min, h, day), counted per caller";
                        errs.push(src.diag(r.span(), f, e, Some(hint.into())))
                    })
                    .ok()
            };
        let server_rate = rate(&s.rate, field("rate"), &mut errs);
        let mut rules = BTreeMap::new();
        for (tool, r) in &s.rules {
            let t = tool.get_ref();
            let f = |x: &str| format!("servers.{n}.rules.{t}.{x}");
            let r = r.get_ref();
            let pointers = |list: &[S<String>], x: &str, errs: &mut Vec<Diagnostic>| {
                let mut out = vec![];
                for p in list {
                    match crate::rules::ArgPath::parse(p.get_ref()) {
                        Ok(a) => out.push(a),
                        Err(e) => errs.push(
                            src.diag(
                                p.span(),
                                f(x),
                                e,
                                Some(
                                    "name an argument: its key (\"path\"), `KEY[]` for each item of an array \
                                 (\"paths[]\"), keys joined by `.` for a nested one (\"edits[].file\")"
                                        .into(),
                                ),
                            ),
                        ),
                    }
                }
                out
            };
            let read = pointers(&r.paths, "paths", &mut errs);
            let write = pointers(&r.write_paths, "write_paths", &mut errs);
            // The grants a call of this tool runs with: the server's policy, and in a per-call
            // sandbox its [tools.NAME] directories too (as the session adds them).
            let policy = match (&compiled, read.is_empty() && write.is_empty()) {
                (Some(c), false) => {
                    let mut c: cordon_policy::CompiledPolicy = c.clone();
                    if isolation == Isolation::Call {
                        if let Some(g) = tool_grants.get(t) {
                            tool_fs_rules(&mut c, t, g);
                        }
                    }
                    Some(std::sync::Arc::new(c))
                }
                _ => None,
            };
            let rate = rate(&r.rate, f("rate"), &mut errs);
            rules.insert(t.clone(), crate::rules::ToolRule { read, write, rate, policy });
        }
        let server_scan = scan(&s.scan_secrets, field("scan_secrets"), &mut errs).unwrap_or(scan_default);
        let mut secrets = vec![];
        for (sname, x) in &s.secrets {
            let sn = sname.get_ref();
            let f = format!("servers.{n}.secrets.{sn}");
            if sn.is_empty() || !sn.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errs.push(src.diag(
                    sname.span(),
                    f.clone(),
                    format!("`{sn}` is not a variable name"),
                    Some("the name the server reads it as, e.g. GITHUB_TOKEN".into()),
                ));
                continue;
            }
            let got = match (&x.get_ref().file, &x.get_ref().env) {
                (Some(file), None) => {
                    let path = base.join(file.get_ref());
                    crate::secrets::read_file(&path)
                        .map(|v| (format!("file {}", path.display()), v))
                        .map_err(|(m, h)| (file.span(), m, h))
                }
                (None, Some(var)) => match std::env::var(var.get_ref()) {
                    Ok(v) if !v.is_empty() => Ok((format!("env {}", var.get_ref()), v)),
                    _ => Err((
                        var.span(),
                        format!("the gateway's environment has no {} (or it is empty)", var.get_ref()),
                        format!("export {} before starting the gateway, or take it from a file", var.get_ref()),
                    )),
                },
                _ => Err((
                    x.span(),
                    "a secret comes from one place: a file or a variable".into(),
                    format!(
                        "{sn} = {{ file = \"PATH\" }} (a file only its owner can read) or {sn} = {{ env = \"VAR\" }}"
                    ),
                )),
            };
            match got {
                Ok((from, value)) => secrets.push(crate::secrets::Secret {
                    name: sn.clone(),
                    from,
                    value: crate::secrets::SecretValue(value),
                }),
                Err((span, m, h)) => errs.push(src.diag(span, f, m, Some(h))),
            }
        }
        let call_timeout = timeout(&s.call_timeout, field("call_timeout"), &mut errs).unwrap_or(call_timeout);
        let start_timeout = timeout(&s.start_timeout, field("start_timeout"), &mut errs).unwrap_or(start_timeout);
        if errs.len() == before {
            if let (Some(argv), Some(workspace)) = (argv, workspace) {
                servers.push(Server {
                    name: n.clone(),
                    argv,
                    policy,
                    workspace,
                    env: names(&s.env),
                    allow,
                    deny: names(&s.tools.deny),
                    call_timeout,
                    start_timeout,
                    isolation,
                    warm,
                    tool_grants,
                    monitor: s.monitor.as_ref().is_some_and(|m| *m.get_ref()),
                    protocol,
                    rules,
                    rate: server_rate,
                    secrets,
                    scan: server_scan,
                });
            }
        }
    }
    let clients = clients(&src, &raw.clients, &servers, &mut errs);
    if errs.is_empty() {
        Ok(Config {
            file: file.to_string(),
            servers,
            pinning,
            max_result_bytes,
            audit_sync,
            require_token,
            anonymous_rates,
            clients,
        })
    } else {
        Err(GatewayError::Config(errs))
    }
}

/// `[clients.CN]` tables: each scope entry a served tool (`SERVER__TOOL` of a server of this file)
/// or a prefix ending in `*`, as a token's `--scope`.
fn clients(
    src: &Source,
    raw: &BTreeMap<S<String>, S<RawClient>>,
    servers: &[Server],
    errs: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (cn, c) in raw {
        let field = format!("clients.{}.scope", cn.get_ref());
        let mut scope = vec![];
        for e in c.get_ref().scope.get_ref() {
            let v = e.get_ref();
            let known = match v.split_once(SEP) {
                Some((srv, _)) => servers.iter().any(|s| s.name == *srv),
                None => v.ends_with('*'),
            };
            if known {
                scope.push(v.clone());
            } else {
                let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
                errs.push(src.diag(
                    e.span(),
                    field.clone(),
                    format!("`{v}` names no tool of this gateway"),
                    Some(format!(
                        "a scope entry is a tool as the gateway serves it, SERVER{SEP}TOOL (servers: {}), or a prefix ending in * (e.g. \"{}{SEP}*\")",
                        names.join(", "),
                        names.first().copied().unwrap_or("SERVER")
                    )),
                ));
            }
        }
        out.insert(cn.get_ref().clone(), scope);
    }
    out
}

/// A policy's `[tools.NAME]` directories, added to its fs rules as a per-call session adds them
/// (read: read and exec; write: read and write).
fn tool_fs_rules(c: &mut cordon_policy::CompiledPolicy, tool: &str, g: &ToolGrant) {
    use cordon_policy::{Access, PathRule};
    let lists = [
        (&g.read, "fs.read", Access { read: true, write: false, exec: true }),
        (&g.exec, "fs.exec", Access { read: true, write: false, exec: true }),
        (&g.write, "fs.write", Access { read: true, write: true, exec: false }),
    ];
    for (dirs, what, access) in lists {
        for d in dirs {
            let path = d.canonicalize().unwrap_or_else(|_| d.clone());
            c.fs.rules.push(PathRule {
                path,
                access,
                entry: d.display().to_string(),
                origin: format!("[tools.{tool}] {what}"),
            });
        }
    }
}

/// `program` as an absolute path: a name with a `/` is taken from `base`, a bare name is searched
/// in `path_var`. It must be an executable regular file.
fn resolve_program(
    program: &str,
    base: &Path,
    path_var: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, (String, String)> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = base.join(program);
        return if runnable(&p) {
            Ok(p)
        } else {
            Err((
                format!("{} is not an executable file", p.display()),
                "a relative path is taken from this file's directory; or give a program name found in PATH".into(),
            ))
        };
    }
    let dirs: Vec<PathBuf> = path_var.map(|v| std::env::split_paths(v).collect()).unwrap_or_default();
    dirs.iter().map(|d| d.join(program)).find(|p| p.is_absolute() && runnable(p)).ok_or_else(|| {
        (format!("program `{program}` not found in PATH"), "install it, or give its absolute path".to_string())
    })
}

/// Renders diagnostics one after another (as the policy errors are).
pub fn render(d: &[Diagnostic]) -> String {
    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        std::env::temp_dir()
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        match parse("gw.toml", text, &dir(), Some("/usr/bin:/bin".as_ref())) {
            Err(GatewayError::Config(d)) => d,
            other => panic!("expected errors, got {other:?}"),
        }
    }

    #[test]
    fn a_good_config_resolves_the_program_and_takes_the_defaults() {
        let c = parse(
            "gw.toml",
            "[servers.files]\ncommand = [\"sh\", \"-c\", \"true\"]\ntools.deny = [\"write\"]\n",
            &dir(),
            Some("/nonexistent:/bin".as_ref()),
        )
        .expect("config");
        let s = &c.servers[0];
        assert_eq!((s.name.as_str(), s.policy.as_str()), ("files", DEFAULT_POLICY));
        assert_eq!(s.argv, ["/bin/sh", "-c", "true"]);
        assert_eq!((s.allow.clone(), s.deny.clone()), (None, vec!["write".to_string()]));
        assert_eq!(s.workspace, dir());
    }

    #[test]
    fn a_missing_command_is_placed_at_its_server() {
        let d = errors("[servers.a]\ncommand = [\"/bin/sh\"]\n\n[servers.b]\nenv = [\"LANG\"]\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].col, d[0].field.as_str()), (4, 10, "servers.b.command"));
        assert!(d[0].hint.as_deref().is_some_and(|h| h.contains("command = [")), "{d:?}");
    }

    #[test]
    fn a_program_not_in_path_is_named_with_its_position() {
        let d = errors("[servers.a]\ncommand = [\"no-such-mcp-server-x\", \"--x\"]\n");
        assert_eq!((d[0].line, d[0].col, d[0].field.as_str()), (2, 12, "servers.a.command[0]"));
        assert!(d[0].message.contains("no-such-mcp-server-x") && d[0].message.contains("PATH"), "{d:?}");
    }

    #[test]
    fn a_clients_scope_names_tools_of_its_servers_or_prefixes_with_positions() {
        let d = errors(
            "[servers.a]\ncommand = [\"/bin/sh\"]\n[clients.alice]\nscope = [\"a__x\", \"b__y\", \"z\", \"a__*\", \"*\"]\n",
        );
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!((d[0].line, d[0].field.as_str()), (4, "clients.alice.scope"), "{d:?}");
        assert!(d[0].message.contains("`b__y`") && d[1].message.contains("`z`"), "{d:?}");
        assert!(d[0].hint.as_deref().is_some_and(|h| h.contains("SERVER__TOOL (servers: a)")), "{d:?}");
        let d = errors("[servers.a]\ncommand = [\"/bin/sh\"]\n[clients.bob]\nscopes = []\n");
        assert!(
            d[0].message.contains("unknown field") && d[0].hint.as_deref().is_some_and(|h| h.contains("[clients.CN]")),
            "{d:?}"
        );
    }

    #[test]
    fn a_servers_protocol_is_one_the_gateway_speaks() {
        let text =
            "[servers.a]\ncommand = [\"/bin/sh\"]\nprotocol = \"2026-07-28\"\n[servers.b]\ncommand = [\"/bin/sh\"]\n";
        let c = parse("gw.toml", text, Path::new("/"), Some(std::ffi::OsStr::new("/bin"))).expect("ok");
        assert_eq!(
            c.servers.iter().map(|s| s.protocol).collect::<Vec<_>>(),
            [Protocol::Stateless, Protocol::Handshake]
        );
        let d = errors("[servers.a]\ncommand = [\"/bin/sh\"]\nprotocol = \"2024-11-05\"\n");
        assert_eq!((d[0].line, d[0].field.as_str()), (3, "servers.a.protocol"), "{d:?}");
        assert!(d[0].hint.as_deref().is_some_and(|h| h.contains("\"auto\"")), "{d:?}");
    }

    #[test]
    fn a_duplicate_server_is_a_positioned_error() {
        let d = errors("[servers.a]\ncommand = [\"/bin/sh\"]\n[servers.a]\ncommand = [\"/bin/sh\"]\n");
        assert_eq!(d[0].line, 3, "{d:?}");
        assert!(d[0].message.contains("duplicate"), "{d:?}");
        assert!(d[0].hint.is_some());
    }

    #[test]
    fn an_unknown_field_is_a_positioned_error() {
        let d = errors("[servers.a]\ncommand = [\"/bin/sh\"]\ncomand = 1\n");
        assert_eq!(d[0].line, 3, "{d:?}");
        assert!(d[0].message.contains("comand"), "{d:?}");
    }

    #[test]
    fn a_bad_policy_is_placed_at_the_policy_field_with_the_policys_own_error() {
        let d = errors("[servers.a]\ncommand = [\"/bin/sh\"]\npolicy = \"builtin:nope\"\n");
        assert_eq!((d[0].line, d[0].col, d[0].field.as_str()), (3, 10, "servers.a.policy"));
        assert!(d[0].hint.as_deref().is_some_and(|h| h.contains("mcp-tool")), "{d:?}");
    }

    #[test]
    fn names_with_the_separator_and_bad_lists_are_refused_all_at_once() {
        let d = errors(
            "[servers.a__b]\ncommand = [\"/bin/sh\"]\n[servers.c]\ncommand = []\nenv = [\"A=B\"]\ntools.allow = [\"x\"]\ntools.deny = [\"x\"]\n",
        );
        let fields: Vec<&str> = d.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["servers.a__b", "servers.c.command", "servers.c.env", "servers.c.tools.deny"], "{d:?}");
    }

    #[test]
    fn pinning_timeouts_and_the_result_cap_are_checked_with_their_positions() {
        let c = parse(
            "gw.toml",
            "pinning = \"off\"\ncall_timeout = \"1s\"\nmax_result_bytes = \"64K\"\n[servers.a]\ncommand = [\"/bin/sh\"]\ncall_timeout = \"5m\"\n[servers.b]\ncommand = [\"/bin/sh\"]\n",
            &dir(),
            None,
        )
        .expect("config");
        assert_eq!((c.pinning, c.max_result_bytes), (Pinning::Off, 64 << 10));
        assert_eq!(c.servers[0].call_timeout, Duration::from_secs(300));
        assert_eq!(c.servers[1].call_timeout, Duration::from_secs(1));
        let c = parse("gw.toml", "[servers.a]\ncommand = [\"/bin/sh\"]\n", &dir(), None).expect("config");
        assert_eq!((c.pinning, c.max_result_bytes), (Pinning::Lock, DEFAULT_MAX_RESULT_BYTES));
        assert_eq!(c.servers[0].call_timeout, DEFAULT_CALL_TIMEOUT);
        let d = errors(
            "pinning = \"maybe\"\ncall_timeout = \"soon\"\nmax_result_bytes = 10\n[servers.a]\ncommand = [\"/bin/sh\"]\ncall_timeout = \"0s\"\n",
        );
        let at: Vec<(usize, &str)> = d.iter().map(|x| (x.line, x.field.as_str())).collect();
        assert_eq!(
            at,
            [(1, "pinning"), (2, "call_timeout"), (3, "max_result_bytes"), (6, "servers.a.call_timeout")],
            "{d:?}"
        );
        assert!(d.iter().all(|x| x.hint.is_some()), "{d:?}");
    }

    #[test]
    fn start_timeout_and_audit_sync_take_defaults_overrides_and_positioned_errors() {
        let c = parse(
            "gw.toml",
            "start_timeout = \"90s\"\naudit_sync = \"call\"\n[servers.a]\ncommand = [\"/bin/sh\"]\nstart_timeout = \"2m\"\n[servers.b]\ncommand = [\"/bin/sh\"]\n",
            &dir(),
            None,
        )
        .expect("config");
        assert_eq!(c.audit_sync, AuditSync::Call);
        assert_eq!(c.servers[0].start_timeout, Duration::from_secs(120));
        assert_eq!(c.servers[1].start_timeout, Duration::from_secs(90));
        let c = parse("gw.toml", "[servers.a]\ncommand = [\"/bin/sh\"]\n", &dir(), None).expect("config");
        assert_eq!((c.audit_sync, c.servers[0].start_timeout), (AuditSync::Group, DEFAULT_START_TIMEOUT));
        let d = errors(
            "audit_sync = \"always\"\nstart_timeout = \"0s\"\n[servers.a]\ncommand = [\"/bin/sh\"]\nstart_timeout = \"later\"\n",
        );
        let at: Vec<(usize, usize, &str)> = d.iter().map(|x| (x.line, x.col, x.field.as_str())).collect();
        assert_eq!(at, [(1, 14, "audit_sync"), (2, 17, "start_timeout"), (5, 17, "servers.a.start_timeout")], "{d:?}");
        assert!(d[1].hint.as_deref().is_some_and(|h| h.contains("start_timeout = ")), "{d:?}");
        assert!(d[0].hint.as_deref().is_some_and(|h| h.contains("\"group\"")), "{d:?}");
    }

    #[test]
    fn warm_is_on_under_isolation_call_and_refused_under_server() {
        let text = "[servers.a]\ncommand = [\"/bin/sh\"]\nisolation = \"call\"\n[servers.b]\ncommand = [\"/bin/sh\"]\nisolation = \"call\"\nwarm = false\n[servers.c]\ncommand = [\"/bin/sh\"]\n";
        let c = parse("gw.toml", text, &dir(), None).expect("config");
        assert_eq!(c.servers.iter().map(|s| s.warm).collect::<Vec<_>>(), [true, false, false]);
        let d = errors("[servers.a]\ncommand = [\"/bin/sh\"]\nwarm = true\n");
        assert_eq!((d[0].line, d[0].field.as_str()), (3, "servers.a.warm"), "{d:?}");
        assert!(d[0].message.contains("is for isolation = \"call\""), "{d:?}");
    }

    #[test]
    fn isolation_call_is_taken_and_a_misspelt_isolation_is_a_positioned_error() {
        let c = parse(
            "gw.toml",
            "[servers.a]\ncommand = [\"/bin/sh\"]\nisolation = \"call\"\n[servers.b]\ncommand = [\"/bin/sh\"]\n",
            &dir(),
            None,
        )
        .expect("config");
        assert_eq!((c.servers[0].isolation, c.servers[1].isolation), (Isolation::Call, Isolation::Server));
        let d = errors("[servers.a]\ncommand = [\"/bin/sh\"]\nisolation = \"calls\"\n");
        assert_eq!((d[0].line, d[0].col, d[0].field.as_str()), (3, 13, "servers.a.isolation"), "{d:?}");
        assert!(d[0].message.contains("`calls` is not an isolation"), "{d:?}");
        assert!(d[0].hint.as_deref().is_some_and(|h| h.contains("\"call\"") && h.contains("\"server\"")), "{d:?}");
    }

    #[test]
    fn rules_take_path_pointers_and_rates_and_a_bad_one_is_a_positioned_error() {
        let c = parse(
            "gw.toml",
            "[servers.a]\ncommand = [\"/bin/sh\"]\nrate = \"30/min\"\n[servers.a.rules.read]\npaths = [\"path\", \"more[]\"]\nrate = \"2/h\"\n[servers.a.rules.other]\nwrite_paths = [\"to\"]\n",
            &dir(),
            None,
        )
        .expect("config");
        let s = &c.servers[0];
        assert_eq!(s.rules["read"].read.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(), ["path", "more[]"]);
        assert!(s.rules["read"].policy.is_some() && s.rules["other"].write.len() == 1);
        let rate = |t: &str| s.rate_of(t).map(|(r, f)| (r.describe(), f));
        assert_eq!(rate("read"), Some(("2/h".into(), "servers.a.rules.read.rate".into())));
        assert_eq!(rate("other"), Some(("30/min".into(), "servers.a.rate".into())));
        let d = errors(
            "[servers.a]\ncommand = [\"/bin/sh\"]\nrate = \"10/week\"\n[servers.a.rules.t]\npaths = [\"ok\", \"a..b\"]\nwrite_paths = [\"x[1]\"]\nrate = \"many\"\n",
        );
        let at: Vec<(usize, usize, &str)> = d.iter().map(|x| (x.line, x.col, x.field.as_str())).collect();
        assert_eq!(
            at,
            [
                (3, 8, "servers.a.rate"),
                (5, 16, "servers.a.rules.t.paths"),
                (6, 16, "servers.a.rules.t.write_paths"),
                (7, 8, "servers.a.rules.t.rate")
            ],
            "{d:?}"
        );
        assert!(d.iter().all(|x| x.hint.is_some()), "{d:?}");
        assert!(d[1].message.contains("`a..b` is not an argument pointer"), "{d:?}");
    }
}
