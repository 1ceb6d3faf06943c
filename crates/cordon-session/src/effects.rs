//! Where detection rules' actions are carried out. A rule that says `kill` ends the whole session:
//! from the sensor's thread through the session's cgroup (`cgroup.kill`), and from the supervisor's
//! denial hook by answering "stop", which the supervisor turns into SIGKILL of the session's init.

use cordon_rules::{Action, Alert};
use std::path::Path;

/// Kills every process of the cgroup (cgroup v2's `cgroup.kill`); best effort, the session's end
/// then follows as for any kill.
pub fn kill_cgroup(cgroup: &Path) {
    let _ = std::fs::write(cgroup.join("cgroup.kill"), "1");
}

/// Whether any of these alerts asks for the session to stop.
pub fn wants_kill(alerts: &[Alert]) -> bool {
    alerts.iter().any(|a| a.action == Action::Kill)
}
