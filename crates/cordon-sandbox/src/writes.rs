//! The supervisor's side of the write watch (see [`crate::plan::write_watch`]): a notified
//! write-intent call's paths read from the caller's memory and made absolute (its working
//! directory or directory fd, as the session names them), the call let through (CONTINUE, never
//! anything else), and then the attempt handed to the caller's [`WriteHook`], which says whether
//! the policy refuses it. The kernel's layers decide the call itself.

use crate::plan::write_watch::{Effect, WatchedCall, WRITE_INTENT};
use crate::report::Denial;
use crate::sys;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A write the session attempted, as the session names it.
#[derive(Debug, Clone)]
pub struct WriteAttempt {
    pub pid: u32,
    /// The call's name (`openat`, `mkdir`, `renameat2`, ...).
    pub call: String,
    /// Absolute, lexically normalized paths: the target last (rename and link: source, target).
    pub paths: Vec<PathBuf>,
    pub effect: Effect,
    /// The open flags (open, openat, openat2, creat); 0 for the other calls.
    pub flags: u64,
}

impl WriteAttempt {
    /// Does the call create its target (rather than only change what is there)?
    pub fn creates(&self) -> bool {
        match self.effect {
            Effect::Open => self.flags & 0o100 != 0,
            Effect::Make | Effect::Move => true,
            Effect::Change => false,
        }
    }

    /// Does it also write an existing target (an open for writing or truncating, a change, a
    /// rename over it)?
    pub fn writes_existing(&self) -> bool {
        match self.effect {
            Effect::Open => self.flags & (0o1 | 0o2 | 0o1000) != 0,
            Effect::Make => false,
            Effect::Change | Effect::Move => true,
        }
    }
}

/// Called after a watched call was let through: the refusal to record (its `pid` and `comm` are
/// filled in by the supervisor), or None when the policy allows the write.
pub type WriteHook = Box<dyn FnMut(&WriteAttempt) -> Option<Denial>>;

const AT_FDCWD: i32 = -100;
const PATH_MAX: usize = 4096;

/// Reads the attempt a notification describes. None: not a write after all (openat2 without write
/// flags) or the caller's memory could not be read (it died meanwhile); the call is let through
/// either way.
pub(crate) fn read(w: &WatchedCall, req: &sys::SeccompNotif) -> Option<WriteAttempt> {
    let mem = Mem(nix::unistd::Pid::from_raw(req.pid as i32));
    let a = &req.data.args;
    let flags = match (w.effect, w.name.as_str()) {
        (Effect::Open, "creat") => 0o1 | 0o100 | 0o1000,
        (Effect::Open, "openat2") => {
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            let mut b = [0u8; 8];
            mem.read_exact_at(&mut b, a[2]).ok()?;
            u64::from_ne_bytes(b)
        }
        (Effect::Open, _) => w.flags.map(|(i, _)| a[i as usize] & 0xffff_ffff).unwrap_or(0),
        _ => 0,
    };
    if w.effect == Effect::Open && flags & WRITE_INTENT as u64 == 0 {
        return None;
    }
    let mut paths = vec![];
    for (dirfd, ptr) in &w.paths {
        let raw = c_string(&mem, a[*ptr as usize])?;
        let p = Path::new(std::ffi::OsStr::from_bytes(&raw));
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            let fd = dirfd.map(|i| a[i as usize] as i32).unwrap_or(AT_FDCWD);
            let base = if fd == AT_FDCWD {
                std::fs::read_link(format!("/proc/{}/cwd", req.pid))
            } else {
                std::fs::read_link(format!("/proc/{}/fd/{fd}", req.pid))
            };
            base.ok()?.join(p)
        };
        paths.push(cordon_policy::paths::normalize(&abs));
    }
    Some(WriteAttempt { pid: req.pid, call: w.name.clone(), paths, effect: w.effect, flags })
}

/// The caller's memory, read with process_vm_readv: one call per read, where /proc/PID/mem took an
/// open, a read and a close on every watched call.
struct Mem(nix::unistd::Pid);

impl Mem {
    fn read_at(&self, buf: &mut [u8], addr: u64) -> std::io::Result<usize> {
        let len = buf.len();
        let remote = [nix::sys::uio::RemoteIoVec { base: addr as usize, len }];
        Ok(nix::sys::uio::process_vm_readv(self.0, &mut [std::io::IoSliceMut::new(buf)], &remote)?)
    }

    fn read_exact_at(&self, buf: &mut [u8], addr: u64) -> std::io::Result<()> {
        match self.read_at(buf, addr)? {
            n if n == buf.len() => Ok(()),
            _ => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// A NUL-terminated string at `addr` in the caller's memory (at most PATH_MAX bytes), read up to
/// page ends so that a string near an unmapped page is still read.
fn c_string(mem: &Mem, addr: u64) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < PATH_MAX {
        let n = (4096 - (at % 4096) as usize).min(PATH_MAX - out.len());
        let mut b = vec![0u8; n];
        let got = mem.read_at(&mut b, at).ok()?;
        if got == 0 {
            return None;
        }
        if let Some(end) = b[..got].iter().position(|&c| c == 0) {
            out.extend_from_slice(&b[..end]);
            return Some(out);
        }
        out.extend_from_slice(&b[..got]);
        at += got as u64;
    }
    None
}
