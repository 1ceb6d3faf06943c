//! A project's own policy (`cordon init`, `.cordon.toml`, `cordon policy trust`): `cordon run` uses
//! the workspace's policy when none is named, and only while its text is the one the user trusted —
//! an agent that edits it in one session cannot widen the next. Root and nobody.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Output;

struct Project {
    e: Env,
    /// XDG_CONFIG_HOME for every call: the trust store is the test's own.
    cfg: PathBuf,
}

impl Project {
    fn new(who: Who) -> Project {
        let e = Env::new(who);
        let cfg = e.home.join(".config");
        Project { e, cfg }
    }

    fn cordon(&self, args: &[&str]) -> Output {
        self.e.cordon_env(args, &[("XDG_CONFIG_HOME", self.cfg.to_str().expect("utf-8"))])
    }

    /// `cordon run [--allow-degraded] ARGS -- sh -c SCRIPT`, no policy named.
    fn run(&self, extra: &[&str], script: &str) -> Output {
        let mut args = vec!["run", "--no-audit"];
        if self.e.who == Who::Nobody {
            args.push("--allow-degraded");
        }
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
        self.cordon(&args)
    }

    fn policy_text(&self) -> String {
        std::fs::read_to_string(self.e.ws.join(".cordon.toml")).expect(".cordon.toml")
    }
}

#[test]
fn init_names_the_presets_the_project_suggests_and_never_clobbers() {
    for who in [Who::Root, Who::Nobody] {
        if who == Who::Nobody && !need_root() {
            continue;
        }
        let p = Project::new(who);
        for f in ["requirements.txt", "package.json"] {
            std::fs::write(p.e.ws.join(f), "").expect("manifest");
        }
        if who == Who::Nobody {
            p.e.chown_all();
        }
        let o = p.cordon(&["init"]);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        let t = p.policy_text();
        assert!(t.contains("extends = [\"builtin:build\"]"), "{who:?}: {t}");
        assert!(
            t.contains("\"@pypi\",  # requirements.txt") && t.contains("\"@npm\",  # package.json"),
            "{who:?}: {t}"
        );
        assert!(!t.contains("@crates"), "{who:?}: {t}");
        assert!(out(&o).contains("and trusted it"), "{who:?}: {}", show(&o));

        // A second init refuses, and the file is unchanged; --force replaces it.
        std::fs::write(p.e.ws.join(".cordon.toml"), t.replace("name = ", "# mine\nname = ")).expect("edit");
        let again = p.cordon(&["init"]);
        assert!(!again.status.success() && err(&again).contains("exists already"), "{who:?}: {}", show(&again));
        assert!(p.policy_text().contains("# mine"), "{who:?}");
        let forced = p.cordon(&["init", "--force", "--profile", "claude-code", "--json"]);
        assert!(forced.status.success(), "{who:?}: {}", show(&forced));
        let v: serde_json::Value = serde_json::from_str(out(&forced).trim()).expect("json");
        assert_eq!(v["profile"], "builtin:claude-code", "{who:?}");
        assert!(!p.policy_text().contains("# mine"), "{who:?}");

        let bad = p.cordon(&["init", "--force", "--profile", "nonesuch"]);
        assert!(
            !bad.status.success() && err(&bad).contains("no such built-in profile") && err(&bad).contains("codex"),
            "{who:?}: {}",
            show(&bad)
        );
        assert!(
            !std::fs::read_dir(&p.e.ws).expect("ws").any(|d| d
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")),
            "{who:?}: a temporary file was left in the workspace"
        );
    }
}

#[test]
fn run_uses_the_trusted_project_policy_and_refuses_one_an_agent_changed() {
    for who in [Who::Root, Who::Nobody] {
        if who == Who::Nobody && !need_root() {
            continue;
        }
        let p = Project::new(who);
        let init = p.cordon(&["init"]);
        assert!(init.status.success(), "{who:?}: {}", show(&init));
        let name = p.e.ws.file_name().expect("name").to_string_lossy().into_owned();

        // Picked up, said so, and in force (the session's CORDON_POLICY is the project's name).
        let o = p.run(&[], "echo \"policy=$CORDON_POLICY\"");
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        assert!(out(&o).contains(&format!("policy={name}")), "{who:?}: {}", show(&o));
        assert!(err(&o).contains(".cordon.toml (the workspace's own, trusted)"), "{who:?}: {}", show(&o));

        // The trust store is out of the session's reach.
        let store = p.cfg.join("cordon/trusted");
        let reach = p.run(&[], &format!("echo x >> '{}'", store.display()));
        assert!(!reach.status.success(), "{who:?}: the session wrote the trust store: {}", show(&reach));

        // A session widens its next session's policy: the next one refuses, running nothing.
        let plant = p.run(&[], "printf '\\n[limits]\\nmemory = \"64GiB\"\\n' >> .cordon.toml");
        assert!(plant.status.success(), "{who:?}: the workspace is writable: {}", show(&plant));
        let marker = p.e.ws.join("ran");
        let refused = p.run(&[], "touch ran");
        assert_eq!(refused.status.code(), Some(125), "{who:?}: {}", show(&refused));
        assert!(
            err(&refused).contains("is not trusted: it changed since you trusted it"),
            "{who:?}: {}",
            show(&refused)
        );
        assert!(err(&refused).contains("cordon policy trust"), "{who:?}: {}", show(&refused));
        assert!(!exists(&marker), "{who:?}: the command ran under an untrusted policy");

        // Naming a policy runs without it; trusting it again (the user read it) runs with it.
        let named = p.run(&["--profile", "agent"], "echo \"policy=$CORDON_POLICY\"");
        assert!(out(&named).contains("policy=agent"), "{who:?}: {}", show(&named));
        let t = p.cordon(&["policy", "trust"]);
        assert!(t.status.success(), "{who:?}: {}", show(&t));
        let after = p.run(&[], "touch ran");
        assert!(after.status.success() && exists(&marker), "{who:?}: {}", show(&after));
    }
}

#[test]
fn a_change_to_a_file_the_project_policy_extends_is_a_change_too() {
    let p = Project::new(Who::Root);
    std::fs::write(p.e.ws.join("team.toml"), "version = 1\nname = \"team\"\nextends = [\"builtin:agent\"]\n")
        .expect("team");
    std::fs::write(p.e.ws.join(".cordon.toml"), "version = 1\nname = \"proj\"\nextends = [\"team.toml\"]\n")
        .expect("proj");
    // Never trusted: refused, saying so.
    let never = p.run(&[], "true");
    assert!(err(&never).contains("you have not trusted it yet"), "{}", show(&never));
    assert!(p.cordon(&["policy", "trust"]).status.success());
    assert!(p.run(&[], "true").status.success());
    let widen = p.run(&[], "printf '[net]\\negress = \"open\"\\n' >> team.toml");
    assert!(widen.status.success(), "{}", show(&widen));
    let o = p.run(&[], "true");
    assert!(o.status.code() == Some(125) && err(&o).contains("changed since you trusted it"), "{}", show(&o));
}

#[test]
fn an_agent_cannot_remove_borrow_or_inject_a_trusted_policy() {
    let p = Project::new(Who::Root);
    assert!(p.cordon(&["init", "--profile", "strict"]).status.success());
    assert!(p.run(&[], "true").status.success());
    let marker = p.e.ws.join("ran");

    // Removed by a session: the next one refuses instead of falling back to the default profile.
    let rm = p.run(&[], "rm .cordon.toml");
    assert!(rm.status.success(), "{}", show(&rm));
    let o = p.run(&[], "touch ran");
    assert!(o.status.code() == Some(125) && err(&o).contains("was trusted but is gone"), "{}", show(&o));
    assert!(!exists(&marker), "the command ran after its trusted policy was removed");

    // Borrowed: a link to a policy trusted for another project is not this workspace's.
    let other = p.e.root.join("other");
    std::fs::create_dir_all(&other).expect("other");
    std::fs::write(
        other.join(".cordon.toml"),
        "version = 1\nname = \"other\"\nextends = [\"builtin:agent\"]\n[net]\negress = \"open\"\n",
    )
    .expect("other policy");
    let t = p.cordon(&["policy", "trust", &other.join(".cordon.toml").display().to_string()]);
    assert!(t.status.success(), "{}", show(&t));
    std::os::unix::fs::symlink(other.join(".cordon.toml"), p.e.ws.join(".cordon.toml")).expect("link");
    let o = p.run(&[], "touch ran");
    assert!(o.status.code() == Some(125) && err(&o).contains("not a file inside the workspace"), "{}", show(&o));
    assert!(!exists(&marker), "the command ran under another project's policy");

    // Injected: a path with a line break cannot become a line of the trust store.
    let evil = p.e.ws.join(format!("a\n{} {}", "0".repeat(64), p.e.ws.join(".cordon.toml").display()));
    std::fs::create_dir_all(&evil).expect("dir with a line break");
    std::fs::write(evil.join("p.toml"), "version = 1\nname = \"x\"\nextends = [\"builtin:agent\"]\n").expect("p");
    let t = p.cordon(&["policy", "trust", &evil.join("p.toml").display().to_string()]);
    assert!(!t.status.success() && err(&t).contains("line break"), "{}", show(&t));
    let store = std::fs::read_to_string(p.cfg.join("cordon/trusted")).expect("store");
    assert!(!store.contains(&"0".repeat(64)), "a line was injected: {store}");
}
