//! Wires the eBPF sensor into a session: where its events go (a JSON-lines file, the live timeline,
//! the audit record, the detection rules) and what a rule that says "kill" does.

pub use crate::audit_writer::{AuditWriter, WriterError};
use crate::audit_writer::{Chunked, CHUNK};
use cordon_rules::{Action, Alert, Engine, RuleSet};
use cordon_schema::{Event, Kind, Subject};
use cordon_sensor::OutputStatus;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type EventsFile = Arc<Mutex<Option<EventsOut>>>;

/// The events output (`--events`): JSON lines, buffered and written by whole events, so that each
/// event handed to it is either written or counted as lost. After the first write error nothing
/// more is written (a reader that has gone away is not tried again for every event); `finish`
/// then adds one `loss` line with `incomplete: true`, if the output still takes it.
pub struct EventsOut {
    path: String,
    out: std::fs::File,
    buf: Vec<u8>,
    /// Where each buffered event ends in `buf`.
    ends: Vec<usize>,
    written: u64,
    lost: u64,
    error: Option<std::io::Error>,
    /// The failed write stopped inside an event: the output ends with a partial line.
    mid_line: bool,
}

const EVENTS_BUF: usize = 1 << 20;

impl EventsOut {
    /// Standard output (`cordon monitor --events -`).
    pub fn stdout() -> std::io::Result<EventsOut> {
        use std::os::fd::AsFd;
        Ok(EventsOut::new("-".into(), std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?)))
    }

    fn new(path: String, out: std::fs::File) -> EventsOut {
        EventsOut {
            path,
            out,
            buf: Vec::with_capacity(EVENTS_BUF),
            ends: vec![],
            written: 0,
            lost: 0,
            error: None,
            mid_line: false,
        }
    }

    fn push(&mut self, json: &str) {
        if self.error.is_some() {
            self.lost += 1;
            return;
        }
        self.buf.extend_from_slice(json.as_bytes());
        self.buf.push(b'\n');
        self.ends.push(self.buf.len());
        if self.buf.len() >= EVENTS_BUF {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut done = 0;
        while done < self.buf.len() && self.error.is_none() {
            match self.out.write(&self.buf[done..]) {
                Ok(0) => self.error = Some(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => self.error = Some(e),
            }
        }
        let whole = self.ends.iter().take_while(|&&end| end <= done).count();
        self.mid_line =
            self.error.is_some() && done > 0 && self.ends.get(whole.wrapping_sub(1)).copied().unwrap_or(0) != done;
        self.written += whole as u64;
        self.lost += (self.ends.len() - whole) as u64;
        self.buf.clear();
        self.ends.clear();
    }

    fn status(&self) -> OutputStatus {
        OutputStatus {
            path: self.path.clone(),
            written: self.written,
            lost: self.lost,
            error: self.error.as_ref().map(|e| e.to_string()),
            incomplete: self.lost > 0,
            marked: false,
        }
    }

    /// Writes what is buffered, and the `loss` line when events are missing.
    fn finish(&mut self, session: &str) -> OutputStatus {
        self.flush();
        let mut st = self.status();
        if st.lost > 0 {
            let e = Event {
                v: cordon_schema::SCHEMA_VERSION,
                kind: Kind::Loss,
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
                session: session.into(),
                lost: Some(st.lost),
                reason: Some(loss_text(&st)),
                incomplete: true,
                ..Default::default()
            };
            let mut line = if self.mid_line { b"\n".to_vec() } else { vec![] };
            line.extend(serde_json::to_vec(&e).unwrap_or_default());
            line.push(b'\n');
            // One try: the output failed before, and may still.
            st.marked = self.out.write_all(&line).is_ok();
        }
        st
    }
}

impl Drop for EventsOut {
    fn drop(&mut self) {
        self.flush();
    }
}

/// "N events could not be written to PATH: ERROR".
pub fn loss_text(st: &OutputStatus) -> String {
    let to = if st.path == "-" { "stdout" } else { &st.path };
    format!(
        "{} event{} could not be written to {to}: {}",
        st.lost,
        if st.lost == 1 { "" } else { "s" },
        st.error.as_deref().unwrap_or("unknown error")
    )
}

/// What the sink shares with the command that started it.
#[derive(Clone, Default)]
pub struct Shared {
    pub alerts: Arc<Mutex<Vec<Alert>>>,
    /// The rule that stopped the session, if one did.
    pub killed_by: Arc<Mutex<Option<String>>>,
    pub events_file: EventsFile,
}

/// What the live timeline shows as it happens (the caller renders it).
pub enum Live<'a> {
    /// An event worth a line, `at` after the pipeline started.
    Event {
        at: Duration,
        event: &'a Event,
    },
    Alert(&'a Alert),
}

pub type LiveSink = Box<dyn FnMut(Live<'_>) + Send>;

pub struct Options {
    /// The events output, opened by the caller before the session (path for messages, file).
    pub events: Option<(PathBuf, std::fs::File)>,
    pub live: Option<LiveSink>,
    pub rules: RuleSet,
    /// Kill the session through this cgroup when a rule says so.
    pub kill_cgroup: Option<PathBuf>,
    pub audit: Option<AuditWriter>,
}

/// Shown on the live timeline: what a person watching wants; everything goes to --events.
fn on_timeline(e: &Event) -> bool {
    // The session's init setting up the sandbox (mounts, cgroups) is cordon itself.
    if e.setup {
        return false;
    }
    match e.kind {
        Kind::Fork => false,
        // A PATH search tries each directory in turn.
        Kind::Exec => e.syscall.is_none() || e.errno.as_deref().is_some_and(|x| x != "ENOENT"),
        Kind::Open => {
            let f = e.flags.unwrap_or(0);
            let writes = f & 3 != 0 || f & (libc::O_CREAT | libc::O_TRUNC) as u64 != 0;
            writes || e.errno.as_deref().is_some_and(|x| x != "ENOENT" && x != "ENOTDIR")
        }
        Kind::Net => e.result == Some(0),
        // Listed, not `_`: a new kind must be placed here on purpose.
        Kind::Exit
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
        | Kind::Syscall
        | Kind::Deny
        | Kind::Loss => true,
    }
}

pub struct Built {
    pub sink: Option<cordon_sensor::sensor::Sink>,
    pub shared: Shared,
    audit: Option<std::thread::JoinHandle<Result<u64, WriterError>>>,
}

impl Built {
    /// Waits for the audit writer (after the sensor, which owns the sink, has finished).
    pub fn finish_audit(&mut self) -> Result<u64, WriterError> {
        match self.audit.take() {
            Some(t) => t.join().map_err(|_| WriterError::Panicked)?,
            None => Ok(0),
        }
    }
}

pub fn build(o: Options) -> crate::Result<Built> {
    let shared = Shared::default();
    if let Some((p, f)) = o.events {
        *shared.events_file.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(EventsOut::new(p.display().to_string(), f));
    }
    // Only events of a kind some rule looks at are converted for the engine (the conversion costs
    // more than everything else done per event).
    let rule_fields = referenced_fields(&o.rules);
    let mut engine = (!o.rules.rules.is_empty()).then(|| Engine::new(o.rules));
    let (mut audit_tx, audit_thread) = match o.audit {
        Some(a) => {
            (Some(Chunked { tx: a.tx, pending: Vec::with_capacity(CHUNK), last: Instant::now() }), Some(a.thread))
        }
        None => (None, None),
    };
    let sh = shared.clone();
    let start = Instant::now();
    let mut live = o.live;
    let kill_cgroup = o.kill_cgroup;
    let sink: cordon_sensor::sensor::Sink = Box::new(move |f: cordon_sensor::Feed| {
        let e = match f {
            cordon_sensor::Feed::Event(e) => e,
            // A quiet moment: what is batched goes out, so a crash of cordon later loses none of it.
            cordon_sensor::Feed::Tick => {
                if let Some(tx) = audit_tx.as_mut() {
                    tx.flush();
                }
                if let Some(w) = sh.events_file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    w.flush();
                }
                return;
            }
        };
        let mut file = sh.events_file.lock().unwrap_or_else(|e| e.into_inner());
        // Serialized once, for the events file and the audit record.
        let json = (audit_tx.is_some() || file.is_some()).then(|| serde_json::to_string(e).unwrap_or_default());
        if let (Some(j), Some(w)) = (&json, file.as_mut()) {
            w.push(j);
        }
        drop(file);
        if let (Some(l), true) = (live.as_mut(), on_timeline(e)) {
            l(Live::Event { at: start.elapsed(), event: e });
        }
        if let (Some(tx), Some(j)) = (audit_tx.as_mut(), json) {
            tx.push((e.time / 1_000_000) as i64, j);
        }
        // cordon's own setup (mounting masks over credentials, say) is not the agent's doing.
        if let (Some(eng), Some(fields), false) = (engine.as_mut(), rule_fields.get(&e.kind), e.setup) {
            let v = fields_of(e, fields);
            let found = eng.feed(Subject::Event(e.kind), (e.time / 1_000_000) as i64, &v);
            if !found.is_empty() {
                for a in &found {
                    if let Some(l) = live.as_mut() {
                        l(Live::Alert(a));
                    }
                    if a.action == Action::Kill {
                        let mut k = sh.killed_by.lock().unwrap_or_else(|e| e.into_inner());
                        if k.is_none() {
                            *k = Some(a.rule.clone());
                            if let Some(cg) = &kill_cgroup {
                                crate::effects::kill_cgroup(cg);
                            }
                        }
                    }
                }
                sh.alerts.lock().unwrap_or_else(|e| e.into_inner()).extend(found);
            }
        }
    });
    Ok(Built { sink: Some(sink), shared, audit: audit_thread })
}

/// Per event kind, the top-level fields its rules read, in conditions and in reason templates
/// (the rule loader has checked that events have them).
fn referenced_fields(rs: &RuleSet) -> std::collections::HashMap<Kind, Vec<String>> {
    let mut out: std::collections::HashMap<Kind, Vec<String>> = Default::default();
    for r in &rs.rules {
        let Subject::Event(kind) = r.kind else { continue };
        let v = out.entry(kind).or_insert_with(|| vec!["kind".into()]);
        for c in &r.conds {
            v.push(c.field.split('.').next().unwrap_or("").to_string());
        }
        for key in cordon_rules::placeholders(&r.reason) {
            v.push(key.split('.').next().unwrap_or("").to_string());
        }
    }
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    out
}

/// Only the fields the rules use: converting a whole event for every file opened would cost more
/// than everything else the sensor does per event.
fn fields_of(e: &Event, fields: &[String]) -> serde_json::Value {
    let m = fields.iter().filter_map(|f| e.field(f).map(|v| (f.clone(), v))).collect();
    serde_json::Value::Object(m)
}

/// Ends the events output once the sensor has finished: appends the events that did not come from
/// the kernel (the proxy's refusals), writes what is buffered, marks the output incomplete if events
/// could not be written, and says so in the sensor's summary (which the audit record and the report
/// carry).
pub fn finish_events(shared: &Shared, session: &str, extra: &[Event], summary: Option<&mut cordon_sensor::Summary>) {
    let Some(mut w) = shared.events_file.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
    for e in extra {
        w.push(&serde_json::to_string(e).unwrap_or_default());
    }
    let st = w.finish(session);
    if let Some(s) = summary {
        s.events_output = Some(st);
    }
}
