//! One policy file's text into the model, with every syntax error, type error and unknown field
//! reported, not only the first the parser meets.
//!
//! Syntax errors: the TOML parser recovers and lists them all. Type errors and unknown fields: serde
//! stops at the first, and in its own (alphabetical) order, so when the whole file does not
//! deserialize, each leaf value is deserialized alone, wrapped in its own tables, which finds the
//! problem of each leaf wherever it is. The entries at fault are then cut from the document, and the
//! rest deserialized, so that the values around a mistake are still checked. Linear in the file.

use crate::error::{Diagnostic, Source};
use crate::model::RawPolicy;
use serde::Deserialize;
use std::collections::HashSet;
use std::ops::Range;
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

/// Parses and deserializes one policy file. The model is `None` when the file has syntax errors, or a
/// mistake that cutting entries did not isolate; the diagnostics are in the order found.
pub(crate) fn parse(src: &Source) -> (Option<RawPolicy>, Vec<Diagnostic>) {
    let (root, errors) = DeTable::parse_recoverable(src.text);
    if !errors.is_empty() {
        return (None, errors.iter().map(|e| toml_diag(src, e)).collect());
    }
    if let Ok(raw) = RawPolicy::deserialize(toml::de::Deserializer::from(root)) {
        return (Some(raw), vec![]);
    }
    // The slow path, for a file with mistakes: parse again (the tree was consumed) and look at each leaf.
    let (mut root, _) = DeTable::parse_recoverable(src.text);
    let mut found = Found { src, diags: vec![], seen: HashSet::new(), cut: HashSet::new() };
    let mut path = vec![];
    for (k, v) in root.get_ref().iter() {
        path.push(Node { step: Step::Key(k.get_ref().to_string()), key: Some(k.clone()), span: v.span() });
        visit(v, &mut path, root.span(), &mut found);
        path.pop();
    }
    let Found { mut diags, mut seen, cut, .. } = found;
    prune_table(root.get_mut(), &mut vec![], &cut);
    match RawPolicy::deserialize(toml::de::Deserializer::from(root)) {
        Ok(raw) => (Some(raw), diags),
        Err(e) => {
            if seen.insert((e.span().unwrap_or(0..0).start, e.message().to_string())) {
                diags.push(toml_diag(src, &e));
            }
            (None, diags)
        }
    }
}

/// One step from the document's root.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// A value on the way from the root to a leaf: how it is reached, its key as written, its span.
struct Node<'i> {
    step: Step,
    key: Option<Spanned<std::borrow::Cow<'i, str>>>,
    span: Range<usize>,
}

struct Found<'a> {
    src: &'a Source<'a>,
    diags: Vec<Diagnostic>,
    /// (offset, message) of each diagnostic, so that a mistake shared by many leaves (an unknown
    /// table with many keys) is reported once.
    seen: HashSet<(usize, String)>,
    /// Paths of the entries to cut before the final deserialization.
    cut: HashSet<Vec<Step>>,
}

/// Walks to every leaf (a scalar, or an empty table or array) and checks it alone.
fn visit<'i>(v: &Spanned<DeValue<'i>>, path: &mut Vec<Node<'i>>, root_span: Range<usize>, found: &mut Found) {
    match v.get_ref() {
        DeValue::Table(t) if !t.is_empty() => {
            for (k, c) in t.iter() {
                path.push(Node { step: Step::Key(k.get_ref().to_string()), key: Some(k.clone()), span: c.span() });
                visit(c, path, root_span.clone(), found);
                path.pop();
            }
        }
        DeValue::Array(a) if !a.is_empty() => {
            for (i, c) in a.iter().enumerate() {
                path.push(Node { step: Step::Index(i), key: None, span: c.span() });
                visit(c, path, root_span.clone(), found);
                path.pop();
            }
        }
        _ => check_leaf(v, path, root_span, found),
    }
}

/// Deserializes the document made of this one leaf and its ancestors, each with only this child.
fn check_leaf(leaf: &Spanned<DeValue>, path: &[Node], root_span: Range<usize>, found: &mut Found) {
    let mut v = leaf.clone();
    for i in (1..path.len()).rev() {
        let parent = path[i - 1].span.clone();
        v = match &path[i].key {
            Some(k) => {
                let mut t = DeTable::new();
                t.insert(k.clone(), v);
                Spanned::new(parent, DeValue::Table(t))
            }
            None => {
                let mut a = DeArray::new();
                a.push(v);
                Spanned::new(parent, DeValue::Array(a))
            }
        };
    }
    let mut root = DeTable::new();
    if let Some(k) = path.first().and_then(|n| n.key.clone()) {
        root.insert(k, v);
    }
    let Err(e) = RawPolicy::deserialize(toml::de::Deserializer::from(Spanned::new(root_span, root))) else {
        return;
    };
    let span = e.span().unwrap_or(0..0);
    // The deepest entry the error points into: its key (an unknown field) or its value.
    let at = |n: &Node| n.span.contains(&span.start) || n.key.as_ref().is_some_and(|k| k.span().contains(&span.start));
    let entry = path.iter().rposition(at).map(|i| &path[..=i]);
    if found.seen.insert((span.start, e.message().to_string())) {
        let field = entry.map(field_name);
        found.diags.push(diag(found.src, &e, field));
    }
    if let Some(entry) = entry {
        found.cut.insert(entry.iter().map(|n| n.step.clone()).collect());
    }
}

/// `fs.read[2]`, `tools.x.command`: the dotted name validation errors use too.
fn field_name(path: &[Node]) -> String {
    let mut s = String::new();
    for n in path {
        match &n.step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn prune_table(t: &mut DeTable, path: &mut Vec<Step>, cut: &HashSet<Vec<Step>>) {
    let mut gone = vec![];
    for (k, v) in t.iter_mut() {
        path.push(Step::Key(k.get_ref().to_string()));
        if cut.contains(path) {
            gone.push(k.get_ref().to_string());
        } else {
            prune_value(v.get_mut(), path, cut);
        }
        path.pop();
    }
    for k in gone {
        t.remove(k.as_str());
    }
}

fn prune_value(v: &mut DeValue, path: &mut Vec<Step>, cut: &HashSet<Vec<Step>>) {
    match v {
        DeValue::Table(t) => prune_table(t, path, cut),
        DeValue::Array(a) => {
            let items = std::mem::replace(a, DeArray::new());
            for (i, mut item) in items.into_iter().enumerate() {
                path.push(Step::Index(i));
                if !cut.contains(path) {
                    prune_value(item.get_mut(), path, cut);
                    a.push(item);
                }
                path.pop();
            }
        }
        _ => {}
    }
}

fn toml_diag(src: &Source, e: &toml::de::Error) -> Diagnostic {
    diag(src, e, None)
}

/// A diagnostic for a TOML or type error; `field` when known, else guessed from the text.
fn diag(src: &Source, e: &toml::de::Error, field: Option<String>) -> Diagnostic {
    let span = e.span().unwrap_or(0..0);
    let msg = e.message().trim().to_string();
    let field = field.unwrap_or_else(|| field_at(src.text, span.start));
    let hint = if msg.contains("unknown field") {
        Some("check the spelling; `cordon policy explain builtin:agent` shows every section".to_string())
    } else if msg.contains("invalid type") {
        Some("check the value's type: paths and sizes are strings in quotes, counts are numbers".to_string())
    } else if msg.contains("duplicate key") {
        Some("each key may appear once per table".to_string())
    } else {
        Some("see the TOML syntax at the position shown".to_string())
    };
    src.diag(span, field, msg, hint)
}

/// Best-effort name of the key at `offset`: the `[table]` header above it plus the key on its line.
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let upto = text.get(..offset).unwrap_or("");
    let mut table = String::new();
    for line in upto.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let line_start = upto.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split('=').next().unwrap_or("").trim();
    let key = if key.starts_with('[') || key.is_empty() || line.trim_start().starts_with('[') && !line.contains('=') {
        ""
    } else {
        key
    };
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}
