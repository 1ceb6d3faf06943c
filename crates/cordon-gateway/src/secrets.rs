//! Secrets a server needs (`[servers.S.secrets] NAME = { file = "PATH" }` or `{ env = "VAR" }`),
//! read on the gateway's side and put in that server's environment only; and the optional scan of
//! arguments and results for well-known token formats (`scan_secrets`).

use serde_json::Value;

/// A secret's value: never printed (its Debug says only that it is one).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[secret]")
    }
}

/// One `[servers.S.secrets]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The variable it is given to the server as.
    pub name: String,
    /// Where it came from (`file /run/keys/gh`, `env GH_TOKEN`): what a record may show.
    pub from: String,
    pub value: SecretValue,
}

/// `scan_secrets`: what is done with a well-known token format in a call's arguments or result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scan {
    #[default]
    Off,
    Redact,
    Block,
}

impl Scan {
    pub fn parse(s: &str) -> Option<Scan> {
        match s {
            "off" => Some(Scan::Off),
            "redact" => Some(Scan::Redact),
            "block" => Some(Scan::Block),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scan::Off => "off",
            Scan::Redact => "redact",
            Scan::Block => "block",
        }
    }
}

/// Reads a secret file: a regular file no one but its owner can read (or write), its value the
/// text without the trailing newline.
pub fn read_file(path: &std::path::Path) -> Result<String, (String, String)> {
    use std::os::unix::fs::PermissionsExt;
    let p = path.display();
    let m = std::fs::metadata(path).map_err(|e| (format!("{p}: {e}"), "name an existing file".to_string()))?;
    if !m.is_file() {
        return Err((format!("{p} is not a regular file"), "name the file that holds the secret".into()));
    }
    if m.permissions().mode() & 0o077 != 0 {
        return Err((
            format!(
                "{p} is readable or writable by others (mode {:o}): a secret must be its owner's alone",
                m.permissions().mode() & 0o777
            ),
            format!("chmod 600 {p}"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| (format!("{p}: {e}"), "a text file".to_string()))?;
    let v = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if v.is_empty() {
        return Err((format!("{p} is empty"), "write the secret into it".into()));
    }
    Ok(v.to_string())
}

/// The well-known token formats found in `s`: (start, end, kind), in order, not overlapping.
pub fn find_tokens(s: &str) -> Vec<(usize, usize, &'static str)> {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    // (prefix, kind, the characters of its body, the body's minimum length)
    type Body = fn(u8) -> bool;
    let upper: Body = |c| c.is_ascii_uppercase() || c.is_ascii_digit();
    let alnum: Body = |c| c.is_ascii_alphanumeric();
    let alnum_: Body = |c| c.is_ascii_alphanumeric() || c == b'_';
    let dashed: Body = |c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let formats: [(&str, &str, Body, usize); 12] = [
        ("AKIA", "aws-access-key", upper, 16),
        ("ASIA", "aws-access-key", upper, 16),
        ("github_pat_", "github-token", alnum_, 22),
        ("ghp_", "github-token", alnum, 30),
        ("gho_", "github-token", alnum, 30),
        ("ghu_", "github-token", alnum, 30),
        ("ghs_", "github-token", alnum, 30),
        ("ghr_", "github-token", alnum, 30),
        ("xoxb-", "slack-token", dashed, 10),
        ("xoxp-", "slack-token", dashed, 10),
        ("xoxa-", "slack-token", dashed, 10),
        ("sk-", "api-key", dashed, 20),
    ];
    while i < b.len() {
        // Every format starts with ASCII: a position inside a multi-byte character starts none
        // (and slicing there would panic).
        if (i > 0 && word(b[i - 1])) || !s.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &s[i..];
        if let Some(after) = rest.strip_prefix("-----BEGIN ") {
            let head_end = after.find("-----").map(|e| 11 + e + 5);
            if let Some(h) = head_end.filter(|h| rest[..*h].contains("PRIVATE KEY")) {
                let end = rest[h..].find("-----END ").and_then(|e| {
                    let after = h + e + 9;
                    rest[after..].find("-----").map(|f| after + f + 5)
                });
                let end = end.unwrap_or(rest.len());
                out.push((i, i + end, "private-key"));
                i += end;
                continue;
            }
        }
        let mut hit = None;
        for (prefix, kind, body, min) in &formats {
            if rest.starts_with(prefix) {
                let n = rest.as_bytes()[prefix.len()..].iter().take_while(|c| body(**c)).count();
                if n >= *min {
                    hit = Some((prefix.len() + n, *kind));
                    break;
                }
            }
        }
        match hit {
            Some((len, kind)) => {
                out.push((i, i + len, kind));
                i += len;
            }
            None => i += 1,
        }
    }
    out
}

/// What a scan found and changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    pub count: u32,
    pub kinds: std::collections::BTreeSet<&'static str>,
}

/// Walks every string in `v`: counts the tokens in it and, when `redact`, replaces each with
/// `[redacted: KIND]`; and always replaces the values of `secrets` (the server's own) with
/// `[secret NAME]`.
pub fn scan(v: &mut Value, redact: bool, secrets: &[Secret], found: &mut Found) {
    match v {
        Value::String(s) => {
            let toks = find_tokens(s);
            found.count += toks.len() as u32;
            found.kinds.extend(toks.iter().map(|t| t.2));
            if redact && !toks.is_empty() {
                let mut out = String::with_capacity(s.len());
                let mut at = 0;
                for (a, b, kind) in toks {
                    out.push_str(&s[at..a]);
                    out.push_str(&format!("[redacted: {kind}]"));
                    at = b;
                }
                out.push_str(&s[at..]);
                *s = out;
            }
            for x in secrets {
                if x.value.0.len() >= 4 && s.contains(&x.value.0) {
                    *s = s.replace(&x.value.0, &format!("[secret {}]", x.name));
                    found.count += 1;
                    found.kinds.insert("configured-secret");
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| scan(x, redact, secrets, found)),
        Value::Object(o) => o.values_mut().for_each(|x| scan(x, redact, secrets, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_that_is_not_ascii_is_scanned_without_a_panic() {
        let gh = format!("ghp_{}", "a1".repeat(18));
        for t in ["é x", "😀", "naïve café ☕ 日本語", &format!("é{gh}"), &format!("日本 {gh} ☕")] {
            let found = find_tokens(t);
            assert_eq!(found.len(), usize::from(t.contains("ghp_")), "{t}: {found:?}");
        }
    }

    #[test]
    fn well_known_formats_are_found_inside_text_and_redacted() {
        let gh = format!("ghp_{}", "a1".repeat(18));
        let text = format!(
            "key AKIAABCDEFGHIJKLMNOP and {gh}, xoxb-1234-5678-abcdef, sk-ant-api03-{}; \
             -----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY----- end",
            "x".repeat(30)
        );
        let kinds: Vec<&str> = find_tokens(&text).into_iter().map(|t| t.2).collect();
        assert_eq!(kinds, ["aws-access-key", "github-token", "slack-token", "api-key", "private-key"]);
        for clean in ["task-list", "AKIA short", "xAKIAABCDEFGHIJKLMNOP", "ghp_short", "-----BEGIN CERTIFICATE-----"] {
            assert!(find_tokens(clean).is_empty(), "{clean}");
        }
        let secret = Secret { name: "GH".into(), from: "env X".into(), value: SecretValue("hunter2-value".into()) };
        let mut v = json!({"content": [{"type": "text", "text": text}], "other": "has hunter2-value in it"});
        let mut f = Found::default();
        scan(&mut v, true, &[secret], &mut f);
        assert_eq!(f.count, 6);
        let out = v.to_string();
        assert!(!out.contains(&gh) && !out.contains("AKIAABCD") && !out.contains("hunter2-value"), "{out}");
        assert!(
            out.contains("[redacted: github-token]") && out.contains("[secret GH]") && out.contains(" end"),
            "{out}"
        );
        assert_eq!(format!("{:?}", SecretValue("x".into())), "[secret]");
    }
}
