//! Plans as plain data: for a given policy and host, each layer's plan and the guarantees it claims.

use super::landlock as ll;
use super::*;
use crate::caps::{CgroupCaps, KernelCaps, Userns};
use cordon_policy::{Context, Egress};
use std::path::PathBuf;

fn policy(name: &str) -> cordon_policy::CompiledPolicy {
    let cx = Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
    cordon_policy::load_and_compile(&format!("builtin:{name}"), &cx).expect("builtin").1
}

fn host(abi: i32, root: bool) -> KernelCaps {
    KernelCaps {
        kernel: "test".into(),
        arch: "x86_64".into(),
        uid: if root { 0 } else { 1000 },
        is_root: root,
        landlock_abi: abi,
        seccomp_filter: true,
        seccomp_user_notif: true,
        userns: if root { Userns::NotNeeded } else { Userns::Allowed },
        cgroup: CgroupCaps {
            v2_mount: Some("/sys/fs/cgroup/unified".into()),
            v2_controllers: vec![],
            v2_base: root.then(|| PathBuf::from("/sys/fs/cgroup/unified")),
            v1: if root {
                vec![
                    ("memory".into(), "/sys/fs/cgroup/memory".into()),
                    ("pids".into(), "/sys/fs/cgroup/pids".into()),
                    ("cpu".into(), "/sys/fs/cgroup/cpu,cpuacct".into()),
                ]
            } else {
                vec![]
            },
        },
        memfd_noexec: true,
    }
}

fn inv() -> Invocation {
    Invocation {
        session_id: "s1".into(),
        argv: vec!["/bin/true".into()],
        cwd: "/home/u/ws".into(),
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "x".into()),
            ("LD_PRELOAD".into(), "x".into()),
            ("LANG".into(), "C".into()),
        ],
    }
}

#[test]
fn the_environment_plan_needs_no_command() {
    let pol = policy("agent");
    for (abi, root) in [(7, true), (7, false), (3, false)] {
        let env = environment(&pol, &host(abi, root), "s1");
        let other = Invocation {
            argv: vec!["/usr/bin/env".into(), "x".into()],
            cwd: "/home/u/ws/sub".into(),
            env: vec![],
            ..inv()
        };
        assert_eq!(plan(&pol, &host(abi, root), &inv()).environment, env);
        assert_eq!(plan(&pol, &host(abi, root), &other).environment, env);
    }
}

#[test]
fn a_session_plan_is_its_environment_then_its_process() {
    for (abi, root) in [(7, true), (7, false), (2, false)] {
        let p = plan(&policy("agent"), &host(abi, root), &inv());
        let both: Vec<Guarantee> = p.environment.guarantees.iter().chain(&p.process.guarantees).cloned().collect();
        assert_eq!(p.guarantees, both);
        assert!(p.process.guarantees.iter().all(|g| g.layer == "process"), "{:?}", p.process.guarantees);
        // Run as it is, the process is confined exactly as its environment bounds it.
        assert_eq!(p.process.landlock, p.environment.landlock);
        assert_eq!(p.process.seccomp, p.environment.seccomp);
        assert_eq!(p.process.rlimits, p.environment.rlimits);
    }
}

#[test]
fn a_process_plan_from_a_stricter_policy_is_stricter_in_its_own_layers_only() {
    let caps = host(7, true);
    let env = environment(&policy("agent"), &caps, "s1");
    let mut strict = policy("agent");
    strict.fs.rules.retain(|r| !r.access.write);
    let p = process(&strict, &caps, &env, &inv());
    assert!(p.landlock.fs_rules.iter().all(|r| r.rights & ll::WRITE_FILE == 0));
    assert!(env.landlock.fs_rules.iter().any(|r| r.rights & ll::WRITE_FILE != 0));
    assert_eq!(p.seccomp, env.seccomp);
}

#[test]
fn root_on_this_kind_of_host_gets_everything() {
    let p = plan(&policy("agent"), &host(7, true), &inv());
    assert!(p.degraded().is_empty(), "{:?}", p.degraded());
    assert!(!p.environment.ns.user && p.environment.ns.pid && p.environment.ns.mount && p.environment.ns.net);
    assert!(matches!(p.environment.cgroup.memory, Some((_, cgroup::Mechanism::V1 { .. }))));
    assert_eq!(p.environment.cgroup.v2_dir, Some(PathBuf::from("/sys/fs/cgroup/unified/cordon/s1")));
    assert_eq!(p.process.landlock.scopes, ll::SCOPE_ABSTRACT_UNIX | ll::SCOPE_SIGNAL);
    // netns is the network layer; Landlock TCP is not needed (and would break in-session loopback).
    assert_eq!(p.process.landlock.handled_net, 0);
}

#[test]
fn landlock_handles_every_right_of_the_abi() {
    for (abi, refer, trunc, ioctl) in [
        (1, false, false, false),
        (2, true, false, false),
        (3, true, true, false),
        (5, true, true, true),
        (7, true, true, true),
    ] {
        let p = plan(&policy("agent"), &host(abi, true), &inv());
        let h = p.process.landlock.handled_fs;
        assert_eq!(h & ll::REFER != 0, refer, "abi {abi}");
        assert_eq!(h & ll::TRUNCATE != 0, trunc, "abi {abi}");
        assert_eq!(h & ll::IOCTL_DEV != 0, ioctl, "abi {abi}");
        for r in &p.process.landlock.fs_rules {
            assert_eq!(r.rights & !h, 0, "rule asks for rights the ABI lacks");
        }
    }
}

#[test]
fn rules_follow_the_policy() {
    let p = plan(&policy("agent"), &host(7, true), &inv());
    let rule = |path: &str| {
        p.process.landlock.fs_rules.iter().find(|r| r.path == std::path::Path::new(path)).map(|r| r.rights).unwrap_or(0)
    };
    use ll::{EXECUTE, IOCTL_DEV, MAKE_BLOCK, MAKE_CHAR, MAKE_REG, REFER, TRUNCATE, WRITE_FILE};
    assert_eq!(rule("/usr") & (WRITE_FILE | MAKE_REG), 0, "system is read-only");
    assert_ne!(rule("/usr") & EXECUTE, 0);
    assert_ne!(rule("/home/u/ws") & (WRITE_FILE | MAKE_REG | REFER | TRUNCATE), 0);
    assert_eq!(rule("/home/u/ws") & (MAKE_CHAR | MAKE_BLOCK), 0, "never device nodes");
    assert_ne!(rule("/dev/pts") & IOCTL_DEV, 0, "terminal ioctls");
    assert_eq!(rule("/home/u"), 0, "HOME itself is not readable");
    assert!(p.process.landlock.fs_rules.iter().all(|r| !r.path.starts_with("/home/u/.ssh")));
}

#[test]
fn no_scopes_before_abi_6_is_covered_by_namespaces() {
    let p = plan(&policy("agent"), &host(4, true), &inv());
    assert_eq!(p.process.landlock.scopes, 0);
    assert!(p.degraded().iter().all(|g| g.layer != "scoping"), "pid+net namespaces cover scoping");
}

#[test]
fn no_landlock_is_a_named_degradation() {
    let p = plan(&policy("agent"), &host(0, true), &inv());
    let d = p.degraded();
    assert!(
        d.iter().any(|g| g.layer == "filesystem"
            && matches!(&g.state, State::Degraded { feature, .. } if feature.contains("Landlock"))),
        "{d:?}"
    );
}

#[test]
fn unprivileged_without_cgroups_degrades_memory_and_cpu_only() {
    let p = plan(&policy("agent"), &host(7, false), &inv());
    assert!(p.environment.ns.user, "unprivileged sessions use a user namespace");
    let d: Vec<_> = p.degraded().iter().map(|g| g.what.clone()).collect();
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().any(|w| w.contains("memory")) && d.iter().any(|w| w.contains("CPU")));
    assert!(
        p.process.rlimits.contains(&(process::Rlimit::Nproc, 512)),
        "processes bound by RLIMIT_NPROC in the userns"
    );
    assert!(p.process.rlimits.iter().any(|(r, _)| *r == process::Rlimit::Data));
    assert!(p.environment.cgroup.dirs().is_empty());
}

#[test]
fn blocked_user_namespaces_are_named() {
    let mut h = host(7, false);
    h.userns = Userns::Blocked("AppArmor restricts unprivileged user namespaces".into());
    let p = plan(&policy("agent"), &h, &inv());
    assert!(!p.environment.ns.pid && !p.environment.ns.mount && !p.environment.ns.net);
    assert!(p
        .degraded()
        .iter()
        .any(|g| matches!(&g.state, State::Degraded { feature, .. } if feature.contains("AppArmor"))));
    // Without a network namespace, Landlock TCP rules take over network denial.
    assert_ne!(p.process.landlock.handled_net, 0);
}

#[test]
fn old_abi_without_netns_loses_the_network_guarantee() {
    let mut h = host(2, false);
    h.userns = Userns::Blocked("sysctl".into());
    let p = plan(&policy("agent"), &h, &inv());
    assert!(p.degraded().iter().any(|g| g.layer == "network" && g.what == "no network"));
}

#[test]
fn mounts_mask_only_what_landlock_cannot() {
    let p = plan(&policy("agent"), &host(7, true), &inv());
    let ops = &p.environment.ns.mounts;
    assert_eq!(ops.first(), Some(&ns::MountOp::MakePrivate));
    assert!(ops.contains(&ns::MountOp::Proc));
    assert!(ops
        .iter()
        .any(|o| matches!(o, ns::MountOp::Tmpfs { target, .. } if target == std::path::Path::new("/tmp"))));
    assert!(ops
        .iter()
        .any(|o| matches!(o, ns::MountOp::Tmpfs { target, .. } if target == std::path::Path::new("/run"))));
    assert!(p.environment.ns.hide.as_ref().is_some_and(|h| h.patterns.contains(&".env".to_string())));
}

#[test]
fn seccomp_resolves_for_both_architectures() {
    use cordon_policy::syscalls::Arch;
    let pol = policy("agent");
    for a in [Arch::X86_64, Arch::Aarch64] {
        let rules = seccomp::resolve(&pol.syscalls, a);
        let expected = pol.syscalls.iter().filter(|r| r.arches.contains(&a)).count();
        assert_eq!(rules.len(), expected, "{a:?}: every entry for this arch resolves");
        assert!(rules.iter().any(|r| r.name == "io_uring_setup"));
    }
    let p = plan(&pol, &host(7, true), &inv());
    assert!(p.process.seccomp.enabled && p.process.seccomp.notify);
    assert!(p
        .process
        .seccomp
        .rules
        .iter()
        .any(|r| r.name == "clone3" && matches!(r.action, cordon_policy::syscalls::DenyAction::QuietErrno(38))));
}

#[test]
fn seccomp_arg_matching() {
    let p = plan(&policy("agent"), &host(7, true), &inv());
    let nr = |n: &str| p.process.seccomp.rules.iter().find(|r| r.name == n).map(|r| r.nr).expect("rule");
    let hit = |name: &str, args: [u64; 6]| {
        p.process.seccomp.rules.iter().any(|r| seccomp::matches(r, nr(name), &args) && r.name == name)
    };
    assert!(hit("ioctl", [0, 0x5412, 0, 0, 0, 0]));
    assert!(hit("ioctl", [0, 0xdead_0000_5412, 0, 0, 0, 0]), "upper bits cannot hide TIOCSTI");
    assert!(!hit("ioctl", [0, 0x5401, 0, 0, 0, 0]), "TCGETS is fine");
    assert!(hit("socket", [17, 3, 0, 0, 0, 0]), "AF_PACKET");
    assert!(!hit("socket", [2, 1, 0, 0, 0, 0]), "TCP");
    assert!(hit("socket", [2, 3, 1, 0, 0, 0]), "raw ICMP");
    assert!(hit("unshare", [0x1000_0000, 0, 0, 0, 0, 0]));
    assert!(!hit("unshare", [0x400, 0, 0, 0, 0, 0]), "CLONE_FILES is fine");
}

#[test]
fn environment_is_scrubbed() {
    let p = plan(&policy("agent"), &host(7, true), &inv());
    let names: Vec<&str> = p.process.env.iter().filter_map(|(k, _)| k.to_str()).collect();
    assert!(names.contains(&"LANG") && names.contains(&"PATH"));
    assert!(!names.contains(&"AWS_SECRET_ACCESS_KEY") && !names.contains(&"LD_PRELOAD"));
    assert!(p.process.env.contains(&("TMPDIR".into(), "/tmp".into())));
    assert!(p.process.rlimits.contains(&(process::Rlimit::Core, 0)));
}

#[test]
fn arguments_paths_and_environment_that_are_not_utf8_are_kept_as_bytes() {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let os = |b: &[u8]| OsString::from_vec(b.to_vec());
    let mut i = inv();
    i.argv = vec!["/bin/printf".into(), os(b"a\xffb")];
    i.cwd = PathBuf::from(os(b"/home/u/ws/d\xff"));
    i.env.extend([(os(b"AWS_\xffKEY"), "x".into()), (os(b"ODD\xffNAME"), os(b"v\xfe")), ("KEEP".into(), os(b"\xff"))]);
    let p = plan(&policy("agent"), &host(7, true), &i);
    assert_eq!(p.process.argv[1], os(b"a\xffb"));
    assert_eq!(p.process.cwd.as_os_str().as_bytes(), b"/home/u/ws/d\xff");
    assert!(
        p.process.env.contains(&(os(b"ODD\xffNAME"), os(b"v\xfe")))
            && p.process.env.contains(&("KEEP".into(), os(b"\xff")))
    );
    assert!(
        !p.process.env.iter().any(|(k, _)| k.as_bytes().starts_with(b"AWS_")),
        "env.drop patterns apply to names that are not UTF-8"
    );
    assert_eq!(
        p.process.env_dropped.iter().filter(|n| n.starts_with("AWS_")).collect::<Vec<_>>(),
        ["AWS_SECRET_ACCESS_KEY", "AWS_\u{FFFD}KEY"]
    );
    // Records show text; the notes give the exact bytes of each argument and path that is not UTF-8.
    assert_eq!(p.process.notes.len(), 2, "{:?}", p.process.notes);
    assert!(
        p.process.notes[0].starts_with("command argument 1 is not valid UTF-8")
            && p.process.notes[0].ends_with(r"a\xffb"),
        "{:?}",
        p.process.notes
    );
    assert!(
        p.process.notes[1].starts_with("the working directory") && p.process.notes[1].ends_with(r"d\xff"),
        "{:?}",
        p.process.notes
    );
    let j = serde_json::to_value(&p.process).expect("a plan with OS strings serializes");
    assert_eq!(j["argv"][1], "a\u{FFFD}b");
    // PATH lookup works on bytes.
    let mut name = format!("cordon-plan-test-{}-", std::process::id()).into_bytes();
    name.push(0xff);
    let dir = std::env::temp_dir().join(OsStr::from_bytes(&name));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let prog = dir.join("prog");
    std::fs::write(&prog, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let mut path = dir.clone().into_os_string();
    path.push(":/usr/bin");
    let found = process::resolve_program(OsStr::new("prog"), Some(&path), &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found, Some(prog));
}

#[test]
fn open_egress_needs_no_netns() {
    let mut pol = policy("agent");
    pol.net.egress = Egress::Open;
    pol.namespaces.net = false;
    let p = plan(&pol, &host(7, true), &inv());
    assert!(!p.environment.ns.net && p.process.landlock.handled_net == 0);
}

#[test]
fn bpf_program_agrees_with_the_rules() {
    use crate::apply::bpf;
    use cordon_policy::syscalls::Arch;
    let pol = policy("agent");
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let rules = seccomp::resolve(&pol.syscalls, arch);
        let prog = bpf::compile(arch, &rules, true, false).expect("compile");
        let aa = bpf::audit_arch(arch);
        let mut rng = crate::testutil::XorShift(0x1234_5678_9abc_def0u64);
        let mut next = || rng.next();
        for _ in 0..20_000 {
            let nr =
                if next() % 2 == 0 { rules[(next() % rules.len() as u64) as usize].nr } else { (next() % 460) as i32 };
            let mut args = [0u64; 6];
            for a in args.iter_mut() {
                *a = match next() % 4 {
                    0 => next() % 64,
                    1 => [0x5412u64, 0x541C, 0x1000_0000, 17, 3, 0x40_0000][(next() % 6) as usize],
                    2 => next(),
                    _ => (next() << 32) | [17u64, 0x5412, 0x1000_0000][(next() % 3) as usize],
                };
            }
            let want = rules
                .iter()
                .find(|r| seccomp::matches(r, nr, &args))
                .map(|r| bpf::action(r, true, false))
                .unwrap_or(bpf::RET_ALLOW);
            let got = bpf::simulate(&prog, aa, nr, args);
            assert_eq!(got, want, "{arch:?} nr {nr} args {args:x?}");
        }
        // Another architecture's syscalls (i386 via int 0x80 on x86_64) are killed.
        assert_eq!(bpf::simulate(&prog, 0x4000_0003, 0, [0; 6]), bpf::RET_KILL_PROCESS);
        if arch == Arch::X86_64 {
            assert_eq!(bpf::simulate(&prog, aa, 0x4000_0000 | 101, [0; 6]), bpf::RET_KILL_PROCESS, "x32 ptrace");
        }
        // High garbage cannot hide a denied int argument (the kernel truncates it).
        let sock = rules.iter().find(|r| r.name == "socket").expect("socket").nr;
        assert_eq!(bpf::simulate(&prog, aa, sock, [0xdead_0000_0000_0011, 3, 0, 0, 0, 0]), bpf::RET_USER_NOTIF);
        assert_eq!(bpf::simulate(&prog, aa, sock, [2, 1, 0, 0, 0, 0]), bpf::RET_ALLOW, "TCP sockets are fine");
    }
}

#[test]
fn without_a_mount_namespace_the_built_root_is_a_named_degradation() {
    let mut h = host(7, false);
    h.userns = Userns::Blocked("sysctl".into());
    let p = plan(&policy("agent"), &h, &inv());
    assert!(p.environment.ns.mounts.is_empty());
    let g = p.degraded();
    let root = g.iter().find(|g| g.what.starts_with("the session sees only the policy's trees")).expect("degraded");
    assert!(format!("{root:?}").contains("a mount namespace"), "{root:?}");
    let ok = plan(&policy("agent"), &host(7, true), &inv());
    assert!(matches!(ok.environment.ns.mounts.get(1), Some(ns::MountOp::NewRoot { .. })));
    assert!(ok.environment.landlock.fs_rules.iter().any(|r| r.path == std::path::Path::new("/")));
}

/// Absent protected paths get a placeholder at their first missing component, where the session
/// could make them; present ones a read-only bind; `.git` is never made for a path inside it.
#[test]
fn absent_protected_paths_are_bound_over_placeholders_where_the_session_could_make_them() {
    let tmp = crate::testutil::Tmp::new("plan-protect");
    let ws = tmp.0.canonicalize().expect("canonical");
    std::fs::create_dir(ws.join(".vscode")).expect("mkdir");
    std::fs::write(ws.join(".pre-commit-config.yaml"), "repos: []\n").expect("write");
    let cx = Context { home: "/home/u".into(), workspace: ws.clone(), tmp: "/tmp".into() };
    let pol = cordon_policy::load_and_compile("builtin:agent", &cx).expect("builtin").1;
    let env = environment(&pol, &host(7, true), "s1");
    let binds: Vec<(String, bool)> = env
        .ns
        .mounts
        .iter()
        .filter_map(|m| match m {
            ns::MountOp::ReadOnly { path, placeholder, .. } => {
                Some((path.strip_prefix(&ws).expect("inside").display().to_string(), *placeholder))
            }
            _ => None,
        })
        .collect();
    let want = |p: &str, ph: bool| assert!(binds.contains(&(p.to_string(), ph)), "{p} {ph}: {binds:?}");
    want(".envrc", true);
    want(".vscode/tasks.json", true);
    want(".idea", true);
    want(".pre-commit-config.yaml", false);
    assert!(!binds.iter().any(|(p, _)| p.starts_with(".git")), "no repository here: {binds:?}");
    assert!(env.ns.mounts.contains(&ns::MountOp::Pin { path: ws.join(".vscode") }));
    let placeholders: Vec<_> = ns::placeholders(&env.ns).collect();
    assert_eq!(placeholders.len(), binds.iter().filter(|(_, ph)| *ph).count());
    // A read-only workspace needs none.
    let ro = cordon_policy::load_and_compile("builtin:readonly", &cx).expect("builtin").1;
    assert_eq!(ns::placeholders(&environment(&ro, &host(7, true), "s1").ns).count(), 0);
}

// Plans at their boundaries, with policies and hosts written for the test: each kills mutants
// (changed operators, conditions, returned defaults) the earlier tests let live (docs/TESTING.md,
// "Mutation testing").

fn compiled(text: &str) -> cordon_policy::CompiledPolicy {
    let cx = Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
    let l = cordon_policy::load_text("t.toml", &format!("version = 1\n{text}")).expect("policy loads");
    cordon_policy::compile(&l, &cx)
}

#[test]
fn the_proxy_takes_the_first_free_port_and_host_loopback_services_get_forwarders() {
    let pol = compiled(
        "[net]\negress = \"proxy\"\nlisten = [3128, 3129, 8000]\nallow = [\"127.0.0.1:5432\", \"127.0.0.1:5432\", \"127.0.0.1:8000\", \"127.0.0.1:3130\", \"10.0.0.1:80\", \"127.0.0.1\", \"example.com:443\"]\n",
    );
    let env = environment(&pol, &host(7, true), "s1");
    let n = &env.net;
    assert_eq!(n.proxy_url.as_deref(), Some("http://127.0.0.1:3130"));
    let at: Vec<(String, bool)> =
        n.listeners.iter().map(|l| (l.addr.to_string(), matches!(l.role, net::ListenerRole::Proxy))).collect();
    // One forwarder per loopback service with a port, not the proxy's, not a session port, once.
    assert_eq!(at, [("127.0.0.1:3130".to_string(), true), ("127.0.0.1:5432".to_string(), false)]);
    assert!(env.guarantees.iter().any(|g| g.layer == "network" && g.what.contains("to: 127.0.0.1:5432")));
    let none = environment(&compiled("[net]\negress = \"none\"\n"), &host(7, true), "s1");
    assert!(none.net.listeners.is_empty() && none.net.proxy_url.is_none());
}

#[test]
fn published_ports_need_the_network_namespace() {
    let text = "[net]\negress = \"proxy\"\npublish = [\"8080:80\"]\n";
    assert_eq!(environment(&compiled(text), &host(7, true), "s1").net.publish.len(), 1);
    let mut pol = compiled(text);
    pol.namespaces.net = false;
    let env = environment(&pol, &host(7, true), "s1");
    assert!(env.net.publish.is_empty() && env.net.listeners.is_empty() && env.net.proxy_url.is_none());
    assert!(env.guarantees.iter().any(|g| g.layer == "network" && g.is_degraded() && g.what.contains("proxy")));
}

#[test]
fn cgroup_limits_use_v2_then_v1_then_rlimits_and_name_every_directory() {
    let pol = compiled("[limits]\nmemory = \"1G\"\nprocesses = 100\ncpu = 1.5\nwall_time = \"1m\"\n");
    let mut h = host(7, true);
    h.cgroup.v2_controllers = vec!["memory".into()];
    let env = environment(&pol, &h, "s1");
    let cg = &env.cgroup;
    let v2 = PathBuf::from("/sys/fs/cgroup/unified/cordon/s1");
    assert_eq!(cg.memory, Some((1 << 30, cgroup::Mechanism::V2 { dir: v2.clone() })));
    assert_eq!(cg.v2_controllers, ["memory"]);
    let pids = PathBuf::from("/sys/fs/cgroup/pids/cordon/s1");
    let cpu = PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/cordon/s1");
    assert_eq!(cg.processes, Some((100, cgroup::Mechanism::V1 { dir: pids.clone() })));
    assert_eq!(cg.cpu, Some((1.5, cgroup::Mechanism::V1 { dir: cpu.clone() })));
    assert_eq!(cg.dirs(), [v2, pids, cpu]);
    assert_eq!(cg.wall_time, Some(std::time::Duration::from_secs(60)));
    let ok: Vec<&str> = env.guarantees.iter().filter(|g| g.layer == "resources").map(|g| g.what.as_str()).collect();
    assert_eq!(ok.len(), 4, "{ok:?}");
    assert!(env.guarantees.iter().filter(|g| g.layer == "resources").all(|g| !g.is_degraded()));
    let how = |what: &str| {
        let g = env.guarantees.iter().find(|g| g.what.contains(what)).expect(what);
        format!("{:?}", g.state)
    };
    assert!(how("session memory").contains("cgroup v2 memory controller"), "{}", how("session memory"));
    assert!(how("at most 100 processes").contains("cgroup v1 pids controller"), "{}", how("at most 100 processes"));
    // Two limits in one v1 hierarchy make one directory.
    h.cgroup.v1 = vec![("pids".into(), "/sys/fs/cgroup/x".into()), ("cpu".into(), "/sys/fs/cgroup/x".into())];
    assert_eq!(environment(&pol, &h, "s1").cgroup.dirs().len(), 2);
    // As root without any cgroup: memory as RLIMIT_DATA, no process or CPU limit (degraded), and
    // nothing ends daemons without a pid namespace either.
    let mut bare = host(7, true);
    bare.cgroup = CgroupCaps { v2_mount: None, v2_controllers: vec![], v2_base: None, v1: vec![] };
    let env = environment(&pol, &bare, "s1");
    assert_eq!(env.cgroup.processes, Some((100, cgroup::Mechanism::None)));
    assert_eq!(env.cgroup.cpu, Some((1.5, cgroup::Mechanism::None)));
    assert_eq!(env.cgroup.memory, Some((1 << 30, cgroup::Mechanism::Rlimit)));
    assert_eq!(env.rlimits, [(process::Rlimit::Core, 0), (process::Rlimit::Data, 1 << 30)]);
    let degraded: Vec<&str> = env.guarantees.iter().filter(|g| g.is_degraded()).map(|g| g.what.as_str()).collect();
    assert_eq!(degraded.len(), 3, "{degraded:?}");
    let mut nopid = pol.clone();
    nopid.namespaces.pid = false;
    let env = environment(&nopid, &bare, "s1");
    assert!(env.guarantees.iter().any(|g| g.layer == "processes" && g.is_degraded()));
    let env = environment(&nopid, &host(7, true), "s1");
    assert!(!env.guarantees.iter().any(|g| g.layer == "processes" && g.is_degraded()), "cgroup v2 ends them");
}

#[test]
fn rlimits_carry_the_open_file_limit() {
    let pol = compiled("[limits]\nopen_files = 64\n");
    let env = environment(&pol, &host(7, true), "s1");
    assert_eq!(env.rlimits, [(process::Rlimit::Core, 0), (process::Rlimit::Nofile, 64)]);
}

#[test]
fn landlock_tcp_rules_stand_in_for_a_missing_network_namespace() {
    let mut pol = compiled("[net]\negress = \"none\"\nlisten = [8080]\n");
    pol.namespaces.net = false;
    let env = environment(&pol, &host(4, true), "s1");
    assert_eq!(env.landlock.handled_net, ll::NET_BIND_TCP | ll::NET_CONNECT_TCP);
    assert_eq!(env.landlock.net_rules, [(8080, ll::NET_BIND_TCP | ll::NET_CONNECT_TCP)]);
    let env = environment(&pol, &host(3, true), "s1");
    assert_eq!(env.landlock.handled_net, 0);
    assert!(env.guarantees.iter().any(|g| g.layer == "network" && g.what == "no network" && g.is_degraded()));
    // ABI 2 and below cannot refuse truncate; 6 and up scope signals without the namespaces.
    assert!(!env.guarantees.iter().any(|g| g.what.starts_with("truncate")));
    let env = environment(&pol, &host(2, true), "s1");
    assert!(env.guarantees.iter().any(|g| g.what.starts_with("truncate") && g.is_degraded()));
    let env = environment(&pol, &host(5, true), "s1");
    assert!(env.guarantees.iter().any(|g| g.layer == "scoping" && g.is_degraded()));
    let env = environment(&pol, &host(6, true), "s1");
    assert_eq!(env.landlock.scopes, ll::SCOPE_ABSTRACT_UNIX | ll::SCOPE_SIGNAL);
    assert!(!env.guarantees.iter().any(|g| g.what.starts_with("truncate")));
    assert_eq!(ll::abi_features(3), ["fs read/write/exec/make/remove", "refer (rename/link)", "truncate"]);
    assert_eq!(ll::abi_features(7).len(), 7);
    assert_eq!(ll::fs_rights_for_abi(1), (1 << 13) - 1);
}

#[test]
fn landlock_rights_per_access() {
    let pol = compiled("[fs]\nread = [\"/opt/r\"]\nwrite = [\"/opt/w\"]\nexec = [\"/opt/x\"]\n");
    let env = environment(&pol, &host(7, true), "s1");
    let rights = |p: &str| env.landlock.fs_rules.iter().find(|r| r.path == std::path::Path::new(p)).map(|r| r.rights);
    assert_eq!(rights("/opt/r"), Some(ll::READ_FILE | ll::READ_DIR));
    assert_eq!(rights("/opt/x"), Some(ll::EXECUTE));
    let w = rights("/opt/w").expect("a rule");
    assert_eq!(w & (ll::MAKE_CHAR | ll::MAKE_BLOCK | ll::EXECUTE | ll::IOCTL_DEV), 0);
    assert_eq!(w & ll::TRUNCATE, ll::TRUNCATE);
    assert_eq!(w & (ll::READ_FILE | ll::READ_DIR), ll::READ_FILE | ll::READ_DIR);
    // The rule's reason names its entry and origin.
    assert!(env.landlock.fs_rules.iter().any(|r| r.why == "/opt/r (t.toml)"));
    assert!(env.landlock.enabled() && !environment(&pol, &host(0, true), "s1").landlock.enabled());
}

#[test]
fn seccomp_plans_without_a_filter_or_listener_and_when_killing() {
    let pol = policy("agent");
    let mut h = host(7, true);
    h.seccomp_filter = false;
    let env = environment(&pol, &h, "s1");
    assert!(!env.seccomp.enabled && env.seccomp.rules.is_empty() && env.seccomp.watch.is_empty());
    assert!(env.guarantees.iter().any(|g| g.layer == "syscalls" && g.is_degraded()));
    let mut h = host(7, true);
    h.seccomp_user_notif = false;
    let env = environment(&pol, &h, "s1");
    assert!(env.seccomp.enabled && !env.seccomp.notify && env.seccomp.watch.is_empty());
    assert!(env.guarantees.iter().any(|g| g.layer == "report" && g.is_degraded()));
    assert!(env.guarantees.iter().any(|g| g.layer == "process" && g.is_degraded() && g.what.contains("memfd")));
    assert!(!env.seccomp.rules.iter().any(|r| r.name == "connect"), "no listener: no connect watch");
    let env = environment(&pol, &host(7, true), "s1");
    assert_eq!(env.seccomp.arch, "x86_64");
    assert!(!env.seccomp.watch.is_empty() && !env.seccomp.kill);
    assert!(!env.guarantees.iter().any(|g| g.layer == "report"));
    let mut kill = pol.clone();
    kill.kill_on_deny = true;
    let env = environment(&kill, &host(7, true), "s1");
    assert!(env.seccomp.kill && env.seccomp.watch.is_empty());
    assert!(!env.guarantees.iter().any(|g| g.layer == "report"), "a kill needs no itemised report");
}

#[test]
fn the_connect_watch_names_the_proxy_or_the_missing_network() {
    let connect = |env: &EnvironmentPlan| env.seccomp.rules.iter().find(|r| r.name == "connect").cloned();
    let proxy = environment(&compiled("[net]\negress = \"proxy\"\n"), &host(7, true), "s1");
    let c = connect(&proxy).expect("a connect rule");
    assert!(c.reason.contains("http://127.0.0.1:3128"), "{}", c.reason);
    assert!(!proxy.seccomp.watch.iter().any(|w| w.nr == c.nr));
    let none = environment(&compiled("[net]\negress = \"none\"\n"), &host(7, true), "s1");
    let mut s = none.seccomp.clone();
    assert!(connect(&none).is_some_and(|c| c.reason.starts_with(NO_NETWORK)));
    without_refusal_watches(&mut s);
    assert!(s.watch.is_empty() && !s.rules.iter().any(|r| r.name == "connect"));
    let mut p = compiled("[net]\negress = \"open\"\n");
    p.namespaces.net = false;
    assert!(connect(&environment(&p, &host(7, true), "s1")).is_none());
    let mut nonet = compiled("[net]\negress = \"none\"\n");
    nonet.namespaces.net = false;
    assert!(connect(&environment(&nonet, &host(7, true), "s1")).is_none(), "Landlock refuses it then");
}

#[test]
fn seccomp_argument_comparisons() {
    use cordon_policy::syscalls::{ArgCmp, CmpOp, DenyAction};
    let r = |op, value| seccomp::ResolvedRule {
        nr: 7,
        name: "x".into(),
        when: vec![ArgCmp { arg: 1, op, value }],
        action: DenyAction::Errno(1),
        reason: String::new(),
    };
    let args = |a: u64| [0, a, 0, 0, 0, 0];
    assert!(seccomp::matches(&r(CmpOp::Gt, 5), 7, &args(6)));
    assert!(!seccomp::matches(&r(CmpOp::Gt, 5), 7, &args(5)));
    assert!(!seccomp::matches(&r(CmpOp::Gt, 5), 8, &args(6)), "another number");
    assert!(seccomp::matches(&r(CmpOp::Eq, 5), 7, &args(5)) && !seccomp::matches(&r(CmpOp::Eq, 5), 7, &args(4)));
    assert!(seccomp::matches(&r(CmpOp::MaskedEq(0xf0), 0x10), 7, &args(0x1f)));
    assert!(!seccomp::matches(&r(CmpOp::MaskedEq(0xf0), 0x10), 7, &args(0x2f)));
}

#[test]
fn clone_flags_name_each_namespace() {
    let env = environment(&policy("agent"), &host(7, false), "s1");
    assert_eq!(
        env.ns.clone_flags(),
        ns::CLONE_NEWUSER | ns::CLONE_NEWPID | ns::CLONE_NEWNS | ns::CLONE_NEWIPC | ns::CLONE_NEWUTS | ns::CLONE_NEWNET
    );
    let mut p = policy("agent");
    (p.namespaces.ipc, p.namespaces.uts) = (false, false);
    let env = environment(&p, &host(7, true), "s1");
    assert_eq!(env.ns.clone_flags(), ns::CLONE_NEWPID | ns::CLONE_NEWNS | ns::CLONE_NEWNET);
    assert_eq!(env.ns.hostname, None);
    assert!(env.ns.memfd_noexec, "root with a pid namespace");
    assert!(!environment(&p, &host(7, false), "s1").ns.memfd_noexec, "only root writes the sysctl");
}

#[test]
fn placeholders_are_known_by_mode_and_git_files_by_name() {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(ns::placeholder_file(std::path::Path::new("/w/.git/commondir")), Some(".\n"));
    assert_eq!(ns::placeholder_file(std::path::Path::new("/w/.git/config.worktree")), Some(""));
    assert_eq!(ns::placeholder_file(std::path::Path::new("/w/.git/config")), None);
    assert_eq!(ns::placeholder_file(std::path::Path::new("/w/x/commondir")), None);
    let t = crate::testutil::Tmp::new("plan-placeholder");
    let (d, f) = (t.0.join("d"), t.0.join("f"));
    std::fs::create_dir(&d).expect("mkdir");
    std::fs::write(&f, "").expect("write");
    let is = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        ns::is_placeholder(&p.symlink_metadata().expect("stat"))
    };
    assert!(is(&d, ns::PLACEHOLDER_DIR_MODE) && !is(&d, 0o555) && !is(&d, ns::PLACEHOLDER_FILE_MODE));
    assert!(is(&f, ns::PLACEHOLDER_FILE_MODE) && !is(&f, 0o444) && !is(&f, ns::PLACEHOLDER_DIR_MODE));
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // A socket with the sticky bit and no write bit, whatever the umask took of 0o1444.
    let s = t.0.join("s");
    nix::sys::stat::mknod(&s, nix::sys::stat::SFlag::S_IFSOCK, nix::sys::stat::Mode::from_bits_truncate(0o644), 0)
        .expect("mknod");
    assert!(is(&s, ns::PLACEHOLDER_MODE) && is(&s, 0o1400) && is(&s, 0o1000));
    assert!(!is(&s, 0o444) && !is(&s, 0o1644) && !is(&s, 0o1464));
}

#[test]
fn a_program_with_a_slash_is_not_looked_up_on_path() {
    let cwd = std::path::Path::new("/home/u/ws");
    let r = |c: &str| process::resolve_program(std::ffi::OsStr::new(c), Some("/usr/bin".as_ref()), cwd);
    assert_eq!(r("./run.sh"), Some(PathBuf::from("/home/u/ws/./run.sh")));
    assert_eq!(r("/opt/x"), Some(PathBuf::from("/opt/x")));
    assert_eq!(r("sh"), Some(PathBuf::from("/usr/bin/sh")));
    assert_eq!(r("cordon-no-such-program"), None);
    assert_eq!(process::escaped(std::ffi::OsStr::new("a\\b")), "a\\\\b");
}

#[test]
fn without_refusal_watches_keeps_the_proxys_connect_rule_and_every_other_rule() {
    let proxy = environment(&compiled("[net]\negress = \"proxy\"\n"), &host(7, true), "s1");
    let mut s = proxy.seccomp.clone();
    without_refusal_watches(&mut s);
    assert!(s.watch.is_empty());
    assert_eq!(s.rules, proxy.seccomp.rules, "only the rule under egress = \"none\" goes");
    let none = environment(&compiled("[net]\negress = \"none\"\n"), &host(7, true), "s1");
    let mut s = none.seccomp.clone();
    without_refusal_watches(&mut s);
    assert_eq!(s.rules.len(), none.seccomp.rules.len() - 1);
}

#[test]
fn host_writable_is_the_writable_binds_sources_with_a_mount_namespace_only() {
    let pol = compiled("[fs]\nwrite = [\"/var/tmp\"]\nread = [\"/etc\"]\n");
    let env = environment(&pol, &host(7, true), "s1");
    let mut w: Vec<PathBuf> = env.host_writable().expect("a mount namespace").into_iter().map(PathBuf::from).collect();
    w.sort();
    let mut want: Vec<PathBuf> = env
        .ns
        .mounts
        .iter()
        .filter_map(|m| match m {
            ns::MountOp::Bind { src, writable: true, .. } => Some(src.clone()),
            _ => None,
        })
        .collect();
    want.sort();
    assert!(want.iter().any(|p| p == std::path::Path::new("/var/tmp")), "{want:?}");
    assert_eq!(w, want);
    assert!(!w.iter().any(|p| p.starts_with("/etc")), "read-only binds are not the session's to write");
    let plan = SessionPlan { environment: env.clone(), ..plan(&pol, &host(7, true), &inv()) };
    assert_eq!(plan.host_writable().map(|v| v.len()), Some(want.len()));
    let mut nomount = pol.clone();
    nomount.namespaces.mount = false;
    assert!(environment(&nomount, &host(7, true), "s1").host_writable().is_none());
}

/// The plan's rights are the kernel's (the applier hands them to the landlock crate as bits).
#[test]
fn landlock_rights_are_the_kernels_bits() {
    use ::landlock::{AccessFs, AccessNet, BitFlags, Scope, ABI};
    let fs = |a: AccessFs| BitFlags::from(a).bits();
    for (ours, theirs) in [
        (ll::EXECUTE, fs(AccessFs::Execute)),
        (ll::WRITE_FILE, fs(AccessFs::WriteFile)),
        (ll::READ_FILE, fs(AccessFs::ReadFile)),
        (ll::READ_DIR, fs(AccessFs::ReadDir)),
        (ll::REMOVE_DIR, fs(AccessFs::RemoveDir)),
        (ll::REMOVE_FILE, fs(AccessFs::RemoveFile)),
        (ll::MAKE_CHAR, fs(AccessFs::MakeChar)),
        (ll::MAKE_DIR, fs(AccessFs::MakeDir)),
        (ll::MAKE_REG, fs(AccessFs::MakeReg)),
        (ll::MAKE_SOCK, fs(AccessFs::MakeSock)),
        (ll::MAKE_FIFO, fs(AccessFs::MakeFifo)),
        (ll::MAKE_BLOCK, fs(AccessFs::MakeBlock)),
        (ll::MAKE_SYM, fs(AccessFs::MakeSym)),
        (ll::REFER, fs(AccessFs::Refer)),
        (ll::TRUNCATE, fs(AccessFs::Truncate)),
        (ll::IOCTL_DEV, fs(AccessFs::IoctlDev)),
        (ll::FILE_RIGHTS, AccessFs::from_file(ABI::V5).bits()),
        (ll::NET_BIND_TCP, BitFlags::from(AccessNet::BindTcp).bits()),
        (ll::NET_CONNECT_TCP, BitFlags::from(AccessNet::ConnectTcp).bits()),
        (ll::SCOPE_ABSTRACT_UNIX, BitFlags::from(Scope::AbstractUnixSocket).bits()),
        (ll::SCOPE_SIGNAL, BitFlags::from(Scope::Signal).bits()),
    ] {
        assert_eq!(ours, theirs);
    }
}

/// Each grant's rights exactly (the `|`→`^` mutants of these lines are equivalent: the bits are
/// disjoint), and a host without Landlock handles nothing and promises nothing of it.
#[test]
fn landlock_grants_exactly_these_rights_and_without_landlock_none() {
    let pol = compiled("[fs]\nwrite = [\"/opt/w\"]\nread = [\"/dev/null\"]\n");
    let env = environment(&pol, &host(7, true), "s1");
    let rights = |p: &str| env.landlock.fs_rules.iter().find(|r| r.path == std::path::Path::new(p)).map(|r| r.rights);
    let write = ll::WRITE_FILE
        | ll::REMOVE_DIR
        | ll::REMOVE_FILE
        | ll::MAKE_DIR
        | ll::MAKE_REG
        | ll::MAKE_SOCK
        | ll::MAKE_FIFO
        | ll::MAKE_SYM
        | ll::REFER
        | ll::TRUNCATE;
    assert_eq!(rights("/opt/w"), Some(write | ll::READ_FILE | ll::READ_DIR));
    assert_eq!(rights("/dev/null"), Some(ll::READ_FILE | ll::READ_DIR | ll::IOCTL_DEV));
    assert_eq!(rights("/"), Some(ll::READ_DIR), "the built root lists its names only");
    let none = environment(&pol, &host(0, true), "s1");
    assert_eq!(none.landlock.handled_fs, 0);
    assert!(none.landlock.fs_rules.iter().all(|r| r.rights == 0));
    let landlock_ok = |e: &EnvironmentPlan| {
        e.guarantees.iter().any(|g| matches!(&g.state, State::Enforced { how } if how.starts_with("Landlock ABI")))
    };
    assert!(landlock_ok(&env) && !landlock_ok(&none), "{:?}", none.guarantees);
}

/// The proxy's allowlist is the policy's (the engine hands `net.allow` to the proxy).
#[test]
fn the_net_plan_carries_the_policys_allowlist() {
    let pol = compiled("[net]\negress = \"proxy\"\nallow = [\"example.com:443\", \"*.pypi.org\"]\n");
    let env = environment(&pol, &host(7, true), "s1");
    assert_eq!(env.net.allow, pol.net.allow);
    assert_eq!(env.net.allow.len(), 2);
}

// The plans' second mutation set (net.rs on, ns.rs, process.rs, root.rs): what the earlier tests
// let live (docs/TESTING.md).

/// A directory for the mask tests outside /tmp (the plan never masks under /tmp: the session's own
/// /tmp is a fresh tmpfs), removed on drop.
struct VarTmp(PathBuf);

impl VarTmp {
    fn new(tag: &str) -> VarTmp {
        let p = PathBuf::from("/var/tmp").join(format!("cordon-plan-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create the fixture");
        VarTmp(p.canonicalize().expect("canonical"))
    }
}

impl Drop for VarTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn masks(env: &EnvironmentPlan) -> Vec<PathBuf> {
    env.ns
        .mounts
        .iter()
        .filter_map(|m| match m {
            ns::MountOp::Mask { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn masks_go_only_where_a_grant_would_let_the_read_and_once() {
    let t = VarTmp::new("masks");
    let (ro, other) = (t.0.join("ro"), t.0.join("other"));
    for d in [ro.join("secrets"), other.clone()] {
        std::fs::create_dir_all(&d).expect("mkdir");
    }
    for f in [ro.join("key"), ro.join("secrets/inner"), other.join("key")] {
        std::fs::write(&f, "x").expect("write");
    }
    let d = |p: &std::path::Path| p.display().to_string();
    let text = format!(
        "[fs]\nread = [\"{}\"]\ndeny = [\"{}\", \"{}\", \"{}\", \"{}\", \"{}\", \"{}\"]\n",
        d(&ro),
        d(&ro.join("key")),
        d(&ro.join("key")),
        d(&ro.join("secrets")),
        d(&ro.join("secrets/inner")),
        d(&ro.join("absent")),
        d(&other.join("key")),
    );
    let env = environment(&compiled(&text), &host(7, true), "s1");
    // Inside the read grant and present: masked, once; inside a masked directory: gone with it;
    // absent, or outside every grant (not in the built root at all): nothing to mask.
    assert_eq!(masks(&env), vec![ro.join("key"), ro.join("secrets")]);
    assert!(env.guarantees.iter().any(|g| g.what.starts_with("credentials are unreadable") && !g.is_degraded()));
}

#[test]
fn without_masks_or_protected_paths_no_credential_guarantee_is_claimed() {
    let mut pol = policy("agent");
    pol.fs.deny.clear();
    pol.fs.protect.clear();
    pol.fs.hide.clear();
    let claims = |pol: &cordon_policy::CompiledPolicy, h: &KernelCaps| {
        environment(pol, h, "s1").guarantees.into_iter().filter(|g| g.what.starts_with("credentials")).count()
    };
    assert_eq!(claims(&pol, &host(7, true)), 0, "nothing to mask: nothing claimed");
    let mut blocked = host(7, false);
    blocked.userns = Userns::Blocked("sysctl".into());
    assert_eq!(claims(&pol, &blocked), 0, "nothing to mask: no degradation to name either");
    let mut hide = pol.clone();
    hide.fs.hide = vec![".env".into()];
    assert_eq!(claims(&hide, &blocked), 1, "hidden names without a mount namespace: degraded, named");
    let mut protect = pol.clone();
    protect.fs.protect = policy("agent").fs.protect;
    assert_eq!(claims(&protect, &host(7, true)), 1);
    assert_eq!(claims(&protect, &blocked), 1);
}

#[test]
fn a_user_namespace_is_made_for_any_one_namespace_and_only_without_root() {
    for which in 0..5 {
        let mut pol = policy("agent");
        let n = &mut pol.namespaces;
        (n.pid, n.mount, n.ipc, n.uts, n.net) = (which == 0, which == 1, which == 2, which == 3, which == 4);
        assert!(environment(&pol, &host(7, false), "s1").ns.user, "namespace {which} alone needs a user namespace");
        assert!(!environment(&pol, &host(7, true), "s1").ns.user, "root needs none");
    }
    let mut none = policy("agent");
    let n = &mut none.namespaces;
    (n.pid, n.mount, n.ipc, n.uts, n.net) = (false, false, false, false, false);
    assert!(!environment(&none, &host(7, false), "s1").ns.user);
    // Root with user namespaces blocked loses nothing, and no degradation is named.
    let mut h = host(7, true);
    h.userns = Userns::Blocked("sysctl".into());
    let env = environment(&policy("agent"), &h, "s1");
    assert!(env.ns.pid && env.ns.mount && !env.guarantees.iter().any(|g| g.layer == "namespaces"));
}

#[test]
fn the_memfd_sysctl_is_planned_for_root_with_a_pid_namespace_only() {
    assert!(environment(&policy("agent"), &host(7, true), "s1").ns.memfd_noexec);
    assert!(!environment(&policy("agent"), &host(7, false), "s1").ns.memfd_noexec, "only root may write it");
    let mut no_pid = policy("agent");
    no_pid.namespaces.pid = false;
    assert!(!environment(&no_pid, &host(7, true), "s1").ns.memfd_noexec);
}

#[test]
fn the_built_roots_tmpfs_sizes_and_device_binds() {
    let r = root::build(&policy("agent"), true, 2 << 30);
    let size = |t: &str| {
        r.ops.iter().find_map(|m| match m {
            ns::MountOp::Tmpfs { target, size, .. } if target == std::path::Path::new(t) => Some(*size),
            _ => None,
        })
    };
    assert_eq!((size("/tmp"), size("/dev/shm"), size("/run")), (Some(2 << 30), Some(1 << 30), Some(1 << 20)));
    let small = root::build(&policy("agent"), true, 64 << 20);
    assert!(small.ops.contains(&ns::MountOp::Tmpfs { target: "/dev/shm".into(), size: 64 << 20, mode: 0o1777 }));
    // A grant of /dev itself binds no device node (the built root's /dev holds only named nodes).
    let dev = compiled("[fs]\nread = [\"/dev\", \"/dev/null\"]\n");
    let nodes: Vec<PathBuf> = root::build(&dev, true, 1 << 20)
        .ops
        .iter()
        .filter_map(|m| match m {
            ns::MountOp::DevNodes { nodes, .. } => Some(nodes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(nodes.contains(&PathBuf::from("/dev/null")) && !nodes.contains(&PathBuf::from("/dev")), "{nodes:?}");
}

#[test]
fn the_proxy_port_skips_a_session_port_on_it() {
    let port = |listen: &str| {
        let pol = compiled(&format!("[net]\negress = \"proxy\"\nlisten = [{listen}]\n"));
        environment(&pol, &host(7, true), "s1").net.proxy_url
    };
    assert_eq!(port("8000").as_deref(), Some("http://127.0.0.1:3128"));
    assert_eq!(port("3128").as_deref(), Some("http://127.0.0.1:3129"));
}

#[test]
fn the_program_is_found_on_the_sessions_path_executable_files_only() {
    let t = VarTmp::new("path");
    let (a, b) = (t.0.join("a"), t.0.join("b"));
    for d in [&a, &b, &a.join("tool")] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(b.join("tool"), "#!/bin/sh\n").expect("write");
    std::fs::write(a.join("plain"), "").expect("write");
    std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(b.join("plain"), "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(b.join("plain"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let path = std::ffi::OsString::from(format!("{}:{}", a.display(), b.display()));
    // A directory and a file without an execute bit are passed over, as execvp does.
    assert_eq!(process::resolve_program("tool".as_ref(), Some(&path), &t.0), Some(b.join("tool")));
    assert_eq!(process::resolve_program("plain".as_ref(), Some(&path), &t.0), Some(b.join("plain")));
    // The plan resolves with the session's PATH, not another variable's value.
    let mut i = inv();
    i.argv = vec!["true".into(), "x\u{e9}".into()];
    let p = plan(&policy("agent"), &host(7, true), &i);
    let found = p.process.program.clone().expect("true is on the session's PATH");
    assert!(found.ends_with("bin/true"), "{found:?}");
    assert_eq!(p.process.argv_text(), vec!["true".to_string(), "x\u{e9}".to_string()]);
}

/// What holds each protected path: a file on the way is held itself, a symlink on the way is bound
/// (and refused by name at mount time), a placeholder left before is taken over, an absent path in
/// a writable tree gets one (in a read-only tree neither), and each top directory is pinned once.
#[test]
fn each_protected_path_is_held_by_what_is_on_its_way() {
    use std::os::unix::fs::PermissionsExt;
    let t = VarTmp::new("protect");
    let ws = t.0.join("ws");
    for d in [ws.join("sub"), t.0.join("elsewhere")] {
        std::fs::create_dir_all(&d).expect("mkdir");
    }
    std::fs::write(ws.join(".git"), "gitdir: ../x\n").expect("a worktree's .git file");
    std::os::unix::fs::symlink(t.0.join("elsewhere"), ws.join(".vscode")).expect("symlink");
    std::fs::create_dir(ws.join(".idea")).expect("mkdir");
    std::fs::set_permissions(ws.join(".idea"), std::fs::Permissions::from_mode(ns::PLACEHOLDER_DIR_MODE))
        .expect("a placeholder left before");
    let held = |write: &str| {
        let cx = Context { home: "/home/u".into(), workspace: ws.clone(), tmp: "/tmp".into() };
        let text = format!(
            "version = 1\n[fs]\nread = [\"@workspace\"]\nwrite = [{write}]\nprotect = [\".git/hooks\", \".vscode/tasks.json\", \".idea/x\", \"sub/deep/file\", \"sub/other\"]\n"
        );
        let pol = cordon_policy::compile(&cordon_policy::load_text("t.toml", &text).expect("loads"), &cx);
        environment(&pol, &host(7, true), "s1")
            .ns
            .mounts
            .into_iter()
            .filter_map(|m| match m {
                ns::MountOp::ReadOnly { path, placeholder, .. } => {
                    Some(format!("ro {} {placeholder}", path.strip_prefix(&ws).expect("inside").display()))
                }
                ns::MountOp::Pin { path } => Some(format!("pin {}", path.strip_prefix(&ws).expect("inside").display())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        held("\"@workspace\""),
        ["pin sub", "ro .git false", "ro .vscode false", "ro .idea true", "ro sub/deep true", "ro sub/other true"]
    );
    // Nothing writable: what is there is held; nothing absent (nor a placeholder, which only stands
    // for an absent path) needs holding where the session cannot create it.
    assert_eq!(held(""), ["ro .git false", "ro .vscode false"]);
    std::fs::set_permissions(ws.join(".idea"), std::fs::Permissions::from_mode(0o755)).expect("chmod back");
}

#[test]
fn a_path_granted_twice_or_nested_is_bound_with_the_wider_right_once() {
    let t = VarTmp::new("binds");
    let (a, b) = (t.0.join("a"), t.0.join("a/b"));
    std::fs::create_dir_all(&b).expect("mkdir");
    let d = |p: &std::path::Path| p.display().to_string();
    let binds = |text: &str| -> Vec<(PathBuf, bool)> {
        root::build(&compiled(text), true, 1 << 20)
            .ops
            .into_iter()
            .filter_map(|m| match m {
                ns::MountOp::Bind { dst, writable, .. } if dst.starts_with(&t.0) => Some((dst, writable)),
                _ => None,
            })
            .collect()
    };
    // Read and write on one path: one bind, writable.
    assert_eq!(binds(&format!("[fs]\nread = [\"{}\"]\nwrite = [\"{}\"]\n", d(&a), d(&a))), [(a.clone(), true)]);
    // A read grant inside a read grant: the parent's bind has it already.
    assert_eq!(binds(&format!("[fs]\nread = [\"{}\", \"{}\"]\n", d(&a), d(&b))), [(a.clone(), false)]);
    // A write grant inside a read grant: a bind of its own, writable.
    assert_eq!(
        binds(&format!("[fs]\nread = [\"{}\"]\nwrite = [\"{}\"]\n", d(&a), d(&b))),
        [(a.clone(), false), (b.clone(), true)]
    );
    // A device node that does not exist is not bound.
    let nodes: Vec<PathBuf> =
        root::build(&compiled("[fs]\nread = [\"/dev/null\", \"/dev/no-such-cordon-node\"]\n"), true, 1 << 20)
            .ops
            .iter()
            .filter_map(|m| match m {
                ns::MountOp::DevNodes { nodes, .. } => Some(nodes.clone()),
                _ => None,
            })
            .flatten()
            .collect();
    assert_eq!(nodes, [PathBuf::from("/dev/null")]);
}

#[test]
fn the_memfd_guarantee_follows_the_supervisors_notification() {
    let memfd = |h: &KernelCaps| {
        environment(&policy("agent"), h, "s1")
            .guarantees
            .into_iter()
            .chain(plan(&policy("agent"), h, &inv()).process.guarantees)
            .filter(|g| g.what.contains("no program runs from memory"))
            .map(|g| g.is_degraded())
            .collect::<Vec<_>>()
    };
    assert_eq!(memfd(&host(7, true)), [false]);
    let mut no_notif = host(7, true);
    no_notif.seccomp_user_notif = false;
    assert_eq!(memfd(&no_notif), [true]);
    // A policy without the supervised memfd rule promises nothing about memfds, either way.
    let mut pol = policy("agent");
    pol.syscalls.retain(|r| r.action != cordon_policy::syscalls::DenyAction::Supervise);
    for h in [host(7, true), no_notif] {
        let g: Vec<_> = plan(&pol, &h, &inv())
            .process
            .guarantees
            .into_iter()
            .chain(environment(&pol, &h, "s1").guarantees)
            .filter(|g| g.what.contains("no program runs from memory"))
            .collect();
        assert!(g.is_empty(), "{g:?}");
    }
}
