//! `compile` merging layers (a file and the file it extends): defaults, what a later layer replaces,
//! what is kept once. Each test kills mutants of compile.rs that the earlier tests let live
//! (docs/TESTING.md, "Mutation testing"): real files in a temporary directory, loaded by the real
//! loader.

use cordon_policy::{CompiledPolicy, Context, Egress, Probe};
use std::path::PathBuf;

/// A temporary directory, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Tmp {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "cordon-policy-compile-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("mkdir tmp");
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cx() -> Context {
    Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() }
}

/// `child` (which extends `base.toml`) compiled over `base`.
fn layered(base: &str, child: &str) -> CompiledPolicy {
    let t = Tmp::new();
    std::fs::write(t.0.join("base.toml"), format!("version = 1\n{base}")).expect("write base");
    let top = t.0.join("child.toml");
    std::fs::write(&top, format!("version = 1\nextends = [\"base.toml\"]\n{child}")).expect("write child");
    let (_, c) = cordon_policy::load_and_compile(&top.display().to_string(), &cx()).expect("the policy compiles");
    c
}

fn one(text: &str) -> CompiledPolicy {
    let l = cordon_policy::load_text("t.toml", &format!("version = 1\n{text}")).expect("policy loads");
    cordon_policy::compile(&l, &cx())
}

#[test]
fn defaults_a_private_tmp_of_one_gib_and_the_write_watch_on() {
    let c = one("");
    assert_eq!(c.fs.tmp_size, 1 << 30);
    assert!(c.fs.watch_writes);
    let c = one("[fs]\ntmp_size = \"64M\"\nwatch_writes = false\n");
    assert_eq!(c.fs.tmp_size, 64 << 20);
    assert!(!c.fs.watch_writes);
}

#[test]
fn a_network_namespace_unless_the_network_is_open() {
    assert!(one("[net]\negress = \"none\"\n").namespaces.net);
    assert!(one("[net]\negress = \"proxy\"\n").namespaces.net);
    let open = one("[net]\negress = \"open\"\n");
    assert_eq!(open.net.egress, Egress::Open);
    assert!(!open.namespaces.net, "an open network needs the host's");
    assert!(one("[net]\negress = \"open\"\n[namespaces]\nnet = true\n").namespaces.net, "unless asked");
}

#[test]
fn kill_on_deny_only_when_the_action_is_kill() {
    assert!(one("[syscalls]\naction = \"kill\"\n").kill_on_deny);
    assert!(!one("[syscalls]\naction = \"errno\"\n").kill_on_deny);
    assert!(!one("").kill_on_deny);
    // A later layer's action replaces the earlier one.
    assert!(!layered("[syscalls]\naction = \"kill\"\n", "[syscalls]\naction = \"errno\"\n").kill_on_deny);
}

#[test]
fn a_published_port_named_twice_is_published_once() {
    let c = layered("[net]\npublish = [\"8080:80\"]\n", "[net]\npublish = [\"8080:80\", \"9090:90\"]\n");
    let ports: Vec<(u16, u16)> = c.net.publish.iter().map(|p| (p.host.port(), p.session_port)).collect();
    assert_eq!(ports, [(8080, 80), (9090, 90)]);
}

#[test]
fn a_later_layers_env_value_replaces_the_earlier_and_others_stay() {
    let c = layered("[env]\nset = { A = \"1\", B = \"2\" }\n", "[env]\nset = { A = \"3\" }\n");
    assert_eq!(c.env.set, [("B".to_string(), "2".to_string()), ("A".to_string(), "3".to_string())]);
}

#[test]
fn a_later_layers_tool_replaces_the_earlier_and_others_stay() {
    let c = layered(
        "[tools.git]\ncommand = [\"git\"]\n[tools.make]\ncommand = [\"make\"]\n",
        "[tools.git]\ncommand = [\"git\", \"-c\", \"x=y\"]\n",
    );
    let tools: Vec<(&str, &[String])> = c.tools.iter().map(|(n, t)| (n.as_str(), t.command.as_slice())).collect();
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert_eq!(tools[0], ("make", &["make".to_string()][..]));
    assert_eq!(tools[1].0, "git");
    assert_eq!(tools[1].1, ["git", "-c", "x=y"]);
}

#[test]
fn sanitize_and_create_entries_named_twice_are_kept_once() {
    let c = layered(
        "[fs]\nsanitize = [\"~/.npmrc\"]\ncreate = [\"~/.cache\"]\n",
        "[fs]\nsanitize = [\"~/.npmrc\", \"~/.pypirc\"]\ncreate = [\"~/.cache\", \"~/.npm\"]\n",
    );
    let san: Vec<String> = c.fs.sanitize.iter().map(|s| s.path.display().to_string()).collect();
    assert_eq!(san, ["/home/u/.npmrc", "/home/u/.pypirc"]);
    let made: Vec<String> = c.fs.create.iter().map(|s| s.path.display().to_string()).collect();
    assert_eq!(made, ["/home/u/.cache", "/home/u/.npm"]);
}

#[test]
fn the_policys_examples_are_compiled_with_where_they_are_written() {
    let c = one("\n[[test]]\nwrite = \"out/x\"\nexpect = \"allow\"\n\n[[test]]\nname = \"no net\"\nconnect = \"example.com:443\"\nexpect = \"deny\"\n");
    assert_eq!(c.tests.len(), 2, "{:?}", c.tests);
    let (w, n) = (&c.tests[0], &c.tests[1]);
    assert_eq!(w.probe, Probe::Write("/home/u/ws/out/x".into()));
    assert!(w.expect_allow);
    assert_eq!(w.name, "write out/x");
    assert_eq!(w.at, "t.toml:3", "the line of its `[[test]]`");
    assert_eq!(n.probe, Probe::Connect("example.com:443".into()));
    assert!(!n.expect_allow);
    assert_eq!((n.name.as_str(), n.at.as_str()), ("no net", "t.toml:7"));
}
