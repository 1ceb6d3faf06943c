//! The sensor against the real kernel, as root: killing through bpf_send_signal and cgroup.kill,
//! several sessions in one loaded object (each gets only its own events, its own network rules and
//! its own loss count; one can be removed while the others run), and nothing left behind
//! (programs, maps, cgroups, mounts). Each kill test first shows the process survives without the
//! kill (the control). As another user these fail unless CORDON_TESTS_ALLOW_SKIP=1, which counts
//! them as skipped.
//!
//! The tests of this binary run one at a time (`serial`): what one checks (this process's BPF file
//! descriptors) is what the other's sensor holds while it runs.

use cordon_sensor::{Config, Event, Feed, NetRules, Sensor};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn need_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CORDON_TESTS_ALLOW_SKIP").is_some() {
        eprintln!("SKIPPED: needs root");
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.log");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"cordon-sensor kernel tests: needs root\n"));
        return false;
    }
    panic!("needs root (loads BPF programs); set CORDON_TESTS_ALLOW_SKIP=1 to skip explicitly");
}

/// A cgroup of this test's own under the v2 hierarchy's cordon/ subtree, removed on drop.
struct Cg(PathBuf);

impl Cg {
    fn new(tag: &str) -> Cg {
        let root = cordon_sensor::cgroup::v2_root().expect("cgroup v2 is mounted on these hosts");
        let d = root.join("cordon").join(format!("test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create test cgroup");
        Cg(d)
    }

    /// A process that enters this cgroup itself, then makes a system call every millisecond.
    fn spawn_busy(&self) -> Child {
        let script = format!("echo $$ > {}/cgroup.procs && exec python3 -c 'import os,time\nwhile True:\n os.getppid(); time.sleep(0.001)'", self.0.display());
        Command::new("sh").args(["-c", &script]).spawn().expect("spawn")
    }

    /// Runs `cmd` (a shell command) in a process that first enters this cgroup; waits for it.
    /// Returns its pid and exit status.
    fn run(&self, cmd: &str) -> (u32, Option<i32>) {
        let script = format!("echo $$ > {}/cgroup.procs && exec {cmd}", self.0.display());
        let mut c =
            Command::new("sh").args(["-c", &script]).stdout(std::process::Stdio::null()).spawn().expect("spawn");
        let pid = c.id();
        (pid, c.wait().expect("wait").code())
    }

    /// The cgroup's id, as the kernel's filter sees it (its inode).
    fn id(&self) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&self.0).expect("cgroup"))
    }

    fn procs(&self) -> usize {
        std::fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default().lines().count()
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        for _ in 0..200 {
            if std::fs::remove_dir(&self.0).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(p) = self.0.parent() {
            let _ = std::fs::remove_dir(p);
        }
    }
}

fn sensor(cg: &Cg, idle: Duration) -> Sensor {
    Sensor::start(Config {
        session: "test".into(),
        cgroup: cg.0.clone(),
        net: Some(NetRules { loopback_only: true, allow: vec![] }),
        attribution: Default::default(),
        seccomp_watch: vec![],
        session_start: false,
        ring_bytes: 1 << 20,
        idle_read: idle,
        sink: Box::new(|_| {}),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

type Seen = Arc<Mutex<Vec<Event>>>;

/// A sink that keeps every event it is handed.
fn collect() -> (Seen, cordon_sensor::sensor::Sink) {
    let seen: Seen = Default::default();
    let s = seen.clone();
    (
        seen,
        Box::new(move |f| {
            if let Feed::Event(e) = f {
                s.lock().unwrap_or_else(|e| e.into_inner()).push(e.clone());
            }
        }),
    )
}

fn watch(cg: &Cg, ring_bytes: u32, net: Option<NetRules>, sink: cordon_sensor::sensor::Sink) -> Sensor {
    Sensor::start(Config {
        session: cg.0.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        cgroup: cg.0.clone(),
        net,
        attribution: Default::default(),
        seccomp_watch: vec![],
        session_start: false,
        ring_bytes,
        idle_read: cordon_sensor::IDLE_READ,
        sink,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn opened(seen: &Seen, path: &Path) -> usize {
    let p = path.to_string_lossy();
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|e| e.kind.as_str() == "open" && e.path.as_deref() == Some(&*p))
        .count()
}

fn wait_opened(seen: &Seen, path: &Path, n: usize) {
    let t = Instant::now();
    while opened(seen, path) < n {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{} was opened {n} times but the sensor did not report it",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A file of this test's own, removed on drop.
struct Marker(PathBuf);

impl Marker {
    fn new(tag: &str) -> Marker {
        let p = std::env::temp_dir().join(format!("cordon-sensor-test-{}-{tag}", std::process::id()));
        std::fs::write(&p, tag).expect("marker");
        Marker(p)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The cgroup ids in the kernel's `sessions` map of the sensor this process holds: which sessions
/// the loaded programs report on, as the kernel sees it.
fn watched_in_kernel() -> Vec<u64> {
    let (_, maps) = held_ids();
    let mut v = vec![];
    for id in maps {
        use libbpf_rs::MapCore;
        let Ok(m) = libbpf_rs::MapHandle::from_map_id(id) else { continue };
        if m.name().to_str() == Some("sessions") {
            v.extend(m.keys().filter_map(|k| k.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes)));
        }
    }
    v.sort_unstable();
    v
}

const UDP_CONNECT: &str = "python3 -c 'import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ntry: s.connect((sys.argv[1],9))\nexcept PermissionError: sys.exit(7)'";

fn wait_exit(c: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn wait_in_cgroup(cg: &Cg, n: usize) {
    let t = Instant::now();
    while cg.procs() < n {
        assert!(t.elapsed() < Duration::from_secs(5), "processes did not join the cgroup");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bpf_send_signal_kills_one_process_and_cgroup_kill_the_session() {
    use std::os::unix::process::ExitStatusExt;
    if !need_root() {
        return;
    }
    let _serial = serial();
    let cg = Cg::new("kill");
    let s = sensor(&cg, cordon_sensor::IDLE_READ);
    let mut a = cg.spawn_busy();
    let mut b = cg.spawn_busy();
    wait_in_cgroup(&cg, 2);
    // Control: left alone, both keep running.
    assert!(wait_exit(&mut a, Duration::from_millis(300)).is_none(), "control: a survives");
    s.signal_process(a.id(), 9);
    let st = wait_exit(&mut a, Duration::from_secs(3)).expect("killed by bpf_send_signal at its next syscall");
    assert_eq!(st.signal(), Some(9));
    assert!(wait_exit(&mut b, Duration::from_millis(200)).is_none(), "only the named process died");
    let mut c = cg.spawn_busy();
    wait_in_cgroup(&cg, 2);
    s.kill_session().expect("cgroup.kill");
    for (n, ch) in [("b", &mut b), ("c", &mut c)] {
        let st = wait_exit(ch, Duration::from_secs(3)).unwrap_or_else(|| panic!("{n} killed by cgroup.kill"));
        assert_eq!(st.signal(), Some(9), "{n}");
    }
    let sum = s.finish();
    assert_eq!(sum.lost, 0);
}

/// The ids of the BPF programs and maps this process holds open (from /proc/self/fdinfo).
fn held_ids() -> (Vec<u32>, Vec<u32>) {
    let (mut progs, mut maps) = (vec![], vec![]);
    for e in std::fs::read_dir("/proc/self/fdinfo").expect("fdinfo").flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for l in text.lines() {
            let id = |k: &str| l.strip_prefix(k).and_then(|v| v.trim().parse::<u32>().ok());
            if let Some(n) = id("prog_id:") {
                progs.push(n);
            } else if let Some(n) = id("map_id:") {
                maps.push(n);
            }
        }
    }
    progs.sort_unstable();
    progs.dedup();
    maps.sort_unstable();
    maps.dedup();
    (progs, maps)
}

/// Of these program and map ids, the ones the kernel still has loaded (by anyone).
fn still_loaded(progs: &[u32], maps: &[u32]) -> Vec<String> {
    let mut v: Vec<String> = libbpf_rs::query::ProgInfoIter::default()
        .filter(|p| progs.contains(&p.id))
        .map(|p| format!("prog {} {}", p.id, p.name.to_string_lossy()))
        .collect();
    v.extend(
        libbpf_rs::query::MapInfoIter::default()
            .filter(|m| maps.contains(&m.id))
            .map(|m| format!("map {} {}", m.id, m.name.to_string_lossy())),
    );
    v
}

/// tracefs and bpffs mounts as this process sees them (whole mountinfo lines, mount ids included).
fn trace_bpf_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(" - tracefs ") || l.contains(" - bpf "))
        .map(str::to_string)
        .collect()
}

#[test]
fn nothing_is_left_behind() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let mounts_before = trace_bpf_mounts();
    let (progs_before, maps_before) = held_ids();
    assert!(progs_before.is_empty() && maps_before.is_empty(), "no BPF object is held before the sensor starts");
    let dir;
    let (progs, maps);
    {
        let cg = Cg::new("cleanup");
        dir = cg.0.clone();
        let s = sensor(&cg, cordon_sensor::IDLE_READ);
        (progs, maps) = held_ids();
        assert!(
            progs.len() >= 10 && maps.len() >= 5,
            "the sensor's programs and maps are held while it runs: progs {progs:?}, maps {maps:?}"
        );
        assert!(still_loaded(&progs, &maps).len() == progs.len() + maps.len(), "the kernel lists them all");
        // The programs are tp_btf and cgroup-bpf links: the sensor mounts nothing (a mount would
        // outlive a cordon killed with SIGKILL).
        assert_eq!(trace_bpf_mounts(), mounts_before, "the sensor mounts neither tracefs nor bpffs while it runs");
        let mut p = cg.spawn_busy();
        wait_in_cgroup(&cg, 1);
        let _ = p.kill();
        let _ = p.wait();
        let sum = s.finish();
        assert!(sum.events > 0, "events were seen");
    }
    // Program and map ids are released asynchronously (RCU); allow a moment.
    let t = Instant::now();
    while !still_loaded(&progs, &maps).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(still_loaded(&progs, &maps), Vec::<String>::new(), "no program or map of the sensor remains");
    assert_eq!(held_ids(), (vec![], vec![]), "no BPF file descriptor remains open");
    assert!(!dir.exists(), "the test cgroup is gone");
    assert_eq!(trace_bpf_mounts(), mounts_before, "the mount table is as it was");
}

#[test]
fn two_sessions_in_one_loaded_object_each_get_only_their_own_events() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let (a, b) = (Cg::new("one"), Cg::new("two"));
    let (ma, mb, mo) = (Marker::new("one"), Marker::new("two"), Marker::new("outside"));
    let (seen_a, sink_a) = collect();
    let (seen_b, sink_b) = collect();
    let sa = watch(&a, 1 << 20, None, sink_a);
    let (progs_one, _) = held_ids();
    let sb = watch(&b, 1 << 20, None, sink_b);
    let (progs_two, _) = held_ids();
    assert_eq!(progs_two, progs_one, "the second session loads no program of its own: both share one loaded object");
    assert_eq!(
        watched_in_kernel(),
        {
            let mut v = vec![a.id(), b.id()];
            v.sort_unstable();
            v
        },
        "the kernel's session map holds both cgroups"
    );
    let (pa, ok_a) = a.run(&format!("cat {}", ma.0.display()));
    let (pb, ok_b) = b.run(&format!("cat {}", mb.0.display()));
    assert_eq!((ok_a, ok_b), (Some(0), Some(0)));
    // Control: the same open outside every session is nobody's event.
    assert!(Command::new("cat").arg(&mo.0).output().expect("cat").status.success());
    wait_opened(&seen_a, &ma.0, 1);
    wait_opened(&seen_b, &mb.0, 1);
    let (sum_a, sum_b) = (sa.finish(), sb.finish());
    for (name, seen, own, pid, others) in [("one", &seen_a, &ma, pa, [&mb, &mo]), ("two", &seen_b, &mb, pb, [&ma, &mo])]
    {
        assert_eq!(opened(seen, &own.0), 1, "{name} saw its own open once");
        for o in others {
            assert_eq!(opened(seen, &o.0), 0, "{name} saw {}", o.0.display());
        }
        let strangers: Vec<String> =
            seen.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|e| e.pid != pid).map(|e| e.line()).collect();
        assert!(strangers.is_empty(), "{name}'s events all come from its one process {pid}: {strangers:?}");
    }
    for (name, s) in [("one", &sum_a), ("two", &sum_b)] {
        assert!(s.events > 0 && s.lost == 0, "{name}: {s:?}");
        assert_eq!(s.attempted, s.events + s.lost + s.decode_errors, "{name}: offered = read + lost");
    }
}

#[test]
fn a_session_removed_at_run_time_stops_receiving_events_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let (progs, maps);
    let dirs;
    {
        let (a, b) = (Cg::new("stays"), Cg::new("leaves"));
        dirs = [a.0.clone(), b.0.clone()];
        let (ma, mb) = (Marker::new("stays"), Marker::new("leaves"));
        let (seen_a, sink_a) = collect();
        let (seen_b, sink_b) = collect();
        let loopback = || Some(NetRules { loopback_only: true, allow: vec![] });
        let sa = watch(&a, 1 << 20, loopback(), sink_a);
        let sb = watch(&b, 1 << 20, loopback(), sink_b);
        (progs, maps) = held_ids();
        assert_eq!(b.run(&format!("cat {}", mb.0.display())).1, Some(0));
        wait_opened(&seen_b, &mb.0, 1);
        // While watched, b's network rule holds (its cgroup-bpf programs are attached).
        assert_eq!(b.run(&format!("{UDP_CONNECT} 198.51.100.7")).1, Some(7), "refused while watched");
        let sum_b = sb.finish();
        assert!(sum_b.events > 0 && sum_b.attempted == sum_b.events + sum_b.lost, "{sum_b:?}");
        assert_eq!(watched_in_kernel(), vec![a.id()], "the kernel no longer reports on the removed session");
        let after = seen_b.lock().unwrap_or_else(|e| e.into_inner()).len();
        // b's cgroup lives on without a sensor: its processes are nobody's events and its network
        // programs are gone; a keeps being watched.
        assert_eq!(b.run(&format!("cat {}", mb.0.display())).1, Some(0));
        assert_eq!(b.run(&format!("{UDP_CONNECT} 198.51.100.7")).1, Some(0), "b's network programs left with it");
        assert_eq!(a.run(&format!("{UDP_CONNECT} 198.51.100.7")).1, Some(7), "a's network rule still holds");
        assert_eq!(a.run(&format!("cat {}", ma.0.display())).1, Some(0));
        wait_opened(&seen_a, &ma.0, 1);
        assert_eq!(seen_b.lock().unwrap_or_else(|e| e.into_inner()).len(), after, "b gets nothing after its removal");
        assert_eq!(opened(&seen_a, &mb.0), 0, "a never sees b's events");
        let sum_a = sa.finish();
        assert!(sum_a.lost == 0 && sum_a.attempted == sum_a.events + sum_a.lost, "{sum_a:?}");
    }
    let t = Instant::now();
    while !still_loaded(&progs, &maps).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(still_loaded(&progs, &maps), Vec::<String>::new(), "no program or map of the sensor remains");
    assert_eq!(held_ids(), (vec![], vec![]), "no BPF file descriptor remains open");
    for d in dirs {
        assert!(!d.exists(), "{} is gone", d.display());
    }
}

#[test]
fn loss_is_counted_per_session() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let (a, b) = (Cg::new("tiny"), Cg::new("roomy"));
    let (ma, mb) = (Marker::new("tiny"), Marker::new("roomy"));
    let (seen_a, sink_a) = collect();
    let (seen_b, sink_b) = collect();
    // The roomy one first: the tiny one's ring is then one of its own (the first session of a
    // process uses the object's ring, whose overflow the CLI's tests cover).
    let sb = watch(&b, 4 << 20, None, sink_b);
    let sa = watch(&a, 4096, None, sink_a);
    let opens = |m: &Marker, n: usize| {
        format!("python3 -c 'import os\nfor _ in range({n}): os.close(os.open(\"{}\", os.O_RDONLY))'", m.0.display())
    };
    let (n_a, n_b) = (30_000, 300);
    // Both at once: the flood in one session must not cost the other anything.
    let flood = {
        let (a_cmd, dir) = (opens(&ma, n_a), a.0.clone());
        std::thread::spawn(move || {
            let script = format!("echo $$ > {}/cgroup.procs && exec {a_cmd}", dir.display());
            Command::new("sh").args(["-c", &script]).status().expect("flood").code()
        })
    };
    assert_eq!(b.run(&opens(&mb, n_b)).1, Some(0));
    assert_eq!(flood.join().expect("flood thread"), Some(0));
    wait_opened(&seen_b, &mb.0, n_b);
    let (sum_a, sum_b) = (sa.finish(), sb.finish());
    assert!(sum_a.lost > 0, "a 4 KiB ring must overflow under {n_a} opens: {sum_a:?}");
    assert_eq!(
        sum_a.attempted,
        sum_a.events + sum_a.lost + sum_a.decode_errors,
        "offered = read + lost, for the tiny one"
    );
    assert_eq!(sum_a.lost_per_cpu.iter().sum::<u64>(), sum_a.lost);
    let in_stream: u64 = seen_a
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|e| e.kind.as_str() == "loss")
        .filter_map(|e| e.lost)
        .sum();
    assert_eq!(in_stream, sum_a.lost, "its event stream reports the same loss");
    let seen = opened(&seen_a, &ma.0) as u64;
    assert!(
        seen < n_a as u64 && seen + sum_a.lost >= n_a as u64,
        "opens seen ({seen}) + lost ({}) cover the {n_a} made",
        sum_a.lost
    );
    assert_eq!(sum_b.lost, 0, "the other session lost nothing: {sum_b:?}");
    assert_eq!(sum_b.attempted, sum_b.events + sum_b.decode_errors, "offered = read, for the roomy one");
    assert_eq!(opened(&seen_b, &mb.0), n_b, "every open of the roomy session was seen");
    assert!(
        seen_b.lock().unwrap_or_else(|e| e.into_inner()).iter().all(|e| e.kind.as_str() != "loss"),
        "no loss event in the roomy session"
    );
    assert_eq!(opened(&seen_b, &ma.0) + opened(&seen_a, &mb.0), 0, "neither saw the other's opens");
}

#[test]
fn network_rules_stay_per_session() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let allowed: IpAddr = "198.51.100.7".parse().expect("ip");
    let (a, b, c) = (Cg::new("allow"), Cg::new("strict"), Cg::new("open"));
    let (seen_b, sink_b) = collect();
    let (seen_c, sink_c) = collect();
    let sa =
        watch(&a, 1 << 20, Some(NetRules { loopback_only: true, allow: vec![(allowed, Some(9))] }), Box::new(|_| {}));
    let sb = watch(&b, 1 << 20, Some(NetRules { loopback_only: true, allow: vec![] }), sink_b);
    let sc = watch(&c, 1 << 20, Some(NetRules { loopback_only: false, allow: vec![] }), sink_c);
    let outside =
        |ip: &str| Command::new("sh").args(["-c", &format!("{UDP_CONNECT} {ip}")]).status().expect("control").code();
    for ip in ["198.51.100.7", "198.51.100.8"] {
        assert_eq!(outside(ip), Some(0), "control: outside every session, connecting to {ip} works");
    }
    let connect = |cg: &Cg, ip: &str| cg.run(&format!("{UDP_CONNECT} {ip}")).1;
    assert_eq!(connect(&a, "198.51.100.7"), Some(0), "a's allow list lets it reach 198.51.100.7:9");
    assert_eq!(connect(&a, "198.51.100.8"), Some(7), "and nothing else");
    assert_eq!(connect(&b, "198.51.100.7"), Some(7), "a's allow list is not b's");
    assert_eq!(connect(&c, "198.51.100.8"), Some(0), "c only observes");
    let (_, _, _) = (sa.finish(), sb.finish(), sc.finish());
    let nets = |s: &Seen, verdict: &str| {
        s.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.kind.as_str() == verdict && e.addr.as_deref().is_some_and(|x| x.starts_with("198.51.100.")))
            .count()
    };
    assert!(nets(&seen_b, "deny") >= 1, "b's refusal is b's event");
    assert_eq!(nets(&seen_c, "deny"), 0, "c was refused nothing");
    assert!(nets(&seen_c, "net") >= 1, "c's connect is c's event");
}

#[test]
fn a_signal_asked_by_one_session_does_not_reach_another() {
    use std::os::unix::process::ExitStatusExt;
    if !need_root() {
        return;
    }
    let _serial = serial();
    let (a, b) = (Cg::new("asks"), Cg::new("other"));
    let sa = watch(&a, 1 << 20, None, Box::new(|_| {}));
    let sb = watch(&b, 1 << 20, None, Box::new(|_| {}));
    let mut p = b.spawn_busy();
    wait_in_cgroup(&b, 1);
    sa.signal_process(p.id(), 9);
    assert!(wait_exit(&mut p, Duration::from_millis(300)).is_none(), "a's request does not kill b's process");
    // Control: b's own request does.
    sb.signal_process(p.id(), 9);
    let st = wait_exit(&mut p, Duration::from_secs(3)).expect("killed at its next syscall");
    assert_eq!(st.signal(), Some(9));
    let _ = (sa.finish(), sb.finish());
}

#[test]
fn eight_sessions_started_from_eight_threads_at_once_each_get_their_own() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    // Each thread waits here for the others, or at most 10 s (a thread that failed does not hang
    // the rest).
    let (ready, live) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let meet = |n: &AtomicUsize| {
        n.fetch_add(1, Ordering::SeqCst);
        let t = Instant::now();
        while n.load(Ordering::SeqCst) < 8 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (ready, live) = (ready.clone(), live.clone());
            std::thread::spawn(move || {
                let cg = Cg::new(&format!("many{i}"));
                let marker = Marker::new(&format!("many{i}"));
                let (seen, sink) = collect();
                meet(&ready);
                let s = watch(&cg, 1 << 20, Some(NetRules { loopback_only: true, allow: vec![] }), sink);
                let (pid, code) = cg.run(&format!("cat {}", marker.0.display()));
                assert_eq!(code, Some(0));
                wait_opened(&seen, &marker.0, 1);
                meet(&live); // every session is live before any ends
                let sum = s.finish();
                assert!(sum.lost == 0 && sum.attempted == sum.events + sum.decode_errors, "session {i}: {sum:?}");
                let strangers: Vec<String> = seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter(|e| e.pid != pid)
                    .map(|e| e.line())
                    .collect();
                assert!(strangers.is_empty(), "session {i} saw only its own process {pid}: {strangers:?}");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a session's thread failed");
    }
    let t = Instant::now();
    while held_ids() != (vec![], vec![]) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(held_ids(), (vec![], vec![]), "the hub went with its last session");
}

/// Ending a quiet session: its reader is woken rather than left to notice at its next read
/// timeout, which every session used to pay on top of unloading. The test makes that timeout 4 s,
/// so a reader left to it would hold `finish` for about 4 s; woken, it takes milliseconds (tens
/// on a loaded machine), far under the 2 s bound. No timing of the machine is judged here.
#[test]
fn finishing_a_quiet_session_wakes_its_reader() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let cg = Cg::new("finish");
    for round in 0..3 {
        let s = sensor(&cg, Duration::from_secs(4));
        // The reader is waiting in its poll by now.
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        s.finish();
        let took = t.elapsed();
        assert!(took < Duration::from_secs(2), "round {round}: finish waited for the reader's timeout: {took:?}");
    }
}

/// A path relative to a directory fd (openat(fd, "name"), as tar and find make them) is made
/// absolute from the directory the fd named at the call, in the kernel. The process closes the fd
/// at once and lives on: /proc/PID/fd/N, which user space used to read when the event came, no
/// longer names it (nor does it once the process has gone).
#[test]
fn a_path_relative_to_a_directory_fd_is_resolved_at_the_call() {
    if !need_root() {
        return;
    }
    let _serial = serial();
    let cg = Cg::new("dirfd");
    let m = Marker::new("dirfd");
    let (dir, name) = (m.0.parent().expect("dir"), m.0.file_name().expect("name").to_string_lossy().into_owned());
    let (seen, sink) = collect();
    let s = watch(&cg, 1 << 20, None, sink);
    let py = format!(
        "import os, time\nd = os.open('{}', os.O_RDONLY)\nos.close(os.open('{name}', os.O_RDONLY, dir_fd=d))\nos.close(d)\ntime.sleep(0.3)",
        dir.display()
    );
    let (_, code) = cg.run(&format!("python3 -c \"{py}\""));
    assert_eq!(code, Some(0));
    let t = Instant::now();
    while opened(&seen, &m.0) == 0 && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let paths: Vec<String> = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|e| e.kind.as_str() == "open" && e.path.as_deref().is_some_and(|p| p.ends_with(&name)))
        .filter_map(|e| e.path.clone())
        .collect();
    s.finish();
    assert_eq!(paths, vec![m.0.display().to_string()], "the open through the directory fd, with its absolute path");
}
