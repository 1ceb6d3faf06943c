//! The sensor's event: one versioned schema (docs/events.schema.json), written as JSON lines by
//! `--events`, shown by `--monitor`, stored in the audit record.

use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Schema version.
    pub v: u32,
    /// exec, fork, exit, open, connect, bind, send, unlink, rename, chmod, chown, mkdir, truncate,
    /// ptrace, kill, setid, mount, unshare, setns, bpf, module, memfd, io_uring, net, deny, loss.
    pub kind: String,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time: u64,
    pub session: String,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: String,
    /// The process's executable, from its last exec (or /proc for processes older than the sensor).
    pub exe: String,
    /// True for the session's own setup by cordon: its init, and the command's process before its
    /// first exec (mounts, cgroup joins, hardening). Rules and the timeline skip these.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub setup: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub syscall: Option<String>,
    /// For deny events: the operation denied (open, connect, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub op: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path2: Option<String>,
    /// open: whether the call asked to write (O_WRONLY, O_RDWR, O_CREAT or O_TRUNC).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub write: Option<bool>,
    /// open flags, chmod mode, kill signal, ptrace request, unshare flags... as the call passed them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flags: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub argv: Option<Vec<String>>,
    /// host:port, [v6]:port or a unix socket path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub addr: Option<String>,
    /// The syscall's return value (negative errno on failure).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errno: Option<String>,
    /// For deny events: landlock, seccomp, cgroup-bpf, proxy or dac.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub layer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// fork: the new process. kill/ptrace: the target.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_pid: Option<i64>,
    /// exit: the exit status as wait(2) encodes it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<i32>,
    /// loss: events dropped since the last loss event, per CPU, and in total.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lost: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lost_per_cpu: Option<Vec<u64>>,
    /// loss: set on the last line of an events output that could not be written in full (`lost`
    /// events are missing from it, `reason` says why).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub incomplete: bool,
}

impl Event {
    pub fn is_deny(&self) -> bool {
        self.kind == "deny"
    }

    /// One line for the live timeline and the summary.
    pub fn line(&self) -> String {
        let what = match self.kind.as_str() {
            "exec" if self.errno.is_some() => {
                format!("exec {} = {}", self.path.as_deref().unwrap_or(""), self.errno.as_deref().unwrap_or(""))
            }
            "exec" => format!(
                "exec {}",
                self.argv
                    .as_ref()
                    .map(|a| a.join(" "))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| self.path.clone().unwrap_or_default())
            ),
            "fork" => format!("fork -> {}", self.target_pid.unwrap_or(0)),
            "exit" => format!("exit {}", exit_text(self.code.unwrap_or(0))),
            "loss" => format!("LOST {} events (ring buffer full)", self.lost.unwrap_or(0)),
            "deny" => format!(
                "DENIED {} {} [{}] {}",
                self.op.as_deref().unwrap_or("?"),
                self.path.as_deref().or(self.addr.as_deref()).unwrap_or(self.syscall.as_deref().unwrap_or("")),
                self.layer.as_deref().unwrap_or("?"),
                self.reason.as_deref().unwrap_or("")
            ),
            "net" => format!("net {} {}", self.syscall.as_deref().unwrap_or(""), self.addr.as_deref().unwrap_or("")),
            k => {
                let obj = self.path.as_deref().or(self.addr.as_deref()).unwrap_or("");
                let res = match (self.result, &self.errno) {
                    (_, Some(e)) => format!(" = {e}"),
                    (Some(r), None) if k != "open" => format!(" = {r}"),
                    _ => String::new(),
                };
                let to = self.path2.as_deref().map(|p| format!(" -> {p}")).unwrap_or_default();
                format!("{} {obj}{to}{res}", self.syscall.as_deref().unwrap_or(k))
            }
        };
        format!("{:>7} {:<15} {what}", self.pid, self.comm)
    }
}

pub fn exit_text(code: i32) -> String {
    if code & 0x7f != 0 {
        format!("killed by signal {}", code & 0x7f)
    } else {
        format!("status {}", (code >> 8) & 0xff)
    }
}
