//! Code that turns plans into syscalls. Each file applies one layer.

pub mod bpf;
pub mod cgroup;
pub mod landlock;
pub mod mounts;
pub mod placeholders;
pub mod process;
pub mod seccomp;
