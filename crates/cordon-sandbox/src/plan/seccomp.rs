//! seccomp: the policy's deny rules resolved to syscall numbers for the native architecture.
//! Denials the supervisor should report go through USER_NOTIF (answered with the rule's errno, never
//! CONTINUE); the rest are plain ERRNO.

use super::Guarantee;
use crate::caps::KernelCaps;
use cordon_policy::syscalls::{Arch, ArgCmp, DenyAction, SyscallRule};
use cordon_policy::CompiledPolicy;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResolvedRule {
    pub nr: i32,
    pub name: String,
    pub when: Vec<ArgCmp>,
    pub action: DenyAction,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeccompPlan {
    pub enabled: bool,
    /// Report denials through user notification.
    pub notify: bool,
    pub kill: bool,
    pub arch: String,
    pub rules: Vec<ResolvedRule>,
    /// Write-intent calls shown to the supervisor and let through (see [`super::write_watch`]);
    /// empty without user notification.
    pub watch: Vec<super::write_watch::WatchedCall>,
}

pub fn native_arch() -> Option<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Arch::X86_64),
        "aarch64" => Some(Arch::Aarch64),
        _ => None,
    }
}

/// Resolves rules for one architecture; rules that do not exist there are left out.
pub fn resolve(rules: &[SyscallRule], arch: Arch) -> Vec<ResolvedRule> {
    rules
        .iter()
        .filter(|r| r.arches.contains(&arch))
        .filter_map(|r| {
            let nr = cordon_policy::syscall_table::number(arch, &r.name)?;
            Some(ResolvedRule {
                nr,
                name: r.name.clone(),
                when: r.when.clone(),
                action: r.action,
                reason: r.reason.clone(),
            })
        })
        .collect()
}

pub fn plan(p: &CompiledPolicy, caps: &KernelCaps, g: &mut Vec<Guarantee>) -> SeccompPlan {
    let Some(arch) = native_arch() else {
        g.push(Guarantee::degraded(
            "syscalls",
            "dangerous kernel interfaces are refused",
            format!("a seccomp table for {}", std::env::consts::ARCH),
            "no syscall filter",
        ));
        return SeccompPlan {
            enabled: false,
            notify: false,
            kill: false,
            arch: std::env::consts::ARCH.into(),
            rules: vec![],
            watch: vec![],
        };
    };
    if !caps.seccomp_filter {
        g.push(Guarantee::degraded(
            "syscalls",
            "dangerous kernel interfaces are refused",
            "seccomp filter mode",
            "no syscall filter",
        ));
        return SeccompPlan {
            enabled: false,
            notify: false,
            kill: false,
            arch: format!("{arch:?}"),
            rules: vec![],
            watch: vec![],
        };
    }
    let rules = resolve(&p.syscalls, arch);
    let notify = caps.seccomp_user_notif;
    g.push(Guarantee::ok(
        "syscalls",
        format!(
            "{} deny rules (bpf, mount, ptrace, io_uring, keyctl, namespaces, raw sockets, TIOCSTI, ...)",
            rules.len()
        ),
        format!(
            "seccomp-bpf ({}), {}",
            std::env::consts::ARCH,
            if p.kill_on_deny { "process killed" } else { "call fails with EPERM" }
        ),
    ));
    if caps.seccomp_user_notif && p.syscalls.iter().any(|r| r.action == DenyAction::Supervise) {
        g.push(Guarantee::ok(
            "process",
            "no program runs from memory: every memfd is created non-executable",
            "memfd_create performed by the supervisor (seccomp user notification + ADDFD) with MFD_NOEXEC_SEAL",
        ));
    } else if p.syscalls.iter().any(|r| r.action == DenyAction::Supervise) {
        g.push(Guarantee::degraded(
            "process",
            "no program runs from memory (memfd)",
            "seccomp user notification",
            "memfd contents can be executed",
        ));
    }
    if !notify && !p.kill_on_deny {
        g.push(Guarantee::degraded(
            "report",
            "each refused syscall is itemised in the session summary",
            "seccomp user notification",
            "denials are enforced but not itemised",
        ));
    }
    // Killing on a deny ends the session at the first refusal: nothing left to explain.
    let watch = if notify && !p.kill_on_deny {
        let denied: Vec<i32> = rules.iter().map(|r| r.nr).collect();
        super::write_watch::plan(arch, &denied)
    } else {
        vec![]
    };
    SeccompPlan { enabled: true, notify, kill: p.kill_on_deny, arch: format!("{arch:?}").to_lowercase(), rules, watch }
}

/// Does a notified syscall match this rule's argument conditions?
pub fn matches(rule: &ResolvedRule, nr: i32, args: &[u64; 6]) -> bool {
    use cordon_policy::syscalls::CmpOp;
    rule.nr == nr
        && rule.when.iter().all(|c| {
            let a = args[c.arg as usize];
            match c.op {
                CmpOp::Eq => a == c.value,
                CmpOp::Gt => a > c.value,
                CmpOp::MaskedEq(m) => a & m == c.value,
            }
        })
}
