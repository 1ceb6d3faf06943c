//! Devbox snapshots (issue 15, step 1): `cordon devbox build` with a real git repository made here,
//! setup commands run in real cordon sessions, the real store on disk.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A git repository with one commit (`app.py`, `Makefile`) on `main`, and a tag `v1`.
fn repo(e: &Env) -> PathBuf {
    let r = e.root.join("repo");
    std::fs::create_dir_all(&r).expect("mkdir repo");
    std::fs::write(r.join("app.py"), "print('hello')\n").expect("app.py");
    std::fs::write(r.join("Makefile"), "all:\n").expect("Makefile");
    git(&r, &["init", "--quiet", "--initial-branch=main"]);
    git(&r, &["add", "."]);
    git(&r, &["commit", "--quiet", "-m", "first"]);
    git(&r, &["tag", "v1"]);
    r
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", show(&o));
    out(&o).trim().to_string()
}

fn write_devbox(e: &Env, text: &str) -> PathBuf {
    let f = e.root.join("devbox.toml");
    std::fs::write(&f, text).expect("devbox.toml");
    f
}

fn build(e: &Env, file: &Path) -> Output {
    let store = e.root.join("store");
    e.cordon(&["devbox", "build", file.to_str().expect("utf-8"), "--store", store.to_str().expect("utf-8"), "--json"])
}

fn result(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "build failed: {}", show(o));
    serde_json::from_str(out(o).trim()).unwrap_or_else(|err| panic!("not JSON ({err}): {}", show(o)))
}

/// The names in the store's snapshots directory.
fn listing(e: &Env) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(e.root.join("store/snapshots"))
        .map(|rd| rd.flatten().map(|x| x.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn devbox_build_clones_at_the_commit_runs_setup_confined_and_rebuilds_only_what_changed() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let r = repo(&e);
    let commit = git(&r, &["rev-parse", "HEAD"]);
    // A later commit on main that the tag does not have: the snapshot holds the tag's tree.
    std::fs::write(r.join("later.txt"), "later\n").expect("later");
    git(&r, &["add", "."]);
    git(&r, &["commit", "--quiet", "-m", "second"]);
    let outside = e.root.join("outside-marker");
    let f = write_devbox(
        &e,
        &format!(
            "code = {{ repo = \"repo\", ref = \"v1\" }}\nsetup = [[\"sh\", \"-c\", \"echo deps > deps.txt; echo x > {} || true\"]]\nready = [\"test\", \"-f\", \"deps.txt\"]\n",
            outside.display()
        ),
    );
    let first = result(&build(&e, &f));
    assert_eq!(first["commit"], commit.as_str());
    assert_eq!(first["up_to_date"], false);
    let dir = PathBuf::from(first["dir"].as_str().expect("dir"));
    let hash = first["hash"].as_str().expect("hash").to_string();
    assert_eq!(dir, e.root.join("store/snapshots").join(&hash));
    assert_eq!(std::fs::read_to_string(dir.join("code/app.py")).expect("app.py"), "print('hello')\n");
    assert!(!dir.join("code/later.txt").exists(), "the snapshot holds the commit v1 names, not main's");
    // Setup ran in the code directory, inside a session: its write there landed, outside it did not.
    assert_eq!(std::fs::read_to_string(dir.join("code/deps.txt")).expect("deps.txt"), "deps\n");
    assert!(!outside.exists(), "a setup step wrote outside the code directory");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest")).expect("manifest json");
    assert_eq!((m["hash"].as_str(), m["commit"].as_str()), (Some(hash.as_str()), Some(commit.as_str())));
    assert_eq!(m["setup"][0]["argv"][0], "sh");
    // The setup session is in the audit log.
    let log = e.cordon(&["audit", "ls"]);
    assert!(log.status.success() && out(&log).contains("sh"), "{}", show(&log));
    assert_eq!(listing(&e), vec![hash.clone()], "nothing but the snapshot in the store");

    // Again, with only comments and layout changed: up to date, nothing run.
    let f = write_devbox(
        &e,
        &format!(
            "# the same devbox\ncode = {{repo=\"repo\",ref=\"v1\"}}\n\nsetup = [ [\"sh\", \"-c\", \"echo deps > deps.txt; echo x > {} || true\"] ]\nready = [\"test\", \"-f\", \"deps.txt\"]\n",
            outside.display()
        ),
    );
    let again = build(&e, &f);
    let j = result(&again);
    assert_eq!((j["hash"].as_str(), j["up_to_date"].as_bool()), (Some(hash.as_str()), Some(true)));
    let plain = e.cordon(&[
        "devbox",
        "build",
        f.to_str().expect("utf-8"),
        "--store",
        e.root.join("store").to_str().expect("utf-8"),
    ]);
    assert!(out(&plain).contains("is up to date"), "{}", show(&plain));

    // A changed setup names another snapshot; so does another ref.
    let f = write_devbox(
        &e,
        "code = { repo = \"repo\", ref = \"v1\" }\nsetup = [[\"sh\", \"-c\", \"echo other > deps.txt\"]]\n",
    );
    let other = result(&build(&e, &f));
    assert_ne!(other["hash"].as_str(), Some(hash.as_str()));
    let f = write_devbox(
        &e,
        "code = { repo = \"repo\", ref = \"main\" }\nsetup = [[\"sh\", \"-c\", \"echo other > deps.txt\"]]\n",
    );
    let main = result(&build(&e, &f));
    assert_ne!(main["hash"], other["hash"]);
    assert!(PathBuf::from(main["dir"].as_str().expect("dir")).join("code/later.txt").is_file());
    assert_eq!(listing(&e).len(), 3, "{:?}", listing(&e));
}

#[test]
fn devbox_build_that_fails_names_the_step_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    repo(&e);
    // The second of two steps fails after the first wrote into the code directory.
    let f = write_devbox(
        &e,
        "code = { repo = \"repo\", ref = \"main\" }\nsetup = [[\"sh\", \"-c\", \"echo one > one.txt\"], [\"sh\", \"-c\", \"echo broken-dependency >&2; exit 3\"]]\n",
    );
    let o = build(&e, &f);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let msg = err(&o);
    assert!(
        msg.contains("setup step 2 of 2 (`sh -c echo broken-dependency >&2; exit 3`) failed: exit status 3"),
        "{msg}"
    );
    assert!(msg.contains("nothing was kept") && msg.contains("broken-dependency"), "{msg}");
    assert_eq!(listing(&e), Vec::<String>::new(), "a failed build left something");

    // A command that does not exist: its session says so.
    let f = write_devbox(&e, "code = { repo = \"repo\", ref = \"main\" }\nsetup = [[\"/nonexistent/tool\"]]\n");
    let o = build(&e, &f);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("setup step 1 of 1 (`/nonexistent/tool`) failed"), "{}", show(&o));
    assert_eq!(listing(&e), Vec::<String>::new());

    // A ref that does not exist, a repository that does not: named, nothing made.
    let f = write_devbox(&e, "code = { repo = \"repo\", ref = \"no-such-branch\" }\n");
    let o = build(&e, &f);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("code.ref: the ref `no-such-branch` does not exist in"), "{}", show(&o));
    let f = write_devbox(&e, "code = { repo = \"missing\", ref = \"main\" }\n");
    let o = build(&e, &f);
    assert!(err(&o).contains("code.repo:") && err(&o).contains("missing is not a directory"), "{}", show(&o));
    std::fs::create_dir_all(e.root.join("plain")).expect("mkdir");
    let f = write_devbox(&e, "code = { repo = \"plain\", ref = \"main\" }\n");
    let o = build(&e, &f);
    assert!(err(&o).contains("is not a git repository"), "{}", show(&o));
    assert_eq!(listing(&e), Vec::<String>::new());
}

#[test]
fn devbox_file_errors_are_positioned_and_nothing_is_built() {
    // No root needed: the file is refused before anything runs.
    let e = Env::new(Who::Root);
    let f = write_devbox(&e, "code = { repo = \"repo\", ref = \"main\" }\nbase = \"/srv/rootfs\"\nsetpu = []\n");
    let o = build(&e, &f);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("devbox.toml:3:1: error: unknown field `setpu`"), "{}", show(&o));
    let f = write_devbox(&e, "code = { repo = \"repo\", ref = \"main\" }\nbase = \"/srv/rootfs\"\n");
    let o = build(&e, &f);
    assert!(
        err(&o).contains("devbox.toml:2:8: error in `base`: base `/srv/rootfs` is not supported yet"),
        "{}",
        show(&o)
    );
    assert!(!e.root.join("store").exists());
}

#[test]
fn devbox_build_progress_off_a_terminal_is_plain_lines() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    repo(&e);
    let f = write_devbox(&e, "code = { repo = \"repo\", ref = \"v1\" }\nsetup = [[\"true\"]]\n");
    // stderr is a pipe here: one plain line per step, no carriage return, no escape sequence.
    let o = build(&e, &f);
    result(&o);
    let text = err(&o);
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    let want = ["code at ", "cloning the code", "setup 1/1: true", "setup 1/1 done in ", "snapshot ready: "];
    assert_eq!(lines.len(), want.len(), "{text}");
    for (l, w) in lines.iter().zip(want) {
        assert!(l.starts_with(&format!("cordon: devbox: {w}")), "{l:?} (wanted {w:?}): {text}");
    }
}
