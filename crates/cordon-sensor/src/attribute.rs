//! Which layer refused a call, and a reason a person or an agent can act on.
//!
//! - seccomp refuses before the sys_enter tracepoint, so a call that exits without having entered
//!   was refused by seccomp (the kernel's order, not a guess);
//! - cgroup-bpf refusals are seen by the sensor's own cgroup programs (matched by thread);
//! - an EACCES/EPERM on a filesystem call that the session's policy would refuse is Landlock's
//!   when the policy's grants (the Landlock rules) lack the access, and the session's mounts' when
//!   they have it (a mode-000 mask over a secret inside a granted tree); one the policy would allow
//!   is the file's own permissions (DAC). A device node is always Landlock's (never granted), an
//!   exec of a memfd always its mode's (cordon seals every memfd non-executable);
//! - the proxy's refusals come from the proxy itself (merged by the caller).

use crate::event::{Event, Kind};
use crate::raw::Hook;
use cordon_policy::{Access, CompiledPolicy};
use cordon_schema::Layer;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Attribution {
    /// The session's policy; None when attaching to a session whose policy is unknown.
    pub policy: Option<Arc<CompiledPolicy>>,
    /// Landlock was applied (false in a degraded session on a kernel without it).
    pub landlock: bool,
    /// Landlock's signal scoping was applied (ABI 6+).
    pub signal_scope: bool,
}

pub fn net_reason(hook: Hook, addr: &str) -> String {
    if hook == Hook::SockCreate {
        format!("raw and packet sockets ({addr}) are refused in cordon sessions: they bypass every network rule; use ordinary TCP/UDP sockets")
    } else {
        format!("the session may not reach {addr} directly: traffic leaves only through cordon's egress proxy (HTTP(S)_PROXY); if the task needs this host, ask the user to add it to net.allow")
    }
}

fn want(op: Kind, e: &Event) -> Access {
    let flags = e.flags.unwrap_or(0);
    match op {
        Kind::Open => {
            let acc = flags & 3;
            let write = acc == 1
                || acc == 2
                || flags & (libc::O_CREAT | libc::O_TRUNC) as u64 != 0
                || e.syscall.as_deref() == Some("creat");
            Access { read: acc == 0 || acc == 2, write, exec: false }
        }
        Kind::Exec => Access { read: false, write: false, exec: true },
        _ => Access { read: false, write: true, exec: false },
    }
}

impl Attribution {
    /// A write to a protected workspace path (fs.protect: `.envrc`, ...) that failed with the
    /// errno of what the session's mounts put there: EROFS (the read-only bind), ENXIO (opening a
    /// placeholder, a socket, to write with CAP_DAC_OVERRIDE; without it EACCES, a refusal anyway), ENOTDIR (creating below one, or renaming a directory over
    /// one), EISDIR (opening an existing directory to write), EBUSY (a rename or removal of a mount
    /// point) or EEXIST (creating over one). These are not EACCES/EPERM, so
    /// without this they would not count as refusals at all, and a refused plant would go unnamed.
    /// Relative paths the sensor could not resolve are not judged.
    pub fn protected_refusal(&self, op: Kind, e: &Event, errno: i64) -> Option<(Layer, String)> {
        let mounts = [libc::EROFS, libc::ENXIO, libc::ENOTDIR, libc::EISDIR, libc::EBUSY, libc::EEXIST];
        if !mounts.iter().any(|&x| x as i64 == errno) {
            return None;
        }
        let writes = match op {
            Kind::Open => want(op, e).write,
            Kind::Rename | Kind::Mkdir | Kind::Unlink | Kind::Chmod | Kind::Chown | Kind::Truncate => true,
            _ => false,
        };
        let p = self.policy.as_ref().filter(|p| writes && !p.fs.protect.is_empty())?;
        let write = Access { read: false, write: true, exec: false };
        [e.path.as_deref(), e.path2.as_deref()].into_iter().flatten().filter(|x| x.starts_with('/')).find_map(|x| {
            let path = Path::new(x);
            if !p.fs.protect.iter().any(|m| cordon_policy::paths::is_within(path, &m.path)) {
                return None;
            }
            let d = cordon_policy::decide::fs(p, path, write);
            (!d.allow).then_some((Layer::Mounts, d.reason))
        })
    }

    pub fn attribute(
        &self,
        syscall: &str,
        op: Kind,
        e: &Event,
        not_entered: bool,
        net_refusal: Option<&str>,
        memfd: bool,
    ) -> (Layer, String) {
        if not_entered && syscall == "connect" {
            // The supervisor answers connect() through seccomp user notification when the session
            // has an egress proxy: a direct connection is a proxy bypass.
            return (Layer::Seccomp, format!("direct connection to {} refused: the session reaches the network only through cordon's egress proxy (HTTPS_PROXY/HTTP_PROXY); if the task needs this host, ask the user to add it to net.allow", e.addr.as_deref().unwrap_or("?")));
        }
        if not_entered {
            // The reasons of the rules for this call (the sensor does not re-evaluate argument
            // conditions), each once: many rules share one (fourteen socket families, for one).
            let mut rules: Vec<&str> = vec![];
            for r in self.policy.iter().flat_map(|p| p.syscalls.iter()).filter(|r| r.name == syscall) {
                if !rules.contains(&r.reason.as_str()) {
                    rules.push(&r.reason);
                }
            }
            let reason = if rules.is_empty() {
                format!("{syscall} was refused by the session's seccomp filter")
            } else {
                format!("seccomp refused {syscall}: {}", rules.join("; "))
            };
            return (Layer::Seccomp, format!("{reason}; this is not something a task in a cordon session can do — do the work another way or ask the user"));
        }
        if let Some(a) = net_refusal {
            if matches!(syscall, "connect" | "sendto" | "sendmsg" | "sendmmsg") {
                return (Layer::CgroupBpf, net_reason(Hook::Connect4, a));
            }
            if syscall == "socket" {
                return (Layer::CgroupBpf, net_reason(Hook::SockCreate, a));
            }
        }
        if op == Kind::Exec && memfd {
            // Landlock does not govern memfds (they live on no mount a path reaches); the mode does.
            return (Layer::Dac, format!("exec of a memfd ({}) was refused: cordon creates every memfd in the session with MFD_NOEXEC_SEAL, so its mode has no exec bits and never will; run programs from files under fs.exec instead", e.path.as_deref().unwrap_or("?")));
        }
        let mknod = matches!(syscall, "mknod" | "mknodat");
        let fs_op = mknod
            || matches!(
                op,
                Kind::Open
                    | Kind::Exec
                    | Kind::Unlink
                    | Kind::Rename
                    | Kind::Chmod
                    | Kind::Chown
                    | Kind::Mkdir
                    | Kind::Truncate
            );
        if fs_op {
            if let (Some(p), Some(path)) = (&self.policy, e.path.as_deref()) {
                if self.landlock && path.starts_with('/') {
                    let kind = e.flags.unwrap_or(0) as u32 & libc::S_IFMT;
                    if mknod && (kind == libc::S_IFCHR || kind == libc::S_IFBLK) && e.errno.as_deref() == Some("EACCES")
                    {
                        // Landlock's mknod hook comes before the kernel's own checks (CAP_MKNOD).
                        return (Layer::Landlock, format!("making the device node {path} was refused: cordon grants Landlock's right to make character or block devices nowhere; a task has no use for device nodes"));
                    }
                    let w = want(op, e);
                    let mut d = cordon_policy::decide::fs(p, Path::new(path), w);
                    let mut at = path;
                    if d.allow {
                        if let Some(p2) = e.path2.as_deref() {
                            d = cordon_policy::decide::fs(p, Path::new(p2), w);
                            at = p2;
                        }
                    }
                    if !d.allow && landlock_grants(p, Path::new(at), w) {
                        // Landlock allows it (its rules cannot carve a secret out of a granted tree):
                        // the session's mounts refuse, a mode-000 mask over the secret or a
                        // read-only bind over a protected path.
                        let how = if d.reason.contains("fs.deny") || d.reason.contains("fs.hide") {
                            "inside the session a mode-000 mask covers it; it holds secrets, do not try to read it another way"
                        } else {
                            "inside the session it is a read-only bind; leave it as it is"
                        };
                        return (Layer::Mounts, format!("{}; {how}", d.reason));
                    }
                    if !d.allow {
                        let hint = if d.reason.contains("fs.deny") || d.reason.contains("fs.hide") {
                            "it holds secrets; do not try to read it another way".to_string()
                        } else if w.exec {
                            "if the task needs this program, ask the user to add its directory to fs.exec".to_string()
                        } else if w.write {
                            "write inside the workspace instead, or ask the user to add the path to fs.write"
                                .to_string()
                        } else {
                            "ask the user to add the path to fs.read if the task needs it".to_string()
                        };
                        return (Layer::Landlock, format!("{}; {hint}", d.reason));
                    }
                }
            }
            if self.policy.is_none() {
                return (Layer::LandlockOrDac, format!("{op} of {} was refused; the session's policy is not known here, so Landlock and file permissions cannot be told apart (`cordon run --monitor` attributes exactly)", e.path.as_deref().unwrap_or("?")));
            }
            let why = if e.errno.as_deref() == Some("EPERM") {
                "the file's owner or attributes refuse it"
            } else {
                "the file's permission bits refuse it"
            };
            return (
                Layer::Dac,
                format!(
                    "{op} of {} failed: {why} (the session's policy would allow it); nothing in cordon can change that",
                    e.path.as_deref().unwrap_or("?")
                ),
            );
        }
        if op == Kind::Kill && self.signal_scope {
            return (Layer::Landlock, "signals may only go to processes inside the session (Landlock signal scoping); leave other processes alone".into());
        }
        if matches!(op, Kind::Connect | Kind::Bind)
            && self.landlock
            && self.policy.as_ref().is_some_and(|p| p.net.egress == cordon_policy::Egress::Open)
        {
            return (
                Layer::Landlock,
                format!(
                    "{op} to {} is outside the policy's TCP ports; ask the user to allow it",
                    e.addr.as_deref().unwrap_or("?")
                ),
            );
        }
        (
            Layer::Dac,
            format!(
                "{syscall} failed with {}: the kernel's ordinary permission checks (owner, capabilities) refused it",
                e.errno.as_deref().unwrap_or("EPERM")
            ),
        )
    }
}

/// Whether the policy's grants alone (what the Landlock ruleset is made of) give `want` at `path`:
/// fs.deny, fs.hide and fs.protect inside a grant are the session's mounts, not Landlock rules.
fn landlock_grants(p: &CompiledPolicy, path: &Path, want: Access) -> bool {
    let mut have = Access::default();
    for r in p.fs.rules.iter().filter(|r| cordon_policy::paths::is_within(path, &r.path)) {
        have.read |= r.access.read;
        have.write |= r.access.write;
        have.exec |= r.access.exec;
    }
    (!want.read || have.read) && (!want.write || have.write) && (!want.exec || have.exec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seccomp_refusal_gives_each_reason_once() {
        let cx = cordon_policy::Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
        let policy = cordon_policy::load_and_compile("builtin:agent", &cx).expect("builtin").1;
        let socket_rules: Vec<&str> =
            policy.syscalls.iter().filter(|r| r.name == "socket").map(|r| r.reason.as_str()).collect();
        let a = Attribution { policy: Some(Arc::new(policy.clone())), landlock: true, signal_scope: true };
        let (layer, reason) = a.attribute("socket", Kind::Syscall, &Event::default(), true, None, false);
        assert_eq!(layer.as_str(), "seccomp");
        let mut distinct = socket_rules.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            socket_rules.len() > distinct.len(),
            "the agent profile has socket rules sharing a reason: {socket_rules:?}"
        );
        for r in &distinct {
            assert_eq!(reason.matches(&format!("{r};")).count(), 1, "{r}: {reason}");
        }
    }
}
