//! The dashboard's policy pages: identities and their versions, one identity's history with its
//! newest text, and the sessions that ran under an older version (stale). Everything through
//! `html::esc`: a policy's text and an author's name are shown, never interpreted.

use crate::html::{esc, page, url};
use crate::policies::{PolicyRow, StaleRow};
use cordon_audit::served::ServedPolicy;
use cordon_schema::time::utc;
use std::fmt::Write as _;

pub fn list(rows: &[PolicyRow]) -> String {
    let mut b = format!("<p>{} identit{} with a policy. A node runs under one with <code>cordon run --identity NAME --server URL</code>; an admin adds a version with <code>PUT /api/v1/policies/NAME</code>.</p><table><tr><th>identity</th><th>version</th><th>sha256</th><th>by</th><th>when (UTC)</th><th>versions</th><th>stale sessions</th></tr>", rows.len(), if rows.len() == 1 { "y" } else { "ies" });
    for r in rows {
        let _ = write!(
            b,
            "<tr class=\"{}\"><td><a href=\"/policies/{}\">{}</a></td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.stale > 0 { "bad" } else { "" },
            esc(&url(&r.identity)),
            esc(&r.identity),
            r.version,
            esc(&r.sha256[..r.sha256.len().min(16)]),
            esc(&r.author),
            utc(r.created_ms),
            r.versions,
            r.stale
        );
    }
    b.push_str("</table>");
    page("Policies by identity", &b)
}

pub fn history(identity: &str, rows: &[PolicyRow], newest: &ServedPolicy) -> String {
    let mut b = format!(
        "<p>Version {} of <code>{}</code>, by {} at {} UTC, signed by the server's key <code class=\"mono\">{}</code>:</p><pre>{}</pre><table><tr><th>version</th><th>sha256</th><th>by</th><th>when (UTC)</th></tr>",
        newest.version,
        esc(identity),
        esc(&newest.author),
        utc(newest.created_ms),
        esc(&newest.server_key),
        // Line by line: its newlines stay newlines, every other control character shows.
        newest.text.split('\n').map(esc).collect::<Vec<_>>().join("\n")
    );
    for r in rows {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            r.version,
            esc(&r.sha256),
            esc(&r.author),
            utc(r.created_ms)
        );
    }
    b.push_str("</table>");
    page(&format!("Policy of {identity}"), &b)
}

pub fn stale(rows: &[StaleRow]) -> String {
    let mut b = format!("<p>Sessions that ran under an older version of their identity's policy while a newer one existed: {} (newest first).</p><table><tr><th>marked (UTC)</th><th>node</th><th>session</th><th>identity</th><th>ran version</th><th>newer version</th><th>started (UTC)</th><th>ended (UTC)</th></tr>", rows.len());
    for r in rows {
        let _ = write!(
            b,
            "<tr class=\"alert\"><td>{}</td><td>{}</td><td><a href=\"/sessions/{}?node={}\" class=\"mono\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            utc(r.marked_ms),
            esc(&r.node),
            esc(&url(&r.session)),
            esc(&url(&r.node)),
            esc(&r.session),
            esc(&r.identity),
            r.ran_version,
            r.newer_version,
            utc(r.started_ms),
            r.ended_ms.map_or_else(|| "still running".into(), utc)
        );
    }
    b.push_str("</table>");
    page("Stale policies", &b)
}
