//! Namespaces and the mount table the sandbox sees: a private /proc, /tmp, /dev/shm and /run, masks
//! over credentials that sit inside allowed trees, and read-only binds over protected workspace paths.

use super::Guarantee;
use crate::caps::{KernelCaps, Userns};
use cordon_policy::paths::is_within;
use cordon_policy::CompiledPolicy;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MountOp {
    /// Stop mount events propagating back to the host.
    MakePrivate,
    /// Every inherited mount read-only: what Landlock does not mediate (chmod, chown, utimes,
    /// xattrs, and uid 0's owner rights) cannot change anything outside the writable trees.
    ReadOnlyRoot,
    /// Bind a writable tree onto itself read-write (after ReadOnlyRoot).
    Writable { path: PathBuf },
    /// A fresh procfs for the new pid namespace.
    Proc,
    /// A fresh tmpfs; `keep` are paths beneath `target` (the workspace) bound back on top of it.
    Tmpfs { target: PathBuf, size: u64, mode: u32, keep: Vec<PathBuf> },
    /// Replace a path with an unreadable, read-only empty file or directory.
    Mask { path: PathBuf, why: String },
    /// Bind a directory onto itself so that it cannot be renamed away (its contents stay writable).
    Pin { path: PathBuf },
    /// Bind a path onto itself read-only. `create_dir`: make it first if missing (its parent exists).
    ReadOnly { path: PathBuf, create_dir: bool, why: String },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HideScan {
    pub root: PathBuf,
    pub patterns: Vec<String>,
    /// Directory names not descended into (dependency caches, VCS data).
    pub skip_dirs: Vec<String>,
    pub max_entries: usize,
    /// Credential paths: a hard link to one of their files placed in the workspace is masked too
    /// (Landlock sees only the workspace path of a hard link).
    pub secret_roots: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NsPlan {
    pub user: bool,
    pub pid: bool,
    pub mount: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
    pub uid: u32,
    pub gid: u32,
    pub mounts: Vec<MountOp>,
    pub hide: Option<HideScan>,
    pub hostname: Option<String>,
    /// Set vm.memfd_noexec = 2 in the session's pid namespace: no program runs from a memfd.
    pub memfd_noexec: bool,
}

pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;

impl NsPlan {
    pub fn clone_flags(&self) -> u64 {
        let mut f = 0;
        for (on, flag) in [
            (self.user, CLONE_NEWUSER),
            (self.pid, CLONE_NEWPID),
            (self.mount, CLONE_NEWNS),
            (self.ipc, CLONE_NEWIPC),
            (self.uts, CLONE_NEWUTS),
            (self.net, CLONE_NEWNET),
        ] {
            if on {
                f |= flag;
            }
        }
        f
    }
}

pub fn plan(p: &CompiledPolicy, caps: &KernelCaps, g: &mut Vec<Guarantee>) -> NsPlan {
    let want = p.namespaces;
    let any = want.pid || want.mount || want.ipc || want.uts || want.net;
    let userns_ok = matches!(caps.userns, Userns::Allowed | Userns::NotNeeded);
    let user = any && !caps.is_root;
    let can = !user || userns_ok;
    if user && !userns_ok {
        if let Userns::Blocked(why) = &caps.userns {
            g.push(Guarantee::degraded(
                "namespaces",
                "private pid, mount, ipc, uts and net namespaces",
                format!("unprivileged user namespaces ({why})"),
                "no namespaces: no private /proc, /tmp or network; masks are not applied",
            ));
        }
    }
    let pid = want.pid && can;
    let mount = want.mount && can;
    let net = want.net && can;
    let mut ns = NsPlan {
        user: user && can,
        pid,
        mount,
        ipc: want.ipc && can,
        uts: want.uts && can,
        net,
        uid: caps.uid,
        gid: nix::unistd::getegid().as_raw(),
        mounts: vec![],
        hide: None,
        hostname: (want.uts && can).then(|| "cordon".to_string()),
        memfd_noexec: pid && caps.memfd_noexec,
    };
    // Only root can write the per-pid-namespace sysctl; the supervisor's memfd mediation (seccomp
    // plan) is the layer that holds for everyone, this is a second one.
    ns.memfd_noexec = ns.memfd_noexec && caps.is_root;
    if pid {
        g.push(Guarantee::ok(
            "processes",
            "other processes are invisible and unreachable; the whole session ends with its command",
            "pid namespace (command runs under a private init)",
        ));
    }
    if net {
        g.push(Guarantee::ok("network", "no network beyond the session's own loopback", "empty network namespace"));
    }
    if !mount {
        if !p.fs.deny.is_empty() || !p.fs.protect.is_empty() || !p.fs.hide.is_empty() {
            g.push(Guarantee::degraded(
                "filesystem",
                "credentials inside allowed trees are masked; protected workspace paths are read-only",
                "a mount namespace",
                "only Landlock path rules apply",
            ));
        }
        return ns;
    }
    ns.mounts.push(MountOp::MakePrivate);
    ns.mounts.push(MountOp::ReadOnlyRoot);
    if pid {
        ns.mounts.push(MountOp::Proc);
    }
    let keep = |t: &str| -> Vec<PathBuf> {
        if is_within(&p.workspace, std::path::Path::new(t)) {
            vec![p.workspace.clone()]
        } else {
            vec![]
        }
    };
    ns.mounts.push(MountOp::Tmpfs { target: "/tmp".into(), size: p.fs.tmp_size, mode: 0o1777, keep: keep("/tmp") });
    ns.mounts.push(MountOp::Tmpfs {
        target: "/dev/shm".into(),
        size: p.fs.tmp_size.min(1 << 30),
        mode: 0o1777,
        keep: keep("/dev/shm"),
    });
    // Host daemons' sockets (docker, dbus, ssh and gpg agents) live here.
    ns.mounts.push(MountOp::Tmpfs { target: "/run".into(), size: 1 << 20, mode: 0o755, keep: keep("/run") });
    // HOME is replaced by an empty tmpfs with only the allowed paths bound back: unix sockets and
    // everything else in it that the policy does not name are simply not there.
    let home = &p.home;
    // What stays of HOME under its tmpfs (None: HOME is not replaced).
    let mut home_kept: Option<Vec<PathBuf>> = None;
    if home.is_dir()
        && home != std::path::Path::new("/")
        && p.workspace != *home
        && !is_within(home, std::path::Path::new("/tmp"))
    {
        let mut kept: Vec<PathBuf> =
            p.fs.rules
                .iter()
                .map(|r| r.path.clone())
                .filter(|x| x != home && is_within(x, home) && x.symlink_metadata().is_ok())
                .collect();
        kept.sort();
        kept.dedup();
        let outer: Vec<PathBuf> =
            kept.iter().filter(|x| !kept.iter().any(|y| y != *x && is_within(x, y))).cloned().collect();
        home_kept = Some(outer.clone());
        ns.mounts.push(MountOp::Tmpfs { target: home.clone(), size: 1 << 20, mode: 0o755, keep: outer });
    }
    // A path in HOME that was not bound back is already gone; there is nothing to mask.
    let gone = |x: &std::path::Path| {
        home_kept.as_ref().is_some_and(|kept| is_within(x, home) && !kept.iter().any(|k| is_within(x, k)))
    };
    // Writable trees become read-write mounts again; the private tmpfs mounts already are, and device
    // nodes stay writable on a read-only mount.
    let fresh = ["/tmp", "/dev/shm", "/run", "/dev", "/proc"];
    for r in p.fs.rules.iter().filter(|r| r.access.write) {
        let under_fresh = fresh.iter().any(|f| is_within(&r.path, std::path::Path::new(f))) && r.path != p.workspace;
        if !under_fresh && r.path.is_dir() {
            ns.mounts.push(MountOp::Writable { path: r.path.clone() });
        }
    }
    // Masks are needed only where Landlock would otherwise allow the read: inside an allowed tree.
    for m in &p.fs.deny {
        let inside =
            p.fs.rules
                .iter()
                .any(|r| (r.access.read || r.access.write || r.access.exec) && is_within(&m.path, &r.path));
        if inside
            && m.path.symlink_metadata().is_ok()
            && !is_within(&m.path, std::path::Path::new("/tmp"))
            && !gone(&m.path)
        {
            ns.mounts.push(MountOp::Mask { path: m.path.clone(), why: format!("{} ({})", m.entry, m.origin) });
        }
    }
    // Pin the directories that contain protected paths (e.g. .git) so they cannot be renamed away
    // and replaced by unprotected copies.
    let mut pinned: Vec<PathBuf> = vec![];
    for m in &p.fs.protect {
        if let Ok(rel) = m.path.strip_prefix(&p.workspace) {
            if let Some(first) = rel.components().next() {
                let top = p.workspace.join(first.as_os_str());
                if top != m.path && top.is_dir() && !pinned.contains(&top) {
                    pinned.push(top.clone());
                    ns.mounts.push(MountOp::Pin { path: top });
                }
            }
        }
    }
    for m in &p.fs.protect {
        let exists = m.path.symlink_metadata().is_ok();
        let parent_exists = m.path.parent().is_some_and(|x| x.is_dir());
        let looks_dir = m.path.file_name().is_some_and(|n| n == "hooks");
        if exists || (parent_exists && looks_dir) {
            ns.mounts.push(MountOp::ReadOnly {
                path: m.path.clone(),
                create_dir: !exists,
                why: format!("fs.protect {} ({})", m.entry, m.origin),
            });
        }
    }
    if !p.fs.hide.is_empty() {
        ns.hide = Some(HideScan {
            root: p.workspace.clone(),
            patterns: p.fs.hide.clone(),
            skip_dirs: ["node_modules", "target", ".venv", "venv", "__pycache__", ".tox", ".cache", ".npm", ".cargo"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            max_entries: 200_000,
            secret_roots: p.fs.deny.iter().map(|m| m.path.clone()).collect(),
        });
    }
    if !p.fs.deny.is_empty() || !p.fs.protect.is_empty() {
        g.push(Guarantee::ok(
            "filesystem",
            "credentials are unreadable and protected workspace paths read-only, even inside allowed trees",
            "mount namespace masks and read-only binds",
        ));
    }
    g.push(Guarantee::ok(
        "filesystem",
        "nothing outside the writable trees can change: no chmod, chown, utimes or xattrs either",
        "every inherited mount read-only (mount_setattr), writable trees bound back",
    ));
    ns
}
