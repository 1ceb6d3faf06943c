//! Namespaces and the mount table the sandbox sees: a root built from the policy (see [`super::root`]),
//! masks over credentials that sit inside allowed trees, and read-only binds over protected workspace
//! paths.

use super::canon::Canon;
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
    /// A fresh tmpfs becomes the root: mounted on `scratch`, pivoted into, the host's tree hung at
    /// `host` (inside the new root) until [`MountOp::DetachHost`]. The process's cwd becomes "/".
    NewRoot { scratch: PathBuf, host: PathBuf },
    /// Bind the host's `src` (with everything mounted beneath it) at `dst` in the new root, its
    /// parents made as 0755 directories; read-only unless `writable` (every mount of the tree).
    Bind { src: PathBuf, dst: PathBuf, writable: bool },
    /// An overlayfs at `dst` in the new root: the host's `lower` (read-only: a devbox snapshot's
    /// code) under its `upper`, where every write lands (`work`: overlayfs's own scratch, on the
    /// same filesystem as `upper`). A devbox's workspace is this instead of a writable bind
    /// ([`super::root::overlay_workspace`]).
    Overlay { lower: PathBuf, upper: PathBuf, work: PathBuf, dst: PathBuf },
    /// A symlink in the new root, as the host has it (e.g. /bin -> usr/bin).
    Symlink { path: PathBuf, target: PathBuf },
    /// /dev with only these host device nodes (and directories such as /dev/pts) bound, and the
    /// /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr links. `pty`: bound too, only when the session
    /// has a pseudo-terminal of its own (the host's /dev/pts and /dev/ptmx).
    DevNodes { nodes: Vec<PathBuf>, pty: Vec<PathBuf> },
    /// A fresh procfs for the new pid namespace.
    Proc,
    /// A fresh tmpfs, private to the session.
    Tmpfs { target: PathBuf, size: u64, mode: u32 },
    /// Replace a path with an unreadable, read-only empty file or directory.
    Mask { path: PathBuf, why: String },
    /// Bind a directory onto itself so that it cannot be renamed away (its contents stay writable).
    Pin { path: PathBuf },
    /// Bind a path onto itself read-only. `placeholder`: the path is the first missing component
    /// on the way to an absent protected path (or a placeholder found there); before the session
    /// the supervisor makes it a socket inode of mode [`PLACEHOLDER_MODE`] (a file for the
    /// names in [`placeholder_file`]) and removes it after, so that the bind keeps the protected
    /// path from being created.
    ReadOnly { path: PathBuf, placeholder: bool, why: String },
    /// Unmount the host's tree (lazily: nothing inside holds it) and remove its mount point.
    DetachHost { host: PathBuf },
    /// Make the new root's own tmpfs read-only: no new top-level names.
    SealRoot,
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

/// The mode a placeholder is made with: a unix socket inode (made with mknod, listened on by
/// nobody), read-only, with the sticky bit, which means nothing on a socket. A socket with the
/// sticky bit and no write bit is cordon's placeholder whatever the umask took (see
/// [`is_placeholder`]); nobody makes one by accident. A socket, because it has no data: removing a
/// directory placeholder freed its one block, which on a filesystem mounted with `discard` (common
/// on cloud VMs, and these machines) waited for the device to trim it: ~2.4 ms per placeholder at
/// each session's end, ~25 ms for the default profile's ten. Opening one to write fails (EACCES: no
/// write bit, and a session has no capability to override it; ENXIO for a process that has),
/// creating below it fails (ENOTDIR), and git, `git add -A` included, ignores sockets.
pub const PLACEHOLDER_MODE: libc::mode_t = 0o1444;

/// The mode of a placeholder directory that cordon made before placeholders were sockets: read and
/// search for everyone, nothing to write, and the sticky bit. One left behind is still recognised,
/// adopted and removed.
pub const PLACEHOLDER_DIR_MODE: u32 = 0o1555;

/// The mode of a placeholder file (see [`placeholder_file`]): read-only for everyone, and the sticky
/// bit, which means nothing on a file.
pub const PLACEHOLDER_FILE_MODE: u32 = 0o1444;

/// Whether `md` (of an entry not followed if a symlink) is a placeholder: a socket with the sticky
/// bit and no write bit ([`PLACEHOLDER_MODE`] less the umask), a directory of mode [`PLACEHOLDER_DIR_MODE`] (its emptiness is checked by
/// whoever removes it), or a regular file of mode [`PLACEHOLDER_FILE_MODE`] (its content is checked
/// by whoever removes it).
pub fn is_placeholder(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    is_placeholder_mode(md.mode())
}

/// [`is_placeholder`] from a `st_mode` (type and permission bits).
pub fn is_placeholder_mode(st_mode: u32) -> bool {
    let mode = st_mode & 0o7777;
    match st_mode & libc::S_IFMT {
        libc::S_IFSOCK => mode & 0o1000 != 0 && mode & 0o222 == 0,
        libc::S_IFDIR => mode == PLACEHOLDER_DIR_MODE,
        libc::S_IFREG => mode == PLACEHOLDER_FILE_MODE,
        _ => false,
    }
}

/// Where git reads a path as a file whenever it exists, a placeholder socket or directory would break every
/// git command (`fatal: failed to read .git/commondir: Is a directory`, and an empty file the
/// same): these get a placeholder FILE with content git takes as if the file were absent. The
/// content, or None for a placeholder socket.
pub fn placeholder_file(path: &std::path::Path) -> Option<&'static str> {
    if path.parent().and_then(|d| d.file_name()) != Some(std::ffi::OsStr::new(".git")) {
        return None;
    }
    match path.file_name()?.to_str()? {
        // The common directory is the git directory itself, as when there is no commondir.
        "commondir" => Some(".\n"),
        // An empty config: nothing set, as when there is none.
        "config.worktree" => Some(""),
        _ => None,
    }
}

/// What keeps an absent protected path from being created: the first missing component of `path`
/// below `workspace` (or a placeholder found on the way), the bind target of a present one (the
/// path itself, or the first symlink on the way, which the mount step refuses by name).
#[derive(Debug, PartialEq)]
enum Target {
    Present(PathBuf),
    Placeholder(PathBuf),
    /// A regular file (or other non-directory) on the way, inside the workspace when named:
    /// nothing can be made below it, but it could be replaced by a directory (`.git` as a file in a
    /// worktree or submodule: `rm .git; git init`), so it is held read-only itself.
    Blocked(Option<PathBuf>),
}

fn target(workspace: &std::path::Path, path: &std::path::Path, fs: &mut Canon) -> Target {
    let Ok(rel) = path.strip_prefix(workspace) else { return Target::Blocked(None) };
    let mut at = workspace.to_path_buf();
    let n = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        at.push(c.as_os_str());
        match fs.lstat(&at) {
            None => return Target::Placeholder(at),
            Some(md) if md.file_type().is_symlink() => return Target::Present(at),
            Some(md) if is_placeholder(&md) => return Target::Placeholder(at),
            Some(md) if i + 1 < n && !md.is_dir() => return Target::Blocked(Some(at)),
            Some(_) => {}
        }
    }
    Target::Present(at)
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
        g.push(Guarantee::degraded(
            "filesystem",
            "the session sees only the policy's trees: any other file, directory or unix socket does not exist",
            "a mount namespace (to build the session's root)",
            "the host's whole tree is visible; only Landlock path rules apply (pathname unix sockets are not mediated)",
        ));
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
    // One lookup per path for the whole plan (the root, the masks, the protected paths).
    let mut fs = Canon::new();
    let root = super::root::build_with(p, pid, p.fs.tmp_size, &mut fs);
    ns.mounts.extend(root.ops);
    // A path that no bind brought into the new root is already gone; there is nothing to mask.
    let gone = |x: &std::path::Path| !root.bound.iter().any(|b| is_within(x, b));
    // Masks are needed only where Landlock would otherwise allow the read: inside an allowed tree.
    let needed: Vec<&cordon_policy::Masked> = p
        .fs
        .deny
        .iter()
        .filter(|&m| {
            let within = cordon_policy::paths::within_of(&m.path);
            let inside =
                p.fs.rules.iter().any(|r| (r.access.read || r.access.write || r.access.exec) && within(&r.path));
            inside && fs.lstat(&m.path).is_some() && !is_within(&m.path, std::path::Path::new("/tmp")) && !gone(&m.path)
        })
        .collect();
    // A path inside a masked directory is gone with it (the audit log in /var/lib/cordon): masking it
    // again would look for it in the empty mask.
    let mut masked_dir = |x: &std::path::Path| {
        needed.iter().any(|d| d.path != x && is_within(x, &d.path) && fs.is_dir_nofollow(&d.path))
    };
    let kept: Vec<&&cordon_policy::Masked> = needed.iter().filter(|m| !masked_dir(&m.path)).collect();
    let mut done: Vec<&std::path::Path> = vec![];
    for m in kept {
        if !done.contains(&m.path.as_path()) {
            done.push(&m.path);
            ns.mounts.push(MountOp::Mask { path: m.path.clone(), why: format!("{} ({})", m.entry, m.origin) });
        }
    }
    protect(p, &mut ns.mounts, &mut fs);
    if !p.fs.hide.is_empty() {
        ns.hide = Some(HideScan {
            root: p.workspace.clone(),
            patterns: p.fs.hide.clone(),
            skip_dirs: HIDE_SKIP_DIRS.iter().map(|s| s.to_string()).collect(),
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
    ns.mounts.push(MountOp::DetachHost { host: super::root::HOST.into() });
    ns.mounts.push(MountOp::SealRoot);
    g.push(Guarantee::ok(
        "filesystem",
        "the session sees only the policy's trees: any other file, directory or unix socket does not exist",
        "a root built from the policy (tmpfs, bind mounts, pivot_root)",
    ));
    g.push(Guarantee::ok(
        "filesystem",
        "nothing outside the writable trees can change: no chmod, chown, utimes or xattrs either",
        "read-only binds of the read-only trees (mount_setattr), the built root sealed read-only",
    ));
    ns
}

/// Read-only binds over the protected paths, and over placeholders where they are absent; the
/// directories holding them pinned (e.g. .git) so that they cannot be renamed away and replaced
/// by unprotected copies. An absent path gets a placeholder only where the session could create
/// it: where the policy lets it write (not in a read-only workspace, nor inside another protected
/// path), and never `.git` itself for a path inside it (a workspace that is not a repository may
/// become one: `git init`).
fn protect(p: &CompiledPolicy, mounts: &mut Vec<MountOp>, fs: &mut Canon) {
    let write = cordon_policy::Access { read: false, write: true, exec: false };
    let mut binds: Vec<(PathBuf, bool, String)> = vec![];
    for m in &p.fs.protect {
        let why = match &m.why {
            Some(w) => format!("fs.protect {}: {w}", m.entry),
            None => format!("fs.protect {} ({})", m.entry, m.origin),
        };
        let Some(base) = base(p, &m.path) else { continue };
        let (path, placeholder, why) = match target(&base, &m.path, fs) {
            Target::Blocked(None) => continue,
            Target::Blocked(Some(x)) => {
                let why = format!(
                    "{why}; {} is not a directory: held read-only so that it cannot be replaced by one",
                    x.strip_prefix(&base).unwrap_or(&x).display()
                );
                (x, false, why)
            }
            Target::Present(x) => (x, false, why),
            Target::Placeholder(x) => {
                let parent = x.parent().unwrap_or(&x);
                let writable = fs.is_dir_nofollow(parent) && cordon_policy::decide::fs_allows(p, parent, write);
                let git_dir = x == base.join(".git") && x != m.path;
                if !writable || git_dir {
                    continue;
                }
                (x, true, why)
            }
        };
        if !binds.iter().any(|(b, _, _)| *b == path) {
            binds.push((path, placeholder, why));
        }
    }
    let mut pinned: Vec<PathBuf> = vec![];
    for (path, _, _) in &binds {
        let Some(base) = base(p, path) else { continue };
        if let Ok(rel) = path.strip_prefix(&base) {
            if let Some(first) = rel.components().next() {
                let top = base.join(first.as_os_str());
                if top != *path && fs.is_dir_nofollow(&top) && !pinned.contains(&top) {
                    pinned.push(top.clone());
                    mounts.push(MountOp::Pin { path: top });
                }
            }
        }
    }
    for (path, placeholder, why) in binds {
        mounts.push(MountOp::ReadOnly { path, placeholder, why });
    }
}

/// What a protected path is held relative to: the workspace, or for one outside it (a granted bare
/// repository's hooks) the widest write grant that holds it, which is a bind of its own. None when
/// nothing lets the session write there: nothing to hold.
fn base(p: &CompiledPolicy, path: &std::path::Path) -> Option<PathBuf> {
    if is_within(path, &p.workspace) {
        return Some(p.workspace.clone());
    }
    p.fs.rules
        .iter()
        .filter(|r| r.access.write && is_within(path, &r.path) && r.path != path)
        .map(|r| r.path.clone())
        .min_by_key(|r| r.components().count())
}

/// Directories the fs.hide scan does not enter (dependency caches, build output): a file there
/// whose name fs.hide matches is not masked.
pub const HIDE_SKIP_DIRS: [&str; 9] =
    ["node_modules", "target", ".venv", "venv", "__pycache__", ".tox", ".cache", ".npm", ".cargo"];

/// The placeholders the supervisor makes (or takes over) before the session and removes after.
pub fn placeholders(plan: &NsPlan) -> impl Iterator<Item = (&std::path::Path, &str)> {
    plan.mounts.iter().filter_map(|m| match m {
        MountOp::ReadOnly { path, placeholder: true, why } => Some((path.as_path(), why.as_str())),
        _ => None,
    })
}
