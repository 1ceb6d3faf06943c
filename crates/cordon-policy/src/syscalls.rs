//! The seccomp baseline as data: every entry names the syscall, the argument condition under which it
//! is denied, the errno returned, and the reason, which denial messages quote. Architecture-neutral:
//! the sandbox resolves names to numbers per architecture (x86_64 and aarch64 are supported).

use serde::Serialize;

/// CPU architectures cordon builds seccomp filters for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Aarch64,
}

pub const ALL_ARCHES: &[Arch] = &[Arch::X86_64, Arch::Aarch64];
const X86_ONLY: &[Arch] = &[Arch::X86_64];

/// A comparison on one syscall argument. Several in one entry are ANDed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArgCmp {
    pub arg: u8,
    pub op: CmpOp,
    pub value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    /// `(arg & mask) == value`
    MaskedEq(u64),
    Gt,
}

/// What the filter does when an entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyAction {
    /// Fail the call with this errno and report it in the session summary.
    Errno(i32),
    /// Fail the call with this errno without a report: the caller is expected to fall back
    /// (libc retries clone3 as clone).
    QuietErrno(i32),
    /// Kill the process.
    Kill,
    /// Not denied: the supervisor performs the call itself with safer arguments and hands back the
    /// result (memfd_create: always non-executable).
    Supervise,
}

impl DenyAction {
    /// A quiet answer (clone3 -> ENOSYS, and libc falls back) is a probe, not a refusal: neither
    /// reported nor watched by the sensor.
    pub fn is_quiet(&self) -> bool {
        matches!(self, DenyAction::QuietErrno(_))
    }
}

/// One deny rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyscallRule {
    pub name: String,
    pub when: Vec<ArgCmp>,
    pub action: DenyAction,
    pub reason: String,
    pub arches: Vec<Arch>,
    /// `baseline` or the policy file that added the rule.
    pub origin: String,
}

pub const EPERM: i32 = 1;
pub const ENOSYS: i32 = 38;

const CLONE_NS_FLAGS: &[(u64, &str)] = &[
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
];
const CLONE_NEWTIME: u64 = 0x80;

const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const AF_NETLINK: u64 = 16;
const SOCK_RAW: u64 = 3;
const SOCK_TYPE_MASK: u64 = 0xf;
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;
const ADDR_NO_RANDOMIZE: u64 = 0x0040000;
const READ_IMPLIES_EXEC: u64 = 0x0400000;

struct Plain(&'static str, &'static str);

/// Syscalls denied outright, grouped by why (THREATS.md category 5 and 6).
const PLAIN: &[(&str, &[Plain])] = &[
    (
        "reaching other processes",
        &[
            Plain("ptrace", "tracing or controlling another process"),
            Plain("process_vm_readv", "reading another process's memory"),
            Plain("process_vm_writev", "writing another process's memory"),
            Plain("kcmp", "comparing kernel objects of other processes"),
            Plain("pidfd_getfd", "stealing a file descriptor from another process"),
        ],
    ),
    ("namespaces", &[Plain("setns", "entering another process's namespaces")]),
    (
        "mounts",
        &[
            Plain("mount", "changing the mount table"),
            Plain("umount2", "changing the mount table"),
            Plain("pivot_root", "changing the root filesystem"),
            Plain("chroot", "changing the root directory"),
            Plain("fsopen", "creating a filesystem context (new mount API)"),
            Plain("fsconfig", "configuring a filesystem context (new mount API)"),
            Plain("fsmount", "creating a mount (new mount API)"),
            Plain("fspick", "reconfiguring a mount (new mount API)"),
            Plain("move_mount", "moving a mount (new mount API)"),
            Plain("open_tree", "cloning a mount (new mount API)"),
            Plain("mount_setattr", "changing mount attributes"),
        ],
    ),
    (
        "kernel surface",
        &[
            Plain("bpf", "loading eBPF programs or touching BPF maps (and cordon's sensor)"),
            Plain("perf_event_open", "performance counters, a side channel and kernel attack surface"),
            Plain("init_module", "loading a kernel module"),
            Plain("finit_module", "loading a kernel module"),
            Plain("delete_module", "unloading a kernel module"),
            Plain("kexec_load", "replacing the running kernel"),
            Plain("kexec_file_load", "replacing the running kernel"),
            Plain("reboot", "rebooting the host"),
            Plain("swapon", "changing swap"),
            Plain("swapoff", "changing swap"),
            Plain("acct", "process accounting"),
            Plain("quotactl", "disk quotas"),
            Plain("quotactl_fd", "disk quotas"),
            Plain("syslog", "reading or clearing the kernel log"),
            Plain("vhangup", "hanging up the terminal"),
            Plain("lookup_dcookie", "kernel profiling interface"),
            Plain("userfaultfd", "userfaultfd, a common kernel-exploit primitive"),
            Plain("keyctl", "the kernel keyring, which may hold other sessions' credentials"),
            Plain("add_key", "the kernel keyring"),
            Plain("request_key", "the kernel keyring"),
            Plain("open_by_handle_at", "opening files by handle, which bypasses path checks"),
            Plain("name_to_handle_at", "file handles (pairs with open_by_handle_at)"),
        ],
    ),
    (
        "io_uring",
        &[
            Plain("io_uring_setup", "io_uring performs syscalls that seccomp cannot see"),
            Plain("io_uring_enter", "io_uring performs syscalls that seccomp cannot see"),
            Plain("io_uring_register", "io_uring performs syscalls that seccomp cannot see"),
        ],
    ),
    (
        "clock",
        &[
            Plain("settimeofday", "changing the system clock"),
            Plain("clock_settime", "changing the system clock"),
            Plain("clock_adjtime", "changing the system clock"),
            Plain("adjtimex", "changing the system clock"),
        ],
    ),
];

/// x86-only legacy calls.
const X86_PLAIN: &[Plain] = &[
    Plain("iopl", "direct I/O port access"),
    Plain("ioperm", "direct I/O port access"),
    Plain("uselib", "legacy library loading that bypasses exec checks"),
    Plain("_sysctl", "legacy sysctl interface"),
];

fn rule(name: &str, when: Vec<ArgCmp>, action: DenyAction, reason: String, arches: &[Arch]) -> SyscallRule {
    SyscallRule {
        name: name.to_string(),
        when,
        action,
        reason,
        arches: arches.to_vec(),
        origin: "baseline".to_string(),
    }
}

fn cmp(arg: u8, op: CmpOp, value: u64) -> ArgCmp {
    ArgCmp { arg, op, value }
}

/// The baseline deny list every policy starts from.
pub fn baseline() -> Vec<SyscallRule> {
    static BASE: std::sync::OnceLock<Vec<SyscallRule>> = std::sync::OnceLock::new();
    BASE.get_or_init(build_baseline).clone()
}

fn build_baseline() -> Vec<SyscallRule> {
    let deny = DenyAction::Errno(EPERM);
    let mut out = Vec::new();
    for (group, items) in PLAIN {
        for Plain(name, why) in items.iter() {
            out.push(rule(name, vec![], deny, format!("{group}: {why}"), ALL_ARCHES));
        }
    }
    for Plain(name, why) in X86_PLAIN {
        out.push(rule(name, vec![], deny, format!("kernel surface: {why}"), X86_ONLY));
    }
    out.push(rule(
        "memfd_create",
        vec![],
        DenyAction::Supervise,
        "fileless execution: memfds are created by the supervisor with MFD_NOEXEC_SEAL, so they can never be executed"
            .into(),
        ALL_ARCHES,
    ));
    // clone3 passes flags in a struct that seccomp cannot read; refusing it with ENOSYS makes libc fall
    // back to clone(2), whose flags the entries below do check.
    out.push(rule(
        "clone3",
        vec![],
        DenyAction::QuietErrno(ENOSYS),
        "namespaces: clone3 flags cannot be inspected; libc falls back to clone".into(),
        ALL_ARCHES,
    ));
    for (flag, fname) in CLONE_NS_FLAGS {
        for sc in ["clone", "unshare"] {
            out.push(rule(
                sc,
                vec![cmp(0, CmpOp::MaskedEq(*flag), *flag)],
                deny,
                format!("namespaces: creating a namespace ({fname}) to gain capabilities in it"),
                ALL_ARCHES,
            ));
        }
    }
    out.push(rule(
        "unshare",
        vec![cmp(0, CmpOp::MaskedEq(CLONE_NEWTIME), CLONE_NEWTIME)],
        deny,
        "namespaces: creating a namespace (CLONE_NEWTIME)".into(),
        ALL_ARCHES,
    ));
    // Socket families: only unix, inet, inet6 and netlink are created; the rest (packet, vsock,
    // bluetooth, alg, can, xdp, ...) are kernel surface an agent has no use for.
    let fam_reason = "network: socket family outside unix, inet, inet6 and netlink (packet, vsock, alg, ...)";
    for fam in (0u64..AF_NETLINK).filter(|f| ![AF_UNIX, AF_INET, AF_INET6].contains(f)) {
        out.push(rule("socket", vec![cmp(0, CmpOp::Eq, fam)], deny, fam_reason.into(), ALL_ARCHES));
    }
    out.push(rule("socket", vec![cmp(0, CmpOp::Gt, AF_NETLINK)], deny, fam_reason.into(), ALL_ARCHES));
    for fam in [AF_INET, AF_INET6] {
        out.push(rule(
            "socket",
            vec![cmp(0, CmpOp::Eq, fam), cmp(1, CmpOp::MaskedEq(SOCK_TYPE_MASK), SOCK_RAW)],
            deny,
            "network: raw IP sockets (ICMP, spoofing, sniffing)".into(),
            ALL_ARCHES,
        ));
    }
    // Netlink: only NETLINK_ROUTE (0, used by getifaddrs) and NETLINK_SOCK_DIAG (4, used by ss).
    for proto in [1u64, 2, 3] {
        out.push(rule(
            "socket",
            vec![cmp(0, CmpOp::Eq, AF_NETLINK), cmp(2, CmpOp::Eq, proto)],
            deny,
            "network: netlink protocol other than route and sock_diag".into(),
            ALL_ARCHES,
        ));
    }
    out.push(rule(
        "socket",
        vec![cmp(0, CmpOp::Eq, AF_NETLINK), cmp(2, CmpOp::Gt, 4)],
        deny,
        "network: netlink protocol other than route and sock_diag (audit, uevent, ...)".into(),
        ALL_ARCHES,
    ));
    // ioctl's command is a 32-bit int: compare only the low 32 bits so high garbage cannot slip past.
    for (cmd, n) in [(TIOCSTI, "TIOCSTI"), (TIOCLINUX, "TIOCLINUX")] {
        out.push(rule(
            "ioctl",
            vec![cmp(1, CmpOp::MaskedEq(0xffff_ffff), cmd)],
            deny,
            format!("terminal: {n} injects keystrokes into the terminal of the user's shell"),
            ALL_ARCHES,
        ));
    }
    for (flag, n) in [(ADDR_NO_RANDOMIZE, "ADDR_NO_RANDOMIZE"), (READ_IMPLIES_EXEC, "READ_IMPLIES_EXEC")] {
        out.push(rule(
            "personality",
            vec![cmp(0, CmpOp::MaskedEq(flag), flag)],
            deny,
            format!("kernel surface: personality {n} weakens exploit mitigations"),
            ALL_ARCHES,
        ));
    }
    out
}

/// Every syscall name cordon knows (x86_64 and the generic table used by aarch64).
pub fn is_known_syscall(name: &str) -> bool {
    include_str!("data/syscall_names.txt").lines().any(|l| l == name)
}

/// A user-added deny rule.
pub fn user_rule(name: &str, origin: &str, kill: bool) -> SyscallRule {
    SyscallRule {
        name: name.to_string(),
        when: vec![],
        action: if kill { DenyAction::Kill } else { DenyAction::Errno(EPERM) },
        reason: format!("denied by policy ({origin})"),
        arches: ALL_ARCHES.to_vec(),
        origin: origin.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn baseline_names_are_known_and_reasoned() {
        for r in baseline() {
            assert!(is_known_syscall(&r.name), "{} unknown", r.name);
            assert!(!r.reason.is_empty());
        }
    }
    #[test]
    fn baseline_covers_threats_category_6() {
        let b = baseline();
        for n in [
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "keyctl",
            "userfaultfd",
            "init_module",
            "kexec_load",
            "reboot",
            "mount",
            "pivot_root",
            "chroot",
            "settimeofday",
            "ptrace",
            "setns",
        ] {
            assert!(b.iter().any(|r| r.name == n && r.when.is_empty()), "{n} missing");
        }
        assert!(b.iter().any(|r| r.name == "ioctl" && r.when[0].value == TIOCSTI));
        assert!(b.iter().any(|r| r.name == "unshare" && r.when[0].value == 0x1000_0000));
    }
}
