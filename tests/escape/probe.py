#!/usr/bin/env python3
"""Attack helpers for the escape suite. Each subcommand exits 0 when the attack worked (the kernel let
the call through), 1 when it was refused, and prints what happened."""
import ctypes, errno, os, platform, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ARCH = platform.machine()
NR = {
    "x86_64": dict(bpf=321, perf_event_open=298, io_uring_setup=425, keyctl=250, add_key=248, userfaultfd=323,
                   init_module=175, finit_module=313, kexec_load=246, reboot=169, settimeofday=164, clock_adjtime=305,
                   swapon=167, acct=163, syslog=103, open_by_handle_at=304, iopl=172, ptrace=101, process_vm_readv=310,
                   pivot_root=155, kcmp=312, pidfd_getfd=438, pidfd_open=434, mount=165, setns=308, memfd_create=319,
                   delete_module=176, quotactl=179, lookup_dcookie=212, request_key=249, move_mount=429, fsopen=430),
    "aarch64": dict(bpf=280, perf_event_open=241, io_uring_setup=425, keyctl=219, add_key=217, userfaultfd=282,
                    init_module=105, finit_module=273, kexec_load=104, reboot=142, settimeofday=170, clock_adjtime=266,
                    swapon=224, acct=89, syslog=116, open_by_handle_at=265, ptrace=117, process_vm_readv=270,
                    pivot_root=41, kcmp=272, pidfd_getfd=438, pidfd_open=434, mount=40, setns=268, memfd_create=279,
                    delete_module=106, quotactl=60, lookup_dcookie=18, request_key=218, move_mount=429, fsopen=430),
}[ARCH]

def sc(name, *args):
    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r, ctypes.get_errno() if r < 0 else 0

def reached(name, *args, refused=(errno.EPERM, errno.ENOSYS, errno.EACCES)):
    r, e = sc(name, *args)
    ok = not (r < 0 and e in refused)
    print(f"{name}: {'reached' if ok else 'refused'} (ret {r}, {errno.errorcode.get(e, e) if e else 'ok'})")
    return ok

def main():
    cmd, *a = sys.argv[1:]
    if cmd == "syscall":
        # syscall NAME [int args...]
        return reached(a[0], *[int(x, 0) for x in a[1:]])
    if cmd == "bpf_map":
        attr = (ctypes.c_uint32 * 16)(2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
        return reached("bpf", 0, ctypes.byref(attr), 64)
    if cmd == "perf":
        attr = (ctypes.c_uint8 * 128)()
        ctypes.c_uint32.from_buffer(attr, 0).value = 1      # PERF_TYPE_SOFTWARE
        ctypes.c_uint32.from_buffer(attr, 4).value = 128    # size
        ctypes.c_uint64.from_buffer(attr, 8).value = 0      # PERF_COUNT_SW_CPU_CLOCK
        ctypes.c_uint64.from_buffer(attr, 40).value = 1 | (1 << 5) | (1 << 6)  # disabled, exclude_kernel, exclude_hv
        return reached("perf_event_open", ctypes.byref(attr), 0, -1, -1, 0)
    if cmd == "io_uring":
        params = (ctypes.c_uint8 * 120)()
        return reached("io_uring_setup", 4, ctypes.byref(params))
    if cmd == "clock_adjtime":
        tx = (ctypes.c_uint8 * 208)()  # modes = 0: read only
        return reached("clock_adjtime", 0, ctypes.byref(tx))
    if cmd == "ptrace":
        pid = int(a[0])
        ok = reached("ptrace", 16, pid, 0, 0)  # PTRACE_ATTACH
        if ok:
            os.waitpid(pid, 0) if False else None
            sc("ptrace", 17, pid, 0, 0)  # PTRACE_DETACH
        return ok
    if cmd == "vm_readv_child":
        # Read a child's memory: a process of the same session and user (so that nothing but the
        # seccomp rule stands in the way: no pid namespace, no ptrace scope between parent and child).
        secret = ctypes.create_string_buffer(b"child-secret")
        pid = os.fork()
        if pid == 0:
            import time
            time.sleep(30)
            os._exit(0)
        try:
            buf = ctypes.create_string_buffer(12)
            local = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 12)
            remote = (ctypes.c_void_p * 2)(ctypes.cast(secret, ctypes.c_void_p), 12)
            r, e = sc("process_vm_readv", pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
            print(f"process_vm_readv: ret {r} {errno.errorcode.get(e, e) if e else ''} {buf.raw!r}")
            return r == 12 and buf.raw == b"child-secret"
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    if cmd == "proc_mem":
        pid = int(a[0])
        maps = open(f"/proc/{pid}/maps").readline()
        start = int(maps.split("-")[0], 16)
        with open(f"/proc/{pid}/mem", "rb") as f:
            f.seek(start)
            data = f.read(4)
        print("read", data)
        return len(data) == 4
    if cmd == "memfd_exec":
        fd = os.memfd_create("x", 0)
        os.write(fd, open("/bin/true", "rb").read())
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    os.execve(f"/proc/self/fd/{fd}", ["x"], {})
                except OSError as e:
                    print("exec failed:", e)
                    os._exit(1)
            _, st = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(st) == 0
        finally:
            os.close(fd)
    if cmd == "tiocsti":
        import fcntl, termios
        try:
            fcntl.ioctl(0, termios.TIOCSTI, b" ")
            print("injected")
            return True
        except OSError as e:
            print("TIOCSTI:", e)
            return False
    if cmd == "userfaultfd":
        return reached("userfaultfd", 1)  # UFFD_USER_MODE_ONLY
    if cmd == "pidfd_signal":
        pid = int(a[0])
        try:
            fd = os.pidfd_open(pid)
            signal_pidfd = getattr(__import__("signal"), "pidfd_send_signal")
            signal_pidfd(fd, 0)
            print("pidfd reached", pid)
            return True
        except OSError as e:
            print("pidfd:", e)
            return False
    if cmd == "fds":
        import resource
        n = int(a[0])
        s, h = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
        except (ValueError, OSError):
            pass
        fds = []
        try:
            for _ in range(n):
                fds.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as e:
            print("stopped at", len(fds), e)
        return len(fds) >= n
    if cmd == "alloc":
        mib = int(a[0])
        b = bytearray(mib * 1024 * 1024)
        for i in range(0, len(b), 4096):
            b[i] = 1
        print("allocated", mib, "MiB")
        return True
    if cmd in ("shm_plant", "shm_steal", "msg_plant", "msg_steal", "mq_plant", "mq_steal", "ipc_remove"):
        return ipc(cmd, a[0])
    if cmd == "sethostname":
        import socket
        try:
            socket.sethostname(a[0])
            print("sethostname: renamed to", a[0])
            return True
        except OSError as e:
            print("sethostname: refused", errno.errorcode.get(e.errno, e.errno), e)
            return False
    print("unknown probe", cmd)
    return False

# System V and POSIX IPC with a known name (derived from MARK): the host plants a secret, the attack
# finds it by that name. Objects of the host's IPC namespace; a session with its own has none.
IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_RMID = 0o1000, 0o2000, 0o4000, 0
SECRET = b"ipc-secret-AKIAFAKE"

def ipc_key(mark):
    import zlib
    return zlib.crc32(mark.encode()) & 0x7FFFFFFF or 1

def failed(what):
    e = ctypes.get_errno()
    print(f"{what}: refused ({errno.errorcode.get(e, e)}: {os.strerror(e)})")
    return False

def ipc(cmd, mark):
    key = ipc_key(mark)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    if cmd == "shm_plant":
        # EXCL: a key some other program uses fails loudly instead of being overwritten (and removed).
        sid = libc.shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0o600)
        if sid < 0:
            return failed("shmget")
        p = libc.shmat(sid, None, 0)
        if p in (None, ctypes.c_void_p(-1).value):
            return failed("shmat")
        ctypes.memmove(p, SECRET, len(SECRET))
        libc.shmdt(ctypes.c_void_p(p))
        return True
    if cmd == "shm_steal":
        sid = libc.shmget(key, 0, 0)
        if sid < 0:
            return failed(f"shmget(key {key:#x})")
        p = libc.shmat(sid, None, 0o10000)  # SHM_RDONLY
        if p in (None, ctypes.c_void_p(-1).value):
            return failed("shmat")
        data = ctypes.string_at(p, len(SECRET))
        print("shm holds", data)
        return data == SECRET
    # struct msgbuf { long mtype; char mtext[64]; }
    class Msg(ctypes.Structure):
        _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]
    if cmd == "msg_plant":
        q = libc.msgget(key, IPC_CREAT | IPC_EXCL | 0o600)
        if q < 0:
            return failed("msgget")
        m = Msg(1, SECRET)
        return libc.msgsnd(q, ctypes.byref(m), len(SECRET), IPC_NOWAIT) == 0 or failed("msgsnd")
    if cmd == "msg_steal":
        q = libc.msgget(key, 0)
        if q < 0:
            return failed(f"msgget(key {key:#x})")
        m = Msg()
        n = libc.msgrcv(q, ctypes.byref(m), 64, 0, IPC_NOWAIT)
        if n < 0:
            return failed("msgrcv")
        print("queue held", m.mtext[:n])
        return m.mtext[:n] == SECRET
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    name = f"/cordon-esc-{key:x}".encode()
    if cmd == "mq_plant":
        q = rt.mq_open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, None)
        if q < 0:
            return failed("mq_open")
        return rt.mq_send(q, SECRET, len(SECRET), 0) == 0 or failed("mq_send")
    if cmd == "mq_steal":
        q = rt.mq_open(name, os.O_RDONLY | os.O_NONBLOCK)
        if q < 0:
            return failed(f"mq_open({name.decode()})")
        buf = ctypes.create_string_buffer(1 << 16)
        n = rt.mq_receive(q, buf, len(buf), None)
        if n < 0:
            return failed("mq_receive")
        print("queue held", buf.raw[:n])
        return buf.raw[:n] == SECRET
    # ipc_remove: every object the plants made (on the host; those absent are fine).
    sid = libc.shmget(key, 0, 0)
    if sid >= 0:
        libc.shmctl(sid, IPC_RMID, None)
    q = libc.msgget(key, 0)
    if q >= 0:
        libc.msgctl(q, IPC_RMID, None)
    rt.mq_unlink(name)
    return True

if __name__ == "__main__":
    try:
        sys.exit(0 if main() else 1)
    except Exception as e:  # a refusal that surfaced as an exception
        print("refused:", type(e).__name__, e)
        sys.exit(1)
