//! Builds the seccomp BPF program in the supervisor with cordon's own small assembler (see bpf.rs);
//! the child installs it with a raw seccomp(2) call.

use crate::plan::seccomp::{native_arch, SeccompPlan};

/// Why the seccomp program could not be built. These are limits of cordon's tables and assembler,
/// not of the host: a policy that reaches one is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: no syscall table for {arch}")]
    NoSyscallTable { arch: &'static str },
    #[error("seccomp: rule for {name} compares beyond 32 bits or past arg 5")]
    RuleTooWide { name: String },
    #[error("seccomp: backward jump")]
    BackwardJump,
    #[error("seccomp: conditional jump too far")]
    JumpTooFar { distance: usize },
    #[error("seccomp: program of {len} instructions exceeds the kernel's 4096")]
    TooLong { len: usize },
}

/// Compiles the plan into a BPF program for the native architecture.
pub fn build(plan: &SeccompPlan) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let arch = native_arch().ok_or(SeccompError::NoSyscallTable { arch: std::env::consts::ARCH })?;
    use crate::ablate::{off, Ablate};
    if Ablate::ALL.iter().any(|a| off(*a)) {
        let kept: Vec<_> =
            plan.rules.iter().filter(|r| !Ablate::seccomp_group(&r.name).is_some_and(off)).cloned().collect();
        return super::bpf::compile_watching(arch, &kept, &plan.watch, plan.notify, plan.kill);
    }
    super::bpf::compile_watching(arch, &plan.rules, &plan.watch, plan.notify, plan.kill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::seccomp::ResolvedRule;
    use cordon_policy::syscalls::{Arch, ArgCmp, CmpOp, DenyAction};

    #[test]
    fn a_rule_the_assembler_cannot_express_is_refused_by_name() {
        let rule = ResolvedRule {
            nr: 1,
            name: "write".into(),
            when: vec![ArgCmp { arg: 6, op: CmpOp::Eq, value: 0 }],
            action: DenyAction::Errno(libc::EPERM),
            reason: "test".into(),
        };
        let e = super::super::bpf::compile(Arch::X86_64, &[rule], false, false).expect_err("arg 6");
        assert_eq!(e, SeccompError::RuleTooWide { name: "write".into() });
        assert_eq!(e.to_string(), "seccomp: rule for write compares beyond 32 bits or past arg 5");
    }
}
