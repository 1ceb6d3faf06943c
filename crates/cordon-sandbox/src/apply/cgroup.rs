//! Creates the session's cgroups (under a `cordon/` subtree), moves the session into them, reads what
//! limits were hit, kills and removes them.

use crate::plan::cgroup::{CgroupPlan, Mechanism};
use std::path::{Path, PathBuf};

/// Live cgroups of one session. Removed on drop.
#[derive(Debug, Default)]
pub struct Cgroups {
    pub v2: Option<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

/// Why a session's cgroups could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup: create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup: write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
}

fn write(p: &Path, v: &str) -> Result<(), CgroupError> {
    std::fs::write(p, v).map_err(|source| CgroupError::Write { path: p.to_path_buf(), value: v.to_string(), source })
}

fn mkdir_p(p: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir_all(p).map_err(|source| CgroupError::Create { path: p.to_path_buf(), source })
}

pub fn create(plan: &CgroupPlan) -> Result<Cgroups, CgroupError> {
    let mut cg = Cgroups::default();
    let res = (|| {
        if let Some(d) = &plan.v2_dir {
            let parent = d.parent().unwrap_or(d);
            mkdir_p(parent)?;
            if !plan.v2_controllers.is_empty() {
                // Controllers must be enabled in every ancestor's subtree_control below the base.
                let v: Vec<String> = plan.v2_controllers.iter().map(|c| format!("+{c}")).collect();
                if let Some(base) = parent.parent() {
                    let _ = std::fs::write(base.join("cgroup.subtree_control"), v.join(" "));
                }
                write(&parent.join("cgroup.subtree_control"), &v.join(" "))?;
            }
            mkdir_p(d)?;
            cg.dirs.push(d.clone());
            cg.v2 = Some(d.clone());
        }
        for d in plan.dirs() {
            if !cg.dirs.contains(&d) {
                mkdir_p(&d)?;
                cg.dirs.push(d);
            }
        }
        if crate::ablate::off(crate::ablate::Ablate::CgroupLimits) {
            return Ok(());
        }
        if let Some((m, mech)) = &plan.memory {
            match mech {
                Mechanism::V2 { dir } => {
                    write(&dir.join("memory.max"), &m.to_string())?;
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                Mechanism::V1 { dir } => {
                    write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                    // Swap counts too when the host accounts it.
                    let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), m.to_string());
                }
                _ => {}
            }
        }
        if let Some((n, Mechanism::V2 { dir } | Mechanism::V1 { dir })) = &plan.processes {
            write(&dir.join("pids.max"), &n.to_string())?;
        }
        if let Some((c, mech)) = &plan.cpu {
            let period: u64 = 100_000;
            let quota = ((c * period as f64) as u64).max(1000);
            match mech {
                Mechanism::V2 { dir } => write(&dir.join("cpu.max"), &format!("{quota} {period}"))?,
                Mechanism::V1 { dir } => {
                    write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                _ => {}
            }
        }
        Ok(())
    })();
    match res {
        Ok(()) => Ok(cg),
        Err(e) => {
            drop(cg);
            Err(e)
        }
    }
}

impl Cgroups {
    /// The v2 directory, opened for clone3(CLONE_INTO_CGROUP).
    pub fn v2_dir_fd(&self) -> Option<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        let d = self.v2.as_ref()?;
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(d).ok()
    }

    /// The v1 `tasks` files: a single-threaded process that writes "0" there moves itself without
    /// taking the kernel's global threadgroup lock (whose RCU synchronisation costs milliseconds).
    pub fn v1_task_files(&self) -> Vec<std::ffi::CString> {
        self.dirs
            .iter()
            .filter(|d| Some(*d) != self.v2.as_ref())
            .filter_map(|d| std::ffi::CString::new(d.join("tasks").as_os_str().as_encoded_bytes()).ok())
            .collect()
    }

    /// Moves a process into the v2 cgroup only (the slow path, when clone3 cannot place it).
    pub fn add_v2(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.v2 {
            Some(d) => write(&d.join("cgroup.procs"), &pid.to_string()),
            None => Ok(()),
        }
    }

    /// Moves a process (and so its future children) into every session cgroup.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            let procs = d.join("cgroup.procs");
            write(&procs, &pid.to_string())?;
        }
        Ok(())
    }

    /// Kills every process still in the session (cgroup.kill on v2, SIGKILL per pid on v1).
    pub fn kill_all(&self) {
        if let Some(v2) = &self.v2 {
            if std::fs::write(v2.join("cgroup.kill"), "1").is_ok() {
                return;
            }
        }
        for _ in 0..50 {
            let mut any = false;
            for d in &self.dirs {
                for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    any = true;
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            if !any {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Resource peaks, read before the cgroups are removed.
    pub fn peaks(&self, plan: &CgroupPlan) -> crate::report::Peaks {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
        let mut pk = crate::report::Peaks::default();
        if let Some((_, mech)) = &plan.memory {
            pk.memory_bytes = match mech {
                Mechanism::V2 { dir } => read(dir.join("memory.peak")),
                Mechanism::V1 { dir } => read(dir.join("memory.max_usage_in_bytes")),
                _ => None,
            };
        }
        if let Some((_, Mechanism::V2 { dir })) = &plan.processes {
            pk.processes = read(dir.join("pids.peak"));
        }
        if let Some(v2) = &self.v2 {
            pk.cpu_us = std::fs::read_to_string(v2.join("cpu.stat")).ok().and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("usage_usec ").and_then(|v| v.trim().parse().ok()))
            });
        }
        if pk.cpu_us.is_none() {
            if let Some((_, Mechanism::V1 { dir })) = &plan.cpu {
                // cpu and cpuacct share a hierarchy on the usual v1 layout.
                pk.cpu_us = read(dir.join("cpuacct.usage")).map(|ns| ns / 1000);
            }
        }
        pk
    }

    /// Limits that were hit, read before the cgroups are removed.
    pub fn events(&self, plan: &CgroupPlan) -> Vec<String> {
        let mut out = vec![];
        let num = |p: PathBuf, key: &str| -> u64 {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0)
        };
        if let Some((m, mech)) = &plan.memory {
            let (ooms, peak) = match mech {
                Mechanism::V2 { dir } => (
                    num(dir.join("memory.events"), "oom_kill "),
                    std::fs::read_to_string(dir.join("memory.peak")).ok().and_then(|s| s.trim().parse::<u64>().ok()),
                ),
                Mechanism::V1 { dir } => (
                    num(dir.join("memory.oom_control"), "oom_kill "),
                    std::fs::read_to_string(dir.join("memory.max_usage_in_bytes"))
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok()),
                ),
                _ => (0, None),
            };
            if ooms > 0 {
                out.push(format!(
                    "memory limit {} hit: {ooms} process(es) killed by the OOM killer (peak {})",
                    cordon_policy::units::fmt_size(*m),
                    peak.map(cordon_policy::units::fmt_size).unwrap_or_else(|| "?".into())
                ));
            }
        }
        if let Some((n, Mechanism::V2 { dir } | Mechanism::V1 { dir })) = &plan.processes {
            let hits = num(dir.join("pids.events"), "max ");
            if hits > 0 {
                out.push(format!("process limit {n} hit: {hits} fork(s) refused"));
            }
        }
        out
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            // Killed processes leave the cgroup when they have exited, which on a loaded machine
            // can take longer than a few milliseconds; a cgroup given up on here would be left
            // behind, so wait (backing off, bounded at ~5 s) for it to empty.
            let t = std::time::Instant::now();
            let mut nap = std::time::Duration::from_millis(1);
            loop {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && t.elapsed().as_secs() < 5 => {
                        std::thread::sleep(nap);
                        nap = (nap * 2).min(std::time::Duration::from_millis(50));
                    }
                    Err(_) => break,
                }
            }
            // The shared `cordon/` parent goes too once no session uses it (fails harmlessly otherwise).
            if let Some(parent) = d.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// Removes empty session cgroups left by supervisors that were killed (SIGKILL leaves no chance to
/// clean up). Only directories older than a minute are touched, so a session being set up right now
/// is never raced; rmdir fails on any cgroup that still has processes.
pub fn collect_stale(plan: &CgroupPlan) {
    let mut parents: Vec<PathBuf> = vec![];
    for d in plan.dirs() {
        if let Some(p) = d.parent() {
            if !parents.iter().any(|x| x == p) {
                parents.push(p.to_path_buf());
            }
        }
    }
    let now = std::time::SystemTime::now();
    for parent in parents {
        let Ok(rd) = std::fs::read_dir(&parent) else { continue };
        for e in rd.flatten() {
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age.as_secs() > 60);
            if old && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{io_source, Tmp};

    fn plan_with(v2_dir: Option<PathBuf>) -> CgroupPlan {
        CgroupPlan { v2_dir, v2_controllers: vec![], memory: None, processes: None, cpu: None, wall_time: None }
    }

    #[test]
    fn a_cgroup_that_cannot_be_created_names_it_and_keeps_the_io_error() {
        let tmp = Tmp::new("cg-create");
        let file = tmp.0.join("file");
        std::fs::write(&file, "").expect("write");
        let e = create(&plan_with(Some(file.join("cordon").join("s1")))).expect_err("a file is no directory");
        let parent = file.join("cordon");
        assert!(matches!(&e, CgroupError::Create { path, .. } if *path == parent), "{e:?}");
        assert_eq!(io_source(&e).raw_os_error(), Some(libc::ENOTDIR));
        assert_eq!(e.to_string(), format!("cgroup: create {}: {}", parent.display(), io_source(&e)));
    }

    #[test]
    fn a_limit_that_cannot_be_written_names_the_value_and_the_file() {
        let tmp = Tmp::new("cg-write");
        let dir = tmp.0.join("missing");
        let mut plan = plan_with(None);
        plan.memory = Some((1 << 20, Mechanism::V2 { dir: dir.clone() }));
        let e = create(&plan).expect_err("no such directory");
        let file = dir.join("memory.max");
        assert!(matches!(&e, CgroupError::Write { path, value, .. } if *path == file && value == "1048576"), "{e:?}");
        assert_eq!(io_source(&e).kind(), std::io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), format!("cgroup: write \"1048576\" to {}: {}", file.display(), io_source(&e)));
    }
}
