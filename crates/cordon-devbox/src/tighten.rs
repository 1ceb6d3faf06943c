//! A claim's policy may only tighten the snapshot's base policy: every grant it makes must already
//! be the base's. (The environment, made from the base, bounds a claim anyway: its Landlock
//! ruleset, seccomp filter and rlimits are on the init. This check turns what would silently not be
//! delivered into a refusal that names the grant.) Pure: compiled policies in, the first widening out.

use cordon_policy::decide::fs_allows;
use cordon_policy::{CompiledPolicy, Egress};

/// Ok, or the grant the claim adds, in words.
pub fn check(base: &CompiledPolicy, claim: &CompiledPolicy) -> Result<(), String> {
    for r in &claim.fs.rules {
        if !fs_allows(base, &r.path, r.access) {
            return Err(format!(
                "fs: {} of {} (`{}` in {}), which the base policy {} does not grant",
                r.access.describe(),
                r.path.display(),
                r.entry,
                r.origin,
                base.name
            ));
        }
    }
    for m in &base.fs.deny {
        let still = claim.fs.deny.iter().any(|c| c.path == m.path);
        let read = cordon_policy::Access { read: true, write: false, exec: false };
        if !still && fs_allows(claim, &m.path, read) {
            return Err(format!(
                "fs: reading {}, which the base policy masks (`{}` in {})",
                m.path.display(),
                m.entry,
                m.origin
            ));
        }
    }
    for p in &base.fs.protect {
        let still = claim.fs.protect.iter().any(|c| c.path == p.path);
        let write = cordon_policy::Access { read: false, write: true, exec: false };
        if !still && fs_allows(claim, &p.path, write) {
            return Err(format!("fs: writing {}, which the base policy protects ({})", p.path.display(), p.describe()));
        }
    }
    // fs.hide and fs.sanitize need no check: their masks and copies are in the environment's
    // root, made from the base policy. The seccomp filter is not: the claim's process plan installs
    // its own, so it must keep every rule of the base's.
    syscalls(base, claim)?;
    let rank = |e: Egress| match e {
        Egress::None => 0,
        Egress::Proxy => 1,
        Egress::Open => 2,
    };
    if rank(claim.net.egress) > rank(base.net.egress) {
        return Err(format!("net: egress {:?} where the base policy has {:?}", claim.net.egress, base.net.egress)
            .to_lowercase());
    }
    if claim.net.egress == Egress::Proxy {
        for a in &claim.net.allow {
            if !base.net.allow.iter().any(|b| b.host == a.host && (b.port.is_none() || b.port == a.port)) {
                return Err(format!("net: egress to {}, which the base policy does not allow", a.text));
            }
        }
    }
    for p in &claim.net.listen {
        if !base.net.listen.contains(p) {
            return Err(format!("net: listening on port {p}, which the base policy does not allow"));
        }
    }
    if !claim.net.publish.is_empty() {
        return Err("net: publishing a port (a devbox publishes none)".into());
    }
    if claim.net.udp && !base.net.udp {
        return Err("net: udp, which the base policy does not allow".into());
    }
    let l = (&base.limits, &claim.limits);
    let looser = |name: &str, b: Option<f64>, c: Option<f64>| match (b, c) {
        (Some(b), None) => Err(format!("limits.{name}: none, where the base policy has {b}")),
        (Some(b), Some(c)) if c > b => Err(format!("limits.{name}: {c}, above the base policy's {b}")),
        _ => Ok(()),
    };
    let f = |v: Option<u64>| v.map(|x| x as f64);
    looser("memory", f(l.0.memory), f(l.1.memory))?;
    looser("processes", f(l.0.processes), f(l.1.processes))?;
    looser("cpu", l.0.cpu, l.1.cpu)?;
    looser("wall_time", l.0.wall_time.map(|d| d.as_secs_f64()), l.1.wall_time.map(|d| d.as_secs_f64()))?;
    looser("open_files", f(l.0.open_files), f(l.1.open_files))?;
    let (bn, cn) = (&base.namespaces, &claim.namespaces);
    for (name, b, c) in [
        ("pid", bn.pid, cn.pid),
        ("mount", bn.mount, cn.mount),
        ("ipc", bn.ipc, cn.ipc),
        ("uts", bn.uts, cn.uts),
        ("net", bn.net, cn.net),
    ] {
        if b && !c {
            return Err(format!("namespaces.{name} = false, where the base policy has its own {name} namespace"));
        }
    }
    Ok(())
}

/// Every syscall rule of the base is in the claim, for the same calls, arguments and
/// architectures, with the same action or a kill; a base that kills on a denied call keeps doing so.
fn syscalls(base: &CompiledPolicy, claim: &CompiledPolicy) -> Result<(), String> {
    use cordon_policy::syscalls::DenyAction;
    if base.kill_on_deny && !claim.kill_on_deny {
        return Err("syscalls: a denied call fails, where the base policy kills the process (syscalls.action)".into());
    }
    for b in &base.syscalls {
        let kept = claim.syscalls.iter().any(|c| {
            c.name == b.name
                && c.when == b.when
                && c.arches == b.arches
                && (c.action == b.action || c.action == DenyAction::Kill)
        });
        if !kept {
            return Err(format!(
                "syscalls: {} allowed or denied less strictly, which the base policy denies ({}; {})",
                b.name, b.reason, b.origin
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> CompiledPolicy {
        let cx = cordon_policy::Context::for_workspace("/srv/ws".into());
        let l = cordon_policy::load_text("claim.toml", text).expect("loads");
        cordon_policy::compile(&l, &cx)
    }

    fn agent() -> CompiledPolicy {
        let cx = cordon_policy::Context::for_workspace("/srv/ws".into());
        cordon_policy::load_and_compile("builtin:agent", &cx).expect("agent").1
    }

    #[test]
    fn the_same_policy_and_a_tighter_one_pass() {
        check(&agent(), &agent()).expect("the same");
        check(&agent(), &compile("version = 1\nextends = [\"builtin:readonly\"]\n")).expect("readonly is tighter");
    }

    #[test]
    fn each_widening_is_refused_with_the_grant_named() {
        let e =
            check(&agent(), &compile("version = 1\nextends = [\"builtin:agent\"]\n[fs]\nwrite = [\"/srv/other\"]\n"))
                .expect_err("a write grant");
        assert!(e.starts_with("fs: read+write of /srv/other") && e.contains("claim.toml"), "{e}");
        let e = check(
            &agent(),
            &compile("version = 1\nextends = [\"builtin:agent\"]\n[net]\negress = \"proxy\"\nallow = [\"example.org:443\"]\n"),
        )
        .expect_err("egress");
        assert!(e.starts_with("net: egress proxy where the base policy has none"), "{e}");
        let e = check(&agent(), &compile("version = 1\nextends = [\"builtin:agent\"]\n[limits]\nmemory = \"64G\"\n"))
            .expect_err("memory");
        assert!(e.starts_with("limits.memory"), "{e}");
        // Lifting the baseline's denies (review 9: a claim could allow unshare, setns, bpf, ...).
        let e = check(
            &agent(),
            &compile(
                "version = 1\nextends = [\"builtin:agent\"]\n[syscalls]\nallow = [\"unshare\", \"setns\", \"bpf\"]\n",
            ),
        )
        .expect_err("syscalls");
        assert!(e.starts_with("syscalls: ") && e.contains("less strictly"), "{e}");
        let e =
            check(&agent(), &compile("version = 1\nextends = [\"builtin:agent\"]\n[syscalls]\naction = \"errno\"\n"));
        if agent().kill_on_deny {
            assert!(e.expect_err("kill to errno").contains("kills the process"));
        }
    }
}
