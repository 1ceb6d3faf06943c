//! Pinning, the defence against a server that changes a tool after it was reviewed (a "rug pull"):
//! `cordon gateway pin` writes each tool's definition and its SHA-256 into a lock file next to the
//! config (`gateway.toml` -> `gateway.lock`, pretty JSON with sorted keys, so that a diff reads);
//! when serving, a tool is listed and callable only while the server serves the very definition
//! that was pinned. Pure: no I/O but reading and writing the lock file.

use crate::mcp::Json;
use crate::GatewayError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fields of a tool's definition that are pinned: what an agent reads (name, title,
/// description), what it sends (the input schema), what it is told to expect (output schema) and
/// the hints a client may act on without asking (annotations: `readOnlyHint`, ...).
pub const PINNED_FIELDS: [&str; 6] = ["name", "title", "description", "inputSchema", "outputSchema", "annotations"];

/// The lock file's format version.
pub const VERSION: u64 = 1;

/// The lock file of a config: the same path with the extension `.lock`.
pub fn lock_path(config: &Path) -> PathBuf {
    config.with_extension("lock")
}

/// One pinned tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinned {
    pub sha256: String,
    /// Its pinned fields, keys sorted.
    pub definition: Value,
}

/// Server name -> tool name -> what was pinned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lock {
    pub servers: BTreeMap<String, BTreeMap<String, Pinned>>,
}

/// Where a served tool stands against the lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Served as pinned (the hash).
    Pinned(String),
    /// Served with another definition than the one pinned.
    Changed { pinned: Pinned, now: Pinned },
    /// Not in the lock.
    New(Pinned),
}

/// `v` with every object's keys in sorted order (whatever map serde_json was built with).
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The pinned part of a tool in its wire form, and its SHA-256 (of the compact JSON, keys sorted).
pub fn pin(tool: &Json) -> Pinned {
    use sha2::{Digest, Sha256};
    let def: Json = PINNED_FIELDS.iter().filter_map(|f| tool.get(*f).map(|v| (f.to_string(), v.clone()))).collect();
    let definition = sorted(&Value::Object(def));
    let sha256 = Sha256::digest(definition.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Pinned { sha256, definition }
}

impl Lock {
    /// Where `tool` (served by `server`) stands against this lock.
    pub fn check(&self, server: &str, tool: &Json) -> Check {
        let now = pin(tool);
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        match self.servers.get(server).and_then(|t| t.get(name)) {
            Some(p) if p.sha256 == now.sha256 => Check::Pinned(now.sha256),
            Some(p) => Check::Changed { pinned: p.clone(), now },
            None => Check::New(now),
        }
    }

    /// The lock file's text: pretty JSON, keys sorted, one tool per object.
    pub fn render(&self, config: &str) -> String {
        let servers: Json = self
            .servers
            .iter()
            .map(|(s, tools)| {
                let t: Json = tools
                    .iter()
                    .map(|(n, p)| {
                        (n.clone(), serde_json::json!({"sha256": p.sha256, "definition": p.definition.clone()}))
                    })
                    .collect();
                (s.clone(), Value::Object(t))
            })
            .collect();
        let doc = serde_json::json!({
            "about": format!(
                "cordon gateway pin: the tool definitions the servers of {config} served when pinned. A tool \
                 served with another definition is blocked; to accept it: cordon gateway pin --config {config}"
            ),
            "version": VERSION,
            "servers": servers,
        });
        let mut text = serde_json::to_string_pretty(&sorted(&doc)).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads the lock file at `path`; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Lock>, GatewayError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(GatewayError::Read { path: path.display().to_string(), err }),
        };
        Lock::parse(&text).map(Some).map_err(|why| GatewayError::Lock { path: path.display().to_string(), why })
    }

    fn parse(text: &str) -> Result<Lock, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if v.get("version").and_then(Value::as_u64) != Some(VERSION) {
            return Err(format!("`version` is not {VERSION}"));
        }
        let mut lock = Lock::default();
        let servers = v.get("servers").and_then(Value::as_object).ok_or("no `servers` object")?;
        for (s, tools) in servers {
            let tools = tools.as_object().ok_or_else(|| format!("servers.{s} is not an object"))?;
            let mut out = BTreeMap::new();
            for (n, t) in tools {
                let sha256 =
                    t.get("sha256").and_then(Value::as_str).ok_or_else(|| format!("servers.{s}.{n}.sha256"))?;
                let def = t
                    .get("definition")
                    .and_then(Value::as_object)
                    .ok_or_else(|| format!("servers.{s}.{n}.definition"))?;
                let p = pin(def);
                // A hand-edited definition would be shown as pinned while another hash decides.
                if p.sha256 != sha256 {
                    return Err(format!("servers.{s}.{n}: its sha256 is not that of its definition (edited by hand?)"));
                }
                out.insert(n.clone(), p);
            }
            lock.servers.insert(s.clone(), out);
        }
        Ok(lock)
    }

    /// Writes the lock file (a new file renamed over the old one: a reader sees one or the other).
    pub fn write(&self, path: &Path, config: &str) -> Result<(), GatewayError> {
        let tmp = path.with_extension(format!("lock.tmp.{}", std::process::id()));
        let err = |err| GatewayError::Read { path: path.display().to_string(), err };
        std::fs::write(&tmp, self.render(config)).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }
}

/// What changed between two definitions: for each pinned field that differs, before and after
/// (`null`: absent).
pub fn diff(before: &Value, after: &Value) -> Value {
    let mut d = Json::new();
    for f in PINNED_FIELDS {
        let (b, a) = (before.get(f).cloned().unwrap_or(Value::Null), after.get(f).cloned().unwrap_or(Value::Null));
        if b != a {
            d.insert(f.into(), serde_json::json!({"before": b, "after": a}));
        }
    }
    Value::Object(d)
}

/// A one-line account of a diff: `description: "a" -> "b"; inputSchema: {...} -> {...}`, each side
/// cut to `max` characters.
pub fn describe(diff: &Value, max: usize) -> String {
    let cut = |v: &Value| {
        let s = v.to_string();
        match s.char_indices().nth(max) {
            Some((i, _)) => format!("{}...", &s[..i]),
            None => s,
        }
    };
    diff.as_object()
        .map(|m| {
            m.iter().map(|(f, ba)| format!("{f}: {} -> {}", cut(&ba["before"]), cut(&ba["after"]))).collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(v: Value) -> Json {
        match v {
            Value::Object(m) => m,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order_and_ignores_unpinned_fields() {
        let a = tool(
            json!({"name": "echo", "description": "d", "inputSchema": {"type": "object", "properties": {"a": {}, "b": {}}}}),
        );
        let b = tool(
            json!({"inputSchema": {"properties": {"b": {}, "a": {}}, "type": "object"}, "description": "d", "name": "echo", "_meta": {"x": 1}}),
        );
        assert_eq!(pin(&a), pin(&b));
        let c = tool(json!({"name": "echo", "description": "d2", "inputSchema": {"type": "object"}}));
        assert_ne!(pin(&a).sha256, pin(&c).sha256);
        let d = tool(
            json!({"name": "echo", "description": "d", "inputSchema": {"type": "object", "properties": {"a": {}, "b": {}}}, "annotations": {"readOnlyHint": true}}),
        );
        assert_ne!(pin(&a).sha256, pin(&d).sha256, "annotations are pinned");
    }

    #[test]
    fn check_and_a_round_trip_through_the_file_text() {
        let echo = tool(json!({"name": "echo", "description": "d", "inputSchema": {"type": "object"}}));
        let mut lock = Lock::default();
        lock.servers.entry("py".into()).or_default().insert("echo".into(), pin(&echo));
        let back = Lock::parse(&lock.render("gw.toml")).expect("parse");
        assert_eq!(back, lock);
        assert!(matches!(back.check("py", &echo), Check::Pinned(_)));
        assert!(matches!(back.check("other", &echo), Check::New(_)));
        let changed = tool(json!({"name": "echo", "description": "evil", "inputSchema": {"type": "object"}}));
        match back.check("py", &changed) {
            Check::Changed { pinned, now } => {
                let d = diff(&pinned.definition, &now.definition);
                assert_eq!(d, json!({"description": {"before": "d", "after": "evil"}}));
                assert_eq!(describe(&d, 80), "description: \"d\" -> \"evil\"");
            }
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn a_hand_edited_definition_is_refused() {
        let echo = tool(json!({"name": "echo", "description": "d"}));
        let mut lock = Lock::default();
        lock.servers.entry("py".into()).or_default().insert("echo".into(), pin(&echo));
        let text = lock.render("gw.toml").replace("\"d\"", "\"other\"");
        assert!(Lock::parse(&text).is_err_and(|e| e.contains("edited by hand")));
        assert!(Lock::parse("{}").is_err());
    }
}
