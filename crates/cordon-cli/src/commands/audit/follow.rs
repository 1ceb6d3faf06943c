//! `cordon audit ship --follow`: ships a log that is still being written, every few seconds, until
//! it is told to stop (SIGTERM, SIGINT, SIGHUP) or, with `--watch-pid`, until that process ends;
//! then it ships once more, so that the last records written (a session's end and seal) are
//! delivered. `cordon daemon --server` and `cordon gateway --server` run one beside themselves.
//! A follower that watches a process ignores the stop signals: a Ctrl-C or a service manager's
//! SIGTERM reaches the whole group, and the follower must outlive the service's own last records.
//!
//! The log stays the spool: a server that cannot be reached is said once (and again when the reason
//! changes), retried each interval, and what was not delivered stays in the log for the next run.

use super::ship::{ship, Target};
use anyhow::{Context as _, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// What ends a follow.
pub struct Until {
    pub interval: Duration,
    /// The process whose end ends the follow (its pid).
    pub watch_pid: Option<i32>,
}

/// Follows `db` until told to stop; exit status 0 when the last shipping delivered everything,
/// 1 when it did not (what it could not deliver stays in the log).
pub fn follow(db: &Path, t: &Target, per_batch: usize, until: &Until) -> Result<i32> {
    let signals = stop_signals()?;
    let watched = match until.watch_pid {
        Some(pid) => watch(pid)?,
        None => None,
    };
    // The line a parent waits for (`spawn_follower`): set up, shipping from now on.
    println!("following {} to {} as node `{}`", db.display(), t.server(), t.node());
    let mut said = String::new();
    let mut quiet_until = std::time::Instant::now();
    loop {
        if std::time::Instant::now() >= quiet_until && ship_once(db, t, per_batch, &mut said) == Shipped::Refused {
            // The server judged the batch and refused it: sent again it is refused again, and
            // every refusal is recorded there; so not every interval, but after REFUSED_WAIT.
            quiet_until = std::time::Instant::now() + REFUSED_WAIT;
        }
        if until.watch_pid.is_some() && watched.is_none() {
            break; // the watched process was gone already: this was the last shipping
        }
        // Watching a process, its end is the stop (the signals stay blocked and unread).
        let signals = if watched.is_some() { None } else { Some(&signals) };
        if stop_requested(signals, watched.as_ref(), until.interval)? {
            break;
        }
    }
    let delivered = ship_once(db, t, per_batch, &mut said) == Shipped::All;
    eprintln!(
        "cordon audit ship: stopped following {}{}",
        db.display(),
        if delivered { "" } else { " (the last records were NOT delivered: they stay in the log)" }
    );
    Ok(if delivered { 0 } else { 1 })
}

/// How long a follower waits after the server refused a batch before it sends it again.
const REFUSED_WAIT: Duration = Duration::from_secs(600);

#[derive(PartialEq)]
enum Shipped {
    /// Every record in the log delivered (or no log yet: nothing to deliver).
    All,
    /// The server could not be reached, or failed: tried again next interval.
    NotYet,
    /// The server answered with a refusal of the batch (tampered, a gap, another key).
    Refused,
}

/// One shipping; says what it delivered, and a failure once until its reason changes.
fn ship_once(db: &Path, t: &Target, per_batch: usize, said: &mut String) -> Shipped {
    if !db.exists() {
        return Shipped::All;
    }
    match ship(db, t, per_batch) {
        Ok(s) => {
            if !said.is_empty() {
                eprintln!("cordon audit ship: {} reached again", t.server());
                said.clear();
            }
            if s.accepted > 0 {
                eprintln!("cordon audit ship: delivered {} record(s), up to record {}", s.accepted, s.acked_seq);
            }
            Shipped::All
        }
        Err(e) => {
            let why = format!("{e:#}");
            let refused = e.downcast_ref::<super::ship::Refused>().is_some();
            if *said != why {
                let next = if refused { "sending it again in 10 minutes" } else { "retrying" };
                eprintln!("cordon audit ship: NOT delivered ({why}); {next}, the records stay in the log");
                *said = why;
            }
            if refused {
                Shipped::Refused
            } else {
                Shipped::NotYet
            }
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP blocked and read from a signalfd: a stop waits for the last shipping.
fn stop_signals() -> Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().context("cannot block the stop signals")?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).context("cannot make a signalfd")
}

/// A pidfd of `pid`, or None when it has already ended.
fn watch(pid: i32) -> Result<Option<OwnedFd>> {
    match crate::sys::pidfd_open(pid) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("--watch-pid {pid}: cannot watch it: {e}")),
    }
}

/// Waits up to `interval`; true when a stop signal came or the watched process ended.
fn stop_requested(signals: Option<&SignalFd>, watched: Option<&OwnedFd>, interval: Duration) -> Result<bool> {
    let mut fds = vec![];
    if let Some(s) = signals {
        fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
    }
    if let Some(w) = watched {
        fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
    }
    let ms = PollTimeout::try_from(interval.as_millis().min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, ms) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(fds.iter().any(|f| f.any().unwrap_or(false))),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(anyhow::anyhow!("poll: {e}")),
    }
}
