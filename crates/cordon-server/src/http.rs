//! The HTTP side: routes, the authentication layer, bounded bodies, JSON errors. Handlers call the
//! store on the blocking pool (SQLite is synchronous).

use crate::auth::{digest, token_of, Caller, Carrier, Role, COOKIE};
use crate::ingest::{self, Verdict};
use crate::metrics::{Metrics, Outcome, Reason};
use crate::store::{Page, SessionFilter, Store, StoreError};
use crate::{html, policy_routes};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::json;
use std::sync::Arc;

/// The largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 8 << 20;
const LIST_LIMIT: usize = 1000;

#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Signs the policies the server serves (`policy_routes.rs`).
    pub key: Arc<ed25519_dalek::SigningKey>,
    /// `--otlp-endpoint`: stored records are offered to it (otlp/).
    pub otlp: Option<Arc<crate::otlp::Exporter>>,
}

pub fn router(app: App) -> Router {
    let authed = Router::new()
        .route("/", get(index))
        .route("/sessions/{id}", get(session))
        .route("/refusals", get(refusals))
        .route("/alerts", get(alerts))
        .route("/devboxes", get(devboxes))
        .route("/metrics", get(metrics))
        .route("/api/v1/ingest", post(ingest))
        .route("/api/v1/policies/{identity}", get(policy_routes::get).put(policy_routes::put))
        .route("/policies", get(policy_routes::list_page))
        .route("/policies/{identity}", get(policy_routes::history_page))
        .route("/stale", get(policy_routes::stale_page))
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate));
    Router::new()
        .route("/login", get(|| async { html_page(StatusCode::OK, html::login(None)) }).post(login))
        .merge(authed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

pub fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": msg.into()}))).into_response()
}

pub fn html_page(status: StatusCode, body: String) -> Response {
    let mut r = (status, axum::response::Html(body)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// A store failure: the details (the database, its message) go to the server's own log, the
/// client gets 503 (retry: a node's batch sent again is stored once) without them.
fn internal(e: StoreError) -> Response {
    eprintln!("cordon server: the store failed: {e}");
    json_error(StatusCode::SERVICE_UNAVAILABLE, "the server's store failed (its log says why); retry later")
}

pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("the store task failed: {e}"))),
    }
}

/// Every route but /login: a known token whose role allows the method (reads: GET/HEAD; writes:
/// the rest). The login cookie is taken for reads only.
async fn authenticate(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    let browser = !req.uri().path().starts_with("/api/") && req.uri().path() != "/metrics";
    let Some((token, carrier)) = token_of(req.headers()) else {
        if browser && !write {
            return html_page(
                StatusCode::UNAUTHORIZED,
                html::login(Some("Sign in with a viewer token to see this page.")),
            );
        }
        let mut r = json_error(
            StatusCode::UNAUTHORIZED,
            "no credentials: send `Authorization: Bearer TOKEN` (a token from `cordon server token create`)",
        );
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    if write && carrier == Carrier::Cookie {
        return json_error(
            StatusCode::FORBIDDEN,
            "the login cookie only reads: a write needs `Authorization: Bearer TOKEN` with a node or admin token",
        );
    }
    let store = app.store.clone();
    let d = digest(&token);
    let caller = match blocking(move || store.token(&d)).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some((role, name)) = caller else {
        return json_error(StatusCode::UNAUTHORIZED, "the token is not one this server issued (or it was typed wrong)");
    };
    if write && !role.may_write() {
        return json_error(
            StatusCode::FORBIDDEN,
            format!("a {} token may not write: ingest needs a node (or admin) token", role.as_str()),
        );
    }
    // A node reads the policy it runs under, nothing else.
    let node_reads_policy = role == Role::Node && req.uri().path().starts_with("/api/v1/policies/");
    if !write && !role.may_read() && !node_reads_policy {
        return json_error(
            StatusCode::FORBIDDEN,
            format!(
                "a {} token may not read: the dashboard and /metrics need a viewer (or admin) token",
                role.as_str()
            ),
        );
    }
    req.extensions_mut().insert(Caller { role, name });
    next.run(req).await
}

async fn ingest(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return json_error(
                r.status(),
                format!("the body is larger than {} MiB: send fewer records per batch", MAX_BODY >> 20),
            )
        }
        Err(r) => return json_error(r.status(), format!("the body could not be read: {}", r.body_text())),
    };
    let batch = match ingest::check(&body) {
        Ok(b) => b,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.0),
    };
    if caller.role == Role::Node && caller.name != batch.node {
        return json_error(
            StatusCode::FORBIDDEN,
            format!("this token is node `{}`'s: it may not ship records as node `{}`", caller.name, batch.node),
        );
    }
    let store = app.store.clone();
    // The batch comes back: its new records go on to the OTLP export once stored.
    let (verdict, batch) = match blocking(move || store.ingest(&batch, crate::now_ms()).map(|v| (v, batch))).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let m = &app.metrics;
    match verdict {
        Verdict::Accepted(a) => {
            m.batches.inc();
            m.records.inc_by(a.accepted as u64);
            m.duplicates.inc_by(a.duplicates as u64);
            for o in &a.ended {
                m.sessions.get_or_create(&Outcome { outcome: o.clone() }).inc();
            }
            m.add(&a.tally);
            if let Some(otlp) = &app.otlp {
                let mut records = batch.records;
                otlp.offer(&batch.node, records.split_off(a.new_from.min(records.len())));
            }
            (StatusCode::OK, axum::Json(a)).into_response()
        }
        Verdict::Refused(r) => {
            m.refusals.get_or_create(&Reason { reason: r.reason.to_string() }).inc();
            (StatusCode::CONFLICT, axum::Json(json!({"error": r.detail, "reason": r.reason, "seq": r.seq})))
                .into_response()
        }
    }
}

async fn index(State(app): State<App>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let get = |k: &str| q.iter().rev().find(|(n, v)| n == k && !v.is_empty()).map(|(_, v)| v.clone());
    let mut f = SessionFilter { node: get("node"), outcome: get("outcome"), ..Default::default() };
    for (k, slot) in [("since", &mut f.since_ms), ("until", &mut f.until_ms)] {
        if let Some(v) = get(k) {
            match html::parse_time(&v) {
                Some(t) => *slot = Some(t),
                None => {
                    return html_page(
                        StatusCode::BAD_REQUEST,
                        html::page("Bad filter", &format!("<p>`{k}`: {} is not a time; write YYYY-MM-DD, YYYY-MM-DDTHH:MM or milliseconds since 1970</p>", html::esc(&v))),
                    )
                }
            }
        }
    }
    let store = app.store.clone();
    let f2 = f.clone();
    match blocking(move || Ok((store.sessions(&f2, LIST_LIMIT)?, store.nodes()?))).await {
        Ok((rows, nodes)) => {
            let raw: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            html_page(StatusCode::OK, html::sessions(&rows, &f, &raw, &nodes))
        }
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
struct SessionQuery {
    node: Option<String>,
    /// Records after this seq (a page of the timeline).
    after: Option<i64>,
    /// Records on the page (at most [`PAGE`]).
    limit: Option<usize>,
}

/// Records on one page of a session's timeline, at most.
pub const PAGE: usize = 2000;

async fn session(State(app): State<App>, Path(id): Path<String>, Query(q): Query<SessionQuery>) -> Response {
    let store = app.store.clone();
    let id2 = id.clone();
    let page = Page { after: q.after.unwrap_or(0).max(0), limit: q.limit.unwrap_or(PAGE).clamp(1, PAGE) };
    match blocking(move || store.session(&id2, page)).await {
        Ok(mut found) => {
            if let Some(n) = &q.node {
                found.retain(|(s, _)| &s.node == n);
            }
            if found.is_empty() {
                return html_page(
                    StatusCode::NOT_FOUND,
                    html::page(
                        "No such session",
                        &format!("<p>The server holds no session <code>{}</code>.</p>", html::esc(&id)),
                    ),
                );
            }
            html_page(StatusCode::OK, html::session(&id, &found, page))
        }
        Err(r) => r,
    }
}

async fn refusals(State(app): State<App>) -> Response {
    let store = app.store.clone();
    match blocking(move || Ok((store.refusal_counts()?, store.refusals(LIST_LIMIT)?))).await {
        Ok((counts, rows)) => html_page(StatusCode::OK, html::refusals(&counts, &rows)),
        Err(r) => r,
    }
}

async fn alerts(State(app): State<App>) -> Response {
    let store = app.store.clone();
    match blocking(move || store.alerts(LIST_LIMIT)).await {
        Ok(rows) => html_page(StatusCode::OK, html::alerts(&rows)),
        Err(r) => r,
    }
}

/// Claims per snapshot: the newest 100,000 are summarized.
async fn devboxes(State(app): State<App>) -> Response {
    let store = app.store.clone();
    match blocking(move || store.devbox_claims(100_000)).await {
        Ok(rows) => html_page(StatusCode::OK, crate::devbox_view::page_html(&crate::devbox_view::summarize(&rows))),
        Err(r) => r,
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let store = app.store.clone();
    let (stale, pools) =
        match blocking(move || Ok((store.stale_count()?, store.devbox_pools(crate::metrics::MAX_POOLS)?))).await {
            Ok(v) => v,
            Err(r) => return r,
        };
    let mut r = app.metrics.scrape(stale, &pools).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(app): State<App>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return html_page(StatusCode::BAD_REQUEST, html::login(Some("the form must carry a `token` field")));
    };
    let store = app.store.clone();
    let d = digest(&f.token);
    match blocking(move || store.token(&d)).await {
        Ok(Some((role, _))) if role.may_read() => {
            let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", f.token.trim());
            match HeaderValue::from_str(&cookie) {
                Ok(v) => {
                    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
                    r.headers_mut().insert(header::SET_COOKIE, v);
                    r
                }
                Err(_) => {
                    html_page(StatusCode::BAD_REQUEST, html::login(Some("that token cannot be kept in a cookie")))
                }
            }
        }
        Ok(Some((role, _))) => html_page(
            StatusCode::FORBIDDEN,
            html::login(Some(&format!("a {} token may not read: sign in with a viewer or admin token", role.as_str()))),
        ),
        Ok(None) => html_page(StatusCode::UNAUTHORIZED, html::login(Some("the token is not one this server issued"))),
        Err(r) => r,
    }
}
