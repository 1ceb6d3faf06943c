//! Reading policy files and following `extends` (built-ins and relative paths), with cycle detection.

use crate::error::{Diagnostic, PolicyError, Source};
use crate::model::RawPolicy;
use crate::validate::validate;
use std::path::{Path, PathBuf};

/// One file of a policy, as read and checked.
#[derive(Debug)]
pub struct Layer {
    /// `builtin:NAME` or the file path.
    pub name: String,
    pub text: String,
    pub raw: RawPolicy,
}

/// A policy and every file it extends, base first.
#[derive(Debug)]
pub struct Loaded {
    pub layers: Vec<Layer>,
}

impl Loaded {
    /// The policy's full text, for the audit record: every layer, base first.
    pub fn full_text(&self) -> String {
        let mut s = String::new();
        for l in &self.layers {
            s.push_str(&format!("# ---- {} ----\n{}\n", l.name, l.text));
        }
        s
    }
}

/// Loads `builtin:NAME`, a bare built-in name, or a policy file path.
pub fn load(spec: &str) -> Result<Loaded, PolicyError> {
    let mut layers = Vec::new();
    let mut stack = Vec::new();
    let mut diags = Vec::new();
    load_into(spec, None, &mut stack, &mut layers, &mut diags)?;
    if diags.is_empty() {
        Ok(Loaded { layers })
    } else {
        Err(PolicyError::Invalid(diags))
    }
}

/// Parses and checks a policy given as text (used by `policy check` on stdin and by tests).
pub fn load_text(name: &str, text: &str) -> Result<Loaded, PolicyError> {
    let mut layers = Vec::new();
    let mut stack = vec![name.to_string()];
    let mut diags = Vec::new();
    let dir = Path::new(name).parent().map(Path::to_path_buf);
    add_layer(name.to_string(), text.to_string(), dir, &mut stack, &mut layers, &mut diags)?;
    if diags.is_empty() {
        Ok(Loaded { layers })
    } else {
        Err(PolicyError::Invalid(diags))
    }
}

fn load_into(
    spec: &str,
    dir: Option<&Path>,
    stack: &mut Vec<String>,
    layers: &mut Vec<Layer>,
    diags: &mut Vec<Diagnostic>,
) -> Result<(), PolicyError> {
    let builtin = spec.strip_prefix("builtin:").or_else(|| if dir.is_none() && !spec.contains('/') && !spec.ends_with(".toml") { Some(spec) } else { None });
    let (name, text, base_dir) = if let Some(b) = builtin {
        let text = crate::builtin::text(b).ok_or_else(|| PolicyError::Read {
            path: format!("builtin:{b}"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("no built-in profile named `{b}` (have: {})", crate::builtin::names().join(", "))),
        })?;
        (format!("builtin:{b}"), text.to_string(), None)
    } else {
        let p: PathBuf = match dir {
            Some(d) if Path::new(spec).is_relative() => d.join(spec),
            _ => PathBuf::from(spec),
        };
        let text = std::fs::read_to_string(&p).map_err(|e| PolicyError::Read { path: p.display().to_string(), source: e })?;
        let parent = p.parent().map(Path::to_path_buf);
        (p.display().to_string(), text, parent)
    };
    if layers.iter().any(|l| l.name == name) {
        return Ok(()); // diamond: already included
    }
    stack.push(name.clone());
    let r = add_layer(name, text, base_dir, stack, layers, diags);
    stack.pop();
    r
}

fn add_layer(
    name: String,
    text: String,
    dir: Option<PathBuf>,
    stack: &mut Vec<String>,
    layers: &mut Vec<Layer>,
    diags: &mut Vec<Diagnostic>,
) -> Result<(), PolicyError> {
    let src = Source { name: &name, text: &text };
    let raw: RawPolicy = match toml::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            diags.push(toml_diag(&src, &e));
            return Ok(());
        }
    };
    let found = validate(&raw, &src);
    let bad = !found.is_empty();
    diags.extend(found);
    if bad {
        return Ok(());
    }
    for (i, ext) in raw.extends.iter().enumerate() {
        let spec = ext.get_ref();
        let resolved = if let Some(b) = spec.strip_prefix("builtin:") {
            format!("builtin:{b}")
        } else {
            dir.as_deref().map(|d| d.join(spec)).unwrap_or_else(|| PathBuf::from(spec)).display().to_string()
        };
        if stack.contains(&resolved) {
            diags.push(src.diag(ext.span(), format!("extends[{i}]"), format!("`{spec}` extends itself (cycle: {} -> {resolved})", stack.join(" -> ")), Some("remove one of the extends entries".into())));
            continue;
        }
        let before = diags.len();
        match load_into(spec, Some(dir.as_deref().unwrap_or(Path::new("."))), stack, layers, diags) {
            Ok(()) => {}
            Err(PolicyError::Read { path, source }) => {
                diags.push(src.diag(ext.span(), format!("extends[{i}]"), format!("cannot read `{path}`: {source}"), Some("paths in extends are relative to this file".into())));
            }
            Err(e) => return Err(e),
        }
        if diags.len() > before {
            return Ok(());
        }
    }
    layers.push(Layer { name, text, raw });
    Ok(())
}

fn toml_diag(src: &Source, e: &toml::de::Error) -> Diagnostic {
    let span = e.span().unwrap_or(0..0);
    let msg = e.message().trim().to_string();
    let field = field_at(src.text, span.start);
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
    let key = if key.starts_with('[') || key.is_empty() || line.trim_start().starts_with('[') && !line.contains('=') { "" } else { key };
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}
