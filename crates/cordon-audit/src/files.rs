//! The files of one audit log and how they are created: every file 0600, every directory the store
//! creates 0700, writes that must survive power loss fsynced (file and directory).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The signing key, next to the database.
pub fn key_path(db: &Path) -> PathBuf {
    db.with_extension("key")
}

/// The signed head: the last sealed record, outside the database, so that truncation shows.
pub fn head_path(db: &Path) -> PathBuf {
    db.with_extension("head")
}

/// The lock that orders writers of the head (`Store::write_head`): a file of its own, never the
/// database (closing a descriptor of the database drops SQLite's POSIX locks in this process).
pub fn lock_path(db: &Path) -> PathBuf {
    db.with_extension("lock")
}

/// Opens (making it, 0600, when missing) the log's lock file; a symlink there is refused.
pub fn open_lock(p: &Path) -> Result<std::fs::File, std::io::Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(p)
}

/// SQLite's companions of the database file.
pub fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The spool directory beside the database.
pub fn spool_dir(db: &Path) -> PathBuf {
    crate::files::sidecar(db, ".spool")
}

/// Where `cordon audit ship` keeps, per server, the last record the server acknowledged: beside
/// the log, masked from sessions like the log itself (a session must not move its own cursor).
pub fn ship_dir(db: &Path) -> PathBuf {
    crate::files::sidecar(db, ".ship")
}

/// Where `cordon run --identity` keeps, per server, the policies it fetched and the server's pinned
/// key: beside the log, masked from sessions like it (a session must not change its next policy).
pub fn policy_cache_dir(db: &Path) -> PathBuf {
    crate::files::sidecar(db, ".policies")
}

/// The fallback directory, usually on another filesystem than the log (None: none usable).
pub fn spool_fallback_dir(db: &Path) -> Option<PathBuf> {
    let tag: String = <sha2::Sha256 as sha2::Digest>::digest(db.as_os_str().as_encoded_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let base = if euid() == 0 {
        PathBuf::from("/run/cordon/spool")
    } else {
        let rt = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|p| p.is_absolute())?;
        check_owned(&rt, "XDG_RUNTIME_DIR").ok()?;
        rt.join("cordon-spool")
    };
    Some(base.join(tag))
}

/// Every file that belongs to the log (existing or not): what no output flag may overwrite and no
/// session may reach. Includes the fallback spool directory.
pub fn log_files(db: &Path) -> Vec<PathBuf> {
    let mut v = vec![db.to_path_buf()];
    v.extend(["-wal", "-shm", "-journal"].iter().map(|s| sidecar(db, s)));
    v.extend([key_path(db), head_path(db), lock_path(db), spool_dir(db), ship_dir(db), policy_cache_dir(db)]);
    v.push(crate::birth::candidate_path(db));
    v.extend(spool_fallback_dir(db));
    v
}

/// `path` made absolute against the working directory, symlinks resolved wherever they exist — in
/// the directories and in the last component, even when its target does not exist yet — and
/// `.`/`..` in the part that does not exist taken lexically.
pub fn absolute(path: &Path) -> Result<PathBuf, std::io::Error> {
    let mut p = std::path::absolute(path)?;
    // A chain of symbolic links at the end (a dangling one included): follow it by hand.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)?;
                let dir = p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
                p = lexical(&dir.join(target));
            }
            _ => break,
        }
    }
    let parts: Vec<std::path::Component> = p.components().collect();
    // The longest prefix that exists is resolved by the kernel (symlinks and all).
    let (mut out, from) = (1..=parts.len())
        .rev()
        .find_map(|n| parts[..n].iter().collect::<PathBuf>().canonicalize().ok().map(|r| (r, n)))
        .unwrap_or_else(|| (PathBuf::from("/"), 1));
    for c in &parts[from..] {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

/// `.` and `..` removed without looking at the filesystem.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// A file or directory of the log must be ours and writable by nobody else: another user who could
/// plant or edit one (a key, a head, a spool file) in a shared directory could forge the record.
pub fn check_owned(path: &Path, what: &str) -> Result<(), String> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{what} {}: {e}", path.display())),
    };
    if m.file_type().is_symlink() {
        return Err(format!("{what} {} is a symbolic link; the log's files must be plain files", path.display()));
    }
    if m.uid() != euid() {
        return Err(format!(
            "{what} {} belongs to uid {}, not to this user ({}): not trusted",
            path.display(),
            m.uid(),
            euid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} {} is writable by other users (mode {:o}): not trusted",
            path.display(),
            m.mode() & 0o777
        ));
    }
    Ok(())
}

/// A log file must have one name: a hard link elsewhere (in a tree a session may write) would be a
/// second door to it.
pub fn check_single_link(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.nlink() > 1 => Err(format!(
            "{} has {} hard links: another name for the log's file may be reachable from a session; remove the extra links",
            path.display(),
            m.nlink()
        )),
        _ => Ok(()),
    }
}

/// Creates `dir` and its missing parents with mode 0700; an existing directory keeps its mode
/// (a shared directory such as /var/tmp must not change).
pub fn private_dirs(dir: &Path) -> Result<(), std::io::Error> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path` with mode 0600 if it does not exist (SQLite then gives its -wal and -shm files the
/// same mode); tightens an existing file we own to 0600.
pub fn private_file(path: &Path) -> Result<(), std::io::Error> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => tighten(path),
        Err(e) => Err(e),
    }
}

/// Mode 0600 for an existing file of ours (a log made by an older cordon, or SQLite's sidecars).
pub fn tighten(path: &Path) -> Result<(), std::io::Error> {
    let md = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if md.uid() == euid() && md.mode() & 0o077 != 0 && md.is_file() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` so that after a crash or a power loss either the old or the new content
/// is there, whole: a private temporary file, fsync, rename. The directory is not fsynced: a rename
/// lost to a power cut leaves the previous head, which still matches the log (it only names an
/// earlier record), and that saves a disk flush per session.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), std::io::Error> {
    let tmp = unique_tmp(path);
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// A temporary name beside `path` that no other process picks (pid and a counter).
pub fn unique_tmp(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".tmp.{}.{n}", std::process::id()));
    PathBuf::from(s)
}

/// fsync of the directory holding `path`, so that a rename or a new file in it is durable.
pub fn sync_dir(path: &Path) -> Result<(), std::io::Error> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// The bytes of the regular file at `path` (None: there is none), at most `max` of them. Opened
/// without blocking and judged by its descriptor: a FIFO planted in a key's or a head's place
/// would otherwise hang every reader of the log.
pub fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let f = match OpenOptions::new().read(true).custom_flags(libc_nonblock()).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let m = f.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > max {
        return Err(format!("{} is larger than {max} bytes: not one of the log's files", path.display()));
    }
    Ok(Some(buf))
}

fn libc_nonblock() -> i32 {
    nix::fcntl::OFlag::O_NONBLOCK.bits()
}
