//! Every raw syscall cordon's sandbox makes that has no safe wrapper. Nothing else in this crate uses
//! `unsafe`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// fork-like clone(2) with namespace flags. Returns 0 in the child, the child's pid in the parent.
///
/// The caller must be single-threaded: the child gets a copy of only the calling thread.
pub fn clone_process(flags: u64) -> io::Result<libc::pid_t> {
    // SAFETY: clone with a null stack behaves like fork: the child continues on a copy of the caller's
    // stack. No tid pointers are passed. The caller guarantees it is single-threaded (see above).
    let r = unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, 0usize, 0usize, 0usize, 0usize) };
    cvt(r).map(|p| p as libc::pid_t)
}

/// The highest Landlock ABI the running kernel supports (0 when Landlock is absent or disabled).
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with a null attr, size 0 and the VERSION flag the call only returns an integer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        0
    } else {
        r as i32
    }
}

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;

/// Is this seccomp return action supported by the kernel?
pub fn seccomp_action_available(action: u32) -> bool {
    // SAFETY: GET_ACTION_AVAIL reads a u32 from the pointer we pass, which lives for the call.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0usize, &action as *const u32) };
    r == 0
}

/// Installs a seccomp BPF program on the calling thread. With `listener`, returns the user-notification
/// fd. no_new_privs must already be set.
pub fn seccomp_install(prog: &[libc::sock_filter], listener: bool) -> io::Result<Option<OwnedFd>> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    let flags = if listener { SECCOMP_FILTER_FLAG_NEW_LISTENER } else { 0 };
    // SAFETY: fprog points to `prog`, which outlives the call; the kernel copies the program.
    let r = cvt(unsafe {
        libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog)
    })?;
    if listener {
        // SAFETY: with NEW_LISTENER the kernel returns a fresh fd that we now own.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }))
    } else {
        Ok(None)
    }
}

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> io::Result<()> {
    // SAFETY: every prctl op used here takes integer arguments only.
    let r = unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    cvt(r as libc::c_long).map(|_| ())
}

/// A prctl that reads: its return value.
fn prctl_get(op: libc::c_int, a: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the read ops used here (PR_GET_SECUREBITS, PR_CAPBSET_READ) take integer arguments.
    let r = unsafe { libc::prctl(op, a, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    cvt(r as libc::c_long).map(|v| v as libc::c_int)
}

pub fn set_no_new_privs() -> io::Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
}

pub fn set_dumpable(on: bool) -> io::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0)
}

pub fn set_pdeathsig(sig: libc::c_int) -> io::Result<()> {
    prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0)
}

/// SIGPIPE back to its default action: the Rust runtime ignores it in cordon, and an ignored
/// signal stays ignored across execve, so without this `yes | head -1` inside a session would see
/// EPIPE errors instead of ending as it does outside. Async-signal-safe (called between clone and exec).
pub fn default_sigpipe() {
    // SAFETY: installs the default disposition; no handler code, no memory is touched.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn set_child_subreaper() -> io::Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0)
}

/// The highest capability number the kernel knows.
pub fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// Empties every capability set: bounding, ambient, inheritable, permitted, effective; and locks
/// securebits so that uid 0 regains nothing at execve.
pub fn drop_all_capabilities() -> io::Result<()> {
    // SECBIT_NOROOT | NOROOT_LOCKED | NO_SETUID_FIXUP | NO_SETUID_FIXUP_LOCKED | KEEP_CAPS_LOCKED |
    // NO_CAP_AMBIENT_RAISE | NO_CAP_AMBIENT_RAISE_LOCKED. Needs CAP_SETPCAP; without it (an unprivileged
    // caller outside a user namespace) there is nothing to gain, so EPERM is fine.
    // Already done (a process of an environment whose init dropped them) is not tried again: the
    // calls would fail with EPERM and show up as refusals of cordon's own setup.
    const BITS: libc::c_int = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;
    if prctl_get(libc::PR_GET_SECUREBITS, 0).map_or(true, |b| b & BITS != BITS) {
        match prctl(libc::PR_SET_SECUREBITS, BITS as libc::c_ulong, 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => return Err(e),
        }
    }
    for cap in 0..=cap_last_cap() {
        if prctl_get(libc::PR_CAPBSET_READ, cap as libc::c_ulong).is_ok_and(|v| v == 0) {
            continue;
        }
        match prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0) {
            Ok(()) => {}
            // EPERM: no CAP_SETPCAP, so the bounding set cannot matter (nothing can be gained: no_new_privs).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) => {}
            Err(e) => return Err(e),
        }
    }
    // SAFETY: PR_CAP_AMBIENT with integer arguments.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    cvt(r as libc::c_long)?;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header { version: 0x2008_0522, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capset reads a v3 header and two data structs, both valid for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
    cvt(r).map(|_| ())
}

/// Closes every fd >= `from` except those in `keep`.
pub fn close_fds_from(from: RawFd, keep: &[RawFd]) {
    let mut start = from as u32;
    let mut keep: Vec<u32> = keep.iter().map(|k| *k as u32).filter(|k| *k >= start).collect();
    keep.sort_unstable();
    for k in keep {
        if k > start {
            close_range(start, k - 1);
        }
        start = k + 1;
    }
    close_range(start, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors; the caller has no live Rust objects owning them
    // (it runs in the freshly forked child just before exec).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if r < 0 {
        for fd in first..=last.min(65535) {
            // SAFETY: as above; closing an fd that is not open returns EBADF, which is ignored.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd that we own.
    let r = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) })?;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Sends a signal through a pidfd (no pid-reuse race).
pub fn pidfd_send_signal(fd: RawFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments and a null siginfo pointer, which the call permits.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd, sig, std::ptr::null::<libc::siginfo_t>(), 0u32) };
    cvt(r).map(|_| ())
}

/// Brings the loopback interface up in the current network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket() with constant arguments returns a new fd or -1.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: we own the fd just created.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    use std::os::fd::AsRawFd;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq we pass; it lives for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: reading the union field that SIOCGIFFLAGS just wrote.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we pass.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Leaves the process immediately, without running atexit handlers or destructors (a forked child
/// must not flush buffers it shares with its parent).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompNotif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | ((b'!' as u64) << 8) | nr
}
const SECCOMP_IOCTL_NOTIF_RECV: u64 = iowr(0, std::mem::size_of::<SeccompNotif>());
const SECCOMP_IOCTL_NOTIF_SEND: u64 = iowr(1, std::mem::size_of::<SeccompNotifResp>());

/// Receives one pending seccomp notification.
pub fn notif_recv(fd: RawFd) -> io::Result<SeccompNotif> {
    let mut n = SeccompNotif::default();
    // SAFETY: the kernel fills the zeroed struct we pass, which has the uapi layout (repr(C)).
    let r = unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV as _, &mut n as *mut SeccompNotif) };
    cvt(r as libc::c_long).map(|_| n)
}

/// Lets a notified syscall proceed. Only for calls that another layer already confines (the
/// arguments may have changed since they were read).
pub fn notif_continue(fd: RawFd, id: u64) -> io::Result<()> {
    let resp = SeccompNotifResp { id, val: 0, error: 0, flags: 1 };
    // SAFETY: the kernel reads the response struct we pass, which has the uapi layout.
    let r = unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND as _, &resp as *const SeccompNotifResp) };
    cvt(r as libc::c_long).map(|_| ())
}

/// SECCOMP_IOCTL_NOTIF_SET_FLAGS (_IOW('!', 4, __u64)) and its one flag (Linux 6.6+).
const SECCOMP_IOCTL_NOTIF_SET_FLAGS: u64 = 0x4008_2104;
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// Asks the kernel to hand the CPU straight over between a notifying task and the supervisor
/// (synchronous wake-ups): on an idle virtual machine each notification otherwise waits for a
/// halted CPU to wake, twice (~70 µs per watched call here instead of a few). Older kernels say
/// EINVAL; the watch then works as before, only slower.
pub fn notif_sync_wakeup(fd: RawFd) -> io::Result<()> {
    // SAFETY: this ioctl takes its flags as an integer argument; the kernel reads nothing else.
    let r = unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS as _, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) };
    cvt(r as libc::c_long).map(|_| ())
}

/// Answers a notification: the syscall fails with `errno`.
pub fn notif_deny(fd: RawFd, id: u64, errno: i32) -> io::Result<()> {
    let resp = SeccompNotifResp { id, val: 0, error: -errno, flags: 0 };
    // SAFETY: the kernel reads the response struct we pass, which has the uapi layout.
    let r = unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND as _, &resp as *const SeccompNotifResp) };
    cvt(r as libc::c_long).map(|_| ())
}

/// Makes `fd` (a pty slave) the calling session leader's controlling terminal.
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    cvt(r as libc::c_long).map(|_| ())
}

/// Copies the window size from one terminal to another.
pub fn copy_winsize(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: winsize is plain old data; all-zero is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize we pass.
    if unsafe { libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TIOCSWINSZ reads the winsize we pass.
    let r = unsafe { libc::ioctl(to, libc::TIOCSWINSZ, &ws) };
    cvt(r as libc::c_long).map(|_| ())
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork-like clone3(2) that starts the child directly in the cgroup v2 directory `cgroup_fd` (no
/// migration afterwards, so no global cgroup lock). Returns 0 in the child.
///
/// The caller must be single-threaded.
pub fn clone_into_cgroup(flags: u64, cgroup_fd: RawFd) -> io::Result<libc::pid_t> {
    let args = CloneArgs {
        flags: flags | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_fd as u64,
        ..Default::default()
    };
    // SAFETY: clone3 reads `args` (valid for the call); a zero stack makes the child continue on a
    // copy of the caller's stack like fork. The caller guarantees it is single-threaded.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    cvt(r).map(|p| p as libc::pid_t)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: u32 = 0x8000;

/// Makes every mount at and below `path` read-only in one call (mount_setattr, Linux 5.12+).
pub fn make_tree_readonly(path: &std::ffi::CStr) -> io::Result<()> {
    mount_setattr(path, AT_RECURSIVE, MOUNT_ATTR_RDONLY)
}

/// Makes the one mount at `path` read-only, nosuid and nodev (mount_setattr, Linux 5.12+): unlike a
/// bind remount it only adds flags, so the flags a user namespace locks need not be read first.
pub fn make_mount_readonly(path: &std::ffi::CStr) -> io::Result<()> {
    mount_setattr(path, 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
}

fn mount_setattr(path: &std::ffi::CStr, flags: u32, set: u64) -> io::Result<()> {
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: path is a valid C string and attr a valid mount_attr for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    cvt(r).map(|_| ())
}

#[repr(C)]
struct SeccompNotifAddfd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}

const SECCOMP_ADDFD_FLAG_SEND: u32 = 1 << 1;
const SECCOMP_IOCTL_NOTIF_ADDFD: u64 =
    (1 << 30) | ((std::mem::size_of::<SeccompNotifAddfd>() as u64) << 16) | ((b'!' as u64) << 8) | 3;

/// Installs `srcfd` in the notifying process and completes its syscall with the new fd number
/// (SECCOMP_ADDFD_FLAG_SEND, Linux 5.14+).
pub fn notif_addfd_send(fd: RawFd, id: u64, srcfd: RawFd, cloexec: bool) -> io::Result<i32> {
    let a = SeccompNotifAddfd {
        id,
        flags: SECCOMP_ADDFD_FLAG_SEND,
        srcfd: srcfd as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: the kernel reads the addfd struct we pass, which has the uapi layout.
    let r = unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_ADDFD as _, &a as *const SeccompNotifAddfd) };
    cvt(r as libc::c_long).map(|n| n as i32)
}

/// memfd_create(2) with raw flags.
pub fn memfd_create(name: &std::ffi::CStr, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: name is a valid C string; flags are plain integers.
    let r = unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) };
    let fd = cvt(r)?;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Writes all of `b` to `fd`, ignoring errors (used for the children's report pipe, where a failure
/// has nowhere to go).
pub fn write_fd(fd: RawFd, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: writes bytes from a valid slice to an fd the caller keeps open.
        let r = unsafe { libc::write(fd, b.as_ptr() as *const libc::c_void, b.len()) };
        if r <= 0 {
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        b = &b[r as usize..];
    }
}

/// fork(2) for a process known to be single-threaded (the session's init).
pub fn fork_single_threaded() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: the only caller is the session's init, a single-threaded clone of the single-threaded
    // supervisor, so the child may run any code.
    unsafe { nix::unistd::fork() }
}

/// Duplicates `from` onto `to` (dup2).
pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on two fds; `to` is one of 0..2, replaced on purpose before exec.
    let r = unsafe { libc::dup2(from, to) };
    cvt(r as libc::c_long).map(|_| ())
}

/// One message from the session's children over the socketpair: a tag byte (`n` seccomp notify
/// fd, `p` network listeners) and the fds it carries. None at EOF.
pub fn recv_fds(sock: RawFd) -> Option<(u8, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 32]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).ok()?;
    if msg.bytes == 0 {
        return None;
    }
    let mut out = vec![];
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: SCM_RIGHTS just installed these fds in our table; we take ownership.
                out.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Some((buf[0], out))
}

/// One message into `buf` with up to 4 fds attached (taken over); 0 bytes: the peer closed.
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    // A datagram or packet larger than `buf` arrives cut: an error, never half a message.
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    let mut out = vec![];
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: SCM_RIGHTS just installed these fds in our table; we take ownership.
                out.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if truncated {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message larger than {} bytes was cut", buf.len()),
        ));
    }
    Ok((msg.bytes, out))
}
