//! The escape suite (tests/escape/cases.toml): every case runs its attack without cordon (the control,
//! which must work, or the case is SKIPPED with the reason) and inside `cordon run` with the default
//! profile (which must fail), then checks the host is unchanged and, where the supervisor can see the
//! denial, that the exit summary reported it. Runs as root and as nobody; prints a table per category.

mod common;
use common::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize, Clone)]
struct Case {
    id: String,
    cat: u8,
    what: String,
    run: String,
    setup: Option<String>,
    check: Option<String>,
    cleanup: Option<String>,
    report: Option<String>,
    net: Option<String>,
    users: Option<Vec<String>>,
    policy: Option<String>,
    tty: Option<bool>,
    known_limit: Option<String>,
    /// The attack's effect is on the host: it worked if `check` fails.
    host_effect: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// `sensed`: as root, the eBPF sensor saw at least one refused call; `alerted`: a detection rule
    /// (builtin:agent) raised an alert.
    Blocked {
        reported: Option<bool>,
        sensed: Option<bool>,
        alerted: Option<bool>,
    },
    Skipped(String),
    KnownLimit(String),
    /// The sandbox did not start: a failed attack proves nothing.
    SetupFailed(String),
    Escaped(String),
    HostChanged(String),
}

const CATEGORIES: [&str; 8] = [
    "credential theft",
    "filesystem escape",
    "persistence",
    "network exfiltration",
    "other processes",
    "privilege and kernel",
    "resource exhaustion",
    "tampering with cordon",
];

/// Listeners outside the sandbox that count what reaches them.
struct Listeners {
    counts: BTreeMap<&'static str, Arc<AtomicUsize>>,
    env: Vec<(String, String)>,
    paths: Vec<PathBuf>,
}

fn count_stream<S: Read + Send + 'static>(mut s: S, c: Arc<AtomicUsize>) {
    std::thread::spawn(move || {
        let mut b = [0u8; 64];
        let _ = s.read(&mut b);
        c.fetch_add(1, Ordering::SeqCst);
    });
}

impl Listeners {
    fn start(tag: &str, who: Who, home: &Path) -> Listeners {
        let mut counts = BTreeMap::new();
        let mut env = vec![];
        let mut paths = vec![];
        let mut add = |name: &'static str| {
            let c = Arc::new(AtomicUsize::new(0));
            counts.insert(name, c.clone());
            c
        };
        let tcp = |addr: &str, c: Arc<AtomicUsize>| -> Option<u16> {
            let l = TcpListener::bind(addr).ok()?;
            let port = l.local_addr().ok()?.port();
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    count_stream(s, c.clone());
                }
            });
            Some(port)
        };
        if let Some(p) = tcp("127.0.0.1:0", add("tcp4")) {
            env.push(("TCP4_PORT".into(), p.to_string()));
        }
        if let Some(p) = tcp("[::1]:0", add("tcp6")) {
            env.push(("TCP6_PORT".into(), p.to_string()));
        }
        let host_ip = Command::new("hostname").arg("-I").output().ok().and_then(|o| {
            String::from_utf8_lossy(&o.stdout).split_whitespace().find(|a| a.contains('.')).map(String::from)
        });
        let hc = add("hostip");
        if let Some(ip) = host_ip {
            if let Some(p) = tcp(&format!("{ip}:0"), hc) {
                env.push(("HOST_IP".into(), ip));
                env.push(("HOSTIP_PORT".into(), p.to_string()));
            }
        }
        let uc = add("udp4");
        if let Ok(u) = UdpSocket::bind("127.0.0.1:0") {
            env.push(("UDP4_PORT".into(), u.local_addr().map(|a| a.port()).unwrap_or(0).to_string()));
            std::thread::spawn(move || {
                let mut b = [0u8; 64];
                while u.recv(&mut b).is_ok() {
                    uc.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let unix = |path: &Path, c: Arc<AtomicUsize>| {
            let _ = std::fs::remove_file(path);
            if let Ok(l) = UnixListener::bind(path) {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
                std::thread::spawn(move || {
                    for s in l.incoming().flatten() {
                        count_stream(s, c.clone());
                    }
                });
            }
        };
        let run_sock = PathBuf::from(format!("/run/cordon-esc-{tag}.sock"));
        unix(&run_sock, add("unix_run"));
        env.push(("UNIX_RUN".into(), run_sock.display().to_string()));
        let tmp_dir = PathBuf::from(format!("/tmp/cordon-esc-{tag}"));
        let _ = std::fs::create_dir_all(&tmp_dir);
        let _ = Command::new("chmod").arg("755").arg(&tmp_dir).status();
        let tmp_sock = tmp_dir.join("agent.sock");
        unix(&tmp_sock, add("unix_tmp"));
        env.push(("UNIX_TMP".into(), tmp_sock.display().to_string()));
        // A gpg-agent socket in HOME (no XDG_RUNTIME_DIR).
        let gnupg = home.join(".gnupg");
        let _ = std::fs::create_dir_all(&gnupg);
        let home_sock = gnupg.join("S.gpg-agent");
        unix(&home_sock, add("unix_home"));
        if who == Who::Nobody {
            let _ = Command::new("chown").args(["-R", "65534:65534"]).arg(&gnupg).status();
        }
        env.push(("UNIX_HOME".into(), home_sock.display().to_string()));
        paths.push(run_sock);
        paths.push(tmp_dir);
        let name = format!("cordon-esc-{tag}");
        let ac = add("abstract");
        {
            use std::os::linux::net::SocketAddrExt;
            if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
                if let Ok(l) = UnixListener::bind_addr(&addr) {
                    std::thread::spawn(move || {
                        for s in l.incoming().flatten() {
                            count_stream(s, ac.clone());
                        }
                    });
                }
            }
        }
        env.push(("ABSTRACT".into(), name));
        Listeners { counts, env, paths }
    }

    fn got(&self, name: &str) -> bool {
        // Give a connection that was made time to be counted.
        for _ in 0..20 {
            if self.counts.get(name).is_some_and(|c| c.load(Ordering::SeqCst) > 0) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_dir_all(p);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn write(p: &Path, s: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(p, s).expect("write");
}

/// Credentials and a git workspace, as a developer's machine has them.
fn fixtures(e: &Env) {
    let h = &e.home;
    write(&h.join(".aws/credentials"), "[default]\naws_secret_access_key = FAKE\n");
    write(&h.join(".gnupg/private-keys-v1.d/AB.key"), "FAKE gpg key\n");
    write(&h.join(".kube/config"), "users:\n- user:\n    token: FAKE\n");
    write(&h.join(".docker/config.json"), "{\"auths\":{\"x\":{\"auth\":\"FAKE\"}}}\n");
    write(&h.join(".netrc"), "machine x login u password FAKE\n");
    write(&h.join(".git-credentials"), "https://u:ghp_FAKE@github.com\n");
    write(&h.join(".config/gcloud/credentials.db"), "refresh_token FAKE\n");
    write(&h.join(".config/gh/hosts.yml"), "github.com:\n  oauth_token: FAKE\n");
    write(&h.join(".mozilla/firefox/p.default/logins.json"), "{\"encryptedPassword\":\"FAKE\"}\n");
    write(&h.join(".npmrc"), "//registry.npmjs.org/:_authToken=FAKE\n");
    write(&h.join(".cargo/credentials.toml"), "[registry]\ntoken = \"FAKE\"\n");
    write(&h.join(".cargo/bin/.keep"), "");
    write(&h.join(".ssh/id_rsa"), "-----BEGIN FAKE-KEY-----\n");
    let w = &e.ws;
    write(&w.join("services/api/.env.local"), "KEY=sk-nested\n");
    write(&w.join("deploy.pem"), "-----BEGIN PRIVATE KEY-----\n");
    write(&w.join("probe.py"), include_str!("../../../tests/escape/probe.py"));
    let o = Command::new("sh").args(["-c", "git init -q . && git config user.email a@b && git config user.name t && git add README.md && git commit -qm init"]).current_dir(w).env("GIT_CONFIG_COUNT", "1").env("GIT_CONFIG_KEY_0", "safe.directory").env("GIT_CONFIG_VALUE_0", "*").output().expect("git");
    assert!(o.status.success(), "git fixture: {}", show(&o));
    write(&e.root.join("policy.toml"), "version = 1\nextends = [\"builtin:agent\"]\n");
}

fn victim(e: &Env, mark: &str) -> std::process::Child {
    let script = format!("exec -a 'victim-process-{mark} victim-token' sleep 600");
    let mut c = match e.who {
        Who::Root => Command::new("bash"),
        Who::Nobody => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
                "--".into(),
                "bash".into(),
            ]);
            c
        }
    };
    c.args(["-c", &script])
        .env("VICTIM_SECRET", "AKIAFAKE-victim")
        .current_dir(&e.root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn().expect("victim")
}

struct RunOut {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `argv` as the env's user, with the case's variables, under `script` when a terminal is needed.
fn run_as(e: &Env, argv: &[String], vars: &[(String, String)], tty: bool, timeout: Duration) -> RunOut {
    let mut full: Vec<String> = vec![];
    if e.who == Who::Nobody {
        full.extend([
            "setpriv".into(),
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
        ]);
    }
    full.extend(argv.iter().cloned());
    let mut c = if tty {
        let joined = full.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ");
        let mut c = Command::new("script");
        c.args(["-qec", &joined, "/dev/null"]);
        c
    } else {
        let mut c = Command::new(&full[0]);
        c.args(&full[1..]);
        c
    };
    c.current_dir(&e.ws).env("HOME", &e.home).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in vars {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if t.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut so = String::new();
    let mut se = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut so);
    }
    if let Some(mut o) = child.stderr.take() {
        let _ = o.read_to_string(&mut se);
    }
    RunOut { code: status.and_then(|s| s.code()), stdout: so, stderr: se }
}

fn host_sh(e: &Env, script: &str, vars: &[(String, String)], as_user: bool) -> bool {
    let argv = vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
    if as_user {
        run_as(e, &argv, vars, false, Duration::from_secs(20)).code == Some(0)
    } else {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]).current_dir(&e.ws).env("HOME", &e.home);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().map(|o| o.status.success()).unwrap_or(false)
    }
}

fn tail(s: &str) -> String {
    let t: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    t.iter().rev().take(2).rev().cloned().collect::<Vec<_>>().join(" | ").chars().take(160).collect()
}

fn run_case(c: &Case, who: Who, n: usize) -> Verdict {
    if let Some(k) = &c.known_limit {
        return Verdict::KnownLimit(k.clone());
    }
    let mut attack_out = None;
    let (mut sensed, mut alerted) = (None, None);
    for inside in [false, true] {
        let e = Env::new(who);
        fixtures(&e);
        if who == Who::Nobody {
            e.chown_all();
        }
        // Unique across the two suites running in parallel in this process.
        let mark = format!(
            "{}{}{n}{}",
            std::process::id(),
            if who == Who::Root { "r" } else { "n" },
            if inside { "a" } else { "c" }
        );
        let listeners = Listeners::start(&mark, who, &e.home);
        let mut vic = victim(&e, &mark);
        std::thread::sleep(Duration::from_millis(20));
        let mut vars: Vec<(String, String)> = vec![
            ("WS".into(), e.ws.display().to_string()),
            ("ROOT".into(), e.root.display().to_string()),
            ("P".into(), "python3 probe.py".into()),
            ("VICTIM_PID".into(), vic.id().to_string()),
            ("MARK".into(), mark.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), "AKIAFAKE".into()),
            ("GITHUB_TOKEN".into(), "ghp_fake".into()),
            ("OPENAI_API_KEY".into(), "sk-openai-fake".into()),
            ("LD_PRELOAD".into(), " ".into()),
            ("CORDON_AUDIT".into(), e.root.join("audit.db").display().to_string()),
        ];
        vars.extend(listeners.env.iter().cloned());
        if let Some(s) = &c.setup {
            assert!(host_sh(&e, s, &vars, true), "{}: setup failed", c.id);
        }
        let argv: Vec<String> = if inside {
            let policy = e.root.join("policy.toml");
            if let Some(extra) = &c.policy {
                write(&policy, &format!("version = 1\nextends = [\"builtin:agent\"]\n{extra}\n"));
                if who == Who::Nobody {
                    e.chown_all();
                }
            }
            let mut a = vec![
                env!("CARGO_BIN_EXE_cordon").to_string(),
                "run".into(),
                "--policy".into(),
                policy.display().to_string(),
            ];
            if who == Who::Nobody {
                a.push("--allow-degraded".into());
            } else {
                // As root the sensor watches too: its deny events and the rules' alerts are counted.
                a.extend([
                    "--events".into(),
                    e.root.join("events.jsonl").display().to_string(),
                    "--report".into(),
                    e.root.join("report.json").display().to_string(),
                ]);
            }
            a.extend(["--".into(), "/bin/sh".into(), "-c".into(), c.run.clone()]);
            a
        } else {
            vec!["/bin/sh".into(), "-c".into(), c.run.clone()]
        };
        let out = run_as(&e, &argv, &vars, c.tty.unwrap_or(false), Duration::from_secs(30));
        if inside && who == Who::Root {
            let rep: serde_json::Value = std::fs::read_to_string(e.root.join("report.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            sensed = Some(
                rep["sensor"]["denials_total"].as_u64().unwrap_or(0) > 0
                    || rep["outcome"]["denials"]["total"].as_u64().unwrap_or(0) > 0,
            );
            alerted = Some(rep["alerts"].as_array().is_some_and(|a| !a.is_empty()));
        }
        let host_ok = c.check.as_ref().map(|s| host_sh(&e, s, &vars, true)).unwrap_or(true);
        let worked = match (&c.net, c.host_effect.unwrap_or(false)) {
            (Some(n), _) => listeners.got(n),
            (None, true) => !host_ok,
            (None, false) => out.code == Some(0),
        };
        if let Some(s) = &c.cleanup {
            host_sh(&e, s, &vars, false);
        }
        let _ = vic.kill();
        let _ = vic.wait();
        drop(listeners);
        if !inside {
            if !worked {
                return Verdict::Skipped(format!(
                    "the attack does not work here without cordon either: exit {:?}: {}",
                    out.code,
                    tail(&(out.stdout.clone() + &out.stderr))
                ));
            }
            continue;
        }
        if out.stderr.contains("could not confine")
            || out.stdout.contains("could not confine")
            || out.stderr.contains("cordon: error")
        {
            return Verdict::SetupFailed(tail(&(out.stdout + &out.stderr)));
        }
        if worked {
            return Verdict::Escaped(format!("exit {:?}: {}", out.code, tail(&(out.stdout + &out.stderr))));
        }
        if !host_ok {
            return Verdict::HostChanged(tail(&out.stderr));
        }
        attack_out = Some(out);
    }
    let out = attack_out.expect("attack ran");
    // Under a terminal (`script`) cordon's stderr arrives on stdout.
    let reported = c.report.as_ref().map(|r| out.stderr.contains(r.as_str()) || out.stdout.contains(r.as_str()));
    Verdict::Blocked { reported, sensed, alerted }
}

fn suite(who: Who) {
    if !need_root() {
        return;
    }
    let text = include_str!("../../../tests/escape/cases.toml");
    let cases: Cases = toml::from_str(text).expect("cases.toml");
    let uname = match who {
        Who::Root => "root",
        Who::Nobody => "nobody",
    };
    let filter = std::env::var("CORDON_ESCAPE_FILTER").ok();
    let mut results: Vec<(Case, Verdict)> = vec![];
    for (n, c) in cases.case.iter().enumerate() {
        if c.users.as_ref().is_some_and(|u| !u.iter().any(|x| x == uname)) {
            continue;
        }
        if filter.as_ref().is_some_and(|f| !c.id.contains(f.as_str())) {
            continue;
        }
        let v = run_case(c, who, n);
        results.push((c.clone(), v));
    }
    // The report: one table per category.
    let mut out = format!("\nescape suite as {uname}: {} cases\n", results.len());
    out.push_str(&format!(
        "{:<24} {:>6} {:>8} {:>9} {:>8} {:>8} {:>6} {:>8} {:>8}\n",
        "category", "cases", "blocked", "reported", "skipped", "known", "FAIL", "sensed", "alerted"
    ));
    for (i, name) in CATEGORIES.iter().enumerate() {
        let rs: Vec<&(Case, Verdict)> = results.iter().filter(|(c, _)| c.cat as usize == i + 1).collect();
        let blocked = rs.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { .. })).count();
        let expect_report = rs.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { reported: Some(_), .. })).count();
        let reported = rs.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { reported: Some(true), .. })).count();
        let sensed = rs.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { sensed: Some(true), .. })).count();
        let alerted = rs.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { alerted: Some(true), .. })).count();
        let skipped = rs.iter().filter(|(_, v)| matches!(v, Verdict::Skipped(_))).count();
        let known = rs.iter().filter(|(_, v)| matches!(v, Verdict::KnownLimit(_))).count();
        let fail = rs
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Escaped(_) | Verdict::HostChanged(_) | Verdict::SetupFailed(_)))
            .count()
            + (expect_report - reported);
        let (sn, al) = if who == Who::Root {
            (format!("{sensed}/{blocked}"), format!("{alerted}/{blocked}"))
        } else {
            ("-".into(), "-".into())
        };
        out.push_str(&format!(
            "{:<24} {:>6} {:>8} {:>5}/{:<3} {:>8} {:>8} {:>6} {:>8} {:>8}\n",
            format!("{}. {name}", i + 1),
            rs.len(),
            blocked,
            reported,
            expect_report,
            skipped,
            known,
            fail,
            sn,
            al
        ));
    }
    let mut failures = vec![];
    for (c, v) in &results {
        match v {
            Verdict::Skipped(r) => {
                out.push_str(&format!("  SKIPPED {:<28} {} — {r}\n", c.id, c.what));
                record_skip(&format!("escape case {} as {uname}", c.id), r);
            }
            Verdict::KnownLimit(r) => out.push_str(&format!("  KNOWN   {:<28} {} — {r}\n", c.id, c.what)),
            Verdict::Escaped(r) => failures.push(format!("ESCAPED {} ({}): {r}", c.id, c.what)),
            Verdict::SetupFailed(r) => failures.push(format!("SETUP FAILED {} ({}): {r}", c.id, c.what)),
            Verdict::HostChanged(r) => failures.push(format!("HOST CHANGED {} ({}): {r}", c.id, c.what)),
            Verdict::Blocked { reported: Some(false), .. } => failures.push(format!(
                "UNREPORTED {} ({}): the summary lacks `{}`",
                c.id,
                c.what,
                c.report.as_deref().unwrap_or("")
            )),
            Verdict::Blocked { .. } => {}
        }
    }
    if who == Who::Root {
        // Blocked attacks the sensor saw no refusal for, and those no rule alerted on: listed, so the
        // counts above can be read (a blocked attack often fails without a refused call: a missing
        // file, no route).
        let quiet: Vec<&str> = results
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Blocked { alerted: Some(false), .. }))
            .map(|(c, _)| c.id.as_str())
            .collect();
        let unseen: Vec<&str> = results
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Blocked { sensed: Some(false), .. }))
            .map(|(c, _)| c.id.as_str())
            .collect();
        out.push_str(&format!("  no refused call seen by the sensor ({}): {}\n", unseen.len(), unseen.join(" ")));
        out.push_str(&format!("  no alert ({}): {}\n", quiet.len(), quiet.join(" ")));
    }
    for f in &failures {
        out.push_str(&format!("  FAIL    {f}\n"));
    }
    println!("{out}");
    if let Ok(dir) = std::env::var("CORDON_ESCAPE_REPORT_DIR") {
        let _ = std::fs::write(Path::new(&dir).join(format!("escape-{uname}.txt")), &out);
    }
    assert!(failures.is_empty(), "{} case(s) failed as {uname}:\n{}", failures.len(), failures.join("\n"));
    let blocked = results.iter().filter(|(_, v)| matches!(v, Verdict::Blocked { .. })).count();
    assert!(results.len() >= 80 || filter.is_some(), "the suite must have at least 80 cases");
    assert!(blocked > 0);
}

#[test]
fn escape_suite_as_root() {
    suite(Who::Root);
}

#[test]
fn escape_suite_as_nobody() {
    suite(Who::Nobody);
}
