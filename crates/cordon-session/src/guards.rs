//! Workspaces cordon refuses: the workspace is made writable, so it must not be a system tree, the
//! user's home, or anything that contains them.

use crate::Result;
use std::path::{Path, PathBuf};

/// Trees whose every subdirectory is refused: writing there changes the system or cordon itself.
const WITHIN: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/run",
    "/var/lib/cordon",
    "/var/log",
    "/etc/cordon",
    // Scheduled jobs, package databases, service state, mail, caches and backups of the system.
    "/var/spool",
    "/var/cache",
    "/var/backups",
    "/var/mail",
    "/var/lib/dpkg",
    "/var/lib/apt",
    "/var/lib/systemd",
    "/var/lib/polkit-1",
    "/var/lib/sudo",
];

/// Inside the home directory: where credentials, tool configuration and autostart live (a
/// workspace there would make them writable). `@secrets` paths under `~` are refused too.
const HOME_WITHIN: &[&str] = &[".config", ".local/share", ".local/state", ".local/bin", ".ssh", ".gnupg", ".profile.d"];

/// Directories refused themselves and as ancestors (they hold other users' or the system's files),
/// while a project below them is fine (/var/lib/jenkins/workspace/app, /home/me/src/app).
const ROOTS: &[&str] =
    &["/", "/var", "/var/lib", "/var/tmp", "/tmp", "/home", "/srv", "/opt", "/root", "/mnt", "/media"];

pub fn refuse_system_workspace(ws: &Path) -> Result<()> {
    refuse_writable(ws, "the workspace", "hint: cd into a project directory or pass --workspace DIR")
}

/// Refuses a tree the session would be able to write when it is a system tree, the home directory
/// or one of its ancestors, where credentials live, or cordon's own state. `what` names the role
/// (the workspace, an --allow-write grant).
pub fn refuse_writable(ws: &Path, what: &str, hint: &str) -> Result<()> {
    for t in WITHIN {
        if ws.starts_with(t) {
            let how = if ws == Path::new(t) { "" } else { "inside " };
            bail!("refusing to use {} as {what}: it is {how}a system tree ({t}) that the session would be able to write\n  {hint}", ws.display());
        }
    }
    for home in homes() {
        let secrets = cordon_policy::paths::group("@secrets").map(|g| g.paths).unwrap_or(&[]);
        let inside = HOME_WITHIN
            .iter()
            .map(|d| home.join(d))
            .chain(secrets.iter().filter_map(|p| p.strip_prefix("~/")).map(|p| home.join(p)))
            .find(|d| ws.starts_with(d));
        if let Some(d) = inside {
            bail!("refusing to use {} as {what}: it is inside {}, where credentials and tool configuration live\n  {hint}", ws.display(), d.display());
        }
        if home == ws {
            bail!("refusing to use your home directory {} as {what}: shell rc files and tool configs would become writable\n  {hint}", ws.display());
        }
        if home.starts_with(ws) {
            bail!("refusing to use {} as {what}: it contains your home directory {}, whose shell rc files and tool configs would become writable\n  {hint}", ws.display(), home.display());
        }
    }
    for state in state_dirs() {
        if state.starts_with(ws) || ws.starts_with(&state) {
            bail!(
                "refusing to use {} as {what}: it {} cordon's own state directory {}\n  {hint}",
                ws.display(),
                if ws.starts_with(&state) { "is inside" } else { "contains" },
                state.display()
            );
        }
    }
    if let Some(r) = ROOTS.iter().find(|r| Path::new(r) == ws) {
        bail!("refusing to use {r} as {what}: it holds the system's or other users' files, all of which would become writable\n  {hint}");
    }
    Ok(())
}

/// The user's home from the password database (what `$HOME` says cannot widen or hide it), and
/// `$HOME` too when it names another directory.
fn homes() -> Vec<PathBuf> {
    let mut v = vec![];
    if let Ok(Some(u)) = nix::unistd::User::from_uid(nix::unistd::getuid()) {
        v.push(u.dir);
    }
    if let Some(h) = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute()) {
        v.push(h);
    }
    v.into_iter().map(|h| h.canonicalize().unwrap_or(h)).filter(|h| h != Path::new("/")).collect()
}

/// Where cordon keeps its state by default (the audit log's home; `/var/lib/cordon` is in WITHIN).
/// A log placed elsewhere with --audit is guarded by the check that the session cannot write it.
fn state_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = homes().into_iter().map(|h| h.join(".local/state/cordon")).collect();
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        v.push(x.join("cordon"));
    }
    v.into_iter().map(|d| d.canonicalize().unwrap_or(d)).collect()
}
