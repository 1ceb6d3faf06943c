//! What the sensor can do on this host, for `cordon doctor`: measured by loading the programs
//! (through the verifier, without attaching anything) when running as root.

use crate::sys::CordonSkelBuilder;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub root: bool,
    pub btf: bool,
    /// kernel.unprivileged_bpf_disabled (1 or 2: only root may load programs).
    pub unprivileged_bpf_disabled: Option<i32>,
    pub cgroup_v2: Option<String>,
    pub tracefs_mounted: bool,
    pub bpffs_mounted: bool,
    /// Some(ms) when every program passed the verifier; the error otherwise; None when not tried.
    pub loads_ms: Option<f64>,
    pub load_error: Option<String>,
    pub usable: bool,
    pub why_not: Option<String>,
    /// The optional BPF-LSM tier: Some(true) when the probe program loads and attaches here, the
    /// kernel's refusal otherwise; None when not tried (not root).
    pub bpf_lsm: Option<bool>,
    pub bpf_lsm_error: Option<String>,
}

pub fn probe() -> Probe {
    let root = nix::unistd::geteuid().is_root();
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    let unpriv =
        std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled").ok().and_then(|s| s.trim().parse().ok());
    let cg = crate::cgroup::v2_root().map(|p| p.display().to_string());
    let mut p = Probe {
        root,
        btf,
        unprivileged_bpf_disabled: unpriv,
        cgroup_v2: cg.clone(),
        tracefs_mounted: crate::mounts::is_mounted(crate::mounts::TRACEFS, "tracefs"),
        bpffs_mounted: crate::mounts::is_mounted(crate::mounts::BPFFS, "bpf"),
        loads_ms: None,
        load_error: None,
        usable: false,
        why_not: None,
        bpf_lsm: None,
        bpf_lsm_error: None,
    };
    if root && btf {
        // libbpf would print the kernel's refusal on stderr; it is reported here instead.
        libbpf_rs::set_print(None);
        match crate::lsm::available() {
            Ok(()) => p.bpf_lsm = Some(true),
            Err(e) => {
                p.bpf_lsm = Some(false);
                p.bpf_lsm_error = Some(e);
            }
        }
    }
    if !btf {
        p.why_not = Some(
            "the kernel exposes no BTF (/sys/kernel/btf/vmlinux): the sensor's programs are CO-RE and need it".into(),
        );
    } else if cg.is_none() {
        p.why_not = Some("no cgroup v2 hierarchy is mounted: the sensor filters sessions by their v2 cgroup id".into());
    } else if !root && unpriv.unwrap_or(1) != 0 {
        p.why_not = Some("only root may load BPF programs here (kernel.unprivileged_bpf_disabled); the sandbox works without the sensor".into());
    } else {
        let t = std::time::Instant::now();
        let mut obj = std::mem::MaybeUninit::uninit();
        let loaded = CordonSkelBuilder::default().open(&mut obj).and_then(|o| o.load()).map(drop);
        match loaded {
            Ok(()) => {
                p.loads_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
                p.usable = true;
            }
            Err(e) => {
                p.load_error = Some(format!("{e:#}"));
                p.why_not = Some(format!("the kernel refused the sensor's programs: {e:#}"));
            }
        }
    }
    p
}
