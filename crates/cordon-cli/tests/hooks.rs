//! `cordon hook claude-code|codex`, driven by a scripted agent that speaks the hooks' JSON (the real
//! CLIs are not needed): inside a real cordon session, as root and nobody, the agent asks before each
//! tool call, skips the calls the hook denies (and shows the reason), runs the others, and reports
//! after each. The refused call is also tried for real, to show the hook's reason is the kernel's.

mod common;
use common::*;

/// The scripted agent: for each call, PreToolUse → deny or run → PostToolUse; prints what happened.
const AGENT: &str = r#"
import json, os, subprocess, sys
hook = [os.environ["CORDON_BIN"], "hook", sys.argv[1]]
calls = [
    ("Bash", {"command": "cat ~/.ssh/id_rsa"}),
    ("Bash", {"command": "echo done > out.txt"}),
    ("Write", {"file_path": os.path.expanduser("~/.bashrc"), "content": "x"}),
    ("WebFetch", {"url": "https://example.com/"}),
    ("apply_patch", {"command": "*** Begin Patch\n*** Add File: /etc/cordon-hook-test\n+x\n*** End Patch\n"}),
]
for name, args in calls:
    pre = {"hook_event_name": "PreToolUse", "tool_name": name, "tool_input": args, "cwd": os.getcwd(), "session_id": "s"}
    r = subprocess.run(hook, input=json.dumps(pre), capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{name}: hook failed {r.returncode}: {r.stderr}"); continue
    if r.stdout.strip():
        out = json.loads(r.stdout)["hookSpecificOutput"]
        print(f"{name}: {out['permissionDecision']}: {out['permissionDecisionReason']}")
        if name == "Bash":
            real = subprocess.run(args["command"], shell=True, capture_output=True, text=True)
            print(f"{name}: for real: exit {real.returncode}: {real.stderr.strip()}")
        continue
    if name == "Bash":
        real = subprocess.run(args["command"], shell=True, capture_output=True, text=True)
        post = dict(pre, hook_event_name="PostToolUse", tool_response={"stdout": real.stdout, "stderr": real.stderr})
        r = subprocess.run(hook, input=json.dumps(post), capture_output=True, text=True)
        print(f"{name}: ran: exit {real.returncode}; post: {r.stdout.strip() or 'nothing'}")
"#;

#[test]
fn a_scripted_agent_is_told_why_before_the_kernel_refuses() {
    for who in BOTH {
        if who == Who::Nobody && !need_root() {
            continue;
        }
        for agent in ["claude-code", "codex"] {
            let e = Env::new(who);
            std::fs::write(e.ws.join("agent.py"), AGENT).expect("agent");
            if who == Who::Nobody {
                e.chown_all();
            }
            // cordon is installed in a system tree in real use; here a copy of the built binary sits
            // in a directory granted for the run (the build may be under /tmp, which the session
            // cannot be granted: its /tmp is its own).
            let dir = e.root.join("bin");
            std::fs::create_dir_all(&dir).expect("bin dir");
            let bin = dir.join("cordon");
            if std::fs::hard_link(env!("CARGO_BIN_EXE_cordon"), &bin).is_err() {
                std::fs::copy(env!("CARGO_BIN_EXE_cordon"), &bin).expect("copy cordon");
            }
            let (bin, dir) = (bin.display().to_string(), dir.display().to_string());
            // The control: without cordon the first call reads the key (the attack works).
            let bare = e.bare_sh("cat ~/.ssh/id_rsa");
            assert!(out(&bare).contains("FAKE KEY"), "{who:?}: control: {}", show(&bare));
            let o = e.run_sh_with(
                &["--no-audit", "--allow-read", &dir],
                &format!("python3 agent.py {agent}"),
                &[("CORDON_BIN", &bin)],
            );
            assert!(o.status.success(), "{who:?} {agent}: {}", show(&o));
            let text = out(&o);
            assert!(text.contains("Bash: deny: cordon's policy `agent` refuses"), "{who:?} {agent}: {text}");
            assert!(text.contains("is in fs.deny (@secrets"), "{who:?} {agent}: {text}");
            assert!(!text.contains("FAKE KEY"), "{who:?} {agent}: the key was read: {text}");
            assert!(text.contains("Bash: for real: exit 1"), "{who:?} {agent}: the kernel let it through: {text}");
            assert!(text.contains("Bash: ran: exit 0; post: nothing"), "{who:?} {agent}: {text}");
            assert!(exists(&e.ws.join("out.txt")), "{who:?} {agent}: the allowed call did not run");
            assert!(
                text.contains("Write: deny:") && text.contains(".bashrc is not in the write allowlist"),
                "{who:?} {agent}: {text}"
            );
            assert!(
                text.contains("WebFetch: deny:") && text.contains("net.egress = \"none\""),
                "{who:?} {agent}: {text}"
            );
            if agent == "codex" {
                assert!(
                    text.contains("apply_patch: deny:") && text.contains("/etc/cordon-hook-test"),
                    "{who:?}: {text}"
                );
            } else {
                assert!(!text.contains("apply_patch"), "{who:?}: Claude Code has no apply_patch: {text}");
            }
            assert!(!text.contains("hook failed"), "{who:?} {agent}: {text}");
        }
    }
}

/// A scripted agent whose shell calls the hook cannot judge from their text (the path is put
/// together at run time): each call runs between PreToolUse and PostToolUse with a `tool_use_id`,
/// as the agents send them, and the PostToolUse answer names what the kernel refused during that
/// call and only that call.
const AGENT_RUNTIME: &str = r#"
import json, os, subprocess, sys
hook = [os.environ["CORDON_BIN"], "hook", sys.argv[1]]
calls = [
    ("t1", "echo before > before.txt"),
    ("t2", "d=/et; echo x > ${d}c/cordon-hook-runtime; echo exit=$?"),
    ("t3", "echo after > after.txt"),
]
for tid, cmd in calls:
    pre = {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": cmd},
           "tool_use_id": tid, "cwd": os.getcwd(), "session_id": "s"}
    r = subprocess.run(hook, input=json.dumps(pre), capture_output=True, text=True)
    if r.returncode != 0 or r.stdout.strip():
        print(f"{tid}: pre: {r.returncode} {r.stdout} {r.stderr}"); continue
    real = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    post = dict(pre, hook_event_name="PostToolUse", tool_response={"stdout": real.stdout, "stderr": real.stderr})
    r = subprocess.run(hook, input=json.dumps(post), capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{tid}: post failed {r.returncode}: {r.stderr}"); continue
    ctx = json.loads(r.stdout)["hookSpecificOutput"]["additionalContext"] if r.stdout.strip() else "nothing"
    print(f"{tid}: {real.stdout.strip()} post: {ctx}")
"#;

/// issue 17 (agent integrations): after a tool call, the hook returns the refusals the kernel made
/// during that call (the session's refusal stream between the call's PreToolUse and PostToolUse),
/// not only the policy's reading of the call's text; calls before and after get nothing.
#[test]
fn post_tool_use_returns_the_refusals_the_kernel_made_during_that_call() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        for agent in ["claude-code", "codex"] {
            let e = Env::new(who);
            std::fs::write(e.ws.join("agent.py"), AGENT_RUNTIME).expect("agent");
            let (bin, dir) = cordon_copy(&e);
            // The control: the hook reads the call's text and finds nothing to refuse.
            let o = e.run_sh_with(
                &["--no-audit", "--allow-read", &dir],
                &format!("python3 agent.py {agent}"),
                &[("CORDON_BIN", &bin)],
            );
            assert!(o.status.success(), "{who:?} {agent}: {}", show(&o));
            let text = out(&o);
            assert!(text.contains("t1:  post: nothing"), "{who:?} {agent}: {text}");
            assert!(text.contains("t3:  post: nothing"), "{who:?} {agent}: {text}");
            let t2 = text.split("t2:").nth(1).and_then(|t| t.split("t3:").next()).unwrap_or_default();
            assert!(t2.contains("exit=") && !t2.contains("exit=0"), "{who:?} {agent}: the write was refused {text}");
            assert!(
                t2.contains("cordon's sandbox refused during this call:") && t2.contains("/etc"),
                "{who:?} {agent}: the kernel's refusal is named {text}"
            );
            assert!(
                t2.contains("--allow-write") || t2.contains("not in the write allowlist"),
                "{who:?} {agent}: {text}"
            );
            assert!(!exists(std::path::Path::new("/etc/cordon-hook-runtime")));
        }
    }
}

/// A copy of the built binary in a directory granted for the run (the build may be under /tmp,
/// which the session cannot be granted: its /tmp is its own): (binary, directory).
fn cordon_copy(e: &Env) -> (String, String) {
    let dir = e.root.join("bin");
    std::fs::create_dir_all(&dir).expect("bin dir");
    let bin = dir.join("cordon");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_cordon"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_cordon"), &bin).expect("copy cordon");
    }
    if e.who == Who::Nobody {
        e.chown_all();
    }
    (bin.display().to_string(), dir.display().to_string())
}

#[test]
fn bad_hook_input_is_an_error_naming_it_never_a_panic() {
    let e = Env::new(Who::Root);
    for (input, want) in [
        (b"not json".to_vec(), "not JSON"),
        (b"[1,2]".to_vec(), "not a JSON object"),
        (vec![0xff, 0xfe, b'{'], "not JSON"),
        (vec![b' '; 5 << 20], "larger than 4 MiB"),
    ] {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cordon"));
        c.args(["hook", "claude-code"]).current_dir(&e.ws).env("HOME", &e.home);
        c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
        let o = child.wait_with_output().expect("wait");
        let _ = writer.join();
        assert!(!o.status.success() && err(&o).contains(want), "{want}: {}", show(&o));
        assert!(!err(&o).contains("panicked"), "{}", show(&o));
        assert!(out(&o).is_empty(), "no decision on bad input: {}", show(&o));
    }
    // Events other than the tool-call ones are answered with nothing.
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cordon"));
    c.args(["hook", "codex"]).current_dir(&e.ws).env("HOME", &e.home);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(br#"{"hook_event_name":"SessionStart"}"#).expect("write");
    }
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success() && o.stdout.is_empty(), "{}", show(&o));
}
