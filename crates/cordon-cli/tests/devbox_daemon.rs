//! The devbox daemon (issue 15, step 1): the real `cordon daemon` over its socket, real pooled
//! environments (overlay roots over a snapshot built here), claims restricted at claim, exec
//! through the devbox's exec server, rm and SIGTERM leaving nothing: no directory, cgroup, mount or
//! process. Needs root.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A running `cordon daemon --foreground`, its log in a file; SIGTERM and waited for on drop.
struct Daemon {
    child: Option<Child>,
    sock: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(e: &Env, allow: &[&str]) -> Daemon {
        Daemon::start_with(e, allow, &[])
    }

    /// With more of the daemon's flags (`extra`).
    fn start_with(e: &Env, allow: &[&str], extra: &[&str]) -> Daemon {
        let (sock, store, log) = (e.root.join("d.sock"), e.root.join("store"), e.root.join("daemon.log"));
        let mut c = Command::new(env!("CARGO_BIN_EXE_cordon"));
        c.args(["daemon", "--foreground", "--socket"]).arg(&sock).arg("--store").arg(&store);
        for a in allow {
            c.args(["--allow-uid", a]);
        }
        // Each test's own log (unless it names one).
        if !extra.contains(&"--audit") {
            c.arg("--audit").arg(e.root.join("audit.db"));
        }
        c.args(extra);
        let f = std::fs::File::create(&log).expect("log");
        let child = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(f).spawn().expect("cordon daemon");
        let up = wait_for(Duration::from_secs(10), || sock.exists().then_some(()));
        assert!(up.is_some(), "the daemon did not listen: {}", std::fs::read_to_string(&log).unwrap_or_default());
        Daemon { child: Some(child), sock, log }
    }

    fn cordon(&self, e: &Env, args: &[&str]) -> Output {
        let mut a: Vec<&str> = args.to_vec();
        let sock = self.sock.to_str().expect("utf-8");
        // The socket flag goes after the verb's operands but before a command's `--`.
        let at = a.iter().position(|x| *x == "--").unwrap_or(a.len());
        a.splice(at..at, ["--socket", sock]);
        e.cordon(&a)
    }

    fn claim(&self, e: &Env, snap: &str, extra: &[&str]) -> serde_json::Value {
        let mut a = vec!["devbox", "claim", snap, "--json"];
        a.extend_from_slice(extra);
        let o = self.cordon(e, &a);
        assert!(o.status.success(), "claim: {}", show(&o));
        let v: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("json");
        v["claimed"].clone()
    }

    /// `claim --json` with these variables in the client's environment (for `--secret NAME`).
    fn claim_env(&self, e: &Env, snap: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let sock = self.sock.to_str().expect("utf-8");
        let mut a = vec!["devbox", "claim", snap, "--json", "--socket", sock];
        a.extend_from_slice(extra);
        e.cordon_env(&a, env)
    }

    fn exec(&self, e: &Env, id: &str, script: &str) -> Output {
        self.cordon(e, &["devbox", "exec", id, "--", "/bin/sh", "-c", script])
    }

    /// SIGTERM, and the exit waited for.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let done = wait_for(Duration::from_secs(20), || c.try_wait().ok().flatten());
        if done.is_none() {
            let _ = c.kill();
        }
        Some(c.wait().expect("wait"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `cordon devbox ls --json`'s answer: `items` (devboxes) and `pools` (their sizes).
fn ls_json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "ls: {}", show(o));
    serde_json::from_str(out(o).trim()).expect("ls json")
}

fn git(dir: &Path, args: &[&str]) {
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
}

/// A snapshot built from a repository made here (`app.py`), with `ready` as its probe: its hash.
fn snapshot(e: &Env, name: &str, ready: &str) -> String {
    let r = e.root.join("repo");
    if !r.exists() {
        std::fs::create_dir_all(&r).expect("mkdir repo");
        std::fs::write(r.join("app.py"), "print('hello')\n").expect("app.py");
        git(&r, &["init", "--quiet", "--initial-branch=main"]);
        git(&r, &["add", "."]);
        git(&r, &["commit", "--quiet", "-m", "first"]);
    }
    let f = e.root.join(name);
    std::fs::write(&f, format!("code = {{ repo = \"repo\", ref = \"main\" }}\nready = {ready}\n"))
        .expect("devbox.toml");
    let store = e.root.join("store");
    let o =
        e.cordon(&["devbox", "build", f.to_str().expect("utf-8"), "--store", store.to_str().expect("utf-8"), "--json"]);
    assert!(o.status.success(), "build: {}", show(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("json");
    v["hash"].as_str().expect("hash").to_string()
}

/// Directories named `devbox-ID` under the cgroup trees (v1 controllers and v2).
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    let o = Command::new("find")
        .args(["/sys/fs/cgroup", "-maxdepth", "8", "-type", "d", "-name"])
        .arg(format!("devbox-{id}"))
        .output()
        .expect("find");
    out(&o).lines().map(PathBuf::from).collect()
}

fn mounts_naming(what: &str) -> usize {
    let table = std::fs::read_to_string("/proc/1/mountinfo").expect("mountinfo");
    table.lines().filter(|l| l.contains(what)).count()
}

fn gone(pid: i64) -> bool {
    wait_for(Duration::from_secs(5), || {
        (nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err()).then_some(())
    })
    .is_some()
}

#[test]
fn devbox_claims_from_one_pool_write_their_own_upper_and_rm_and_sigterm_leave_nothing() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"test\", \"-f\", \"app.py\"]");
    let mut d = Daemon::start(&e, &[]);
    let o = d.cordon(&e, &["devbox", "pool", &snap, "--size", "2"]);
    assert!(o.status.success() && out(&o).contains("2 devbox(es) ready"), "{}", show(&o));
    let a = d.claim(&e, &snap, &[]);
    let b = d.claim(&e, &snap, &[]);
    assert_eq!((a["from_pool"].as_bool(), b["from_pool"].as_bool()), (Some(true), Some(true)));
    let (ia, ib) = (a["id"].as_str().expect("id"), b["id"].as_str().expect("id"));
    let code = e.root.join("store/snapshots").join(&snap).join("code");
    assert_eq!(PathBuf::from(a["workspace"].as_str().expect("ws")), code);

    // The snapshot's code is there; a command's status and output come back.
    let o = d.cordon(&e, &["devbox", "exec", ia, "--", "cat", "app.py"]);
    assert_eq!((o.status.code(), out(&o).as_str()), (Some(0), "print('hello')\n"), "{}", show(&o));
    let o = d.exec(&e, ia, "echo to-stderr >&2; exit 3");
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(err(&o).contains("to-stderr"));

    // A's write lands in A's upper only; B does not see it, nor A B's.
    let o = d.exec(&e, ia, "echo from-a > new.txt && echo changed > app.py");
    assert!(o.status.success(), "{}", show(&o));
    let upper = |id: &str| e.root.join("store/devboxes").join(id).join("upper");
    assert_eq!(std::fs::read_to_string(upper(ia).join("new.txt")).expect("in A's upper"), "from-a\n");
    assert!(!code.join("new.txt").exists(), "a write reached the snapshot");
    assert_eq!(std::fs::read_to_string(code.join("app.py")).expect("snapshot"), "print('hello')\n");
    let o = d.exec(&e, ib, "test ! -e new.txt && cat app.py && echo from-b > b.txt");
    assert_eq!((o.status.code(), out(&o).as_str()), (Some(0), "print('hello')\n"), "B saw A's writes: {}", show(&o));
    let o = d.exec(&e, ia, "test ! -e b.txt");
    assert!(o.status.success(), "A saw B's write: {}", show(&o));
    // Neither reaches the other's upper layer, nor the daemon's socket.
    let o = d.exec(&e, ib, &format!("ls {} ; ls {}", upper(ia).display(), d.sock.display()));
    assert_ne!(o.status.code(), Some(0), "B reached A's upper or the socket: {}", show(&o));

    // rm: A's processes, cgroup, mount and directory go.
    let o = d.cordon(&e, &["devbox", "ls", "--json"]);
    let items = ls_json(&o)["items"].clone();
    let pid_of = |id: &str| {
        items.as_array().expect("list").iter().find(|i| i["id"] == id).expect("listed")["pid"].as_i64().expect("pid")
    };
    let (pa, pb) = (pid_of(ia), pid_of(ib));
    assert!(!cgroups_of(ia).is_empty(), "a claimed devbox has a cgroup");
    let o = d.cordon(&e, &["devbox", "rm", ia]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(gone(pa), "A's init is still there");
    assert!(!e.root.join("store/devboxes").join(ia).exists(), "A's directory is left");
    assert_eq!(cgroups_of(ia), Vec::<PathBuf>::new(), "A's cgroup is left");
    assert_eq!(mounts_naming(ia), 0);
    let o = d.cordon(&e, &["devbox", "exec", ia, "--", "true"]);
    assert!(err(&o).contains(&format!("no claimed devbox `{ia}`")), "{}", show(&o));

    // SIGTERM: every devbox (B, and the pool's refills) goes, then the daemon.
    let st = d.stop().expect("stopped");
    assert!(st.success(), "{st}");
    assert!(gone(pb), "B's init is still there");
    assert_eq!(std::fs::read_dir(e.root.join("store/devboxes")).expect("devboxes").count(), 0, "devboxes left");
    assert_eq!(cgroups_of(ib), Vec::<PathBuf>::new(), "B's cgroup is left");
    assert_eq!(mounts_naming(&e.root.to_string_lossy()), 0, "a mount under the test's directory is left");
    assert!(!d.sock.exists(), "the socket is left");
    assert!(std::fs::read_to_string(&d.log).expect("log").contains("every devbox removed"));
}

#[test]
fn devbox_claims_are_refused_when_looser_than_the_snapshot_not_ready_or_from_a_user_not_allowed() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"test\", \"-f\", \"app.py\"]");
    let never = snapshot(&e, "never.toml", "[\"test\", \"-f\", \"no-such-file\"]");
    let d = Daemon::start(&e, &[]);
    // A policy that adds a write grant: refused, the grant named; nothing claimed.
    let wider = e.write_policy(
        "wider.toml",
        &format!(
            "version = 1\nextends = [\"builtin:agent\"]\n[fs]\nwrite = [\"{}\"]\n",
            e.root.join("elsewhere").display()
        ),
    );
    std::fs::create_dir_all(e.root.join("elsewhere")).expect("mkdir");
    let o = d.cordon(&e, &["devbox", "claim", &snap, "--policy", wider.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let msg = err(&o);
    assert!(msg.contains("is looser than the snapshot's (builtin:agent): it adds fs: read+write of"), "{msg}");
    assert!(msg.contains(&e.root.join("elsewhere").display().to_string()), "{msg}");
    // A tighter one is taken, and holds: the workspace is read-only under builtin:readonly.
    let c = d.claim(&e, &snap, &["--policy", "builtin:readonly"]);
    let o = d.exec(&e, c["id"].as_str().expect("id"), "cat app.py && ! (echo x > new.txt) 2>/dev/null");
    assert!(o.status.success(), "readonly claim: {}", show(&o));
    // A probe that never passes: the claim fails, the devbox is removed.
    let o = d.cordon(&e, &["devbox", "claim", &never]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("the ready probe `test -f no-such-file` failed (exit status 1)"), "{}", show(&o));
    let o = d.cordon(&e, &["devbox", "ls", "--json"]);
    let items = ls_json(&o)["items"].clone();
    assert_eq!(items.as_array().expect("list").len(), 1, "only the readonly claim: {items}");
    assert_eq!(std::fs::read_dir(e.root.join("store/devboxes")).expect("devboxes").count(), 1);

    // nobody is not in --allow-uid: refused, and the refusal logged.
    let nobody = Env::new(Who::Nobody);
    let mut c = nobody.command(env!("CARGO_BIN_EXE_cordon"));
    let o = c.args(["devbox", "ls", "--socket"]).arg(&d.sock).output().expect("as nobody");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("uid 65534 may not use this daemon"), "{}", show(&o));
    let log = std::fs::read_to_string(&d.log).expect("log");
    assert!(log.contains("refused a connection from uid 65534"), "{log}");
}

#[test]
fn devbox_daemon_allows_a_user_it_is_told_to() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let d = Daemon::start(&e, &[&NOBODY.to_string()]);
    let nobody = Env::new(Who::Nobody);
    let mut c = nobody.command(env!("CARGO_BIN_EXE_cordon"));
    let o = c.args(["devbox", "ls", "--socket"]).arg(&d.sock).output().expect("as nobody");
    assert!(o.status.success(), "{}", show(&o));
    // An allowed user may not have the (root) daemon read a policy file for it.
    let snap = snapshot(&e, "devbox.toml", "[\"test\", \"-f\", \"app.py\"]");
    let mut c = nobody.command(env!("CARGO_BIN_EXE_cordon"));
    let o = c
        .args(["devbox", "claim", &snap, "--policy", "/etc/shadow", "--socket"])
        .arg(&d.sock)
        .output()
        .expect("as nobody");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    // The client reads the file itself, as nobody: the daemon never opens it.
    assert!(err(&o).contains("/etc/shadow") && err(&o).contains("Permission denied"), "{}", show(&o));
}

/// `--max-claims-per-uid`: a user the daemon serves holds at most N devboxes; the next claim is
/// refused naming the bound, one removed frees a place, and root is not bounded.
#[test]
fn devbox_daemon_bounds_the_devboxes_one_user_holds() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let d = Daemon::start_with(&e, &[&NOBODY.to_string()], &["--max-claims-per-uid", "1"]);
    let snap = snapshot(&e, "devbox.toml", "[\"true\"]");
    let nobody = Env::new(Who::Nobody);
    let as_nobody = |args: &[&str]| {
        let mut c = nobody.command(env!("CARGO_BIN_EXE_cordon"));
        c.args(args).arg("--socket").arg(&d.sock).output().expect("as nobody")
    };
    let o = as_nobody(&["devbox", "claim", &snap, "--json"]);
    assert!(o.status.success(), "the first claim: {}", show(&o));
    let id = serde_json::from_str::<serde_json::Value>(out(&o).trim()).expect("json")["claimed"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let o = as_nobody(&["devbox", "claim", &snap, "--json"]);
    assert!(!o.status.success(), "a second claim was served: {}", show(&o));
    assert!(err(&o).contains("at most 1 per user") && err(&o).contains("--max-claims-per-uid"), "{}", show(&o));
    // Root is not bounded.
    let mine = d.claim(&e, &snap, &[]);
    assert!(as_nobody(&["devbox", "rm", &id]).status.success());
    let o = as_nobody(&["devbox", "claim", &snap, "--json"]);
    assert!(o.status.success(), "a claim after the rm: {}", show(&o));
    let again = serde_json::from_str::<serde_json::Value>(out(&o).trim()).expect("json")["claimed"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(as_nobody(&["devbox", "rm", &again]).status.success());
    assert!(d.cordon(&e, &["devbox", "rm", mine["id"].as_str().expect("id")]).status.success());
    // Four claims at once: the bound counts claims under way, so exactly one is served.
    let racing: Vec<_> = (0..4)
        .map(|_| {
            let mut c = nobody.command(env!("CARGO_BIN_EXE_cordon"));
            c.args(["devbox", "claim", &snap, "--json", "--socket"]).arg(&d.sock);
            c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("claim")
        })
        .collect();
    let outs: Vec<Output> = racing.into_iter().map(|c| c.wait_with_output().expect("wait")).collect();
    let served: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(served.len(), 1, "{:?}", outs.iter().map(show).collect::<Vec<_>>());
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(err(o).contains("at most 1 per user"), "{}", show(o));
    }
    let id = serde_json::from_str::<serde_json::Value>(out(served[0]).trim()).expect("json")["claimed"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(as_nobody(&["devbox", "rm", &id]).status.success());
    // A bound of 0 is refused at start, naming the flag.
    let o = e.cordon(&["daemon", "--foreground", "--max-claims-per-uid", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(err(&o).contains("--max-claims-per-uid"), "{}", show(&o));
}

#[test]
fn devbox_bench_times_warm_claims_and_cold_runs_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"test\", \"-f\", \"app.py\"]");
    let d = Daemon::start(&e, &[]);
    let store = e.root.join("store");
    let o = d.cordon(
        &e,
        &[
            "devbox",
            "bench",
            &snap,
            "--claims",
            "3",
            "--cold",
            "2",
            "--pool",
            "2",
            "--json",
            "--store",
            store.to_str().expect("utf-8"),
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let j: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("json");
    assert_eq!((j["claims"].as_u64(), j["from_pool"].as_u64()), (Some(3), Some(3)), "{j}");
    assert_eq!(j["cold_run_ms"]["n"].as_u64(), Some(2), "{j}");
    assert!(j["claim_to_ready_ms"]["p50"].as_f64().is_some_and(|x| x > 0.0), "{j}");
    // Every claim removed, the pool emptied.
    assert_eq!(std::fs::read_dir(store.join("devboxes")).expect("devboxes").count(), 0);
}

/// A SOCK_SEQPACKET connection to the daemon that sends nothing.
fn idle_connection(sock: &Path) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    let s = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).expect("socket");
    connect(s.as_raw_fd(), &UnixAddr::new(sock).expect("addr")).expect("connect");
    s
}

#[test]
fn devbox_daemon_drops_silent_connections_bounds_them_and_still_claims() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"test\", \"-f\", \"app.py\"]");
    let d = Daemon::start_with(&e, &[&NOBODY.to_string()], &["--io-timeout", "2", "--max-connections", "8"]);
    // An allowed user (nobody) opens 12 connections that send nothing: a quarter of the 8 slots (2)
    // are served, each waiting for its request until --io-timeout; the other 10 are refused at once,
    // naming the bound. Each line: the connection's number and what it got within 6 s.
    let script = format!(
        "import socket, time\n\
         s = []\n\
         for i in range(12):\n\
         \x20   c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); c.connect({sock:?}); s.append(c)\n\
         t0 = time.time()\n\
         for i, c in enumerate(s):\n\
         \x20   c.settimeout(6)\n\
         \x20   try: print(i, repr(c.recv(65536).decode()), round(time.time() - t0, 1))\n\
         \x20   except Exception as e: print(i, 'NOTHING', e)\n",
        sock = d.sock.display().to_string()
    );
    let nobody = Env::new(Who::Nobody);
    let held = std::thread::scope(|sc| {
        let held =
            sc.spawn(|| nobody.command("/usr/bin/python3").args(["-c", &script]).output().expect("python3 as nobody"));
        // Meanwhile root is never refused for slots: a claim answers promptly.
        std::thread::sleep(Duration::from_millis(500));
        let t = std::time::Instant::now();
        let c = d.claim(&e, &snap, &[]);
        assert!(c["id"].is_string());
        assert!(t.elapsed() < Duration::from_secs(10), "the claim took {:?}", t.elapsed());
        held.join().expect("join")
    });
    let text = out(&held);
    assert!(held.status.success(), "{}", show(&held));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12, "{text}");
    let busy = lines.iter().filter(|l| l.contains("serves at most 8 connections at once, 2 per user")).count();
    let dropped = lines.iter().filter(|l| l.contains("no request within 2 s")).count();
    assert_eq!((busy, dropped), (10, 2), "{text}");
    let log = std::fs::read_to_string(&d.log).expect("log");
    assert!(log.contains("sent no request within 2 s"), "{log}");
}

/// A uid the daemon does not serve holds no slot: its connections are refused before they count.
#[test]
fn devbox_daemon_refuses_an_unlisted_uid_before_it_takes_a_slot() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let d = Daemon::start_with(&e, &[], &["--io-timeout", "5", "--max-connections", "4"]);
    let script = format!(
        "import socket\n\
         s = []\n\
         for i in range(8):\n\
         \x20   c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); c.connect({sock:?}); c.settimeout(6); s.append(c)\n\
         print(sum(1 for c in s if 'may not use this daemon' in c.recv(65536).decode()))\n",
        sock = d.sock.display().to_string()
    );
    let nobody = Env::new(Who::Nobody);
    let o = nobody.command("/usr/bin/python3").args(["-c", &script]).output().expect("python3 as nobody");
    assert_eq!(out(&o).trim(), "8", "{}", show(&o));
    let o = d.cordon(&e, &["devbox", "ls", "--json"]);
    assert!(o.status.success(), "root is served at once: {}", show(&o));
}

#[test]
fn devbox_claim_whose_ready_probe_hangs_fails_within_the_probe_timeout_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"sleep\", \"1000\"]");
    let d = Daemon::start_with(&e, &[], &["--probe-timeout", "2"]);
    let t = std::time::Instant::now();
    let o = d.cordon(&e, &["devbox", "claim", &snap]);
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("the ready probe `sleep 1000` did not pass within 2 s (--probe-timeout)"), "{}", show(&o));
    assert!(took < Duration::from_secs(10), "the claim took {took:?}");
    let o = d.cordon(&e, &["devbox", "ls", "--json"]);
    let items = ls_json(&o)["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(0), "{items}");
    assert_eq!(std::fs::read_dir(e.root.join("store/devboxes")).expect("devboxes").count(), 0);
}

#[test]
fn devbox_pools_are_sized_by_root_or_a_pool_uid_and_bounded() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let a = snapshot(&e, "devbox.toml", "[\"test\", \"-f\", \"app.py\"]");
    let b = snapshot(&e, "other.toml", "[\"true\"]");
    let nobody = Env::new(Who::Nobody);
    let as_nobody = |d: &Daemon, args: &[&str]| {
        let mut c = nobody.command(env!("CARGO_BIN_EXE_cordon"));
        c.args(args).arg("--socket").arg(&d.sock).output().expect("as nobody")
    };
    {
        let d = Daemon::start_with(&e, &[&NOBODY.to_string()], &["--max-pool", "2", "--max-pool-total", "3"]);
        // An allowed user may claim but not size pools.
        let o = as_nobody(&d, &["devbox", "pool", &a, "--size", "1"]);
        assert_eq!(o.status.code(), Some(125), "{}", show(&o));
        assert!(err(&o).contains("uid 65534 may not size pools"), "{}", show(&o));
        assert!(err(&o).contains("--pool-uid"), "{}", show(&o));
        // Root: per snapshot, then in all.
        let o = d.cordon(&e, &["devbox", "pool", &a, "--size", "3"]);
        assert_eq!(o.status.code(), Some(125), "{}", show(&o));
        assert!(err(&o).contains("a pool of 3 is more than --max-pool 2"), "{}", show(&o));
        let o = d.cordon(&e, &["devbox", "pool", &a, "--size", "2"]);
        assert!(o.status.success(), "{}", show(&o));
        let o = d.cordon(&e, &["devbox", "pool", &b, "--size", "2"]);
        assert_eq!(o.status.code(), Some(125), "{}", show(&o));
        assert!(err(&o).contains("4 pooled devboxes in all would be more than --max-pool-total 3"), "{}", show(&o));
        let o = d.cordon(&e, &["devbox", "pool", &b, "--size", "1"]);
        assert!(o.status.success(), "{}", show(&o));
        let o = d.cordon(&e, &["devbox", "ls", "--json"]);
        let items = ls_json(&o)["items"].clone();
        assert_eq!(items.as_array().map(Vec::len), Some(3), "{items}");
    }
    // A --pool-uid may.
    let d = Daemon::start_with(&e, &[], &["--pool-uid", &NOBODY.to_string()]);
    let o = as_nobody(&d, &["devbox", "pool", &a, "--size", "1"]);
    assert!(o.status.success() && out(&o).contains("1 devbox(es) ready"), "{}", show(&o));
    let o = as_nobody(&d, &["devbox", "pool", &a, "--size", "17"]);
    assert!(err(&o).contains("more than --max-pool 16"), "{}", show(&o));
}

/// A directory this test made outside its own, removed when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A claim sent on a raw connection that is closed before the answer.
fn claim_and_hang_up(sock: &Path, snap: &str) {
    let s = idle_connection(sock);
    let req = serde_json::json!({"claim": {"snapshot": snap, "policy": null}}).to_string();
    nix::sys::socket::send(std::os::fd::AsRawFd::as_raw_fd(&s), req.as_bytes(), nix::sys::socket::MsgFlags::empty())
        .expect("send");
    drop(s);
}

#[test]
fn devbox_claim_whose_client_hung_up_is_removed_not_left_claimed_by_nobody() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    // The probe takes a second: the client is gone before the answer.
    let snap = snapshot(&e, "devbox.toml", "[\"sleep\", \"1\"]");
    let d = Daemon::start(&e, &[]);
    claim_and_hang_up(&d.sock, &snap);
    let removed = wait_for(Duration::from_secs(15), || {
        let log = std::fs::read_to_string(&d.log).unwrap_or_default();
        log.contains("its client was gone before the answer: removed").then_some(())
    });
    assert!(removed.is_some(), "{}", std::fs::read_to_string(&d.log).unwrap_or_default());
    let items = ls_json(&d.cordon(&e, &["devbox", "ls", "--json"]))["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(0), "{items}");
    assert_eq!(std::fs::read_dir(e.root.join("store/devboxes")).expect("devboxes").count(), 0);
}

#[test]
fn devbox_second_daemon_on_one_store_refuses_naming_the_lock_and_the_first() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let d = Daemon::start(&e, &[]);
    let first = d.child.as_ref().expect("running").id();
    let mut second = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["daemon", "--foreground", "--socket"])
        .arg(e.root.join("second.sock"))
        .arg("--store")
        .arg(e.root.join("store"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second daemon");
    // It must end by itself; one still running after 10 s is killed (and the test fails).
    if wait_for(Duration::from_secs(10), || second.try_wait().ok().flatten()).is_none() {
        let _ = second.kill();
    }
    let o = second.wait_with_output().expect("second daemon");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let lock = e.root.join("store/daemon.lock");
    assert!(err(&o).contains(&format!("{} is held by the daemon pid {first}", lock.display())), "{}", show(&o));
    assert!(!e.root.join("second.sock").exists());
    // The first still serves.
    assert!(d.cordon(&e, &["devbox", "ls"]).status.success());
}

#[test]
fn devbox_ls_shows_a_user_its_own_devboxes_and_the_pools_sizes_and_root_all() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"true\"]");
    let d = Daemon::start(&e, &[&NOBODY.to_string()]);
    let nobody = Env::new(Who::Nobody);
    let as_nobody = |args: &[&str]| {
        let mut c = nobody.command(env!("CARGO_BIN_EXE_cordon"));
        c.args(args).arg("--socket").arg(&d.sock).output().expect("as nobody")
    };
    assert!(d.cordon(&e, &["devbox", "pool", &snap, "--size", "1"]).status.success());
    let mine = d.claim(&e, &snap, &[]);
    let o = as_nobody(&["devbox", "claim", &snap, "--json"]);
    assert!(o.status.success(), "{}", show(&o));
    let theirs: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("json");
    let theirs = theirs["claimed"]["id"].as_str().expect("id").to_string();
    let j = ls_json(&as_nobody(&["devbox", "ls", "--json"]));
    let ids: Vec<&str> = j["items"].as_array().expect("items").iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, vec![theirs.as_str()], "nobody sees only its own: {j}");
    assert_eq!(j["pools"][0]["snapshot"].as_str(), Some(snap.as_str()), "{j}");
    assert_eq!(j["pools"][0]["size"].as_u64(), Some(1), "{j}");
    let o = as_nobody(&["devbox", "ls"]);
    assert!(
        out(&o).contains(&format!("pool {snap}: ")) && !out(&o).contains(mine["id"].as_str().expect("id")),
        "{}",
        show(&o)
    );
    // Root sees both claims, and the pooled devboxes.
    let j = ls_json(&d.cordon(&e, &["devbox", "ls", "--json"]));
    let claimed: Vec<&str> = j["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["state"] == "claimed")
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(claimed.len(), 2, "{j}");
    assert!(claimed.contains(&theirs.as_str()) && claimed.contains(&mine["id"].as_str().expect("id")), "{j}");
}

#[test]
fn devbox_claims_and_their_commands_are_in_the_audit_log_and_it_verifies() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"true\"]");
    // The log where a devbox's policy lets it read (/usr is readable under builtin:agent), removed
    // with the guard.
    let logs = RemoveOnDrop(PathBuf::from(format!("/usr/local/share/cordon-test-{}-audit", std::process::id())));
    std::fs::create_dir_all(&logs.0).expect("mkdir");
    let db = logs.0.join("claims.db");
    let d = Daemon::start_with(&e, &[], &["--audit", db.to_str().expect("utf-8")]);
    let c = d.claim(&e, &snap, &[]);
    let id = c["id"].as_str().expect("id").to_string();
    assert_eq!(d.exec(&e, &id, "exit 3").status.code(), Some(3));
    assert_eq!(d.cordon(&e, &["devbox", "exec", &id, "--", "true"]).status.code(), Some(0));
    assert!(d.cordon(&e, &["devbox", "rm", &id]).status.success());
    let dbs = db.to_str().expect("utf-8");
    let o = e.cordon(&["audit", "verify", "--audit", dbs]);
    assert!(o.status.success(), "verify: {}", show(&o));
    let o = e.cordon(&["audit", "export", &id, "--audit", dbs]);
    assert!(o.status.success(), "export: {}", show(&o));
    let recs: Vec<serde_json::Value> = out(&o).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let kinds: Vec<&str> = recs.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["start", "exec", "exec.end", "exec", "exec.end", "end", "seal"], "{recs:?}");
    let start = &recs[0]["body"];
    assert_eq!(start["devbox"]["id"].as_str(), Some(id.as_str()), "{start}");
    assert_eq!(start["devbox"]["snapshot"].as_str(), Some(snap.as_str()), "{start}");
    assert_eq!(start["devbox"]["claimant_uid"].as_u64(), Some(0), "{start}");
    // No pool was set: made at claim, and the pool as the claim found it recorded (size 0).
    let pool = (&start["devbox"]["from_pool"], &start["devbox"]["pool_size"], &start["devbox"]["pool_ready"]);
    assert_eq!(pool, (&serde_json::json!(false), &serde_json::json!(0), &serde_json::json!(0)), "{start}");
    assert!(start["policy"]["sha256"].as_str().is_some_and(|h| h.len() == 64), "{start}");
    assert_eq!(recs[1]["body"]["argv"], serde_json::json!(["/bin/sh", "-c", "exit 3"]), "{recs:?}");
    assert_eq!(recs[2]["body"]["exit_code"].as_i64(), Some(3), "{recs:?}");
    assert_eq!(recs[3]["body"]["argv"], serde_json::json!(["true"]), "{recs:?}");
    assert_eq!(recs[4]["body"]["exit_code"].as_i64(), Some(0), "{recs:?}");
    assert!(recs[5]["body"]["notes"][0].as_str().is_some_and(|n| n.contains("cordon devbox rm")), "{recs:?}");
    // The log is out of a devbox's reach (masked like a session's), wherever --audit puts it.
    let c2 = d.claim(&e, &snap, &[]);
    let o = d.exec(&e, c2["id"].as_str().expect("id"), &format!("head -c1 {} >/dev/null", db.display()));
    assert_ne!(o.status.code(), Some(0), "a devbox read the audit log: {}", show(&o));
    // `cordon audit show` shows both commands.
    let o = e.cordon(&["audit", "show", &id, "--audit", dbs]);
    assert!(o.status.success(), "show: {}", show(&o));
    assert!(out(&o).contains("exit 3") && out(&o).contains("\"exit_code\":3"), "{}", show(&o));
}

#[test]
fn devbox_claim_policy_file_is_read_by_the_client_and_sent_as_text() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"test\", \"-f\", \"app.py\"]");
    let d = Daemon::start(&e, &[&NOBODY.to_string()]);
    let nobody = Env::new(Who::Nobody);
    let as_nobody = |args: &[&str]| {
        let mut c = nobody.command(env!("CARGO_BIN_EXE_cordon"));
        let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        c.args(&args[..at]).arg("--socket").arg(&d.sock).args(&args[at..]).output().expect("as nobody")
    };
    // A tighter policy in nobody's own file: taken, and it holds (the workspace read-only).
    let tight = nobody.write_policy("tight.toml", "version = 1\nextends = [\"builtin:readonly\"]\n");
    let o = as_nobody(&["devbox", "claim", &snap, "--json", "--policy", tight.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("json");
    let id = v["claimed"]["id"].as_str().expect("id").to_string();
    let o =
        as_nobody(&["devbox", "exec", &id, "--", "/bin/sh", "-c", "cat app.py && ! (echo x > new.txt) 2>/dev/null"]);
    assert!(o.status.success(), "the tighter policy did not hold: {}", show(&o));
    // A text that extends a file is refused: the daemon reads no file for it.
    let ext = nobody.write_policy("ext.toml", &format!("version = 1\nextends = [\"{}\"]\n", tight.display()));
    let o = as_nobody(&["devbox", "claim", &snap, "--policy", ext.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("may extend only built-in policies"), "{}", show(&o));
    // A text over the bound is refused by the client, naming it.
    let big = nobody.write_policy("big.toml", &format!("version = 1\n# {}\n", "x".repeat(300 * 1024)));
    let o = as_nobody(&["devbox", "claim", &snap, "--policy", big.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("larger than 128 KiB"), "{}", show(&o));
}

#[test]
fn devbox_that_dies_by_itself_is_removed_and_its_session_ended() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"true\"]");
    let db = e.root.join("audit.db");
    let d = Daemon::start(&e, &[]);
    let c = d.claim(&e, &snap, &[]);
    let id = c["id"].as_str().expect("id").to_string();
    let items = ls_json(&d.cordon(&e, &["devbox", "ls", "--json"]))["items"].clone();
    let pid = items.as_array().expect("items").iter().find(|i| i["id"] == id.as_str()).expect("listed")["pid"]
        .as_i64()
        .expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let gone = wait_for(Duration::from_secs(10), || {
        let items = ls_json(&d.cordon(&e, &["devbox", "ls", "--json"]))["items"].clone();
        items.as_array().is_some_and(|v| v.is_empty()).then_some(())
    });
    assert!(gone.is_some(), "the dead devbox is still listed");
    let dbs = db.to_str().expect("utf-8");
    let o = e.cordon(&["audit", "export", &id, "--audit", dbs]);
    let kinds: Vec<String> = out(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(kinds, ["start", "end", "seal"], "{}", show(&o));
    assert!(out(&o).contains("ended by itself"), "{}", show(&o));
    assert!(e.cordon(&["audit", "verify", "--audit", dbs]).status.success());
    assert!(std::fs::read_to_string(&d.log).expect("log").contains(&format!("devbox {id} ended by itself")));
}

/// `cordon daemon --server`: each claim's session (start with its devbox object, the commands run,
/// end and seal) reaches `cordon server` while the daemon runs, and the last records after it
/// stops; a --server cordon would not ship to refuses the daemon before it listens.
#[test]
fn devbox_daemon_ships_its_claims_to_the_server_as_they_happen() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"true\"]");
    let dir = common::server::tempdir("daemon-ship");
    let srv = common::server::Server::start(&dir.0);
    let tf = e.root.join("node.token");
    std::fs::write(&tf, srv.token("node", "d1") + "\n").expect("token file");
    let url = format!("http://{}", srv.addr);
    let ship = ["--server", url.as_str(), "--server-token-file", tf.to_str().expect("utf-8"), "--server-node", "d1"];
    let db = e.root.join("audit.db");
    let local = || cordon_audit::Store::open_read_only(&db).expect("log").records_after(0, 1 << 20).expect("records");
    let all_in = || {
        wait_for(Duration::from_secs(15), || {
            (srv.sql("SELECT count(*) FROM records WHERE node = 'd1'") == local().len() as i64).then_some(())
        })
    };
    let mut d = Daemon::start_with(&e, &[], &ship);
    let c = d.claim(&e, &snap, &[]);
    let id = c["id"].as_str().expect("id").to_string();
    assert_eq!(d.exec(&e, &id, "exit 4").status.code(), Some(4));
    assert!(
        all_in().is_some(),
        "a running claim's records did not arrive: {}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
    let q = "SELECT count(*) FROM records WHERE node = 'd1' AND kind = 'exec.end'";
    assert_eq!(srv.sql(q), 1);
    let c2 = d.claim(&e, &snap, &[]);
    assert!(c2["id"].as_str().is_some());
    assert!(d.stop().is_some_and(|s| s.success()), "{}", std::fs::read_to_string(&d.log).unwrap_or_default());
    // The daemon's stop ends both claims' sessions; the follower ships them after it is gone.
    assert!(
        all_in().is_some(),
        "the daemon's last records did not arrive: {}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
    assert_eq!(srv.sql("SELECT count(*) FROM sessions WHERE node = 'd1' AND sealed = 1"), 2);
    assert_eq!(
        srv.sql("SELECT count(*) FROM records WHERE node = 'd1' AND kind = 'start' AND payload LIKE '%\"devbox\"%'"),
        2
    );

    let bad = ["--server", "http://192.0.2.1:80", "--server-token-file", tf.to_str().expect("utf-8")];
    let mut c = Command::new(env!("CARGO_BIN_EXE_cordon"));
    c.args(["daemon", "--foreground", "--socket"]).arg(e.root.join("d2.sock")).arg("--store").arg(e.root.join("store"));
    let o = c.args(bad).stdin(Stdio::null()).output().expect("cordon daemon");
    assert!(!o.status.success() && show(&o).contains("not a loopback address"), "{}", show(&o));
    assert!(!e.root.join("d2.sock").exists(), "the refused daemon listened");
}

/// Secrets bound at claim (`--secret`): each claim's commands see their own, no other claim's; no
/// file of the store, the pool or the audit log holds a value (the log names them); a value on the
/// command line is refused. Control: the same search run on the host finds both values (in the
/// exec servers' environments), so the search inside would have found the other claim's.
#[test]
fn devbox_secrets_are_their_claims_alone_and_never_stored() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let snap = snapshot(&e, "devbox.toml", "[\"true\"]");
    let d = Daemon::start(&e, &[]);
    let o = d.cordon(&e, &["devbox", "pool", &snap, "--size", "2"]);
    assert!(o.status.success(), "{}", show(&o));
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_nanos();
    let (va, vb) = (format!("sek-a-{stamp}"), format!("sek-b-{stamp}"));
    let file_b = e.root.join("token-b");
    std::fs::write(&file_b, format!("{vb}\n")).expect("secret file");
    let claimed = |o: Output| -> String {
        assert!(o.status.success(), "claim: {}", show(&o));
        let v: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("json");
        v["claimed"]["id"].as_str().expect("id").to_string()
    };
    let ia = claimed(d.claim_env(&e, &snap, &["--secret", "TOKEN"], &[("TOKEN", &va)]));
    let ib = claimed(d.claim_env(
        &e,
        &snap,
        &["--secret", &format!("TOKEN={}", format_args!("@{}", file_b.display()))],
        &[],
    ));
    let o = d.exec(&e, &ia, "printf %s \"$TOKEN\"");
    assert_eq!(out(&o), va, "{}", show(&o));
    let o = d.exec(&e, &ib, "printf %s \"$TOKEN\"");
    assert_eq!(out(&o), vb, "the file's final newline is dropped: {}", show(&o));
    // Every process's environment a command can read: its claim's value only.
    let search =
        format!("cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -o 'sek-[ab]-{stamp}' | sort -u");
    let o = e.bare_sh(&search);
    assert_eq!(out(&o), format!("{va}\n{vb}\n"), "control: the host sees both: {}", show(&o));
    assert_eq!(out(&d.exec(&e, &ia, &search)), format!("{va}\n"), "A saw B's secret");
    assert_eq!(out(&d.exec(&e, &ib, &search)), format!("{vb}\n"), "B saw A's secret");
    // A claim without --secret (the pool's refill) has none.
    let ic = d.claim(&e, &snap, &[]);
    let o = d.exec(&e, ic["id"].as_str().expect("id"), "printf %s \"${TOKEN-unset}\"");
    assert_eq!(out(&o), "unset", "{}", show(&o));
    // No file of the store or the log holds a value; the start record names the secret.
    let o = e.bare_sh(&format!(
        "grep -rlF -e {va} -e {vb} {} {} {}* {} ; true",
        e.root.join("store").display(),
        d.log.display(),
        e.root.join("audit.db").display(),
        e.root.join("audit.head").display()
    ));
    assert_eq!(out(&o), "", "a secret's value was stored: {}", show(&o));
    let o = e.cordon(&["audit", "export", &ia]);
    assert!(o.status.success(), "export: {}", show(&o));
    let start: serde_json::Value = serde_json::from_str(out(&o).lines().next().expect("start")).expect("json");
    assert_eq!(start["body"]["devbox"]["secrets"], serde_json::json!(["TOKEN"]), "{start}");
    // What a claim writes (a secret, say) is not readable on the host by other users.
    let o = d.exec(&e, &ia, "printf %s \"$TOKEN\" > token.txt");
    assert!(o.status.success(), "{}", show(&o));
    let written = e.root.join("store/devboxes").join(&ia).join("upper/token.txt");
    assert_eq!(std::fs::read_to_string(&written).expect("in A's upper"), va);
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&written)
        .output()
        .expect("setpriv");
    assert!(!o.status.success() && !out(&o).contains(&va), "nobody read a devbox's write: {}", show(&o));
    // Refused before anything is claimed: a value on the command line, an unset variable, a
    // name that is cordon's.
    // Counted by claimed devboxes: the pool refills in the background meanwhile.
    let claimed_n = || {
        let v = ls_json(&d.cordon(&e, &["devbox", "ls", "--json"]));
        v["items"].as_array().expect("items").iter().filter(|i| i["state"] == "claimed").count()
    };
    let before = claimed_n();
    for (flag, says) in [
        ("TOKEN=hunter2", "never taken from the command line"),
        ("CORDON_TEST_UNSET_SECRET", "is not set"),
        ("CORDON_SESSION=@/etc/hostname", "cordon's to set"),
    ] {
        let o = d.claim_env(&e, &snap, &["--secret", flag], &[]);
        assert!(!o.status.success() && err(&o).contains(says), "--secret {flag}: {}", show(&o));
        assert!(!err(&o).contains("hunter2"), "the refused value was echoed: {}", show(&o));
    }
    // The daemon judges them too (a client of its own could send anything): a loader variable,
    // sent past the CLI's check.
    let req = cordon_devbox::wire::Request::Claim {
        snapshot: snap.clone(),
        policy: None,
        policy_text: None,
        secrets: vec![("LD_PRELOAD".into(), "/tmp/evil.so".into())],
    };
    let said = cordon_devbox::client::request(&d.sock, &req).expect_err("the daemon claimed with LD_PRELOAD");
    assert!(said.contains("LD_PRELOAD") && said.contains("not a secret's name"), "{said}");
    assert_eq!(before, claimed_n(), "a refused claim took a devbox");
}
