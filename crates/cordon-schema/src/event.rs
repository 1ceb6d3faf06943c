//! The sensor's event: one versioned schema (docs/events.schema.json is generated from these types),
//! written as JSON lines by `--events`, shown by `--monitor`, stored in the audit record, fed to the
//! rules. Adding a kind is a variant of [`Kind`]: the compiler then names every match that must
//! handle it (the decoder's, the timeline's, the rules' field list).

use crate::Layer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

/// What an event is about. exec/fork/exit come from the scheduler tracepoints; the syscall kinds
/// from sys_enter/sys_exit; net is a cgroup-bpf decision; deny is a refused call (EPERM/EACCES, or
/// any error a seccomp filter returned); loss reports events dropped because the ring buffer was
/// full, or (with incomplete) events that could not be written to this output; syscall is a traced
/// call the sensor has no category for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum Kind {
    Exec,
    Fork,
    Exit,
    Open,
    Connect,
    Bind,
    Send,
    Unlink,
    Rename,
    Chmod,
    Chown,
    Mkdir,
    Truncate,
    Ptrace,
    Kill,
    Setid,
    Mount,
    Unshare,
    Setns,
    Bpf,
    Module,
    Memfd,
    IoUring,
    #[default]
    Syscall,
    Net,
    Deny,
    Loss,
}

impl Kind {
    /// Every kind, in the schema's order.
    pub const ALL: [Kind; 27] = [
        Kind::Exec,
        Kind::Fork,
        Kind::Exit,
        Kind::Open,
        Kind::Connect,
        Kind::Bind,
        Kind::Send,
        Kind::Unlink,
        Kind::Rename,
        Kind::Chmod,
        Kind::Chown,
        Kind::Mkdir,
        Kind::Truncate,
        Kind::Ptrace,
        Kind::Kill,
        Kind::Setid,
        Kind::Mount,
        Kind::Unshare,
        Kind::Setns,
        Kind::Bpf,
        Kind::Module,
        Kind::Memfd,
        Kind::IoUring,
        Kind::Syscall,
        Kind::Net,
        Kind::Deny,
        Kind::Loss,
    ];

    /// The name on the wire (JSON, rule files, the audit record).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Fork => "fork",
            Kind::Exit => "exit",
            Kind::Open => "open",
            Kind::Connect => "connect",
            Kind::Bind => "bind",
            Kind::Send => "send",
            Kind::Unlink => "unlink",
            Kind::Rename => "rename",
            Kind::Chmod => "chmod",
            Kind::Chown => "chown",
            Kind::Mkdir => "mkdir",
            Kind::Truncate => "truncate",
            Kind::Ptrace => "ptrace",
            Kind::Kill => "kill",
            Kind::Setid => "setid",
            Kind::Mount => "mount",
            Kind::Unshare => "unshare",
            Kind::Setns => "setns",
            Kind::Bpf => "bpf",
            Kind::Module => "module",
            Kind::Memfd => "memfd",
            Kind::IoUring => "io_uring",
            Kind::Syscall => "syscall",
            Kind::Net => "net",
            Kind::Deny => "deny",
            Kind::Loss => "loss",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of `cordon run --events FILE` / `cordon monitor --events FILE`, and each element of a
/// `sensor` record's body in the audit log. Fields absent from an event do not apply to its kind.
/// Version 1 only ever gains optional fields; anything else is version 2.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[schemars(title = "cordon sensor event, version 1")]
pub struct Event {
    /// Schema version.
    #[schemars(range(min = 1, max = 1))]
    pub v: u32,
    pub kind: Kind,
    /// Nanoseconds since the Unix epoch (the kernel's monotonic clock, offset to wall-clock time when
    /// the sensor started).
    pub time: u64,
    /// Session id (or the cgroup watched by `cordon monitor --cgroup`).
    pub session: String,
    /// Process id (thread group id) in the host's pid namespace.
    pub pid: u32,
    /// Thread id in the host's pid namespace.
    pub tid: u32,
    /// The parent's pid (0 on net events, which run without task context).
    pub ppid: u32,
    /// Real uid as the host sees it.
    pub uid: u32,
    #[schemars(length(max = 15))]
    pub comm: String,
    /// The executable of the process's last exec; /proc/PID/exe for processes older than the
    /// sensor; empty when unknown.
    pub exe: String,
    /// Present (true) on cordon's own setup of the session: its init, and the command's process
    /// before its first exec (mounts, cgroup joins, hardening). Rules and the timeline skip these.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub setup: bool,
    /// The system call's name (openat, connect, ...); on net events: connect, sendmsg or socket.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub syscall: Option<String>,
    /// Deny events: the kind of operation refused (open, exec, connect, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub op: Option<Kind>,
    /// The path the call named, made absolute against the process's working directory or directory
    /// fd (read from /proc when the event is processed); for memfd and module calls, the name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    /// rename, mount, pivot_root: the second path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path2: Option<String>,
    /// open (and deny of an open): whether the call asked to write (O_WRONLY, O_RDWR, O_CREAT,
    /// O_TRUNC).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub write: Option<bool>,
    /// Open flags, mode, signal, ptrace request, namespace flags: the call's own argument.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flags: Option<u64>,
    /// exec: the arguments (at most 512 bytes).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub argv: Option<Vec<String>>,
    /// IPv4 a.b.c.d:port, IPv6 [x::y]:port, unix:PATH or unix:@abstract.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub addr: Option<String>,
    /// The call's return value (negative errno on failure); net events: 1 allowed, 0 refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<i64>,
    /// Symbolic errno when the call failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errno: Option<String>,
    /// Deny events: the layer that refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub layer: Option<Layer>,
    /// Deny events: why, and how a legitimate task could go on; loss events with incomplete: why
    /// events could not be written.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// fork: the new process; kill/ptrace: the target.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_pid: Option<i64>,
    /// exit: the wait(2) status (signal in the low 7 bits, exit code in bits 8-15).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<i32>,
    /// loss: events dropped since the previous loss event.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lost: Option<u64>,
    /// loss: the same, per CPU.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lost_per_cpu: Option<Vec<u64>>,
    /// loss: present (true) on the last line of an events output (--events) that could not be
    /// written in full; lost counts the events missing from it, reason says why.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub incomplete: bool,
}

impl Event {
    pub fn is_deny(&self) -> bool {
        self.kind == Kind::Deny
    }

    /// One line for the live timeline and the summary.
    pub fn line(&self) -> String {
        let what = match self.kind {
            Kind::Exec if self.errno.is_some() => {
                format!("exec {} = {}", self.path.as_deref().unwrap_or(""), self.errno.as_deref().unwrap_or(""))
            }
            Kind::Exec => format!(
                "exec {}",
                self.argv
                    .as_ref()
                    .map(|a| a.join(" "))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| self.path.clone().unwrap_or_default())
            ),
            Kind::Fork => format!("fork -> {}", self.target_pid.unwrap_or(0)),
            Kind::Exit => format!("exit {}", exit_text(self.code.unwrap_or(0))),
            Kind::Loss => format!("LOST {} events (ring buffer full)", self.lost.unwrap_or(0)),
            Kind::Deny => format!(
                "DENIED {} {} [{}] {}",
                self.op.map_or("?", Kind::as_str),
                self.path.as_deref().or(self.addr.as_deref()).unwrap_or(self.syscall.as_deref().unwrap_or("")),
                self.layer.map_or("?", Layer::as_str),
                self.reason.as_deref().unwrap_or("")
            ),
            Kind::Net => {
                format!("net {} {}", self.syscall.as_deref().unwrap_or(""), self.addr.as_deref().unwrap_or(""))
            }
            // Listed, not `_`: a new kind must say how it is shown.
            k @ (Kind::Open
            | Kind::Connect
            | Kind::Bind
            | Kind::Send
            | Kind::Unlink
            | Kind::Rename
            | Kind::Chmod
            | Kind::Chown
            | Kind::Mkdir
            | Kind::Truncate
            | Kind::Ptrace
            | Kind::Kill
            | Kind::Setid
            | Kind::Mount
            | Kind::Unshare
            | Kind::Setns
            | Kind::Bpf
            | Kind::Module
            | Kind::Memfd
            | Kind::IoUring
            | Kind::Syscall) => {
                let obj = self.path.as_deref().or(self.addr.as_deref()).unwrap_or("");
                let res = match (self.result, &self.errno) {
                    (_, Some(e)) => format!(" = {e}"),
                    (Some(r), None) if k != Kind::Open => format!(" = {r}"),
                    _ => String::new(),
                };
                let to = self.path2.as_deref().map(|p| format!(" -> {p}")).unwrap_or_default();
                format!("{} {obj}{to}{res}", self.syscall.as_deref().unwrap_or(k.as_str()))
            }
        };
        format!("{:>7} {:<15} {what}", self.pid, self.comm)
    }
}

impl Event {
    /// One top-level field as JSON, by its name on the wire; None when the event does not have it
    /// (or no field has that name: [`Event::field_names`] lists them). Rules read a few fields of
    /// many events: converting the whole event would cost more than everything else per event.
    pub fn field(&self, name: &str) -> Option<serde_json::Value> {
        use serde_json::Value as V;
        let s = |x: &Option<String>| x.as_ref().map(|s| V::String(s.clone()));
        match name {
            "v" => Some(self.v.into()),
            "kind" => Some(self.kind.as_str().into()),
            "time" => Some(self.time.into()),
            "session" => Some(self.session.clone().into()),
            "pid" => Some(self.pid.into()),
            "tid" => Some(self.tid.into()),
            "ppid" => Some(self.ppid.into()),
            "uid" => Some(self.uid.into()),
            "comm" => Some(self.comm.clone().into()),
            "exe" => Some(self.exe.clone().into()),
            "setup" => self.setup.then_some(V::Bool(true)),
            "syscall" => s(&self.syscall),
            "op" => self.op.map(|k| k.as_str().into()),
            "path" => s(&self.path),
            "path2" => s(&self.path2),
            "write" => self.write.map(V::from),
            "flags" => self.flags.map(V::from),
            "argv" => self.argv.as_ref().map(|a| V::from(a.clone())),
            "addr" => s(&self.addr),
            "result" => self.result.map(V::from),
            "errno" => s(&self.errno),
            "layer" => self.layer.map(|l| l.as_str().into()),
            "reason" => s(&self.reason),
            "target_pid" => self.target_pid.map(V::from),
            "code" => self.code.map(V::from),
            "lost" => self.lost.map(V::from),
            "lost_per_cpu" => self.lost_per_cpu.as_ref().map(|a| V::from(a.clone())),
            "incomplete" => self.incomplete.then_some(V::Bool(true)),
            _ => None,
        }
    }

    /// The names of every field an event can have (from the generated schema).
    /// (The keys of an event with every field set: generating the schema at run time cost ~0.5 ms
    /// per `cordon run`; a test checks that these are the schema's properties.)
    pub fn field_names() -> &'static [String] {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        NAMES.get_or_init(|| crate::keys(&Event::full()))
    }

    /// An event with every optional field set (for the list of field names).
    fn full() -> Event {
        Event {
            setup: true,
            syscall: Some(String::new()),
            op: Some(Kind::Open),
            path: Some(String::new()),
            path2: Some(String::new()),
            write: Some(true),
            flags: Some(0),
            argv: Some(vec![]),
            addr: Some(String::new()),
            result: Some(0),
            errno: Some(String::new()),
            layer: Some(Layer::Dac),
            reason: Some(String::new()),
            target_pid: Some(0),
            code: Some(0),
            lost: Some(0),
            lost_per_cpu: Some(vec![]),
            incomplete: true,
            ..Default::default()
        }
    }
}

/// A wait(2) status in words.
pub fn exit_text(code: i32) -> String {
    if code & 0x7f != 0 {
        format!("killed by signal {}", code & 0x7f)
    } else {
        format!("status {}", (code >> 8) & 0xff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_wire_name_and_parses_back() {
        for k in Kind::ALL {
            let j = serde_json::to_string(&k).expect("json");
            assert_eq!(j, format!("\"{}\"", k.as_str()));
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::from_str::<Kind>(&j).expect("back"), k);
        }
        assert_eq!(Kind::IoUring.as_str(), "io_uring");
    }

    /// Every field of the schema is readable by name, so a rule can never name a field that the
    /// events have but the rules silently never see.
    #[test]
    fn every_schema_field_is_readable_by_name() {
        let e = Event {
            v: 1,
            kind: Kind::Deny,
            setup: true,
            syscall: Some("x".into()),
            op: Some(Kind::Open),
            path: Some("x".into()),
            path2: Some("x".into()),
            write: Some(true),
            flags: Some(1),
            argv: Some(vec![]),
            addr: Some("x".into()),
            result: Some(1),
            errno: Some("x".into()),
            layer: Some(Layer::Dac),
            reason: Some("x".into()),
            target_pid: Some(1),
            code: Some(1),
            lost: Some(1),
            lost_per_cpu: Some(vec![]),
            incomplete: true,
            ..Default::default()
        };
        let whole = serde_json::to_value(&e).expect("json");
        let names = Event::field_names();
        assert!(names.len() >= 28, "{names:?}");
        let mut from_schema = crate::properties(&schemars::schema_for!(Event).into());
        let mut mine = names.to_vec();
        from_schema.sort();
        mine.sort();
        assert_eq!(mine, from_schema, "Event::full() must set every field");
        for f in names {
            assert_eq!(e.field(f).as_ref(), whole.get(f), "field {f}");
        }
        assert_eq!(e.field("colour"), None);
    }

    #[test]
    fn an_unknown_kind_is_an_error() {
        let base =
            r#"{"v":1,"kind":"open","time":1,"session":"s","pid":1,"tid":1,"ppid":0,"uid":0,"comm":"c","exe":""}"#;
        assert!(serde_json::from_str::<Event>(base).is_ok());
        let kind = base.replace("\"open\"", "\"opne\"");
        assert!(serde_json::from_str::<Event>(&kind).is_err());
    }
}
