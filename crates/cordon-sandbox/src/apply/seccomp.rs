//! Builds the seccomp BPF program in the supervisor with cordon's own small assembler (see bpf.rs);
//! the child installs it with a raw seccomp(2) call.

use crate::plan::seccomp::{native_arch, SeccompPlan};

/// Compiles the plan into a BPF program for the native architecture.
pub fn build(plan: &SeccompPlan) -> Result<Vec<libc::sock_filter>, String> {
    let arch = native_arch().ok_or_else(|| format!("seccomp: no syscall table for {}", std::env::consts::ARCH))?;
    super::bpf::compile(arch, &plan.rules, plan.notify, plan.kill)
}
