//! The optional BPF-LSM tier, so far a probe: bpf/lsm_probe.bpf.c refuses opens of files named
//! `cordon-lsm-canary`. Loading and attaching it tells whether this kernel runs BPF-LSM programs;
//! opening a canary while it is attached shows that it enforces.

use crate::sys::lsm::LsmProbeSkelBuilder;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use serde::Serialize;
use std::path::Path;

pub const CANARY: &str = "cordon-lsm-canary";

#[derive(Debug, Clone, Serialize)]
pub struct Canary {
    /// The open of the canary while the program was attached failed with EPERM.
    pub denied_while_attached: bool,
    /// The same open after detaching worked.
    pub allowed_after: bool,
    /// The program's own count of refusals.
    pub program_denials: u64,
}

/// Whether BPF-LSM programs load and attach here (Err names the reason: the kernel's answer).
pub fn available() -> Result<(), String> {
    let mut obj = std::mem::MaybeUninit::uninit();
    let open = LsmProbeSkelBuilder::default().open(&mut obj).map_err(|e| format!("open: {e:#}"))?;
    let mut skel = open.load().map_err(|e| format!("load: {e:#}"))?;
    skel.attach().map_err(|e| format!("attach: {e:#}"))?;
    Ok(())
}

/// Attaches the probe, opens `canary` (a file named cordon-lsm-canary), detaches, opens it again.
pub fn canary(canary: &Path) -> Result<Canary, String> {
    if canary.file_name().and_then(|n| n.to_str()) != Some(CANARY) {
        return Err(format!("{} is not named {CANARY}", canary.display()));
    }
    let mut obj = std::mem::MaybeUninit::uninit();
    let open = LsmProbeSkelBuilder::default().open(&mut obj).map_err(|e| format!("open: {e:#}"))?;
    let mut skel = open.load().map_err(|e| format!("load: {e:#}"))?;
    skel.attach().map_err(|e| format!("attach: {e:#}"))?;
    let first = std::fs::File::open(canary);
    let denied_while_attached = matches!(&first, Err(e) if e.raw_os_error() == Some(libc::EPERM));
    let program_denials = skel.maps.bss_data.as_deref().map(|b| b.denied).unwrap_or(0);
    drop(skel);
    let allowed_after = std::fs::File::open(canary).is_ok();
    Ok(Canary { denied_while_attached, allowed_after, program_denials })
}
