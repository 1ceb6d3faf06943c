//! Bad policy input through the real binary: policy and rule files that are devices, fifos or too
//! large, and `--allow-net` entries that are ambiguous, not addresses, URLs or catch-all ranges.
//! Every call is bounded: a cordon that hangs or reads forever is killed (by its pid) and fails the
//! test.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary directory (the workspace and the audit log of these calls), removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Tmp {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "cordon-policy-input-{}-{}",
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

/// Runs `cordon ARGS` in `dir` (its audit log there too); kills it and fails if it runs longer than
/// `secs`.
fn cordon_within(secs: u64, dir: &Tmp, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(args)
        .current_dir(&dir.0)
        .env("CORDON_AUDIT", dir.0.join("audit.db"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cordon");
    let t = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!("`cordon {}` still ran after {secs}s (killed)\n{}", args.join(" "), show(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dev_zero_as_policy_or_rules_fails_at_once_naming_the_file_and_the_limit() {
    let tmp = Tmp::new();
    for (args, code) in [
        (&["policy", "check", "/dev/zero"][..], 1),
        (&["policy", "explain", "/dev/zero"][..], 125),
        (&["run", "--policy", "/dev/zero", "--", "/bin/true"][..], 125),
        (&["rules", "check", "/dev/zero"][..], 1),
    ] {
        let t = Instant::now();
        let o = cordon_within(10, &tmp, args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", show(&o));
        let e = err(&o);
        assert!(e.contains("/dev/zero") && e.contains("1 MiB"), "{args:?} names the file and the limit: {}", show(&o));
        assert!(t.elapsed() < Duration::from_secs(3), "{args:?} took {:?}", t.elapsed());
    }
}

#[test]
fn a_fifo_as_policy_or_rules_is_refused_without_waiting_for_a_writer() {
    let tmp = Tmp::new();
    let fifo = tmp.0.join("p.toml");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("spawn mkfifo").success());
    let f = fifo.display().to_string();
    for args in
        [&["policy", "check", &f][..], &["rules", "check", &f][..], &["run", "--policy", &f, "--", "/bin/true"][..]]
    {
        let o = cordon_within(10, &tmp, args);
        assert!(!o.status.success(), "{args:?}: {}", show(&o));
        let e = err(&o);
        assert!(e.contains(&f) && e.contains("fifo") && e.contains("regular file"), "{args:?}: {}", show(&o));
    }
}

#[test]
fn allow_net_refuses_bare_ipv6_numeric_non_addresses_and_urls_with_what_to_write() {
    let tmp = Tmp::new();
    for (entry, says) in [
        ("::1:443", &["`[::1]:443`", "brackets"][..]),
        ("0177.0.0.1", &["not a valid IPv4 address", "`127.0.0.1`"][..]),
        ("256.1.1.1", &["not a valid IPv4 address"][..]),
        ("0x7f000001", &["not a valid IPv4 address", "`127.0.0.1`"][..]),
        ("http://example.com/x", &["give HOST:PORT, not a URL", "`example.com:80`"][..]),
        ("https://example.com", &["`example.com:443`"][..]),
    ] {
        let o = cordon_within(10, &tmp, &["run", "--allow-net", entry, "--", "/bin/true"]);
        assert_eq!(o.status.code(), Some(125), "`{entry}`: {}", show(&o));
        let e = err(&o);
        assert!(e.contains(&format!("--allow-net #1 `{entry}`")), "`{entry}`: {}", show(&o));
        for s in says {
            assert!(e.contains(s), "`{entry}`: `{s}` missing: {}", show(&o));
        }
    }
}

#[test]
fn catch_all_ranges_from_the_flag_and_the_policy_get_a_loud_warning() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let p = e.write_policy("wide.toml", "version = 1\nextends = [\"builtin:agent\"]\n[net]\negress = \"proxy\"\nallow = [\"github.com:443\", \"::/0\"]\n");
    let o = e.cordon(&[
        "run",
        "--policy",
        &p.display().to_string(),
        "--allow-net",
        "0.0.0.0/0",
        "--allow-net",
        "example.com:443",
        "--",
        "/bin/true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = err(&o);
    let warned: Vec<&str> = err.lines().filter(|l| l.starts_with("cordon: WARNING: ")).collect();
    assert_eq!(warned.len(), 2, "one warning per catch-all entry, none for the others: {}", show(&o));
    assert!(
        warned.iter().any(|l| l.contains(
            "--allow-net #1: `0.0.0.0/0` opens every IPv4 address on every port, including this host's own loopback"
        )),
        "{}",
        show(&o)
    );
    assert!(
        warned.iter().any(|l| l
            .contains(&format!("{}:5:28: warning in `net.allow[1]`: `::/0` opens every IPv6 address", p.display()))),
        "{}",
        show(&o)
    );
}

/// `@pypi` is both of pip's hosts: a user never learns about the second one from a failed install.
/// Presets work in `[net] allow` and `--allow-net`, show in `policy explain` with where each entry
/// came from, are judged by `policy test`, and an unknown one is an error naming the presets.
#[test]
fn presets_expand_to_their_hosts_in_the_policy_and_on_the_command_line() {
    let tmp = Tmp::new();
    let policy = tmp.0.join("p.toml");
    std::fs::write(
        &policy,
        "version = 1\nextends = [\"builtin:agent\"]\n[net]\negress = \"proxy\"\nallow = [\"@pypi\", \"example.org:443\"]\n\n\
         [[test]]\nconnect = \"files.pythonhosted.org:443\"\nexpect = \"allow\"\n\n\
         [[test]]\nconnect = \"pypi.org:443\"\nexpect = \"allow\"\n\n\
         [[test]]\nconnect = \"pypi.org:80\"\nexpect = \"deny\"\n\n\
         [[test]]\nconnect = \"registry.npmjs.org:443\"\nexpect = \"deny\"\n",
    )
    .expect("policy");
    let p = policy.display().to_string();
    let o = cordon_within(20, &tmp, &["policy", "explain", &p]);
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("pypi.org:443 (@pypi)") && out.contains("files.pythonhosted.org:443 (@pypi)"), "{}", show(&o));
    let o = cordon_within(60, &tmp, &["policy", "test", &p]);
    assert!(o.status.success(), "the four examples hold: {}", show(&o));

    std::fs::write(&policy, "version = 1\n[net]\negress = \"proxy\"\nallow = [\"@pipy\"]\n").expect("policy");
    let o = cordon_within(20, &tmp, &["policy", "check", &p]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), err(&o));
    assert!(all.contains(":4:") && all.contains("net.allow[0]"), "file:line and the field: {all}");
    assert!(all.contains("unknown preset `@pipy`") && all.contains("@pypi, @npm"), "{all}");

    let o = cordon_within(10, &tmp, &["run", "--allow-net", "@nope", "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("--allow-net #1 `@nope`: unknown preset `@nope`; presets: @pypi"), "{}", show(&o));
}
