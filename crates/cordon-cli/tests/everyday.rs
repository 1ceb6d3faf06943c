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

/// A Python sdist and an npm tarball in the workspace, made without touching HOME's caches (the
/// sdist by setuptools, the tarball by tar, as npm packs one).
fn packages(e: &Env) {
    let o = e.bare_sh(
        "mkdir -p src/hello npm/package && echo 'X = 1' > src/hello/__init__.py \
         && printf 'from setuptools import setup\\nsetup(name=\"hello-cordon\", version=\"1.0\", packages=[\"hello\"])\\n' > src/setup.py \
         && (cd src && /usr/bin/python3 setup.py -q sdist -d .. 2>/dev/null) \
         && echo '{\"name\":\"hello-cordon\",\"version\":\"1.0.0\",\"main\":\"index.js\"}' > npm/package/package.json \
         && echo 'module.exports = 1' > npm/package/index.js && tar -C npm -czf hello-cordon-1.0.0.tgz package",
    );
    assert!(o.status.success(), "{}", show(&o));
    assert!(e.ws.join("hello-cordon-1.0.tar.gz").is_file() && e.ws.join("hello-cordon-1.0.0.tgz").is_file());
}

const PIP: &str =
    "/usr/bin/python3 -m pip install -v --no-index --no-build-isolation --target /tmp/t ./hello-cordon-1.0.tar.gz";
const NPM: &str = "W=$PWD && cd /tmp && npm install --offline --no-audit --no-fund $W/hello-cordon-1.0.0.tgz";

/// Under `build`, the caches it grants work on first use: a missing ~/.cache and ~/.npm are made
/// (0700, the user's) before the session, so pip stores the wheel it built and npm installs,
/// instead of pip silently running without a cache and npm failing. The default profile makes
/// nothing in HOME.
#[test]
fn the_build_profile_makes_the_caches_it_grants_before_the_session() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        packages(&e);
        let (cache, npm) = (e.home.join(".cache"), e.home.join(".npm"));
        let o = e.run_sh(&format!("{PIP} && {NPM}"));
        assert!(!exists(&cache) && !exists(&npm), "{who:?}: the default profile makes nothing {}", show(&o));

        let o = e.run_sh_with(&["--profile", "build"], &format!("{PIP} && {NPM}"), &[]);
        assert_eq!(o.status.code(), Some(0), "{who:?} {}", show(&o));
        let stored = format!("Stored in directory: {}", cache.join("pip/wheels").display());
        assert!(out(&o).contains(&stored), "{who:?}: pip kept the wheel it built {}", show(&o));
        assert!(out(&o).contains("added 1 package"), "{who:?} {}", show(&o));
        assert!(err(&o).contains("made ~/.cache and ~/.npm"), "{who:?}: the user is told {}", show(&o));
        for d in [&cache, &npm] {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let m = std::fs::metadata(d).expect("made");
            assert_eq!(m.permissions().mode() & 0o777, 0o700, "{who:?} {}", d.display());
            assert_eq!(m.uid(), if who == Who::Root { 0 } else { NOBODY }, "{who:?} {}", d.display());
        }
        let o = e.run_sh_with(&["--profile", "build"], "true", &[]);
        assert!(!err(&o).contains("made ~/"), "{who:?}: made once {}", show(&o));
    }
}

/// Under the default profile a package manager that needs its cache fails (npm: ENOENT/EROFS on
/// ~/.npm); the summary says which cache the policy keeps read-only and to use `--profile build`.
/// A session that names no package manager, or where it did not fail, gets no such hint.
#[test]
fn a_package_manager_without_its_cache_is_pointed_at_the_build_profile() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        packages(&e);
        let o = e.run_sh(NPM);
        assert_ne!(o.status.code(), Some(0), "{who:?}: npm needs ~/.npm {}", show(&o));
        let s = err(&o);
        assert!(s.contains("--profile build") && s.contains("~/.npm"), "{who:?}: {}", show(&o));
        assert!(!s.contains("nothing was refused"), "{who:?}: {}", show(&o));

        let o = e.run_sh("npm --version");
        assert_eq!(o.status.code(), Some(0), "{who:?} {}", show(&o));
        assert!(!err(&o).contains("--profile build"), "{who:?}: {}", show(&o));
        let o = e.run_sh("ls /nonexistent");
        assert!(!err(&o).contains("--profile build"), "{who:?}: {}", show(&o));
    }
}

/// A local bare remote next to the workspace (`git init --bare`), the workspace a clone-like repo
/// with it as `origin`; made without cordon, as the env's user. Returns the remote's path.
fn with_remote(e: &Env) -> std::path::PathBuf {
    let remote = e.root.join("remote.git");
    let o = e.bare_sh(&format!(
        "git init -q --bare {r} && git init -q && git remote add origin {r} \
         && git -c user.name=t -c user.email=t@example.org commit -q --allow-empty -m one",
        r = remote.display()
    ));
    assert!(o.status.success(), "{}", show(&o));
    remote
}

/// A hook that runs on the host at the next push to the remote: writes a mark beside it.
fn plant(remote: &std::path::Path, mark: &std::path::Path) -> String {
    format!(
        "printf '#!/bin/sh\\ntouch {m}\\n' > {r}/hooks/post-receive && chmod +x {r}/hooks/post-receive",
        m = mark.display(),
        r = remote.display()
    )
}

/// issue 17 #4: a bare repository the session may write (`--allow-write ../remote.git`, or
/// `[fs] write`) keeps its `hooks/` and `config` read-only: git runs the hooks on the host at the
/// user's next push, and the config can point git at programs. A push to it works; the plant is
/// refused and named with the reason and the flag that lifts it; `cordon policy explain` lists it.
#[test]
fn a_granted_bare_remote_keeps_its_hooks_and_config_read_only_while_pushes_work() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let remote = with_remote(&e);
        let mark = e.root.join("hook-ran");
        // The control: without cordon, a planted hook runs at the next push.
        let o = e.bare_sh(&format!("{} && git push -q origin HEAD:refs/heads/c", plant(&remote, &mark)));
        assert!(o.status.success() && exists(&mark), "{who:?}: control: {}", show(&o));
        std::fs::remove_file(remote.join("hooks/post-receive")).expect("rm hook");
        std::fs::remove_file(&mark).expect("rm mark");

        let r = remote.display().to_string();
        let o = e.run_sh_with(
            &["--allow-write", &r],
            &format!(
                "{}; echo plant=$?; git config -f {r}/config core.hooksPath /tmp; echo config=$?; \
                 git -c user.name=a -c user.email=a@example.org commit -q --allow-empty -m two \
                 && git push -q origin HEAD:refs/heads/main && echo pushed",
                plant(&remote, &mark)
            ),
            &[],
        );
        assert_eq!(o.status.code(), Some(0), "{who:?}: {}", show(&o));
        let text = out(&o);
        assert!(text.contains("plant=1") || text.contains("plant=2"), "{who:?}: the plant failed {}", show(&o));
        assert!(!text.contains("config=0"), "{who:?}: the config is read-only {}", show(&o));
        assert!(text.contains("pushed"), "{who:?}: {}", show(&o));
        assert!(!exists(&remote.join("hooks/post-receive")), "{who:?}: planted {}", show(&o));
        assert!(!std::fs::read_to_string(remote.join("config")).expect("config").contains("hooksPath"));
        let o2 = e.bare_sh(&format!("git --git-dir={r} log --format=%s main"));
        assert_eq!(out(&o2), "two\none\n", "{who:?}: the push landed {}", show(&o2));
        let s = err(&o);
        assert!(
            s.contains(&format!("{r}/hooks/post-receive is protected (a bare git repository the session can write"))
                && s.contains(&format!("--allow-write {r}/hooks")),
            "{who:?}: the refusal is named with its fix {}",
            show(&o)
        );

        // The policy surface: the same for a `[fs] write` grant, and explain shows it.
        let pol =
            e.write_policy("p.toml", &format!("version = 1\nextends = [\"builtin:agent\"]\n[fs]\nwrite = [\"{r}\"]\n"));
        let o = e.cordon(&["policy", "explain", pol.to_str().expect("utf-8")]);
        assert!(o.status.success(), "{who:?}: {}", show(&o));
        assert!(
            out(&o).contains(&format!("{r}/hooks (a bare git repository the session can write")),
            "{who:?}: explain lists it {}",
            show(&o)
        );
        assert!(out(&o).contains(&format!("{r}/config (")), "{who:?}: {}", show(&o));
        let o = e.run_sh_with(&["--policy", pol.to_str().expect("utf-8")], &plant(&remote, &mark), &[]);
        assert_ne!(o.status.code(), Some(0), "{who:?}: {}", show(&o));
        assert!(!exists(&remote.join("hooks/post-receive")), "{who:?}: planted {}", show(&o));
        assert!(err(&o).contains("is protected (a bare git repository"), "{who:?}: {}", show(&o));
        // Lifted for one run by name, and said so.
        let hooks = format!("{r}/hooks");
        let o = e.run_sh_with(&["--allow-write", &r, "--allow-write", &hooks], &plant(&remote, &mark), &[]);
        assert!(
            o.status.success() && exists(&remote.join("hooks/post-receive")),
            "{who:?}: lifted by name {}",
            show(&o)
        );
        assert!(
            err(&o).contains(&format!("--allow-write {hooks}: {hooks} is writable in this run")),
            "{who:?}: {}",
            show(&o)
        );
    }
}
