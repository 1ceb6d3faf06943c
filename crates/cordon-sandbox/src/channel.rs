//! The protocol between the session's children (its init and the command's process) and the
//! supervisor, typed. Two channels:
//! - the report pipe: one [`Report`] per line, read by the supervisor when the session is over;
//! - the fd socketpair: each message is one [`Handoff`] byte with file descriptors attached;
//! - the order pipe: the supervisor writes one [`Order`] (the process plan, as JSON) to a ready
//!   environment's init and closes it; the init forks the command only then.

use crate::plan::process::Rlimit;
use serde::{Deserialize, Serialize};
use std::os::fd::RawFd;

/// A line the init or the command's process writes on the report pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The sandbox could not be set up: nothing ran.
    SetupFailed(String),
    /// execve failed with this errno.
    ExecFailed(i32),
    /// The command ended with this raw wait status.
    Status(i32),
    /// This many workspace files matched fs.hide and were masked.
    Hidden(usize),
    /// Something the user should know (it goes into the summary and the record).
    Note(String),
    /// A timing mark (CORDON_TIMING): microseconds on the monotonic clock, and what happened.
    Mark { at_us: u64, what: String },
}

impl Report {
    /// One line, newline-terminated; a newline in a text becomes a space.
    pub fn encode(&self) -> String {
        let flat = |s: &str| s.replace('\n', " ");
        match self {
            Report::SetupFailed(e) => format!("E {}\n", flat(e)),
            Report::ExecFailed(errno) => format!("X {errno}\n"),
            Report::Status(raw) => format!("S {raw}\n"),
            Report::Hidden(n) => format!("H {n}\n"),
            Report::Note(n) => format!("N {}\n", flat(n)),
            Report::Mark { at_us, what } => format!("T {at_us} {}\n", flat(what)),
        }
    }

    /// The report a line carries; None for a line that is not one (never trusted blindly: the
    /// children run code the supervisor does not control after exec).
    pub fn decode(line: &str) -> Option<Report> {
        let (tag, body) = line.split_once(' ').unwrap_or((line, ""));
        let body = body.trim_end_matches('\n');
        Some(match tag {
            "E" => Report::SetupFailed(body.to_string()),
            "X" => Report::ExecFailed(body.parse().ok()?),
            "S" => Report::Status(body.parse().ok()?),
            "H" => Report::Hidden(body.parse().ok()?),
            "N" => Report::Note(body.to_string()),
            "T" => {
                let (t, w) = body.split_once(' ')?;
                Report::Mark { at_us: t.parse().ok()?, what: w.to_string() }
            }
            _ => return None,
        })
    }

    /// Writes the report to the pipe. A failure has nowhere to be reported.
    pub fn send(&self, fd: RawFd) {
        crate::sys::write_fd(fd, self.encode().as_bytes());
    }
}

/// What the file descriptors passed over the socketpair are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// The seccomp user-notification fd (one).
    Notify,
    /// The egress listeners, in the order of the plan's listeners.
    Listeners,
    /// No fds: the environment is set up and bounded; its init waits for an [`Order`].
    Ready,
}

impl Handoff {
    pub fn tag(self) -> u8 {
        match self {
            Handoff::Notify => b'n',
            Handoff::Listeners => b'p',
            Handoff::Ready => b'r',
        }
    }

    pub fn from_tag(b: u8) -> Option<Handoff> {
        match b {
            b'n' => Some(Handoff::Notify),
            b'p' => Some(Handoff::Listeners),
            b'r' => Some(Handoff::Ready),
            _ => None,
        }
    }
}

/// A process plan on its way to a ready environment's init: every OS string as its bytes (the plan's
/// own JSON shows them as text), the process's extra seccomp filter already compiled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub argv: Vec<Vec<u8>>,
    /// `NAME=value` entries.
    pub env: Vec<Vec<u8>>,
    /// None: the program was not found (exec reports ENOENT).
    pub program: Option<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub rlimits: Vec<(Rlimit, u64)>,
    /// The process's own Landlock ruleset, stacked on the environment's.
    pub landlock: Option<OrderLandlock>,
    /// The process's own seccomp filter, (code, jt, jf, k) per instruction, installed after the
    /// environment's and without a listener. None: the environment's filter alone.
    pub seccomp: Option<Vec<(u16, u8, u8, u32)>>,
}

/// A Landlock ruleset with its paths as bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLandlock {
    pub abi: i32,
    pub handled_fs: u64,
    pub handled_net: u64,
    pub scopes: u64,
    pub fs_rules: Vec<(Vec<u8>, u64)>,
    pub net_rules: Vec<(u16, u64)>,
}

impl Order {
    pub fn encode(&self) -> Vec<u8> {
        // Plain data (bytes, numbers, enums without maps): serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Order, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("the process plan the environment was given: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_round_trips() {
        for r in [
            Report::SetupFailed("mount: stat /x: No such file".into()),
            Report::ExecFailed(2),
            Report::Status(0x0900),
            Report::Hidden(12),
            Report::Note("the workspace is too large".into()),
            Report::Mark { at_us: 123456, what: "init: mounts done".into() },
        ] {
            let line = r.encode();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line:?}");
            assert_eq!(Report::decode(&line), Some(r));
        }
    }

    #[test]
    fn newlines_in_texts_stay_on_one_line() {
        let line = Report::SetupFailed("a\nb".into()).encode();
        assert_eq!(Report::decode(&line), Some(Report::SetupFailed("a b".into())));
    }

    #[test]
    fn what_is_not_a_report_is_none() {
        for bad in ["", "Z 1", "S x", "X", "T 12", "T x y", "H -1"] {
            assert_eq!(Report::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn handoff_tags_round_trip() {
        for h in [Handoff::Notify, Handoff::Listeners, Handoff::Ready] {
            assert_eq!(Handoff::from_tag(h.tag()), Some(h));
        }
        assert_eq!(Handoff::from_tag(b'x'), None);
    }

    #[test]
    fn an_order_round_trips_byte_for_byte() {
        let o = Order {
            argv: vec![b"/bin/echo".to_vec(), b"a\xffb".to_vec(), vec![]],
            env: vec![b"K=\x80v".to_vec()],
            program: Some(b"/bin/echo".to_vec()),
            cwd: b"/w\xfe".to_vec(),
            rlimits: vec![(Rlimit::Core, 0), (Rlimit::Nofile, 64)],
            landlock: Some(OrderLandlock {
                abi: 6,
                handled_fs: 0xffff,
                handled_net: 0,
                scopes: 3,
                fs_rules: vec![(b"/w\xfe".to_vec(), 7)],
                net_rules: vec![(80, 2)],
            }),
            seccomp: Some(vec![(0x20, 0, 0, 4), (6, 0, 0, 0x7fff_0000)]),
        };
        assert_eq!(Order::decode(&o.encode()), Ok(o));
        let e = Order::decode(b"{\"argv\": 1}").expect_err("not an order");
        assert!(e.starts_with("the process plan the environment was given: "), "{e}");
    }
}
