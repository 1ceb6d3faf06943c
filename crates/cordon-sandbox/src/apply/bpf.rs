//! A small classic-BPF assembler for seccomp filters: a binary search over syscall numbers, then each
//! number's rules in order. Jumps are symbolic and resolved at the end; far jumps go through `ja`.
//!
//! Argument comparisons use the low 32 bits of each argument: every argument cordon filters on is an
//! int or flag word the kernel truncates to 32 bits, so comparing 64 bits would let high garbage slip a
//! denied value past the filter.

use super::seccomp::SeccompError;
use crate::plan::seccomp::ResolvedRule;
use crate::plan::write_watch::WatchedCall;
use cordon_policy::syscalls::{Arch, CmpOp, DenyAction};
use std::collections::BTreeMap;

pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
const AND_K: u16 = 0x54;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_lo(i: u8) -> u32 {
    16 + 8 * i as u32
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Next,
    Label(usize),
}

#[derive(Clone, Debug)]
enum Ins {
    Ld(u32),
    And(u32),
    /// Conditional: `jeq/jgt/jge k`, then-target, else-target (each must be Next or a label within 255).
    J(u16, u32, Target, Target),
    Ja(usize),
    Ret(u32),
    Label(usize),
}

struct Asm {
    ins: Vec<Ins>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }
    fn put(&mut self, i: Ins) {
        self.ins.push(i);
    }
    fn finish(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let mut pos = vec![usize::MAX; self.labels];
        let mut n = 0;
        for i in &self.ins {
            match i {
                Ins::Label(l) => pos[*l] = n,
                _ => n += 1,
            }
        }
        let mut out = Vec::with_capacity(n);
        for i in &self.ins {
            let here = out.len();
            let rel = |t: Target| -> Result<u8, SeccompError> {
                match t {
                    Target::Next => Ok(0),
                    Target::Label(l) => {
                        let d = pos[l].checked_sub(here + 1).ok_or(SeccompError::BackwardJump)?;
                        u8::try_from(d).map_err(|_| SeccompError::JumpTooFar { distance: d })
                    }
                }
            };
            let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
            match i {
                Ins::Label(_) => continue,
                Ins::Ld(off) => out.push(f(LD_W_ABS, 0, 0, *off)),
                Ins::And(k) => out.push(f(AND_K, 0, 0, *k)),
                Ins::J(op, k, t, e) => out.push(f(*op, rel(*t)?, rel(*e)?, *k)),
                Ins::Ja(l) => {
                    let d = pos[*l].checked_sub(here + 1).ok_or(SeccompError::BackwardJump)?;
                    out.push(f(JA, 0, 0, d as u32));
                }
                Ins::Ret(k) => out.push(f(RET_K, 0, 0, *k)),
            }
        }
        if out.len() > 4096 {
            return Err(SeccompError::TooLong { len: out.len() });
        }
        Ok(out)
    }
}

pub fn audit_arch(a: Arch) -> u32 {
    match a {
        Arch::X86_64 => 0xC000_003E,
        Arch::Aarch64 => 0xC000_00B7,
    }
}

/// The seccomp return value for a rule.
pub fn action(r: &ResolvedRule, notify: bool, kill: bool) -> u32 {
    match r.action {
        DenyAction::Kill => RET_KILL_PROCESS,
        DenyAction::QuietErrno(e) => RET_ERRNO | (e as u32 & 0xffff),
        DenyAction::Supervise if notify => RET_USER_NOTIF,
        DenyAction::Supervise => RET_ALLOW,
        DenyAction::Errno(_) if kill => RET_KILL_PROCESS,
        DenyAction::Errno(_) if notify => RET_USER_NOTIF,
        DenyAction::Errno(e) => RET_ERRNO | (e as u32 & 0xffff),
    }
}

/// Compiles rules into a filter: wrong architecture (and x32 on x86_64) kills; listed syscalls run
/// their rules in order; everything else is allowed.
pub fn compile(
    arch: Arch,
    rules: &[ResolvedRule],
    notify: bool,
    kill: bool,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    compile_watching(arch, rules, &[], notify, kill)
}

/// [`compile`], and the write watch (with `notify` only): a watched number whose deny rules (if
/// any) did not match goes to the supervisor when its flags show write intent, and is allowed
/// otherwise.
pub fn compile_watching(
    arch: Arch,
    rules: &[ResolvedRule],
    watch: &[WatchedCall],
    notify: bool,
    kill: bool,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    for r in rules {
        for c in &r.when {
            let m = match c.op {
                CmpOp::MaskedEq(m) => m,
                _ => 0,
            };
            if c.value > u32::MAX as u64 || m > u32::MAX as u64 || c.arg > 5 {
                return Err(SeccompError::RuleTooWide { name: r.name.clone() });
            }
        }
    }
    let mut by_nr: BTreeMap<i32, Vec<&ResolvedRule>> = BTreeMap::new();
    for r in rules {
        by_nr.entry(r.nr).or_default().push(r);
    }
    let watch: BTreeMap<i32, &WatchedCall> =
        if notify { watch.iter().map(|w| (w.nr, w)).collect() } else { BTreeMap::new() };
    for nr in watch.keys() {
        by_nr.entry(*nr).or_default();
    }
    let mut a = Asm { ins: vec![], labels: 0 };
    let allow_l = a.label();
    a.put(Ins::Ld(OFF_ARCH));
    let arch_ok = a.label();
    a.put(Ins::J(JEQ_K, audit_arch(arch), Target::Label(arch_ok), Target::Next));
    a.put(Ins::Ret(RET_KILL_PROCESS));
    a.put(Ins::Label(arch_ok));
    a.put(Ins::Ld(OFF_NR));
    if arch == Arch::X86_64 {
        // x32 syscalls carry bit 30; the tables cover the 64-bit ABI only.
        let native = a.label();
        a.put(Ins::J(JGE_K, 0x4000_0000, Target::Next, Target::Label(native)));
        a.put(Ins::Ret(RET_KILL_PROCESS));
        a.put(Ins::Label(native));
    }
    let nrs: Vec<i32> = by_nr.keys().copied().collect();
    let blocks: Vec<usize> = nrs.iter().map(|_| a.label()).collect();
    tree(&mut a, &nrs, &blocks, allow_l);
    for (i, nr) in nrs.iter().enumerate() {
        a.put(Ins::Label(blocks[i]));
        for r in &by_nr[nr] {
            let next = a.label();
            for c in &r.when {
                a.put(Ins::Ld(off_arg_lo(c.arg)));
                let v = c.value as u32;
                match c.op {
                    CmpOp::Eq => a.put(Ins::J(JEQ_K, v, Target::Next, Target::Label(next))),
                    CmpOp::MaskedEq(m) => {
                        a.put(Ins::And(m as u32));
                        a.put(Ins::J(JEQ_K, v, Target::Next, Target::Label(next)));
                    }
                    CmpOp::Gt => a.put(Ins::J(JGT_K, v, Target::Next, Target::Label(next))),
                }
            }
            a.put(Ins::Ret(action(r, notify, kill)));
            a.put(Ins::Label(next));
        }
        if let Some(w) = watch.get(nr) {
            if let Some((arg, mask)) = w.flags {
                let intent = a.label();
                a.put(Ins::Ld(off_arg_lo(arg)));
                a.put(Ins::And(mask));
                a.put(Ins::J(JEQ_K, 0, Target::Next, Target::Label(intent)));
                a.put(Ins::Ret(RET_ALLOW));
                a.put(Ins::Label(intent));
            }
            a.put(Ins::Ret(RET_USER_NOTIF));
        } else {
            // No rule matched: allow.
            a.put(Ins::Ret(RET_ALLOW));
        }
    }
    a.put(Ins::Label(allow_l));
    a.put(Ins::Ret(RET_ALLOW));
    a.finish()
}

/// Binary search on the syscall number in A. Leaves: `jeq nr` -> the number's block, through `ja`.
fn tree(a: &mut Asm, nrs: &[i32], blocks: &[usize], allow: usize) {
    if nrs.len() <= 3 {
        for (nr, b) in nrs.iter().zip(blocks) {
            let skip = a.label();
            a.put(Ins::J(JEQ_K, *nr as u32, Target::Next, Target::Label(skip)));
            a.put(Ins::Ja(*b));
            a.put(Ins::Label(skip));
        }
        a.put(Ins::Ja(allow));
        return;
    }
    let mid = nrs.len() / 2;
    let right = a.label();
    let left = a.label();
    a.put(Ins::J(JGE_K, nrs[mid] as u32, Target::Next, Target::Label(left)));
    a.put(Ins::Ja(right));
    a.put(Ins::Label(left));
    tree(a, &nrs[..mid], &blocks[..mid], allow);
    a.put(Ins::Label(right));
    tree(a, &nrs[mid..], &blocks[mid..], allow);
}

/// Runs a filter over one syscall, as the kernel would (for tests): returns the action word.
pub fn simulate(prog: &[libc::sock_filter], arch: u32, nr: i32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, v) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_ne_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    while pc < prog.len() {
        let f = prog[pc];
        pc += 1;
        match f.code {
            LD_W_ABS => acc = u32::from_ne_bytes(data[f.k as usize..f.k as usize + 4].try_into().unwrap_or([0; 4])),
            AND_K => acc &= f.k,
            JA => pc += f.k as usize,
            RET_K => return f.k,
            JEQ_K | JGT_K | JGE_K => {
                let c = match f.code {
                    JEQ_K => acc == f.k,
                    JGT_K => acc > f.k,
                    _ => acc >= f.k,
                };
                pc += if c { f.jt } else { f.jf } as usize;
            }
            _ => return 0,
        }
    }
    0
}
