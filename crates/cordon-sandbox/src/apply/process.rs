//! Process hardening applied in the child just before exec.

use crate::plan::process::Rlimit;
use nix::sys::resource::{setrlimit, Resource};

/// Why a resource limit could not be set.
#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("getrlimit {resource:?}: {source}")]
    Get {
        resource: Rlimit,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("setrlimit {resource:?}={value}: {source}")]
    Set {
        resource: Rlimit,
        value: u64,
        #[source]
        source: nix::errno::Errno,
    },
}

pub fn set_rlimits(limits: &[(Rlimit, u64)]) -> Result<(), RlimitError> {
    if crate::ablate::off(crate::ablate::Ablate::Rlimits) {
        return Ok(());
    }
    for (r, v) in limits {
        let res = match r {
            Rlimit::Core => Resource::RLIMIT_CORE,
            Rlimit::Nofile => Resource::RLIMIT_NOFILE,
            Rlimit::Nproc => Resource::RLIMIT_NPROC,
            Rlimit::Data => Resource::RLIMIT_DATA,
        };
        // Never raise a hard limit the host set lower.
        let (_, hard) =
            nix::sys::resource::getrlimit(res).map_err(|source| RlimitError::Get { resource: *r, source })?;
        let v = (*v).min(hard);
        setrlimit(res, v, v).map_err(|source| RlimitError::Set { resource: *r, value: v, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[test]
    fn rlimit_errors_name_the_limit_and_keep_the_errno() {
        let e = RlimitError::Set { resource: Rlimit::Nofile, value: 64, source: Errno::EPERM };
        assert_eq!(e.to_string(), format!("setrlimit Nofile=64: {}", Errno::EPERM));
        assert_eq!(crate::testutil::errno_source(&e), Errno::EPERM);
        let e = RlimitError::Get { resource: Rlimit::Core, source: Errno::EINVAL };
        assert_eq!(e.to_string(), format!("getrlimit Core: {}", Errno::EINVAL));
        assert_eq!(crate::testutil::errno_source(&e), Errno::EINVAL);
    }
}
