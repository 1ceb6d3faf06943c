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
        Format::Npmrc => Ok(lines(text, npmrc_secret)),
        Format::Pypirc => Ok(lines(text, |_, key, _| key.eq_ignore_ascii_case("password"))),
        Format::GitConfig => Ok(gitconfig(text)),
        Format::CargoToml => cargo(text),
    }
}

/// `key = value` lines of an INI-like file; `secret(section, key, value)` says which go.
fn lines(text: &str, secret: impl Fn(&str, &str, &str) -> bool) -> Sanitized {
    let mut out = String::new();
    let mut removed = vec![];
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_string();
        }
        if let Some((k, v)) = t.split_once('=').filter(|_| !t.starts_with(';') && !t.starts_with('#')) {
            let key = k.trim();
            if secret(&section, key, v.trim()) {
                removed.push(if section.is_empty() { key.to_string() } else { format!("{section}.{key}") });
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    Sanitized { text: out, removed }
}

fn npmrc_secret(_: &str, key: &str, _: &str) -> bool {
    let last = key.rsplit(':').next().unwrap_or(key).to_ascii_lowercase();
    matches!(last.as_str(), "_authtoken" | "_auth" | "_password" | "password" | "certfile" | "keyfile")
}

/// A URL with a password in it (`https://user:secret@host/`).
fn url_with_password(v: &str) -> bool {
    v.split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|auth| auth.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':')))
}

fn gitconfig(text: &str) -> Sanitized {
    let mut out = String::new();
    let mut removed = vec![];
    let mut in_credential = false;
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_start_matches('[').split(']').next().unwrap_or("").trim().to_string();
            let name = section.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or("");
            // A credential section goes whole, and so does one named by a URL with a password.
            in_credential = name.eq_ignore_ascii_case("credential") || url_with_password(&section);
            if in_credential {
                removed.push(if url_with_password(&section) {
                    format!("[{name} \"<a URL with a password>\"]")
                } else {
                    format!("[{section}]")
                });
                continue;
            }
        } else if in_credential {
            continue;
        } else if let Some((k, v)) = t.split_once('=') {
            let key = k.trim();
            let secret =
                key.eq_ignore_ascii_case("extraheader") || url_with_password(v.trim()) || url_with_password(&section);
            if secret && !t.starts_with('#') && !t.starts_with(';') {
                removed.push(format!("{section}.{key}"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    Sanitized { text: out, removed }
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
    fn only_known_files_have_a_format() {
        assert_eq!(format_of("~/.npmrc"), Some(Format::Npmrc));
        assert_eq!(format_of("$HOME/.gitconfig"), Some(Format::GitConfig));
        assert_eq!(format_of("~/.ssh/config"), None);
    }
}
