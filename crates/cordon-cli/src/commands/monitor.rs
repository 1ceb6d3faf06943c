//! `cordon monitor`: attach the eBPF sensor to a running session from outside.

use anyhow::{bail, Result};
use clap::Args;
use cordon_session::{monitor, pipeline};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::path::PathBuf;
use std::time::Duration;

const LONG: &str = "Watch a running session from the kernel, without touching it.

Attaches cordon's eBPF sensor to the session's cgroup and prints what its processes do — exec, fork, \
exit, file, network and privilege calls, every refused call — until the session ends or you press \
Ctrl-C; then prints the process tree and how many events, if any, were lost. Needs root.

SESSION is the id `cordon run` prints (also in `cordon audit ls`), or a prefix of it that no other \
running session shares; --cgroup watches any cgroup v2 \
directory instead. Refusals of filesystem calls are shown as `landlock-or-dac`: only `cordon run \
--monitor`, which knows the session's policy, can tell the two apart.

Examples:
  sudo cordon monitor 67ba503c6b073d01
  sudo cordon monitor --events events.jsonl 67ba503c6b073d01
  sudo cordon monitor --cgroup /sys/fs/cgroup/system.slice/agent.service";

#[derive(Args)]
#[command(about = "Watch a running session with the eBPF sensor", long_about = LONG)]
pub struct MonitorArgs {
    /// The session id, or a prefix of it no other running session shares.
    #[arg(value_name = "SESSION", required_unless_present = "cgroup", conflicts_with = "cgroup")]
    pub session: Option<String>,
    /// A cgroup v2 directory to watch instead of a session.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,
    /// Write every event as a JSON line to FILE (`-` for stdout) instead of the timeline.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// The sensor's ring buffer size.
    #[arg(long, value_name = "SIZE", default_value = "64M")]
    pub sensor_buffer: String,
}

pub fn run(a: MonitorArgs) -> Result<i32> {
    let ring = cordon_policy::units::parse_size(&a.sensor_buffer)
        .map_err(|e| anyhow::anyhow!("--sensor-buffer `{}`: {e}\n  hint: a size such as 64K, 16M", a.sensor_buffer))?;
    if !(4096..=(1 << 30)).contains(&ring) {
        bail!("--sensor-buffer {}: between 4K and 1G", a.sensor_buffer);
    }
    let (dir, name) = match (&a.cgroup, &a.session) {
        (Some(c), _) => (c.clone(), c.display().to_string()),
        (None, Some(s)) => monitor::running_session(s).map_err(|e| anyhow::anyhow!("{e}"))?,
        _ => bail!("name a SESSION or --cgroup PATH"),
    };
    if !dir.is_dir() {
        bail!("--cgroup {}: not a directory", dir.display());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("cordon monitor needs root: this kernel lets only root load BPF programs (kernel.unprivileged_bpf_disabled)");
    }
    let to_stdout = a.events.as_deref() == Some(std::path::Path::new("-"));
    let events_file = match a.events.as_deref() {
        Some(p) if !to_stdout => {
            let o = cordon_session::outputs::Output::open(p, "--events", &mut Default::default());
            Some(o.and_then(|o| o.into_events()).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        _ => None,
    };
    let mut built = pipeline::build(pipeline::Options {
        events: events_file,
        live: a.events.is_none().then(crate::render::live),
        rules: Default::default(),
        kill_cgroup: None,
        audit: None,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if to_stdout {
        let out = pipeline::EventsOut::stdout().map_err(|e| anyhow::anyhow!("--events -: standard output: {e}"))?;
        *built.shared.events_file.lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
    }
    let sink = built.sink.take().ok_or_else(|| anyhow::anyhow!("sink"))?;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    let sensor = monitor::Watch::start(&name, &dir, ring as u32, sink).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("cordon: monitoring {name} ({}); Ctrl-C to stop", dir.display());
    let start = std::time::Instant::now();
    let why = loop {
        std::thread::sleep(Duration::from_millis(100));
        if matches!(sfd.read_signal(), Ok(Some(_))) {
            break "interrupted";
        }
        if !dir.is_dir() || (a.session.is_some() && !monitor::populated(&dir)) {
            break "the session ended";
        }
        if a.duration.is_some_and(|d| start.elapsed().as_secs_f64() >= d) {
            break "--duration reached";
        }
    };
    let mut sum = sensor.finish();
    let _ = built.finish_audit();
    pipeline::finish_events(&built.shared, &name, &[], Some(&mut sum));
    eprintln!("cordon: stopped: {why}");
    crate::render::sensor(&sum, true);
    let unwritten = sum.events_output.as_ref().is_some_and(|o| o.lost > 0);
    Ok(if sum.lost > 0 || unwritten { 3 } else { 0 })
}
