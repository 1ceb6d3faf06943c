//! The session's refusals as they happen, readable inside the session: the supervisor appends each
//! denial it records (seccomp, the write watch, the no-network connect rule) as one JSON line to a
//! file it stages (0600 in the session's staging directory, crate::staging) and the session's root
//! binds read-only at [`INSIDE`]; [`ENV`] names it in the command's environment. `cordon hook` reads
//! it to tell the agent what the kernel refused during one tool call (docs/hooks.md).
//!
//! Line: `{"t_ms": ..., "layer": ..., "pid": ..., "comm": ..., "what": ..., "reason": ..., "count": 1}`.
//! What it does not carry: the sensor's refusals (`--monitor`, which replaces the write watch), the
//! egress proxy's refusals (the client reads those in the proxy's answer), and anything past
//! [`MAX_BYTES`] (a last line `{"full": true}` says so). A session without a mount namespace has
//! no stream. The session cannot write it (a read-only bind); it can hide it from itself.

use crate::recording::now_ms;
use crate::staging::Staging;
use cordon_sandbox::plan::ns::MountOp;
use cordon_sandbox::report::Denial;
use cordon_sandbox::SessionPlan;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// Where the session reads it.
pub const INSIDE: &str = "/tmp/.cordon/refusals.jsonl";
/// The variable that names it in the command's environment.
pub const ENV: &str = "CORDON_REFUSALS";
/// The most the stream holds: a refused write loop must not fill the host's /tmp.
pub const MAX_BYTES: u64 = 4 << 20;
/// The staged stream (its file is in the session's staging directory, removed with it).
pub struct Stream {
    file: std::fs::File,
    written: u64,
    full: bool,
}

/// Stages the stream and adds its bind and variable to the plan; None (and the plan unchanged)
/// without a mount namespace or when nothing can be staged: the stream is help, never enforcement.
pub fn stage(plan: &mut SessionPlan, staging: &mut Staging) -> Option<Stream> {
    let ns = &mut plan.environment.ns;
    let at = ns.mounts.iter().position(|m| matches!(m, MountOp::DetachHost { .. }))?;
    let path = staging.dir()?.join("refusals.jsonl");
    let opened = std::fs::OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path);
    let Ok(file) = opened else { return None };
    ns.mounts.insert(at, MountOp::Bind { src: path, dst: INSIDE.into(), writable: false });
    plan.process.env.push((ENV.into(), INSIDE.into()));
    Some(Stream { file, written: 0, full: false })
}

impl Stream {
    /// Appends one denial (a write error ends the stream quietly: the summary still has it).
    pub fn append(&mut self, d: &Denial) {
        if self.full {
            return;
        }
        let mut v = serde_json::to_value(d).unwrap_or_default();
        v["t_ms"] = now_ms().into();
        let mut line = v.to_string();
        line.push('\n');
        if self.written + line.len() as u64 > MAX_BYTES {
            self.full = true;
            let _ = self.file.write_all(b"{\"full\":true}\n");
            return;
        }
        match self.file.write_all(line.as_bytes()) {
            Ok(()) => self.written += line.len() as u64,
            Err(_) => self.full = true,
        }
    }
}
