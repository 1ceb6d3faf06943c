//! `fs.sanitize` (issue 17 #6): a settings file that holds secrets too is read inside the session
//! as a copy without them; the settings still work (git's identity, npm's registry), the secrets
//! are not there, the original is untouched, and the summary says what was taken out.

mod common;

use common::*;

const NPMRC: &str = "registry=https://npm.corp.example/\n//npm.corp.example/:_authToken=SECRET-NPM\n";
const GITCONFIG: &str = "[user]\n\tname = Cordon Tester\n[credential]\n\thelper = !echo password=SECRET-GIT\n[http \"https://git.corp.example/\"]\n\textraHeader = Authorization: Bearer SECRET-HDR\n";
const CARGO: &str = "[registries.corp]\nindex = \"sparse+https://crates.corp.example/\"\ntoken = \"SECRET-CARGO\"\n";

fn write_configs(e: &Env) {
    std::fs::write(e.home.join(".npmrc"), NPMRC).expect("npmrc");
    std::fs::write(e.home.join(".gitconfig"), GITCONFIG).expect("gitconfig");
    std::fs::create_dir_all(e.home.join(".cargo")).expect("mkdir");
    std::fs::write(e.home.join(".cargo/config.toml"), CARGO).expect("cargo");
    if e.who == Who::Nobody {
        e.chown_all();
    }
}

const READ_ALL: &str = "cat ~/.npmrc ~/.cargo/config.toml; git config --global user.name; \
    git config --global --get-all credential.helper; git config --global --get-regexp extraheader; \
    grep -r SECRET ~ 2>/dev/null; echo end";

#[test]
fn settings_are_read_without_their_secrets() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        write_configs(&e);
        // Control: without cordon, the same user reads every secret.
        let b = e.bare_sh(READ_ALL);
        for s in ["SECRET-NPM", "SECRET-GIT", "SECRET-HDR", "SECRET-CARGO"] {
            assert!(out(&b).contains(s), "{who:?}: control reads {s}: {}", show(&b));
        }
        let o = e.run_sh(READ_ALL);
        let s = out(&o);
        assert!(s.contains("end"), "{who:?}: {}", show(&o));
        assert!(!s.contains("SECRET"), "{who:?}: a secret is readable inside: {}", show(&o));
        // The settings are there.
        assert!(s.contains("registry=https://npm.corp.example/"), "{who:?}: npm's registry: {s}");
        assert!(s.contains("Cordon Tester"), "{who:?}: git's identity: {s}");
        assert!(s.contains("crates.corp.example"), "{who:?}: cargo's registry: {s}");
        // The summary names what was taken out, never a value.
        let msg = err(&o);
        assert!(
            msg.contains(
                "~/.npmrc: the session reads a copy without its secrets (removed: //npm.corp.example/:_authToken)"
            ),
            "{who:?}: {msg}"
        );
        assert!(
            msg.contains("~/.gitconfig: the session reads a copy without its secrets (removed: [credential]"),
            "{who:?}: {msg}"
        );
        assert!(msg.contains("registries.corp.token"), "{who:?}: {msg}");
        assert!(!msg.contains("SECRET"), "{who:?}: {msg}");
        // The originals are untouched, and the staged copies are gone.
        assert_eq!(std::fs::read_to_string(e.home.join(".npmrc")).expect("npmrc"), NPMRC);
        assert_eq!(std::fs::read_to_string(e.home.join(".gitconfig")).expect("gitconfig"), GITCONFIG);
        // This session's staging (other tests run sessions at the same time).
        let id = msg.split("cordon: session ").nth(1).and_then(|x| x.split_whitespace().next()).expect("session id");
        let left = cordon_session::staging::Staging::new(id).path();
        assert!(id.len() == 16, "{who:?}: a session id: {id}");
        assert!(!left.exists(), "{who:?}: staged copies left behind: {}", left.display());
    }
}

#[test]
fn the_copy_is_read_only_and_a_file_cordon_cannot_read_stays_hidden() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    write_configs(&e);
    let o = e.run_sh("echo '//x/:_authToken=PLANTED' >> ~/.npmrc; echo rc=$?");
    assert!(out(&o).contains("rc=1") || out(&o).contains("rc=2"), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(e.home.join(".npmrc")).expect("npmrc"), NPMRC, "the original is untouched");
    // A cargo config that is not TOML cannot be sanitized: it stays hidden whole, and says so.
    std::fs::write(e.home.join(".cargo/config.toml"), "[registries.corp\ntoken = \"SECRET-BROKEN\"\n").expect("cargo");
    let o = e.run_sh("cat ~/.cargo/config.toml; echo end");
    assert!(out(&o).contains("end") && !out(&o).contains("SECRET"), "{}", show(&o));
    assert!(err(&o).contains("~/.cargo/config.toml: hidden whole (not TOML cordon can read"), "{}", show(&o));
}

#[test]
fn an_unknown_file_in_fs_sanitize_is_a_positioned_error() {
    let e = Env::new(Who::Root);
    let p =
        e.write_policy("p.toml", "version = 1\nextends = [\"builtin:agent\"]\n[fs]\nsanitize = [\"~/.ssh/config\"]\n");
    let o = e.cordon(&["policy", "check", p.to_str().unwrap_or("")]);
    assert!(!o.status.success(), "{}", show(&o));
    let m = err(&o) + &out(&o);
    assert!(m.contains("p.toml:4:13") && m.contains("fs.sanitize[0]") && m.contains("hint:"), "{m}");
}

#[test]
fn copies_left_by_a_killed_supervisor_are_collected_by_the_next_session() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    // A supervisor that is gone (a process that has exited) and one that is alive (this test).
    let mut dead = std::process::Command::new("true").spawn().expect("true");
    let dead_pid = dead.id();
    dead.wait().expect("wait");
    // Where sessions stage (a tmpfs when the host has one), named as sessions name theirs.
    let base = cordon_session::staging::base();
    let prefix = cordon_session::staging::PREFIX;
    let stale = base.join(format!("{prefix}test-stale-{}", std::process::id()));
    let live = base.join(format!("{prefix}test-live-{}", std::process::id()));
    for (d, pid) in [(&stale, dead_pid), (&live, std::process::id())] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::write(d.join("pid"), pid.to_string()).expect("pid");
        std::fs::write(d.join("0"), "registry=https://r/\n").expect("copy");
    }
    let o = e.run_sh("true");
    assert!(o.status.success(), "{}", show(&o));
    let (stale_left, live_left) = (stale.exists(), live.exists());
    let _ = std::fs::remove_dir_all(&live);
    let _ = std::fs::remove_dir_all(&stale);
    assert!(!stale_left, "a dead supervisor's staged copies are collected");
    assert!(live_left, "a live supervisor's staged copies are left alone");
}
