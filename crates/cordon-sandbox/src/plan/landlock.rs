//! Landlock: filesystem rights per path, TCP ports, and IPC scopes, limited to what the host ABI has.

use super::{ns::NsPlan, Guarantee};
use crate::caps::KernelCaps;
use cordon_policy::{CompiledPolicy, Egress};
use serde::Serialize;
use std::path::PathBuf;

pub const EXECUTE: u64 = 1 << 0;
pub const WRITE_FILE: u64 = 1 << 1;
pub const READ_FILE: u64 = 1 << 2;
pub const READ_DIR: u64 = 1 << 3;
pub const REMOVE_DIR: u64 = 1 << 4;
pub const REMOVE_FILE: u64 = 1 << 5;
pub const MAKE_CHAR: u64 = 1 << 6;
pub const MAKE_DIR: u64 = 1 << 7;
pub const MAKE_REG: u64 = 1 << 8;
pub const MAKE_SOCK: u64 = 1 << 9;
pub const MAKE_FIFO: u64 = 1 << 10;
pub const MAKE_BLOCK: u64 = 1 << 11;
pub const MAKE_SYM: u64 = 1 << 12;
pub const REFER: u64 = 1 << 13;
pub const TRUNCATE: u64 = 1 << 14;
pub const IOCTL_DEV: u64 = 1 << 15;
/// Rights that apply to files (as opposed to directories).
pub const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

pub const NET_BIND_TCP: u64 = 1 << 0;
pub const NET_CONNECT_TCP: u64 = 1 << 1;
pub const SCOPE_ABSTRACT_UNIX: u64 = 1 << 0;
pub const SCOPE_SIGNAL: u64 = 1 << 1;

/// Every filesystem right the ABI knows: all of them are handled (denied unless a rule grants them).
pub fn fs_rights_for_abi(abi: i32) -> u64 {
    let mut r = (1 << 13) - 1;
    if abi >= 2 {
        r |= REFER;
    }
    if abi >= 3 {
        r |= TRUNCATE;
    }
    if abi >= 5 {
        r |= IOCTL_DEV;
    }
    r
}

/// What each Landlock ABI can enforce, in words (doctor and the guarantees print this).
pub fn abi_features(abi: i32) -> Vec<&'static str> {
    let mut v = vec![];
    for (min, what) in [
        (1, "fs read/write/exec/make/remove"),
        (2, "refer (rename/link)"),
        (3, "truncate"),
        (4, "tcp bind/connect"),
        (5, "ioctl on devices"),
        (6, "abstract-unix + signal scoping"),
        (7, "audit logging flags"),
    ] {
        if abi >= min {
            v.push(what);
        }
    }
    v
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FsRule {
    pub path: PathBuf,
    pub rights: u64,
    pub why: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LandlockPlan {
    pub abi: i32,
    pub handled_fs: u64,
    pub handled_net: u64,
    pub scopes: u64,
    pub fs_rules: Vec<FsRule>,
    pub net_rules: Vec<(u16, u64)>,
}

impl LandlockPlan {
    pub fn enabled(&self) -> bool {
        self.abi > 0
    }
}

pub fn plan(p: &CompiledPolicy, caps: &KernelCaps, ns: &NsPlan, g: &mut Vec<Guarantee>) -> LandlockPlan {
    let abi = caps.landlock_abi;
    let handled_fs = if abi > 0 { fs_rights_for_abi(abi) } else { 0 };
    let mut fs_rules = Vec::new();
    for r in &p.fs.rules {
        let mut rights = 0;
        if r.access.read {
            rights |= READ_FILE | READ_DIR;
        }
        if r.access.write {
            // Never MAKE_CHAR/MAKE_BLOCK: device nodes are not an agent's business.
            rights |= WRITE_FILE
                | REMOVE_DIR
                | REMOVE_FILE
                | MAKE_DIR
                | MAKE_REG
                | MAKE_SOCK
                | MAKE_FIFO
                | MAKE_SYM
                | REFER
                | TRUNCATE;
        }
        if r.access.exec {
            rights |= EXECUTE;
        }
        if r.path.starts_with("/dev") {
            // Terminal and device ioctls (TIOCSTI and TIOCLINUX are refused by seccomp).
            rights |= IOCTL_DEV;
        }
        fs_rules.push(FsRule {
            path: r.path.clone(),
            rights: rights & handled_fs,
            why: format!("{} ({})", r.entry, r.origin),
        });
    }
    if ns.mounts.iter().any(|m| matches!(m, super::ns::MountOp::NewRoot { .. })) {
        // The built root holds only what the policy grants: listing its directories (`ls /`, the
        // parents of the workspace) shows granted names and nothing else.
        fs_rules.push(FsRule {
            path: "/".into(),
            rights: READ_DIR & handled_fs,
            why: "the session's root, built from the policy, lists only granted names".into(),
        });
    }
    if abi > 0 {
        g.push(Guarantee::ok(
            "filesystem",
            "access only to the paths the policy lists",
            format!("Landlock ABI {abi} ({})", abi_features(abi).join(", ")),
        ));
        if abi < 3 {
            g.push(Guarantee::degraded(
                "filesystem",
                "truncate outside the write allowlist is refused",
                format!("Landlock ABI 3 (host has {abi})"),
                "truncate(2) on a readable file is not confined",
            ));
        }
    } else {
        g.push(Guarantee::degraded(
            "filesystem",
            "access only to the paths the policy lists",
            "Landlock (not available or disabled at boot)",
            "no filesystem confinement beyond mount masking",
        ));
    }

    // Network: a private network namespace is the primary layer for egress = none; Landlock TCP rules
    // are the layer when there is no namespace.
    let mut handled_net = 0;
    let mut net_rules = Vec::new();
    if p.net.egress == Egress::None && !ns.net {
        if abi >= 4 {
            handled_net = NET_BIND_TCP | NET_CONNECT_TCP;
            for port in &p.net.listen {
                net_rules.push((*port, NET_BIND_TCP | NET_CONNECT_TCP));
            }
            g.push(Guarantee::ok(
                "network",
                "no TCP connections",
                format!("Landlock ABI {abi} TCP rules (no network namespace)"),
            ));
            g.push(Guarantee::degraded(
                "network",
                "no UDP or other traffic",
                "a network namespace (disabled in the policy)",
                "only TCP is confined",
            ));
        } else {
            g.push(Guarantee::degraded(
                "network",
                "no network",
                format!("a network namespace or Landlock ABI 4 TCP rules (host has ABI {abi})"),
                "the network is open",
            ));
        }
    }
    let mut scopes = 0;
    if abi >= 6 {
        scopes = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL;
        g.push(Guarantee::ok(
            "scoping",
            "no signals to, and no abstract unix sockets of, processes outside the session",
            format!("Landlock ABI {abi} scopes"),
        ));
    } else if !(ns.pid && ns.net) {
        g.push(Guarantee::degraded(
            "scoping",
            "no signals or abstract-socket connections to processes outside the session",
            format!("Landlock ABI 6 scopes (host has {abi}) or pid+net namespaces"),
            "outside processes of the same user can be signalled",
        ));
    }
    LandlockPlan { abi, handled_fs, handled_net, scopes, fs_rules, net_rules }
}
