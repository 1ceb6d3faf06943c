//! Applies a LandlockPlan to the calling thread (in the sandboxed child, after the mounts).

use crate::plan::landlock::{LandlockPlan, FILE_RIGHTS};
use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetError, Scope,
};
use std::path::PathBuf;

/// Why the Landlock ruleset could not be built or enforced, by step.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// Declaring the handled rights or scopes.
    #[error("landlock: {0}")]
    Handle(#[source] RulesetError),
    #[error("landlock: create ruleset: {0}")]
    Create(#[source] RulesetError),
    #[error("landlock: rule for {}: {source}", path.display())]
    PathRule {
        path: PathBuf,
        #[source]
        source: RulesetError,
    },
    #[error("landlock: rule for port {port}: {source}")]
    PortRule {
        port: u16,
        #[source]
        source: RulesetError,
    },
    #[error("landlock: restrict_self: {0}")]
    RestrictSelf(#[source] RulesetError),
    #[error("landlock: the kernel did not enforce the ruleset")]
    NotEnforced,
}

pub fn apply(plan: &LandlockPlan) -> Result<(), LandlockError> {
    use crate::ablate::{off, Ablate};
    let (handled_fs, scopes) = match (off(Ablate::LandlockFs), off(Ablate::LandlockScopes)) {
        (false, false) => (plan.handled_fs, plan.scopes),
        (fs, sc) => (if fs { 0 } else { plan.handled_fs }, if sc { 0 } else { plan.scopes }),
    };
    if !plan.enabled() || (handled_fs == 0 && plan.handled_net == 0 && scopes == 0) {
        return Ok(());
    }
    let mut rs = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    // Only ever empty in an ablation build (the kernel refuses a ruleset that handles nothing).
    if handled_fs != 0 {
        rs = rs.handle_access(BitFlags::<AccessFs>::from_bits_truncate(handled_fs)).map_err(LandlockError::Handle)?;
    }
    if plan.handled_net != 0 {
        rs = rs
            .handle_access(BitFlags::<AccessNet>::from_bits_truncate(plan.handled_net))
            .map_err(LandlockError::Handle)?;
    }
    if scopes != 0 {
        rs = rs.scope(BitFlags::<Scope>::from_bits_truncate(scopes)).map_err(LandlockError::Handle)?;
    }
    let mut created = rs.create().map_err(LandlockError::Create)?;
    for r in plan.fs_rules.iter().filter(|_| handled_fs != 0) {
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
            .map_err(|source| LandlockError::PathRule { path: r.path.clone(), source })?;
    }
    for (port, rights) in &plan.net_rules {
        created = created
            .add_rule(NetPort::new(*port, BitFlags::<AccessNet>::from_bits_truncate(*rights)))
            .map_err(|source| LandlockError::PortRule { port: *port, source })?;
    }
    let status = created.restrict_self().map_err(LandlockError::RestrictSelf)?;
    if status.ruleset == landlock::RulesetStatus::NotEnforced {
        return Err(LandlockError::NotEnforced);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The ruleset is created (a real landlock_create_ruleset) but never enforced: the failing rule
    //! stops `apply` before restrict_self, so the test thread stays unconfined.
    use super::*;
    use crate::plan::landlock::{FsRule, READ_FILE, WRITE_FILE};
    use crate::testutil::Tmp;

    #[test]
    fn a_rule_the_kernel_refuses_names_its_path_and_keeps_the_landlock_error() {
        let tmp = Tmp::new("landlock");
        let plan = LandlockPlan {
            abi: 1,
            handled_fs: READ_FILE,
            handled_net: 0,
            scopes: 0,
            // A right the ruleset does not handle.
            fs_rules: vec![FsRule { path: tmp.0.clone(), rights: WRITE_FILE, why: "test".into() }],
            net_rules: vec![],
        };
        let e = apply(&plan).expect_err("an unhandled right");
        assert!(matches!(&e, LandlockError::PathRule { path, .. } if *path == tmp.0), "{e:?}");
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<RulesetError>()).expect("source");
        assert_eq!(e.to_string(), format!("landlock: rule for {}: {source}", tmp.0.display()));
    }
}
