//! Secrets bound at claim (`cordon devbox claim --secret NAME[=@FILE]`): environment variables of
//! that claim's exec server, so every command in the devbox inherits them, and of no other claim.
//! They travel client → daemon → holder over unix sockets and live in those processes' memory
//! only: never in the snapshot, the pool, a file of the store or the audit log (which records
//! their names). A value is never taken from the command line, where /proc/PID/cmdline and the
//! shell's history would show it.

use serde::{Deserialize, Serialize};

/// A secret's value: never printed (its Debug shows the length only), so that no `{:?}` of a
/// request or an order that carries it can put it in a log.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Value(pub String);

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<secret, {} bytes>", self.0.len())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value(s.to_string())
    }
}

/// A claim's secrets: name, value.
pub type Secrets = Vec<(String, Value)>;

/// At most this many secrets a claim.
pub const MAX_SECRETS: usize = 64;
/// At most this many bytes of names and values together (well inside one protocol message).
pub const MAX_SECRET_BYTES: usize = 48 * 1024;

/// One `--secret` flag: `NAME` takes the value of the client's environment variable NAME;
/// `NAME=@FILE` the contents of FILE (one final newline dropped). `NAME=VALUE` is refused.
pub fn from_flag(flag: &str) -> Result<(String, Value), String> {
    if flag.is_empty() || flag.starts_with('=') {
        return Err("--secret needs a NAME: --secret NAME (from the environment) or --secret NAME=@FILE".into());
    }
    let (name, value) = match flag.split_once('=') {
        None => {
            let v = std::env::var_os(flag).ok_or_else(|| {
                format!("--secret {flag}: the environment variable {flag} is not set\n  hint: export it first, or give a file: --secret {flag}=@FILE")
            })?;
            (flag, v.into_string().map_err(|_| format!("--secret {flag}: its value is not UTF-8"))?)
        }
        Some((name, file)) => {
            let Some(path) = file.strip_prefix('@') else {
                return Err(format!("--secret {name}=…: a secret's value is never taken from the command line (other users see it in /proc/PID/cmdline, and the shell keeps it)\n  hint: --secret {name} takes it from the environment variable {name}; --secret {name}=@FILE from a file"));
            };
            (name, read_file(name, path)?)
        }
    };
    check_one(name, &value).map_err(|e| format!("--secret {name}: {e}"))?;
    Ok((name.to_string(), Value(value)))
}

fn read_file(name: &str, path: &str) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("--secret {name}=@{path}: cannot read {path}: {e}"))?;
    let mut buf = Vec::new();
    f.take(MAX_SECRET_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("--secret {name}=@{path}: cannot read {path}: {e}"))?;
    if buf.len() > MAX_SECRET_BYTES {
        return Err(format!("--secret {name}=@{path}: {path} is larger than {} KiB", MAX_SECRET_BYTES / 1024));
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| format!("--secret {name}=@{path}: {path} is not UTF-8 text"))
}

/// A claim's secrets as the daemon receives them: names of the environment's form, not cordon's
/// own, each once; values without NUL; within the bounds.
pub fn check(secrets: &[(String, Value)]) -> Result<(), String> {
    if secrets.len() > MAX_SECRETS {
        return Err(format!("a claim carries {} secrets: at most {MAX_SECRETS}", secrets.len()));
    }
    // As JSON (a quote or a control character takes more than its byte), so that a claim that
    // passes fits the protocol's message beside its policy text.
    let total: usize = secrets.iter().map(|(k, v)| k.len() + json_len(&v.0)).sum();
    if total > MAX_SECRET_BYTES {
        return Err(format!("a claim's secrets are {total} bytes: at most {} KiB", MAX_SECRET_BYTES / 1024));
    }
    for (i, (k, v)) in secrets.iter().enumerate() {
        check_one(k, &v.0).map_err(|e| format!("secret {}: {e}", printable(k)))?;
        if secrets[..i].iter().any(|(x, _)| x == k) {
            return Err(format!("secret {k} is given twice"));
        }
    }
    Ok(())
}

fn check_one(name: &str, value: &str) -> Result<(), String> {
    let ok_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if !ok_name {
        return Err("not a variable name (letters, digits and _, not starting with a digit, at most 128)".into());
    }
    if name.starts_with("CORDON_") || name == "PATH" {
        return Err(format!("{name} is cordon's to set, not a secret's name"));
    }
    // The exec server (cordon, which relays each command's exit status to the audit log) runs
    // with these in its environment: nothing that makes the dynamic loader or libc run or load
    // the claimant's code in it.
    let loader = [
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RESOLV_HOST_CONF",
        "LOCALDOMAIN",
        "RES_OPTIONS",
        "NIS_PATH",
        "TZDIR",
        "TMPDIR",
        "GETCONF_DIR",
        "RUST_MIN_STACK",
    ];
    if name.starts_with("LD_") || name.starts_with("MALLOC_") || loader.contains(&name) {
        return Err(format!("{name} changes how programs load and run, the devbox's exec server too: not a secret's name\n  hint: set it in the command itself (`cordon devbox exec ID -- env {name}=… CMD`)"));
    }
    if value.contains('\0') {
        return Err("the value holds a NUL byte, which no environment variable can".into());
    }
    Ok(())
}

fn json_len(s: &str) -> usize {
    serde_json::to_string(s).map_or(s.len() * 6, |j| j.len())
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_bounds() {
        assert!(check(&[("TOKEN".into(), "x".into()), ("_A1".into(), "".into())]).is_ok());
        for bad in
            ["1A", "A-B", "", "CORDON_SESSION", "PATH", "A B", "LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CHECK_", "TZDIR"]
        {
            assert!(check(&[(bad.into(), "v".into())]).is_err(), "{bad}");
        }
        assert!(check(&[("A".into(), "a\0b".into())]).is_err());
        assert!(check(&[("A".into(), "1".into()), ("A".into(), "2".into())]).expect_err("refused").contains("twice"));
        let many: Secrets = (0..65).map(|i| (format!("S{i}"), "v".into())).collect();
        assert!(check(&many).is_err());
        assert!(check(&[("BIG".into(), Value("x".repeat(MAX_SECRET_BYTES)))]).is_err());
        // Counted as JSON: 10 KiB of control characters are 60 KiB on the wire.
        assert!(check(&[("CTL".into(), Value("\u{1}".repeat(10 * 1024)))]).is_err());
        assert_eq!(format!("{:?}", Value("hunter2".into())), "<secret, 7 bytes>");
        assert!(from_flag("TOKEN=hunter2").expect_err("refused").contains("never taken from the command line"));
        assert!(from_flag("CORDON_TEST_SURELY_UNSET_VAR").expect_err("refused").contains("is not set"));
        assert!(from_flag("T=@/nonexistent/file").expect_err("refused").contains("cannot read"));
        assert!(from_flag("T=@/dev/zero").expect_err("refused").contains("larger than"));
    }
}
