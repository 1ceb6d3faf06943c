//! The session's cgroup v2 directory as the kernel's filter sees it: its id (the directory's inode)
//! and its depth below the v2 root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts).
/// This process's mount table.
pub fn mount_table() -> Vec<cordon_policy::mountinfo::MountEntry> {
    cordon_policy::mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

pub fn v2_root() -> Option<PathBuf> {
    mount_table().into_iter().find(|m| m.fstype == "cgroup2").map(|m| m.point)
}

#[derive(Debug, Clone)]
pub struct Target {
    pub dir: PathBuf,
    pub id: u64,
    pub level: u32,
}

pub fn target(dir: &Path) -> Result<Target, String> {
    let root = v2_root().ok_or("no cgroup v2 hierarchy is mounted (the sensor filters sessions by their v2 cgroup)")?;
    let rel = dir
        .strip_prefix(&root)
        .map_err(|_| format!("{} is not inside the cgroup v2 hierarchy at {}", dir.display(), root.display()))?;
    let md = std::fs::metadata(dir).map_err(|e| format!("cgroup {}: {e}", dir.display()))?;
    Ok(Target { dir: dir.to_path_buf(), id: md.ino(), level: rel.components().count() as u32 })
}

/// The v2 cgroup of a session by its full id: `<v2 root>/cordon/<session>`. The id is a name in
/// that directory, never a path: `..` or `a/b` name no session.
pub fn session_dir(session: &str) -> Option<PathBuf> {
    if session.is_empty() || session.contains('/') || session == "." || session == ".." {
        return None;
    }
    let d = v2_root()?.join("cordon").join(session);
    d.is_dir().then_some(d)
}

/// The ids of the sessions that have a cgroup now (the directories under `<v2 root>/cordon/`), sorted.
pub fn running_sessions() -> Vec<String> {
    let Some(root) = v2_root() else { return vec![] };
    let mut v: Vec<String> = std::fs::read_dir(root.join("cordon"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}
