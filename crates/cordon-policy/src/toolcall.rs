//! What an agent's tool call is about to touch, read from its arguments before it runs: the files a
//! shell command names, the file an edit tool writes, the host a fetch reaches. Judged against the
//! compiled policy with [`crate::decide`], so an agent's hook can say "this would be refused, and
//! why" before the kernel refuses it. This is a reading of the call's text, not a guarantee: a
//! command can reach what it does not name (a script, a variable, a glob). The sandbox decides; this
//! only explains in advance.

use crate::compiled::{CompiledPolicy, Probe};
use crate::paths::{normalize, Context};
use std::path::{Path, PathBuf};

/// One thing the call would do, and the words of the call that say so.
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    pub probe: Probe,
    pub because: String,
}

/// A touch the policy refuses: why, and what would allow it for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub touch: Touch,
    pub reason: String,
    pub fix: Option<String>,
}

/// Words of a shell command: split on blanks and the shell's operators, quotes removed. Not a shell
/// parser: what it cannot read (substitutions, variables) it leaves as text, which then names no
/// path.
pub fn words(cmd: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = cmd.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.extend(chars.next()),
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => cur.extend(chars.next()),
            (None, c) if c.is_whitespace() => flush(&mut cur, &mut out),
            (None, ';' | '|' | '&' | '(' | ')' | '<' | '>') => {
                flush(&mut cur, &mut out);
                let mut op = c.to_string();
                while let Some(&n) = chars.peek() {
                    if matches!(n, '>' | '&' | '|') && op.len() < 2 {
                        op.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(op);
            }
            (None, c) => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// A word that names a path: absolute, from HOME, or explicitly relative.
fn path_word(w: &str) -> bool {
    (w.starts_with('/') || w.starts_with("~/") || w == "~" || w.starts_with("./") || w.starts_with("../"))
        && !w.contains("://")
}

fn resolve(w: &str, cx: &Context, cwd: &Path) -> PathBuf {
    let p = if w == "~" {
        cx.home.clone()
    } else if let Some(r) = w.strip_prefix("~/") {
        cx.home.join(r)
    } else if w.starts_with('/') {
        PathBuf::from(w)
    } else {
        cwd.join(w)
    };
    normalize(&p)
}

/// `scheme://host[:port]/...` → `host:port` (443 for https, 80 for http, else none).
fn url_target(w: &str) -> Option<String> {
    let (scheme, rest) = w.split_once("://")?;
    let port = match scheme {
        "https" | "wss" => 443,
        "http" | "ws" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return None;
    }
    Some(if hostport.starts_with('[') || hostport.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err()) {
        if hostport.starts_with('[') && hostport.contains("]:") {
            hostport.to_string()
        } else {
            format!("{hostport}:{port}")
        }
    } else {
        hostport.to_string()
    })
}

/// What a shell command names: paths after a redirection are written, paths run as a command are
/// executed, other paths are read, URLs are connected to.
pub fn shell(cmd: &str, cx: &Context, cwd: &Path) -> Vec<Touch> {
    let ws = words(cmd);
    let mut out = vec![];
    let mut command_position = true;
    for (i, w) in ws.iter().enumerate() {
        let after = ws.get(i.wrapping_sub(1)).map(String::as_str);
        if matches!(w.as_str(), ";" | "|" | "||" | "&&" | "&" | "(" | ")") {
            command_position = true;
            continue;
        }
        if w.starts_with(['<', '>']) {
            continue;
        }
        if let Some(t) = url_target(w) {
            out.push(Touch { probe: Probe::Connect(t), because: format!("`{w}`") });
        } else if path_word(w) {
            let p = resolve(w, cx, cwd);
            let probe = match after {
                Some(">" | ">>" | "&>" | ">|") => Probe::Write(p),
                _ if command_position => Probe::Exec(p),
                _ => Probe::Read(p),
            };
            out.push(Touch { probe, because: format!("`{w}`") });
        }
        // `VAR=value cmd`: still before the command's name.
        command_position = command_position && w.contains('=') && !w.starts_with('=');
    }
    out
}

/// The files an `apply_patch` body (Codex) adds, updates, deletes or moves to.
pub fn patch(body: &str, cx: &Context, cwd: &Path) -> Vec<Touch> {
    const MARKS: [&str; 4] = ["*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: "];
    body.lines()
        .filter_map(|l| MARKS.iter().find_map(|m| l.strip_prefix(m)))
        .map(|f| {
            let f = f.trim();
            let p =
                if f.starts_with('/') || f.starts_with("~/") { resolve(f, cx, cwd) } else { normalize(&cwd.join(f)) };
            Touch { probe: Probe::Write(p), because: format!("the patch's `{f}`") }
        })
        .collect()
}

/// The policy's answer for each touch it refuses, with the one-run fix where there is one.
pub fn refusals(c: &CompiledPolicy, touches: &[Touch]) -> Vec<Refusal> {
    touches
        .iter()
        .filter_map(|t| {
            let d = crate::decide::example(c, &t.probe);
            if d.allow {
                return None;
            }
            let secret = d.reason.contains("fs.deny") || d.reason.contains("fs.hide");
            let dir = |p: &Path| p.parent().unwrap_or(p).display().to_string();
            let fix = match &t.probe {
                _ if secret => None,
                Probe::Write(_) if d.reason.contains("protected") => None,
                Probe::Write(p) => Some(format!("--allow-write {}", dir(p))),
                Probe::Read(p) | Probe::Exec(p) => Some(format!("--allow-read {}", dir(p))),
                Probe::Connect(t) => Some(format!("--allow-net {t}")),
                Probe::Env(_) | Probe::Syscall(_) => None,
            };
            Some(Refusal { touch: t.clone(), reason: d.reason, fix })
        })
        .collect()
}

/// `what`'s wanted access, for words: "read", "write", "run", "connect to".
pub fn verb(p: &Probe) -> &'static str {
    match p {
        Probe::Read(_) => "read",
        Probe::Write(_) => "write",
        Probe::Exec(_) => "run",
        Probe::Connect(_) => "connect to",
        Probe::Env(_) => "see the variable",
        Probe::Syscall(_) => "call",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context {
        Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() }
    }

    #[test]
    fn words_follow_quotes_escapes_and_operators() {
        assert_eq!(words(r#"cat "a b" 'c;d' e\ f>out|wc"#), ["cat", "a b", "c;d", "e f", ">", "out", "|", "wc"]);
        assert_eq!(words("a >> b 2>&1"), ["a", ">>", "b", "2", ">&", "1"]);
        assert_eq!(words("unterminated 'quote"), ["unterminated", "quote"]);
    }

    #[test]
    fn a_command_names_reads_writes_runs_and_hosts() {
        let t =
            shell("cat ~/.ssh/id_rsa > /etc/x; /opt/tool ./a https://example.com/p", &cx(), Path::new("/home/u/ws"));
        let probes: Vec<_> = t.iter().map(|t| t.probe.clone()).collect();
        assert_eq!(
            probes,
            [
                Probe::Read("/home/u/.ssh/id_rsa".into()),
                Probe::Write("/etc/x".into()),
                Probe::Exec("/opt/tool".into()),
                Probe::Read("/home/u/ws/a".into()),
                Probe::Connect("example.com:443".into()),
            ]
        );
    }

    #[test]
    fn urls_keep_their_port_and_drop_credentials() {
        assert_eq!(url_target("http://u:p@h.example:8080/x").as_deref(), Some("h.example:8080"));
        assert_eq!(url_target("https://[::1]:9/x").as_deref(), Some("[::1]:9"));
        assert_eq!(url_target("https://[::1]/x").as_deref(), Some("[::1]:443"));
        assert_eq!(url_target("ftp://h/x"), None);
        assert_eq!(url_target("https:///x"), None);
    }

    #[test]
    fn a_patch_writes_every_file_it_names() {
        let t =
            patch("*** Begin Patch\n*** Add File: a.txt\n+x\n*** Update File: /etc/hosts\n", &cx(), Path::new("/w"));
        assert_eq!(t[0].probe, Probe::Write("/w/a.txt".into()));
        assert_eq!(t[1].probe, Probe::Write("/etc/hosts".into()));
    }
}
