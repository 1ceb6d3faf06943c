//! What the running kernel and the current user can enforce. Detected in well under a millisecond
//! (a few syscalls and /proc reads) so that every `cordon run` checks afresh.

use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct CgroupCaps {
    /// Mount point of the unified (v2) hierarchy, if any.
    pub v2_mount: Option<PathBuf>,
    /// Controllers enabled at the v2 root (empty on hybrid hosts like these).
    pub v2_controllers: Vec<String>,
    /// Where this process may create a `cordon/` subtree in v2 (root: the v2 root; others: a delegated
    /// cgroup of their own, when writable).
    pub v2_base: Option<PathBuf>,
    /// v1 hierarchies that are mounted and writable: (controller, mount point).
    pub v1: Vec<(String, PathBuf)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelCaps {
    pub kernel: String,
    pub arch: String,
    pub uid: u32,
    pub is_root: bool,
    pub landlock_abi: i32,
    pub seccomp_filter: bool,
    pub seccomp_user_notif: bool,
    /// Can this user create a user namespace (needed for the other namespaces when not root)?
    pub userns: Userns,
    pub cgroup: CgroupCaps,
    /// vm.memfd_noexec (Linux 6.3+, per pid namespace).
    pub memfd_noexec: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Userns {
    NotNeeded,
    Allowed,
    /// Blocked, with the reason (sysctl name or AppArmor restriction).
    Blocked(String),
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

fn writable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
}

impl KernelCaps {
    pub fn detect() -> Self {
        let uid = nix::unistd::geteuid().as_raw();
        let is_root = uid == 0;
        let uname = nix::sys::utsname::uname().ok();
        let kernel = uname.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
        let arch = uname.as_ref().map(|u| u.machine().to_string_lossy().into_owned()).unwrap_or_default();
        let seccomp_filter =
            read("/proc/sys/kernel/seccomp/actions_avail").map(|s| s.contains("errno")).unwrap_or(false);
        let seccomp_user_notif = crate::sys::seccomp_action_available(crate::sys::SECCOMP_RET_USER_NOTIF);
        KernelCaps {
            kernel,
            arch,
            uid,
            is_root,
            landlock_abi: crate::sys::landlock_abi(),
            seccomp_filter,
            seccomp_user_notif,
            userns: if is_root { Userns::NotNeeded } else { detect_userns() },
            cgroup: detect_cgroups(is_root),
            memfd_noexec: std::path::Path::new("/proc/sys/vm/memfd_noexec").exists(),
        }
    }
}

fn detect_userns() -> Userns {
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Userns::Blocked("sysctl kernel.unprivileged_userns_clone = 0".into());
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Userns::Blocked("sysctl user.max_user_namespaces = 0".into());
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Userns::Blocked(
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)".into(),
        );
    }
    Userns::Allowed
}

pub use cordon_policy::mountinfo::MountEntry;

/// This process's mount table (empty if /proc is not mounted).
pub fn mount_table() -> Vec<MountEntry> {
    cordon_policy::mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

fn detect_cgroups(is_root: bool) -> CgroupCaps {
    let mut v2_mount = None;
    let mut v1 = Vec::new();
    for m in mount_table() {
        if m.fstype == "cgroup2" && v2_mount.is_none() {
            v2_mount = Some(m.point);
        } else if m.fstype == "cgroup" {
            for c in ["memory", "pids", "cpu"] {
                if m.options.split(',').any(|o| o == c) && !v1.iter().any(|(n, _): &(String, PathBuf)| n == c) {
                    v1.push((c.to_string(), m.point.clone()));
                }
            }
        }
    }
    let v2_controllers = v2_mount
        .as_ref()
        .and_then(|m| std::fs::read_to_string(m.join("cgroup.controllers")).ok())
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let v2_base = v2_mount.as_ref().and_then(|m| {
        if is_root {
            return writable(m).then(|| m.clone());
        }
        // A delegated cgroup: our own, when we may create children there and move processes.
        let own = read("/proc/self/cgroup")?.lines().find_map(|l| l.strip_prefix("0::").map(String::from))?;
        let dir = m.join(own.trim_start_matches('/'));
        (writable(&dir) && writable(&dir.join("cgroup.procs"))).then_some(dir)
    });
    let v1 = v1.into_iter().filter(|(_, p)| writable(p)).collect();
    CgroupCaps { v2_mount, v2_controllers, v2_base, v1 }
}
