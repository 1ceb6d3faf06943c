//! Per-tool rules beyond allow/deny (`[servers.S.rules.TOOL]` in gateway.toml): which arguments are
//! paths (judged against the tool's effective fs grants with cordon-policy's own decision, the one
//! `cordon policy test` prints, before the call is forwarded; the kernel enforces the same grants
//! again), and how often a caller may call it.

use cordon_policy::{Access, CompiledPolicy};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pointer to the arguments that hold a path: keys separated by `.`, a key ending in `[]` for
/// each item of the array under it (`path`, `paths[]`, `edits[].file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgPath {
    pub text: String,
    steps: Vec<(String, bool)>,
}

impl ArgPath {
    pub fn parse(text: &str) -> Result<ArgPath, String> {
        let mut steps = vec![];
        for part in text.split('.') {
            let (key, each) = match part.strip_suffix("[]") {
                Some(k) => (k, true),
                None => (part, false),
            };
            if key.is_empty() || key.contains(['[', ']']) || key.chars().any(char::is_whitespace) {
                return Err(format!("`{text}` is not an argument pointer"));
            }
            steps.push((key.to_string(), each));
        }
        Ok(ArgPath { text: text.to_string(), steps })
    }

    /// Every value it points to in `args`, with where it was (`files[1]`).
    pub fn values<'a>(&self, args: &'a Value) -> Vec<(String, &'a Value)> {
        let mut at: Vec<(String, &Value)> = vec![(String::new(), args)];
        for (key, each) in &self.steps {
            let mut next = vec![];
            for (name, v) in at {
                let Some(v) = v.get(key) else { continue };
                let name = if name.is_empty() { key.clone() } else { format!("{name}.{key}") };
                if *each {
                    match v.as_array() {
                        Some(items) => next.extend(items.iter().enumerate().map(|(i, x)| (format!("{name}[{i}]"), x))),
                        None => next.push((name, v)),
                    }
                } else {
                    next.push((name, v));
                }
            }
            at = next;
        }
        at
    }
}

/// What one tool's rules are.
#[derive(Debug, Clone, Default)]
pub struct ToolRule {
    /// Arguments that name a path the tool reads.
    pub read: Vec<ArgPath>,
    /// Arguments that name a path the tool writes.
    pub write: Vec<ArgPath>,
    /// Its calls per caller (None: the server's `rate`, if any).
    pub rate: Option<Rate>,
    /// The fs grants its calls run with: the server's policy, and under `isolation = "call"` the
    /// policy's `[tools.NAME]` grants (None when it has no path arguments).
    pub policy: Option<Arc<CompiledPolicy>>,
}

/// A path argument outside the tool's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRefusal {
    /// Where it was in the arguments (`files[1]`).
    pub arg: String,
    /// The pointer in the config that named it (`files[]`), and whether it is read or write.
    pub pointer: String,
    pub access: &'static str,
    pub value: String,
    /// cordon-policy's reason, or why the value cannot be judged as a path.
    pub reason: String,
    /// False when the value could not be judged at all (not a string, `~`, a bad `file://` URI).
    pub judged: bool,
}

/// Judges the path arguments of a call against `policy`. Relative paths are taken from `cwd` (the
/// server's workspace, where it runs), then normalized lexically: symlinks are the kernel's part.
pub fn check_paths(rule: &ToolRule, args: &Value, cwd: &Path) -> Result<(), PathRefusal> {
    let Some(policy) = &rule.policy else { return Ok(()) };
    let lists = [(&rule.read, "read"), (&rule.write, "write")];
    for (list, access) in lists {
        let want = Access { read: access == "read", write: access == "write", exec: false };
        for p in list {
            for (arg, v) in p.values(args) {
                let refuse = |value: String, reason: String, judged: bool| PathRefusal {
                    arg: arg.clone(),
                    pointer: p.text.clone(),
                    access,
                    value,
                    reason,
                    judged,
                };
                let Some(s) = v.as_str() else {
                    return Err(refuse(
                        v.to_string(),
                        "it is not a string, so it cannot be judged as a path".into(),
                        false,
                    ));
                };
                let s = match as_path(s) {
                    Ok(p) => p,
                    Err(why) => return Err(refuse(s.to_string(), why, false)),
                };
                let raw = PathBuf::from(&s);
                let abs = cordon_policy::paths::normalize(&if raw.is_absolute() { raw } else { cwd.join(raw) });
                let d = cordon_policy::decide::fs(policy, &abs, want);
                if !d.allow {
                    return Err(refuse(v.as_str().unwrap_or_default().to_string(), d.reason, true));
                }
            }
        }
    }
    Ok(())
}

/// The path a path argument names, as a server would open it: a `file://` URI decoded (its host
/// empty or `localhost`, its percent-escapes decoded), judged as what it decodes to. Refused: a
/// path starting with `~` (the shell's expansion, which the gateway cannot make for the server: no
/// HOME in its session), a URI naming another host, bad escapes, and a decoded path that is not
/// UTF-8 or holds a NUL (what is judged must be what is opened).
/// A URI scheme at the start of `s` (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`,
/// then `:`), of two letters or more (a one-letter one would be a drive letter, not Linux's).
fn scheme(s: &str) -> Option<&str> {
    let (head, _) = s.split_once(':')?;
    let mut b = head.bytes();
    let first = b.next()?;
    (first.is_ascii_alphabetic() && head.len() >= 2 && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c)))
        .then_some(head)
}

pub fn as_path(s: &str) -> Result<String, String> {
    if s.starts_with('~') {
        return Err(format!(
            "`{}` starts with `~`, which the gateway does not expand (the server's session has no HOME): give an \
             absolute path",
            s.split('/').next().unwrap_or(s)
        ));
    }
    // The scheme, as a URL parser reads it: case-insensitive, `file:` with zero to three slashes
    // (review 9: `FILE:///etc/passwd` and `file:/etc/passwd` were judged as relative names).
    let file = s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("file:"));
    if !file {
        if let Some(scheme) = scheme(s) {
            return Err(format!("`{scheme}:` is a URI scheme whose path cannot be judged: give an absolute path"));
        }
        if s.contains('\0') {
            return Err("it holds a NUL character: not a path a file can have".into());
        }
        return Ok(s.to_string());
    }
    let after = &s[5..];
    let rest = match after.strip_prefix("//") {
        Some(r) => r,
        None if after.starts_with('/') => after,
        None => return Err(format!("`{s}` is a file: URI without an absolute path: give an absolute path")),
    };
    let path = match rest.find('/') {
        Some(0) => rest,
        Some(i) if rest[..i].eq_ignore_ascii_case("localhost") => &rest[i..],
        _ => {
            let host = rest.split('/').next().unwrap_or(rest);
            return Err(format!(
                "a file:// URI naming the host `{host}`: only this machine's files (file:///PATH or \
                 file://localhost/PATH) can be judged: give an absolute path"
            ));
        }
    };
    // A query or fragment is not part of the path a server opens.
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(c) => out.push(c),
                None => return Err(format!("`{s}` has a `%` that is not followed by two hex digits")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(format!("`{s}` decodes to a path holding a NUL character: not a path a file can have"));
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` decodes to a path that is not UTF-8: it cannot be judged"))
}

/// `rate = "N/UNIT"`: at most N calls in any window of one UNIT (s, min, h), per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub calls: u32,
    pub per: Duration,
}

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = || format!("`{text}` is not a rate");
        let (n, unit) = text.split_once('/').ok_or_else(bad)?;
        let calls: u32 = n.trim().parse().map_err(|_| bad())?;
        if calls == 0 {
            return Err("a rate of 0 calls: deny the tool instead (tools.deny)".into());
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86400),
            _ => return Err(format!("`{}` is not a unit of time for a rate", unit.trim())),
        };
        Ok(Rate { calls, per })
    }

    pub fn describe(&self) -> String {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => "day",
        };
        format!("{}/{unit}", self.calls)
    }
}

/// The calls each (server, tool, caller) made in the last window: a sliding window of times.
#[derive(Default)]
pub struct Limiter {
    seen: Mutex<BTreeMap<(String, String, String), VecDeque<Instant>>>,
}

impl Limiter {
    /// Counts a call now, or says how long until one would be taken.
    pub fn take(&self, server: &str, tool: &str, who: &str, rate: Rate, now: Instant) -> Result<(), Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let q = seen.entry((server.into(), tool.into(), who.into())).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= rate.per) {
            q.pop_front();
        }
        if q.len() >= rate.calls as usize {
            let oldest = q.front().copied().unwrap_or(now);
            return Err((oldest + rate.per).saturating_duration_since(now));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_reach_keys_array_items_and_nested_fields() {
        let a = json!({"path": "/a", "paths": ["/b", "/c"], "edits": [{"file": "/d"}, {"file": 3}]});
        let v = |p: &str| ArgPath::parse(p).expect("pointer").values(&a);
        assert_eq!(v("path"), [("path".to_string(), &json!("/a"))]);
        let names: Vec<String> = v("paths[]").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["paths[0]", "paths[1]"]);
        let names: Vec<String> = v("edits[].file").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["edits[0].file", "edits[1].file"]);
        assert!(v("missing").is_empty());
        for bad in ["", "a..b", "a[0]", "a b", "[]"] {
            assert!(ArgPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_file_uri_is_decoded_and_a_tilde_refused() {
        assert_eq!(as_path("/a/b"), Ok("/a/b".into()));
        assert_eq!(as_path("rel/%41"), Ok("rel/%41".into()), "not a URI: taken as written");
        assert_eq!(as_path("file:///etc/%70asswd"), Ok("/etc/passwd".into()));
        assert_eq!(as_path("file://LocalHost/a%20b?x#y"), Ok("/a b".into()));
        assert_eq!(as_path("file:///ws/..%2F..%2Fx"), Ok("/ws/../../x".into()));
        for bad in
            ["~/x", "~", "~root/.ssh", "file://h/x", "file://", "file:///a%00", "file:///%ff", "file:///%4", "/a\0b"]
        {
            assert!(as_path(bad).is_err(), "{bad:?}");
        }
        assert!(as_path("~/x").is_err_and(|e| e.contains("give an absolute path")));
        // The scheme as URL parsers read it (review 9): any case, one or three slashes.
        assert_eq!(as_path("FILE:///etc/passwd"), Ok("/etc/passwd".into()));
        assert_eq!(as_path("File:/etc/passwd"), Ok("/etc/passwd".into()));
        for bad in ["file:etc/passwd", "http://x/y", "ftp:/x", "data:text/plain,x"] {
            assert!(as_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(as_path("C:/x"), Ok("C:/x".into()), "one letter: not a scheme, a relative name");
    }

    #[test]
    fn a_rate_parses_and_its_window_slides() {
        assert_eq!(Rate::parse("10/min"), Ok(Rate { calls: 10, per: Duration::from_secs(60) }));
        assert_eq!(Rate::parse("2 / s").map(|r| r.describe()), Ok("2/s".into()));
        for bad in ["10", "x/min", "0/min", "10/week", "-1/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let l = Limiter::default();
        let r = Rate { calls: 2, per: Duration::from_secs(60) };
        let t = Instant::now();
        assert!(l.take("s", "t", "a", r, t).is_ok());
        assert!(l.take("s", "t", "a", r, t + Duration::from_secs(10)).is_ok());
        assert_eq!(l.take("s", "t", "a", r, t + Duration::from_secs(20)), Err(Duration::from_secs(40)));
        assert!(l.take("s", "t", "b", r, t + Duration::from_secs(20)).is_ok(), "per caller");
        assert!(l.take("s", "u", "a", r, t + Duration::from_secs(20)).is_ok(), "per tool");
        assert!(l.take("s", "t", "a", r, t + Duration::from_secs(60)).is_ok(), "the first left the window");
    }
}
