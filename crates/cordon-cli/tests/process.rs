//! End-to-end: the command line and the command's process, with the real `cordon` binary, as root and
//! as nobody. Non-UTF-8 environment, working directory, workspace and arguments reach the command
//! unchanged (issue 11, item 17); cordon's own flags end where the command begins (item 20); a command
//! that ignores SIGTERM is killed on a second signal or after --kill-after (item 26); a seccomp
//! refusal states each reason once (item 29).

mod common;
use common::*;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `cordon` as `e`'s user, the way common::Env runs it, but taking OS strings.
fn cordon_os(e: &Env) -> Command {
    let mut c = match e.who {
        Who::Root => Command::new(env!("CARGO_BIN_EXE_cordon")),
        Who::Nobody => {
            let mut c = Command::new("setpriv");
            c.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into(), "--".into(), env!("CARGO_BIN_EXE_cordon").into()]);
            c
        }
    };
    c.current_dir(&e.ws).env("HOME", &e.home).env("CORDON_AUDIT", e.root.join("audit.db")).env_remove("CORDON_TESTS_ALLOW_SKIP");
    c.stdin(Stdio::null());
    c.arg("run");
    if e.who == Who::Nobody {
        c.arg("--allow-degraded");
    }
    c
}

fn os(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

fn no_panic(o: &Output) {
    assert!(!err(o).contains("panicked") && o.status.code() != Some(101), "cordon panicked: {}", show(o));
}

fn report(p: &Path, o: &Output) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("no report {}: {e}\n{}", p.display(), show(o)));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON: {e}: {text}"))
}

/// A directory `ws/d\xff` (not UTF-8), owned by the env's user.
fn odd_dir(e: &Env) -> PathBuf {
    let d = e.ws.join(OsStr::from_bytes(b"d\xff"));
    std::fs::create_dir(&d).expect("mkdir d\\xff");
    if e.who == Who::Nobody {
        e.chown_all();
    }
    d
}

// ---- item 17: non-UTF-8 input ------------------------------------------------------------------

#[test]
fn a_non_utf8_environment_reaches_the_command_or_is_scrubbed() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let rep = e.root.join("report.json");
        let o = cordon_os(&e)
            .arg("--report")
            .arg(&rep)
            // Not through a shell: dash drops names that are not identifiers. perl reads environ.
            .args(["--", "/usr/bin/perl", "-e", "open(my $f, '>', 'env.txt') or die; print $f \"$_=$ENV{$_}\\n\" for sort keys %ENV; exit 3"])
            // Kept by the policy: the value's bytes arrive unchanged.
            .env("KEEP_ME", os(b"a\xff\xfeb"))
            // A name that is not UTF-8 and matches no env.drop pattern is passed through as it is.
            .env(os(b"ODD\xffNAME"), "v")
            // Scrubbed: a name matching `AWS_*`, and a credential whose value is not UTF-8.
            .env(os(b"AWS_\xffKEY"), "secret1")
            .env("GITHUB_TOKEN", os(b"secret2\xff"))
            .output()
            .expect("spawn cordon");
        no_panic(&o);
        assert_eq!(o.status.code(), Some(3), "{who:?}: the command's status: {}", show(&o));
        let env = std::fs::read(e.ws.join("env.txt")).expect("env.txt");
        let lines: Vec<&[u8]> = env.split(|b| *b == b'\n').collect();
        assert!(lines.contains(&&b"KEEP_ME=a\xff\xfeb"[..]), "{who:?}: {}", String::from_utf8_lossy(&env));
        assert!(lines.contains(&&b"ODD\xffNAME=v"[..]), "{who:?}: {}", String::from_utf8_lossy(&env));
        assert!(!lines.iter().any(|l| l.starts_with(b"AWS_") || l.starts_with(b"GITHUB_TOKEN")), "{who:?}: scrubbed variables leaked: {}", String::from_utf8_lossy(&env));
        let r = report(&rep, &o);
        let dropped: Vec<&str> = r["env_dropped"].as_array().expect("env_dropped").iter().filter_map(|v| v.as_str()).collect();
        assert!(dropped.contains(&"AWS_\u{FFFD}KEY") && dropped.contains(&"GITHUB_TOKEN"), "{who:?}: {dropped:?}");
    }
}

#[test]
fn a_non_utf8_working_directory_is_the_commands() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let d = odd_dir(&e);
        // A shell in that directory exports it as PWD too.
        let o = cordon_os(&e).arg("--workspace").arg(&e.ws).args(["--", "/bin/sh", "-c", "pwd; exit 4"]).current_dir(&d).env("PWD", &d).output().expect("spawn cordon");
        no_panic(&o);
        assert_eq!(o.status.code(), Some(4), "{who:?}: {}", show(&o));
        let mut want = d.as_os_str().as_bytes().to_vec();
        want.push(b'\n');
        assert_eq!(o.stdout, want, "{who:?}: {}", show(&o));
    }
}

#[test]
fn a_non_utf8_workspace_is_writable_and_recorded() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let d = odd_dir(&e);
        let rep = e.root.join("report.json");
        let o = cordon_os(&e).arg("--report").arg(&rep).arg("--workspace").arg(&d).args(["--", "/bin/sh", "-c", "echo made > \"$0/f\"; exit 5"]).arg(&d).output().expect("spawn cordon");
        no_panic(&o);
        assert_eq!(o.status.code(), Some(5), "{who:?}: {}", show(&o));
        assert_eq!(std::fs::read_to_string(d.join("f")).ok().as_deref(), Some("made\n"), "{who:?}: the workspace is writable: {}", show(&o));
        let r = report(&rep, &o);
        assert_eq!(r["workspace"].as_str(), Some(d.to_string_lossy().as_ref()), "{who:?}: {r}");
        let ls = e.cordon(&["audit", "ls"]);
        assert!(ls.status.success() && out(&ls).contains("sealed") && !out(&ls).contains("unfinished"), "{who:?}: the session is recorded: {}", show(&ls));
    }
}

#[test]
fn non_utf8_arguments_reach_the_command_unchanged() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let rep = e.root.join("report.json");
        let o = cordon_os(&e).arg("--report").arg(&rep).args(["--", "/bin/sh", "-c", "printf %s \"$1\"; exit 6", "sh"]).arg(os(b"a\xffb")).output().expect("spawn cordon");
        no_panic(&o);
        assert_eq!(o.status.code(), Some(6), "{who:?}: {}", show(&o));
        assert_eq!(o.stdout, b"a\xffb", "{who:?}: {}", show(&o));
        let r = report(&rep, &o);
        assert_eq!(r["command"].as_array().and_then(|a| a.last()).and_then(|v| v.as_str()), Some("a\u{FFFD}b"), "{who:?}: {r}");
        let notes = r["outcome"]["notes"].to_string();
        assert!(notes.contains("not valid UTF-8") && notes.contains(r"a\\xffb"), "{who:?}: the exact bytes are noted: {notes}");
        let ls = e.cordon(&["audit", "ls"]);
        assert!(ls.status.success() && out(&ls).contains("a\u{FFFD}b"), "{who:?}: {}", show(&ls));
    }
}

// ---- item 20: where cordon's flags end ---------------------------------------------------------

#[test]
fn an_unknown_flag_before_the_command_is_a_usage_error() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let o = e.cordon(&["run", "--allow-degraded", "--frobnicate", "--", "true"]);
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{who:?}: clap's usage error: {}", show(&o));
        assert!(err(&o).contains("--frobnicate"), "{who:?}: {}", show(&o));
        assert!(!err(&o).contains("cannot execute"), "{who:?}: nothing ran: {}", show(&o));
    }
}

#[test]
fn without_double_dash_the_first_word_starts_the_command() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let o = e.cordon(&["run", "--allow-degraded", "ls", "-la"]);
        assert_eq!(o.status.code(), Some(0), "{who:?}: {}", show(&o));
        assert!(out(&o).contains("README.md") && out(&o).lines().any(|l| l.ends_with(" .")), "{who:?}: `ls -la` ran: {}", show(&o));
        // Words after the command that look like cordon's own flags are the command's.
        let o = e.cordon(&["run", "--allow-degraded", "printf", "%s|", "--verbose", "--frobnicate", "--", "-q"]);
        assert_eq!(o.status.code(), Some(0), "{who:?}: {}", show(&o));
        assert_eq!(out(&o), "--verbose|--frobnicate|--|-q|", "{who:?}: {}", show(&o));
    }
}

#[test]
fn after_double_dash_a_hyphenated_word_is_the_command() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        // In the workspace: the policy lets the session execute programs there.
        let bin = e.ws.join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        let prog = bin.join("--weird-prog");
        std::fs::write(&prog, "#!/bin/sh\necho weird ran \"$@\"\nexit 7\n").expect("write prog");
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        if who == Who::Nobody {
            e.chown_all();
        }
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let o = e.cordon_env(&["run", "--allow-degraded", "--", "--weird-prog", "--x"], &[("PATH", &path)]);
        assert_eq!(o.status.code(), Some(7), "{who:?}: {}", show(&o));
        assert_eq!(out(&o), "weird ran --x\n", "{who:?}: {}", show(&o));
        let o = e.cordon(&["run", "--allow-degraded", "--", "--no-such-prog"]);
        assert_eq!(o.status.code(), Some(127), "{who:?}: {}", show(&o));
    }
}

// ---- item 29: one reason per rule ----------------------------------------------------------------

#[test]
fn a_seccomp_refusal_states_each_reason_once() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let evf = e.root.join("events.jsonl");
    // socket(AF_PACKET) is refused by the rule for families above netlink; the socket call has
    // twenty rules, fourteen of which share that rule's reason.
    let script = "python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)'; exit 0";
    let o = e.run_sh_with(&["--events", evf.to_str().expect("utf-8 path")], script, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let fam = "network: socket family outside unix, inet, inet6 and netlink";
    let line = err(&o).lines().find(|l| l.contains("[seccomp] socket")).map(str::to_string).unwrap_or_else(|| panic!("no sensor line for the refusal: {}", show(&o)));
    assert_eq!(line.matches(fam).count(), 1, "{line}");
    let events = std::fs::read_to_string(&evf).expect("events");
    let deny = events.lines().find(|l| l.contains("\"deny\"") && l.contains("\"socket\"")).unwrap_or_else(|| panic!("no deny event: {}", show(&o)));
    let v: serde_json::Value = serde_json::from_str(deny).expect("json");
    let reason = v["reason"].as_str().unwrap_or("");
    assert_eq!(reason.matches(fam).count(), 1, "{reason}");
    // Every distinct reason of the socket rules is still there, once each.
    for other in ["network: raw IP sockets", "network: netlink protocol other than route and sock_diag;", "(audit, uevent, ...)"] {
        assert_eq!(reason.matches(other).count(), 1, "{other}: {reason}");
    }
}
