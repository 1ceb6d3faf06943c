//! Evaluation over a stream of events, in time order.

use crate::load::{Cond, Op, RuleSet};
use cordon_schema::{Alert, Subject};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};

pub struct Engine {
    set: RuleSet,
    windows: HashMap<String, VecDeque<i64>>,
    last_fired: HashMap<String, i64>,
}

fn field<'a>(ev: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ev, |v, k| v.get(k))
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text of a value without copying strings (rules run on every sensor event).
fn text(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

fn holds(c: &Cond, ev: &Value) -> bool {
    let v = field(ev, &c.field);
    let any = |f: &dyn Fn(&Value, &Value) -> bool| c.values.iter().any(|want| v.is_some_and(|got| f(got, want)));
    match c.op {
        Op::Eq | Op::In => any(&|g, w| g == w || text(g) == text(w)),
        Op::Ne => !c.values.iter().any(|w| v.is_some_and(|g| g == w || text(g) == text(w))) && v.is_some(),
        Op::Prefix => any(&|g, w| text(g).starts_with(&*text(w))),
        Op::Suffix => any(&|g, w| text(g).ends_with(&*text(w))),
        Op::Contains => any(&|g, w| text(g).contains(&*text(w))),
        Op::Gt => any(&|g, w| g.as_f64().zip(w.as_f64()).is_some_and(|(a, b)| a > b)),
        Op::Lt => any(&|g, w| g.as_f64().zip(w.as_f64()).is_some_and(|(a, b)| a < b)),
    }
}

fn render(reason: &str, ev: &Value) -> String {
    let mut out = String::new();
    let mut rest = reason;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        match rest[i + 1..].find('}') {
            Some(j) => {
                let key = &rest[i + 1..i + 1 + j];
                match field(ev, key) {
                    Some(v) => out.push_str(&as_text(v)),
                    None => out.push_str(&format!("{{{key}}}")),
                }
                rest = &rest[i + 2 + j..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl Engine {
    pub fn new(set: RuleSet) -> Engine {
        Engine { set, windows: HashMap::new(), last_fired: HashMap::new() }
    }

    /// One event: `kind` (denial, egress, ...), time, and its fields. Returns the alerts it raises.
    pub fn feed(&mut self, kind: Subject, ts_ms: i64, ev: &Value) -> Vec<Alert> {
        let mut out = vec![];
        for r in &self.set.rules {
            if r.kind != kind || !r.conds.iter().all(|c| holds(c, ev)) {
                continue;
            }
            if let Some((count, window)) = r.rate {
                let w = self.windows.entry(r.id.clone()).or_default();
                w.push_back(ts_ms);
                while w.front().is_some_and(|t| ts_ms - t > window.as_millis() as i64) {
                    w.pop_front();
                }
                if (w.len() as u32) < count {
                    continue;
                }
                w.clear();
            }
            if let Some((prev, within)) = &r.after {
                match self.last_fired.get(prev) {
                    Some(t) if ts_ms - t <= within.as_millis() as i64 => {}
                    _ => continue,
                }
            }
            out.push(Alert {
                rule: r.id.clone(),
                action: r.action,
                ts_ms,
                reason: render(&r.reason, ev),
                event: ev.clone(),
            });
        }
        for a in &out {
            self.last_fired.insert(a.rule.clone(), a.ts_ms);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_schema::Action;
    use serde_json::json;

    fn k(s: &str) -> Subject {
        Subject::parse(s).expect("a kind")
    }

    fn engine() -> Engine {
        Engine::new(crate::load("builtin:agent").expect("builtin"))
    }

    #[test]
    fn builtin_agent_flags_attacks() {
        let mut e = engine();
        let a = e.feed(k("denial"), 1, &json!({"layer": "seccomp", "what": "unshare(flags=0x10000000)", "comm": "unshare", "reason": "namespaces"}));
        assert_eq!(a.len(), 1);
        assert!(a[0].reason.contains("unshare(flags=0x10000000)"), "{}", a[0].reason);
        let a = e.feed(k("egress"), 2, &json!({"allowed": false, "host": "evil.com", "port": 443}));
        assert!(a[0].reason.contains("--allow-net evil.com:443"), "{}", a[0].reason);
        let a = e.feed(k("denial"), 3, &json!({"layer": "seccomp", "what": "mount()"}));
        assert!(a.iter().any(|x| x.rule == "sandbox-tampering-after-privilege"), "sequence: {a:?}");
    }

    #[test]
    fn every_refused_host_wide_call_is_a_privilege_attempt() {
        // The supervisor's words for these denials (cordon_sandbox::session::describe_call).
        for what in [
            "reboot()",
            "settimeofday()",
            "clock_settime()",
            "clock_adjtime()",
            "adjtimex()",
            "swapon()",
            "swapoff()",
            "syslog()",
            "socket(AF_PACKET, SOCK_RAW)",
            "socket(AF_PACKET)",
            "socket(AF_INET, SOCK_RAW)",
            "socket(AF_INET6, SOCK_RAW)",
        ] {
            let a = engine().feed(k("denial"), 1, &json!({"layer": "seccomp", "what": what}));
            assert!(a.iter().any(|x| x.rule == "privilege-attempt"), "{what}: {a:?}");
        }
        // An ordinary socket refused for its family is not one.
        let a = engine().feed(k("denial"), 1, &json!({"layer": "seccomp", "what": "socket(AF_INET)"}));
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn a_refusal_by_the_sessions_mounts_is_a_sandbox_refusal() {
        // The sensor names a mode-000 mask over a secret inside a granted tree `mounts`.
        let a = engine().feed(
            k("deny"),
            1,
            &json!({"layer": "mounts", "op": "open", "path": "/w/.env", "reason": "masked"}),
        );
        assert!(a.iter().any(|x| x.rule == "sandbox-refusal"), "{a:?}");
    }

    #[test]
    fn rates_fire_once_per_window() {
        let mut e = engine();
        let mut kills = 0;
        for i in 0..40 {
            kills += e.feed(k("denial"), i * 100, &json!({"what": "ptrace(request=16, pid=1)"})).len();
            kills += e
                .feed(k("denial"), i * 100, &json!({"what": "bpf()"}))
                .iter()
                .filter(|a| a.action == Action::Kill)
                .count();
        }
        assert!(kills >= 41, "alerts for each ptrace plus burst kills: {kills}");
    }

    #[test]
    fn normal_events_raise_nothing() {
        let mut e = engine();
        for i in 0..1000 {
            assert!(e.feed(k("egress"), i, &json!({"allowed": true, "host": "crates.io", "port": 443})).is_empty());
            assert!(e.feed(k("open"), i, &json!({"path": "/work/src/main.rs", "write": false})).is_empty());
        }
    }

    #[test]
    fn bad_rules_name_their_position() {
        let bad = "version = 1\n[[rule]]\nid = \"x\"\nkind = \"opne\"\naction = \"alert\"\nreason = \"r\"\n";
        let e = crate::load_text("r.toml", bad).expect_err("invalid");
        let d = &e.diagnostics()[0];
        assert_eq!((d.line, d.col), (4, 8), "{d}");
        let bad = "version = 1\n[[rule]]\nid = \"x\"\nkind = \"open\"\nwhen = { \"path.like\" = \"a\" }\naction = \"alert\"\nreason = \"r\"\n";
        assert!(crate::load_text("r.toml", bad).expect_err("invalid").to_string().contains("unknown operator `like`"));
        let bad = "version = 1\n[[rule]]\nid = \"x\"\nkind = \"open\"\nwhen = { \"path.in\" = \"@nope\" }\naction = \"stop\"\nreason = \"r\"\n";
        let e = crate::load_text("r.toml", bad).expect_err("invalid");
        assert_eq!(e.diagnostics().len(), 2, "{e}");
    }
}
