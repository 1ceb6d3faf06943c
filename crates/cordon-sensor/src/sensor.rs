//! Loads the BPF programs for one session, reads its events on a thread of their own, and hands
//! back a summary when the session ends.
//!
//! Back-pressure: the kernel never waits for cordon. Each record is offered to the ring buffer;
//! when it is full the record is dropped and a per-CPU counter goes up. The reader polls
//! continuously, emits a `loss` event whenever the counters moved, and the summary gives the
//! totals, so a loss is never silent. The buffer's size (default 16 MiB) sets how long a burst
//! can outrun the reader.

use crate::attribute::Attribution;
use crate::convert::Converter;
use crate::event::Event;
use crate::lineage::Lineage;
use crate::raw;
use crate::sys::{CordonSkelBuilder, OpenCordonSkel};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, RingBufferBuilder};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the reader hands its sink: each event, and a tick every 200 ms (also when nothing
/// happened), so a sink that batches can flush while the session is quiet.
pub enum Feed<'a> {
    Event(&'a Event),
    Tick,
}

pub type Sink = Box<dyn FnMut(Feed) + Send>;

/// Network rules enforced in the kernel by cgroup-bpf.
#[derive(Debug, Clone, Default)]
pub struct NetRules {
    /// Refuse every destination but loopback and `allow` (egress = proxy or none). When false the
    /// programs only observe.
    pub loopback_only: bool,
    /// Extra destinations (IP, port; None = any port).
    pub allow: Vec<(IpAddr, Option<u16>)>,
}

pub struct Config {
    pub session: String,
    /// The session's cgroup v2 directory.
    pub cgroup: PathBuf,
    /// Some: attach the cgroup-bpf network programs to the session's cgroup.
    pub net: Option<NetRules>,
    pub attribution: Attribution,
    /// The sensor starts before the session's first process: mark cordon's own setup events.
    pub session_start: bool,
    /// Syscall numbers the session's seccomp filter may refuse: only these (and the recorded ones)
    /// are tracked at entry, which is how a seccomp refusal is told apart.
    pub seccomp_watch: Vec<u32>,
    /// Ring buffer size in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    pub sink: Sink,
}

#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error("the eBPF sensor needs root (CAP_BPF and CAP_PERFMON); this user cannot load BPF programs (kernel.unprivileged_bpf_disabled); the sandbox still works without --monitor")]
    NotRoot,
    #[error("sensor: {0}")]
    Setup(String),
    #[error("sensor: loading the BPF programs failed: {0}")]
    Load(String),
    #[error("sensor: attaching {prog} failed: {err}")]
    Attach { prog: &'static str, err: String },
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub events: u64,
    /// Records the programs tried to hand over (events + lost).
    pub attempted: u64,
    pub lost: u64,
    pub lost_per_cpu: Vec<u64>,
    pub decode_errors: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub denials_total: u64,
    /// The first denials (at most 10000), each with its layer and reason.
    pub denials: Vec<Event>,
    pub processes: usize,
    pub tree: String,
    pub seconds: f64,
    pub notes: Vec<String>,
    /// The events output (`--events`), when there is one: filled in by whoever writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_output: Option<OutputStatus>,
}

/// What became of the events handed to an events output: each one was written whole or is
/// counted in `lost`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct OutputStatus {
    /// The file, fifo or `-` (stdout).
    pub path: String,
    pub written: u64,
    /// Events not written (the first write error and everything after it).
    pub lost: u64,
    /// The first write error.
    pub error: Option<String>,
    /// Events are missing from the output.
    pub incomplete: bool,
    /// A final `loss` line with `incomplete: true` could be written at the end of the output.
    pub marked: bool,
}

enum Ctl {
    Signal(u32, u32),
}

pub struct Sensor {
    stop: Arc<AtomicBool>,
    ctl: mpsc::Sender<Ctl>,
    thread: Option<std::thread::JoinHandle<Summary>>,
    pub cgroup: PathBuf,
}

fn num_cpus() -> usize {
    libbpf_rs::num_possible_cpus().unwrap_or(1).max(1)
}

impl Sensor {
    /// Loads and attaches everything; returns once events flow, or with the reason it cannot.
    pub fn start(cfg: Config) -> Result<Sensor, SensorError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(SensorError::NotRoot);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), SensorError>>();
        let (ctl_tx, ctl_rx) = mpsc::channel::<Ctl>();
        let cgroup = cfg.cgroup.clone();
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cordon-sensor".into())
            .spawn(move || run(cfg, ready_tx, ctl_rx, st))
            .map_err(|e| SensorError::Setup(format!("thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Sensor { stop, ctl: ctl_tx, thread: Some(thread), cgroup }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(SensorError::Setup("the sensor thread ended during setup".into()))
            }
        }
    }

    /// Sends `sig` to process `pid` from the kernel, at its next system call (bpf_send_signal).
    pub fn signal_process(&self, pid: u32, sig: u32) {
        let _ = self.ctl.send(Ctl::Signal(pid, sig));
    }

    /// Kills every process of the session at once (cgroup.kill).
    pub fn kill_session(&self) -> Result<(), String> {
        std::fs::write(self.cgroup.join("cgroup.kill"), "1")
            .map_err(|e| format!("cgroup.kill in {}: {e}", self.cgroup.display()))
    }

    /// Reads what is left in the buffer, detaches and unloads everything, and returns the summary.
    pub fn finish(mut self) -> Summary {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    conv: Converter,
    lineage: Lineage,
    sink: Sink,
    sum: Summary,
}

impl State {
    fn record(&mut self, data: &[u8]) {
        let r = match raw::decode(data) {
            Ok(r) => r,
            Err(_) => {
                self.sum.decode_errors += 1;
                return;
            }
        };
        self.sum.events += 1;
        self.lineage.add(&r);
        let e = self.conv.convert(&r);
        match self.sum.by_kind.get_mut(&e.kind) {
            Some(n) => *n += 1,
            None => {
                self.sum.by_kind.insert(e.kind.clone(), 1);
            }
        }
        if e.is_deny() {
            self.sum.denials_total += 1;
            if self.sum.denials.len() < 10_000 {
                self.sum.denials.push(e.clone());
            }
        }
        (self.sink)(Feed::Event(&e));
    }

    fn loss(&mut self, per_cpu_now: &[u64], last: &mut Vec<u64>) {
        let delta: Vec<u64> = per_cpu_now
            .iter()
            .zip(last.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let total: u64 = delta.iter().sum();
        if total > 0 {
            let e = Event {
                v: crate::event::SCHEMA_VERSION,
                kind: "loss".into(),
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
                session: self.conv.session.clone(),
                lost: Some(total),
                lost_per_cpu: Some(delta),
                ..Default::default()
            };
            *self.sum.by_kind.entry("loss".into()).or_default() += 1;
            (self.sink)(Feed::Event(&e));
        }
        *last = per_cpu_now.to_vec();
    }
}

fn counters(skel: &crate::sys::CordonSkel, idx: u32) -> Vec<u64> {
    match skel.maps.counters.lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY) {
        Ok(Some(v)) => {
            v.iter().map(|b| b.get(..8).and_then(|s| s.try_into().ok()).map(u64::from_ne_bytes).unwrap_or(0)).collect()
        }
        _ => vec![0; num_cpus()],
    }
}

fn configure(open: &mut OpenCordonSkel, cfg: &Config, target: &crate::cgroup::Target) -> Result<(), SensorError> {
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .ok_or_else(|| SensorError::Load("the object has no read-only data section".into()))?;
    ro.target_cgid = target.id;
    ro.target_level = target.level;
    ro.net_mode = u32::from(cfg.net.as_ref().is_some_and(|n| n.loopback_only));
    let pages = (cfg.ring_bytes.max(4096)).next_power_of_two();
    open.maps.events.set_max_entries(pages).map_err(|e| SensorError::Load(format!("ring buffer size {pages}: {e}")))?;
    Ok(())
}

fn run(
    cfg: Config,
    ready: mpsc::Sender<Result<(), SensorError>>,
    ctl: mpsc::Receiver<Ctl>,
    stop: Arc<AtomicBool>,
) -> Summary {
    let started = Instant::now();
    let fail = |e: SensorError| {
        let _ = ready.send(Err(e));
        Summary::default()
    };
    let target = match crate::cgroup::target(&cfg.cgroup) {
        Ok(t) => t,
        Err(e) => return fail(SensorError::Setup(e)),
    };
    let mut obj = std::mem::MaybeUninit::uninit();
    let mut open = match CordonSkelBuilder::default().open(&mut obj) {
        Ok(o) => o,
        Err(e) => return fail(SensorError::Load(format!("{e:#}"))),
    };
    if let Err(e) = configure(&mut open, &cfg, &target) {
        return fail(e);
    }
    if cfg.net.is_none() {
        for p in [
            &mut open.progs.connect4,
            &mut open.progs.connect6,
            &mut open.progs.sendmsg4,
            &mut open.progs.sendmsg6,
            &mut open.progs.sock_create,
        ] {
            p.set_autoload(false);
        }
    }
    let skel = match open.load() {
        Ok(s) => s,
        Err(e) => return fail(SensorError::Load(format!("{e:#}"))),
    };
    // Which syscalls to decode, per this architecture's numbers.
    let mut kinds = vec![[0u8; 4]; 512];
    for (nr, t) in crate::kinds::table(crate::kinds::native_arch()) {
        if let Some(slot) = kinds.get_mut(nr as usize) {
            *slot = [t.kind, t.p1, t.p2, u8::from(t.quiet_ok)];
        }
    }
    for nr in &cfg.seccomp_watch {
        if let Some(slot) = kinds.get_mut(*nr as usize) {
            slot[3] |= 2;
        }
    }
    for (nr, v) in kinds.iter().enumerate().filter(|(_, v)| **v != [0; 4]) {
        if let Err(e) = skel.maps.kinds.update(&(nr as u32).to_ne_bytes(), v, MapFlags::ANY) {
            return fail(SensorError::Load(format!("kinds map: {e}")));
        }
    }
    if let Some(n) = &cfg.net {
        for (ip, port) in &n.allow {
            let mut k = [0u8; 24];
            let (fam, bytes): (u32, Vec<u8>) = match ip {
                IpAddr::V4(a) => (2, a.octets().to_vec()),
                IpAddr::V6(a) => (10, a.octets().to_vec()),
            };
            k[..4].copy_from_slice(&fam.to_ne_bytes());
            k[4..8].copy_from_slice(&u32::from(port.unwrap_or(0)).to_ne_bytes());
            k[8..8 + bytes.len()].copy_from_slice(&bytes);
            if let Err(e) = skel.maps.net_allow.update(&k, &[1], MapFlags::ANY) {
                return fail(SensorError::Load(format!("net_allow map: {e}")));
            }
        }
    }
    let mut links = vec![];
    let tps: [(&'static str, &libbpf_rs::ProgramMut); 5] = [
        ("tp_btf/sys_enter", &skel.progs.sys_enter),
        ("tp_btf/sys_exit", &skel.progs.sys_exit),
        ("tp_btf/sched_process_exec", &skel.progs.on_exec),
        ("tp_btf/sched_process_fork", &skel.progs.on_fork),
        ("tp_btf/sched_process_exit", &skel.progs.on_exit),
    ];
    for (name, p) in tps {
        match p.attach() {
            Ok(l) => links.push(l),
            Err(e) => return fail(SensorError::Attach { prog: name, err: format!("{e:#}") }),
        }
    }
    if cfg.net.is_some() {
        let dir = match std::fs::File::open(&target.dir) {
            Ok(f) => f,
            Err(e) => return fail(SensorError::Setup(format!("open {}: {e}", target.dir.display()))),
        };
        let cg: [(&'static str, &libbpf_rs::ProgramMut); 5] = [
            ("cgroup/connect4", &skel.progs.connect4),
            ("cgroup/connect6", &skel.progs.connect6),
            ("cgroup/sendmsg4", &skel.progs.sendmsg4),
            ("cgroup/sendmsg6", &skel.progs.sendmsg6),
            ("cgroup/sock_create", &skel.progs.sock_create),
        ];
        for (name, p) in cg {
            match p.attach_cgroup(dir.as_raw_fd()) {
                Ok(l) => links.push(l),
                Err(e) => return fail(SensorError::Attach { prog: name, err: format!("{e:#}") }),
            }
        }
    }
    let mut conv = Converter::new(&cfg.session, cfg.attribution.clone());
    conv.track_setup = cfg.session_start;
    let state =
        std::cell::RefCell::new(State { conv, lineage: Lineage::default(), sink: cfg.sink, sum: Summary::default() });
    let mut rb = RingBufferBuilder::new();
    if let Err(e) = rb.add(&skel.maps.events, |data: &[u8]| {
        state.borrow_mut().record(data);
        0
    }) {
        return fail(SensorError::Load(format!("ring buffer: {e}")));
    }
    let rb = match rb.build() {
        Ok(r) => r,
        Err(e) => return fail(SensorError::Load(format!("ring buffer: {e}"))),
    };
    if std::env::var_os("CORDON_TIMING").is_some() {
        eprintln!("cordon-timing: sensor loaded and attached in {} us", started.elapsed().as_micros());
    }
    let _ = ready.send(Ok(()));

    let mut last_drops = vec![0u64; num_cpus()];
    let mut last_check = Instant::now();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let _ = rb.poll(Duration::from_millis(if stopping { 0 } else { 10 }));
        while let Ok(c) = ctl.try_recv() {
            match c {
                Ctl::Signal(pid, sig) => {
                    let _ = skel.maps.kill_tgids.update(&pid.to_ne_bytes(), &sig.to_ne_bytes(), MapFlags::ANY);
                }
            }
        }
        if stopping || last_check.elapsed() >= Duration::from_millis(200) {
            last_check = Instant::now();
            let drops = counters(&skel, 1);
            let mut st = state.borrow_mut();
            st.loss(&drops, &mut last_drops);
            (st.sink)(Feed::Tick);
        }
        if stopping {
            let _ = rb.consume();
            break;
        }
    }
    let t_detach = Instant::now();
    drop(rb);
    let attempted: u64 = counters(&skel, 0).iter().sum();
    let lost_per_cpu = counters(&skel, 1);
    drop(links);
    drop(skel);
    if std::env::var_os("CORDON_TIMING").is_some() {
        eprintln!("cordon-timing: sensor detach and unload {} us", t_detach.elapsed().as_micros());
    }
    let mut st = state.into_inner();
    st.sum.attempted = attempted;
    st.sum.lost = lost_per_cpu.iter().sum();
    st.sum.lost_per_cpu = lost_per_cpu;
    st.sum.processes = st.lineage.len();
    st.sum.tree = st.lineage.render(200);
    st.sum.seconds = started.elapsed().as_secs_f64();
    if st.sum.attempted != st.sum.events + st.sum.lost + st.sum.decode_errors {
        st.sum.notes.push(format!(
            "accounting: {} records offered, {} read, {} lost, {} malformed",
            st.sum.attempted, st.sum.events, st.sum.lost, st.sum.decode_errors
        ));
    }
    st.sum
}
