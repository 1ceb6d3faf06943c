//! A devbox's workspace on the real kernel: [`MountOp::Overlay`] applied by the mount applier in a
//! mount namespace of its own. Writes land in the upper directory only; the snapshot (lower) is
//! unchanged; the mount is not seen outside. unshare(CLONE_NEWNS) needs a single-threaded caller,
//! so this test has no harness: `main` runs the mounting side in a fresh process of this binary
//! (`CORDON_OVERLAY_CASE=1`) and judges from outside. Needs root; without it the test fails unless
//! CORDON_TESTS_ALLOW_SKIP is set.

use cordon_sandbox::apply::mounts;
use cordon_sandbox::plan::ns::{MountOp, NsPlan};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Ok(dir) = std::env::var("CORDON_OVERLAY_CASE") {
        inside(Path::new(&dir));
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        if std::env::var_os("CORDON_TESTS_ALLOW_SKIP").is_some() {
            println!("SKIPPED: the overlay test needs root");
            return;
        }
        panic!("this test needs root (it mounts overlayfs); set CORDON_TESTS_ALLOW_SKIP=1 to skip it explicitly");
    }
    let t = Removed(PathBuf::from(format!("/var/tmp/cordon-overlay-test-{}", std::process::id())));
    let (lower, upper, work, ws) = layout(&t.0);
    for d in [&lower, &upper, &work, &ws] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(lower.join("app.py"), "print('v1')\n").expect("app.py");
    std::fs::write(lower.join("gone.txt"), "remove me\n").expect("gone.txt");
    let st = Command::new(std::env::current_exe().expect("this binary"))
        .env("CORDON_OVERLAY_CASE", &t.0)
        .status()
        .expect("run the mounting side");
    assert!(st.success(), "the mounting side failed: {st}");
    // The snapshot is as it was.
    assert_eq!(std::fs::read_to_string(lower.join("app.py")).expect("lower app.py"), "print('v1')\n");
    assert_eq!(std::fs::read_to_string(lower.join("gone.txt")).expect("lower gone.txt"), "remove me\n");
    assert!(!lower.join("new.txt").exists(), "a write reached the snapshot");
    // Every write is in the upper directory: a new file, a changed one, and a removal (a whiteout).
    assert_eq!(std::fs::read_to_string(upper.join("new.txt")).expect("upper new.txt"), "made in the devbox\n");
    assert_eq!(std::fs::read_to_string(upper.join("app.py")).expect("upper app.py"), "print('v2')\n");
    let wh = std::fs::symlink_metadata(upper.join("gone.txt")).expect("a whiteout");
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "gone.txt in upper is not a whiteout");
    // The mount point on the host saw none of it, and no overlay is left in the host's table.
    assert_eq!(std::fs::read_dir(&ws).expect("ws").count(), 0, "the overlay was seen outside its namespace");
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!table.contains(&*t.0.to_string_lossy()), "a mount under the test's directory is left:\n{table}");
    println!("test an_overlay_workspace_writes_to_its_upper_only ... ok");
}

fn layout(root: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    (root.join("snapshot/code"), root.join("box/upper"), root.join("box/work"), root.join("box/ws"))
}

/// The mounting side: its own mount namespace, the overlay applied as a session's init would, then
/// the writes a devbox's agent makes.
fn inside(root: &Path) {
    let (lower, upper, work, ws) = layout(root);
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare a mount namespace");
    let plan = NsPlan {
        user: false,
        pid: false,
        mount: true,
        ipc: false,
        uts: false,
        net: false,
        uid: 0,
        gid: 0,
        mounts: vec![MountOp::MakePrivate, MountOp::Overlay { lower, upper, work, dst: ws.clone() }],
        hide: None,
        hostname: None,
        memfd_noexec: false,
    };
    mounts::apply(&plan).expect("the overlay mounts");
    assert_eq!(std::fs::read_to_string(ws.join("app.py")).expect("the snapshot's file"), "print('v1')\n");
    std::fs::write(ws.join("app.py"), "print('v2')\n").expect("change a file");
    std::fs::write(ws.join("new.txt"), "made in the devbox\n").expect("make a file");
    std::fs::remove_file(ws.join("gone.txt")).expect("remove a file");
    assert!(!ws.join("gone.txt").exists());
}

/// A directory removed when dropped (also when the test fails).
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
