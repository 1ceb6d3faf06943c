//! The session's filesystem is built from the policy (issue 13): what the policy does not grant does
//! not exist inside. Each case runs its attack without cordon first (the control, which must work)
//! and then inside `cordon run` with the default profile, as root and as nobody. Every script also
//! writes a marker in the workspace, so a case cannot pass because the command never ran.

mod common;
use common::*;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A file outside every tree the default profile grants (the test root is the parent of HOME), and
/// a symlink to it from the workspace.
fn outside(e: &Env) -> PathBuf {
    let dir = e.root.join("service");
    std::fs::create_dir_all(&dir).expect("mkdir service");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let f = dir.join("data.txt");
    std::fs::write(&f, "HOST-SECRET-DATA\n").expect("write outside");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::symlink(&f, e.ws.join("link-out")).expect("symlink");
    if e.who == Who::Nobody {
        e.chown_all();
    }
    f
}

/// Runs `script` bare (the control) and confined; returns both. The confined script must have
/// written its marker (it really ran inside).
fn both(e: &Env, script: &str) -> (std::process::Output, std::process::Output) {
    (e.bare_sh(script), inside(e, script))
}

/// Runs `script` in `cordon run`; it must have written its marker.
fn inside(e: &Env, script: &str) -> std::process::Output {
    let marker = e.ws.join("ran-inside");
    let _ = std::fs::remove_file(&marker);
    let inside = e.run_sh(&format!("echo yes > {}; {script}", marker.display()));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "yes\n",
        "{:?}: the command did not run inside the session\n{}",
        e.who,
        show(&inside)
    );
    std::fs::remove_file(&marker).expect("remove marker");
    inside
}

fn users() -> Vec<Who> {
    if need_root() {
        BOTH.to_vec()
    } else {
        vec![]
    }
}

/// A host service's pathname unix socket outside the allowed trees: judged by what the listener
/// received.
#[test]
fn a_host_unix_socket_outside_the_grants_cannot_be_reached() {
    for who in users() {
        let e = Env::new(who);
        let dir = e.root.join("svc");
        std::fs::create_dir_all(&dir).expect("mkdir svc");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let sock = dir.join("service.sock");
        let l = UnixListener::bind(&sock).expect("bind the host service");
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).expect("chmod sock");
        l.set_nonblocking(true).expect("nonblocking");
        let got = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicUsize::new(0));
        let (g, s) = (got.clone(), stop.clone());
        let t = std::thread::spawn(move || {
            while s.load(Ordering::SeqCst) == 0 {
                match l.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).expect("blocking");
                        c.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
                        let mut b = vec![];
                        let _ = c.read_to_end(&mut b);
                        g.fetch_add(b.len(), Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        let script = format!(
            "/usr/bin/python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"{}\"); s.sendall(b\"leak\"); s.close()'",
            sock.display()
        );
        let bare = e.bare_sh(&script);
        assert!(bare.status.success(), "{who:?} control: {}", show(&bare));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.load(Ordering::SeqCst) < 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got.load(Ordering::SeqCst), 4, "{who:?} control: the listener did not receive the bytes");
        got.store(0, Ordering::SeqCst);
        let inside = inside(&e, &script);
        std::thread::sleep(std::time::Duration::from_millis(100));
        stop.store(1, Ordering::SeqCst);
        t.join().expect("listener thread");
        assert_eq!(got.load(Ordering::SeqCst), 0, "{who:?}: the host service received bytes\n{}", show(&inside));
        assert!(!inside.status.success(), "{who:?}: {}", show(&inside));
        assert!(err(&inside).contains("No such file or directory"), "{who:?}: {}", show(&inside));
    }
}

/// `ls /` works and lists only the top-level names of what the policy grants.
#[test]
fn listing_the_root_shows_only_granted_names() {
    for who in users() {
        let e = Env::new(who);
        let (bare, inside) = both(&e, "ls -A /");
        assert!(bare.status.success(), "{who:?} control: {}", show(&bare));
        let host: Vec<String> = out(&bare).lines().map(String::from).collect();
        // Names the host has that no grant of the default profile reaches.
        let hidden: Vec<&String> =
            host.iter().filter(|n| ["root", "boot", "srv", "home", "mnt", "media"].contains(&n.as_str())).collect();
        assert!(!hidden.is_empty(), "{who:?} control: the host has none of root, boot, srv, home, mnt, media");
        assert!(inside.status.success(), "{who:?}: ls / failed inside\n{}", show(&inside));
        let seen: Vec<String> = out(&inside).lines().map(String::from).collect();
        for n in &hidden {
            assert!(!seen.contains(n), "{who:?}: /{n} is visible inside: {seen:?}");
        }
        // Every name seen is the top of a grant or one of the session's own mounts.
        let allowed = [
            "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt", "var", "tmp", "dev", "proc", "sys",
            "run",
        ];
        for n in &seen {
            assert!(allowed.contains(&n.as_str()), "{who:?}: unexpected top-level name /{n}: {seen:?}");
        }
        for n in ["usr", "etc", "tmp", "proc", "dev", "var"] {
            assert!(seen.iter().any(|s| s == n), "{who:?}: /{n} missing inside: {seen:?}");
        }
    }
}

/// Names outside the grants are not there at all: stat says ENOENT, not EACCES.
#[test]
fn a_name_outside_the_grants_does_not_exist() {
    for who in users() {
        let e = Env::new(who);
        let f = outside(&e);
        let script = format!("stat -c %s {0} && stat -c %F {1} && stat -c %F /srv", f.display(), e.root.display());
        let (bare, inside) = both(&e, &script);
        assert!(bare.status.success(), "{who:?} control: {}", show(&bare));
        assert!(!inside.status.success(), "{who:?}: {}", show(&inside));
        assert!(
            err(&inside).contains(&format!("cannot statx '{}': No such file or directory", f.display())),
            "{who:?}: {}",
            show(&inside)
        );
        let (_, srv) = both(&e, "stat /srv");
        assert!(err(&srv).contains("No such file or directory"), "{who:?}: {}", show(&srv));
    }
}

/// A symlink in the workspace to a host file outside the grants resolves to nothing.
#[test]
fn a_workspace_symlink_to_an_outside_file_reads_nothing() {
    for who in users() {
        let e = Env::new(who);
        outside(&e);
        let (bare, inside) = both(&e, "cat link-out");
        assert!(out(&bare).contains("HOST-SECRET-DATA"), "{who:?} control: {}", show(&bare));
        assert!(!out(&inside).contains("HOST-SECRET-DATA"), "{who:?}: {}", show(&inside));
        assert!(err(&inside).contains("No such file or directory"), "{who:?}: {}", show(&inside));
    }
}

/// `..` from the workspace's bind mount stays in the built root: the parents are empty directories.
#[test]
fn dot_dot_from_a_bind_mount_does_not_reach_the_host() {
    for who in users() {
        let e = Env::new(who);
        outside(&e);
        let script = "ls -A ../.. && cat ../../service/data.txt";
        let (bare, inside) = both(&e, script);
        assert!(out(&bare).contains("HOST-SECRET-DATA"), "{who:?} control: {}", show(&bare));
        assert!(!out(&inside).contains("HOST-SECRET-DATA"), "{who:?}: {}", show(&inside));
        // The test root holds home/ (the path to the workspace) and nothing else of the host's.
        let text = out(&inside);
        let listed: Vec<&str> = text.lines().collect();
        assert_eq!(listed, vec!["home"], "{who:?}: {}", show(&inside));
        assert!(err(&inside).contains("No such file or directory"), "{who:?}: {}", show(&inside));
    }
}

/// /proc/self/root, /proc/self/cwd and the init's /proc/1/{root,cwd} do not lead out of the root.
#[test]
fn proc_root_and_cwd_links_do_not_lead_out() {
    for who in users() {
        let e = Env::new(who);
        let f = outside(&e);
        let rel = f.strip_prefix("/").expect("absolute");
        let script = format!(
            "for p in /proc/self/root/{0} /proc/$$/cwd/../../service/data.txt /proc/1/root/{0} /proc/1/cwd/{0}; do cat $p; done; ls /proc/self/root/ /proc/1/root/",
            rel.display()
        );
        let (bare, inside) = both(&e, &script);
        assert!(out(&bare).contains("HOST-SECRET-DATA"), "{who:?} control: {}", show(&bare));
        assert!(!out(&inside).contains("HOST-SECRET-DATA"), "{who:?}: {}", show(&inside));
        for n in ["root", "boot", "srv", "home"] {
            assert!(!out(&inside).lines().any(|l| l == n), "{who:?}: /{n} seen through /proc\n{}", show(&inside));
        }
    }
}

/// The host's terminals (/dev/pts holds every pty of the host, /dev/ptmx makes new ones there) are in
/// the session only when it has a pty of its own: without one they do not exist; with one, `tty`
/// names the session's terminal.
#[test]
fn the_hosts_terminals_are_there_only_when_the_session_has_a_pty() {
    for who in users() {
        let e = Env::new(who);
        let (bare, inside) = both(&e, "ls -d /dev/pts /dev/ptmx; ls -d /dev/null");
        assert!(bare.status.success(), "{who:?} control: {}", show(&bare));
        assert!(out(&inside).contains("/dev/null"), "{who:?}: {}", show(&inside));
        for n in ["/dev/pts", "/dev/ptmx"] {
            assert!(
                err(&inside).contains(&format!("cannot access '{n}': No such file or directory")),
                "{who:?}: {n} is in a session without a pty\n{}",
                show(&inside)
            );
        }
        // With a terminal as stdin (`script` gives one, as an interactive user has), the session gets
        // its own pty, and the nodes that name it.
        let probe = e.ws.join("probe.sh");
        std::fs::write(&probe, "tty; ls -d /dev/ptmx\n").expect("probe");
        if who == Who::Nobody {
            e.chown_all();
        }
        let degraded = if who == Who::Nobody { "--allow-degraded" } else { "" };
        let cmd = format!("{} run -q {degraded} -- /bin/sh {}", env!("CARGO_BIN_EXE_cordon"), probe.display());
        let o = e.bare_sh(&format!("script -qec '{cmd}' /dev/null"));
        let s = out(&o);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        assert!(s.contains("/dev/pts/") && s.contains("/dev/ptmx"), "{who:?}: {}", show(&o));
        assert!(!s.contains("not a tty"), "{who:?}: {}", show(&o));
    }
}

/// A policy that names the terminals itself has them in every session, pty or not.
#[test]
fn a_policy_that_names_the_terminals_has_them_without_a_pty() {
    for who in users() {
        let e = Env::new(who);
        let policy = e.write_policy(
            "terminals.toml",
            "version = 1\nname = \"terminals\"\n[fs]\nread = [\"@system\", \"@workspace\", \"@proc\", \"/dev/null\", \"/dev/pts\", \"/dev/ptmx\"]\nwrite = [\"@workspace\", \"/dev/null\", \"/dev/pts\", \"/dev/ptmx\"]\nexec = [\"@system\", \"@workspace\"]\n[namespaces]\npid = true\nmount = true\n",
        );
        let p = policy.display().to_string();
        let o = e.run_sh_with(&["--policy", &p], "ls -d /dev/pts /dev/ptmx", &[]);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        assert!(out(&o).contains("/dev/pts") && out(&o).contains("/dev/ptmx"), "{who:?}: {}", show(&o));
    }
}

/// name_to_handle_at / open_by_handle_at through Python's ctypes: `make PATH` prints a handle,
/// `open MOUNT_PATH TYPE HEX` opens it against MOUNT_PATH's filesystem and prints what it reads.
const HANDLE_PY: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class FH(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]
fh = FH()
def fail(call):
    print(call + ": " + os.strerror(ctypes.get_errno()), file=sys.stderr)
    sys.exit(1)
if sys.argv[1] == "make":
    fh.handle_bytes = 128
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, sys.argv[2].encode(), ctypes.byref(fh), ctypes.byref(mount_id), 0) != 0:
        fail("name_to_handle_at")
    print(fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes]).hex())
else:
    mount_fd = os.open(sys.argv[2], os.O_RDONLY)
    raw = bytes.fromhex(sys.argv[4])
    fh.handle_bytes, fh.handle_type = len(raw), int(sys.argv[3])
    ctypes.memmove(fh.f_handle, raw, len(raw))
    fd = libc.open_by_handle_at(mount_fd, ctypes.byref(fh), os.O_RDONLY)
    if fd < 0:
        fail("open_by_handle_at")
    print(os.read(fd, 100).decode())
"#;

/// Open-by-handle: a handle of a host file outside the grants, made outside the session, opened
/// against a granted file on the same filesystem. The control (root, outside) reads the file; nobody
/// cannot even outside (the kernel wants CAP_DAC_READ_SEARCH); inside, making a handle of a granted
/// file and opening the host's are both refused by the session's seccomp filter (EPERM), and the
/// command holds no capabilities besides.
#[test]
fn open_by_handle_does_not_reach_a_host_file() {
    for who in users() {
        let e = Env::new(who);
        let f = outside(&e);
        let py = e.ws.join("handle.py");
        std::fs::write(&py, HANDLE_PY).expect("handle.py");
        if who == Who::Nobody {
            e.chown_all();
        }
        // The handle is made by the control, as root, outside the session.
        let made = std::process::Command::new("/usr/bin/python3").arg(&py).args(["make"]).arg(&f).output().expect("py");
        assert!(made.status.success(), "{who:?} control: {}", show(&made));
        let handle = out(&made);
        let (ty, hex) = handle.trim().split_once(' ').expect("type and handle");
        let readme = e.ws.join("README.md");
        let open = format!("/usr/bin/python3 {} open {} {ty} {hex}", py.display(), readme.display());
        let as_root = std::process::Command::new("/bin/sh").args(["-c", &open]).output().expect("sh");
        assert!(out(&as_root).contains("HOST-SECRET-DATA"), "{who:?} control: {}", show(&as_root));
        let bare = e.bare_sh(&open);
        if who == Who::Nobody {
            assert!(
                err(&bare).contains("open_by_handle_at: Operation not permitted"),
                "{who:?} control: {}",
                show(&bare)
            );
        } else {
            assert!(out(&bare).contains("HOST-SECRET-DATA"), "{who:?} control: {}", show(&bare));
        }
        let script = format!("/usr/bin/python3 {} make {}; {open}", py.display(), readme.display());
        let inside = inside(&e, &script);
        assert!(!out(&inside).contains("HOST-SECRET-DATA"), "{who:?}: {}", show(&inside));
        for call in ["name_to_handle_at", "open_by_handle_at"] {
            assert!(
                err(&inside).contains(&format!("{call}: Operation not permitted")),
                "{who:?}: {call}\n{}",
                show(&inside)
            );
        }
    }
}

/// A policy granting `/` (read): the session sees the host's top-level names again, still with its
/// own /tmp, /proc and /dev and the credentials masked, and commands run. A masked directory with a
/// masked file inside (as /var/lib/cordon holds the default audit log) is masked once.
#[test]
fn a_policy_granting_the_root_sees_the_hosts_names_and_still_works() {
    for who in users() {
        let e = Env::new(who);
        let f = outside(&e);
        let policy = e.write_policy(
            "root.toml",
            &format!(
                "version = 1\nextends = [\"builtin:agent\"]\n[fs]\nread = [\"/\"]\ndeny = [\"{}\", \"{}\"]\n",
                f.parent().expect("dir").display(),
                f.display()
            ),
        );
        let p = policy.display().to_string();
        let host_tmp = std::path::PathBuf::from(format!("/tmp/cordon-fsview-root-{}", std::process::id()));
        std::fs::write(&host_tmp, "host tmp\n").expect("host tmp file");
        let script = format!(
            "ls -A /; cat {0} || echo tmp-is-private; cat {1} || echo key-is-masked; cat {2} || echo dir-is-masked; /usr/bin/python3 -c 'print(\"ran\", 6 * 7)'",
            host_tmp.display(),
            e.home.join(".ssh/id_rsa").display(),
            f.display()
        );
        let o = e.run_sh_with(&["--policy", &p], &script, &[]);
        let _ = std::fs::remove_file(&host_tmp);
        let text = out(&o);
        let names: Vec<&str> = text.lines().collect();
        for n in ["usr", "etc", "var", "root", "srv", "proc", "tmp", "dev"] {
            if n == "srv" && !std::path::Path::new("/srv").exists() {
                continue;
            }
            assert!(names.contains(&n), "{who:?}: /{n} missing\n{}", show(&o));
        }
        assert!(!names.contains(&".cordon-host"), "{who:?}: {}", show(&o));
        assert!(text.contains("tmp-is-private"), "{who:?}: {}", show(&o));
        assert!(text.contains("key-is-masked") && !text.contains("FAKE KEY"), "{who:?}: {}", show(&o));
        assert!(text.contains("dir-is-masked") && !text.contains("HOST-SECRET-DATA"), "{who:?}: {}", show(&o));
        assert!(text.contains("ran 42"), "{who:?}: {}", show(&o));
        assert!(o.status.success(), "{who:?}: {}", show(&o));
    }
}

/// The host's tree is detached and the built root sealed by a thread of the init, overlapped with
/// its other set-up (issue 13's start budget); the command's first instruction must find both
/// done: no mount of the host's tree left in the session's table, no name for it in `/`, and `/`
/// read-only. Many starts in a row, so that a command racing the detach would be seen.
#[test]
fn the_host_tree_is_gone_and_the_root_sealed_before_the_command_starts() {
    for who in users() {
        let e = Env::new(who);
        // The control: the host has a mount at `/` and no `/.cordon-host` (the checks below read).
        let bare = e.bare_sh(
            "awk '$5 == \"/\" {n++} END {print (n > 0)}' /proc/self/mountinfo; ls -a / | grep -c cordon-host; true",
        );
        assert!(out(&bare).starts_with("1\n0\n"), "{who:?} control: {}", show(&bare));
        for _ in 0..20 {
            let o = inside(
                &e,
                "grep -c cordon-host /proc/self/mountinfo; ls -a / | grep -c cordon-host; \
                 awk '$5 == \"/\" {print $6}' /proc/self/mountinfo | cut -d, -f1; true",
            );
            assert_eq!(out(&o), "0\n0\nro\n", "{who:?}: {}", show(&o));
        }
    }
}
