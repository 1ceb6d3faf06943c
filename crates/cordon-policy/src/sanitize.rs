//! Configuration files that mix settings with secrets (`fs.sanitize`): the session reads a copy with
//! the secret keys removed, instead of losing the settings with the secrets (a hidden `~/.npmrc`
//! silently sent npm to the public registry). Pure text in, text out; the session stages the copy.
//! Only formats cordon knows are accepted; a file that does not parse stays hidden whole.

/// How a file is read and which keys are secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// `~/.npmrc`: `key=value` lines; auth keys, also scoped (`//registry/:_authToken`).
    Npmrc,
    /// `~/.pypirc`: INI; `password` in any section.
    Pypirc,
    /// `~/.cargo/config.toml`: TOML; any `token` key (`[registry]`, `[registries.NAME]`).
    CargoToml,
    /// `~/.gitconfig`, `~/.config/git/config`: git's INI; `[credential]` sections, `extraHeader`
    /// values, passwords in URLs.
    GitConfig,
}

/// The files cordon can sanitize, as a policy names them.
pub const KNOWN: &[(&str, Format)] = &[
    ("~/.npmrc", Format::Npmrc),
    ("~/.pypirc", Format::Pypirc),
    ("~/.cargo/config.toml", Format::CargoToml),
    ("~/.cargo/config", Format::CargoToml),
    ("~/.gitconfig", Format::GitConfig),
    ("~/.config/git/config", Format::GitConfig),
];

/// The format of a policy entry, by the name it is known under.
pub fn format_of(entry: &str) -> Option<Format> {
    let e = entry.strip_prefix("$HOME").map(|r| format!("~{r}")).unwrap_or_else(|| entry.to_string());
    KNOWN.iter().find(|(k, _)| *k == e).map(|(_, f)| *f)
}

pub fn known_names() -> String {
    KNOWN.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// The copy the session reads, and what was taken out (key names, never values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    pub text: String,
    pub removed: Vec<String>,
}

/// Removes the secrets of `text`; Err when it cannot be read as `format` (the file then stays hidden).
pub fn sanitize(format: Format, text: &str) -> Result<Sanitized, String> {
    match format {
        Format::Npmrc => Ok(ini(text, NPMRC, |_, key, v| secret_key(key) || url_with_userinfo(v))),
        Format::Pypirc => Ok(ini(text, PYPIRC, |_, key, v| secret_key(key) || url_with_userinfo(v))),
        Format::GitConfig => Ok(ini(text, GITCONFIG, |_, key, v| {
            secret_key(key) || key.eq_ignore_ascii_case("extraheader") || url_with_userinfo(v)
        })),
        Format::CargoToml => cargo(text),
    }
}

/// How a dialect of INI is written. Everything a reader of the dialect would join into one
/// entry is judged as one, so a secret cannot hide on a continuation line.
struct Dialect {
    /// `key: value` as well as `key = value` (Python's configparser).
    colon: bool,
    /// A line ending in `\` goes on (git).
    backslash: bool,
    /// An indented line after an entry goes on (configparser).
    indent: bool,
    /// `[section] key = value` on one line (git).
    inline_section: bool,
    /// Sections whose entries all go (git's `[credential]`, a URL with userinfo as subsection).
    drop_section: fn(&str) -> bool,
}

const NPMRC: Dialect =
    Dialect { colon: false, backslash: false, indent: false, inline_section: false, drop_section: |_| false };
const PYPIRC: Dialect =
    Dialect { colon: true, backslash: false, indent: true, inline_section: false, drop_section: |_| false };
const GITCONFIG: Dialect = Dialect {
    colon: false,
    backslash: true,
    indent: false,
    inline_section: true,
    drop_section: |s| {
        let name = s.split(|c: char| c.is_whitespace() || c == '"' || c == '.').next().unwrap_or("");
        name.eq_ignore_ascii_case("credential") || url_with_userinfo(s)
    },
};

/// A key whose value is a credential by its name: tokens, passwords, secrets, auth, private keys.
fn secret_key(key: &str) -> bool {
    let k = key.trim().trim_matches('"').to_ascii_lowercase();
    let last = k.rsplit([':', '.']).next().unwrap_or(&k);
    ["token", "pass", "secret", "auth", "credential", "private"].iter().any(|w| last.contains(w))
        || matches!(last, "key" | "keyfile" | "_key")
}

/// A URL with userinfo (`https://TOKEN@host`, `https://user:secret@host`).
fn url_with_userinfo(v: &str) -> bool {
    v.split("://").skip(1).any(|rest| rest.split(['/', '?', '#']).next().is_some_and(|auth| auth.contains('@')))
}

/// The lines of one entry: the first, and the continuation lines the dialect joins to it.
fn entry_len(lines: &[&str], d: &Dialect) -> usize {
    let mut n = 1;
    let mut last = lines[0];
    while n < lines.len() {
        let cont_bs = d.backslash && last.trim_end().ends_with('\\');
        let cont_ind = d.indent && lines[n].starts_with([' ', '\t']) && !lines[n].trim().is_empty();
        if !(cont_bs || cont_ind) {
            break;
        }
        last = lines[n];
        n += 1;
    }
    n
}

/// `[section]` headers and `key = value` entries; `secret(section, key, value)` says which go.
fn ini(text: &str, d: Dialect, secret: impl Fn(&str, &str, &str) -> bool) -> Sanitized {
    let lines: Vec<&str> = text.lines().collect();
    let (mut out, mut removed) = (String::new(), vec![]);
    let (mut section, mut dropping) = (String::new(), false);
    let mut i = 0;
    while i < lines.len() {
        let n = entry_len(&lines[i..], &d);
        let whole: Vec<&str> = lines[i..i + n].to_vec();
        i += n;
        let t = whole[0].trim();
        let mut body = t;
        if t.starts_with('[') {
            let close = t.find(']').unwrap_or(t.len());
            section = t[1..close].trim().to_string();
            dropping = (d.drop_section)(&section);
            if dropping {
                let name = section.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or("");
                removed.push(if url_with_userinfo(&section) {
                    format!("[{name} \"<a URL with userinfo>\"]")
                } else {
                    format!("[{section}]")
                });
                continue;
            }
            body = if d.inline_section { t.get(close + 1..).unwrap_or("").trim() } else { "" };
            if body.is_empty() {
                push(&mut out, &whole);
                continue;
            }
        } else if dropping {
            continue;
        }
        if body.is_empty() || body.starts_with(['#', ';']) {
            push(&mut out, &whole);
            continue;
        }
        let cut = body.find(|c| c == '=' || (d.colon && c == ':'));
        // A key with a colon in it (npm's `//host/:_authToken`) keeps its colon.
        let cut = if d.colon { cut } else { body.find('=') };
        let (key, value) = match cut {
            Some(c) => (body[..c].trim(), body[c + 1..].trim()),
            None => (body, ""),
        };
        let joined = whole.join("\n");
        // A flag (`always-auth = true`) is no credential, whatever its name.
        let flag = whole.len() == 1 && matches!(value.to_ascii_lowercase().as_str(), "true" | "false");
        if !flag && (secret(&section, key, value) || secret(&section, key, &joined)) {
            let key = key.trim_matches('"');
            removed.push(if section.is_empty() { key.to_string() } else { format!("{section}.{key}") });
            if t.starts_with('[') {
                // `[section] key = secret`: the header stays, the entry goes.
                out.push_str(&format!("[{section}]\n"));
            }
            continue;
        }
        push(&mut out, &whole);
    }
    Sanitized { text: out, removed }
}

fn push(out: &mut String, lines: &[&str]) {
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
}

fn cargo(text: &str) -> Result<Sanitized, String> {
    let mut doc: toml::Table =
        toml::from_str(text).map_err(|e| format!("not TOML cordon can read: {}", e.message()))?;
    let mut removed = vec![];
    strip_tokens(&mut doc, "", &mut removed);
    if removed.is_empty() {
        // Nothing secret: the file as it is, comments and all.
        return Ok(Sanitized { text: text.to_string(), removed });
    }
    let text = toml::to_string(&doc).map_err(|e| e.to_string())?;
    Ok(Sanitized { text, removed })
}

fn strip_tokens(t: &mut toml::Table, at: &str, removed: &mut Vec<String>) {
    let keys: Vec<String> = t.keys().cloned().collect();
    for k in keys {
        let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
        if k == "token" {
            t.remove(&k);
            removed.push(path);
        } else if let Some(toml::Value::Table(sub)) = t.get_mut(&k) {
            strip_tokens(sub, &path, removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npmrc_keeps_the_registry_and_loses_every_kind_of_auth() {
        let s = sanitize(
            Format::Npmrc,
            "registry=https://npm.corp/\n//npm.corp/:_authToken=SECRET1\n_auth = SECRET2\n; comment=x\nalways-auth=true\n",
        )
        .expect("ok");
        assert!(s.text.contains("registry=https://npm.corp/") && s.text.contains("always-auth=true"));
        assert!(s.text.contains("; comment=x"));
        assert!(!s.text.contains("SECRET"), "{}", s.text);
        assert_eq!(s.removed, ["//npm.corp/:_authToken", "_auth"]);
    }

    #[test]
    fn pypirc_loses_passwords_in_every_section() {
        let s = sanitize(Format::Pypirc, "[distutils]\nindex-servers = corp\n[corp]\nrepository = https://pypi.corp/\nusername = me\npassword = SECRET\n").expect("ok");
        assert!(s.text.contains("repository = https://pypi.corp/") && s.text.contains("username = me"));
        assert!(!s.text.contains("SECRET"));
        assert_eq!(s.removed, ["corp.password"]);
    }

    #[test]
    fn cargo_config_loses_tokens_and_keeps_the_rest() {
        let s = sanitize(
            Format::CargoToml,
            "[registry]\ntoken = \"SECRET1\"\n[registries.corp]\nindex = \"sparse+https://crates.corp/\"\ntoken = \"SECRET2\"\n[build]\njobs = 2\n",
        )
        .expect("ok");
        assert!(!s.text.contains("SECRET"), "{}", s.text);
        assert!(s.text.contains("crates.corp") && s.text.contains("jobs = 2"));
        assert_eq!(s.removed, ["registries.corp.token", "registry.token"]);
        let plain = "# mine\n[build]\njobs = 2\n";
        assert_eq!(sanitize(Format::CargoToml, plain).expect("ok").text, plain);
        assert!(sanitize(Format::CargoToml, "[build\n").is_err());
    }

    #[test]
    fn gitconfig_loses_credentials_headers_and_passwords_in_urls() {
        let text = "[user]\n\tname = Me\n[credential]\n\thelper = !echo password=SECRET1\n[credential \"https://x\"]\n\tusername = me\n[http \"https://git.corp/\"]\n\textraHeader = Authorization: Bearer SECRET2\n[url \"https://me:SECRET3@git.corp/\"]\n\tinsteadOf = https://git.corp/\n[remote \"o\"]\n\turl = https://u:SECRET4@h/r.git\n[core]\n\teditor = vi\n";
        let s = sanitize(Format::GitConfig, text).expect("ok");
        assert!(!s.text.contains("SECRET"), "{}", s.text);
        assert!(s.text.contains("name = Me") && s.text.contains("editor = vi"));
        assert_eq!(s.removed.len(), 5, "{:?}", s.removed);
        assert!(s.removed.iter().all(|r| !r.contains("SECRET")), "names only: {:?}", s.removed);
    }

    #[test]
    fn secrets_on_continuation_lines_inline_headers_and_other_spellings_go_too() {
        let git = concat!(
            "[http] extraHeader = Authorization: Bearer S1\n",
            "[user]\n\tname = Me\n",
            "[http \"https://x/\"]\n\textraHeader = \\\n\t  Authorization: S2\n",
            "[sendemail]\n\tsmtpPass = S3\n",
            "[remote \"o\"]\n\turl = https://S4@github.com/o/r\n",
            "[url \"https://S5@git.corp/\"]\n\tinsteadOf = https://git.corp/\n",
        );
        let s = sanitize(Format::GitConfig, git).expect("ok");
        for x in ["S1", "S2", "S3", "S4", "S5"] {
            assert!(!s.text.contains(x), "{x}: {}", s.text);
        }
        assert!(s.text.contains("name = Me"), "{}", s.text);
        let py = "[corp]\nrepository = https://p/\npassword: S6\nusername = me\n[other]\npassword =\n  S7\n";
        let s = sanitize(Format::Pypirc, py).expect("ok");
        assert!(!s.text.contains("S6") && !s.text.contains("S7"), "{}", s.text);
        assert!(s.text.contains("username = me"));
        let npm = "\"//r/:_authToken\"=S8\nkey=\"-----BEGIN PRIVATE KEY-----S9\"\nregistry=https://r/\n";
        let s = sanitize(Format::Npmrc, npm).expect("ok");
        assert!(!s.text.contains("S8") && !s.text.contains("S9"), "{}", s.text);
        assert!(s.text.contains("registry=https://r/"));
    }

    #[test]
    fn only_known_files_have_a_format() {
        assert_eq!(format_of("~/.npmrc"), Some(Format::Npmrc));
        assert_eq!(format_of("$HOME/.gitconfig"), Some(Format::GitConfig));
        assert_eq!(format_of("~/.ssh/config"), None);
    }
}
