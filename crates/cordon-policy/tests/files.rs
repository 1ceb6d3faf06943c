//! Policy files as a hostile or clumsy user gives them: devices, fifos, directories, files too large,
//! bytes that are not UTF-8, symlinks. Real files, fifos and links in a temporary directory that each
//! test removes; a call that does not return in time fails the test instead of hanging it.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A temporary directory, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Tmp {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "cordon-policy-files-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("mkdir tmp");
        Tmp(p)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, bytes).expect("write");
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cordon_policy::load(path)` on a thread; panics if it has not returned within `secs`.
fn load_within(secs: u64, path: &Path) -> Result<cordon_policy::Loaded, cordon_policy::PolicyError> {
    let spec = path.display().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cordon_policy::load(&spec));
    });
    rx.recv_timeout(Duration::from_secs(secs)).unwrap_or_else(|_| {
        panic!("loading {} did not return within {secs}s (unbounded read or blocked open)", path.display())
    })
}

fn load_err(secs: u64, path: &Path) -> String {
    match load_within(secs, path) {
        Ok(_) => panic!("{} was accepted as a policy", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn dev_zero_is_refused_at_the_size_limit_quickly() {
    let t = Instant::now();
    let e = load_err(5, Path::new("/dev/zero"));
    assert!(e.contains("/dev/zero") && e.contains("1 MiB"), "error names the file and the limit: {e}");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
}

#[test]
fn a_regular_file_over_the_limit_is_refused_and_one_at_the_limit_is_read() {
    let tmp = Tmp::new();
    let head = "version = 1\nname = \"big\"\n";
    let limit = 1usize << 20;
    let pad = |n: usize| format!("{head}#{}\n", "x".repeat(n - head.len() - 2));
    let at = tmp.write("at.toml", pad(limit));
    assert_eq!(std::fs::metadata(&at).map(|m| m.len()).ok(), Some(limit as u64));
    load_within(5, &at).unwrap_or_else(|e| panic!("a file of exactly the limit loads: {e}"));
    let over = tmp.write("over.toml", pad(limit + 1));
    let e = load_err(5, &over);
    assert!(e.contains(&over.display().to_string()) && e.contains("1 MiB"), "{e}");
}

#[test]
fn extends_of_dev_zero_is_refused_at_the_extends_entry() {
    let tmp = Tmp::new();
    let p = tmp.write("p.toml", "version = 1\nextends = [\"/dev/zero\"]\n");
    let e = match load_within(5, &p) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    let d = e.diagnostics();
    assert_eq!(d.len(), 1, "{e}");
    assert_eq!((d[0].line, d[0].col, d[0].field.as_str()), (2, 12, "extends[0]"), "{e}");
    assert!(d[0].message.contains("/dev/zero") && d[0].message.contains("1 MiB"), "{e}");
}

#[test]
fn a_fifo_nobody_writes_to_is_refused_without_waiting() {
    let tmp = Tmp::new();
    let fifo = tmp.0.join("policy.toml");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().expect("spawn mkfifo");
    assert!(st.success(), "mkfifo");
    let t = Instant::now();
    let e = load_err(5, &fifo);
    assert!(e.contains(&fifo.display().to_string()) && e.contains("fifo"), "{e}");
    assert!(e.contains("regular file"), "says what is expected: {e}");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    // The same through `extends`.
    let p = tmp.write("top.toml", "version = 1\nextends = [\"policy.toml\"]\n");
    let e = load_err(5, &p);
    assert!(e.contains("fifo") && e.contains("extends[0]"), "{e}");
}

#[test]
fn a_directory_is_refused_with_its_kind() {
    let tmp = Tmp::new();
    let e = load_err(5, &tmp.0);
    assert!(e.contains(&tmp.0.display().to_string()) && e.contains("directory"), "{e}");
}

#[test]
fn a_file_that_is_not_utf8_is_refused_with_its_name_and_position() {
    let tmp = Tmp::new();
    let p = tmp.write("latin1.toml", b"version = 1\nname = \"caf\xe9\"\n");
    let e = load_err(5, &p);
    assert!(e.contains(&p.display().to_string()), "{e}");
    assert!(e.contains("UTF-8") && e.contains("line 2, column 12"), "{e}");
}

/// `extends` in a file reached through a symlink is resolved from the directory of the link's target
/// (the file's real place), as the policy docs say: a team policy linked into a project extends the
/// files that live next to it, not files that happen to sit next to the link.
#[test]
fn a_symlinked_policy_extends_relative_to_its_target() {
    let tmp = Tmp::new();
    tmp.write("real/base.toml", "version = 1\nname = \"real-base\"\n[limits]\nprocesses = 7\n");
    tmp.write("real/team.toml", "version = 1\nname = \"team\"\nextends = [\"base.toml\"]\n");
    tmp.write("project/base.toml", "version = 1\nname = \"decoy\"\n[limits]\nprocesses = 99\n");
    let link = tmp.0.join("project/team.toml");
    std::os::unix::fs::symlink("../real/team.toml", &link).expect("symlink");
    // A link to the link: followed to the end.
    let link2 = tmp.0.join("project/link-to-link.toml");
    std::os::unix::fs::symlink(&link, &link2).expect("symlink");
    let cx = cordon_policy::Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
    for top in [&link, &link2] {
        let l = load_within(5, top).unwrap_or_else(|e| panic!("{}: {e}", top.display()));
        assert_eq!(l.layers.len(), 2, "{:?}", l.layers.iter().map(|x| &x.name).collect::<Vec<_>>());
        assert!(l.layers[0].text.contains("real-base"), "extends read {} instead of real/base.toml", l.layers[0].name);
        assert!(l.layers[0].name.ends_with("real/base.toml"), "{}", l.layers[0].name);
        assert_eq!(cordon_policy::compile(&l, &cx).limits.processes, Some(7));
    }
}

/// The same file reached by two names is one layer, and a cycle through a symlink is a cycle.
#[test]
fn a_file_reached_by_two_names_is_one_layer_and_a_linked_cycle_is_found() {
    let tmp = Tmp::new();
    tmp.write("base.toml", "version = 1\n[limits]\nprocesses = 7\n");
    std::os::unix::fs::symlink("base.toml", tmp.0.join("alias.toml")).expect("symlink");
    let top = tmp.write("top.toml", "version = 1\nextends = [\"base.toml\", \"alias.toml\"]\n");
    let l = load_within(5, &top).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.layers.len(), 2, "{:?}", l.layers.iter().map(|x| &x.name).collect::<Vec<_>>());
    let a = tmp.write("a.toml", "version = 1\nextends = [\"self-link.toml\"]\n");
    std::os::unix::fs::symlink("a.toml", tmp.0.join("self-link.toml")).expect("symlink");
    let e = load_err(5, &a);
    assert!(e.contains("a.toml:2:12") && e.contains("extends itself"), "{e}");
}
