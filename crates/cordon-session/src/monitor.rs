//! Watching a session that is already running (`cordon monitor`): find it by id or unique prefix
//! among the cgroups under `cordon/`, and attach the sensor to its cgroup with a sink the caller
//! built (usually [`crate::pipeline::build`]).

use crate::{Result, SessionError};
use std::path::{Path, PathBuf};

/// The running session whose id is `prefix` or the only one that starts with it (compared as text:
/// no pattern, no path); its cgroup directory and full id.
pub fn running_session(prefix: &str) -> Result<(PathBuf, String)> {
    let running = cordon_sensor::cgroup::running_sessions();
    let list = |ids: &[&String]| {
        ids.iter().take(20).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            + if ids.len() > 20 { ", ..." } else { "" }
    };
    let all: Vec<&String> = running.iter().collect();
    if prefix.is_empty() {
        bail!(
            "SESSION is empty: give a session id or a unique prefix of one\n  running sessions: {}",
            if all.is_empty() { "none".into() } else { list(&all) }
        );
    }
    let found: Vec<&String> = match running.iter().find(|s| *s == prefix) {
        Some(exact) => vec![exact],
        None => running.iter().filter(|s| s.starts_with(prefix)).collect(),
    };
    match found.as_slice() {
        [id] => match cordon_sensor::cgroup::session_dir(id) {
            Some(d) => Ok((d, id.to_string())),
            None => bail!("session {id} ended"),
        },
        [] => bail!(
            "no running session `{prefix}`: no cgroup under {}/cordon/ has that id or starts with it\n  hint: `cordon audit ls` lists sessions; only running ones can be watched",
            cordon_sensor::cgroup::v2_root().map(|p| p.display().to_string()).unwrap_or_else(|| "<cgroup2>".into())
        ),
        many => bail!("`{prefix}` matches {} running sessions: {}\n  hint: give more of the id", many.len(), list(many)),
    }
}

/// Whether the cgroup still has processes (cgroup v2's `cgroup.events`).
pub fn populated(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("cgroup.events")) {
        Ok(s) => s.lines().any(|l| l == "populated 1"),
        Err(_) => false,
    }
}

/// The sensor attached to a running session's cgroup.
pub struct Watch {
    sensor: cordon_sensor::Sensor,
}

impl Watch {
    /// Attaches to `cgroup` (named `name` in the events). The session's policy is not known here,
    /// so refusals are attributed against cordon's seccomp baseline and Landlock and file
    /// permissions are not told apart.
    pub fn start(name: &str, cgroup: &Path, ring_bytes: u32, sink: cordon_sensor::sensor::Sink) -> Result<Watch> {
        let arch = cordon_sensor::kinds::native_arch();
        let sensor = cordon_sensor::Sensor::start(cordon_sensor::Config {
            session: name.to_string(),
            cgroup: cgroup.to_path_buf(),
            net: None,
            attribution: Default::default(),
            session_start: false,
            seccomp_watch: cordon_sensor::kinds::baseline_watch(arch),
            ring_bytes,
            idle_read: cordon_sensor::IDLE_READ,
            sink,
        })
        .map_err(|e| SessionError::Sensor(e.to_string()))?;
        Ok(Watch { sensor })
    }

    /// Detaches and returns what the sensor counted.
    pub fn finish(self) -> cordon_schema::sensor::Summary {
        self.sensor.finish()
    }
}
