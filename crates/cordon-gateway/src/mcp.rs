//! The MCP boundary: the only module that uses the `rmcp` SDK (pinned in Cargo.toml), so that an
//! upgrade touches this file alone. The rest of the gateway sees tool definitions and call results
//! as their JSON wire form, a [`Tools`] implementation to serve, and a [`Client`] per upstream.
//!
//! In front of rmcp's server sits a line filter on the gateway's stdin: rmcp ignores a line that
//! is not JSON (as the other SDKs do) and answers a message of the wrong shape with a bare
//! "Invalid request". The caller gets a JSON-RPC error that says what was wrong instead (parse
//! error with its position, a batch, a message that is not a request, an oversized line), and the
//! gateway keeps serving. It also keeps the requests in flight: an id reused while its request is
//! unanswered is refused (two answers with one id would be ambiguous), and at most
//! [`MAX_IN_FLIGHT`] requests wait at once (memory stays bounded whatever the client sends).
//!
//! Between an upstream's stdout and rmcp's client sits the same bounded reader: a message larger
//! than the gateway's `max_result_bytes` is discarded without being held, and the request it
//! answered gets an error instead (its id is read from the message's first bytes).

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage, ContentBlock, ErrorData,
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

pub type Json = serde_json::Map<String, Value>;

/// The largest message accepted from the client, in bytes (one line).
pub const MAX_LINE: usize = 8 << 20;

/// The most requests from the client that may wait for their answers at once.
pub const MAX_IN_FLIGHT: usize = 256;

/// How much of an oversized message is kept to find its id.
const PREFIX: usize = 4096;

/// The error code of an upstream answer the gateway discarded for its size.
const OVERSIZED: i32 = -32001;

/// What a call answers: the upstream's result as it came (its JSON), or a tool error whose text
/// the calling agent reads (a refusal, an upstream that failed).
#[derive(Debug, Clone)]
pub enum Answer {
    Result(Value),
    ToolError(String),
}

/// What the gateway serves.
pub trait Tools: Send + Sync + 'static {
    /// Tool definitions in their wire form (`name`, `description`, `inputSchema`, ...), as `who`
    /// may see them.
    fn list(&self, who: &Caller) -> impl Future<Output = Vec<Json>> + Send;
    /// A call from `who` (the listener it came through, `stdio` or `http`, or a token's identity).
    fn call(&self, who: &Caller, name: String, args: Option<Json>) -> impl Future<Output = Answer> + Send;
}

pub use crate::token::Caller;

/// The tools, and who reaches them through this handler (the listener's name: a request through
/// the HTTP listener with a checked token is its token's caller instead).
struct Handler<T> {
    tools: Arc<T>,
    who: &'static str,
    /// Bumped each time the tools changed: what a `subscriptions/listen` stream tells a client on
    /// the stateless revision, which hears no other notification.
    changes: Option<tokio::sync::watch::Receiver<u64>>,
    /// An HTTP session's notifier was started (`on_initialized`): a client that sends
    /// `notifications/initialized` again starts no second one. One per session ([`Handler::session`]).
    notifying: Arc<std::sync::atomic::AtomicBool>,
}

impl<T> Clone for Handler<T> {
    fn clone(&self) -> Self {
        Handler {
            tools: self.tools.clone(),
            who: self.who,
            changes: self.changes.clone(),
            notifying: self.notifying.clone(),
        }
    }
}

impl<T> Handler<T> {
    fn new(tools: Arc<T>, who: &'static str, changes: tokio::sync::watch::Receiver<u64>) -> Self {
        Handler { tools, who, changes: Some(changes), notifying: Arc::default() }
    }

    /// The handler of a new HTTP session: shared tools and changes, a notifier of its own.
    fn session(&self) -> Self {
        Handler { notifying: Arc::default(), ..self.clone() }
    }
}

impl<T> Handler<T> {
    /// The caller of a request: the token's (put in the HTTP request's extensions by the
    /// listener once checked), else the listener's name.
    fn caller(&self, cx: &RequestContext<RoleServer>) -> Caller {
        cx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .unwrap_or_else(|| Caller::anonymous(self.who))
    }
}

impl<T: Tools> ServerHandler for Handler<T> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("cordon-gateway", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let who = self.caller(&cx);
        let tools: Vec<Tool> = self
            .tools
            .list(&who)
            .await
            .into_iter()
            .filter_map(|t| serde_json::from_value(Value::Object(t)).ok())
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// An HTTP client on the initialize handshake hears tool-list changes as notifications on
    /// its session (rmcp sends them on the client's GET stream). The stdio gateway tells its one
    /// client itself (`serve`); a stateless-revision client listens (`listen`).
    async fn on_initialized(&self, cx: rmcp::service::NotificationContext<RoleServer>) {
        let Some(mut changes) = self.changes.clone().filter(|_| self.who == "http") else { return };
        if self.notifying.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        changes.mark_unchanged();
        let peer = cx.peer;
        tokio::spawn(async move {
            // The session has no cancellation of its own to wait on: its end shows as a closed
            // transport, looked at every few seconds, or as a failed send.
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    r = changes.changed() => {
                        // A client that stopped reading its stream would hold the send (rmcp's
                        // channel is bounded): given up after a while, as for a closed session.
                        let told = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            peer.notify_tool_list_changed(),
                        );
                        if r.is_err() || !matches!(told.await, Ok(Ok(()))) {
                            return;
                        }
                    }
                    _ = tick.tick() => {
                        if peer.is_transport_closed() {
                            return;
                        }
                    }
                }
            }
        });
    }

    /// `subscriptions/listen` (2026-07-28): tool-list changes only.
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        self.changes.as_ref()?;
        let mut f = rmcp::model::SubscriptionFilter::new();
        f.tools_list_changed = requested.tools_list_changed.filter(|t| *t);
        Some(f)
    }

    async fn listen(&self, cx: rmcp::service::SubscriptionContext) -> Result<(), ErrorData> {
        let Some(mut changes) = self.changes.clone() else {
            cx.cancelled().await;
            return Ok(());
        };
        changes.mark_unchanged();
        loop {
            tokio::select! {
                _ = cx.cancelled() => return Ok(()),
                r = changes.changed() => {
                    if r.is_err() || cx.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let who = self.caller(&cx);
        match self.tools.call(&who, request.name.to_string(), request.arguments).await {
            Answer::Result(v) => match serde_json::from_value::<CallToolResult>(v) {
                Ok(r) => Ok(complete(r).into()),
                Err(e) => Ok(tool_error(format!("the upstream's result is not a tool result: {e}")).into()),
            },
            Answer::ToolError(text) => Ok(tool_error(text).into()),
        }
    }
}

/// An upstream's result as the gateway's own: `resultType: "complete"`, which the stateless
/// revision (2026-07-28) requires and a legacy upstream does not send (rmcp takes it off again for a
/// client on the initialize handshake). Without it the official Python SDK's client, which adopts
/// the stateless revision when the gateway's `server/discover` offers it, refused every tool result.
fn complete(mut r: CallToolResult) -> CallToolResult {
    if r.result_type.is_none() {
        r.result_type = Some(rmcp::model::ResultType::COMPLETE);
    }
    r
}

fn tool_error(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// Serves `tools` over MCP on `input` and `output` (the gateway's stdin and stdout) until the
/// client closes its end. Each message on `changed` is told to the client as
/// `notifications/tools/list_changed`.
pub async fn serve<T, R, W>(
    tools: Arc<T>,
    input: R,
    output: W,
    mut changed: tokio::sync::mpsc::Receiver<()>,
) -> Result<(), String>
where
    T: Tools,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // rmcp talks to one end of an in-memory pipe; the filter and the writer hold the other.
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (ours_r, mut ours_w) = tokio::io::split(ours);
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    // One writer: rmcp's messages and the filter's errors, whole lines each.
    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(l) = lines_rx.recv().await {
            if output.write_all(&l).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });
    // The ids of the client's requests not yet answered (their JSON text).
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let from_rmcp = {
        let tx = lines_tx.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(ours_r);
            let mut line = vec![];
            while r.read_until(b'\n', &mut line).await.is_ok_and(|n| n > 0) {
                if let Some(id) = answered(&line) {
                    in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                }
                if tx.send(std::mem::take(&mut line)).await.is_err() {
                    break;
                }
            }
        })
    };
    let (rmcp_r, rmcp_w) = tokio::io::split(theirs);
    let (bump, changes) = tokio::sync::watch::channel(0u64);
    let running = Handler::new(tools, "stdio", changes).serve((rmcp_r, rmcp_w));
    let filter = async move {
        let mut input = BufReader::new(input);
        let mut line = vec![];
        loop {
            match read_bounded(&mut input, &mut line, MAX_LINE).await {
                Ok(Line::Eof) | Err(_) => break,
                Ok(Line::Oversized) => {
                    let e = error_line(
                        top_level_id(&line),
                        -32600,
                        format!("message larger than {MAX_LINE} bytes: discarded (the gateway's limit for one line)"),
                    );
                    if lines_tx.send(e).await.is_err() {
                        break;
                    }
                }
                Ok(Line::Full) => match track(&in_flight, check(&line)) {
                    Check::Skip => {}
                    Check::Pass(_) => {
                        if ours_w.write_all(&line).await.is_err() || ours_w.write_all(b"\n").await.is_err() {
                            break;
                        }
                    }
                    Check::Reply(e) => {
                        if lines_tx.send(e).await.is_err() {
                            break;
                        }
                    }
                },
            }
        }
        // The client is gone: rmcp sees the end of its input and stops.
        let _ = ours_w.shutdown().await;
    };
    let served = async move {
        match running.await {
            Ok(s) => {
                let peer = s.peer().clone();
                // A client on the handshake hears the notification; one on the stateless revision
                // through its `subscriptions/listen` stream (the bump), if it opened one.
                let notify = tokio::spawn(async move {
                    while changed.recv().await.is_some() {
                        bump.send_modify(|n| *n += 1);
                        let _ = peer.notify_tool_list_changed().await;
                    }
                });
                let r = s.waiting().await.map(|_| ()).map_err(|e| e.to_string());
                notify.abort();
                r
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let (_, result) = tokio::join!(filter, served);
    let _ = from_rmcp.await;
    let _ = writer.await;
    result
}

/// The path the HTTP listener serves MCP at.
pub const HTTP_PATH: &str = "/mcp";

/// How the HTTP listener serves: the body limit, the token key (require_token), TLS, and the
/// gateway's tool-list changes (told on `subscriptions/listen` streams).
pub struct Http {
    pub max_body: usize,
    pub tokens: Option<ed25519_dalek::VerifyingKey>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub changes: tokio::sync::watch::Receiver<u64>,
}

/// Serves `tools` over MCP's streamable HTTP transport (rmcp's, on hyper) at [`HTTP_PATH`] on
/// `listener` until dropped (its sessions are then cancelled). A request body over `max_body` bytes is refused (413) while
/// it streams in; the `Host` header must name a loopback host (DNS rebinding); the tool a call
/// names is read from its JSON-RPC body, never from a header.
/// With `tokens` (require_token), a request without a valid `Authorization: Bearer` token signed
/// by that key is refused (401, saying why); the header is taken out of the request before rmcp
/// sees it (nothing of it reaches an upstream), and the token's caller goes with the request.
pub async fn serve_http<T: Tools>(tools: Arc<T>, listener: tokio::net::TcpListener, http: Http) -> Result<(), String> {
    let Http { max_body, tokens, tls, changes } = http;
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
    let mut config = StreamableHttpServerConfig::default();
    config.max_request_body_bytes = max_body;
    // Dropped (the gateway stops): every session is cancelled.
    let _cancel = config.cancellation_token.clone().drop_guard();
    let handler = Handler::new(tools, "http", changes);
    let svc =
        StreamableHttpService::new(move || Ok(handler.session()), Arc::new(LocalSessionManager::default()), config);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                eprintln!("cordon gateway: accept on the HTTP listener: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let svc = svc.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                serve_conn(stream, svc, tokens, None).await;
                return;
            };
            // TLS: the handshake (with --client-ca, the client's certificate checked in it) before
            // any HTTP; a client that fails it (no certificate, another CA's, plain HTTP) is dropped.
            let hs = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await;
            let stream = match hs {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    eprintln!("cordon gateway: TLS handshake with {peer} refused: {e}");
                    return;
                }
                Err(_) => {
                    eprintln!("cordon gateway: TLS handshake with {peer}: no handshake within 10s");
                    return;
                }
            };
            let cert =
                stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| crate::tls::subject_cn(c));
            serve_conn(stream, svc, tokens, cert).await;
        });
    }
}

/// Serves one connection (plain or TLS) of the HTTP listener: the token check, the path, then rmcp.
/// `cert`: the common name of the client certificate it presented.
async fn serve_conn<I, T: Tools>(
    stream: I,
    svc: rmcp::transport::streamable_http_server::StreamableHttpService<
        Handler<T>,
        rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
    >,
    tokens: Option<ed25519_dalek::VerifyingKey>,
    cert: Option<String>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    {
        {
            let io = hyper_util::rt::TokioIo::new(stream);
            let hs = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let mut svc = svc.clone();
                let cert = cert.clone();
                async move {
                    let mut req = req;
                    let refuse = |status: http::StatusCode, body: String, auth: bool| {
                        let mut r = http::Response::new(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        )));
                        *r.status_mut() = status;
                        if auth {
                            r.headers_mut().insert(
                                http::header::WWW_AUTHENTICATE,
                                http::HeaderValue::from_static(
                                    "Bearer realm=\"cordon-gateway\", error=\"invalid_token\"",
                                ),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    };
                    if let Some(key) = &tokens {
                        let header = req.headers_mut().remove(http::header::AUTHORIZATION);
                        let text = header.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
                        let Some(token) = text.strip_prefix("Bearer ").map(str::trim) else {
                            let why = if header.is_some() { "is not `Bearer TOKEN`" } else { "is missing" };
                            return refuse(
                                http::StatusCode::UNAUTHORIZED,
                                format!(
                                    "cordon gateway: the Authorization header {why}: this gateway has require_token = true; \
                                     send `Authorization: Bearer TOKEN` with a token from `cordon gateway token --config FILE \
                                     --identity NAME`\n"
                                ),
                                true,
                            );
                        };
                        match crate::token::verify(key, token, crate::token::now_s()) {
                            Ok(c) => {
                                let cert = cert.clone();
                                req.extensions_mut().insert(Caller { identity: c.sub, scopes: c.scope, cert });
                            }
                            Err(e) => {
                                return refuse(
                                    http::StatusCode::UNAUTHORIZED,
                                    format!("cordon gateway: token refused: {e}\n"),
                                    true,
                                )
                            }
                        }
                    }
                    // Without tokens, a client certificate's common name is the caller's identity:
                    // the CA vouched for it in the handshake (rate limits and records are per CN).
                    if let (None, Some(cn)) = (&tokens, &cert) {
                        let identity = crate::token::cert_identity(cn);
                        req.extensions_mut().insert(Caller { identity, scopes: None, cert: cert.clone() });
                    }
                    if req.uri().path() != HTTP_PATH {
                        let body = format!("cordon gateway: no such path; MCP is served at {HTTP_PATH}\n");
                        let mut r = http::Response::new(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        )));
                        *r.status_mut() = http::StatusCode::NOT_FOUND;
                        return Ok::<_, std::convert::Infallible>(r);
                    }
                    tower_service::Service::call(&mut svc, req).await
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, hs).await;
        }
    }
}

enum Line {
    Full,
    Oversized,
    Eof,
}

/// One line into `buf` (without its newline), never holding more than `max` bytes of it. Of an
/// oversized line, `buf` keeps the first [`PREFIX`] bytes (where its id is).
async fn read_bounded<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut over = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if over {
                Line::Oversized
            } else if buf.is_empty() {
                Line::Eof
            } else {
                Line::Full
            });
        }
        let (part, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !over && buf.len() + part.len() <= max {
            buf.extend_from_slice(part);
        } else {
            over = true;
            let keep = PREFIX.min(max);
            buf.truncate(keep);
            let room = keep - buf.len();
            buf.extend_from_slice(&part[..part.len().min(room)]);
        }
        let n = done.unwrap_or(part.len());
        r.consume(n);
        if done.is_some() {
            return Ok(if over { Line::Oversized } else { Line::Full });
        }
    }
}

enum Check {
    /// On to rmcp: a request (its id and method), or another message (None).
    Pass(Option<(String, String)>),
    Skip,
    Reply(Vec<u8>),
}

/// Keeps the requests in flight: refuses an id in use and a request over [`MAX_IN_FLIGHT`]; a
/// client's `notifications/cancelled` frees its request's id (rmcp does not answer it then).
fn track(in_flight: &Mutex<HashSet<String>>, c: Check) -> Check {
    let Check::Pass(Some((id, method))) = c else { return c };
    let mut set = in_flight.lock().unwrap_or_else(|p| p.into_inner());
    if method == "notifications/cancelled" {
        set.remove(&id);
        return Check::Pass(None);
    }
    let idv: Option<Value> = serde_json::from_str(&id).ok();
    if set.contains(&id) {
        return Check::Reply(error_line(
            idv,
            -32600,
            format!("id {id} is in use: a request with it is still in flight; give each request its own id"),
        ));
    }
    if set.len() >= MAX_IN_FLIGHT {
        return Check::Reply(error_line(
            idv,
            -32600,
            format!("{MAX_IN_FLIGHT} requests are in flight already (the gateway's limit): wait for their answers"),
        ));
    }
    set.insert(id.clone());
    Check::Pass(Some((id, method)))
}

/// The id of an answer (a message with `result` or `error`), as JSON text.
fn answered(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Out {
        id: Option<Value>,
        result: Option<serde::de::IgnoredAny>,
        error: Option<serde::de::IgnoredAny>,
    }
    let o: Out = serde_json::from_slice(line).ok()?;
    (o.result.is_some() || o.error.is_some()).then_some(o.id?.to_string())
}

/// The top-level `id` of a JSON object read from its first bytes, without parsing (or having) the
/// rest: a number or a string, when the members before it are whole.
fn top_level_id(b: &[u8]) -> Option<Value> {
    let ws = |i: usize| i + b[i.min(b.len())..].iter().take_while(|c| c.is_ascii_whitespace()).count();
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = ws(i);
        let mut keys = serde_json::Deserializer::from_slice(&b[i..]).into_iter::<String>();
        let key = keys.next()?.ok()?;
        i = ws(i + keys.byte_offset());
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        if key == "id" {
            let v = serde_json::Deserializer::from_slice(&b[i..]).into_iter::<Value>().next()?.ok()?;
            return (v.is_string() || v.is_i64() || v.is_u64()).then_some(v);
        }
        let mut skip = serde_json::Deserializer::from_slice(&b[i..]).into_iter::<serde::de::IgnoredAny>();
        skip.next()?.ok()?;
        i = ws(i + skip.byte_offset());
        if b.get(i) != Some(&b',') {
            return None;
        }
        i += 1;
    }
}

/// Whether a client's line goes on to rmcp, or what the client is told instead.
fn check(line: &[u8]) -> Check {
    let text = line.strip_suffix(b"\r").unwrap_or(line);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Check::Skip;
    }
    let v: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => {
            return Check::Reply(error_line(
                None,
                -32700,
                format!(
                "parse error: not JSON ({e}); send one JSON-RPC message per line (line {}, column {} of that message)",
                e.line(),
                e.column()
            ),
            ))
        }
    };
    let obj = match &v {
        Value::Array(_) => return Check::Reply(error_line(
            None,
            -32600,
            "a JSON-RPC batch: MCP does not take batches (removed in 2025-06-18); send each message on its own line"
                .into(),
        )),
        Value::Object(o) => o,
        _ => {
            return Check::Reply(error_line(
                None,
                -32600,
                format!("not a JSON-RPC message: expected an object, got {}", kind(&v)),
            ))
        }
    };
    let id = obj.get("id").filter(|i| i.is_string() || i.is_i64() || i.is_u64()).cloned();
    let method = obj.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
    // rmcp takes a known method with params of the wrong shape as a custom request and answers
    // "method not found"; the caller is told what is wrong with its params instead.
    if obj.get("method").and_then(Value::as_str) == Some("tools/call") {
        let params = obj.get("params").cloned().unwrap_or(Value::Null);
        if let Err(e) = serde_json::from_value::<CallToolRequestParams>(params) {
            return Check::Reply(error_line(
                id,
                -32602,
                format!("invalid params for `tools/call`: {e}; expected {{\"name\": TOOL, \"arguments\": {{...}}}}"),
            ));
        }
    }
    match serde_json::from_value::<ClientJsonRpcMessage>(v.clone()) {
        // A request (a method and an id) is tracked until answered; so is the id a cancellation names.
        Ok(_) if method == "notifications/cancelled" => {
            Check::Pass(obj.get("params").and_then(|p| p.get("requestId")).map(|r| (r.to_string(), method)))
        }
        Ok(_) => Check::Pass(id.filter(|_| !method.is_empty()).map(|i| (i.to_string(), method))),
        Err(e) => {
            let what = obj.get("method").and_then(Value::as_str).map_or(String::new(), |m| format!(" `{m}`"));
            Check::Reply(error_line(id, -32600, format!("invalid request{what}: {e}")))
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn error_line(id: Option<Value>, code: i64, message: String) -> Vec<u8> {
    let v = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let mut s = v.to_string().into_bytes();
    s.push(b'\n');
    s
}

/// Why a request to an upstream failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Its end closed (it exited or crashed).
    #[error("the connection closed (the server exited)")]
    Closed,
    /// It answered with a JSON-RPC error.
    #[error("it answered with an error: {0}")]
    Protocol(String),
    /// Its answer was larger than the gateway takes (it was discarded unread).
    #[error("its answer was larger than max_result_bytes ({limit} bytes): discarded")]
    Oversized { limit: usize },
    #[error("{0}")]
    Other(String),
}

fn upstream_error(e: rmcp::ServiceError) -> UpstreamError {
    match e {
        rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_) => UpstreamError::Closed,
        rmcp::ServiceError::McpError(d) if d.code.0 == OVERSIZED => {
            match d.data.as_ref().and_then(|x| x.get("cordon_max_result_bytes")).and_then(Value::as_u64) {
                Some(limit) => UpstreamError::Oversized { limit: limit as usize },
                None => UpstreamError::Protocol(format!("{} ({})", d.message, d.code.0)),
            }
        }
        rmcp::ServiceError::McpError(d) => UpstreamError::Protocol(format!("{} ({})", d.message, d.code.0)),
        other => UpstreamError::Other(other.to_string()),
    }
}

/// Told when an upstream says its tool list changed (`notifications/tools/list_changed`).
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

struct ClientHandler(OnChange);

impl rmcp::ClientHandler for ClientHandler {
    async fn on_tool_list_changed(&self, _cx: rmcp::service::NotificationContext<RoleClient>) {
        (self.0)()
    }
}

/// An MCP client of one upstream server (over its stdin and stdout).
pub struct Client {
    peer: rmcp::Peer<RoleClient>,
    svc: tokio::sync::Mutex<Option<RunningService<RoleClient, ClientHandler>>>,
}

impl Client {
    /// Connects and initializes (the `initialize` handshake, which every server speaks). A message
    /// from the server larger than `max_message` bytes is discarded; the request it answered gets
    /// [`UpstreamError::Oversized`].
    pub async fn connect<R, W>(
        read: R,
        write: W,
        max_message: usize,
        on_change: OnChange,
        protocol: crate::config::Protocol,
    ) -> Result<Client, UpstreamError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let (mut input, mut ours) = (BufReader::new(read), ours);
            let mut line = vec![];
            loop {
                let out = match read_bounded(&mut input, &mut line, max_message).await {
                    Ok(Line::Eof) | Err(_) => break,
                    Ok(Line::Full) => std::mem::take(&mut line),
                    Ok(Line::Oversized) => match top_level_id(&line) {
                        Some(id) => {
                            let v = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {
                                "code": OVERSIZED,
                                "message": format!("answer larger than {max_message} bytes: discarded by cordon gateway"),
                                "data": {"cordon_max_result_bytes": max_message},
                            }});
                            v.to_string().into_bytes()
                        }
                        // Whose answer it was cannot be told: its call ends at its timeout.
                        None => continue,
                    },
                };
                if ours.write_all(&out).await.is_err() || ours.write_all(b"\n").await.is_err() {
                    break;
                }
            }
            // The server's end closed: rmcp sees the end of its input.
            let _ = ours.shutdown().await;
        });
        let (r, _) = tokio::io::split(theirs);
        use crate::config::Protocol;
        use rmcp::model::ProtocolVersion;
        let lifecycle = match protocol {
            Protocol::Handshake => rmcp::ClientLifecycleMode::Initialize,
            Protocol::Stateless => {
                rmcp::ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] }
            }
            Protocol::Auto => rmcp::ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: Some(ProtocolVersion::V_2025_11_25),
            },
        };
        let svc = rmcp::ClientServiceExt::serve_with_lifecycle(ClientHandler(on_change), (r, write), lifecycle)
            .await
            .map_err(|e| UpstreamError::Other(e.to_string()))?;
        Ok(Client { peer: svc.peer().clone(), svc: tokio::sync::Mutex::new(Some(svc)) })
    }

    /// Every tool (all pages), in wire form.
    pub async fn list_tools(&self) -> Result<Vec<Json>, UpstreamError> {
        let tools = self.peer.list_all_tools().await.map_err(upstream_error)?;
        Ok(tools
            .into_iter()
            .filter_map(|t| match serde_json::to_value(t) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            })
            .collect())
    }

    /// One `tools/call`; the result in wire form.
    pub async fn call(&self, name: &str, args: Option<Json>) -> Result<Value, UpstreamError> {
        let mut p = CallToolRequestParams::new(name.to_string());
        p.arguments = args;
        let r = self.peer.call_tool(p).await.map_err(upstream_error)?;
        serde_json::to_value(r).map_err(|e| UpstreamError::Other(e.to_string()))
    }

    /// Closes the connection (the server sees the end of its stdin).
    pub async fn close(&self) {
        if let Some(mut svc) = self.svc.lock().await.take() {
            let _ = svc.close_with_timeout(std::time::Duration::from_secs(2)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(line: &str) -> Value {
        match check(line.as_bytes()) {
            Check::Reply(b) => serde_json::from_slice(&b).expect("json"),
            Check::Pass(_) => panic!("passed: {line}"),
            Check::Skip => panic!("skipped: {line}"),
        }
    }

    #[test]
    fn bad_lines_get_an_error_that_says_what_is_wrong() {
        let e = reply("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
        assert_eq!(e["error"]["code"], -32700);
        assert!(e["id"].is_null());
        let e = reply("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
        assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("batch")), "{e}");
        let e = reply("42");
        assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("a number")), "{e}");
        let e = reply("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":5}}");
        assert_eq!((e["id"].clone(), e["error"]["code"].clone()), (Value::from(7), Value::from(-32602)), "{e}");
        assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("tools/call")), "{e}");
        let deep = "[".repeat(10_000);
        assert_eq!(reply(&deep)["error"]["code"], -32700);
    }

    #[test]
    fn good_lines_and_blank_lines() {
        assert!(matches!(check(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"), Check::Pass(Some(_))));
        assert!(matches!(check(b"  \r"), Check::Skip));
    }

    #[tokio::test]
    async fn an_oversized_line_is_discarded_without_being_held() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nok\n");
        let mut r = BufReader::with_capacity(16, &input[..]);
        let mut buf = vec![];
        assert!(matches!(read_bounded(&mut r, &mut buf, 50).await, Ok(Line::Oversized)));
        assert!(buf.len() <= 50);
        assert!(matches!(read_bounded(&mut r, &mut buf, 50).await, Ok(Line::Full)));
        assert_eq!(buf, b"ok");
        assert!(matches!(read_bounded(&mut r, &mut buf, 50).await, Ok(Line::Eof)));
    }

    #[test]
    fn the_id_is_read_from_a_messages_first_bytes() {
        let id = |s: &str| top_level_id(s.as_bytes());
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"text":"xxxx"#), Some(Value::from(7)));
        assert_eq!(id(r#" { "jsonrpc" : "2.0" , "id" : "a\"b" , "#), Some(Value::from("a\"b")));
        assert_eq!(id(r#"{"result":{"x":[1,2,{"id":3}]},"id":4}"#), Some(Value::from(4)));
        assert_eq!(id(r#"{"result":"xxxxxxxx"#), None, "the id comes after a cut member");
        assert_eq!(id(r#"{"id":{"x":1}}"#), None);
        assert_eq!(id("[1]"), None);
    }

    #[test]
    fn an_id_in_flight_is_refused_until_answered_or_cancelled() {
        let set = Mutex::new(HashSet::new());
        let req = |id: i64| check(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).as_bytes());
        assert!(matches!(track(&set, req(1)), Check::Pass(Some(_))));
        assert!(matches!(track(&set, req(1)), Check::Reply(_)));
        let cancel = check(br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#);
        assert!(matches!(track(&set, cancel), Check::Pass(None)));
        assert!(matches!(track(&set, req(1)), Check::Pass(Some(_))));
        assert_eq!(answered(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).as_deref(), Some("1"));
        assert_eq!(answered(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#), None);
        for i in 2..=MAX_IN_FLIGHT as i64 {
            assert!(matches!(track(&set, req(i)), Check::Pass(Some(_))));
        }
        assert!(matches!(track(&set, req(9999)), Check::Reply(_)), "over the limit");
    }
}
