//! Process hardening applied in the child just before exec.

use crate::plan::process::{ProcessPlan, Rlimit};
use nix::sys::resource::{setrlimit, Resource};

pub fn set_rlimits(plan: &ProcessPlan) -> Result<(), String> {
    for (r, v) in &plan.rlimits {
        let res = match r {
            Rlimit::Core => Resource::RLIMIT_CORE,
            Rlimit::Nofile => Resource::RLIMIT_NOFILE,
            Rlimit::Nproc => Resource::RLIMIT_NPROC,
            Rlimit::Data => Resource::RLIMIT_DATA,
        };
        // Never raise a hard limit the host set lower.
        let (_, hard) = nix::sys::resource::getrlimit(res).map_err(|e| format!("getrlimit {r:?}: {e}"))?;
        let v = (*v).min(hard);
        setrlimit(res, v, v).map_err(|e| format!("setrlimit {r:?}={v}: {e}"))?;
    }
    Ok(())
}
