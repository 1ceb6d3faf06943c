//! tracefs and bpffs: mounted when missing (a new machine has neither), unmounted again by the guard
//! so the host is left as found. The sensor's own programs (tp_btf, unpinned) need neither; they are
//! mounted so tools and `cordon doctor` see the usual layout while a sensor runs.

use std::path::Path;

pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const BPFFS: &str = "/sys/fs/bpf";

pub fn is_mounted(dir: &str, fstype: &str) -> bool {
    cordon_sandbox::caps::mount_table().iter().any(|m| m.point == Path::new(dir) && m.fstype == fstype)
}

#[derive(Debug, Default)]
pub struct MountGuard {
    mounted: Vec<&'static str>,
}

/// Mounts what is missing; errors are returned as notes (the sensor still works without them).
pub fn ensure() -> (MountGuard, Vec<String>) {
    let mut g = MountGuard::default();
    let mut notes = vec![];
    for (dir, fs) in [(TRACEFS, "tracefs"), (BPFFS, "bpf")] {
        if is_mounted(dir, fs) || !Path::new(dir).is_dir() {
            continue;
        }
        match nix::mount::mount(Some(fs), dir, Some(fs), nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC, None::<&str>) {
            Ok(()) => g.mounted.push(dir),
            Err(e) => notes.push(format!("could not mount {fs} at {dir}: {e}")),
        }
    }
    (g, notes)
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        for d in self.mounted.drain(..).rev() {
            // Lazy: another sensor started meanwhile may be reading it.
            let _ = nix::mount::umount2(d, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
