//! The session's root, built from the policy: a fresh tmpfs holding only the trees the policy grants,
//! bound at their host paths, and the session's own /tmp, /dev/shm, /run, /proc and /dev. What no
//! grant reaches does not exist inside (ENOENT), whatever Landlock would say about it: a host
//! service's unix socket, a second user's home, a symlink from the workspace to outside.
//!
//! The root is a list of [`MountOp`]s in the order they are applied (parents before the paths
//! beneath them); a devbox's overlay root is another list of the same operations.

use super::canon::Canon;
use super::ns::MountOp;
use cordon_policy::paths::is_within;
use cordon_policy::CompiledPolicy;
use std::path::{Path, PathBuf};

/// Where the host's tree hangs while the root is built (removed before anything runs).
pub const HOST: &str = "/.cordon-host";
/// The host directory the new root's tmpfs is first mounted on, then pivoted into (the mount
/// namespace is private: the host never sees it).
pub const SCRATCH: &str = "/tmp";

/// The host's terminals: every pty of the host is under /dev/pts, and /dev/ptmx makes new ones there.
const PTY_NODES: [&str; 2] = ["/dev/pts", "/dev/ptmx"];
/// The path group that grants the harmless devices and the terminal to every profile.
const DEVICES: &str = "@devices";

/// Paths that are the session's own mounts, never the host's.
const FRESH: [&str; 4] = ["/tmp", "/dev/shm", "/run", "/proc"];

/// One thing to put at a path of the new root, before ordering.
struct Entry {
    dst: PathBuf,
    /// Applied before a bind at the same path (the workspace may be /tmp's only content).
    rank: u8,
    op: MountOp,
}

/// The operations that build the root, and the host trees bound into it (for masks: a path
/// outside all of them is not there to mask).
pub struct Root {
    pub ops: Vec<MountOp>,
    pub bound: Vec<PathBuf>,
}

/// `pid`: the session has its own pid namespace (a fresh /proc); without one the host's /proc is
/// bound read-only when the policy grants it.
pub fn build(p: &CompiledPolicy, pid: bool, tmp_size: u64) -> Root {
    build_with(p, pid, tmp_size, &mut Canon::new())
}

/// [`build`], its path lookups answered by `fs` (shared with the rest of one plan).
pub fn build_with(p: &CompiledPolicy, pid: bool, tmp_size: u64, fs: &mut Canon) -> Root {
    let mut entries: Vec<Entry> = vec![];
    let fresh = |t: &str, size: u64, mode: u32| Entry {
        dst: t.into(),
        rank: 0,
        op: MountOp::Tmpfs { target: t.into(), size, mode },
    };
    entries.push(fresh("/tmp", tmp_size, 0o1777));
    entries.push(fresh("/dev/shm", tmp_size.min(1 << 30), 0o1777));
    // Host daemons' sockets (docker, dbus, systemd) live here.
    entries.push(fresh("/run", 1 << 20, 0o755));
    if pid {
        entries.push(Entry { dst: "/proc".into(), rank: 0, op: MountOp::Proc });
    }
    // Device nodes: only those the policy names, each bound from the host's /dev. The host's
    // terminals (/dev/pts, /dev/ptmx) that come with the `@devices` defaults are there only when the
    // session has a pty of its own; a policy that names them itself has them always.
    let (mut nodes, mut pty): (Vec<PathBuf>, Vec<PathBuf>) = (vec![], vec![]);
    for r in &p.fs.rules {
        let x = &r.path;
        let dev = is_within(x, Path::new("/dev")) && !is_within(x, Path::new("/dev/shm")) && x != Path::new("/dev");
        if !dev || fs.lstat(x).is_none() {
            continue;
        }
        let terminal = PTY_NODES.iter().any(|t| is_within(x, Path::new(t)));
        if terminal && r.entry == DEVICES {
            pty.push(x.clone());
        } else {
            nodes.push(x.clone());
        }
    }
    for v in [&mut nodes, &mut pty] {
        v.sort();
        v.dedup();
    }
    entries.push(Entry { dst: "/dev".into(), rank: 0, op: MountOp::DevNodes { nodes, pty } });

    // The granted trees: (destination, canonical source, writable), outermost first.
    let mut grants: Vec<(PathBuf, PathBuf, bool)> = vec![];
    let mut links: Vec<(PathBuf, PathBuf)> = vec![];
    let mut add = |path: &Path, write: bool, grants: &mut Vec<(PathBuf, PathBuf, bool)>, fs: &mut Canon| {
        let own = FRESH.iter().any(|f| is_within(path, Path::new(f))) && path != p.workspace;
        if own || is_within(path, Path::new("/dev")) {
            return;
        }
        let Some(md) = fs.lstat(path) else { return };
        // A granted symlink stays a symlink (e.g. /bin -> usr/bin); its target is granted with it,
        // as Landlock grants what the path resolves to.
        // The source: the path with every symlink resolved (a granted link's target is already).
        let (dst, src) = if md.file_type().is_symlink() {
            if let Some(t) = fs.read_link(path) {
                links.push((path.to_path_buf(), t));
            }
            match fs.canonicalize(path) {
                Some(c) => (c.clone(), c),
                None => return,
            }
        } else {
            match fs.canonicalize(path) {
                Some(c) => (path.to_path_buf(), c),
                None => return,
            }
        };
        grants.push((dst, src, write));
    };
    // A file read as a copy without its secrets (fs.sanitize) is never bound from the host: its
    // staged copy is, below, or nothing is.
    let sanitized = |x: &Path| p.fs.sanitize.iter().any(|s| s.path == x);
    for r in p.fs.rules.iter().filter(|r| (r.access.read || r.access.write || r.access.exec) && !sanitized(&r.path)) {
        if r.path == Path::new("/") {
            // A bind over the new root's own "/" would not be seen from inside it: bind its
            // entries instead.
            for e in std::fs::read_dir("/").into_iter().flatten().flatten() {
                add(&e.path(), r.access.write, &mut grants, fs);
            }
        } else {
            add(&r.path, r.access.write, &mut grants, fs);
        }
    }
    grants.sort();
    grants.dedup();
    // Landlock adds rights down a path: a path is writable if any grant above it is. A nested
    // grant is bound only where it makes writable what its parent's bind leaves read-only (or
    // comes from elsewhere on the host).
    // Ancestors are looked up by path (linear in the policy's size, not quadratic).
    let mut bound: Vec<(PathBuf, PathBuf, bool)> = vec![];
    let mut bound_at: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
    for (dst, src, write) in grants {
        if let Some(&i) = bound_at.get(&dst) {
            bound[i].2 |= write;
            continue;
        }
        let parent = dst.ancestors().skip(1).find_map(|a| bound_at.get(a)).map(|&i| bound[i].clone());
        let mut writable = write;
        if let Some((pd, ps, pw)) = parent {
            let same_source = dst.strip_prefix(&pd).map(|rel| ps.join(rel) == src).unwrap_or(false);
            if same_source && (pw || !write) {
                continue;
            }
            writable |= pw;
        }
        bound_at.insert(dst.clone(), bound.len());
        bound.push((dst, src, writable));
    }
    for (dst, src, writable) in &bound {
        entries.push(Entry {
            dst: dst.clone(),
            rank: 1,
            op: MountOp::Bind { src: src.clone(), dst: dst.clone(), writable: *writable },
        });
    }
    for s in &p.fs.sanitize {
        if let Some(src) = &s.staged {
            // A settings file that is a symlink (stow, chezmoi, home-manager) inside a bound tree is
            // reached through the link: the copy goes over the link's target.
            let parent_bound = s.path.parent().is_some_and(|d| bound.iter().any(|(b, _, _)| is_within(d, b)));
            let link = fs.is_symlink(&s.path);
            let dst = match (link && parent_bound, fs.canonicalize(&s.path)) {
                (true, Some(target)) => target,
                _ => s.path.clone(),
            };
            entries.push(Entry {
                dst: dst.clone(),
                rank: 2,
                op: MountOp::Bind { src: src.clone(), dst, writable: false },
            });
        }
    }
    links.sort();
    links.dedup();
    for (path, target) in links {
        entries.push(Entry { dst: path.clone(), rank: 1, op: MountOp::Symlink { path, target } });
    }
    entries.sort_by(|a, b| (a.dst.as_path(), a.rank).cmp(&(b.dst.as_path(), b.rank)));
    let mut ops = vec![MountOp::NewRoot { scratch: SCRATCH.into(), host: HOST.into() }];
    ops.extend(entries.into_iter().map(|e| e.op));
    Root { ops, bound: bound.into_iter().map(|(d, _, _)| d).collect() }
}

/// A devbox's root: `ops` (a session's root from [`build`], whose policy's workspace is
/// `workspace`) with the workspace's writable bind replaced, in its place, by an overlay of the
/// snapshot's `lower` under the devbox's own `upper` and `work` (host paths). Every other operation
/// stays as it was: the overlay root is the same list with one entry changed. False: `ops` binds no
/// writable `workspace` (nothing was changed).
pub fn overlay_workspace(ops: &mut [MountOp], workspace: &Path, lower: &Path, upper: &Path, work: &Path) -> bool {
    let at = ops.iter().position(|o| matches!(o, MountOp::Bind { dst, writable: true, .. } if dst == workspace));
    let Some(i) = at else { return false };
    ops[i] = MountOp::Overlay {
        lower: lower.to_path_buf(),
        upper: upper.to_path_buf(),
        work: work.to_path_buf(),
        dst: workspace.to_path_buf(),
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Tmp;

    fn policy(ws: &Path, extra: &str) -> CompiledPolicy {
        let cx = cordon_policy::Context { home: ws.join("home"), workspace: ws.join("ws"), tmp: "/tmp".into() };
        let text = format!("version = 1\nextends = [\"builtin:agent\"]\n{extra}");
        let l = cordon_policy::load_text("t.toml", &text).expect("loads");
        cordon_policy::compile(&l, &cx)
    }

    fn binds(r: &Root) -> Vec<(PathBuf, bool)> {
        r.ops
            .iter()
            .filter_map(|o| match o {
                MountOp::Bind { dst, writable, .. } => Some((dst.clone(), *writable)),
                _ => None,
            })
            .collect()
    }

    /// Under /var/tmp: grants under /tmp are the session's own tmpfs, not host trees.
    struct VarTmp(PathBuf);
    impl Drop for VarTmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_root_binds_each_granted_tree_once_parents_first_and_nothing_else() {
        let t = VarTmp(PathBuf::from(format!("/var/tmp/cordon-sandbox-root-plan-{}", std::process::id())));
        for d in ["ws/sub", "ro/rw", "ro/other", "home/.cargo", "outside"] {
            std::fs::create_dir_all(t.0.join(d)).expect("mkdir");
        }
        std::os::unix::fs::symlink(t.0.join("ro"), t.0.join("link")).expect("symlink");
        let extra = format!(
            "[fs]\nread = [\"{0}/ro\", \"{0}/ws/sub\", \"{0}/link\", \"{0}/missing\"]\nwrite = [\"{0}/ro/rw\"]\n",
            t.0.display()
        );
        let r = build(&policy(&t.0, &extra), true, 1 << 20);
        assert_eq!(r.ops.first(), Some(&MountOp::NewRoot { scratch: SCRATCH.into(), host: HOST.into() }));
        let b = binds(&r);
        let at = |p: &Path| b.iter().position(|(d, _)| d == p);
        // The workspace, writable; its granted subdirectory rides on its bind.
        assert!(b.contains(&(t.0.join("ws"), true)), "{b:?}");
        assert_eq!(at(&t.0.join("ws/sub")), None, "{b:?}");
        // A read-only tree, and the writable tree inside it bound after it.
        assert!(b.contains(&(t.0.join("ro"), false)), "{b:?}");
        assert!(b.contains(&(t.0.join("ro/rw"), true)), "{b:?}");
        assert!(at(&t.0.join("ro")) < at(&t.0.join("ro/rw")), "{b:?}");
        // A granted symlink stays one; its target is granted with it (here it already is).
        assert!(r.ops.contains(&MountOp::Symlink { path: t.0.join("link"), target: t.0.join("ro") }), "{:?}", r.ops);
        // Neither what does not exist nor what no grant names.
        assert_eq!(at(&t.0.join("missing")), None);
        assert!(!b.iter().any(|(d, _)| d.starts_with(t.0.join("outside")) || *d == t.0.join("home")), "{b:?}");
        assert!(b.contains(&(t.0.join("home/.cargo"), false)), "{b:?}");
        // The session's own mounts, never the host's.
        assert!(!b.iter().any(|(d, _)| d.starts_with("/tmp") || d.starts_with("/proc") || d.starts_with("/run")));
        assert!(r.ops.contains(&MountOp::Proc));
        assert!(r
            .ops
            .iter()
            .any(|o| matches!(o, MountOp::DevNodes { nodes, .. } if nodes.contains(&PathBuf::from("/dev/null")))));
        assert!(b.contains(&(PathBuf::from("/usr"), false)), "{b:?}");
    }

    #[test]
    fn the_hosts_terminals_from_the_defaults_wait_for_a_pty_and_named_ones_do_not() {
        let dev = |r: &Root| {
            r.ops
                .iter()
                .find_map(|o| match o {
                    MountOp::DevNodes { nodes, pty } => Some((nodes.clone(), pty.clone())),
                    _ => None,
                })
                .expect("a /dev")
        };
        let t = VarTmp(PathBuf::from(format!("/var/tmp/cordon-sandbox-root-pty-{}", std::process::id())));
        std::fs::create_dir_all(t.0.join("ws")).expect("mkdir");
        let (nodes, pty) = dev(&build(&policy(&t.0, ""), true, 1 << 20));
        assert!(nodes.contains(&PathBuf::from("/dev/null")), "{nodes:?}");
        assert!(!nodes.iter().any(|n| n.starts_with("/dev/pts") || n == Path::new("/dev/ptmx")), "{nodes:?}");
        assert_eq!(pty, vec![PathBuf::from("/dev/ptmx"), PathBuf::from("/dev/pts")]);
        let cx = cordon_policy::Context { home: t.0.join("home"), workspace: t.0.join("ws"), tmp: "/tmp".into() };
        let text = "version = 1\n[fs]\nread = [\"/dev/null\", \"/dev/pts\"]\n";
        let named = cordon_policy::compile(&cordon_policy::load_text("t.toml", text).expect("loads"), &cx);
        let (nodes, pty) = dev(&build(&named, true, 1 << 20));
        assert_eq!(nodes, vec![PathBuf::from("/dev/null"), PathBuf::from("/dev/pts")]);
        assert!(pty.is_empty(), "{pty:?}");
    }

    #[test]
    fn a_devbox_root_is_the_same_list_with_the_workspace_an_overlay_in_its_place() {
        let t = VarTmp(PathBuf::from(format!("/var/tmp/cordon-sandbox-root-overlay-{}", std::process::id())));
        std::fs::create_dir_all(t.0.join("ws")).expect("mkdir");
        let plain = build(&policy(&t.0, ""), true, 1 << 20);
        let mut ops = plain.ops.clone();
        let (lower, upper, work) = (t.0.join("snap/code"), t.0.join("box/upper"), t.0.join("box/work"));
        assert!(overlay_workspace(&mut ops, &t.0.join("ws"), &lower, &upper, &work));
        assert_eq!(ops.len(), plain.ops.len());
        let changed: Vec<(&MountOp, &MountOp)> = plain.ops.iter().zip(&ops).filter(|(a, b)| a != b).collect();
        assert_eq!(
            changed,
            vec![(
                &MountOp::Bind { src: t.0.join("ws"), dst: t.0.join("ws"), writable: true },
                &MountOp::Overlay { lower, upper: upper.clone(), work, dst: t.0.join("ws") }
            )],
            "only the workspace's bind changes"
        );
        // No writable bind of that path: nothing changes.
        let mut again = plain.ops.clone();
        assert!(!overlay_workspace(&mut again, &t.0.join("elsewhere"), &upper, &upper, &upper));
        assert!(!overlay_workspace(&mut again, Path::new("/usr"), &upper, &upper, &upper), "/usr is read-only");
        assert_eq!(again, plain.ops);
    }

    #[test]
    fn a_workspace_under_tmp_is_bound_over_the_private_tmp() {
        let t = Tmp::new("root-plan-tmp");
        let extra = String::new();
        let cx = cordon_policy::Context { home: t.0.join("home"), workspace: t.0.clone(), tmp: "/tmp".into() };
        let l = cordon_policy::load_text("t.toml", &format!("version = 1\nextends = [\"builtin:agent\"]\n{extra}"))
            .expect("loads");
        let r = build(&cordon_policy::compile(&l, &cx), true, 1 << 20);
        let tmp = r.ops.iter().position(|o| matches!(o, MountOp::Tmpfs { target, .. } if target == Path::new("/tmp")));
        let ws = r.ops.iter().position(|o| matches!(o, MountOp::Bind { dst, .. } if *dst == t.0));
        assert!(tmp.is_some() && ws.is_some() && tmp < ws, "{:?}", r.ops);
    }
}
