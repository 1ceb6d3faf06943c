//! The dashboard, rendered on the server (no JavaScript). Everything a node or an agent controls
//! (node names, session ids, argv, paths, tool arguments, reasons) goes through [`esc`]: HTML
//! metacharacters become entities and control characters (an ANSI escape, a newline in an
//! argument) are shown as visible escapes such as `\u{1b}`, never passed to the browser raw.

use crate::store::{
    AlertRow, NodeRow, Page, RefusalCount, RefusalRow, SessionFilter, SessionRow, StoredRecord, REFUSALS_KEPT,
};
use cordon_schema::time::utc;
use cordon_schema::{Denial, Event};
use serde_json::Value;
use std::fmt::Write as _;

/// Text for HTML (element content and quoted attribute values alike).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => {
                let _ = write!(o, "<span class=\"ctl\">{}</span>", c.escape_default());
            }
            c => o.push(c),
        }
    }
    o
}

/// A query-string component (for links that carry a filter or an id).
pub fn url(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}\
td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;font-size:.9em}\
code,.mono{font-family:ui-monospace,monospace}.ctl{color:#b00;background:#fee}.bad{background:#fff0f0}\
.alert{background:#fff6d6}nav a{margin-right:1em}form.f input,form.f select{margin-right:.5em}";

pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} · cordon</title><style>{STYLE}</style></head><body><nav><a href=\"/\">sessions</a><a href=\"/alerts\">alerts</a><a href=\"/devboxes\">devboxes</a><a href=\"/refusals\">refusals</a><a href=\"/policies\">policies</a><a href=\"/stale\">stale</a><a href=\"/metrics\">metrics</a></nav><h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    )
}

pub fn login(message: Option<&str>) -> String {
    let m = message.map(|m| format!("<p class=\"bad\">{}</p>", esc(m))).unwrap_or_default();
    page(
        "Sign in",
        &format!("{m}<form method=\"post\" action=\"/login\"><label>Viewer or admin token <input type=\"password\" name=\"token\" autocomplete=\"off\" size=\"72\"></label> <button>Sign in</button></form><p>The token is kept in an HttpOnly, SameSite=Strict cookie of this site, for reading only.</p>"),
    )
}

/// A time filter: milliseconds since the epoch, or `YYYY-MM-DD` / `YYYY-MM-DDTHH:MM[:SS]` UTC.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let t: Vec<i64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let (&[y, m, day], 2..=3) = (d.as_slice(), t.len()) else { return None };
    // Years 1..=9999: a year the arithmetic below cannot hold is no date (a viewer's query string).
    if !(1..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || t.iter().any(|x| !(0..60).contains(x))
        || t[0] > 23
    {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + t[0] * 3600 + t[1] * 60 + t.get(2).copied().unwrap_or(0)) * 1000)
}

fn command(start: &Value) -> String {
    start["command"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn session_link(r: &SessionRow) -> String {
    format!("/sessions/{}?node={}", url(&r.session), url(&r.node))
}

/// The nodes: what each has had verified, and what of it was refused.
fn nodes(rows: &[NodeRow]) -> String {
    let mut b = String::from("<h2>Nodes</h2><table><tr><th>node</th><th>key (pinned by its first batch)</th><th>verified chain</th><th>sessions</th><th>refused batches</th><th>first seen</th><th>last seen</th></tr>");
    for n in rows {
        let _ = write!(
            b,
            "<tr class=\"{}\"><td><a href=\"/?node={}\">{}</a></td><td class=\"mono\">{}…</td><td>records 1..{}: hash chain verified, every seal signed by the pinned key (records after the last seal: chain only)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if n.refusals > 0 { "bad" } else { "" },
            esc(&url(&n.name)),
            esc(&n.name),
            esc(n.public_key.get(..16).unwrap_or(&n.public_key)),
            n.tail_seq,
            n.sessions,
            n.refusals,
            utc(n.first_seen_ms),
            utc(n.last_seen_ms)
        );
    }
    b.push_str("</table><h2>Sessions</h2>");
    b
}

pub fn sessions(rows: &[SessionRow], f: &SessionFilter, raw: &[(&str, &str)], node_rows: &[NodeRow]) -> String {
    let v = |k: &str| raw.iter().find(|(n, _)| *n == k).map(|(_, v)| esc(v)).unwrap_or_default();
    let mut b = nodes(node_rows);
    let _ = write!(
        b,
        "<form class=\"f\" method=\"get\" action=\"/\"><label>node <input name=\"node\" value=\"{}\"></label><label>outcome <select name=\"outcome\">",
        v("node")
    );
    for o in ["", "exited", "signaled", "setup_failed", "exec_failed", "unfinished"] {
        let sel = if f.outcome.as_deref() == Some(o) { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{o}\"{sel}>{}</option>", if o.is_empty() { "any" } else { o });
    }
    let _ = write!(
        b,
        "</select></label><label>since <input name=\"since\" value=\"{}\" placeholder=\"YYYY-MM-DD\"></label><label>until <input name=\"until\" value=\"{}\" placeholder=\"YYYY-MM-DD\"></label><button>filter</button></form>",
        v("since"),
        v("until")
    );
    let _ = write!(b, "<p>{} session(s)</p><table><tr><th>started (UTC)</th><th>node</th><th>session</th><th>command</th><th>policy</th><th>outcome</th><th>exit</th><th>denials</th><th>alerts</th><th>records</th><th>seal</th></tr>", rows.len());
    for r in rows {
        let _ = write!(
            b,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td><a href=\"{}\" class=\"mono\">{}</a></td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.alerts > 0 { "alert" } else if r.denials > 0 { "bad" } else { "" },
            utc(r.started_ms),
            esc(&r.node),
            esc(&session_link(r)),
            esc(&r.session),
            esc(&command(&r.start)),
            esc(r.start["policy"]["name"].as_str().unwrap_or("")),
            esc(r.outcome.as_deref().unwrap_or("unfinished")),
            r.exit_code.map_or("-".into(), |c| c.to_string()),
            r.denials,
            r.alerts,
            r.records,
            if r.sealed { "sealed, verified" } else { "not sealed" }
        );
    }
    b.push_str("</table>");
    page("cordon server", &b)
}

/// A session's timeline: one row per record, sensor records opened into their events.
pub fn session(id: &str, found: &[(SessionRow, Vec<StoredRecord>)], page: Page) -> String {
    let mut b = String::new();
    for (s, recs) in found {
        let more = recs.len() > page.limit;
        let recs = &recs[..recs.len().min(page.limit)];
        let _ = write!(
            b,
            "<h2>node {} · session <span class=\"mono\">{}</span></h2><p>command <code>{}</code> in <code>{}</code> under policy <code>{}</code>; {}; {} record(s), {}</p>",
            esc(&s.node),
            esc(&s.session),
            esc(&command(&s.start)),
            esc(s.start["workspace"].as_str().unwrap_or("?")),
            esc(s.start["policy"]["name"].as_str().unwrap_or("?")),
            match (&s.outcome, s.exit_code) {
                (Some(o), Some(c)) => format!("{} (exit {c})", esc(o)),
                (Some(o), None) => esc(o),
                (None, _) => "unfinished".into(),
            },
            s.records,
            if s.sealed { "sealed; the seal verified against the node's key on arrival" } else { "not sealed (yet)" }
        );
        b.push_str("<table><tr><th>time</th><th>#</th><th>kind</th><th>what</th></tr>");
        // Times are from the session's start, the same on every page.
        let t0 = s.started_ms;
        for r in recs {
            for (kind, ts, text, class) in entries(r) {
                let _ = write!(
                    b,
                    "<tr class=\"{class}\"><td>+{:.3}s</td><td>{}</td><td>{}</td><td class=\"mono\">{}{}</td></tr>",
                    // A node's timestamps are its own: any i64, so no subtraction that can overflow.
                    (ts as f64 - t0 as f64) / 1000.0,
                    r.seq,
                    esc(&kind),
                    esc(&text),
                    effects_link(r, &s.node)
                );
            }
        }
        b.push_str("</table>");
        let shown = match (recs.first(), recs.last()) {
            (Some(a), Some(z)) => format!("records {} to {}", a.seq, z.seq),
            _ => "no records after this point".into(),
        };
        let _ = write!(b, "<p class=\"pages\">{shown} of {}", s.records);
        if page.after > 0 {
            let _ = write!(b, " · <a href=\"{}\">from the start</a>", esc(&page_link(s, 0, page.limit)));
        }
        if let (true, Some(z)) = (more, recs.last()) {
            let _ = write!(b, " · <a href=\"{}\">next {}</a>", esc(&page_link(s, z.seq, page.limit)), page.limit);
        }
        b.push_str("</p>");
    }
    self::page(&format!("Session {id}"), &b)
}

/// A tool call's link to the sandbox session it ran in (what it did on the machine), on the same node.
fn effects_link(r: &StoredRecord, node: &str) -> String {
    if r.kind != "tool_call" {
        return String::new();
    }
    let body: Value = serde_json::from_str(&r.payload).unwrap_or_default();
    match body["session"].as_str() {
        Some(sid) if !sid.is_empty() => format!(
            " · <a href=\"{}\">its sandbox session</a>",
            esc(&format!("/sessions/{}?node={}", url(sid), url(node)))
        ),
        _ => String::new(),
    }
}

/// This node's session, from the record after `after`.
fn page_link(s: &SessionRow, after: i64, limit: usize) -> String {
    format!("/sessions/{}?node={}&after={after}&limit={limit}", url(&s.session), url(&s.node))
}

/// A record's rows: (kind, time, text, css class).
fn entries(r: &StoredRecord) -> Vec<(String, i64, String, &'static str)> {
    let body: Value = serde_json::from_str(&r.payload).unwrap_or_default();
    if r.kind == "sensor" {
        if let Value::Array(evs) = body {
            return evs
                .into_iter()
                .map(|e| {
                    let ts = e["time"].as_u64().map_or(r.ts_ms, |t| (t / 1_000_000) as i64);
                    match serde_json::from_value::<Event>(e.clone()) {
                        Ok(ev) => (
                            format!("sensor.{}", ev.kind.as_str()),
                            ts,
                            ev.line(),
                            if ev.is_deny() { "bad" } else { "" },
                        ),
                        Err(_) => ("sensor.?".into(), ts, e.to_string(), ""),
                    }
                })
                .collect();
        }
    }
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let (text, class) = match r.kind.as_str() {
        "start" => (format!("ran `{}` in {}", command(&body), s(&body["workspace"])), ""),
        "denial" => match serde_json::from_value::<Denial>(body.clone()) {
            Ok(d) => {
                (format!("DENIED [{}] {} by {}[{}] ×{}: {}", d.layer, d.what, d.comm, d.pid, d.count, d.reason), "bad")
            }
            Err(_) => (body.to_string(), "bad"),
        },
        "egress" => match serde_json::from_value::<cordon_schema::egress::Decision>(body.clone()) {
            Ok(d) => (d.describe(), if body["allowed"] == Value::Bool(false) { "bad" } else { "" }),
            Err(_) => (body.to_string(), ""),
        },
        "alert" => (format!("ALERT [{}]: {}", s(&body["rule"]), s(&body["reason"])), "alert"),
        "tool_call" => (
            format!(
                "#{} {} {}.{} {} by {}; arguments {}",
                body["call"].as_u64().unwrap_or(0),
                s(&body["identity"]),
                s(&body["server"]),
                s(&body["tool"]),
                s(&body["decision"]),
                s(&body["rule"]),
                body.get("arguments").or(body.get("args_sha256")).map_or("-".into(), |a| a.to_string())
            ),
            if body["decision"] == "deny" { "bad" } else { "" },
        ),
        "end" => (
            format!(
                "{} (exit {}), {} denial(s), {:.2}s",
                s(&body["ending"]["kind"]),
                body["exit_code"],
                body["denials_total"].as_u64().unwrap_or(0),
                body["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
            ),
            "",
        ),
        "sensor.summary" => (
            format!(
                "sensor: {} events, {} lost, {} refused, {} processes",
                body["events"].as_u64().unwrap_or(0),
                body["lost"].as_u64().unwrap_or(0),
                body["denials_total"].as_u64().unwrap_or(0),
                body["processes"].as_u64().unwrap_or(0)
            ),
            if body["lost"].as_u64().unwrap_or(0) > 0 { "bad" } else { "" },
        ),
        "seal" => ("sealed: signature verified against the node's pinned key on arrival".into(), ""),
        _ => (body.to_string(), ""),
    };
    vec![(r.kind.clone(), r.ts_ms, text, class)]
}

/// The newest alerts of every node, each linked to its session's timeline at the alert.
pub fn alerts(rows: &[AlertRow]) -> String {
    let mut b = format!(
        "<p>{} alert(s), newest first (detection rules that fired; the rule's action: alert, or kill when it stopped the session).</p><table><tr><th>when (UTC)</th><th>node</th><th>session</th><th>rule</th><th>action</th><th>reason</th></tr>",
        rows.len()
    );
    for a in rows {
        let s = |k: &str| a.body[k].as_str().unwrap_or("?").to_string();
        let href = format!("/sessions/{}?node={}&after={}", url(&a.session), url(&a.node), (a.seq - 1).max(0));
        let _ = write!(
            b,
            "<tr class=\"alert\"><td>{}</td><td>{}</td><td class=\"mono\"><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            utc(a.ts_ms),
            esc(&a.node),
            esc(&href),
            esc(&a.session),
            esc(&s("rule")),
            esc(&s("action")),
            esc(&s("reason"))
        );
    }
    b.push_str("</table>");
    page("Alerts", &b)
}

pub fn refusals(counts: &[RefusalCount], rows: &[RefusalRow]) -> String {
    let total: i64 = counts.iter().map(|c| c.count).sum();
    let mut b = format!("<p>Batches the server refused (nothing of a refused batch was stored): {total}, by node and reason:</p><table><tr><th>node</th><th>reason</th><th>batches</th><th>first (UTC)</th><th>last (UTC)</th></tr>");
    for c in counts {
        let _ = write!(
            b,
            "<tr class=\"bad\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.node),
            esc(&c.reason),
            c.count,
            utc(c.first_ms),
            utc(c.last_ms)
        );
    }
    let _ = write!(
        b,
        "</table><p>The newest, in detail ({} shown; the server keeps each node's newest {REFUSALS_KEPT}):</p><table>",
        rows.len()
    );
    b.push_str(
        "<tr><th>when (UTC)</th><th>node</th><th>reason</th><th>records</th><th>sessions</th><th>detail</th></tr>",
    );
    for r in rows {
        let _ = write!(
            b,
            "<tr class=\"bad\"><td>{}</td><td>{}</td><td>{}</td><td>{} ({}..{})</td><td class=\"mono\">{}</td><td>{}</td></tr>",
            utc(r.ts_ms),
            esc(&r.node),
            esc(&r.reason),
            r.records,
            r.first_seq.map_or("-".into(), |s| s.to_string()),
            r.last_seq.map_or("-".into(), |s| s.to_string()),
            esc(&r.sessions),
            esc(&r.detail)
        );
    }
    b.push_str("</table>");
    page("Refused batches", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_inert_and_control_characters_visible() {
        assert_eq!(esc("<script>"), "&lt;script&gt;");
        assert_eq!(esc("\"><img src=x onerror=alert(1)>"), "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(esc("\x1b[31m"), "<span class=\"ctl\">\\u{1b}</span>[31m");
        assert_eq!(esc("a'b&"), "a&#39;b&amp;");
        assert_eq!(url("a b/<"), "a%20b%2F%3C");
    }

    #[test]
    fn times_parse_and_print_as_civil_utc() {
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(parse_time("2000-02-29"), Some(951_782_400_000));
        assert_eq!(parse_time("300000000-01-01"), None, "a year no arithmetic here holds");
        assert_eq!(parse_time("0-01-01"), None);
        assert_eq!(parse_time("2026-11-30T04:17:35"), Some(1_796_012_255_000));
        assert_eq!(parse_time("2026-11-30 04:17"), Some(1_796_012_220_000));
        assert_eq!(parse_time("123"), Some(123));
        for bad in ["2026-13-01", "yesterday", "2026-11-30T25:00", "2026-11"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_tool_call_links_to_its_sandbox_session_escaped() {
        let rec =
            |kind: &str, body: Value| StoredRecord { seq: 7, kind: kind.into(), ts_ms: 0, payload: body.to_string() };
        let call = rec("tool_call", serde_json::json!({"session": "s-1\"><script>", "decision": "allow"}));
        let link = effects_link(&call, "n<1>");
        assert_eq!(link, " · <a href=\"/sessions/s-1%22%3E%3Cscript%3E?node=n%3C1%3E\">its sandbox session</a>");
        assert_eq!(
            effects_link(&rec("tool_call", serde_json::json!({"decision": "deny"})), "n"),
            "",
            "refused: no session"
        );
        assert_eq!(effects_link(&rec("alert", serde_json::json!({"session": "x"})), "n"), "");
    }
}
