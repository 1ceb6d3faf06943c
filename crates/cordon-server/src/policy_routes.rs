//! Policies by identity over HTTP: `GET /api/v1/policies/NAME` (node, viewer, admin: the newest
//! version, signed), `PUT /api/v1/policies/NAME` (admin: the body is the policy's TOML, checked
//! as `cordon` would load it, kept as the next version), and the dashboard's `/policies`,
//! `/policies/NAME` and `/stale`.

use crate::auth::{Caller, Role};
use crate::http::{blocking, html_page, json_error, App};
use crate::{html, policy_pages};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cordon_audit::served::valid_identity;
use serde_json::json;

/// The largest policy text kept (the policy loader reads at most 1 MiB).
const MAX_POLICY: usize = 1 << 20;
const STALE_LIMIT: usize = 1000;

fn bad_identity(id: &str) -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        format!("`{id}` is not an identity\n  hint: 1 to 128 of A-Z a-z 0-9 . _ @ -, not starting with a dot"),
    )
}

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> Response {
    if !valid_identity(&id) {
        return bad_identity(&id);
    }
    let store = app.store.clone();
    let id2 = id.clone();
    match blocking(move || store.policy(&id2)).await {
        Ok(Some(p)) => (StatusCode::OK, axum::Json(p)).into_response(),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            format!("no policy for identity `{id}`\n  hint: an admin adds one: PUT /api/v1/policies/{id} with the policy's TOML"),
        ),
        Err(r) => r,
    }
}

pub async fn put(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if caller.role != Role::Admin {
        return json_error(
            StatusCode::FORBIDDEN,
            format!("a {} token may not change policies: that needs an admin token", caller.role.as_str()),
        );
    }
    if !valid_identity(&id) {
        return bad_identity(&id);
    }
    if body.len() > MAX_POLICY {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "a policy is at most 1 MiB");
    }
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return json_error(StatusCode::BAD_REQUEST, "the policy is not UTF-8 text");
    };
    // Checked as a node will load it, so that no node is handed a policy it cannot run.
    if let Err(e) = cordon_policy::load_text(&format!("{id}.toml"), &text) {
        return json_error(StatusCode::BAD_REQUEST, format!("the policy does not load:\n{e}"));
    }
    let (store, key) = (app.store.clone(), app.key.clone());
    let author = caller.name.clone();
    match blocking(move || store.put_policy(&key, &id, &text, &author, crate::now_ms())).await {
        Ok((p, marked)) => {
            if marked > 0 {
                eprintln!(
                    "cordon server: {marked} session(s) of identity `{}` still run under an older policy than version {}: marked stale (/stale)",
                    p.identity, p.version
                );
            }
            let body =
                json!({"identity": p.identity, "version": p.version, "sha256": p.sha256, "stale_marked": marked});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(r) => r,
    }
}

pub async fn list_page(State(app): State<App>) -> Response {
    let store = app.store.clone();
    match blocking(move || store.policy_rows(None)).await {
        Ok(rows) => html_page(StatusCode::OK, policy_pages::list(&rows)),
        Err(r) => r,
    }
}

pub async fn history_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    let store = app.store.clone();
    let id2 = id.clone();
    match blocking(move || Ok((store.policy_rows(Some(&id2))?, store.policy(&id2)?))).await {
        Ok((rows, Some(newest))) => html_page(StatusCode::OK, policy_pages::history(&id, &rows, &newest)),
        Ok((_, None)) => html_page(
            StatusCode::NOT_FOUND,
            html::page("No such identity", &format!("<p>No policy for <code>{}</code>.</p>", html::esc(&id))),
        ),
        Err(r) => r,
    }
}

pub async fn stale_page(State(app): State<App>) -> Response {
    let store = app.store.clone();
    match blocking(move || store.stale(STALE_LIMIT)).await {
        Ok(rows) => html_page(StatusCode::OK, policy_pages::stale(&rows)),
        Err(r) => r,
    }
}
