//! End-to-end: the command line and the command's process, with the real `cordon` binary, as root and
//! as nobody. Non-UTF-8 environment, working directory, workspace and arguments reach the command
//! unchanged (issue 11, item 17); cordon's own flags end where the command begins (item 20); a command
//! that ignores SIGTERM is killed on a second signal or after --kill-after (item 26); a seccomp
//! refusal states each reason once (item 29).

mod common;
use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::{OsStr, OsString};
use std::io::BufRead;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `cordon` as `e`'s user, the way common::Env runs it, but taking OS strings.
fn cordon_os(e: &Env) -> Command {
    let mut c = match e.who {
        Who::Root => Command::new(env!("CARGO_BIN_EXE_cordon")),
        Who::Nobody => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
                "--".into(),
                env!("CARGO_BIN_EXE_cordon").into(),
            ]);
            c
        }
    };
    c.current_dir(&e.ws)
        .env("HOME", &e.home)
        .env("CORDON_AUDIT", e.root.join("audit.db"))
        .env_remove("CORDON_TESTS_ALLOW_SKIP");
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
            .args([
                "--",
                "/usr/bin/perl",
                "-e",
                "open(my $f, '>', 'env.txt') or die; print $f \"$_=$ENV{$_}\\n\" for sort keys %ENV; exit 3",
            ])
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
        assert!(
            !lines.iter().any(|l| l.starts_with(b"AWS_") || l.starts_with(b"GITHUB_TOKEN")),
            "{who:?}: scrubbed variables leaked: {}",
            String::from_utf8_lossy(&env)
        );
        let r = report(&rep, &o);
        let dropped: Vec<&str> =
            r["env_dropped"].as_array().expect("env_dropped").iter().filter_map(|v| v.as_str()).collect();
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
        let o = cordon_os(&e)
            .arg("--workspace")
            .arg(&e.ws)
            .args(["--", "/bin/sh", "-c", "pwd; exit 4"])
            .current_dir(&d)
            .env("PWD", &d)
            .output()
            .expect("spawn cordon");
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
        let o = cordon_os(&e)
            .arg("--report")
            .arg(&rep)
            .arg("--workspace")
            .arg(&d)
            .args(["--", "/bin/sh", "-c", "echo made > \"$0/f\"; exit 5"])
            .arg(&d)
            .output()
            .expect("spawn cordon");
        no_panic(&o);
        assert_eq!(o.status.code(), Some(5), "{who:?}: {}", show(&o));
        assert_eq!(
            std::fs::read_to_string(d.join("f")).ok().as_deref(),
            Some("made\n"),
            "{who:?}: the workspace is writable: {}",
            show(&o)
        );
        let r = report(&rep, &o);
        assert_eq!(r["workspace"].as_str(), Some(d.to_string_lossy().as_ref()), "{who:?}: {r}");
        let ls = e.cordon(&["audit", "ls"]);
        assert!(
            ls.status.success() && out(&ls).contains("sealed") && !out(&ls).contains("unfinished"),
            "{who:?}: the session is recorded: {}",
            show(&ls)
        );
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
        let o = cordon_os(&e)
            .arg("--report")
            .arg(&rep)
            .args(["--", "/bin/sh", "-c", "printf %s \"$1\"; exit 6", "sh"])
            .arg(os(b"a\xffb"))
            .output()
            .expect("spawn cordon");
        no_panic(&o);
        assert_eq!(o.status.code(), Some(6), "{who:?}: {}", show(&o));
        assert_eq!(o.stdout, b"a\xffb", "{who:?}: {}", show(&o));
        let r = report(&rep, &o);
        assert_eq!(
            r["command"].as_array().and_then(|a| a.last()).and_then(|v| v.as_str()),
            Some("a\u{FFFD}b"),
            "{who:?}: {r}"
        );
        let notes = r["outcome"]["notes"].to_string();
        assert!(
            notes.contains("not valid UTF-8") && notes.contains(r"a\\xffb"),
            "{who:?}: the exact bytes are noted: {notes}"
        );
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
        assert!(
            out(&o).contains("README.md") && out(&o).lines().any(|l| l.ends_with(" .")),
            "{who:?}: `ls -la` ran: {}",
            show(&o)
        );
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

// ---- item 26: escalation -----------------------------------------------------------------------

/// The command: ignores (traps) SIGTERM, says so on stdout, and ends only when `ws/stop` appears.
const STUBBORN: &str = "trap 'echo got-term' TERM; echo ready; while [ ! -e stop ]; do sleep 0.1; done; echo stopped";

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    ws: PathBuf,
}

impl Running {
    fn start(e: &Env, extra: &[&str]) -> Running {
        let mut c = cordon_os(e);
        c.args(extra).args(["--", "/bin/sh", "-c", STUBBORN]).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn cordon");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let r = Running { child, lines, stderr: Some(stderr), ws: e.ws.clone() };
        r.expect_line("ready", Duration::from_secs(20));
        r
    }

    fn expect_line(&self, want: &str, within: Duration) {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == want => return,
                Ok(_) => continue,
                Err(_) => panic!("no `{want}` from the command within {within:?}"),
            }
        }
    }

    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).expect("signal cordon");
    }

    /// Waits for cordon to end, up to `within`; None if it is still running.
    fn wait_for(&mut self, within: Duration) -> Option<i32> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits up to `within` for cordon to end by itself, then stops whatever is left; returns its
    /// status (None: it had not ended within `within`) and its stderr.
    fn finish(&mut self, within: Duration) -> (Option<i32>, String) {
        let code = self.wait_for(within);
        self.stop();
        (code, self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default())
    }

    /// Tells the command to stop and waits for cordon; SIGKILL as the last resort.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = std::fs::write(self.ws.join("stop"), "");
            if self.wait_for(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn a_second_sigterm_kills_a_session_that_ignores_the_first() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        for sig in [Signal::SIGTERM, Signal::SIGINT] {
            let e = Env::new(who);
            let mut r = Running::start(&e, &[]);
            r.signal(Signal::SIGTERM);
            r.expect_line("got-term", Duration::from_secs(5));
            let t = Instant::now();
            r.signal(sig);
            // More signals while cordon tears the session down and records its end do not cut that
            // short: one every 200 µs until cordon has exited (its pid stays ours until reaped).
            while r.child.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(5) {
                let _ = kill(Pid::from_raw(r.child.id() as i32), Signal::SIGTERM);
                std::thread::sleep(Duration::from_micros(200));
            }
            let (code, stderr) = r.finish(Duration::from_secs(5));
            let took = t.elapsed();
            assert_eq!(code, Some(137), "{who:?} {sig}: killed (128+9): {stderr}");
            assert!(took < Duration::from_secs(2), "{who:?} {sig}: took {took:?}");
            assert!(
                stderr.contains(&format!("cordon: second signal ({sig}): killing the session")),
                "{who:?} {sig}: {stderr}"
            );
            let ls = e.cordon(&["audit", "ls"]);
            assert!(
                out(&ls).contains("sealed") && !out(&ls).contains("unfinished"),
                "{who:?} {sig}: the session's end is recorded: {}",
                show(&ls)
            );
        }
    }
}

#[test]
fn kill_after_kills_a_session_that_ignores_sigterm() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let rep = e.root.join("report.json");
        let rep_s = rep.to_str().expect("utf-8 path");
        let mut r = Running::start(&e, &["--kill-after", "1s", "--report", rep_s]);
        let t = Instant::now();
        r.signal(Signal::SIGTERM);
        r.expect_line("got-term", Duration::from_secs(5));
        let (code, stderr) = r.finish(Duration::from_secs(5));
        let took = t.elapsed();
        assert_eq!(code, Some(137), "{who:?}: {stderr}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{who:?}: killed {took:?} after SIGTERM"
        );
        assert!(stderr.contains("cordon: session did not end 1s after SIGTERM: killing it"), "{who:?}: {stderr}");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&rep).expect("report")).expect("json");
        assert_eq!(doc["outcome"]["exit_code"], 137, "{who:?}: {doc}");
        assert!(doc["outcome"]["notes"].to_string().contains("--kill-after"), "{who:?}: {doc}");
        let ls = e.cordon(&["audit", "ls"]);
        assert!(out(&ls).contains("sealed") && !out(&ls).contains("unfinished"), "{who:?}: {}", show(&ls));
    }
}

#[test]
fn the_control_one_sigterm_without_kill_after_leaves_the_command_in_charge() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let mut r = Running::start(&e, &[]);
        r.signal(Signal::SIGTERM);
        r.expect_line("got-term", Duration::from_secs(5));
        assert_eq!(r.wait_for(Duration::from_secs(2)), None, "{who:?}: still running 2s after one SIGTERM");
        std::fs::write(e.ws.join("stop"), "").expect("stop");
        r.expect_line("stopped", Duration::from_secs(5));
        let (code, stderr) = r.finish(Duration::from_secs(5));
        assert_eq!(code, Some(0), "{who:?}: {stderr}");
    }
}

#[test]
fn bad_kill_after_values_are_refused() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    for bad in ["soon", "10", "0s"] {
        let o = e.cordon(&["run", "--kill-after", bad, "--", "true"]);
        assert_eq!(o.status.code(), Some(2), "{bad}: a usage error: {}", show(&o));
        assert!(err(&o).contains("--kill-after") && err(&o).contains("e.g. 10s"), "{bad}: {}", show(&o));
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
    let line = err(&o)
        .lines()
        .find(|l| l.contains("[seccomp] socket"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no sensor line for the refusal: {}", show(&o)));
    assert_eq!(line.matches(fam).count(), 1, "{line}");
    let events = std::fs::read_to_string(&evf).expect("events");
    let deny = events
        .lines()
        .find(|l| l.contains("\"deny\"") && l.contains("\"socket\""))
        .unwrap_or_else(|| panic!("no deny event: {}", show(&o)));
    let v: serde_json::Value = serde_json::from_str(deny).expect("json");
    let reason = v["reason"].as_str().unwrap_or("");
    assert_eq!(reason.matches(fam).count(), 1, "{reason}");
    // Every distinct reason of the socket rules is still there, once each.
    for other in
        ["network: raw IP sockets", "network: netlink protocol other than route and sock_diag;", "(audit, uevent, ...)"]
    {
        assert_eq!(reason.matches(other).count(), 1, "{other}: {reason}");
    }
}

// ---- signal dispositions: the command gets what it would get outside --------------------------

#[test]
fn the_command_inherits_no_ignored_sigpipe() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        // `yes | head -1`: outside, yes dies of SIGPIPE (status 141); with SIGPIPE ignored it would
        // print "Broken pipe" and exit 1.
        let script = "yes | head -1 > /dev/null; echo \"status ${PIPESTATUS[0]}\"; grep SigIgn /proc/self/status";
        let bare = e.bare_sh(&format!("exec bash -c '{script}'"));
        assert!(out(&bare).contains("status 141"), "control: {}", show(&bare));
        let o = e.run_sh(&format!("exec bash -c '{script}'"));
        assert!(out(&o).contains("status 141"), "{who:?}: {}", show(&o));
        // Signals 1-31: 32 and 33 are glibc's own (thread cancellation, setxid), whose disposition
        // glibc sets in any threaded process (cordon's supervisor): an ignore of them inherited from
        // the caller's shell cannot survive it, nor matters to a command.
        let ign = |s: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                .map(|m| m & 0x7fff_ffff)
        };
        assert!(ign(&out(&bare)).is_some(), "control: {}", show(&bare));
        assert_eq!(ign(&out(&o)), ign(&out(&bare)), "{who:?}: the same ignored signals as outside");
    }
}
