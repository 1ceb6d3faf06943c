//! Watches one session: adds it to the loaded programs ([`Hub`]), reads its events on a thread of
//! their own, and hands back a summary when the session ends.
//!
//! Back-pressure: the kernel never waits for cordon. Each record is offered to the session's own
//! ring buffer; when it is full the record is dropped and the session's per-CPU counter goes up.
//! The reader polls continuously, emits a `loss` event whenever the counters moved, and the
//! summary gives the totals, so a loss is never silent. The buffer's size (default 16 MiB) sets how
//! long a burst can outrun the reader.

use crate::attribute::Attribution;
use crate::convert::Converter;
use crate::event::Event;
use crate::hub::{Hub, Registration};
use crate::lineage::Lineage;
use crate::raw;
pub use cordon_schema::sensor::{OutputStatus, Summary};
use libbpf_rs::RingBufferBuilder;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
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
    /// How long the reader waits for a quarter of the ring to fill before it reads what is there:
    /// the most an event of a quiet session waits. [`IDLE_READ`] unless a test needs another.
    pub idle_read: Duration,
    pub sink: Sink,
}

/// The reader's wait on a quiet session (see [`Config::idle_read`]).
pub const IDLE_READ: Duration = Duration::from_millis(10);

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

/// One watched session: its reader thread, and its place in the hub (which stays loaded while any
/// of its sessions is watched). [`Sensor::finish`] or dropping it removes the session.
pub struct Sensor {
    stop: Arc<AtomicBool>,
    /// Written when the reader is told to stop, so it stops now rather than at its next timeout.
    wake: UnixStream,
    thread: Option<std::thread::JoinHandle<Summary>>,
    reg: Arc<Registration>,
    pub cgroup: PathBuf,
}

impl Sensor {
    /// Watches one session: adds it to this process's hub (loading the programs if no session of
    /// the process holds them) and returns once its events flow, or with the reason it cannot.
    pub fn start(cfg: Config) -> Result<Sensor, SensorError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(SensorError::NotRoot);
        }
        let t = Instant::now();
        let (hub, loaded) = Hub::shared_or_loaded(cfg.ring_bytes)?;
        let hub_ready = t.elapsed();
        let s = hub.add_session(cfg)?;
        if timing() {
            say(format!(
                "cordon-timing: sensor loaded and attached in {} us (programs {} in {} us, session added in {} us)",
                t.elapsed().as_micros(),
                if loaded { "loaded" } else { "shared" },
                hub_ready.as_micros(),
                (t.elapsed() - hub_ready).as_micros()
            ));
        }
        Ok(s)
    }

    pub(crate) fn attach(hub: Arc<Hub>, cfg: Config) -> Result<Sensor, SensorError> {
        let target = crate::cgroup::target(&cfg.cgroup).map_err(SensorError::Setup)?;
        let reg = Arc::new(hub.register(&target, cfg.net.as_ref(), &cfg.seccomp_watch, cfg.ring_bytes)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = UnixStream::pair().map_err(|e| SensorError::Setup(format!("socketpair: {e}")))?;
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), SensorError>>();
        let mut conv = Converter::new(&cfg.session, cfg.attribution.clone());
        conv.track_setup = cfg.session_start;
        let (st, r) = (stop.clone(), reg.clone());
        let (sink, idle) = (cfg.sink, cfg.idle_read);
        let thread = std::thread::Builder::new()
            .name("cordon-sensor".into())
            .spawn(move || run(r, conv, sink, ready_tx, st, (woken, idle)))
            .map_err(|e| SensorError::Setup(format!("thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Sensor { stop, wake, thread: Some(thread), reg, cgroup: cfg.cgroup }),
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

    /// Sends `sig` to process `pid` from the kernel, at its next system call (bpf_send_signal), if
    /// it is in this session then.
    pub fn signal_process(&self, pid: u32, sig: u32) {
        let _ = self.reg.signal(pid, sig);
    }

    /// Kills every process of the session at once (cgroup.kill).
    pub fn kill_session(&self) -> Result<(), String> {
        std::fs::write(self.cgroup.join("cgroup.kill"), "1")
            .map_err(|e| format!("cgroup.kill in {}: {e}", self.cgroup.display()))
    }

    /// Stops watching the session, reads what is left in its buffer, and returns the summary. The
    /// programs are unloaded if this was the hub's last session.
    pub fn finish(mut self) -> Summary {
        let t = Instant::now();
        if timing() {
            if let Some((runs, took)) = self.reg.hub().program_time() {
                let ns = took.as_nanos() as f64;
                say(format!(
                    "cordon-timing: sensor programs: {runs} runs, {:.1} ms ({:.0} ns per run, every process on the host)",
                    ns / 1e6,
                    ns / runs.max(1) as f64
                ));
            }
        }
        self.tell_stop();
        let sum = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        drop(self);
        if timing() {
            say(format!("cordon-timing: sensor detach and unload {} us", t.elapsed().as_micros()));
        }
        sum
    }
}

impl Sensor {
    fn tell_stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.write(&[1]);
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        self.tell_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn num_cpus() -> usize {
    libbpf_rs::num_possible_cpus().unwrap_or(1).max(1)
}

/// A `CORDON_TIMING` line, in one write (a line in pieces could interleave with other threads').
fn say(line: String) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

fn timing() -> bool {
    std::env::var_os("CORDON_TIMING").is_some()
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
        match self.sum.by_kind.get_mut(e.kind.as_str()) {
            Some(n) => *n += 1,
            None => {
                self.sum.by_kind.insert(e.kind.as_str().to_string(), 1);
            }
        }
        // cordon's own setup of the session is not a refusal of the session's.
        if e.is_deny() && !e.setup {
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
                kind: crate::event::Kind::Loss,
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

/// The session's reader: hands each record to the sink until told to stop, then stops the
/// session's reporting and drains its ring.
fn run(
    reg: Arc<Registration>,
    conv: Converter,
    sink: Sink,
    ready: mpsc::Sender<Result<(), SensorError>>,
    stop: Arc<AtomicBool>,
    (woken, idle): (UnixStream, Duration),
) -> Summary {
    let started = Instant::now();
    let state = std::cell::RefCell::new(State { conv, lineage: Lineage::default(), sink, sum: Summary::default() });
    let mut rb = RingBufferBuilder::new();
    if let Err(e) = rb.add(&reg.ring, |data: &[u8]| {
        state.borrow_mut().record(data);
        0
    }) {
        let _ = ready.send(Err(SensorError::Load(format!("ring buffer: {e}"))));
        return Summary::default();
    }
    let rb = match rb.build() {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(SensorError::Load(format!("ring buffer: {e}"))));
            return Summary::default();
        }
    };
    let _ = ready.send(Ok(()));

    let mut last_drops = vec![0u64; num_cpus()];
    let mut last_check = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        // The programs wake the reader only when a quarter of the ring is waiting: what a timeout
        // leaves is read here. `finish` wakes it through `woken`.
        crate::sys::wait_ring_or(&rb, woken.as_fd(), idle);
        let _ = rb.consume();
        if last_check.elapsed() >= Duration::from_millis(200) {
            last_check = Instant::now();
            let mut st = state.borrow_mut();
            st.loss(&reg.counters().1, &mut last_drops);
            (st.sink)(Feed::Tick);
        }
    }
    let stopped = Instant::now();
    reg.stop();
    // A program that found the session just before it was removed may still be writing: read until
    // every record offered is read or counted lost (briefly; the note below says if it fell short).
    let (offered, dropped) = loop {
        let _ = rb.consume();
        let (offered, dropped) = reg.counters();
        let st = state.borrow();
        let accounted = st.sum.events + st.sum.decode_errors + dropped.iter().sum::<u64>();
        if accounted >= offered.iter().sum::<u64>() || stopped.elapsed() >= Duration::from_millis(100) {
            break (offered, dropped);
        }
        drop(st);
        std::thread::sleep(Duration::from_millis(1));
    };
    drop(rb);
    let mut st = state.into_inner();
    st.loss(&dropped, &mut last_drops);
    (st.sink)(Feed::Tick);
    st.sum.attempted = offered.iter().sum();
    st.sum.lost = dropped.iter().sum();
    st.sum.lost_per_cpu = dropped;
    st.sum.processes = st.lineage.len();
    st.sum.tree = st.lineage.render(200);
    st.sum.seconds = started.elapsed().as_secs_f64();
    if timing() {
        // What the reader itself cost (decoding, converting and whatever the sink does per event).
        let cpu = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
            .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
            .unwrap_or(0.0);
        say(format!(
            "cordon-timing: sensor reader: {} events, {:.1} ms CPU ({:.1} us per event)",
            st.sum.events,
            cpu * 1e3,
            cpu * 1e6 / st.sum.events.max(1) as f64
        ));
    }
    if st.sum.attempted != st.sum.events + st.sum.lost + st.sum.decode_errors {
        st.sum.notes.push(format!(
            "accounting: {} records offered, {} read, {} lost, {} malformed",
            st.sum.attempted, st.sum.events, st.sum.lost, st.sum.decode_errors
        ));
    }
    st.sum
}
