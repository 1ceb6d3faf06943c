//! Guarantees docs/SECURITY.md states that no escape case decides on its own (issue 18 #10): each
//! test here first shows what happens without cordon (the control), then inside, and names the
//! table row it backs. Root runs them as root and as nobody where the row holds for both.

mod common;

use common::*;

/// A small C program built outside the session: `i386` makes getpid through `int 0x80` (the
/// 32-bit table), `x32` through the x32 bit; each prints what the kernel answered.
fn arch_probe(e: &Env) -> std::path::PathBuf {
    let src = e.root.join("arch.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long r;
    if (argc > 1 && !strcmp(argv[1], "i386")) {
        __asm__ volatile ("int $0x80" : "=a"(r) : "a"(20L) : "memory");
        printf("i386 getpid: %ld\n", r);
    } else {
        r = syscall(0x40000000L | 39);
        printf("x32 getpid: %ld errno %d\n", r, r < 0 ? errno : 0);
    }
    return 0;
}
"#,
    )
    .expect("source");
    let bin = e.ws.join("arch-probe");
    let o = std::process::Command::new("gcc").arg("-O1").arg("-o").arg(&bin).arg(&src).output().expect("gcc");
    assert!(o.status.success(), "gcc (scripts/setup installs it): {}", show(&o));
    if e.who == Who::Nobody {
        e.chown_all();
    }
    bin
}

/// SECURITY.md, syscalls: "other architectures (i386, x32) are killed".
#[test]
fn other_architectures_are_killed() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        arch_probe(&e);
        // Control: the 32-bit table answers (a pid); the x32 bit reaches the kernel (a pid, or
        // ENOSYS where x32 is not built in).
        let b = e.bare_sh("./arch-probe i386; ./arch-probe x32");
        assert!(
            b.status.success() && out(&b).contains("i386 getpid: ") && out(&b).contains("x32 getpid: "),
            "{}",
            show(&b)
        );
        assert!(!out(&b).contains("i386 getpid: -"), "{who:?}: the control's int 0x80 works: {}", show(&b));
        for arch in ["i386", "x32"] {
            let o = e.run_sh(&format!("exec ./arch-probe {arch}"));
            assert_eq!(o.status.code(), Some(159), "{who:?} {arch}: killed by SIGSYS: {}", show(&o));
            assert!(!out(&o).contains("getpid"), "{who:?} {arch}: the call returned: {}", show(&o));
            assert!(err(&o).contains("killed by seccomp (SIGSYS)"), "{who:?} {arch}: reported: {}", show(&o));
        }
    }
}

/// SECURITY.md, process: "no capabilities (all five sets emptied, securebits locked)".
#[test]
fn no_capabilities_and_securebits_locked() {
    if !need_root() {
        return;
    }
    let script = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status; \
                  python3 -c 'import ctypes; print(\"securebits\", ctypes.CDLL(None).prctl(27, 0, 0, 0, 0))'";
    // Control: root outside holds a full bounding set and unlocked securebits.
    let b = Env::new(Who::Root).bare_sh(script);
    assert!(out(&b).contains("securebits 0") && !out(&b).contains("CapBnd:\t0000000000000000"), "{}", show(&b));
    for who in BOTH {
        let e = Env::new(who);
        let o = e.run_sh(script);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        let s = out(&o);
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert!(s.contains(&format!("{set}:\t0000000000000000")), "{who:?}: {set} is not empty: {s}");
        }
        // NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and the locks of all three and of KEEP_CAPS.
        assert!(s.contains("securebits 239"), "{who:?}: securebits locked (0xef): {s}");
    }
}

/// SECURITY.md, syscalls: "TIOCSTI/TIOCLINUX ... answered with EPERM and reported" (the escape
/// suite has TIOCSTI; TIOCLINUX needs a Linux console to do harm, so this shows the refusal).
#[test]
fn tioclinux_is_refused_and_reported() {
    if !need_root() {
        return;
    }
    let script = "python3 -c 'import fcntl, sys\ntry:\n  fcntl.ioctl(0, 0x541C, bytes(8)); print(\"ioctl ok\")\nexcept OSError as e:\n  print(\"errno\", e.errno)' < /dev/null";
    for who in BOTH {
        let e = Env::new(who);
        // Control: the call reaches the kernel, which says /dev/null is no terminal (ENOTTY).
        let b = e.bare_sh(script);
        assert!(out(&b).contains("errno 25"), "{who:?}: {}", show(&b));
        let o = e.run_sh(script);
        assert!(out(&o).contains("errno 1"), "{who:?}: refused with EPERM: {}", show(&o));
        assert!(err(&o).contains("ioctl(TIOCLINUX)"), "{who:?}: the summary names it: {}", show(&o));
    }
}

/// SECURITY.md, syscalls: "as root also vm.memfd_noexec = 2 in the session's pid namespace".
#[test]
fn memfd_noexec_is_enforced_in_a_root_session() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let host = std::fs::read_to_string("/proc/sys/vm/memfd_noexec").expect("host sysctl");
    assert_ne!(host.trim(), "2", "control: the host itself does not enforce it");
    let o = e.run_sh("cat /proc/sys/vm/memfd_noexec");
    assert_eq!(out(&o).trim(), "2", "{}", show(&o));
    let again = std::fs::read_to_string("/proc/sys/vm/memfd_noexec").expect("host sysctl");
    assert_eq!(again, host, "the host's setting is untouched (the sysctl is per pid namespace)");
}

/// SECURITY.md, processes: "the supervisor is not dumpable". A process of the same user cannot
/// read a non-dumpable process's /proc files (they belong to root) nor ptrace it.
#[test]
fn cordons_own_processes_are_not_dumpable() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Nobody);
    let as_nobody = |args: &[&str]| {
        let mut c = std::process::Command::new("setpriv");
        c.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "--"]).args(args);
        c
    };
    // Control: another process of nobody's is readable by nobody.
    let mut bare = as_nobody(&["sleep", "30"]).spawn().expect("sleep");
    let environ = format!("/proc/{}/environ", bare.id());
    // Judged once setpriv has become nobody and exec'd sleep (before, the process is root's).
    let exec_done = wait_for(std::time::Duration::from_secs(10), || {
        std::fs::read_link(format!("/proc/{}/exe", bare.id())).ok().filter(|x| x.ends_with("sleep"))
    });
    assert!(exec_done.is_some(), "control: sleep started");
    let m = std::fs::metadata(&environ).expect("environ");
    let read = as_nobody(&["cat", &environ]).output().expect("cat");
    let _ = bare.kill();
    let _ = bare.wait();
    assert!(std::os::unix::fs::MetadataExt::uid(&m) == NOBODY && read.status.success(), "control: {}", show(&read));
    // Inside: the session waits for the test (bounded) while its cordon processes are inspected.
    let mut run = as_nobody(&[
        env!("CARGO_BIN_EXE_cordon"),
        "run",
        "--allow-degraded",
        "-q",
        "--",
        "sh",
        "-c",
        "echo ready; i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
    ])
    .current_dir(&e.ws)
    .env("HOME", &e.home)
    .env("CORDON_AUDIT", e.root.join("audit.db"))
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("cordon");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(run.stdout.take().expect("stdout")), &mut line)
        .expect("read");
    assert_eq!(line, "ready\n");
    let ours: Vec<u32> = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|d| d.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|x| x == std::path::Path::new(env!("CARGO_BIN_EXE_cordon")))
        })
        .collect();
    // The session is let go only after the checks: once it ends, its processes exit and their /proc
    // files go between the two reads below (CI saw `cat: /proc/PID/environ: No such file`).
    let mut seen = vec![];
    for pid in &ours {
        let environ = format!("/proc/{pid}/environ");
        let Ok(m) = std::fs::metadata(&environ) else { continue };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if !status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("65534")) {
            continue; // another test's cordon, run as root
        }
        seen.push(*pid);
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&m),
            0,
            "cordon process {pid} is dumpable (its /proc files are nobody's)"
        );
        let read = as_nobody(&["cat", &environ]).output().expect("cat");
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            seen.pop(); // it ended meanwhile (a short-lived helper of cordon's): nothing was read
            continue;
        }
        assert!(!read.status.success() && err(&read).contains("Permission denied"), "pid {pid}: {}", show(&read));
    }
    std::fs::write(e.ws.join("go"), "").expect("go");
    let st = run.wait().expect("wait");
    assert!(st.success(), "{st:?}");
    assert!(!seen.is_empty(), "cordon's processes were found ({ours:?})");
}

/// SECURITY.md, egress: "loopback, private, link-local and metadata addresses only when an IP/CIDR
/// entry names them". Names allowed by name resolve (through the test resolver) to such addresses;
/// the proxy refuses before connecting, so nothing is sent anywhere.
#[test]
fn the_proxy_refuses_private_link_local_and_metadata_addresses() {
    if !need_root() {
        return;
    }
    let names = "meta.test=169.254.169.254,lan.test=10.1.2.3,ll6.test=fe80::1,home.test=192.168.1.1";
    let hosts = ["meta.test", "lan.test", "ll6.test", "home.test"];
    let script: String = hosts
        .iter()
        .map(|h| format!("curl -s -o /dev/null -w '{h} %{{http_code}}\\n' --max-time 10 http://{h}:80/; "))
        .collect();
    for who in BOTH {
        let e = Env::new(who);
        let mut args = vec![];
        let allow: Vec<String> = hosts.iter().map(|h| format!("{h}:80")).collect();
        for a in &allow {
            args.extend(["--allow-net", a.as_str()]);
        }
        let o = e.run_sh_with(&args, &script, &[("CORDON_TEST_RESOLVE", names)]);
        for h in hosts {
            assert!(out(&o).contains(&format!("{h} 403")), "{who:?}: {h} refused by the proxy: {}", show(&o));
        }
        let s = err(&o);
        assert!(s.contains("the cloud metadata service"), "{who:?}: the summary says why: {s}");
        assert!(s.contains("private") && s.contains("link-local"), "{who:?}: {s}");
    }
}

/// SECURITY.md, syscalls: the number of deny rules it states is the number `cordon policy
/// explain` counts for the default profile.
#[test]
fn security_md_counts_the_deny_rules_of_the_default_profile() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["policy", "explain", "builtin:agent"])
        .output()
        .expect("explain");
    let text = out(&o) + &err(&o);
    let n: usize = text
        .split("denied system calls (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("explain names no count: {text}"));
    let doc = include_str!("../../../docs/SECURITY.md");
    assert!(doc.contains(&format!("| syscalls | {n} deny rules")), "docs/SECURITY.md must say {n} deny rules");
}

/// SECURITY.md, observation: "every exec, fork, exit, open, connect/bind/send with an address,
/// unlink, rename, chmod, chown, mkdir, truncate, ptrace, kill, setuid family, mount API, unshare,
/// setns, bpf, module loading, memfd_create and io_uring_setup ... and every refused call with its
/// layer". One call of each kind (tests/claims/observe.py); the refused ones appear as denials.
#[test]
fn the_sensor_observes_every_kind_it_lists() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/claims/observe.py"), e.ws.join("observe.py"))
        .expect("copy");
    let evf = e.root.join("events.jsonl");
    let o = e.cordon(&["run", "-q", "--events", evf.to_str().unwrap_or(""), "--", "/usr/bin/python3", "observe.py"]);
    assert!(o.status.success(), "{}", show(&o));
    let evs: Vec<serde_json::Value> = std::fs::read_to_string(&evf)
        .expect("events")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["setup"] != true)
        .collect();
    let kind = |k: &str| evs.iter().any(|v| v["kind"] == k);
    let denied =
        |call: &str| evs.iter().any(|v| v["kind"] == "deny" && v["syscall"] == call && v["layer"] == "seccomp");
    for k in [
        "exec", "fork", "exit", "open", "connect", "bind", "send", "unlink", "rename", "chmod", "chown", "mkdir",
        "truncate", "kill", "setid", "memfd",
    ] {
        assert!(kind(k), "no `{k}` event");
    }
    for call in ["ptrace", "mount", "unshare", "setns", "bpf", "init_module", "io_uring_setup"] {
        assert!(denied(call), "no seccomp `deny` event for {call}");
    }
}
