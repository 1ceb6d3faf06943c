//! Applies a LandlockPlan to the calling thread (in the sandboxed child, after the mounts).

use crate::plan::landlock::{LandlockPlan, FILE_RIGHTS};
use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};

pub fn apply(plan: &LandlockPlan) -> Result<(), String> {
    if !plan.enabled() {
        return Ok(());
    }
    let fs = BitFlags::<AccessFs>::from_bits_truncate(plan.handled_fs);
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(fs)
        .map_err(|e| format!("landlock: {e}"))?;
    if plan.handled_net != 0 {
        rs = rs
            .handle_access(BitFlags::<AccessNet>::from_bits_truncate(plan.handled_net))
            .map_err(|e| format!("landlock: {e}"))?;
    }
    if plan.scopes != 0 {
        rs = rs.scope(BitFlags::<Scope>::from_bits_truncate(plan.scopes)).map_err(|e| format!("landlock: {e}"))?;
    }
    let mut created = rs.create().map_err(|e| format!("landlock: create ruleset: {e}"))?;
    for r in &plan.fs_rules {
        if r.rights == 0 {
            continue;
        }
        let fd = match PathFd::new(&r.path) {
            Ok(fd) => fd,
            // A path that does not exist grants nothing; skipping it loses nothing.
            Err(_) => continue,
        };
        let Ok(md) = std::fs::metadata(&r.path) else { continue };
        use std::os::unix::fs::FileTypeExt;
        let ft = md.file_type();
        // Landlock rules attach to inodes of real filesystems; pipes and sockets reached through a
        // magic link (/dev/stdout -> /proc/self/fd/1) have nothing to attach to.
        if !(ft.is_dir() || ft.is_file() || ft.is_char_device() || ft.is_block_device()) {
            continue;
        }
        let is_dir = ft.is_dir();
        let rights = if is_dir { r.rights } else { r.rights & FILE_RIGHTS };
        if rights == 0 {
            continue;
        }
        created = created
            .add_rule(PathBeneath::new(fd, BitFlags::<AccessFs>::from_bits_truncate(rights)))
            .map_err(|e| format!("landlock: rule for {}: {e}", r.path.display()))?;
    }
    for (port, rights) in &plan.net_rules {
        created = created
            .add_rule(NetPort::new(*port, BitFlags::<AccessNet>::from_bits_truncate(*rights)))
            .map_err(|e| format!("landlock: rule for port {port}: {e}"))?;
    }
    let status = created.restrict_self().map_err(|e| format!("landlock: restrict_self: {e}"))?;
    if status.ruleset == landlock::RulesetStatus::NotEnforced {
        return Err("landlock: the kernel did not enforce the ruleset".into());
    }
    Ok(())
}
