//! Running one case: its control (the attack without cordon, which must work) and the attack inside
//! `cordon run`, each wrapped so that the session proves it started (a start line with a nonce) and
//! the attack's own output goes to a file, apart from cordon's summary.

use crate::case::{errno_texts, layer, Case};
use crate::common::*;
use crate::listeners::{Listeners, SETTLE};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Each check is None where it does not apply: `reported` (the case names no `report`),
    /// `sensed` (not root, or a layer the sensor does not attribute), `alerted` (not root, or no
    /// `alert`). `any_deny`/`any_alert` (root): the sensor saw some refusal, some rule alerted.
    Blocked {
        reported: Option<bool>,
        sensed: Option<bool>,
        alerted: Option<bool>,
        any_deny: bool,
        any_alert: bool,
    },
    Skipped(String),
    KnownLimit(String),
    /// The session did not start (no start line): a failed attack proves nothing.
    SetupFailed(String),
    Escaped(String),
    HostChanged(String),
    /// The attack failed, but not with the errno the case names.
    WrongReason(String),
    TimedOut(String),
}

pub fn write(p: &Path, s: &str) {
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
    write(&w.join("probe.py"), include_str!("../../../../tests/escape/probe.py"));
    let o = Command::new("sh")
        .args([
            "-c",
            "git init -q . && git config user.email a@b && git config user.name t && git add README.md && git commit -qm init",
        ])
        .current_dir(w)
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*")
        .output()
        .expect("git");
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
    /// None: the harness stopped it after the timeout.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `argv` as the env's user, with the case's variables, under `script` when a terminal is
/// needed; returns when it exited (or was stopped after `timeout`).
fn run_as(e: &Env, argv: &[String], vars: &[(String, String)], tty: bool, timeout: Duration, uts: Uts) -> RunOut {
    let mut full: Vec<String> = uts.enter();
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
    // Read both pipes while waiting: a full pipe must not stall the session.
    let mut so_pipe = child.stdout.take().expect("stdout");
    let mut se_pipe = child.stderr.take().expect("stderr");
    let so_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so_pipe.read_to_string(&mut s);
        s
    });
    let se_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se_pipe.read_to_string(&mut s);
        s
    });
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
    let stdout = so_t.join().unwrap_or_default();
    let stderr = se_t.join().unwrap_or_default();
    RunOut { code: status.and_then(|s| s.code()), stdout, stderr }
}

fn host_sh(e: &Env, script: &str, vars: &[(String, String)], as_user: bool, uts: Uts) -> bool {
    let argv = vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
    if as_user {
        run_as(e, &argv, vars, false, Duration::from_secs(20), uts).code == Some(0)
    } else {
        let full: Vec<String> = uts.enter().into_iter().chain(argv).collect();
        let mut c = Command::new(&full[0]);
        c.args(&full[1..]).current_dir(&e.ws).env("HOME", &e.home);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().map(|o| o.status.success()).unwrap_or(false)
    }
}

/// The UTS namespace a case runs in (`own_uts`): None, the harness's own (the host's).
#[derive(Clone, Copy)]
struct Uts(Option<u32>);

impl Uts {
    /// The words that run a command in it (as root, before any change of user).
    fn enter(self) -> Vec<String> {
        match self.0 {
            Some(pid) => vec!["nsenter".into(), "-t".into(), pid.to_string(), "-u".into(), "--".into()],
            None => vec![],
        }
    }
}

/// The name of the UTS namespace a case with `own_uts` is given (its `check` compares with it).
pub const UTS_HOST: &str = "cordon-uts-host";

/// A UTS namespace made for one run of a case (`own_uts`), named [`UTS_HOST`]: the setup, the
/// control, `cordon` and the check run in it, so that an attack that renames "the host" renames
/// this one, never the machine's. Removed (its one process killed) when dropped.
struct UtsHolder(std::process::Child);

impl UtsHolder {
    fn start() -> UtsHolder {
        let mut c = Command::new("unshare")
            .args(["--uts", "--", "/bin/sh", "-c"])
            .arg(format!("echo {UTS_HOST} > /proc/sys/kernel/hostname && echo ready && exec sleep 600"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare --uts");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(c.stdout.take().expect("stdout"));
        let _ = std::io::BufRead::read_line(&mut out, &mut line);
        assert_eq!(line.trim(), "ready", "the UTS namespace for the case did not get its name");
        UtsHolder(c)
    }

    fn uts(&self) -> Uts {
        Uts(Some(self.0.id()))
    }
}

impl Drop for UtsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tail(s: &str) -> String {
    let t: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    t.iter().rev().take(2).rev().cloned().collect::<Vec<_>>().join(" | ").chars().take(200).collect()
}

/// The attack, wrapped: the first thing the session's command does is print the start line; the
/// attack's own output goes to `log` (so that nothing it prints can pass for cordon's summary);
/// the end line carries the attack's exit status.
fn wrapped(run: &str, nonce: &str, log: &Path) -> Vec<String> {
    let wrap = format!(
        "printf '%s\\n' 'escape-start:{nonce}'; /bin/sh -c \"$1\" >\"$2\" 2>&1; rc=$?; printf '%s\\n' \"escape-end:{nonce}:$rc\"; exit $rc"
    );
    vec!["/bin/sh".into(), "-c".into(), wrap, "sh".into(), run.into(), log.display().to_string()]
}

/// What one run printed, taken apart: whether it started, the attack's status, cordon's text.
struct Seen {
    started: bool,
    /// The attack's exit status; None when the session ended before the attack did.
    attack: Option<i32>,
    /// Everything but the start and end lines: cordon's output (the session's command printed
    /// nothing else).
    cordon: String,
    /// The attack's own output.
    attack_out: String,
}

fn seen(out: &RunOut, nonce: &str, log: &Path) -> Seen {
    let start = format!("escape-start:{nonce}");
    let end = format!("escape-end:{nonce}:");
    let mut started = false;
    let mut attack = None;
    let mut cordon = String::new();
    for l in out.stdout.lines().chain(out.stderr.lines()) {
        // Under `script` a line may carry the terminal's leftovers before it.
        let t = l.trim();
        if t.ends_with(&start) {
            started = true;
        } else if let Some(i) = t.find(&end) {
            attack = t[i + end.len()..].parse().ok();
        } else {
            cordon.push_str(t);
            cordon.push('\n');
        }
    }
    let attack_out = std::fs::read_to_string(log).unwrap_or_default();
    Seen { started, attack, cordon, attack_out }
}

/// The lines of cordon's exit summary that say what was refused or limited: the denial list and the
/// limit and note lines; not the process tree, which quotes the command (and so the attack's text).
fn summary_lines(cordon: &str) -> Vec<&str> {
    let mut v = vec![];
    let mut in_denials = false;
    for l in cordon.lines() {
        if l.starts_with("cordon: denied ") {
            in_denials = true;
            continue;
        }
        if in_denials && l.starts_with("cordon:   ") {
            v.push(l);
            continue;
        }
        in_denials = false;
        if l.starts_with("cordon: limit: ") || l.starts_with("cordon: note: ") {
            v.push(l);
        }
    }
    v
}

/// As root, what cordon's report and the sensor's events say about the session.
#[derive(Default)]
struct Evidence {
    /// (layer, what) of every denial the supervisor recorded.
    denials: Vec<(String, String)>,
    /// (layer, call, errno) of the sensor's deny events (cordon's own setup left out).
    sensor_denies: Vec<(String, String, String)>,
    alerts: Vec<String>,
}

fn evidence(report: &Path, events: &Path) -> Evidence {
    let rep: serde_json::Value =
        std::fs::read_to_string(report).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let denials = rep["outcome"]["denials"]["items"]
        .as_array()
        .map(|a| a.iter().map(|d| (s(&d["layer"]), s(&d["what"]))).collect())
        .unwrap_or_default();
    let alerts = rep["alerts"].as_array().map(|a| a.iter().map(|x| s(&x["rule"])).collect()).unwrap_or_default();
    let sensor_denies = std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "deny" && e["setup"] != true)
        .map(|e| (s(&e["layer"]), s(&e["syscall"]), s(&e["errno"])))
        .collect();
    Evidence { denials, sensor_denies, alerts }
}

/// Where CORDON_ESCAPE_DUMP names a directory, what each case's attack saw and what cordon said,
/// for reading why a case was judged as it was.
fn dump(c: &Case, who: Who, s: &Seen, ev: &Evidence, verdict: &str) {
    let Ok(dir) = std::env::var("CORDON_ESCAPE_DUMP") else { return };
    let uname = if who == Who::Root { "root" } else { "nobody" };
    let text = format!(
        "case {} as {uname}: {verdict}\nlayer {:?} errno {:?} report {:?} alert {:?}\n--- attack (exit {:?})\n{}\n--- cordon\n{}\n--- denials {:?}\n--- sensor denies {:?}\n--- alerts {:?}\n",
        c.id, c.layer, c.errno, c.report, c.alert, s.attack, s.attack_out, s.cordon, ev.denials, ev.sensor_denies, ev.alerts
    );
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(Path::new(&dir).join(format!("{}-{uname}.txt", c.id)), text);
}

pub fn run_case(c: &Case, who: Who, n: usize) -> Verdict {
    run_case_with(c, who, n, &[])
}

/// [`run_case`] with more variables for cordon and the control (the ablation matrix's
/// `CORDON_ABLATE`).
pub fn run_case_with(c: &Case, who: Who, n: usize, extra: &[(String, String)]) -> Verdict {
    if let Some(k) = &c.known_limit {
        return Verdict::KnownLimit(k.clone());
    }
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
        // Known to the harness only: the attack cannot print it by accident.
        let nonce = format!(
            "{mark}-{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        );
        let listeners = Listeners::start(&mark, who, &e.home);
        let holder = c.own_uts.unwrap_or(false).then(UtsHolder::start);
        let uts = holder.as_ref().map_or(Uts(None), UtsHolder::uts);
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
        vars.extend(extra.iter().cloned());
        if let Some(s) = &c.setup {
            if !host_sh(&e, s, &vars, true, uts) {
                // A setup that half worked (an IPC object made, then a step refused) is undone first.
                if let Some(clean) = &c.cleanup {
                    host_sh(&e, clean, &vars, false, uts);
                }
                let _ = vic.kill();
                let _ = vic.wait();
                panic!("{}: setup failed", c.id);
            }
        }
        let policy = e.root.join("policy.toml");
        let (report, events) = (e.root.join("report.json"), e.root.join("events.jsonl"));
        if let Some(extra) = &c.policy {
            let extra = extra
                .replace("$ROOT", &e.root.display().to_string())
                .replace("$HOME", &e.home.display().to_string())
                .replace("$WS", &e.ws.display().to_string());
            write(&policy, &format!("version = 1\nextends = [\"builtin:agent\"]\n{extra}\n"));
        }
        if who == Who::Nobody {
            e.chown_all();
        }
        let log = e.ws.join(format!(".escape-attack-{mark}.log"));
        let mut argv: Vec<String> = vec![];
        if inside {
            argv.extend([
                env!("CARGO_BIN_EXE_cordon").to_string(),
                "run".into(),
                "--policy".into(),
                policy.display().to_string(),
                "--report".into(),
                report.display().to_string(),
            ]);
            if who == Who::Nobody {
                argv.push("--allow-degraded".into());
            } else {
                // As root the sensor watches too: its deny events and the rules' alerts are checked.
                argv.extend(["--events".into(), events.display().to_string()]);
            }
            argv.push("--".into());
        }
        argv.extend(wrapped(&c.run, &nonce, &log));
        let out = run_as(&e, &argv, &vars, c.tty.unwrap_or(false), Duration::from_secs(30), uts);
        // The end of the attack: the session (cordon, and with it every process of the session)
        // has exited; connections still on their way get SETTLE to arrive.
        std::thread::sleep(SETTLE);
        let s = seen(&out, &nonce, &log);
        let ev = if inside { evidence(&report, &events) } else { Evidence::default() };
        let host_ok = c.check.as_ref().map(|s| host_sh(&e, s, &vars, true, uts)).unwrap_or(true);
        let net_hits = |l: &Listeners| c.net.as_deref().map(|n| l.count(n)).unwrap_or(0);
        let worked_now = match (&c.net, c.host_effect.unwrap_or(false)) {
            (Some(_), _) => net_hits(&listeners) > 0,
            (None, true) => !host_ok,
            (None, false) => s.attack == Some(0),
        };
        if let Some(s) = &c.cleanup {
            host_sh(&e, s, &vars, false, uts);
        }
        let _ = vic.kill();
        let _ = vic.wait();
        // Arrivals up to now (after the cleanup) count as well.
        let worked = worked_now || net_hits(&listeners) > 0;
        if let Some(n) = &c.net {
            assert!(listeners.known(n), "{}: no listener `{n}`", c.id);
        }
        drop(listeners);
        drop(holder);
        let verdict = judge(c, who, inside, &out, &s, &ev, worked, host_ok);
        if inside || verdict.is_some() {
            let v = verdict.unwrap_or_else(|| Verdict::SetupFailed("no verdict".into()));
            dump(c, who, &s, &ev, &format!("{v:?}"));
            return v;
        }
    }
    unreachable!("the inside run returns a verdict")
}

/// None: the control worked, go on with the attack inside.
#[allow(clippy::too_many_arguments)]
fn judge(
    c: &Case,
    who: Who,
    inside: bool,
    out: &RunOut,
    s: &Seen,
    ev: &Evidence,
    worked: bool,
    host_ok: bool,
) -> Option<Verdict> {
    let said = || format!("exit {:?}: {}", s.attack, tail(&s.attack_out));
    if !s.started {
        let whose = if inside { "the session" } else { "the control" };
        return Some(Verdict::SetupFailed(format!(
            "{whose} did not start (no start line; exit {:?}): {}",
            out.code,
            tail(&s.cordon)
        )));
    }
    if out.code.is_none() {
        return Some(Verdict::TimedOut(format!("stopped after 30 s ({})", if inside { "inside" } else { "control" })));
    }
    if !inside {
        if !worked {
            return Some(Verdict::Skipped(format!("the attack does not work here without cordon either: {}", said())));
        }
        return None;
    }
    if worked {
        return Some(Verdict::Escaped(said()));
    }
    if !host_ok {
        return Some(Verdict::HostChanged(said()));
    }
    let lay = c.layer.as_deref().and_then(layer);
    if let Some(e) = &c.errno {
        let texts = errno_texts(e).unwrap_or_default();
        // Tools that word an errno their own way (mount(8): "permission denied"): as root the
        // sensor's deny event of the named layer carries the errno the call returned.
        let by_sensor =
            lay.and_then(|l| l.sensor).is_some_and(|want| ev.sensor_denies.iter().any(|(l, _, x)| l == want && x == e));
        if !by_sensor && !texts.iter().any(|t| s.attack_out.contains(t.as_str())) {
            return Some(Verdict::WrongReason(format!("the attack did not see {e}: {}", said())));
        }
    }
    let root = who == Who::Root;
    let reported = c.report.as_ref().map(|r| {
        let in_summary = summary_lines(&s.cordon).iter().any(|l| l.contains(r.as_str()));
        let denial = c.layer.as_deref() != Some("seccomp")
            || ev.denials.iter().any(|(l, w)| l == "seccomp" && w.contains(r.as_str()));
        in_summary && denial
    });
    let sensed = match (root, lay.and_then(|l| l.sensor), &c.unsensed) {
        (true, Some(want), None) => Some(ev.sensor_denies.iter().any(|(l, _, _)| l == want)),
        _ => None,
    };
    let alerted = match (root, &c.alert) {
        (true, Some(a)) => Some(ev.alerts.iter().any(|x| x == a)),
        _ => None,
    };
    Some(Verdict::Blocked {
        reported,
        sensed,
        alerted,
        any_deny: !ev.sensor_denies.is_empty(),
        any_alert: !ev.alerts.is_empty(),
    })
}

/// The judging itself, on made-up runs: what the old harness counted as blocked and reported.
#[cfg(test)]
mod judging {
    use super::*;

    fn case(extra: &str) -> Case {
        let t = format!("[[case]]\nid = \"x\"\ncat = 6\nwhat = \"x\"\nrun = \"true\"\n{extra}\n");
        let cs: crate::case::Cases = toml::from_str(&t).expect("case");
        cs.case.into_iter().next().expect("one")
    }

    fn run(stdout: &str, stderr: &str, code: i32) -> RunOut {
        RunOut { code: Some(code), stdout: stdout.into(), stderr: stderr.into() }
    }

    fn judged(c: &Case, who: Who, out: &RunOut, attack_out: &str, ev: &Evidence) -> Verdict {
        let log = std::env::temp_dir().join(format!("escape-judging-{}-{}", std::process::id(), c.id.len()));
        let _ = std::fs::remove_file(&log);
        let mut s = seen(out, "N", &log);
        s.attack_out = attack_out.into();
        judge(c, who, true, out, &s, ev, false, true).expect("verdict")
    }

    const SECCOMP: &str = "layer = \"seccomp\"\nerrno = \"EPERM\"\nreport = \"reboot(\"";

    #[test]
    fn a_session_without_its_start_line_is_a_setup_failure_not_a_block() {
        let out = run("", "cordon: could not confine the command, so it did not run: no cgroup", 125);
        let v = judged(&case(SECCOMP), Who::Nobody, &out, "", &Evidence::default());
        assert!(matches!(v, Verdict::SetupFailed(_)), "{v:?}");
    }

    #[test]
    fn the_attacks_own_words_and_the_process_tree_are_not_a_report() {
        // The probe says "reboot: refused", the process tree quotes the command; cordon recorded
        // no denial (as when the seccomp rule is gone and the missing capability refuses).
        let out = run(
            "escape-start:N\nescape-end:N:1\n",
            "cordon: session s ended: exit 1\ncordon: process tree (2 processes):\ncordon:   1 sh -c $P syscall reboot( 0\n",
            1,
        );
        let v = judged(&case(SECCOMP), Who::Nobody, &out, "reboot: refused (ret -1, EPERM)", &Evidence::default());
        assert!(matches!(v, Verdict::Blocked { reported: Some(false), .. }), "{v:?}");
    }

    #[test]
    fn a_summary_line_without_the_json_denial_is_not_a_report() {
        let out =
            run("escape-start:N\nescape-end:N:1\n", "cordon: denied 1 operation:\ncordon:   reboot() by x[1]\n", 1);
        let v = judged(&case(SECCOMP), Who::Nobody, &out, "EPERM", &Evidence::default());
        assert!(matches!(v, Verdict::Blocked { reported: Some(false), .. }), "{v:?}");
        let ev = Evidence { denials: vec![("seccomp".into(), "reboot()".into())], ..Default::default() };
        let v = judged(&case(SECCOMP), Who::Nobody, &out, "EPERM", &ev);
        assert!(matches!(v, Verdict::Blocked { reported: Some(true), .. }), "{v:?}");
    }

    #[test]
    fn as_root_a_seccomp_case_needs_the_sensors_seccomp_deny() {
        let out =
            run("escape-start:N\nescape-end:N:1\n", "cordon: denied 1 operation:\ncordon:   reboot() by x[1]\n", 1);
        let mut ev = Evidence {
            denials: vec![("seccomp".into(), "reboot()".into())],
            sensor_denies: vec![("dac".into(), "reboot".into(), "EPERM".into())],
            alerts: vec![],
        };
        let v = judged(&case(SECCOMP), Who::Root, &out, "EPERM", &ev);
        assert!(matches!(v, Verdict::Blocked { sensed: Some(false), .. }), "{v:?}");
        ev.sensor_denies.push(("seccomp".into(), "reboot".into(), "EPERM".into()));
        let v = judged(&case(SECCOMP), Who::Root, &out, "EPERM", &ev);
        assert!(matches!(v, Verdict::Blocked { sensed: Some(true), reported: Some(true), .. }), "{v:?}");
    }

    #[test]
    fn a_failure_with_another_errno_is_the_wrong_reason() {
        let out = run("escape-start:N\nescape-end:N:1\n", "", 1);
        let c = case("layer = \"readonly\"\nerrno = \"EROFS\"");
        let v =
            judged(&c, Who::Nobody, &out, "chmod: cannot access 'x': No such file or directory", &Evidence::default());
        assert!(matches!(v, Verdict::WrongReason(_)), "{v:?}");
        let v = judged(&c, Who::Nobody, &out, "chmod: x: Read-only file system", &Evidence::default());
        assert!(matches!(v, Verdict::Blocked { .. }), "{v:?}");
    }
}
