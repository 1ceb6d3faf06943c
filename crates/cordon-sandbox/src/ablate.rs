//! Layer ablation, for tests only (issue 18): a build with the `ablation` feature leaves out the
//! layers named in `CORDON_ABLATE=NAME[,NAME]`, one guard at the top of each layer's step, so the
//! escape suite can show which attacks each layer alone stops (`escape_ablation_matrix`). Such a
//! session says so on stderr (`cordon: ABLATED: ...`) before anything runs.
//!
//! Without the feature (every shipped binary) [`off`] is a constant `false`, [`announce`] does
//! nothing, and the variable is never read: the name is not even in the binary.
//!
//! Two settings have no switch, because leaving them out is not a weaker session but no session:
//! no_new_privs (the kernel refuses Landlock and seccomp to a process without it or CAP_SYS_ADMIN,
//! and the landlock crate sets it itself; the escape case priv-setuid-exec reads `NoNewPrivs: 1`
//! inside) and the user namespace (made only without root, with the caller's own uid mapped: it
//! confines nothing, and without it an unprivileged caller cannot make the other namespaces).

// An optimised build is a build someone may ship or install (`cargo install --all-features`):
// it must not be able to leave a layer out.
#[cfg(all(feature = "ablation", not(debug_assertions)))]
compile_error!(
    "the `ablation` feature is for test builds only (it lets CORDON_ABLATE leave layers out); build without it"
);

/// A layer (or one group of seccomp rules) that an ablation build can leave out. The names are
/// what `CORDON_ABLATE` takes ([`Ablate::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ablate {
    /// Landlock's filesystem rights (the ruleset handles none).
    LandlockFs,
    /// Landlock's scopes: signals and abstract unix sockets outside the session.
    LandlockScopes,
    /// seccomp: ptrace, process_vm_readv/writev, kcmp, pidfd_getfd.
    SeccompPtrace,
    /// seccomp: mount, umount2, pivot_root, chroot and the new mount API.
    SeccompMount,
    /// seccomp: setns, clone/unshare with a namespace flag, clone3.
    SeccompNs,
    /// seccomp: bpf, perf_event_open.
    SeccompBpf,
    /// seccomp: io_uring_setup, io_uring_enter, io_uring_register.
    SeccompIoUring,
    /// seccomp: keyctl, add_key, request_key.
    SeccompKeyring,
    /// seccomp: modules, kexec, reboot, swap, the clock, syslog, acct, quotas and the rest of the
    /// kernel surface (x86's iopl, ioperm, uselib, _sysctl).
    SeccompKernel,
    /// seccomp: open_by_handle_at, name_to_handle_at.
    SeccompHandle,
    /// seccomp: userfaultfd.
    SeccompUffd,
    /// seccomp: the socket family, raw socket and netlink protocol rules.
    SeccompSocket,
    /// seccomp: ioctl TIOCSTI and TIOCLINUX.
    SeccompTty,
    /// seccomp: personality flags that weaken exploit mitigations.
    SeccompPersonality,
    /// The supervisor's memfd_create (MFD_NOEXEC_SEAL): the command makes its own memfds.
    MemfdSeal,
    /// vm.memfd_noexec = 2 in the session's pid namespace.
    MemfdSysctl,
    /// The root built from the policy: no new root, binds, links, /dev or detach (the host's tree
    /// is seen as it is, in the session's mount namespace).
    Root,
    /// The built root's tmpfs sealed read-only.
    Sealed,
    /// The read-only remount of read-only binds (every mount beneath).
    ReadOnly,
    /// The protected workspace paths: read-only self-binds and pins (mount points).
    Protect,
    /// The mode-000 masks (fs.deny inside readable trees, fs.hide, hard links to credentials).
    Mask,
    /// The session's private /tmp: the host's /tmp is bound there instead (a session without
    /// any /tmp does not start: the masks are staged there).
    Tmpfs,
    /// The mount namespace, and with it every mount (mounts in the host's namespace would change
    /// the host).
    MountNs,
    /// The pid namespace (and vm.memfd_noexec with it, a per-pid-namespace sysctl).
    PidNs,
    /// The network namespace.
    NetNs,
    /// The IPC namespace.
    IpcNs,
    /// The UTS namespace (and the hostname set in it).
    UtsNs,
    /// The cgroup limits (memory, processes, cpu): the cgroups are still made.
    CgroupLimits,
    /// The supervisor's wall-time limit.
    Timer,
    /// The resource limits (RLIMIT_*).
    Rlimits,
    /// The environment filter: the command gets the caller's environment as it is.
    Env,
    /// Dropping every capability.
    Caps,
    /// cordon's processes made non-dumpable (supervisor, init, command before exec).
    NoDump,
    /// The egress proxy's decisions: it lets every connection through.
    Egress,
    /// The sensor's cgroup-bpf network rules (not attached).
    CgroupBpf,
}

impl Ablate {
    pub const ALL: &'static [Ablate] = &[
        Ablate::LandlockFs,
        Ablate::LandlockScopes,
        Ablate::SeccompPtrace,
        Ablate::SeccompMount,
        Ablate::SeccompNs,
        Ablate::SeccompBpf,
        Ablate::SeccompIoUring,
        Ablate::SeccompKeyring,
        Ablate::SeccompKernel,
        Ablate::SeccompHandle,
        Ablate::SeccompUffd,
        Ablate::SeccompSocket,
        Ablate::SeccompTty,
        Ablate::SeccompPersonality,
        Ablate::MemfdSeal,
        Ablate::MemfdSysctl,
        Ablate::Root,
        Ablate::Sealed,
        Ablate::ReadOnly,
        Ablate::Protect,
        Ablate::Mask,
        Ablate::Tmpfs,
        Ablate::MountNs,
        Ablate::PidNs,
        Ablate::NetNs,
        Ablate::IpcNs,
        Ablate::UtsNs,
        Ablate::CgroupLimits,
        Ablate::Timer,
        Ablate::Rlimits,
        Ablate::Env,
        Ablate::Caps,
        Ablate::NoDump,
        Ablate::Egress,
        Ablate::CgroupBpf,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ablate::LandlockFs => "landlock-fs",
            Ablate::LandlockScopes => "landlock-scopes",
            Ablate::SeccompPtrace => "seccomp-ptrace",
            Ablate::SeccompMount => "seccomp-mount",
            Ablate::SeccompNs => "seccomp-ns",
            Ablate::SeccompBpf => "seccomp-bpf",
            Ablate::SeccompIoUring => "seccomp-io-uring",
            Ablate::SeccompKeyring => "seccomp-keyring",
            Ablate::SeccompKernel => "seccomp-kernel",
            Ablate::SeccompHandle => "seccomp-handle",
            Ablate::SeccompUffd => "seccomp-uffd",
            Ablate::SeccompSocket => "seccomp-socket",
            Ablate::SeccompTty => "seccomp-tty",
            Ablate::SeccompPersonality => "seccomp-personality",
            Ablate::MemfdSeal => "memfd-seal",
            Ablate::MemfdSysctl => "memfd-sysctl",
            Ablate::Root => "root",
            Ablate::Sealed => "sealed",
            Ablate::ReadOnly => "readonly",
            Ablate::Protect => "protect",
            Ablate::Mask => "mask",
            Ablate::Tmpfs => "tmpfs",
            Ablate::MountNs => "mountns",
            Ablate::PidNs => "pidns",
            Ablate::NetNs => "netns",
            Ablate::IpcNs => "ipcns",
            Ablate::UtsNs => "utsns",
            Ablate::CgroupLimits => "cgroup-limits",
            Ablate::Timer => "timer",
            Ablate::Rlimits => "rlimits",
            Ablate::Env => "env",
            Ablate::Caps => "caps",
            Ablate::NoDump => "nodump",
            Ablate::Egress => "egress",
            Ablate::CgroupBpf => "cgroup-bpf",
        }
    }

    /// The switch that leaves out the baseline seccomp rule for `name` (a syscall; `memfd_create`
    /// is the supervisor's memfd mediation). None: a rule no group holds (a policy's own).
    pub fn seccomp_group(name: &str) -> Option<Ablate> {
        Some(match name {
            "ptrace" | "process_vm_readv" | "process_vm_writev" | "kcmp" | "pidfd_getfd" => Ablate::SeccompPtrace,
            "mount" | "umount2" | "pivot_root" | "chroot" | "fsopen" | "fsconfig" | "fsmount" | "fspick"
            | "move_mount" | "open_tree" | "mount_setattr" => Ablate::SeccompMount,
            "setns" | "clone" | "unshare" | "clone3" => Ablate::SeccompNs,
            "bpf" | "perf_event_open" => Ablate::SeccompBpf,
            "io_uring_setup" | "io_uring_enter" | "io_uring_register" => Ablate::SeccompIoUring,
            "keyctl" | "add_key" | "request_key" => Ablate::SeccompKeyring,
            "init_module" | "finit_module" | "delete_module" | "kexec_load" | "kexec_file_load" | "reboot"
            | "swapon" | "swapoff" | "acct" | "quotactl" | "quotactl_fd" | "syslog" | "vhangup" | "lookup_dcookie"
            | "settimeofday" | "clock_settime" | "clock_adjtime" | "adjtimex" | "iopl" | "ioperm" | "uselib"
            | "_sysctl" => Ablate::SeccompKernel,
            "open_by_handle_at" | "name_to_handle_at" => Ablate::SeccompHandle,
            "userfaultfd" => Ablate::SeccompUffd,
            "socket" => Ablate::SeccompSocket,
            "ioctl" => Ablate::SeccompTty,
            "personality" => Ablate::SeccompPersonality,
            "memfd_create" => Ablate::MemfdSeal,
            _ => return None,
        })
    }

    pub fn from_name(s: &str) -> Option<Ablate> {
        Ablate::ALL.iter().copied().find(|a| a.name() == s)
    }
}

/// Whether a mount step is left out (see the switches' texts): the built root's steps, the seal,
/// the protected paths, the masks, the private tmpfs.
pub fn skips(op: &crate::plan::ns::MountOp) -> bool {
    use crate::plan::ns::MountOp as M;
    match op {
        M::NewRoot { .. }
        | M::Bind { .. }
        | M::Overlay { .. }
        | M::Symlink { .. }
        | M::DevNodes { .. }
        | M::DetachHost { .. } => off(Ablate::Root),
        M::SealRoot => off(Ablate::Sealed) || off(Ablate::Root),
        M::Pin { .. } | M::ReadOnly { .. } => off(Ablate::Protect),
        M::Mask { .. } => off(Ablate::Mask),
        // Nothing to bind instead: without the built root the host's /tmp is there already.
        M::Tmpfs { .. } => host_tmp(op) && off(Ablate::Root),
        // Never: without MakePrivate the session's mounts would reach the host's table.
        M::MakePrivate | M::Proc => false,
    }
}

/// Whether the host's /tmp is bound in place of the session's private /tmp (`op`).
pub fn host_tmp(op: &crate::plan::ns::MountOp) -> bool {
    matches!(op, crate::plan::ns::MountOp::Tmpfs { target, .. } if target == std::path::Path::new("/tmp"))
        && off(Ablate::Tmpfs)
}

/// The namespaces to clone: `flags` without those left out.
pub fn clone_flags(flags: u64) -> u64 {
    use crate::plan::ns::*;
    let mut f = flags;
    for (a, flag) in [
        (Ablate::MountNs, CLONE_NEWNS),
        (Ablate::PidNs, CLONE_NEWPID),
        (Ablate::NetNs, CLONE_NEWNET),
        (Ablate::IpcNs, CLONE_NEWIPC),
        (Ablate::UtsNs, CLONE_NEWUTS),
    ] {
        if off(a) {
            f &= !flag;
        }
    }
    f
}

/// Whether this build leaves layer `a` out: always false without the `ablation` feature.
#[cfg(not(feature = "ablation"))]
#[inline(always)]
pub const fn off(_a: Ablate) -> bool {
    false
}

/// Says on stderr which layers this session leaves out; an unknown name is an error. Without the
/// `ablation` feature: nothing.
#[cfg(not(feature = "ablation"))]
#[inline(always)]
pub fn announce() -> Result<(), crate::SandboxError> {
    Ok(())
}

#[cfg(feature = "ablation")]
mod on {
    use super::Ablate;
    use std::sync::OnceLock;

    const VAR: &str = "CORDON_ABLATE";

    /// The names in the variable, unknown ones kept apart (an error in [`super::announce`]).
    fn parsed() -> &'static (Vec<Ablate>, Vec<String>) {
        static SET: OnceLock<(Vec<Ablate>, Vec<String>)> = OnceLock::new();
        SET.get_or_init(|| {
            let v = std::env::var(VAR).unwrap_or_default();
            let (mut on, mut bad) = (vec![], vec![]);
            for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match Ablate::from_name(n) {
                    Some(a) => on.push(a),
                    None => bad.push(n.to_string()),
                }
            }
            (on, bad)
        })
    }

    pub fn off(a: Ablate) -> bool {
        parsed().0.contains(&a)
    }

    pub fn announce() -> Result<(), crate::SandboxError> {
        let (on, bad) = parsed();
        if !bad.is_empty() {
            let known: Vec<&str> = Ablate::ALL.iter().map(|a| a.name()).collect();
            return Err(crate::SandboxError::Ablation(format!(
                "{VAR}: unknown layer(s) {}; known: {}",
                bad.join(", "),
                known.join(", ")
            )));
        }
        if !on.is_empty() {
            let names: Vec<&str> = on.iter().map(|a| a.name()).collect();
            eprintln!(
                "cordon: ABLATED: this session runs WITHOUT {} ({VAR}, a test build): it is not confined as the policy says",
                names.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(feature = "ablation")]
pub use on::{announce, off};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_has_a_distinct_name_it_is_found_by() {
        for a in Ablate::ALL {
            assert_eq!(Ablate::from_name(a.name()), Some(*a));
        }
        let mut names: Vec<&str> = Ablate::ALL.iter().map(|a| a.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Ablate::ALL.len());
    }

    /// Every baseline seccomp rule belongs to a group a switch leaves out.
    #[test]
    fn every_baseline_seccomp_rule_is_in_a_group() {
        for r in cordon_policy::syscalls::baseline() {
            assert!(Ablate::seccomp_group(&r.name).is_some(), "{} is in no ablation group", r.name);
        }
    }

    #[cfg(not(feature = "ablation"))]
    #[test]
    fn without_the_feature_nothing_is_left_out() {
        std::env::set_var(concat!("CORDON_", "ABLATE"), "seccomp-mount,landlock-fs");
        assert!(Ablate::ALL.iter().all(|a| !off(*a)));
        assert!(announce().is_ok());
    }
}
