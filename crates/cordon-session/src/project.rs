//! A project's own policy: `.cordon.toml` in the workspace, used by `cordon run` when no policy is
//! named — but only while its text, with every file it extends, is the text the user trusted.
//!
//! The workspace is where the agent writes. An agent that edits `.cordon.toml` (or a file it
//! extends) to widen its next session makes the policy untrusted, and that next session refuses to
//! start until the user has read it and said so (`cordon policy trust`), as `direnv allow` does for
//! `.envrc`. The trusted digests live outside every session's view: `$XDG_CONFIG_HOME/cordon/trusted`
//! (default `~/.config/cordon/trusted`), one line per file, `SHA256 PATH`.

use crate::{Result, SessionError};
use cordon_policy::Loaded;
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The project policy's file name, in the workspace's top directory.
pub const FILE: &str = ".cordon.toml";

/// `WS/.cordon.toml` when it exists (a file, or a link to one).
pub fn find(ws: &Path) -> Option<PathBuf> {
    let p = ws.join(FILE);
    p.is_file().then_some(p)
}

/// What is trusted: the digest of the text of every layer that is a file, base first (which files
/// they are is in the texts: each names what it extends). Built-in profiles are left out: they come
/// with cordon, and an upgrade that changes one is not the project's change.
pub fn digest(loaded: &Loaded) -> String {
    let mut h = sha2::Sha256::new();
    for l in loaded.layers.iter().filter(|l| !l.name.starts_with("builtin:")) {
        h.update(l.text.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the trusted digests are kept.
pub fn store_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| Path::new(v).is_absolute()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|v| Path::new(v).is_absolute()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => bail!("cannot find where trusted project policies are kept: neither XDG_CONFIG_HOME nor HOME is an absolute path\n  hint: set HOME, or name a policy (--policy FILE, --profile NAME)"),
        },
    };
    Ok(base.join("cordon").join("trusted"))
}

/// Whether `file` (canonical) is trusted with this digest, or trusted with another one.
#[derive(Debug, PartialEq)]
pub enum Trust {
    Trusted,
    Changed,
    Never,
}

/// The store's key for a policy file: its canonical path as text. A path that is not UTF-8, or that
/// holds a control character, has none (a line break in it would write a line of the agent's choosing
/// into the store; a lossy conversion would let two files share a key).
fn key(file: &Path) -> Result<String> {
    match file.to_str() {
        Some(k) if !k.chars().any(char::is_control) => Ok(k.to_string()),
        _ => bail!(
            "the policy file {} has a path with a line break, a control character or bytes that are not UTF-8: it cannot be trusted\n  hint: rename the directories on its path",
            file.display()
        ),
    }
}

/// The file that holds `ws`'s project policy, canonical, if it is a regular file inside `ws` (a link
/// out of the workspace would let an agent borrow a policy trusted for another project).
pub fn resolve(ws: &Path, file: &Path) -> Result<PathBuf> {
    let canon = file.canonicalize().map_err(|e| crate::SessionError::Refused(format!("{}: {e}", file.display())))?;
    key(&canon)?;
    if !canon.starts_with(ws) || !canon.is_file() {
        bail!(
            "the workspace's policy {} leads to {}, which is not a file inside the workspace: not used, and nothing was run\n  hint: make .cordon.toml a regular file of the project, or name a policy (--policy FILE, --profile NAME)",
            file.display(),
            canon.display()
        );
    }
    Ok(canon)
}

/// Whether the store trusts any text for `file` (canonical): a trusted project policy that has
/// disappeared must not silently give way to the default profile. A store that exists but cannot be
/// read is an error, never "no".
pub fn was_trusted(store: &Path, file: &Path) -> Result<bool> {
    let Ok(k) = key(file) else { return Ok(false) };
    match std::fs::read(store) {
        Ok(b) => Ok(entries(&String::from_utf8_lossy(&b)).any(|(_, p)| p == k)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => bail!("cannot read the trusted project policies {}: {e}", store.display()),
    }
}

/// The store's lines as (digest, path); a line that is not `HEX64 PATH` is skipped (it trusts nothing).
fn entries(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|l| {
        let (d, p) = l.split_once(' ')?;
        (d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())).then_some((d, p))
    })
}

pub fn check(store: &Path, file: &Path, digest: &str) -> Result<Trust> {
    let text = match std::fs::read(store) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Trust::Never),
        Err(e) => bail!("cannot read the trusted project policies {}: {e}", store.display()),
    };
    let k = key(file)?;
    let mut seen = false;
    for (d, p) in entries(&text) {
        if p == k {
            if d == digest {
                return Ok(Trust::Trusted);
            }
            seen = true;
        }
    }
    Ok(if seen { Trust::Changed } else { Trust::Never })
}

/// Records `digest` as the trusted text of `file` (canonical), replacing what was trusted for it.
/// Written to a temporary file and renamed over the store, so a reader never sees half of it.
pub fn trust(store: &Path, file: &Path, digest: &str) -> Result<()> {
    let io = |what: &str, e: std::io::Error| SessionError::Refused(format!("{what} {}: {e}", store.display()));
    let dir = store.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
    let old = match std::fs::read(store) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io("cannot read", e)),
    };
    let k = key(file)?;
    let mut out: String = entries(&old).filter(|(_, p)| *p != k).map(|(d, p)| format!("{d} {p}\n")).collect();
    out.push_str(&format!("{digest} {k}\n"));
    let tmp = dir.join(format!(".trusted.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, store)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("cannot write", e)
    })
}

/// Refuses a project policy that is not trusted as it is now, saying how to look and trust it.
pub fn require_trusted(file: &Path, loaded: &Loaded) -> Result<()> {
    let store = store_path()?;
    let why = match check(&store, file, &digest(loaded))? {
        Trust::Trusted => return Ok(()),
        Trust::Changed => "it changed since you trusted it",
        Trust::Never => "you have not trusted it yet",
    };
    let f = file.display();
    bail!(
        "the workspace's policy {f} is not trusted: {why}, and the workspace is where an agent writes, so nothing was run\n  hint: read it (`cordon policy explain {f}`, `git diff -- {f}`), then `cordon policy trust {f}`; or name a policy for this run (--profile agent, --policy FILE)"
    )
}
