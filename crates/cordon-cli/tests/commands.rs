//! The other verbs: policy check/explain/test/export and doctor, through the real binary.

mod common;
use common::*;
use std::process::Command;

fn cordon(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cordon")).args(args).output().expect("spawn")
}

fn corpus(name: &str) -> String {
    format!("{}/../../tests/corpus/bad/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn policy_check_names_file_line_column_and_hint() {
    let f = corpus("06-relative-read.toml");
    let o = cordon(&["policy", "check", &f]);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(e.contains("06-relative-read.toml:4:20: error in `fs.read[1]`: relative path `src`"), "{e}");
    assert!(e.contains("hint: ") && e.contains("$WORKSPACE/src"), "{e}");
    let o = cordon(&["policy", "check", "--json", &f, "builtin:agent"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["errors"][0]["line"], 4);
    assert_eq!(v[0]["errors"][0]["col"], 20);
    assert_eq!(v[1]["ok"], true);
    assert_eq!(cordon(&["policy", "check", "builtin:agent", "builtin:build"]).status.code(), Some(0));
}

#[test]
fn unreadable_policy_file_is_a_clear_error() {
    let o = cordon(&["run", "--policy", "/nonexistent/p.toml", "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("cannot read policy file /nonexistent/p.toml"), "{}", show(&o));
    let o = cordon(&["run", "--profile", "nope", "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("no built-in profile named `nope`"), "{}", show(&o));
}

#[test]
fn explain_says_what_is_enforced() {
    let o = cordon(&["policy", "explain", "builtin:agent", "--workspace", "/tmp"]);
    assert!(o.status.success());
    let s = out(&o);
    for needle in [
        "can read:",
        "can write:",
        "never readable",
        ".git/hooks",
        "no connection leaves the session",
        "memory 4GiB, processes 512",
    ] {
        assert!(s.contains(needle), "missing `{needle}` in:\n{s}");
    }
}

#[test]
fn oci_seccomp_export_is_loadable_json() {
    let o = cordon(&["policy", "export", "--format", "oci-seccomp", "builtin:agent", "--workspace", "/tmp"]);
    assert!(o.status.success(), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
    let rules = v["syscalls"].as_array().expect("syscalls");
    assert!(rules.len() > 50);
    // Each entry resolves with libseccomp on its architectures, and carries its reason.
    for r in rules {
        let name = r["names"][0].as_str().expect("name");
        assert!(
            libseccomp::ScmpSyscall::from_name_by_arch(name, libseccomp::ScmpArch::X8664).is_ok()
                || r["includes"]["arches"][0] == "arm64",
            "{name}"
        );
        assert!(r["comment"].as_str().is_some_and(|c| !c.is_empty()));
    }
    assert!(rules.iter().any(|r| r["names"][0] == "ioctl" && r["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"));
}

#[test]
fn apparmor_export_is_accepted_by_apparmor_parser() {
    let parser =
        ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"].into_iter().find(|p| std::path::Path::new(p).exists());
    let Some(parser) = parser else {
        panic!("apparmor_parser is missing: install Debian's apparmor package (scripts/setup does)");
    };
    let dir = std::env::temp_dir().join(format!("cordon-aa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("profile");
    for profile in ["builtin:agent", "builtin:strict"] {
        let o = cordon(&[
            "policy",
            "export",
            "--format",
            "apparmor",
            profile,
            "--workspace",
            "/tmp",
            "-o",
            &f.display().to_string(),
        ]);
        assert!(o.status.success(), "{}", show(&o));
        let o = Command::new(parser).args(["-Q", "-K"]).arg(&f).output().expect("apparmor_parser");
        assert!(
            o.status.success(),
            "apparmor_parser rejected the {profile} profile: {}\n{}",
            show(&o),
            std::fs::read_to_string(&f).unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn policy_test_runs_examples_for_real() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let p = e.write_policy(
        "p.toml",
        &format!(
            "version = 1\nextends = [\"builtin:agent\"]\n[[test]]\nread = \"{key}\"\nexpect = \"deny\"\n[[test]]\nread = \"README.md\"\nexpect = \"allow\"\n[[test]]\nwrite = \"README.md\"\nexpect = \"allow\"\n",
            key = e.home.join(".ssh/id_rsa").display()
        ),
    );
    let o = e.cordon(&["policy", "test", &p.display().to_string()]);
    assert!(o.status.success(), "{}", show(&o));
    let s = out(&o);
    // Its own three examples plus those of builtin:agent it extends; its own run in real sandboxes.
    assert!(s.matches("[plan + sandbox]").count() >= 3, "{s}");
    assert!(s.contains(" passed, 0 failed"), "{s}");
    assert!(
        s.lines()
            .filter(|l| l.contains(&e.home.join(".ssh/id_rsa").display().to_string()) || l.contains("README.md"))
            .all(|l| l.starts_with("PASS") && l.contains("[plan + sandbox]")),
        "{s}"
    );
    // A wrong expectation fails.
    let bad = e.write_policy(
        "bad.toml",
        "version = 1\nextends = [\"builtin:agent\"]\n[[test]]\nread = \"README.md\"\nexpect = \"deny\"\n",
    );
    let o = e.cordon(&["policy", "test", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
}

#[test]
fn doctor_reports_this_host() {
    if !need_root() {
        return;
    }
    let o = cordon(&["doctor", "--json"]);
    assert!(o.status.success(), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let me = &v["this_user"];
    // These machines have Landlock ABI >= 6, seccomp user notification and namespaces; doctor must see them.
    assert!(me["landlock"]["abi"].as_i64().unwrap_or(0) >= 6, "{me}");
    assert_eq!(me["seccomp"]["user_notification"], true);
    assert_eq!(me["default_profile"]["runs_without_degrading"], true, "root gets the default profile in full here");
    let nobody = &v["other_user"];
    assert_eq!(nobody["uid"], 65534, "{v}");
    assert_eq!(nobody["namespaces"]["available"], true);
    assert_eq!(nobody["default_profile"]["runs_without_degrading"], false, "nobody has no writable cgroup here");
    let o = cordon(&["doctor"]);
    let s = out(&o);
    assert!(s.contains("As an unprivileged user (nobody)") && s.contains("LOST"), "{s}");
}

#[test]
fn a_missing_rule_file_is_named_as_a_rule_file() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["rules", "check", "/nonexistent/r.toml"])
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot read rule file /nonexistent/r.toml"), "{err}");
    assert!(!err.contains("policy file"), "{err}");
}

/// Help reads as paragraphs at any width (issue 17 #11): clap wraps them, so a wide terminal gets
/// whole sentences on a line and a narrow one gets no line longer than it is.
#[test]
fn help_text_wraps_to_the_terminal_and_never_breaks_a_sentence_by_itself() {
    for cmd in [&[][..], &["run"][..], &["monitor"][..], &["policy"][..], &["audit", "verify"][..]] {
        let help = |cols: &str| {
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_cordon"))
                .args(cmd)
                .arg("--help")
                .env("COLUMNS", cols)
                .output()
                .expect("cordon --help");
            assert!(o.status.success(), "{cmd:?}");
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let narrow = help("60");
        for l in narrow.lines() {
            assert!(l.chars().count() <= 60, "{cmd:?} at 60 columns: `{l}`");
        }
        let wide = help("400");
        // At 400 columns a paragraph is one line: no line of prose ends where the source did.
        for l in wide.lines().filter(|l| !l.starts_with(' ') && l.len() > 40) {
            let next_starts_prose = wide
                .lines()
                .skip_while(|x| *x != l)
                .nth(1)
                .is_some_and(|n| n.chars().next().is_some_and(|c| c.is_lowercase()));
            assert!(!next_starts_prose, "{cmd:?}: a sentence broken after `{l}`");
        }
    }
}

/// Completions and the man page come from the same definitions as --help (issue 17 #11).
#[test]
fn completions_and_the_man_page_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let o = cordon(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", show(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        for sub in ["run", "monitor", "doctor", "policy", "audit", "rules"] {
            assert!(text.contains(sub), "{shell} completions lack `{sub}`");
        }
        assert!(text.contains("allow-net"), "{shell} completions lack run's flags");
        assert!(!text.contains("supervise"), "{shell}: the internal verb is not offered");
    }
    let o = cordon(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2), "an unknown shell is a usage error: {}", show(&o));
    let o = cordon(&["man"]);
    assert!(o.status.success(), "{}", show(&o));
    let man = String::from_utf8_lossy(&o.stdout);
    for page in ["cordon 1", "cordon-run 1", "cordon-monitor 1", "cordon-policy 1", "cordon-audit 1"] {
        assert!(man.contains(&format!(".TH {page}")), "no page `{page}` in cordon man");
    }
    assert!(man.contains("allow\\-net") && !man.contains("cordon-supervise"), "the man page's run flags");
}
