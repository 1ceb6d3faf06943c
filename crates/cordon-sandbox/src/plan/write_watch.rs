//! The write watch: calls that may change the filesystem, shown to the supervisor through seccomp
//! user notification so that a write the policy refuses is named in the summary without the eBPF
//! sensor (which needs root). The filter passes only write intent to the supervisor: an open
//! without O_WRONLY, O_RDWR, O_CREAT or O_TRUNC never leaves the kernel, so reads (the bulk of all
//! calls) cost nothing. The supervisor reads the path, answers CONTINUE, and then compares the path
//! with the policy; the kernel's own layers (the session's mounts, Landlock) decide the call as if
//! nothing had looked at it.
//!
//! It can never allow anything: a number with a deny rule is not watched (its block stays the deny
//! rules'), and CONTINUE is the ALLOW the filter would otherwise have returned. A supervisor that
//! is gone fails closed: the kernel answers a call waiting for it, and every later one, with
//! ENOSYS. What it cannot see: whether the call then failed (the prediction comes from the same
//! policy the mounts and Landlock are built from), writes through a descriptor opened earlier
//! (`write(2)`, `ftruncate`, `fchmod`), and reads outside the view (ENOENT), which are hinted from
//! the command line instead.

use cordon_policy::syscalls::Arch;
use serde::Serialize;

/// The flags of an open that mean write intent: O_WRONLY | O_RDWR | O_CREAT | O_TRUNC (the same
/// values on x86_64 and aarch64).
pub const WRITE_INTENT: u32 = 0o1 | 0o2 | 0o100 | 0o1000;

/// One watched call: where its path arguments are and what it does to the last one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WatchedCall {
    pub nr: i32,
    pub name: String,
    /// Notified only when `(args[i] & mask) != 0` (open, openat); None: always.
    pub flags: Option<(u8, u32)>,
    /// The path arguments: (index of the directory fd, or None for the working directory; index
    /// of the path pointer). For rename and link, the source then the target.
    pub paths: Vec<(Option<u8>, u8)>,
    /// What the call does to its (last) path.
    pub effect: Effect,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Writes or creates it, depending on its flags (open, openat, openat2, creat).
    Open,
    /// Makes it: fails with EEXIST, not a refusal, when it is already there.
    Make,
    /// Changes or removes what is there.
    Change,
    /// Moves the first path to the second (rename) or links it there (link).
    Move,
}

/// (name, flags argument, paths, effect) of every call the watch may show.
type Entry = (&'static str, Option<u8>, &'static [(Option<u8>, u8)], Effect);
const CALLS: &[Entry] = &[
    ("open", Some(1), &[(None, 0)], Effect::Open),
    ("openat", Some(2), &[(Some(0), 1)], Effect::Open),
    ("openat2", None, &[(Some(0), 1)], Effect::Open),
    ("creat", None, &[(None, 0)], Effect::Open),
    ("mkdir", None, &[(None, 0)], Effect::Make),
    ("mkdirat", None, &[(Some(0), 1)], Effect::Make),
    ("mknod", None, &[(None, 0)], Effect::Make),
    ("mknodat", None, &[(Some(0), 1)], Effect::Make),
    ("symlink", None, &[(None, 1)], Effect::Make),
    ("symlinkat", None, &[(Some(1), 2)], Effect::Make),
    ("unlink", None, &[(None, 0)], Effect::Change),
    ("unlinkat", None, &[(Some(0), 1)], Effect::Change),
    ("rmdir", None, &[(None, 0)], Effect::Change),
    ("truncate", None, &[(None, 0)], Effect::Change),
    ("chmod", None, &[(None, 0)], Effect::Change),
    ("fchmodat", None, &[(Some(0), 1)], Effect::Change),
    ("chown", None, &[(None, 0)], Effect::Change),
    ("lchown", None, &[(None, 0)], Effect::Change),
    ("fchownat", None, &[(Some(0), 1)], Effect::Change),
    ("rename", None, &[(None, 0), (None, 1)], Effect::Move),
    ("renameat", None, &[(Some(0), 1), (Some(2), 3)], Effect::Move),
    ("renameat2", None, &[(Some(0), 1), (Some(2), 3)], Effect::Move),
    ("link", None, &[(None, 0), (None, 1)], Effect::Move),
    ("linkat", None, &[(Some(0), 1), (Some(2), 3)], Effect::Move),
];

/// The watched calls of `arch`, leaving out any number a deny rule already holds (`denied`).
pub fn plan(arch: Arch, denied: &[i32]) -> Vec<WatchedCall> {
    CALLS
        .iter()
        .filter_map(|(name, flags, paths, effect)| {
            let nr = cordon_policy::syscall_table::number(arch, name)?;
            (!denied.contains(&nr)).then(|| WatchedCall {
                nr,
                name: (*name).into(),
                flags: flags.map(|i| (i, WRITE_INTENT)),
                paths: paths.to_vec(),
                effect: *effect,
            })
        })
        .collect()
}

/// The watched call with this number, if the notification came from the watch (and only then:
/// a number with a deny rule is never watched).
pub fn find<'w>(watch: &'w [WatchedCall], nr: i32, args: &[u64; 6]) -> Option<&'w WatchedCall> {
    watch.iter().find(|w| w.nr == nr && w.flags.is_none_or(|(i, m)| (args[i as usize] as u32) & m != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_with_a_deny_rule_is_not_watched() {
        let openat = cordon_policy::syscall_table::number(Arch::X86_64, "openat").expect("openat");
        let all = plan(Arch::X86_64, &[]);
        assert!(all.iter().any(|w| w.nr == openat));
        assert!(!plan(Arch::X86_64, &[openat]).iter().any(|w| w.nr == openat));
        // aarch64 has no legacy calls: only the *at forms.
        let arm: Vec<_> = plan(Arch::Aarch64, &[]).into_iter().map(|w| w.name).collect();
        assert!(arm.contains(&"openat".to_string()) && !arm.contains(&"open".to_string()), "{arm:?}");
    }

    /// The filter with the watch: a deny rule's answer where one matches, the supervisor for
    /// write intent on a watched number, ALLOW otherwise; the supervisor's `find` agrees, and a
    /// notification it lets through never comes from a deny rule.
    #[test]
    fn the_filter_sends_the_watch_exactly_its_calls() {
        use crate::apply::bpf;
        use crate::plan::seccomp::{matches, resolve};
        let cx = cordon_policy::Context { home: "/h".into(), workspace: "/h/ws".into(), tmp: "/tmp".into() };
        let pol = cordon_policy::load_and_compile("builtin:agent", &cx).expect("builtin").1;
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let rules = resolve(&pol.syscalls, arch);
            let watch = plan(arch, &rules.iter().map(|r| r.nr).collect::<Vec<_>>());
            assert!(watch.len() > 10, "{arch:?}");
            let prog = bpf::compile_watching(arch, &rules, &watch, true, false).expect("compile");
            let without = bpf::compile_watching(arch, &rules, &watch, false, false).expect("compile");
            let aa = bpf::audit_arch(arch);
            let mut rng = crate::testutil::XorShift(0x9e37_79b9_7f4a_7c15u64);
            let mut next = || rng.next();
            for _ in 0..20_000 {
                let nr = match next() % 3 {
                    0 => watch[(next() % watch.len() as u64) as usize].nr,
                    1 => rules[(next() % rules.len() as u64) as usize].nr,
                    _ => (next() % 460) as i32,
                };
                let mut args = [0u64; 6];
                for a in args.iter_mut() {
                    *a = match next() % 3 {
                        0 => [0u64, 0o100, 0o1, 0o2000000, 0o200000 | 0o4000][(next() % 5) as usize],
                        1 => next() % 64,
                        _ => next(),
                    };
                }
                let rule = rules.iter().find(|r| matches(r, nr, &args));
                let watched = find(&watch, nr, &args);
                let want = match (rule, watched) {
                    (Some(r), _) => bpf::action(r, true, false),
                    (None, Some(_)) => bpf::RET_USER_NOTIF,
                    (None, None) => bpf::RET_ALLOW,
                };
                assert_eq!(bpf::simulate(&prog, aa, nr, args), want, "{arch:?} nr {nr} args {args:x?}");
                assert!(rule.is_none() || watched.is_none(), "{arch:?} nr {nr}: watched and denied");
                // Without a listener (a command's own filter) nothing goes to the watch.
                let plain = rule.map(|r| bpf::action(r, false, false)).unwrap_or(bpf::RET_ALLOW);
                assert_eq!(bpf::simulate(&without, aa, nr, args), plain, "{arch:?} nr {nr}");
            }
        }
    }

    #[test]
    fn only_write_intent_opens_are_the_watchs() {
        let w = plan(Arch::X86_64, &[]);
        let openat = cordon_policy::syscall_table::number(Arch::X86_64, "openat").expect("openat");
        let args = |flags: u64| [0, 0, flags, 0, 0, 0];
        assert!(find(&w, openat, &args(0)).is_none(), "O_RDONLY");
        assert!(find(&w, openat, &args(0o2000000 | 0o200000)).is_none(), "O_CLOEXEC|O_DIRECTORY");
        for f in [0o1, 0o2, 0o100, 0o1000, 0o100 | 0o200] {
            assert!(find(&w, openat, &args(f)).is_some(), "{f:#o}");
        }
        // High bits past the 32 the kernel reads do not make a read a write.
        assert!(find(&w, openat, &args(1 << 40)).is_none());
    }
}
