//! Rule files: TOML, checked with positions.

use crate::error::RulesError;
use cordon_policy::error::{Diagnostic, Source};
use cordon_schema::{Action, Subject};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned as S;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Option<S<i64>>,
    #[serde(default)]
    macros: BTreeMap<String, S<Vec<String>>>,
    #[serde(default, rename = "rule")]
    rules: Vec<S<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: S<String>,
    kind: S<String>,
    #[serde(default)]
    when: BTreeMap<String, S<toml::Value>>,
    rate: Option<S<RawRate>>,
    after: Option<S<String>>,
    within: Option<S<String>>,
    action: S<String>,
    reason: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    count: S<i64>,
    window: S<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Eq,
    Ne,
    In,
    Prefix,
    Suffix,
    Contains,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cond {
    pub field: String,
    pub op: Op,
    /// Any of these (a list written in the rule or a macro).
    pub values: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rule {
    pub id: String,
    pub kind: Subject,
    pub conds: Vec<Cond>,
    pub rate: Option<(u32, Duration)>,
    pub after: Option<(String, Duration)>,
    pub action: Action,
    pub reason: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleSet {
    pub sources: Vec<String>,
    pub rules: Vec<Rule>,
}

/// `builtin:NAME` or a file.
pub fn load(spec: &str) -> Result<RuleSet, RulesError> {
    if let Some(n) = spec.strip_prefix("builtin:") {
        let t = crate::builtin(n).ok_or_else(|| RulesError::UnknownBuiltin { name: n.into() })?;
        return load_text(spec, t);
    }
    // Same limits as policy files: at most 1 MiB of UTF-8 from a regular file, never a fifo.
    let t = cordon_policy::load::read_file(std::path::Path::new(spec))?;
    load_text(spec, &t)
}

/// The `{field}` placeholders of a reason template.
pub fn placeholders(reason: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut rest = reason;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else { break };
        out.push(&after[..j]);
        rest = &after[j + 1..];
    }
    out
}

fn to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

pub fn load_text(name: &str, text: &str) -> Result<RuleSet, RulesError> {
    let src = Source::new(name, text);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let d = src.diag(
            e.span().unwrap_or(0..0),
            "",
            e.message().trim(),
            Some("see `builtin:agent` (cordon rules show builtin:agent) for the syntax".into()),
        );
        RulesError::Invalid(vec![d])
    })?;
    let mut out: Vec<Diagnostic> = vec![];
    match &raw.version {
        None => out.push(src.diag(0..0, "version", "missing `version`", Some("add `version = 1`".into()))),
        Some(v) if *v.get_ref() != 1 => out.push(src.diag(
            v.span(),
            "version",
            format!("unsupported version {}", v.get_ref()),
            Some("this cordon reads version 1".into()),
        )),
        _ => {}
    }
    let mut rules = vec![];
    for (i, r) in raw.rules.iter().enumerate() {
        let r = r.get_ref();
        let f = format!("rule[{i}]");
        let kind = Subject::parse(r.kind.get_ref());
        if kind.is_none() {
            out.push(src.diag(
                r.kind.span(),
                format!("{f}.kind"),
                format!("unknown event kind `{}`", r.kind.get_ref()),
                Some(format!("kinds: {}", crate::kinds().join(", "))),
            ));
        }
        let fields = kind.and_then(Subject::fields);
        let action = match r.action.get_ref().as_str() {
            "alert" => Action::Alert,
            "kill" => Action::Kill,
            other => {
                out.push(src.diag(
                    r.action.span(),
                    format!("{f}.action"),
                    format!("unknown action `{other}`"),
                    Some("use \"alert\" or \"kill\"".into()),
                ));
                Action::Alert
            }
        };
        if let (Some(kind), Some(known)) = (kind, &fields) {
            for key in placeholders(r.reason.get_ref()) {
                let top = key.split('.').next().unwrap_or("");
                if !known.iter().any(|x| x == top) {
                    out.push(src.diag(
                        r.reason.span(),
                        format!("{f}.reason"),
                        format!("`{{{key}}}`: `{kind}` has no field `{top}`"),
                        Some(format!("fields of `{kind}`: {}", known.join(", "))),
                    ));
                }
            }
        }
        if r.reason.get_ref().trim().is_empty() {
            out.push(src.diag(
                r.reason.span(),
                format!("{f}.reason"),
                "empty reason",
                Some("say what was flagged and how a legitimate task could go on".into()),
            ));
        }
        let mut conds = vec![];
        for (k, v) in &r.when {
            let Some((field, op)) = k.rsplit_once('.') else {
                out.push(src.diag(
                    v.span(),
                    format!("{f}.when.{k}"),
                    format!("condition `{k}` has no operator"),
                    Some(
                        "write FIELD.OP, e.g. \"what.prefix\"; operators: eq, ne, in, prefix, suffix, contains, gt, lt".into(),
                    ),
                ));
                continue;
            };
            if let (Some(kind), Some(known)) = (kind, &fields) {
                let top = field.split('.').next().unwrap_or("");
                if !known.iter().any(|x| x == top) {
                    out.push(src.diag(
                        v.span(),
                        format!("{f}.when.{k}"),
                        format!("`{kind}` has no field `{top}`"),
                        Some(format!("fields of `{kind}`: {}", known.join(", "))),
                    ));
                    continue;
                }
            }
            let op = match op {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "in" => Op::In,
                "prefix" => Op::Prefix,
                "suffix" => Op::Suffix,
                "contains" => Op::Contains,
                "gt" => Op::Gt,
                "lt" => Op::Lt,
                other => {
                    out.push(src.diag(
                        v.span(),
                        format!("{f}.when.{k}"),
                        format!("unknown operator `{other}`"),
                        Some("eq, ne, in, prefix, suffix, contains, gt, lt".into()),
                    ));
                    continue;
                }
            };
            let values = match v.get_ref() {
                toml::Value::String(s) if s.starts_with('@') => match raw.macros.get(&s[1..]) {
                    Some(m) => m.get_ref().iter().map(|x| serde_json::Value::String(x.clone())).collect(),
                    None => {
                        out.push(src.diag(
                            v.span(),
                            format!("{f}.when.{k}"),
                            format!("unknown macro `{s}`"),
                            Some(format!(
                                "macros: {}",
                                raw.macros.keys().map(|m| format!("@{m}")).collect::<Vec<_>>().join(", ")
                            )),
                        ));
                        continue;
                    }
                },
                toml::Value::Array(a) => a.iter().map(to_json).collect(),
                other => vec![to_json(other)],
            };
            conds.push(Cond { field: field.to_string(), op, values });
        }
        let rate = r.rate.as_ref().and_then(|rt| {
            let x = rt.get_ref();
            let c = *x.count.get_ref();
            if !(1..=1_000_000).contains(&c) {
                out.push(src.diag(
                    x.count.span(),
                    format!("{f}.rate.count"),
                    format!("{c} is out of range 1-1000000"),
                    None,
                ));
                return None;
            }
            match cordon_policy::units::parse_duration(x.window.get_ref()) {
                Ok(d) if d.as_secs() > 0 => Some((c as u32, d)),
                Ok(_) => {
                    out.push(src.diag(x.window.span(), format!("{f}.rate.window"), "window must be at least 1s", None));
                    None
                }
                Err(m) => {
                    out.push(src.diag(x.window.span(), format!("{f}.rate.window"), m, Some("e.g. \"10s\"".into())));
                    None
                }
            }
        });
        let after = match (&r.after, &r.within) {
            (Some(a), Some(w)) => match cordon_policy::units::parse_duration(w.get_ref()) {
                Ok(d) => Some((a.get_ref().clone(), d)),
                Err(m) => {
                    out.push(src.diag(w.span(), format!("{f}.within"), m, None));
                    None
                }
            },
            (Some(a), None) => {
                out.push(src.diag(
                    a.span(),
                    format!("{f}.after"),
                    "`after` needs `within`",
                    Some("e.g. within = \"60s\"".into()),
                ));
                None
            }
            (None, Some(w)) => {
                out.push(src.diag(w.span(), format!("{f}.within"), "`within` needs `after`", None));
                None
            }
            (None, None) => None,
        };
        let Some(kind) = kind else { continue };
        rules.push(Rule {
            id: r.id.get_ref().clone(),
            kind,
            conds,
            rate,
            after,
            action,
            reason: r.reason.get_ref().clone(),
        });
    }
    for (i, r) in raw.rules.iter().enumerate() {
        if let Some(a) = &r.get_ref().after {
            if !rules.iter().any(|x| &x.id == a.get_ref()) {
                out.push(src.diag(
                    a.span(),
                    format!("rule[{i}].after"),
                    format!("no rule `{}` in this file", a.get_ref()),
                    None,
                ));
            }
        }
        if rules.iter().filter(|x| x.id == *r.get_ref().id.get_ref()).count() > 1 {
            out.push(src.diag(
                r.get_ref().id.span(),
                format!("rule[{i}].id"),
                format!("duplicate rule id `{}`", r.get_ref().id.get_ref()),
                None,
            ));
        }
    }
    if out.is_empty() {
        Ok(RuleSet { sources: vec![name.to_string()], rules })
    } else {
        Err(RulesError::Invalid(out))
    }
}
