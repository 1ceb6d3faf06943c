//! End-to-end, an agent's everyday work (issue 17): the real `cordon run` with real git and real
//! package managers, as root and as nobody. A refusal on the way is named with its fix in the
//! summary, and what a profile grants works on first use.

mod common;
use common::*;

/// A workspace that is a git repository with one commit, made by the env's user.
fn repo(who: Who) -> Env {
    let e = Env::new(who);
    let o = e.bare_sh("git init -q && git -c user.name=t -c user.email=t@example.org commit -q --allow-empty -m one");
    assert!(o.status.success(), "{who:?} {}", show(&o));
    e
}

/// `git config user.email` fails inside with git's "Device or resource busy" (the rename of
/// config.lock onto the read-only bind of .git/config): the summary says that .git/config is
/// protected and how to set an identity instead. A git command that leaves the config alone gets
/// no such note.
#[test]
fn changing_the_git_config_is_explained_with_the_way_to_set_an_identity() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = repo(who);
        // The control: outside cordon the same command works.
        let o = e.bare_sh("git config user.email bare@example.org && git config --unset user.email");
        assert!(o.status.success(), "{who:?} {}", show(&o));

        let o = e.run_sh("git config user.email x@example.org");
        assert_ne!(o.status.code(), Some(0), "{who:?}: the config is read-only inside {}", show(&o));
        let s = err(&o);
        assert!(s.contains(".git/config is protected"), "{who:?}: {}", show(&o));
        assert!(
            s.contains("git -c user.name=NAME -c user.email=EMAIL") && s.contains("GIT_AUTHOR_EMAIL"),
            "{who:?}: {}",
            show(&o)
        );
        assert!(!s.contains("nothing was refused"), "{who:?}: {}", show(&o));
        assert!(!std::fs::read_to_string(e.ws.join(".git/config")).expect("config").contains("x@example.org"));

        // What the note says works inside.
        let o = e.run_sh("git -c user.name=a -c user.email=a@example.org commit -q --allow-empty -m two && GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.org GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.org git commit -q --allow-empty -m three && git log --format=%ae");
        assert_eq!(o.status.code(), Some(0), "{who:?} {}", show(&o));
        assert_eq!(out(&o), "b@example.org\na@example.org\nt@example.org\n", "{who:?}");
        assert!(
            !err(&o).contains(".git/config is protected"),
            "{who:?}: a commit does not touch the config {}",
            show(&o)
        );
    }
}
