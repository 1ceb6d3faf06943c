//! `decide` answers for `policy test` and `explain`: each reason once (issue 11, item 29's twin in
//! `cordon policy test ... syscall = "socket"`).

#[test]
fn a_syscall_with_many_argument_rules_gives_each_reason_once() {
    let cx = cordon_policy::Context::for_workspace(std::env::temp_dir());
    let (_, c) = cordon_policy::load_and_compile("builtin:agent", &cx).expect("agent");
    let d = cordon_policy::decide::syscall(&c, "socket");
    assert!(d.allow, "{}", d.reason);
    let reasons: Vec<&str> = d.reason.trim_start_matches("allowed except when: ").split("; ").collect();
    let mut seen = std::collections::HashSet::new();
    for r in &reasons {
        assert!(seen.insert(*r), "`{r}` repeated in: {}", d.reason);
    }
    assert!(reasons.len() >= 2, "{}", d.reason);
}

// Each answer of `decide` at its boundaries, with policies written for the test: each kills mutants
// (changed operators, conditions, returned defaults) the earlier tests let live (docs/TESTING.md,
// "Mutation testing").

use cordon_policy::decide;
use cordon_policy::{Access, CompiledPolicy, Context};
use std::path::Path;

fn cx() -> Context {
    Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() }
}

fn compiled(text: &str) -> CompiledPolicy {
    let l = cordon_policy::load_text("t.toml", &format!("version = 1\n{text}")).expect("policy loads");
    cordon_policy::compile(&l, &cx())
}

#[test]
fn env_answers_in_order_loader_set_keep_drop_then_the_keep_list() {
    let c = compiled("[env]\nkeep = [\"LD_LIBRARY_PATH\", \"PATH\", \"MY_*\"]\ndrop = [\"*_TOKEN\", \"PATH\"]\nset = { GH_TOKEN = \"x\" }\n");
    let env = |n: &str| decide::env(&c, n);
    assert!(!env("LD_LIBRARY_PATH").allow, "LD_* goes even when kept");
    assert!(env("GH_TOKEN").allow, "set by the policy, whatever drop says");
    assert_eq!(env("GH_TOKEN").reason, "set by env.set");
    assert!(env("PATH").allow, "kept by name, whatever drop says");
    assert_eq!(env("PATH").reason, "kept by name in env.keep");
    assert!(!env("MY_TOKEN").allow, "a keep pattern does not beat drop");
    assert_eq!(env("MY_TOKEN").reason, "matches env.drop pattern `*_TOKEN`");
    assert!(env("MY_VAR").allow, "kept by pattern");
    assert_eq!(env("MY_VAR").reason, "passed through");
    assert!(!env("OTHER").allow);
    assert_eq!(env("OTHER").reason, "not in env.keep");
    // Without a keep list, whatever no drop pattern matches passes.
    let open = compiled("[env]\ndrop = [\"*_TOKEN\"]\n");
    assert!(decide::env(&open, "OTHER").allow);
    assert!(!decide::env(&open, "GH_TOKEN").allow);
    assert!(!decide::env(&open, "LD_PRELOAD").allow);
}

#[test]
fn syscall_names_unconditional_and_argument_denials_and_leaves_out_supervised_calls() {
    let c = compiled("[syscalls]\ndeny = [\"acct\"]\n");
    let d = decide::syscall(&c, "acct");
    assert!(!d.allow && d.reason.starts_with("seccomp: "), "{d:?}");
    let d = decide::syscall(&c, "read");
    assert!(d.allow && d.reason == "not in the deny list", "{d:?}");
    let d = decide::syscall(&c, "ioctl");
    assert!(d.allow && d.reason.starts_with("allowed except when: "), "{d:?}");
    // A call the supervisor performs itself (memfd_create) is not a denial.
    let agent = cordon_policy::load_and_compile("builtin:agent", &cx()).expect("agent").1;
    assert!(agent
        .syscalls
        .iter()
        .any(|r| r.name == "memfd_create" && r.action == cordon_policy::syscalls::DenyAction::Supervise));
    assert_eq!(decide::syscall(&agent, "memfd_create").reason, "not in the deny list");
}

#[test]
fn connect_follows_the_egress_mode_and_the_allowlist() {
    let none = compiled("[net]\negress = \"none\"\n");
    assert!(!decide::connect(&none, "example.com:443").allow);
    let open = compiled("[net]\negress = \"open\"\n");
    assert!(decide::connect(&open, "example.com:443").allow);
    let proxy = compiled(
        "[net]\negress = \"proxy\"\nallow = [\"example.com:443\", \"*.example.org\", \"10.1.2.3\", \"[::1]:8080\", \"192.168.4.0/22\", \"fd00::/8\", \"0.0.0.0/0:9\"]\n",
    );
    let ok = |t: &str| decide::connect(&proxy, t).allow;
    assert!(ok("example.com:443") && ok("EXAMPLE.com:443"), "domains match case-insensitively");
    assert!(!ok("example.com:80") && !ok("example.com"), "the port must match");
    assert!(!ok("www.example.com:443"), "a domain is not its subdomains");
    assert!(ok("a.example.org:1") && ok("a.b.example.org:2"));
    assert!(!ok("example.org:1") && !ok("badexample.org:1"), "a wildcard is not its apex or a longer name");
    assert!(ok("10.1.2.3:22") && !ok("10.1.2.4:22"));
    assert!(ok("[::1]:8080") && !ok("[::1]:8081"), "IPv6 in brackets");
    assert!(ok("192.168.4.0:1") && ok("192.168.7.255:1"), "the /22's first and last address");
    assert!(!ok("192.168.3.255:1") && !ok("192.168.8.0:1"), "just outside the /22");
    assert!(ok("[fd12::1]:1") && !ok("[fe00::1]:1"), "an IPv6 range");
    assert!(!ok("[::ffff:192.168.4.1]:1"), "an IPv4 range holds no IPv6 address");
    assert!(ok("8.8.8.8:9") && !ok("8.8.8.8:10"), "a /0 is every IPv4 address");
    let d = decide::connect(&proxy, "example.com:443");
    assert_eq!(d.reason, "allowed by net.allow `example.com:443` through the egress proxy");
    assert_eq!(decide::connect(&proxy, "evil.com:1").reason, "evil.com:1 is not in net.allow");
}

#[test]
fn fs_answers_deny_then_hide_then_protect_then_the_grants() {
    let c = compiled("[fs]\nread = [\"/opt\"]\nwrite = [\"$WORKSPACE\"]\nexec = [\"/opt/bin\"]\ndeny = [\"/opt/secret\"]\nhide = [\".env\"]\nprotect = [\".envrc\"]\n");
    let a = |read, write, exec| Access { read, write, exec };
    let fs = |p: &str, w: Access| decide::fs(&c, Path::new(p), w);
    assert!(fs("/opt/x", a(true, false, false)).allow);
    assert_eq!(fs("/opt/x", a(true, false, false)).reason, "allowed by /opt (t.toml)");
    assert!(!fs("/opt/secret/k", a(true, false, false)).allow, "deny wins inside a grant");
    assert!(fs("/opt/secret/k", a(true, false, false)).reason.contains("fs.deny"));
    let d = fs("/opt/x", a(true, true, true));
    assert!(!d.allow && d.reason == "/opt/x is not in the write/exec allowlist", "{d:?}");
    let d = fs("/opt/bin/t", a(true, false, true));
    assert!(d.allow, "read from /opt and exec from /opt/bin: {d:?}");
    assert_eq!(d.reason, "allowed by /opt (t.toml), /opt/bin (t.toml)");
    assert!(!fs("/srv", a(true, false, false)).allow);
    assert!(fs("/srv", a(false, false, false)).allow, "nothing asked, nothing missing");
    // Hidden names only in the workspace; protected paths only for writing.
    assert!(!fs("/home/u/ws/sub/.env", a(true, false, false)).allow);
    assert!(fs("/home/u/ws/sub/.env", a(true, false, false)).reason.contains("fs.hide"));
    let opt = compiled("[fs]\nread = [\"/opt\"]\nhide = [\".env\"]\n");
    assert!(decide::fs(&opt, Path::new("/opt/.env"), a(true, false, false)).allow);
    assert!(fs("/home/u/ws/.envrc", a(true, false, false)).allow);
    let d = fs("/home/u/ws/.envrc", a(false, true, false));
    assert!(!d.allow && d.reason.contains("is protected"), "{d:?}");
    assert!(fs("/home/u/ws/other", a(false, true, false)).allow);
    assert!(decide::fs_allows(&c, Path::new("/home/u/ws/other"), a(false, true, false)));
    assert!(!decide::fs_allows(&c, Path::new("/home/u/ws/.envrc"), a(false, true, false)));
}
