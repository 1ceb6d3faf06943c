//! One session per supervisor process. A long-lived, multi-threaded service (the gateway, the
//! devbox daemon) cannot run a session itself: the sandbox's clone needs a single-threaded caller
//! and the supervisor changes process-wide signal state. It spawns `cordon supervise` instead, hands
//! it a [`SessionSpec`] as JSON on fd 3, and reads typed [`Message`]s back from fd 4, one JSON line
//! each; the supervisor's exit status is the command's.
//!
//! Sessions run this way are not interactive: the spawner gives the command's stdin, stdout and
//! stderr. To end one, signal its supervisor (SIGTERM is passed on to the command, a second one
//! kills the session), as for `cordon run`.

use crate::spec::SessionSpec;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The descriptors a `cordon supervise` process reads its spec from and writes its messages to.
pub const SPEC_FD: i32 = 3;
pub const REPORT_FD: i32 = 4;

/// What a supervisor tells its parent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// Prepared and recorded; the command is about to run. `notices`: what a user should read.
    Started { session_id: String, notices: Vec<String> },
    /// The session ended (the command's exit code; the outcome, alerts as the report has them).
    Finished {
        session_id: String,
        exit_code: i32,
        outcome: serde_json::Value,
        alerts: serde_json::Value,
        killed_by: Option<String>,
        warnings: Vec<String>,
    },
    /// Refused or failed before the command ran: nothing ran.
    Failed { error: String },
}

impl Message {
    pub fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

/// A session running in its own supervisor process.
pub struct Supervised {
    pub child: Child,
    reports: BufReader<std::fs::File>,
}

/// Starts `exe supervise` (the cordon binary) for `spec`. `stdio`: the command's stdin, stdout and
/// stderr (a service gives its own, or null).
pub fn spawn(exe: &Path, spec: &SessionSpec, stdio: [Stdio; 3]) -> std::io::Result<Supervised> {
    let (spec_r, spec_w) = std::io::pipe()?;
    let (rep_r, rep_w) = std::io::pipe()?;
    // The child's ends, moved above the fixed numbers first: a pipe end that already was fd 3 or 4
    // would be overwritten by the other dup2, or keep close-on-exec if dup2 had nothing to do.
    let high = |fd: &dyn std::os::fd::AsFd| -> std::io::Result<std::os::fd::OwnedFd> {
        let n = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))?;
        Ok(crate::sys::own(n))
    };
    let (spec_r, rep_w) = (high(&spec_r)?, high(&rep_w)?);
    let mut cmd = Command::new(exe);
    cmd.arg("supervise");
    let [i, o, e] = stdio;
    cmd.stdin(i).stdout(o).stderr(e);
    crate::sys::place_fds(&mut cmd, vec![(spec_r.as_raw_fd(), SPEC_FD), (rep_w.as_raw_fd(), REPORT_FD)]);
    let mut child = cmd.spawn()?;
    // Our copies go: the child holds the other ends, so EOF means it is done with them.
    drop((spec_r, rep_w));
    let mut w = std::fs::File::from(std::os::fd::OwnedFd::from(spec_w));
    let sent = serde_json::to_string(spec).map_err(std::io::Error::other).and_then(|j| w.write_all(j.as_bytes()));
    drop(w);
    if let Err(e) = sent {
        // A supervisor that cannot get its spec runs nothing; do not leave it behind.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(Supervised { child, reports: BufReader::new(std::fs::File::from(std::os::fd::OwnedFd::from(rep_r))) })
}

impl Supervised {
    /// The next message, or None once the supervisor has closed its end.
    pub fn next_message(&mut self) -> Option<Message> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.reports.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => match serde_json::from_str(line.trim_end()) {
                    Ok(m) => return Some(m),
                    Err(_) => continue,
                },
            }
        }
    }

    /// Every remaining message and the supervisor's exit status.
    pub fn wait(mut self) -> std::io::Result<(Vec<Message>, std::process::ExitStatus)> {
        let mut all = vec![];
        while let Some(m) = self.next_message() {
            all.push(m);
        }
        Ok((all, self.child.wait()?))
    }
}

/// The supervisor's side (`cordon supervise`): reads the spec, prepares, runs, reports; returns
/// the exit status (the command's; 125 when nothing ran).
pub fn serve() -> i32 {
    // SIGINT, SIGTERM, SIGHUP and SIGQUIT blocked before any thread starts, so that every thread
    // inherits the mask: the session takes them through its signalfd (the first passed on to the
    // command) and keeps them blocked while it records its end. Blocked only in the session's own
    // thread, one of the others (the sensor's reader, the audit writer) took a SIGTERM and its
    // default action killed the supervisor, leaving the session unfinished in the log.
    {
        use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
        let mut set = SigSet::empty();
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
            set.add(sig);
        }
        if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
            return 125;
        }
    }
    // Reopened through /proc: the descriptors were placed by the parent (see `spawn`).
    let mut out = match std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{REPORT_FD}")) {
        Ok(f) => f,
        Err(_) => return 125,
    };
    let mut say = |m: Message| {
        let _ = out.write_all(m.line().as_bytes());
    };
    let spec: SessionSpec = match std::fs::read(format!("/proc/self/fd/{SPEC_FD}"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            say(Message::Failed { error: format!("cordon supervise: no session spec on fd {SPEC_FD}: {e}") });
            return 125;
        }
    };
    let p = match crate::prepare::prepare(spec) {
        Ok(p) => p,
        Err(e) => {
            say(Message::Failed { error: e.to_string() });
            return 125;
        }
    };
    say(Message::Started { session_id: p.session_id.clone(), notices: p.notices.clone() });
    let id = p.session_id.clone();
    match crate::engine::run(p, None) {
        Ok(f) => {
            let code = f.outcome.exit_code;
            say(Message::Finished {
                session_id: id,
                exit_code: code,
                outcome: serde_json::to_value(&f.outcome).unwrap_or_default(),
                alerts: serde_json::to_value(&f.alerts).unwrap_or_default(),
                killed_by: f.killed_by,
                warnings: f
                    .warnings
                    .into_iter()
                    .chain(f.unsaved.into_iter().map(|r| format!("audit record (unsaved): {r}")))
                    .collect(),
            });
            code
        }
        Err(e) => {
            say(Message::Failed { error: e.to_string() });
            125
        }
    }
}
