//! Applies the mount plan inside the new mount namespace (run by the session's init, before the
//! command's process is forked).

use crate::plan::ns::{HideScan, MountOp, NsPlan};
use crate::sys;
use cordon_policy::paths::name_matches;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{statvfs, FsFlags};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What the mount step did, for the session report.
#[derive(Debug, Default)]
pub struct MountReport {
    pub masked: usize,
    pub hidden: Vec<PathBuf>,
    pub protected: usize,
    /// The hide scan stopped early (too many entries): files beyond it are not hidden.
    pub scan_truncated: bool,
}

const STAGE: &str = "/tmp/.cordon-stage";

/// Why the session's mount table could not be set up: the step, the path, and the cause.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A mount(2) or mkdir(2) call.
    #[error("mount: {what} {}: {source}", path.display())]
    Sys {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    /// A file operation (stat, create, chmod, mount_setattr).
    #[error("mount: {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mount: protected path {} is a symlink; refusing to guess what to protect", path.display())]
    ProtectedSymlink { path: PathBuf },
}

fn sys_err<'a>(what: &'static str, p: &'a Path) -> impl FnOnce(nix::errno::Errno) -> MountError + 'a {
    move |source| MountError::Sys { what, path: p.to_path_buf(), source }
}

fn io_err<'a>(what: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> MountError + 'a {
    move |source| MountError::Io { what, path: p.to_path_buf(), source }
}

/// Flags that a bind remount must keep: in a user namespace the kernel refuses to clear locked ones.
fn locked_flags(p: &Path) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(s) = statvfs(p) {
        let fl = s.flags();
        for (a, b) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if fl.contains(a) {
                f |= b;
            }
        }
    }
    f
}

fn bind_readonly(src: &Path, dst: &Path) -> Result<(), MountError> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(sys_err("bind", dst))?;
    make_readonly(dst)
}

/// The one mount at `p` read-only, nosuid and nodev: one `mount_setattr`, which adds flags without
/// reading the locked ones first (a `statfs` and a remount each); a bind remount where the kernel
/// has no mount_setattr (before 5.12).
///
/// EBUSY is tried again for up to ~50 ms: the kernel refuses to make a mount read-only while a
/// write to it is under way, and a short one (a name made, an access time updated) can meet the
/// seal (CI saw it once in 40 starts as nobody: "make read-only /: Device or resource busy"). A
/// writer that stays is still an error, and the session does not start.
fn make_readonly(p: &Path) -> Result<(), MountError> {
    let mut tries = 0;
    loop {
        match make_readonly_once(p) {
            Err(e) if busy(&e) && tries < 500 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            r => return r,
        }
    }
}

fn busy(e: &MountError) -> bool {
    match e {
        MountError::Io { source, .. } => source.raw_os_error() == Some(libc::EBUSY),
        MountError::Sys { source, .. } => *source == nix::errno::Errno::EBUSY,
        _ => false,
    }
}

fn make_readonly_once(p: &Path) -> Result<(), MountError> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io_err("make read-only", p)(std::io::ErrorKind::InvalidInput.into()))?;
    match sys::make_mount_readonly(&c) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
        r => return r.map_err(io_err("make read-only", p)),
    }
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | locked_flags(p);
    mount(None::<&str>, p, None::<&str>, flags, None::<&str>).map_err(sys_err("remount read-only", p))
}

fn mask(path: &Path) -> Result<(), MountError> {
    let md = path.metadata().map_err(io_err("stat", path))?;
    if md.is_dir() {
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some("size=4k,nr_inodes=1,mode=000"))
            .map_err(sys_err("mask", path))
    } else {
        bind_readonly(Path::new(&format!("{STAGE}/empty")), path)
    }
}

pub fn apply(plan: &NsPlan) -> Result<MountReport, MountError> {
    let (rep, last) = apply_with(plan, false, &mut |_| {})?;
    last.wait()?;
    Ok(rep)
}

/// The plan's last steps — the host's tree detached, the built root sealed — still under way on a
/// thread of their own: the lazy detach waits for an RCU grace period (~50–200 µs) that the init
/// spends on its hostname, loopback and bounds instead. [`Finishing::wait`] before anything of the
/// session runs. A thread shares the mount namespace, root and working directory; Landlock, the
/// capabilities dropped and no_new_privs are per thread, so bounding the init meanwhile does not
/// stop the detach, and the thread is gone (joined) before the init forks the command.
#[must_use = "the host's tree is detached and the root sealed only once waited for"]
pub struct Finishing(Option<std::thread::JoinHandle<Result<(), MountError>>>);

impl Finishing {
    /// Nothing left to finish.
    pub fn done() -> Finishing {
        Finishing(None)
    }

    pub fn wait(self) -> Result<(), MountError> {
        match self.0 {
            None => Ok(()),
            Some(t) => {
                let r = t.join().unwrap_or_else(|_| {
                    Err(MountError::Io {
                        what: "detach the host's tree",
                        path: "/".into(),
                        source: std::io::Error::other("the thread panicked"),
                    })
                });
                gone_from_proc();
                r
            }
        }
    }
}

/// Waits (at most ~50 ms) until the joined thread's task is gone from /proc/self/task: a join
/// returns before the kernel releases the task, and until then it counts in the pids cgroup, where
/// a tight `processes` limit would refuse the command's fork (review 9).
fn gone_from_proc() {
    for _ in 0..1000 {
        match std::fs::read_dir("/proc/self/task").map(|d| d.count()) {
            Ok(n) if n > 1 => std::thread::sleep(std::time::Duration::from_micros(50)),
            _ => return,
        }
    }
}

/// [`apply`] for a session that has a pseudo-terminal of its own (`pty`: the terminal nodes of
/// [`MountOp::DevNodes`] are bound), calling `mark` after the costly steps (CORDON_TIMING). The
/// detach of the host's tree and the seal, when they are the plan's last steps, go on in the
/// background: wait for the returned [`Finishing`] before the session's command can run.
pub fn apply_with(
    plan: &NsPlan,
    pty: bool,
    mark: &mut dyn FnMut(&str),
) -> Result<(MountReport, Finishing), MountError> {
    let mut rep = MountReport::default();
    let mut last = Finishing(None);
    // Credential inodes are read before HOME is replaced below.
    let secrets = plan.hide.as_ref().map(|h| secret_inodes(&h.secret_roots, &h.root)).unwrap_or_default();
    mark("init: mounts: credential inodes read");
    let mut staged = false;
    let mut built = false;
    for (i, op) in plan.mounts.iter().enumerate() {
        if crate::ablate::skips(op) {
            continue;
        }
        if !built
            && matches!(
                op,
                MountOp::Mask { .. } | MountOp::Pin { .. } | MountOp::ReadOnly { .. } | MountOp::DetachHost { .. }
            )
        {
            built = true;
            mark("init: mounts: the root's binds done");
        }
        if last.0.is_some() {
            // The seal, run by the finishing thread after the detach (see below).
            continue;
        }
        let step = match op {
            MountOp::NewRoot { .. } => Some("init: mounts: new root, pivoted"),
            MountOp::DetachHost { .. } => Some("init: mounts: host tree detach started"),
            _ => None,
        };
        match op {
            MountOp::MakePrivate => {
                mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                    .map_err(sys_err("make private", Path::new("/")))?;
            }
            MountOp::NewRoot { scratch, host } => new_root(scratch, host)?,
            MountOp::Bind { src, dst, writable } => bind(&host_path(plan, src), src, dst, *writable)?,
            MountOp::Overlay { lower, upper, work, dst } => overlay(plan, [lower, upper, work], dst)?,
            MountOp::Symlink { path, target } => {
                make_parent(path)?;
                std::os::unix::fs::symlink(target, path).map_err(io_err("symlink", path))?;
            }
            MountOp::DevNodes { nodes, pty: terminal } => {
                dev_nodes(plan, nodes.iter().chain(terminal.iter().filter(|_| pty)))?
            }
            MountOp::Proc => {
                let p = Path::new("/proc");
                make_dir(p)?;
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                mount(Some("proc"), p, Some("proc"), flags, None::<&str>).map_err(sys_err("mount proc on", p))?;
            }
            MountOp::Tmpfs { target, .. } if crate::ablate::host_tmp(op) => {
                bind(&host_path(plan, target), target, target, true)?
            }
            MountOp::Tmpfs { target, size, mode } => {
                make_dir(target)?;
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                let data = format!("size={size},mode={mode:o}");
                mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(data.as_str()))
                    .map_err(sys_err("tmpfs on", target))?;
            }
            MountOp::Mask { path, .. } => {
                if !staged {
                    stage()?;
                    staged = true;
                }
                mask(path)?;
                rep.masked += 1;
            }
            MountOp::Pin { path } => {
                mount(Some(path), path, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(sys_err("pin", path))?;
            }
            MountOp::ReadOnly { path, .. } => {
                // A placeholder was made by the supervisor; one that is gone fails the bind below.
                // A symlink here could point the read-only bind somewhere harmless while the real
                // target stays writable; refuse instead.
                if path.symlink_metadata().map(|m| m.file_type().is_symlink()).unwrap_or(false) {
                    return Err(MountError::ProtectedSymlink { path: path.clone() });
                }
                bind_readonly(path, path)?;
                rep.protected += 1;
            }
            MountOp::DetachHost { host } => {
                let rest = &plan.mounts[i + 1..];
                let seal = rest.iter().any(|o| matches!(o, MountOp::SealRoot) && !crate::ablate::skips(o));
                if rest.iter().all(|o| matches!(o, MountOp::SealRoot)) {
                    let host = host.clone();
                    // Unnamed: the thread keeps the init's name, which is how the sensor tells
                    // cordon's own setup from the command (a new name ends the exemption).
                    let t = std::thread::Builder::new()
                        .spawn(move || finish(&host, seal))
                        .map_err(io_err("start a thread to detach the host's tree at", Path::new("/")))?;
                    last = Finishing(Some(t));
                } else {
                    finish(host, false)?;
                }
            }
            MountOp::SealRoot => seal_root()?,
        }
        if let Some(s) = step {
            mark(s);
        }
    }
    if let Some(h) = plan.hide.as_ref().filter(|_| !crate::ablate::off(crate::ablate::Ablate::Mask)) {
        let found = scan(h, &secrets, &mut rep.scan_truncated);
        if !found.is_empty() && !staged {
            stage()?;
            staged = true;
        }
        for p in found {
            mask(&p)?;
            rep.hidden.push(p);
        }
    }
    if staged {
        // The masks keep their inodes alive; the staging names go.
        let _ = std::fs::remove_file(format!("{STAGE}/empty"));
        let _ = std::fs::remove_dir(STAGE);
    }
    Ok((rep, last))
}

/// The host's tree detached and its mount point removed, then (`seal`) the built root sealed.
fn finish(host: &Path, seal: bool) -> Result<(), MountError> {
    umount2(host, MntFlags::MNT_DETACH).map_err(sys_err("detach the host's tree at", host))?;
    std::fs::remove_dir(host).map_err(io_err("remove", host))?;
    if seal {
        seal_root()?;
    }
    Ok(())
}

/// The built root's tmpfs made read-only.
fn seal_root() -> Result<(), MountError> {
    make_readonly(Path::new("/"))
}

/// Where the host's `path` is while the root is built (under the host tree's mount point once
/// [`MountOp::NewRoot`] ran; the host path itself before).
fn host_path(plan: &NsPlan, path: &Path) -> PathBuf {
    let host = plan.mounts.iter().find_map(|m| match m {
        MountOp::NewRoot { host, .. } => Some(host),
        _ => None,
    });
    match host {
        Some(h) => h.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

fn make_dir(p: &Path) -> Result<(), MountError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(p).map_err(io_err("create", p))
}

fn make_parent(p: &Path) -> Result<(), MountError> {
    match p.parent() {
        Some(d) => make_dir(d),
        None => Ok(()),
    }
}

/// A tmpfs on `scratch` becomes the root; the host's tree hangs at `host` inside it.
fn new_root(scratch: &Path, host: &Path) -> Result<(), MountError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(Some("tmpfs"), scratch, Some("tmpfs"), flags, Some("size=1m,mode=755"))
        .map_err(sys_err("tmpfs for the new root on", scratch))?;
    let put_old = scratch.join(host.strip_prefix("/").unwrap_or(host));
    nix::unistd::mkdir(&put_old, Mode::from_bits_truncate(0o700)).map_err(sys_err("mkdir", &put_old))?;
    nix::unistd::pivot_root(scratch, &put_old).map_err(sys_err("pivot_root into", scratch))?;
    // The cwd still points into the host's tree; nothing may keep it.
    nix::unistd::chdir("/").map_err(sys_err("chdir", Path::new("/")))
}

/// Binds the host tree `from` (`src` on the host) at `dst`, every mount of it read-only unless
/// `writable`.
fn bind(from: &Path, src: &Path, dst: &Path, writable: bool) -> Result<(), MountError> {
    let md = from.metadata().map_err(io_err("stat", src))?;
    bind_as(md.is_dir(), from, dst, writable)
}

/// [`bind`] once the source's kind is known (a directory or not).
fn bind_as(dir: bool, from: &Path, dst: &Path, writable: bool) -> Result<(), MountError> {
    if dir {
        make_dir(dst)?;
    } else {
        // The file to bind over, its parents made only when missing (one call in the common case).
        let create = || std::fs::OpenOptions::new().write(true).create_new(true).open(dst);
        match create() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                make_parent(dst)?;
                create().map_err(io_err("create", dst))?;
            }
            Err(e) => return Err(io_err("create", dst)(e)),
        }
    }
    mount(Some(from), dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(sys_err("bind", dst))?;
    if !writable && !crate::ablate::off(crate::ablate::Ablate::ReadOnly) {
        let c = std::ffi::CString::new(dst.as_os_str().as_encoded_bytes()).map_err(|_| MountError::Io {
            what: "make read-only",
            path: dst.to_path_buf(),
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
        sys::make_tree_readonly(&c).map_err(io_err("make read-only", dst))?;
    }
    Ok(())
}

/// An overlayfs of the host's `lower`, `upper` and `work` (in that order) at `dst`. The layers are
/// named in mount(2)'s option string, where `,` separates options and `:` lower layers: a path with
/// either (or a backslash, overlayfs's escape) is refused rather than escaped.
fn overlay(plan: &NsPlan, layers: [&PathBuf; 3], dst: &Path) -> Result<(), MountError> {
    let mut data = vec![];
    for (key, p) in ["lowerdir", "upperdir", "workdir"].into_iter().zip(layers) {
        let from = host_path(plan, p);
        let text = from.to_str().filter(|s| !s.contains([',', ':', '\\'])).ok_or_else(|| MountError::Io {
            what: "overlay layer (not UTF-8, or holds `,`, `:` or `\\`)",
            path: p.clone(),
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
        data.push(format!("{key}={text}"));
    }
    make_dir(dst)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(Some("overlay"), dst, Some("overlay"), flags, Some(data.join(",").as_str()))
        .map_err(sys_err("overlay on", dst))
}

/// /dev with the granted nodes only, and the links programs expect.
fn dev_nodes<'a>(plan: &NsPlan, nodes: impl Iterator<Item = &'a PathBuf>) -> Result<(), MountError> {
    let dev = Path::new("/dev");
    make_dir(dev)?;
    for n in nodes {
        let from = host_path(plan, n);
        // A node the host does not have is not there to bind.
        let Ok(md) = from.metadata() else { continue };
        bind_as(md.is_dir(), &from, n, true)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let p = dev.join(name);
        std::os::unix::fs::symlink(target, &p).map_err(io_err("symlink", &p))?;
    }
    Ok(())
}

fn stage() -> Result<(), MountError> {
    let d = Path::new(STAGE);
    let mkdir = || nix::unistd::mkdir(d, Mode::from_bits_truncate(0o700));
    // The session's /tmp is new, so the name is free; only the ablation that binds the host's /tmp
    // (tests) can meet one a failed earlier run left: it is taken away, not a reason to fail.
    if mkdir() == Err(nix::errno::Errno::EEXIST) {
        let _ = std::fs::remove_file(d.join("empty"));
        let _ = std::fs::remove_dir(d);
    }
    if d.symlink_metadata().is_err() {
        mkdir().map_err(sys_err("mkdir", d))?;
    }
    let f = d.join("empty");
    std::fs::File::create(&f).map_err(io_err("create", &f))?;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).map_err(io_err("chmod", &f))?;
    Ok(())
}

/// (device, inode) of every regular file under the credential paths (bounded walk).
/// Credential files that a hard link in the workspace could point at: a hard link never crosses a
/// filesystem, so only secret trees on the workspace's own device are walked (a pseudo filesystem
/// such as tracefs would otherwise spend the budget on thousands of irrelevant entries).
fn secret_inodes(roots: &[PathBuf], workspace: &Path) -> std::collections::HashSet<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut set = std::collections::HashSet::new();
    let Ok(ws_dev) = workspace.metadata().map(|m| m.dev()) else { return set };
    let mut stack: Vec<PathBuf> =
        roots.iter().filter(|r| r.symlink_metadata().is_ok_and(|m| m.dev() == ws_dev)).cloned().collect();
    let mut budget = 5000;
    while let Some(p) = stack.pop() {
        budget -= 1;
        if budget == 0 {
            break;
        }
        let Ok(md) = p.symlink_metadata() else { continue };
        if md.dev() != ws_dev {
            continue;
        }
        if md.is_file() {
            set.insert((md.dev(), md.ino()));
        } else if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    set
}

/// Finds workspace entries whose names match a hide pattern, and hard links to credential files.
pub fn scan(h: &HideScan, secrets: &std::collections::HashSet<(u64, u64)>, truncated: &mut bool) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![h.root.clone()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            seen += 1;
            if seen > h.max_entries {
                *truncated = true;
                return out;
            }
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(ft) = e.file_type() else { continue };
            if h.patterns.iter().any(|p| name_matches(p, &name)) && !ft.is_symlink() {
                out.push(e.path());
                continue;
            }
            if ft.is_file() {
                if let Ok(md) = e.metadata() {
                    if md.nlink() > 1 && secrets.contains(&(md.dev(), md.ino())) {
                        out.push(e.path());
                        continue;
                    }
                }
            }
            if ft.is_dir() && name != ".git" && !h.skip_dirs.iter().any(|s| s == &*name) {
                stack.push(e.path());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Each case fails before anything is mounted (a missing path, a symlink), so the host's mount
    //! table is never touched.
    use super::*;
    use crate::testutil::{errno_source, io_source, Tmp};

    fn plan(op: MountOp) -> NsPlan {
        NsPlan {
            user: false,
            pid: false,
            mount: true,
            ipc: false,
            uts: false,
            net: false,
            uid: 0,
            gid: 0,
            mounts: vec![op],
            hide: None,
            hostname: None,
            memfd_noexec: false,
        }
    }

    #[test]
    fn a_failed_mount_call_names_the_step_and_path_and_keeps_the_errno() {
        let tmp = Tmp::new("mnt-sys");
        let path = tmp.0.join("missing");
        let e = apply(&plan(MountOp::Pin { path: path.clone() })).expect_err("no such path");
        assert!(matches!(&e, MountError::Sys { what: "pin", .. }), "{e:?}");
        let errno = errno_source(&e);
        assert_eq!(e.to_string(), format!("mount: pin {}: {errno}", path.display()));
    }

    #[test]
    fn a_failed_file_operation_names_the_step_and_path_and_keeps_the_io_error() {
        let tmp = Tmp::new("mnt-io");
        let path = tmp.0.join("missing").join("dir");
        let op = MountOp::Symlink { path: path.clone(), target: "x".into() };
        // The parent is made; a second link at the same place is the failure.
        let _ = apply(&plan(op.clone()));
        let e = apply(&plan(op)).expect_err("exists");
        assert!(matches!(&e, MountError::Io { what: "symlink", .. }), "{e:?}");
        assert_eq!(io_source(&e).kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(e.to_string(), format!("mount: symlink {}: {}", path.display(), io_source(&e)));
    }

    #[test]
    fn a_placeholder_that_is_gone_fails_the_bind_by_name() {
        let tmp = Tmp::new("mnt-gone");
        let path = tmp.0.join(".envrc");
        let e = apply(&plan(MountOp::ReadOnly { path: path.clone(), placeholder: true, why: "test".into() }))
            .expect_err("no placeholder");
        assert!(matches!(&e, MountError::Sys { what: "bind", .. }), "{e:?}");
    }

    #[test]
    fn a_protected_symlink_is_refused_by_name() {
        let tmp = Tmp::new("mnt-link");
        let link = tmp.0.join("link");
        std::os::unix::fs::symlink(&tmp.0, &link).expect("symlink");
        let e = apply(&plan(MountOp::ReadOnly { path: link.clone(), placeholder: false, why: "test".into() }))
            .expect_err("a symlink");
        assert_eq!(
            e.to_string(),
            format!("mount: protected path {} is a symlink; refusing to guess what to protect", link.display())
        );
        assert!(std::error::Error::source(&e).is_none());
    }
}
