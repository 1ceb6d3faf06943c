//! The sensor against the real kernel, as root: killing through bpf_send_signal and cgroup.kill, and
//! nothing left behind (programs, maps, cgroups, mounts). Each kill test first shows the process
//! survives without the kill (the control). As another user these fail unless
//! CORDON_TESTS_ALLOW_SKIP=1, which counts them as skipped.
//!
//! The tests of this binary run one at a time (`serial`): what one checks (this process's BPF file
//! descriptors) is what the other's sensor holds while it runs.

use cordon_sensor::{Config, NetRules, Sensor};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
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

fn sensor(cg: &Cg) -> Sensor {
    Sensor::start(Config {
        session: "test".into(),
        cgroup: cg.0.clone(),
        net: Some(NetRules { loopback_only: true, allow: vec![] }),
        attribution: Default::default(),
        seccomp_watch: vec![],
        session_start: false,
        ring_bytes: 1 << 20,
        sink: Box::new(|_| {}),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

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
    let s = sensor(&cg);
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
        let s = sensor(&cg);
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
