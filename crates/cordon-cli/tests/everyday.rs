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

/// The workspace of the everyday tasks (bench/everyday.sh runs the same): a git repository with a
/// local bare remote as origin, a Python package and its test, an npm tarball and, as root, a new
/// cargo crate (the toolchain is root's: ~/.rustup is linked to it, as a user's own HOME has it).
/// Returns the remote and the PATH to run with.
fn everyday(e: &Env) -> (std::path::PathBuf, String) {
    let remote = with_remote(e);
    packages(e);
    let o = e.bare_sh(
        "mkdir -p tests && touch tests/__init__.py \
         && printf 'import unittest, hello\\nclass T(unittest.TestCase):\\n    def test_x(self):\\n        self.assertEqual(hello.X, 1)\\n' > tests/test_hello.py \
         && echo '{\"name\":\"ws\",\"version\":\"1.0.0\",\"private\":true}' > package.json",
    );
    assert!(o.status.success(), "{}", show(&o));
    let mut path = "/usr/local/bin:/usr/bin:/bin".to_string();
    if e.who == Who::Root {
        std::os::unix::fs::symlink("/root/.rustup", e.home.join(".rustup")).expect("link the toolchain");
        let tc = std::fs::read_dir("/root/.rustup/toolchains")
            .expect("rustup toolchains")
            .flatten()
            .map(|d| d.path().join("bin"))
            .find(|b| b.join("cargo").is_file())
            .expect("a toolchain with cargo");
        let o = std::process::Command::new(tc.join("cargo"))
            .args(["new", "-q", "--vcs", "none", "tiny"])
            .current_dir(&e.ws)
            .env("HOME", &e.home)
            .output()
            .expect("cargo new");
        assert!(o.status.success(), "{}", show(&o));
        path = format!("{}:{path}", tc.display());
    }
    (remote, path)
}

const VENV: &str = "/usr/bin/python3 -m venv .venv && .venv/bin/pip install -q --no-index --no-build-isolation ./src \
                    && .venv/bin/python -m unittest -q";
const SERVER: &str = "python3 -m http.server 18766 --bind 127.0.0.1 >/dev/null 2>&1 & s=$!; i=0; \
                      until curl -sf http://127.0.0.1:18766/README.md; do i=$((i+1)); [ $i -lt 250 ] || exit 1; sleep 0.02; done; kill $s";

/// issue 17 "Measure": an agent's everyday tasks end to end, as root and nobody. Each succeeds with
/// the flags the README documents for it (none for a shell command or a dev server on loopback,
/// `--allow-write REMOTE` for a push to a local remote, `--profile build` for pip, cargo and npm),
/// and each refusal met on the way without them is named in cordon's own output with that fix.
#[test]
fn everyday_tasks_succeed_with_the_documented_flags_and_each_refusal_names_its_fix() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let (remote, path) = everyday(&e);
        if who == Who::Nobody {
            e.chown_all();
        }
        let r = remote.display().to_string();
        // cargo test sets CARGO_HOME for its tests: the session's is the fake HOME's, as a user's is.
        let cargo_home = e.home.join(".cargo").display().to_string();
        let env = [("PATH", path.as_str()), ("npm_config_update_notifier", "false"), ("CARGO_HOME", &cargo_home)];
        let run = |flags: &[&str], script: &str| e.run_sh_with(flags, script, &env);

        // A shell command: nothing to grant, and cordon says it was there.
        let o = run(&[], "ls -la >/dev/null && grep -rl hello --exclude=.env . | wc -l");
        assert_eq!(o.status.code(), Some(0), "{who:?} shell: {}", show(&o));
        assert!(err(&o).contains("nothing was refused"), "{who:?} shell: {}", show(&o));

        // git: the push to a remote outside the workspace is refused and named with its flag.
        let commit = "git -c user.name=a -c user.email=a@example.org commit -q --allow-empty -m two";
        let push = format!("{commit} && git push -q origin HEAD:refs/heads/main");
        let o = run(&[], &push);
        assert_ne!(o.status.code(), Some(0), "{who:?} git: {}", show(&o));
        assert!(err(&o).contains(&format!("--allow-write {r}")), "{who:?} git: the fix is named {}", show(&o));
        let o = run(&["--allow-write", &r], &push);
        assert_eq!(o.status.code(), Some(0), "{who:?} git: {}", show(&o));

        // Python: a venv, pip from a local directory, the tests. pip runs without its cache when
        // it cannot write it (it checks, and says nothing): no refusal. The venv's CA bundle
        // (pip/_vendor/certifi/cacert.pem) matches fs.hide `*.pem` but is made in the session, so
        // it is not masked and the write is no refusal either (it was named as one).
        let o = run(&[], VENV);
        assert_eq!(o.status.code(), Some(0), "{who:?} python: {}", show(&o));
        assert!(!err(&o).contains("fs.hide"), "{who:?} python: a write that worked named as refused {}", show(&o));
        assert!(e.ws.join(".venv/lib/python3.11/site-packages/pip/_vendor/certifi/cacert.pem").is_file());
        let o = run(&["--profile", "build"], &format!("rm -rf .venv && {VENV}"));
        assert_eq!(o.status.code(), Some(0), "{who:?} python: {}", show(&o));
        assert!(!err(&o).contains("denied"), "{who:?} python: {}", show(&o));

        // npm: fails without its cache, names `--profile build`; works with it.
        let npm = "npm install --offline --no-audit --no-fund ./hello-cordon-1.0.0.tgz";
        let o = run(&[], npm);
        assert_ne!(o.status.code(), Some(0), "{who:?} npm: {}", show(&o));
        assert!(err(&o).contains("--profile build") && err(&o).contains("~/.npm"), "{who:?} npm: {}", show(&o));
        let o = run(&["--profile", "build"], npm);
        assert_eq!(o.status.code(), Some(0), "{who:?} npm: {}", show(&o));

        // cargo: builds, but its package-cache lock under ~/.cargo is refused and named.
        if who == Who::Root {
            let o = run(&[], "cd tiny && cargo build -q --offline");
            assert_eq!(o.status.code(), Some(0), "{who:?} cargo: {}", show(&o));
            assert!(
                err(&o).contains(".cargo/.package-cache") && err(&o).contains("--profile build"),
                "{who:?} cargo: {}",
                show(&o)
            );
            let o = run(&["--profile", "build"], "cd tiny && cargo build -q --offline");
            assert_eq!(o.status.code(), Some(0), "{who:?} cargo: {}", show(&o));
            assert!(!err(&o).contains("denied"), "{who:?} cargo: {}", show(&o));
        } else {
            record_skip("everyday cargo as nobody", "the only Rust toolchain here is root's (/root is 0700)");
        }

        // A dev server on the session's loopback, reached from inside.
        let o = run(&[], SERVER);
        assert_eq!(o.status.code(), Some(0), "{who:?} server: {}", show(&o));
        assert_eq!(out(&o), "hello\n", "{who:?} server: {}", show(&o));
    }
}
