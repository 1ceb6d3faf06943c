//! Builds the seccomp BPF program in the supervisor (with libseccomp) and installs it in the child
//! with a raw seccomp(2) call, so the child makes no library calls between fork and exec.

use crate::plan::seccomp::{native_arch, SeccompPlan};
use cordon_policy::syscalls::{CmpOp, DenyAction};
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use std::io::Read;

/// Compiles the plan into a BPF program.
pub fn build(plan: &SeccompPlan) -> Result<Vec<libc::sock_filter>, String> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| format!("seccomp: {e}"))?;
    // Syscalls made through another ABI (int 0x80, x32) are refused: the tables only cover the native one.
    ctx.set_act_badarch(ScmpAction::KillProcess).map_err(|e| format!("seccomp: {e}"))?;
    ctx.set_ctl_nnp(false).map_err(|e| format!("seccomp: {e}"))?;
    let _ = native_arch();
    for r in &plan.rules {
        let action = match r.action {
            DenyAction::Kill => ScmpAction::KillProcess,
            DenyAction::QuietErrno(e) => ScmpAction::Errno(e),
            DenyAction::Errno(_) if plan.kill => ScmpAction::KillProcess,
            DenyAction::Errno(_) if plan.notify => ScmpAction::Notify,
            DenyAction::Errno(e) => ScmpAction::Errno(e),
        };
        let conds: Vec<ScmpArgCompare> = r
            .when
            .iter()
            .map(|c| {
                let op = match c.op {
                    CmpOp::Eq => ScmpCompareOp::Equal,
                    CmpOp::Gt => ScmpCompareOp::Greater,
                    CmpOp::MaskedEq(m) => ScmpCompareOp::MaskedEqual(m),
                };
                ScmpArgCompare::new(c.arg as u32, op, c.value)
            })
            .collect();
        let sc = libseccomp::ScmpSyscall::from(r.nr);
        let res = if conds.is_empty() { ctx.add_rule_exact(action, sc) } else { ctx.add_rule_conditional_exact(action, sc, &conds) };
        res.map_err(|e| format!("seccomp: rule for {}: {e}", r.name))?;
    }
    let fd = nix::sys::memfd::memfd_create("cordon-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).map_err(|e| format!("seccomp: memfd: {e}"))?;
    ctx.export_bpf(&fd).map_err(|e| format!("seccomp: export: {e}"))?;
    let mut f = std::fs::File::from(fd);
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(0)).map_err(|e| format!("seccomp: export: {e}"))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| format!("seccomp: export: {e}"))?;
    let sz = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % sz != 0 || bytes.is_empty() {
        return Err("seccomp: exported program has a bad size".into());
    }
    Ok(bytes
        .chunks_exact(sz)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}
