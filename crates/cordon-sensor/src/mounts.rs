//! tracefs and bpffs: whether the host has them mounted, for `cordon doctor`. The sensor never
//! mounts them: its programs are tp_btf (attached by BTF id through a BPF link) and cgroup-bpf
//! links, and nothing is pinned, so it needs neither; and a mount made by cordon would outlive a
//! cordon killed with SIGKILL.

use std::path::Path;

pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const BPFFS: &str = "/sys/fs/bpf";

pub fn is_mounted(dir: &str, fstype: &str) -> bool {
    crate::cgroup::mount_table().iter().any(|m| m.point == Path::new(dir) && m.fstype == fstype)
}
