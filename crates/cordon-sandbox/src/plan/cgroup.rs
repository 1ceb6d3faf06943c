//! Resources: cgroup v2 where controllers are delegated, v1 on hybrid hosts, rlimits where neither is
//! writable (reported as degraded), and the wall-clock limit kept by the supervisor.

use super::{ns::NsPlan, Guarantee};
use crate::caps::KernelCaps;
use cordon_policy::units::{fmt_duration, fmt_size};
use cordon_policy::CompiledPolicy;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Mechanism {
    V2 { dir: PathBuf },
    V1 { dir: PathBuf },
    Rlimit,
    None,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CgroupPlan {
    /// v2 directory holding the session (for cgroup.kill and the sensor's cgroup id), when possible.
    pub v2_dir: Option<PathBuf>,
    pub v2_controllers: Vec<String>,
    pub memory: Option<(u64, Mechanism)>,
    pub processes: Option<(u64, Mechanism)>,
    pub cpu: Option<(f64, Mechanism)>,
    pub wall_time: Option<std::time::Duration>,
}

impl CgroupPlan {
    /// Every cgroup directory this plan creates (removed at the end of the session).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.v2_dir.iter().cloned().collect();
        for m in
            [self.memory.as_ref().map(|x| &x.1), self.processes.as_ref().map(|x| &x.1), self.cpu.as_ref().map(|x| &x.1)]
                .into_iter()
                .flatten()
        {
            if let Mechanism::V1 { dir } = m {
                if !v.contains(dir) {
                    v.push(dir.clone());
                }
            }
        }
        v
    }
}

pub fn plan(p: &CompiledPolicy, caps: &KernelCaps, session: &str, ns: &NsPlan, g: &mut Vec<Guarantee>) -> CgroupPlan {
    let cg = &caps.cgroup;
    let v2_dir = cg.v2_base.as_ref().map(|b| b.join("cordon").join(session));
    let mut v2_controllers = vec![];
    let pick = |ctl: &str, v2_controllers: &mut Vec<String>| -> Option<Mechanism> {
        if let Some(d) = &v2_dir {
            if cg.v2_controllers.iter().any(|c| c == ctl) {
                v2_controllers.push(ctl.to_string());
                return Some(Mechanism::V2 { dir: d.clone() });
            }
        }
        cg.v1.iter().find(|(c, _)| c == ctl).map(|(_, m)| Mechanism::V1 { dir: m.join("cordon").join(session) })
    };
    let l = &p.limits;
    let memory = l.memory.map(|m| {
        let mech = pick("memory", &mut v2_controllers).unwrap_or(Mechanism::Rlimit);
        match &mech {
            Mechanism::Rlimit => g.push(Guarantee::degraded(
                "resources",
                format!("session memory at most {}", fmt_size(m)),
                "a writable memory cgroup (v2 delegation or v1)",
                "RLIMIT_DATA per process",
            )),
            m2 => g.push(Guarantee::ok(
                "resources",
                format!("session memory at most {}", fmt_size(m)),
                describe(m2, "memory"),
            )),
        }
        (m, mech)
    });
    let processes = l.processes.map(|n| {
        let mech = match pick("pids", &mut v2_controllers) {
            Some(m) => m,
            None if ns.user => Mechanism::Rlimit,
            None => Mechanism::None,
        };
        match &mech {
            Mechanism::Rlimit => g.push(Guarantee::ok(
                "resources",
                format!("at most {n} processes"),
                "RLIMIT_NPROC counted in the session's own user namespace",
            )),
            Mechanism::None => g.push(Guarantee::degraded(
                "resources",
                format!("at most {n} processes"),
                "a writable pids cgroup",
                "no process limit (RLIMIT_NPROC does not bind uid 0)",
            )),
            m2 => g.push(Guarantee::ok("resources", format!("at most {n} processes"), describe(m2, "pids"))),
        }
        (n, mech)
    });
    let cpu = l.cpu.map(|c| {
        let mech = pick("cpu", &mut v2_controllers).unwrap_or(Mechanism::None);
        match &mech {
            Mechanism::None => g.push(Guarantee::degraded(
                "resources",
                format!("at most {c} CPUs"),
                "a writable cpu cgroup",
                "no CPU limit",
            )),
            m2 => g.push(Guarantee::ok("resources", format!("at most {c} CPUs"), describe(m2, "cpu"))),
        }
        (c, mech)
    });
    if let Some(w) = l.wall_time {
        g.push(Guarantee::ok(
            "resources",
            format!("wall time at most {}", fmt_duration(w)),
            "supervisor timer, then the whole session is killed",
        ));
    }
    if v2_dir.is_none() && !ns.pid {
        g.push(Guarantee::degraded(
            "processes",
            "every descendant ends with the session",
            "a pid namespace or a writable cgroup v2",
            "daemonised processes may outlive the session",
        ));
    }
    CgroupPlan { v2_dir, v2_controllers, memory, processes, cpu, wall_time: l.wall_time }
}

fn describe(m: &Mechanism, ctl: &str) -> String {
    match m {
        Mechanism::V2 { .. } => format!("cgroup v2 {ctl} controller"),
        Mechanism::V1 { .. } => format!("cgroup v1 {ctl} controller (hybrid host)"),
        Mechanism::Rlimit => "rlimit".into(),
        Mechanism::None => "none".into(),
    }
}
