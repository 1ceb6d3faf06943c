//! End-to-end (issue 17 #1): refusals are named with their fix in the summary without the sensor,
//! as root and as nobody, with the real `cordon run`, real git, python and curl: a push to a
//! repository outside the session's view (ENOENT), a write into a read-only grant (EROFS) or a
//! cache outside the view, a connection the session may not make. Each fix the summary gives works.

mod common;
use common::*;

/// A workspace that is a git repository with one commit, and a bare repository outside it
/// (`ROOT/remote.git`, known to the workspace as `origin`), made by the env's user.
fn repo_and_remote(who: Who) -> (Env, String) {
    let e = Env::new(who);
    let remote = e.root.join("remote.git").display().to_string();
    let o = e.bare_sh(&format!(
        "git init -q && git -c user.name=t -c user.email=t@example.org commit -q --allow-empty -m one \
         && git init -q --bare {remote} && git remote add origin {remote}"
    ));
    assert!(o.status.success(), "{who:?} {}", show(&o));
    (e, remote)
}

/// git says "does not appear to be a git repository"; the summary says that the session cannot
/// see the repository and which flag lets it push there, whether the command names the path or
/// the remote. With that flag the push works, and no such hint is printed.
#[test]
fn a_push_to_a_repository_outside_the_session_is_named_with_its_fix() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let (e, remote) = repo_and_remote(who);
        let fix = format!("--allow-write {remote}");
        for script in
            [format!("git push -q {remote} HEAD:refs/heads/main"), "git push -q origin HEAD:refs/heads/main".into()]
        {
            let o = e.run_sh(&script);
            assert_ne!(o.status.code(), Some(0), "{who:?} {script}: {}", show(&o));
            let s = err(&o);
            assert!(s.contains("does not appear to be a git repository"), "{who:?} {script}: {}", show(&o));
            assert!(s.contains(&fix), "{who:?} {script}: the fix is named {}", show(&o));
            assert!(!s.contains("nothing was refused"), "{who:?} {script}: {}", show(&o));
        }
        let o = e.run_sh_with(&["--allow-write", &remote], "git push -q origin HEAD:refs/heads/main", &[]);
        assert_eq!(o.status.code(), Some(0), "{who:?}: the fix works {}", show(&o));
        assert!(!err(&o).contains("--allow-write"), "{who:?}: {}", show(&o));
        let o = e.bare_sh(&format!("git --git-dir={remote} rev-parse --verify -q refs/heads/main"));
        assert!(o.status.success(), "{who:?}: pushed {}", show(&o));
    }
}

/// Writes the command line does not name (the path is put together at run time): into a tree
/// granted read-only (EROFS), and into a package manager's cache outside the view (ENOENT). The
/// summary names the path, the rule and the fix; a write the policy allows is not named; with the
/// fix the write works.
#[test]
fn a_write_the_policy_refuses_is_named_with_its_fix() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let ro = e.root.join("ro");
        std::fs::create_dir_all(&ro).expect("mkdir ro");
        std::fs::create_dir_all(e.home.join(".cache/pip")).expect("mkdir pip cache");
        if who == Who::Nobody {
            e.chown_all();
        }
        let ro_s = ro.display().to_string();
        let (head, tail) = ro_s.split_at(ro_s.len() - 1);
        let py = format!("open('{head}' + '{tail}/new', 'w').write('x')");
        let o = e.cordon_args(&["--allow-read", &ro_s], &["/usr/bin/python3", "-c", &py]);
        assert_ne!(o.status.code(), Some(0), "{who:?}: read-only {}", show(&o));
        let s = err(&o);
        assert!(s.contains("Read-only file system"), "{who:?}: {}", show(&o));
        assert!(s.contains(&format!("{ro_s}/new")), "{who:?}: the path is named {}", show(&o));
        assert!(s.contains(&format!("--allow-write {ro_s}")), "{who:?}: the fix is named {}", show(&o));
        assert!(!s.contains("nothing was refused"), "{who:?}: {}", show(&o));

        let o = e.cordon_args(&["--allow-write", &ro_s], &["/usr/bin/python3", "-c", &py]);
        assert_eq!(o.status.code(), Some(0), "{who:?}: the fix works {}", show(&o));
        assert!(!err(&o).contains("--allow-write"), "{who:?}: {}", show(&o));
        assert_eq!(std::fs::read_to_string(ro.join("new")).expect("written"), "x");

        let py = "import os; open(os.path.expanduser('~/.cache/p' + 'ip/selfcheck.json'), 'w')";
        let o = e.cordon_args(&[], &["/usr/bin/python3", "-c", py]);
        assert_ne!(o.status.code(), Some(0), "{who:?}: the cache is outside the view {}", show(&o));
        let s = err(&o);
        assert!(s.contains(&e.home.join(".cache/pip/selfcheck.json").display().to_string()), "{who:?}: {}", show(&o));
        assert!(s.contains("--profile build"), "{who:?}: the fix is named {}", show(&o));

        let o = e.cordon_args(&[], &["/usr/bin/python3", "-c", "open('ok.txt', 'w').write('x'); open('/tmp/t', 'w')"]);
        assert_eq!(o.status.code(), Some(0), "{who:?} {}", show(&o));
        assert!(err(&o).contains("nothing was refused"), "{who:?}: allowed writes are not named {}", show(&o));
    }
}

/// Without --allow-net the session has no network: a connection to an address the command line
/// does not name is named with `--allow-net`, and so is a host named in a URL (its lookup fails
/// first). Through the proxy, a host not on the allowlist is named with its `--allow-net`.
#[test]
fn a_connection_the_session_may_not_make_is_named_with_its_fix() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let py = "import socket; s = socket.socket(); s.settimeout(3); s.connect(('192.0.2.' + '7', 8443))";
        let o = e.cordon_args(&[], &["/usr/bin/python3", "-c", py]);
        assert_ne!(o.status.code(), Some(0), "{who:?} {}", show(&o));
        let s = err(&o);
        assert!(s.contains("192.0.2.7:8443") && s.contains("--allow-net 192.0.2.7:8443"), "{who:?}: {}", show(&o));

        let o = e.cordon_args(&[], &["curl", "-sS", "-m", "3", "https://example.com/x"]);
        assert_ne!(o.status.code(), Some(0), "{who:?} {}", show(&o));
        assert!(err(&o).contains("--allow-net example.com:443"), "{who:?}: {}", show(&o));

        let o = e.cordon_args(&["--allow-net", "example.org"], &["curl", "-sS", "-m", "3", "https://example.com/x"]);
        assert_ne!(o.status.code(), Some(0), "{who:?} {}", show(&o));
        assert!(err(&o).contains("--allow-net example.com:443"), "{who:?}: {}", show(&o));
    }
}

trait Args {
    /// `cordon run [--allow-degraded for nobody] EXTRA -- ARGV`.
    fn cordon_args(&self, extra: &[&str], argv: &[&str]) -> std::process::Output;
}

impl Args for Env {
    fn cordon_args(&self, extra: &[&str], argv: &[&str]) -> std::process::Output {
        let mut args = vec!["run"];
        if self.who == Who::Nobody {
            args.push("--allow-degraded");
        }
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(argv);
        self.cordon(&args)
    }
}

/// issue 17, the write watch as policy: `[fs] watch_writes = false` turns it off (a write-heavy
/// session spares the supervisor's round trip per write), `cordon policy explain` says which, and
/// the default is unchanged (on). Off, a refused write is still refused, only not named.
#[test]
fn the_write_watch_is_a_policy_switch_shown_by_explain() {
    if !need_root() {
        return;
    }
    for who in BOTH {
        let e = Env::new(who);
        let script = "d=/et; echo x > ${d}c/cordon-watch-switch; echo exit=$?";
        let off =
            e.write_policy("off.toml", "version = 1\nextends = [\"builtin:agent\"]\n[fs]\nwatch_writes = false\n");
        let off = off.to_str().expect("utf-8");
        // The default: named.
        let o = e.run_sh(script);
        assert!(out(&o).contains("exit=") && !out(&o).contains("exit=0"), "{who:?}: {}", show(&o));
        assert!(err(&o).contains("write under /etc"), "{who:?}: named by default {}", show(&o));
        // Off: refused all the same, not named.
        let o = e.run_sh_with(&["--policy", off], script, &[]);
        assert!(out(&o).contains("exit=") && !out(&o).contains("exit=0"), "{who:?}: {}", show(&o));
        assert!(!err(&o).contains("write under /etc"), "{who:?}: not watched {}", show(&o));
        assert!(!exists(std::path::Path::new("/etc/cordon-watch-switch")));
        // Explain says which.
        let o = e.cordon(&["policy", "explain", off]);
        assert!(out(&o).contains("watch_writes = false"), "{who:?}: {}", show(&o));
        let o = e.cordon(&["policy", "explain", "builtin:agent"]);
        assert!(out(&o).contains("refused writes are named"), "{who:?}: {}", show(&o));
        // A value that is not a boolean is a positioned error.
        let bad = e.write_policy("bad.toml", "version = 1\n[fs]\nwatch_writes = \"no\"\n");
        let o = e.cordon(&["policy", "check", bad.to_str().expect("utf-8")]);
        assert!(
            !o.status.success() && err(&o).contains("bad.toml:3:16: error in `fs.watch_writes`"),
            "{who:?}: {}",
            show(&o)
        );
    }
}
