//! Git's own files that make the host's next git command run code: `.git/commondir` (points git at
//! another config, with `core.fsmonitor`), `.git/config.worktree`, and a `.git` that is a file (a
//! worktree or submodule: `gitdir: ...`), which a session could otherwise replace by a repository of
//! its own. Each as root and as nobody, with controls: without cordon the host's git runs the plant.

#[path = "common/mod.rs"]
mod common;
use common::*;
use std::path::Path;

fn git_repo(e: &Env, dir: &Path) {
    let o = e.bare_sh(&format!(
        "cd {} && git init -q . && git config user.email a@b && git config user.name t && git add -A && git commit -qm init",
        dir.display()
    ));
    assert!(o.status.success(), "{}", show(&o));
    if e.who == Who::Nobody {
        e.chown_all();
    }
}

/// Plants `.git/commondir` -> `../evil` with `core.fsmonitor` in `evil/config`; prints
/// `planted commondir` when the plant was written.
fn commondir_plant(mark: &Path) -> String {
    format!(
        "mkdir -p evil && cp -r .git/refs .git/objects .git/HEAD evil/ 2>/dev/null; \
         printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = \"touch {m}; false\"\\n' > evil/config; \
         echo ../evil > .git/commondir && echo 'planted commondir'; \
         echo '[core]' > .git/config.worktree && echo 'planted config.worktree'; true",
        m = mark.display()
    )
}

#[test]
fn a_planted_commondir_is_refused_and_the_hosts_git_runs_nothing() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        // The control: the plant works without cordon, and the host's `git status` runs it.
        let c = Env::new(who);
        git_repo(&c, &c.ws);
        let mark = c.root.join("ran");
        let o = c.bare_sh(&commondir_plant(&mark));
        assert!(out(&o).contains("planted commondir"), "control {who:?}: {}", show(&o));
        let _ = c.bare_sh("git status");
        assert!(exists(&mark), "control {who:?}: the host's git did not run the plant: {}", show(&o));
        drop(c);

        let e = Env::new(who);
        git_repo(&e, &e.ws);
        let mark = e.root.join("ran");
        let o = e.run_sh(&format!(
            "{}; rm -f .git/commondir && echo removed; git status --short >/dev/null && echo 'status ok'; \
             echo x > f && git add f && git commit -qm agent && echo committed",
            commondir_plant(&mark)
        ));
        assert!(!out(&o).contains("planted") && !out(&o).contains("removed"), "{who:?}: {}", show(&o));
        assert!(out(&o).contains("status ok") && out(&o).contains("committed"), "{who:?}: {}", show(&o));
        assert!(!exists(&e.ws.join(".git/commondir")), "{who:?}: commondir left behind: {}", show(&o));
        assert!(!exists(&e.ws.join(".git/config.worktree")), "{who:?}: config.worktree left: {}", show(&o));
        let st = e.bare_sh("git status --short; git log --format=%s -1");
        assert!(st.status.success() && out(&st).contains("agent"), "{who:?}: {}", show(&st));
        assert!(!exists(&mark), "{who:?}: the host's git ran the plant: {}", show(&o));
    }
}

/// A workspace that is a git worktree: its `.git` is a file. The session cannot remove or replace
/// it, nor make a repository of its own there; git inside works.
#[test]
fn a_worktrees_git_file_cannot_be_replaced_and_git_works_inside() {
    if !need_root() {
        return;
    }
    let plant = |mark: &Path| {
        format!(
            "rm -f .git && echo removed; mv .git gitfile && echo moved; rm -rf .git; \
             mkdir .git 2>/dev/null && echo 'made .git'; git init -q . 2>/dev/null; \
             printf '[core]\\n\\tfsmonitor = \"touch {}; false\"\\n' >> .git/config && echo planted; true",
            mark.display()
        )
    };
    for who in BOTH {
        for control in [true, false] {
            let e = Env::new(who);
            let main = e.root.join("main");
            std::fs::create_dir(&main).expect("mkdir main");
            std::fs::write(main.join("a"), "a\n").expect("write");
            if who == Who::Nobody {
                e.chown_all();
            }
            git_repo(&e, &main);
            // The workspace becomes a worktree of `main`.
            for f in ["README.md", ".env"] {
                std::fs::remove_file(e.ws.join(f)).expect("empty ws");
            }
            let o = e.bare_sh(&format!("cd {} && git worktree add -q {} ", main.display(), e.ws.display()));
            assert!(o.status.success(), "{}", show(&o));
            if who == Who::Nobody {
                e.chown_all();
            }
            assert!(e.ws.join(".git").is_file());
            let mark = e.root.join("ran");
            if control {
                let o = e.bare_sh(&plant(&mark));
                assert!(out(&o).contains("planted"), "control {who:?}: {}", show(&o));
                let _ = e.bare_sh("git status");
                assert!(exists(&mark), "control {who:?}: the host's git did not run the plant: {}", show(&o));
                continue;
            }
            let allow = main.display().to_string();
            let o = e.run_sh_with(
                &["--allow-write", &allow],
                &format!(
                    "{}; git status --short >/dev/null && echo 'status ok'; echo x > f && git add f && \
                     git commit -qm agent && echo committed",
                    plant(&mark)
                ),
                &[],
            );
            for bad in ["removed", "moved", "made .git", "planted"] {
                assert!(!out(&o).contains(bad), "{who:?}: {bad}: {}", show(&o));
            }
            assert!(out(&o).contains("status ok") && out(&o).contains("committed"), "{who:?}: {}", show(&o));
            assert!(e.ws.join(".git").is_file(), "{who:?}: {}", show(&o));
            let st = e.bare_sh("git status --short; git log --format=%s -1");
            assert!(st.status.success() && out(&st).contains("agent"), "{who:?}: {}", show(&st));
            assert!(!exists(&mark), "{who:?}: the host's git ran the plant: {}", show(&o));
        }
    }
}
