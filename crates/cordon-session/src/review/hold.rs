//! Hold mode (`cordon run --review`, `[fs] review_mode = "hold"`): at the end of the session each
//! changed reviewed file is put back as the start walk found it (contents and mode; a file the
//! session created is removed, one it deleted is recreated), and the session's versions go into one
//! patch outside the workspace for the user to read and apply (`git apply`, `patch -p1`).
//!
//! Safe against the session by construction:
//! - it runs after the session ended, when none of its processes is left (the init of its pid
//!   namespace was reaped, which kills every process in it, and its cgroup was killed; a session
//!   with neither is refused hold mode by [`target`]), so nothing races the restore;
//! - every path is walked from the workspace's directory one component at a time with
//!   `O_NOFOLLOW | O_DIRECTORY`: a directory the session swapped for a symlink is never followed,
//!   and that file is left and named; the file itself is replaced by `rename` of a new file made
//!   with `O_EXCL | O_NOFOLLOW` in the same directory (a symlink planted at its name is replaced,
//!   never written through);
//! - the patch is written first, and nothing is restored unless it was: a change is never lost.
//!
//! What it cannot hold it leaves as the session made it and says why: a file larger than the start
//! walk keeps ([`super::KEEP_BYTES`]), binary or non-UTF-8 contents, symlinks and special files, a
//! mode change a patch cannot carry (git keeps the executable bit only).

use super::{patch, Kind, State, KEEP_BYTES};
use crate::prepare::Prepared;
use crate::Result;
use cordon_schema::review::{Change, ChangeKind, HeldPatch, Hold};
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode};
use nix::unistd::{fchown, fsync, unlinkat, Gid, Uid, UnlinkatFlags};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where the patch of a held session goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// `held/` beside the audit log (0700).
    pub dir: PathBuf,
    pub session: String,
    pub workspace: PathBuf,
}

impl Target {
    fn file(&self) -> PathBuf {
        self.dir.join(format!("{}.patch", self.session))
    }
}

/// Hold mode's target when the run asks for it (`--review` or the policy) and reviews files; a
/// refusal (nothing has run yet) when the patch's place could be reached by the session or a process
/// of the session could outlive it.
pub fn target(p: &Prepared) -> Result<Option<Target>> {
    let wanted = p.spec.review_hold || p.policy.fs.review_mode == cordon_policy::review::ReviewMode::Hold;
    if !wanted {
        return Ok(None);
    }
    let how = if p.spec.review_hold { "--review" } else { "fs.review_mode = \"hold\"" };
    if p.policy.fs.review.is_empty() {
        bail!("{how}: the policy `{}` reviews no file (its fs.review is empty), so nothing would be held; nothing was run\n  hint: use a policy that reviews files (builtin:agent does; or add fs.review = [\"@host-exec-manual\"]), or run without {how}", p.policy.name);
    }
    let env = &p.plan.environment;
    if !env.ns.pid && env.cgroup.v2_dir.is_none() {
        bail!("{how}: this session has neither a pid namespace nor a cgroup, so a process of it could outlive it and change a file while it is being restored; nothing was run\n  hint: run where cordon gets a pid namespace or a cgroup (see `cordon doctor`), or without {how}");
    }
    let db = match &p.recording {
        Some(r) => r.path().to_path_buf(),
        None => cordon_audit::default_path(),
    };
    let dir = db.parent().unwrap_or(Path::new("/")).join("held");
    // Where the directory is (its nearest existing ancestor, symlinks resolved).
    let real = dir.ancestors().find_map(|a| a.canonicalize().ok()).unwrap_or_else(|| dir.clone());
    let mut trees: Vec<PathBuf> = vec![p.workspace.clone()];
    trees
        .extend(p.plan.host_writable().unwrap_or_default().iter().map(|t| t.canonicalize().unwrap_or(t.to_path_buf())));
    if let Some(t) = trees.iter().find(|t| real.starts_with(t)) {
        bail!(
            "{how}: the held patch would go to {}, inside {}, which the session may write (it could plant the patch); nothing was run\n  hint: keep the audit log outside every writable tree (--audit PATH; the default, $XDG_STATE_HOME/cordon or /var/lib/cordon, is)",
            dir.display(),
            t.display()
        );
    }
    Ok(Some(Target { dir, session: p.session_id.clone(), workspace: p.workspace.clone() }))
}

/// How one change is put back.
enum Restore {
    /// Write these contents with this mode and owner.
    Write { content: Vec<u8>, mode: u32, owner: (u32, u32) },
    /// Remove the file the session created.
    Remove,
}

struct Planned {
    index: usize,
    parent: OwnedFd,
    name: Vec<u8>,
    restore: Restore,
    diff: String,
}

/// Holds what can be held of `changes` (each with its workspace-relative key): the patch first,
/// then the restores; each change's `hold` says what became of it.
pub(super) fn hold(
    t: &Target,
    before: &BTreeMap<Vec<u8>, State>,
    after: &BTreeMap<Vec<u8>, State>,
    changes: &mut [(Vec<u8>, Change)],
) -> Option<HeldPatch> {
    let root = match open_dir(&t.workspace) {
        Ok(fd) => fd,
        Err(e) => {
            let why = format!("the workspace {} could not be opened: {e}", t.workspace.display());
            changes.iter_mut().for_each(|(_, c)| c.hold = Some(Hold::NotHeld { why: why.clone() }));
            return None;
        }
    };
    let mut planned = vec![];
    for (i, (key, c)) in changes.iter_mut().enumerate() {
        match plan(&root, key, c, before.get(key), after.get(key)) {
            Ok(mut p) => {
                p.index = i;
                planned.push(p);
            }
            Err(why) => c.hold = Some(Hold::NotHeld { why }),
        }
    }
    if planned.is_empty() {
        return None;
    }
    let path = t.file();
    let text: String = planned.iter().map(|p| p.diff.as_str()).collect();
    if let Err(e) = write_patch(&t.dir, &path, text.as_bytes(), false) {
        let why = format!("the patch {} could not be written ({e}), so nothing was undone", path.display());
        for p in &planned {
            changes[p.index].1.hold = Some(Hold::NotHeld { why: why.clone() });
        }
        return None;
    }
    let mut done = vec![];
    for p in &planned {
        match restore(p) {
            Ok(()) => done.push(p),
            Err(e) => {
                changes[p.index].1.hold = Some(Hold::NotHeld { why: format!("could not be put back ({e})") });
            }
        }
    }
    let mut text = text;
    if done.len() < planned.len() {
        // The patch holds only what was put back (it applies to the workspace as it is now).
        text = done.iter().map(|p| p.diff.as_str()).collect();
        if let Err(e) = write_patch(&t.dir, &path, text.as_bytes(), true) {
            for p in &done {
                changes[p.index].1.hold = Some(Hold::NotHeld {
                    why: format!("put back, but the patch {} could not be rewritten without the changes that could not ({e}); it holds them all", path.display()),
                });
            }
            return None;
        }
    }
    if done.is_empty() {
        let _ = std::fs::remove_file(&path);
        return None;
    }
    let sha: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let shown = path.display().to_string();
    for p in &done {
        changes[p.index].1.hold = Some(Hold::Held { patch: shown.clone(), patch_sha256: sha.clone() });
    }
    Some(HeldPatch {
        apply: format!("git -C {} apply {shown}", t.workspace.display()),
        path: shown,
        sha256: sha,
        files: done.len() as u64,
    })
}

/// Whether and how one change can be held, with its diff; why not otherwise.
fn plan(
    root: &OwnedFd,
    key: &[u8],
    c: &Change,
    b: Option<&State>,
    a: Option<&State>,
) -> std::result::Result<Planned, String> {
    let path = std::str::from_utf8(key)
        .ok()
        .filter(|p| patch::plain_path(p))
        .ok_or_else(|| "its name has characters a patch header cannot carry as they are: cannot be held".to_string())?;
    let text = |s: &State, when: &str| -> std::result::Result<Vec<u8>, String> {
        if s.kind != Kind::File {
            return Err(
                "not a regular file (a symlink, fifo or device) at the start or the end: cannot be held as text".into(),
            );
        }
        let content = s.content.clone().ok_or_else(|| {
            if s.size > KEEP_BYTES {
                format!("larger than {} KiB {when}: its contents were not kept, so it cannot be held", KEEP_BYTES >> 10)
            } else {
                format!("its contents {when} could not be read or kept: cannot be held")
            }
        })?;
        if content.contains(&0) || std::str::from_utf8(&content).is_err() {
            return Err(format!("binary or not UTF-8 {when}: cannot be held as text"));
        }
        Ok(content)
    };
    let (before, after) =
        (b.map(|s| text(s, "at the start")).transpose()?, a.map(|s| text(s, "at the end")).transpose()?);
    if let (Some(x), Some(y)) = (b, a) {
        if x.mode != y.mode && patch::git_mode(x.mode) == patch::git_mode(y.mode) {
            return Err(format!(
                "mode {:04o} -> {:04o}: a patch carries only the executable bit, so it cannot be held",
                x.mode, y.mode
            ));
        }
    }
    let diff = patch::file(path, before.as_deref().zip(b.map(|s| s.mode)), after.as_deref().zip(a.map(|s| s.mode)));
    let restore = match (c.change, before, b) {
        (ChangeKind::Created, _, _) => Restore::Remove,
        (_, Some(content), Some(s)) => Restore::Write { content, mode: s.mode, owner: (s.uid, s.gid) },
        _ => return Err("no state at the start to put back".into()),
    };
    let mut comps: Vec<&[u8]> = key.split(|&b| b == b'/').collect();
    let name = comps.pop().unwrap_or_default().to_vec();
    let parent = parent(root, &comps, matches!(restore, Restore::Write { .. }))?;
    Ok(Planned { index: 0, parent, name, restore, diff })
}

/// The directory of a reviewed file, walked from the workspace without following a symlink;
/// directories the session removed are made again (0755) when `make` (a file to recreate).
fn parent(root: &OwnedFd, comps: &[&[u8]], make: bool) -> std::result::Result<OwnedFd, String> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = root.try_clone().map_err(|e| format!("cannot open the workspace: {e}"))?;
    for (i, c) in comps.iter().enumerate() {
        let name = OsStr::from_bytes(c);
        let next = match openat(fd.as_fd(), name, flags, Mode::empty()) {
            Err(nix::errno::Errno::ENOENT) if make => mkdirat(fd.as_fd(), name, Mode::from_bits_truncate(0o755))
                .and_then(|_| openat(fd.as_fd(), name, flags, Mode::empty())),
            r => r,
        };
        fd = next.map_err(|e| {
            let dir = String::from_utf8_lossy(&comps[..=i].join(&b'/')).into_owned();
            match e {
                nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => format!(
                    "its directory `{dir}` is now a symlink or not a directory: not followed, so it is left as it is"
                ),
                e => format!("its directory `{dir}` could not be opened ({e}): left as it is"),
            }
        })?;
    }
    Ok(fd)
}

fn restore(p: &Planned) -> std::io::Result<()> {
    let name = OsStr::from_bytes(&p.name);
    match &p.restore {
        Restore::Remove => Ok(unlinkat(p.parent.as_fd(), name, UnlinkatFlags::NoRemoveDir)?),
        Restore::Write { content, mode, owner } => {
            let (tmp, fd) = temp(p)?;
            let tmp = OsStr::from_bytes(&tmp);
            let written = (|| -> std::io::Result<()> {
                let mut f = std::fs::File::from(fd);
                f.write_all(content)?;
                // The owner first: chown clears set-id bits, which the mode then puts back.
                if nix::unistd::geteuid().is_root() {
                    fchown(f.as_fd(), Some(Uid::from_raw(owner.0)), Some(Gid::from_raw(owner.1)))?;
                }
                fchmod(f.as_fd(), Mode::from_bits_truncate(*mode & 0o7777))?;
                fsync(f.as_fd())?;
                Ok(renameat(p.parent.as_fd(), tmp, p.parent.as_fd(), name)?)
            })();
            if written.is_err() {
                let _ = unlinkat(p.parent.as_fd(), tmp, UnlinkatFlags::NoRemoveDir);
            }
            written
        }
    }
}

/// A new file beside the one to restore, `.NAME.cordon-held.<16 random hex digits>` (a name the
/// session could plant is tried again: it cannot plant them all).
fn temp(p: &Planned) -> std::io::Result<(Vec<u8>, OwnedFd)> {
    use std::io::Read;
    const TRIES: usize = 8;
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    let mut last = None;
    for _ in 0..TRIES {
        let mut r = [0u8; 8];
        urandom.read_exact(&mut r)?;
        let mut tmp = b".".to_vec();
        tmp.extend_from_slice(&p.name);
        tmp.extend_from_slice(format!(".cordon-held.{:016x}", u64::from_ne_bytes(r)).as_bytes());
        match openat(p.parent.as_fd(), OsStr::from_bytes(&tmp), flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => return Ok((tmp, fd)),
            Err(nix::errno::Errno::EEXIST) => last = Some(nix::errno::Errno::EEXIST),
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other(format!(
        "{TRIES} random temporary names beside it already existed ({})",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

fn open_dir(p: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
}

/// Writes the patch (0600) in `dir` (made 0700; it must be this user's and writable by no one
/// else); `replace`: over the first version, through a new file and a rename.
fn write_patch(dir: &Path, path: &Path, text: &[u8], replace: bool) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let dfd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = fstat(dfd.as_fd())?;
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not this user's own directory, or others may write it",
            dir.display()
        )));
    }
    let name = path.file_name().unwrap_or_default();
    let mut tmp = name.to_os_string();
    tmp.push(".new");
    let first: &OsStr = if replace { &tmp } else { name };
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dfd.as_fd(), first, flags, Mode::from_bits_truncate(0o600))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(text)?;
    fsync(f.as_fd())?;
    if replace {
        renameat(dfd.as_fd(), first, dfd.as_fd(), name)?;
    }
    Ok(())
}
