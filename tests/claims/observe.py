# Makes one call of each kind docs/SECURITY.md says the sensor observes (test
# the_sensor_observes_every_kind_it_lists in crates/cordon-cli/tests/claims.rs). The calls cordon
# refuses appear as `deny` events naming the call and the layer.
import ctypes, os, socket, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *a):
    args = [ctypes.c_long(x) for x in a]
    return libc.syscall(ctypes.c_long(nr), *args)
open("f1", "w").write("x")                       # open
os.rename("f1", "f2")                             # rename
os.chmod("f2", 0o600)                             # chmod
os.chown("f2", os.getuid(), os.getgid())          # chown
os.truncate("f2", 0)                              # truncate
os.mkdir("d1")                                    # mkdir
os.unlink("f2")                                   # unlink
s = socket.socket(); s.bind(("127.0.0.1", 0))     # bind
srv = s.getsockname(); s.listen(1)
c = socket.create_connection(srv)                 # connect
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"x", ("127.0.0.1", srv[1]))  # send
pid = os.fork()                                   # fork
if pid == 0:
    os._exit(3)                                   # exit
os.waitpid(pid, 0)
os.kill(os.getpid(), 0)                           # kill
os.setuid(os.getuid())                            # setid
name = ctypes.create_string_buffer(b"m"); sc(319, ctypes.addressof(name), 0)                 # memfd_create
sc(101, 0, 0, 0, 0)                               # ptrace(TRACEME)
sc(165, 0, 0, 0, 0, 0)                            # mount
sc(272, 0x20000)                                  # unshare(CLONE_NEWNS)
sc(308, 0, 0)                                     # setns
sc(321, 0, 0, 0)                                  # bpf
sc(175, 0, 0, 0)                                  # init_module
sc(425, 1, 0)                                     # io_uring_setup
os.execv("/bin/true", ["true"])                   # exec
