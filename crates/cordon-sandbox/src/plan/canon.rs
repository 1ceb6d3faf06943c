//! Path lookups memoized for one plan: planning the root asks the same questions many times (every
//! grant under $HOME resolves $HOME again; `realpath` reads each component with `readlink`), and a
//! start paid ~330 `statx` and ~60 `readlink` for them. A [`Canon`] asks the kernel once per path
//! and answers the rest from memory. It lives only while one plan is made: the host may change
//! between starts, and a stale answer would bind the wrong tree.

use std::collections::HashMap;
use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

/// As the kernel's limit on symlinks followed in one lookup (ELOOP beyond it).
const MAX_LINKS: u32 = 40;

/// `lstat`, `readlink` and `realpath` answers for one plan.
#[derive(Default)]
pub struct Canon {
    /// `lstat` of each path asked (None: absent or unreadable).
    stat: HashMap<PathBuf, Option<Metadata>>,
    /// A symlink's target as written.
    link: HashMap<PathBuf, Option<PathBuf>>,
    /// The canonical form of a path whose parent is already canonical.
    real: HashMap<PathBuf, Option<PathBuf>>,
}

impl Canon {
    pub fn new() -> Self {
        Self::default()
    }

    /// `symlink_metadata`, once per path.
    pub fn lstat(&mut self, p: &Path) -> Option<Metadata> {
        if let Some(m) = self.stat.get(p) {
            return m.clone();
        }
        let m = p.symlink_metadata().ok();
        self.stat.insert(p.to_path_buf(), m.clone());
        m
    }

    /// True when `p` exists and is a symlink (not followed).
    pub fn is_symlink(&mut self, p: &Path) -> bool {
        self.lstat(p).is_some_and(|m| m.file_type().is_symlink())
    }

    /// True when `p` is a directory, the symlink not followed.
    pub fn is_dir_nofollow(&mut self, p: &Path) -> bool {
        self.lstat(p).is_some_and(|m| m.is_dir())
    }

    /// `read_link`, once per path.
    pub fn read_link(&mut self, p: &Path) -> Option<PathBuf> {
        if let Some(t) = self.link.get(p) {
            return t.clone();
        }
        let t = std::fs::read_link(p).ok();
        self.link.insert(p.to_path_buf(), t.clone());
        t
    }

    /// `std::fs::canonicalize`, each component looked up once for the whole plan. A relative path
    /// goes to the kernel as it is (the planner's paths are absolute).
    pub fn canonicalize(&mut self, p: &Path) -> Option<PathBuf> {
        if !p.is_absolute() {
            return std::fs::canonicalize(p).ok();
        }
        let mut hops = 0;
        self.resolve(p, &mut hops)
    }

    fn resolve(&mut self, p: &Path, hops: &mut u32) -> Option<PathBuf> {
        let mut cur = PathBuf::from("/");
        for c in p.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Prefix(_) => return None,
                // `cur` is canonical, so its parent is the real "..": as realpath, which also
                // refuses ".." after a non-directory (ENOTDIR).
                Component::ParentDir => {
                    if !self.is_dir_nofollow(&cur) {
                        return None;
                    }
                    cur.pop();
                }
                Component::Normal(name) => cur = self.step(cur.join(name), hops)?,
            }
        }
        Some(cur)
    }

    /// `at`, whose parent is canonical, with its last component resolved.
    fn step(&mut self, at: PathBuf, hops: &mut u32) -> Option<PathBuf> {
        if let Some(r) = self.real.get(&at) {
            return r.clone();
        }
        let r = match self.lstat(&at) {
            None => None,
            Some(m) if m.file_type().is_symlink() => {
                *hops += 1;
                if *hops > MAX_LINKS {
                    // A loop: not remembered, the count belongs to this lookup only.
                    return None;
                }
                let target = self.read_link(&at)?;
                let full = at.parent().unwrap_or(Path::new("/")).join(target);
                self.resolve(&full, hops)
            }
            Some(_) => Some(at.clone()),
        };
        self.real.insert(at, r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The answers are realpath's, for links absolute, relative, chained, through `..`, dangling
    /// and looping, and for paths that do not exist or pass through a file.
    #[test]
    fn the_memo_answers_as_realpath_does() {
        let t = crate::testutil::Tmp::new("canon");
        let d = std::fs::canonicalize(&t.0).expect("tmp");
        std::fs::create_dir_all(d.join("a/b/c")).expect("mkdir");
        std::fs::write(d.join("a/file"), "x").expect("file");
        symlink(d.join("a/b"), d.join("abs")).expect("link");
        symlink("a/b/c", d.join("rel")).expect("link");
        symlink("rel", d.join("chain")).expect("link");
        symlink("../../b", d.join("a/b/c/up")).expect("link");
        symlink("nowhere", d.join("dangling")).expect("link");
        symlink("loop2", d.join("loop1")).expect("link");
        symlink("loop1", d.join("loop2")).expect("link");
        let asks = [
            "a",
            "a/b/c",
            "abs",
            "abs/c",
            "rel",
            "chain",
            "chain/up",
            "chain/up/c/up/..",
            "a/b/../b/c/.",
            "dangling",
            "loop1",
            "missing",
            "a/file",
            "a/file/x",
            "a/file/..",
            "abs/../file",
        ];
        let mut c = Canon::new();
        for round in 0..2 {
            for a in asks {
                let p = d.join(a);
                assert_eq!(c.canonicalize(&p), std::fs::canonicalize(&p).ok(), "{a} (round {round})");
            }
        }
        assert!(c.is_symlink(&d.join("abs")) && !c.is_symlink(&d.join("a")));
        assert_eq!(c.read_link(&d.join("rel")), Some(PathBuf::from("a/b/c")));
    }

    /// Each path is asked of the kernel once: a second answer comes from memory even after the
    /// host changed (the memo lives for one plan).
    #[test]
    fn a_path_is_looked_up_once() {
        let t = crate::testutil::Tmp::new("canon-once");
        let d = std::fs::canonicalize(&t.0).expect("tmp");
        std::fs::create_dir_all(d.join("x")).expect("mkdir");
        let mut c = Canon::new();
        assert_eq!(c.canonicalize(&d.join("x")), Some(d.join("x")));
        std::fs::remove_dir(d.join("x")).expect("rmdir");
        assert_eq!(c.canonicalize(&d.join("x")), Some(d.join("x")));
        assert!(c.lstat(&d.join("x")).is_some());
    }
}
