//! Which syscalls the sensor decodes and how: the `kinds` map the enter program reads, filled per
//! architecture from cordon-sandbox's syscall tables.

use cordon_policy::syscalls::Arch;
use cordon_schema::Kind;

crate::raw::wire_enum! {
    /// How the enter program decodes a call's arguments (enum sc_decode in bpf/events.h; the
    /// `kind` of each entry of the `kinds` map).
    pub enum Decode: u8 {
        None = 0 => "SK_NONE",
        Trace = 1 => "SK_TRACE",
        Path = 2 => "SK_PATH",
        Path2 = 3 => "SK_PATH2",
        Sockaddr = 4 => "SK_SOCKADDR",
        Msghdr = 5 => "SK_MSGHDR",
    }
}

pub const SK_TRACE: u8 = Decode::Trace as u8;
pub const SK_PATH: u8 = Decode::Path as u8;
pub const SK_PATH2: u8 = Decode::Path2 as u8;
pub const SK_SOCKADDR: u8 = Decode::Sockaddr as u8;
pub const SK_MSGHDR: u8 = Decode::Msghdr as u8;

/// struct sc_kind.flags: a successful call without an address is not an event.
pub const KF_QUIET_OK: u8 = 1;

/// One traced syscall: its name, the event category it belongs to, and where its arguments are.
#[derive(Debug, Clone, Copy)]
pub struct Traced {
    pub name: &'static str,
    pub op: Kind,
    pub kind: u8,
    pub p1: u8,
    pub p2: u8,
    /// A successful call is only an event if it names an address (sendto on a connected socket is
    /// noise); exec that worked is reported by sched_process_exec instead.
    pub quiet_ok: bool,
}

const fn t(name: &'static str, op: Kind, kind: u8, p1: u8, p2: u8) -> Traced {
    Traced { name, op, kind, p1, p2, quiet_ok: false }
}
const fn q(name: &'static str, op: Kind, kind: u8, p1: u8, p2: u8) -> Traced {
    Traced { name, op, kind, p1, p2, quiet_ok: true }
}

pub const TRACED: &[Traced] = &[
    t("open", Kind::Open, SK_PATH, 0, 0),
    t("openat", Kind::Open, SK_PATH, 1, 0),
    t("openat2", Kind::Open, SK_PATH, 1, 0),
    t("creat", Kind::Open, SK_PATH, 0, 0),
    q("execve", Kind::Exec, SK_PATH, 0, 0),
    q("execveat", Kind::Exec, SK_PATH, 1, 0),
    t("connect", Kind::Connect, SK_SOCKADDR, 1, 2),
    t("bind", Kind::Bind, SK_SOCKADDR, 1, 2),
    q("sendto", Kind::Send, SK_SOCKADDR, 4, 5),
    q("sendmsg", Kind::Send, SK_MSGHDR, 1, 0),
    q("sendmmsg", Kind::Send, SK_TRACE, 0, 0),
    t("unlink", Kind::Unlink, SK_PATH, 0, 0),
    t("unlinkat", Kind::Unlink, SK_PATH, 1, 0),
    t("rmdir", Kind::Unlink, SK_PATH, 0, 0),
    t("rename", Kind::Rename, SK_PATH2, 0, 1),
    t("renameat", Kind::Rename, SK_PATH2, 1, 3),
    t("renameat2", Kind::Rename, SK_PATH2, 1, 3),
    t("chmod", Kind::Chmod, SK_PATH, 0, 0),
    t("fchmod", Kind::Chmod, SK_TRACE, 0, 0),
    t("fchmodat", Kind::Chmod, SK_PATH, 1, 0),
    t("fchmodat2", Kind::Chmod, SK_PATH, 1, 0),
    t("chown", Kind::Chown, SK_PATH, 0, 0),
    t("lchown", Kind::Chown, SK_PATH, 0, 0),
    t("fchown", Kind::Chown, SK_TRACE, 0, 0),
    t("fchownat", Kind::Chown, SK_PATH, 1, 0),
    t("mkdir", Kind::Mkdir, SK_PATH, 0, 0),
    t("mkdirat", Kind::Mkdir, SK_PATH, 1, 0),
    // Only refusals are events (a device node is Landlock's to refuse: the attribution needs the path).
    q("mknod", Kind::Syscall, SK_PATH, 0, 0),
    q("mknodat", Kind::Syscall, SK_PATH, 1, 0),
    t("truncate", Kind::Truncate, SK_PATH, 0, 0),
    t("ftruncate", Kind::Truncate, SK_TRACE, 0, 0),
    t("ptrace", Kind::Ptrace, SK_TRACE, 0, 0),
    t("kill", Kind::Kill, SK_TRACE, 0, 0),
    t("tkill", Kind::Kill, SK_TRACE, 0, 0),
    t("tgkill", Kind::Kill, SK_TRACE, 0, 0),
    t("setuid", Kind::Setid, SK_TRACE, 0, 0),
    t("setgid", Kind::Setid, SK_TRACE, 0, 0),
    t("setreuid", Kind::Setid, SK_TRACE, 0, 0),
    t("setregid", Kind::Setid, SK_TRACE, 0, 0),
    t("setresuid", Kind::Setid, SK_TRACE, 0, 0),
    t("setresgid", Kind::Setid, SK_TRACE, 0, 0),
    t("setfsuid", Kind::Setid, SK_TRACE, 0, 0),
    t("setfsgid", Kind::Setid, SK_TRACE, 0, 0),
    t("setgroups", Kind::Setid, SK_TRACE, 0, 0),
    t("mount", Kind::Mount, SK_PATH2, 0, 1),
    t("umount2", Kind::Mount, SK_PATH, 0, 0),
    t("fsopen", Kind::Mount, SK_PATH, 0, 0),
    t("move_mount", Kind::Mount, SK_PATH2, 1, 3),
    t("pivot_root", Kind::Mount, SK_PATH2, 0, 1),
    t("unshare", Kind::Unshare, SK_TRACE, 0, 0),
    t("setns", Kind::Setns, SK_TRACE, 0, 0),
    t("bpf", Kind::Bpf, SK_TRACE, 0, 0),
    t("init_module", Kind::Module, SK_TRACE, 0, 0),
    t("finit_module", Kind::Module, SK_TRACE, 0, 0),
    t("delete_module", Kind::Module, SK_PATH, 0, 0),
    t("memfd_create", Kind::Memfd, SK_PATH, 0, 0),
    t("io_uring_setup", Kind::IoUring, SK_TRACE, 0, 0),
];

pub fn native_arch() -> Arch {
    if cfg!(target_arch = "aarch64") {
        Arch::Aarch64
    } else {
        Arch::X86_64
    }
}

/// Calls newer than the generated tables (same number on x86_64 and aarch64: the unified range).
fn newer(name: &str) -> Option<i32> {
    match name {
        "fchmodat2" => Some(452),
        _ => None,
    }
}

pub fn number(arch: Arch, name: &str) -> Option<i32> {
    cordon_policy::syscall_table::number(arch, name).or_else(|| newer(name))
}

/// (syscall number, entry) for every traced call this architecture has.
pub fn table(arch: Arch) -> Vec<(u32, &'static Traced)> {
    TRACED.iter().filter_map(|t| number(arch, t.name).map(|nr| (nr as u32, t))).collect()
}

/// Every call cordon's seccomp baseline may refuse (for `cordon monitor`, which does not know the
/// session's own filter), plus connect (answered by the supervisor when a proxy is in use).
pub fn baseline_watch(arch: Arch) -> Vec<u32> {
    // A call is watched when some rule refuses it; quiet answers (probes) are not refusals.
    let base = cordon_policy::syscalls::baseline();
    let mut v: Vec<u32> =
        base.iter().filter(|r| !r.action.is_quiet()).filter_map(|r| number(arch, &r.name)).map(|n| n as u32).collect();
    v.extend(number(arch, "connect").map(|n| n as u32));
    v.sort_unstable();
    v.dedup();
    v
}

pub fn by_nr(arch: Arch, nr: u32) -> Option<&'static Traced> {
    static X86: std::sync::OnceLock<Vec<Option<&'static Traced>>> = std::sync::OnceLock::new();
    static ARM: std::sync::OnceLock<Vec<Option<&'static Traced>>> = std::sync::OnceLock::new();
    let cell = if arch == Arch::Aarch64 { &ARM } else { &X86 };
    let v = cell.get_or_init(|| {
        let mut v = vec![None; 512];
        for (nr, t) in table(arch) {
            if let Some(slot) = v.get_mut(nr as usize) {
                *slot = Some(t);
            }
        }
        v
    });
    v.get(nr as usize).copied().flatten()
}

pub fn syscall_name(arch: Arch, nr: u32) -> String {
    if let Some(t) = by_nr(arch, nr) {
        return t.name.to_string();
    }
    cordon_policy::syscall_table::name(arch, nr as i32).map(str::to_string).unwrap_or_else(|| format!("syscall_{nr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_traced_call_exists_on_x86_64() {
        let missing: Vec<_> =
            TRACED.iter().filter(|t| number(Arch::X86_64, t.name).is_none()).map(|t| t.name).collect();
        assert!(missing.is_empty(), "{missing:?}");
        assert!(table(Arch::X86_64).iter().all(|(nr, _)| *nr < 512));
        assert_eq!(by_nr(Arch::X86_64, 257).map(|t| t.name), Some("openat"));
    }
}
