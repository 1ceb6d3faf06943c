//! `cordon daemon`: warm pools of prepared devboxes, claims, exec, ls and rm over a unix socket.
//!
//! The socket is 0666, and every connection is judged by its peer's credentials (SO_PEERCRED): root
//! and the `--allow-uid` users may use it, anyone else is answered with an error and the refusal is
//! logged. A claimed devbox belongs to the uid that claimed it: exec and rm by anyone else (but
//! root) are refused.
//!
//! Threads: the accept loop, one per connection, one per pool refill, and one that waits for
//! SIGTERM/SIGINT and removes every devbox before the daemon exits. The environments themselves
//! live in holder processes ([`crate::holder`]).

use crate::holder::{ClaimPolicy, FromHolder, ToHolder};
use crate::wire::{self, recv, send, Listed, Reply, Request};
use crate::DevboxError;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Options {
    pub socket: PathBuf,
    pub store: PathBuf,
    pub allow_uids: Vec<u32>,
    /// Users (besides root) who may size pools; they may use the daemon too.
    pub pool_uids: Vec<u32>,
    /// The largest pool of one snapshot.
    pub max_pool: usize,
    /// The most pooled devboxes, all snapshots together.
    pub max_pool_total: usize,
    /// The cordon binary (holders are `cordon devbox-hold`).
    pub exe: PathBuf,
    /// How long a connection may take to send its request (and the daemon to send an answer).
    pub io_timeout: Duration,
    /// How many connections are served at once; beyond it a connection is refused at once.
    pub max_connections: usize,
    /// How long a claim's `ready` probe may run.
    pub probe_timeout: Duration,
    /// The audit log each claim is recorded in (a session per claim: its start, its execs, its end).
    pub audit: PathBuf,
    /// The most devboxes one user (not root) holds at once, claims under way included.
    pub max_claims_per_uid: usize,
}

/// A claim's session in the audit log: open from the claim to the devbox's end.
struct Audit {
    store: cordon_audit::Store,
    /// Commands run so far (each exec's number).
    execs: u64,
    since: Instant,
}

/// How long a holder may take to make its environment, or to start its exec server at claim.
const HOLD_TIMEOUT: Duration = Duration::from_secs(30);

/// One devbox: its holder process and channels.
struct Devbox {
    id: String,
    snapshot: String,
    dir: PathBuf,
    ws: PathBuf,
    child: Child,
    ctl: OwnedFd,
    exec: Arc<OwnedFd>,
    init_pid: i32,
    cgroup: Option<PathBuf>,
    /// Who claimed it (None: pooled).
    owner: Option<u32>,
    /// Its exec server runs (a claim reached the holder).
    running: bool,
    /// Its session in the audit log, once claimed.
    audit: Option<Arc<Mutex<Audit>>>,
    /// The audit log opened while the devbox was made (off the claim's path), for its session.
    log_ready: Option<cordon_audit::Store>,
    /// The names of the secrets its claim bound (the values are never kept here).
    secrets: Vec<String>,
}

#[derive(Default)]
struct State {
    /// Pool sizes asked for, per snapshot hash.
    targets: HashMap<String, usize>,
    idle: HashMap<String, Vec<Devbox>>,
    claimed: HashMap<String, Devbox>,
    /// Refills under way, per snapshot.
    filling: HashMap<String, bool>,
    /// Claims under way, per claimant: counted against `max_claims_per_uid` with the ones held.
    claiming: HashMap<u32, usize>,
    stopping: bool,
}

/// The snapshot's pool as a claim found it: recorded with the claim, so that the server can show
/// pool sizes (issue 16) from what the nodes already ship.
#[derive(Debug, Clone, Copy)]
struct PoolAtClaim {
    /// The claim was served from the pool (not made at claim).
    from_pool: bool,
    /// The pool's size as set (`cordon devbox pool`; 0: no pool).
    size: usize,
    /// Devboxes left ready in the pool once this claim took its own.
    ready: usize,
}

struct Daemon {
    o: Options,
    state: Mutex<State>,
    /// Holders are started by one thread that lives as long as the daemon: a holder's parent-death
    /// signal follows the thread that forked it, and connection threads end after each request.
    spawner: Mutex<std::sync::mpsc::Sender<(Command, std::sync::mpsc::Sender<std::io::Result<Child>>)>>,
    /// Connections being served (bounded by `max_connections`).
    serving: AtomicUsize,
    /// Connections being served per uid: one user may hold a quarter of the slots at most, and root
    /// is never refused for slots (review 9: a user could hold every slot and shut root out).
    per_uid: Mutex<HashMap<u32, usize>>,
    /// Refused connections, answered one at a time by one thread (see [`refuser`]).
    refusals: std::sync::mpsc::SyncSender<(OwnedFd, String)>,
}

/// The thread that answers refused connections: it reads the peer's request first (at most half a
/// second), because a refusal sent before the client has sent would meet a closed connection
/// (ECONNRESET) and not be read. One thread, a bounded queue: a flood of refused peers costs one
/// thread and holds no slot of the daemon's.
fn refuser() -> Result<std::sync::mpsc::SyncSender<(OwnedFd, String)>, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(OwnedFd, String)>(256);
    spawn("refuser", move || {
        for (conn, error) in rx {
            let _ = set_timeouts(&conn, Duration::from_millis(500));
            let _ = recv::<Request>(conn.as_fd());
            let _ = send(conn.as_fd(), &Reply::Error { error }, &[]);
        }
    })?;
    Ok(tx)
}

/// A thread started, or the reason it could not be (no panic when threads run out).
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|e| format!("cannot start a thread ({name}): {e}"))
}

/// SO_RCVTIMEO and SO_SNDTIMEO on `fd` (zero: none).
fn set_timeouts(fd: &OwnedFd, t: Duration) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let tv = nix::sys::time::TimeVal::new(t.as_secs() as _, t.subsec_micros() as _);
    setsockopt(fd, sockopt::ReceiveTimeout, &tv)?;
    setsockopt(fd, sockopt::SendTimeout, &tv)
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

fn err(e: impl std::fmt::Display) -> DevboxError {
    DevboxError::Daemon(e.to_string())
}

fn log(msg: &str) {
    eprintln!("cordon daemon: {msg}");
}

/// Runs until SIGTERM or SIGINT; then every devbox is removed and the socket with them.
pub fn run(o: Options) -> Result<(), DevboxError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGTERM);
    sigs.add(Signal::SIGINT);
    // Blocked before any thread starts: only the waiting thread takes them.
    sigs.thread_block().map_err(err)?;
    let root = o.store.join("devboxes");
    std::fs::create_dir_all(&root).map_err(|e| err(format!("cannot create {}: {e}", root.display())))?;
    // One daemon per store, for the daemon's life (the lock goes with the process): a second one
    // would remove the first's devboxes below.
    let _lock = lock_store(&o.store)?;
    // Devboxes a daemon killed without its cleanup left: their holders ended with it (pdeathsig).
    for e in std::fs::read_dir(&root).map_err(err)?.flatten() {
        log(&format!("removing {}, left by an earlier daemon", e.path().display()));
        let _ = std::fs::remove_dir_all(e.path());
    }
    // The audit log and its -wal/-shm made before the first devbox is planned: the plan masks only
    // paths that exist, and the log must be masked in every devbox (review 9). Kept open for the
    // daemon's life, so that the -wal and -shm files stay.
    let _log =
        cordon_audit::Store::open(&o.audit).map_err(|e| err(format!("the audit log {}: {e}", o.audit.display())))?;
    let listener = listen(&o.socket)?;
    log(&format!("listening on {} (store {})", o.socket.display(), o.store.display()));
    let (tx, rx) = std::sync::mpsc::channel::<(Command, std::sync::mpsc::Sender<std::io::Result<Child>>)>();
    spawn("spawner", move || {
        for (mut cmd, back) in rx {
            let _ = back.send(cmd.spawn());
        }
    })
    .map_err(err)?;
    let d = Arc::new(Daemon {
        o,
        state: Mutex::new(State::default()),
        spawner: Mutex::new(tx),
        serving: AtomicUsize::new(0),
        per_uid: Mutex::default(),
        refusals: refuser().map_err(err)?,
    });
    {
        let d = d.clone();
        spawn("signals", move || {
            let _ = sigs.wait();
            d.stop();
            let _ = std::fs::remove_file(&d.o.socket);
            log("stopped: every devbox removed");
            std::process::exit(0);
        })
        .map_err(err)?;
    }
    loop {
        let conn = match nix::sys::socket::accept4(listener.as_raw_fd(), nix::sys::socket::SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => crate::sys::own(fd),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNABORTED) => continue,
            Err(e @ (nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE | nix::errno::Errno::ENOMEM)) => {
                // Out of descriptors or memory: wait for some to be given back, do not end.
                log(&format!("accept: {e}; retrying"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(err(format!("accept: {e}"))),
        };
        d.accepted(conn);
    }
}

/// An exclusive flock on `STORE/daemon.lock`, which holds the daemon's pid; a store another daemon
/// holds is refused naming it.
fn lock_store(store: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, DevboxError> {
    use std::io::{Read, Seek, Write};
    let path = store.join("daemon.lock");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
    let f = match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut f, _)) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(err(format!(
                "the store {} is in use: {} is held by the daemon pid {}\n  hint: stop that daemon, or give --store another directory",
                store.display(),
                path.display(),
                pid.trim()
            )));
        }
    };
    let mut f = f;
    let wrote = f.set_len(0).and_then(|_| f.rewind()).and_then(|_| write!(f, "{}", std::process::id()));
    wrote.map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
    Ok(f)
}

fn listen(path: &Path) -> Result<OwnedFd, DevboxError> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    }
    match path.symlink_metadata() {
        Ok(m) if m.file_type().is_socket() => {
            if wire::connect(path).is_ok() {
                return Err(err(format!(
                    "{} is in use: another daemon listens there\n  hint: stop it, or give --socket another path",
                    path.display()
                )));
            }
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => return Err(err(format!("{} exists and is not a socket; refusing to replace it", path.display()))),
        Err(_) => {}
    }
    let s = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).map_err(err)?;
    bind(s.as_raw_fd(), &UnixAddr::new(path).map_err(err)?)
        .map_err(|e| err(format!("bind {}: {e}", path.display())))?;
    // Anyone may connect; each request is judged by its peer's uid.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
    listen(&s, Backlog::new(64).map_err(err)?).map_err(err)?;
    Ok(s)
}

impl Daemon {
    /// A connection bounded in time (before anything is read from it) and in number, then served on
    /// a thread of its own.
    fn accepted(self: &Arc<Self>, conn: OwnedFd) {
        // Refused connections go to the one refusing thread; when it is behind, they are closed.
        let refuse = |conn: OwnedFd, error: String| {
            let _ = self.refusals.try_send((conn, error));
        };
        if let Err(e) = set_timeouts(&conn, self.o.io_timeout) {
            log(&format!("a connection dropped: its timeouts could not be set: {e}"));
            return;
        }
        // The peer is judged before it takes a slot: a uid that may not use the daemon holds none.
        let Ok(cred) = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials) else {
            return;
        };
        let uid = cred.uid();
        if !self.may_use(uid) {
            log(&format!(
                "refused a connection from uid {uid} (pid {}): not root and not in --allow-uid or --pool-uid",
                cred.pid()
            ));
            refuse(conn, format!(
                "uid {uid} may not use this daemon\n  hint: its administrator allows users with `cordon daemon --allow-uid UID`"
            ));
            return;
        }
        let max = self.o.max_connections;
        let per_uid = (max / 4).max(1);
        {
            let mut held = self.per_uid.lock().unwrap_or_else(|p| p.into_inner());
            let mine = held.entry(uid).or_default();
            if uid != 0 && (*mine >= per_uid || self.serving.load(Ordering::SeqCst) >= max) {
                drop(held);
                refuse(conn, format!(
                    "the daemon serves at most {max} connections at once, {per_uid} per user, and is busy\n  hint: try again; its administrator sets the bound with `cordon daemon --max-connections N`"
                ));
                return;
            }
            *mine += 1;
            self.serving.fetch_add(1, Ordering::SeqCst);
        }
        let d = self.clone();
        let served = spawn("connection", move || {
            d.clone().serve(conn);
            d.release(uid);
        });
        if let Err(e) = served {
            self.release(uid);
            // The connection was moved into the closure that did not run: it is closed.
            log(&format!("a connection dropped: {e}"));
        }
    }

    fn may_use(&self, uid: u32) -> bool {
        uid == 0 || self.o.allow_uids.contains(&uid) || self.o.pool_uids.contains(&uid)
    }

    /// A connection's slot given back.
    fn release(&self, uid: u32) {
        self.serving.fetch_sub(1, Ordering::SeqCst);
        let mut held = self.per_uid.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&uid);
            }
        }
    }

    fn serve(self: Arc<Self>, conn: OwnedFd) {
        let cred = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials);
        let Ok(cred) = cred else { return };
        let uid = cred.uid();
        // The request is read first, also from a peer that is refused: answered before its client
        // has sent, the refusal would meet a closed connection instead (EPIPE) and not be read.
        let got = recv::<Request>(conn.as_fd());
        if uid != 0 && !self.o.allow_uids.contains(&uid) && !self.o.pool_uids.contains(&uid) {
            log(&format!(
                "refused a request from uid {uid} (pid {}): not root and not in --allow-uid or --pool-uid",
                cred.pid()
            ));
            let _ = send(
                conn.as_fd(),
                &Reply::Error {
                    error: format!(
                        "uid {uid} may not use this daemon\n  hint: its administrator allows users with `cordon daemon --allow-uid UID`"
                    ),
                },
                &[],
            );
            return;
        }
        let (req, fds) = match got {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) if timed_out(&e) => {
                let secs = self.o.io_timeout.as_secs_f64();
                log(&format!(
                    "dropped a connection from uid {uid} (pid {}): it sent no request within {secs} s",
                    cred.pid()
                ));
                let _ = send(
                    conn.as_fd(),
                    &Reply::Error { error: format!("no request within {secs} s: the connection is closed") },
                    &[],
                );
                return;
            }
            Err(e) => {
                let _ = send(conn.as_fd(), &Reply::Error { error: format!("a request that does not parse: {e}") }, &[]);
                return;
            }
        };
        let reply = match req {
            Request::Pool { .. } if uid != 0 && !self.o.pool_uids.contains(&uid) => {
                log(&format!("refused to size a pool for uid {uid}: not root and not in --pool-uid"));
                Err(format!(
                    "uid {uid} may not size pools (a pool holds the machine's memory and processes)\n  hint: root sizes pools, or the users its administrator names with `cordon daemon --pool-uid UID`"
                ))
            }
            Request::Pool { snapshot, size } => self.pool(&snapshot, size),
            Request::Claim { snapshot, policy, policy_text, secrets } => crate::secrets::check(&secrets)
                .and_then(|_| claim_policy(policy, policy_text, uid))
                .and_then(|p| self.claim(&snapshot, p, secrets, uid)),
            Request::Exec { id, argv, env } => self.exec(&id, argv, env, fds, uid),
            Request::Ls => Ok(self.ls(uid)),
            Request::Rm { id } => self.rm(&id, uid),
        };
        let reply = reply.unwrap_or_else(|error| Reply::Error { error });
        if let Err(e) = send(conn.as_fd(), &reply, &[]) {
            // A devbox claimed for a client that is gone would be claimed by nobody: removed.
            if let Reply::Claimed { id, .. } = &reply {
                let b = self.state.lock().ok().and_then(|mut s| s.claimed.remove(id));
                if let Some(b) = b {
                    end_record(&b, &format!("its client (uid {uid}) was gone before the claim's answer"));
                    teardown(b);
                    log(&format!(
                        "devbox {id} claimed by uid {uid}: its client was gone before the answer: removed ({e})"
                    ));
                }
            }
        }
    }

    fn snapshot(&self, name: &str) -> Result<(PathBuf, crate::snapshot::Manifest), String> {
        crate::snapshot::open(&self.o.store, name).map_err(|e| e.to_string())
    }

    fn pool(self: &Arc<Self>, name: &str, size: usize) -> Result<Reply, String> {
        let (_, m) = self.snapshot(name)?;
        let max = self.o.max_pool;
        if size > max {
            return Err(format!(
                "a pool of {size} is more than --max-pool {max} (the largest pool of one snapshot)\n  hint: ask for at most {max}, or start the daemon with a larger --max-pool"
            ));
        }
        let extra: Vec<Devbox> = {
            let mut s = self.state.lock().map_err(|_| "state poisoned")?;
            let others: usize = s.targets.iter().filter(|(h, _)| **h != m.hash).map(|(_, n)| n).sum();
            let total = self.o.max_pool_total;
            if others + size > total {
                return Err(format!(
                    "{} pooled devboxes in all would be more than --max-pool-total {total} ({others} in the other pools)\n  hint: make another pool smaller first, or start the daemon with a larger --max-pool-total",
                    others + size
                ));
            }
            s.targets.insert(m.hash.clone(), size);
            let idle = s.idle.entry(m.hash.clone()).or_default();
            let keep = idle.len().min(size);
            idle.drain(keep..).collect()
        };
        // A smaller pool: the devboxes beyond its size are removed.
        for b in extra {
            teardown(b);
        }
        // A refill under way finishes first (it makes no more than the new size): the answer
        // describes the pool as it is.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && self.state.lock().map_err(|_| "state poisoned")?.filling.get(&m.hash).copied().unwrap_or(false)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        // The first fill is waited for: the answer says the pool is ready.
        self.refill(&m.hash);
        let ready = self.state.lock().map_err(|_| "state poisoned")?.idle.get(&m.hash).map_or(0, Vec::len);
        Ok(Reply::Pooled { snapshot: m.hash, ready })
    }

    /// Makes devboxes until the pool has its size (one refill per snapshot at a time).
    fn refill(self: &Arc<Self>, hash: &str) {
        {
            let Ok(mut s) = self.state.lock() else { return };
            if s.filling.get(hash).copied().unwrap_or(false) {
                return;
            }
            s.filling.insert(hash.to_string(), true);
        }
        loop {
            let need = {
                let Ok(s) = self.state.lock() else { return };
                let have = s.idle.get(hash).map_or(0, Vec::len);
                !s.stopping && have < s.targets.get(hash).copied().unwrap_or(0)
            };
            if !need {
                break;
            }
            match self.make(hash) {
                Ok(b) => {
                    let Ok(mut s) = self.state.lock() else { return };
                    // The pool may have been made smaller (or the daemon told to stop) meanwhile.
                    let have = s.idle.get(hash).map_or(0, Vec::len);
                    if s.stopping || have >= s.targets.get(hash).copied().unwrap_or(0) {
                        drop(s);
                        teardown(b);
                        break;
                    }
                    s.idle.entry(hash.to_string()).or_default().push(b);
                }
                Err(e) => {
                    log(&format!("pool {hash}: a devbox could not be made: {e}"));
                    break;
                }
            }
        }
        if let Ok(mut s) = self.state.lock() {
            s.filling.insert(hash.to_string(), false);
        }
    }

    /// One prepared devbox of snapshot `hash`: its directory, its holder, its environment ready.
    fn make(&self, hash: &str) -> Result<Devbox, String> {
        let (snap, m) = self.snapshot(hash)?;
        let id = cordon_sandbox::new_session_id();
        let dir = self.o.store.join("devboxes").join(&id);
        // The overlay is mounted at the snapshot's own code path: every devbox of a snapshot sees its
        // code where setup made it (absolute paths a setup step wrote, such as a virtualenv's, hold),
        // and the mount plan's protected paths are judged against the code as it is.
        let (upper, work, ws) = (dir.join("upper"), dir.join("work"), snap.join("code"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        // A devbox's writes (its upper layer: files a claim's secrets may have gone into) and its
        // holder's log are root's alone on the host.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
        let made = (|| {
            use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
            let pair = || {
                socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
                    .map_err(|e| format!("socketpair: {e}"))
            };
            let ((ctl, ctl_h), (exec, exec_h)) = (pair()?, pair()?);
            let log = std::fs::File::create(dir.join("holder.log")).map_err(|e| format!("log: {e}"))?;
            let mut cmd = Command::new(&self.o.exe);
            cmd.arg("devbox-hold").stdin(Stdio::from(exec_h)).stdout(Stdio::from(ctl_h)).stderr(Stdio::from(log));
            let (back, answer) = std::sync::mpsc::channel();
            self.spawner
                .lock()
                .map_err(|_| "spawner poisoned")?
                .send((cmd, back))
                .map_err(|_| "the spawner thread is gone")?;
            let child = answer
                .recv()
                .map_err(|_| "the spawner thread is gone".to_string())?
                .map_err(|e| format!("cannot start {} devbox-hold: {e}", self.o.exe.display()))?;
            let mut b = Devbox {
                id: id.clone(),
                snapshot: m.hash.clone(),
                dir: dir.clone(),
                ws: ws.clone(),
                child,
                ctl,
                exec: Arc::new(exec),
                init_pid: 0,
                cgroup: None,
                owner: None,
                running: false,
                audit: None,
                log_ready: None,
                secrets: vec![],
            };
            let hold = ToHolder::Hold {
                id: id.clone(),
                lower: ws.clone(),
                upper: upper.clone(),
                work: work.clone(),
                ws: ws.clone(),
                policy: m.devbox.policy.clone(),
                env: devbox_env(&m),
                exe: self.o.exe.clone(),
                audit: Some(self.o.audit.clone()),
            };
            // A holder that hangs does not hang the daemon: its answers have a deadline.
            set_timeouts(&b.ctl, HOLD_TIMEOUT).map_err(|e| format!("the holder's channel: {e}"))?;
            let answer = send(b.ctl.as_fd(), &hold, &[])
                .map_err(|e| e.to_string())
                .and_then(|_| recv::<FromHolder>(b.ctl.as_fd()).map_err(|e| e.to_string()));
            match answer {
                Ok(Some((FromHolder::Ready { init_pid, cgroup }, _))) => {
                    b.init_pid = init_pid;
                    // Opened now, not at claim (it costs more than the rest of a warm claim);
                    // failing here, it is opened at claim, which then says why.
                    b.log_ready = cordon_audit::Store::open(&self.o.audit).ok();
                    b.cgroup = cgroup;
                    Ok(b)
                }
                Ok(Some((FromHolder::Failed { error }, _))) => {
                    teardown(b);
                    Err(error)
                }
                Err(e) if e.contains("timed out") || e.contains("temporarily unavailable") => {
                    let why = holder_log(&dir);
                    teardown(b);
                    Err(format!("its holder did not make it within {} s{why}", HOLD_TIMEOUT.as_secs()))
                }
                other => {
                    let why = holder_log(&dir);
                    teardown(b);
                    Err(format!("its holder ended without making it ({other:?}){why}"))
                }
            }
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        made
    }

    fn claim(
        self: &Arc<Self>,
        name: &str,
        policy: Option<ClaimPolicy>,
        secrets: crate::secrets::Secrets,
        uid: u32,
    ) -> Result<Reply, String> {
        self.reserve_claim(uid)?;
        let r = self.claim_one(name, policy, secrets, uid);
        if let Ok(mut s) = self.state.lock() {
            if let Some(n) = s.claiming.get_mut(&uid) {
                *n = n.saturating_sub(1);
            }
        }
        // Refilled in the background, off the claim's path, whatever the claim's end (a refused
        // claim gave its devbox back: then there is nothing to make).
        if let Ok((_, m)) = self.snapshot(name) {
            let d = self.clone();
            if let Err(e) = spawn("refill", move || d.refill(&m.hash)) {
                log(&format!("pool {name}: not refilled now: {e}"));
            }
        }
        r
    }

    /// Counts a claim of `uid`'s under way, or refuses it when the user holds the most devboxes
    /// allowed (a user the daemon serves must not be able to take every devbox, or the host's
    /// memory, with claims; root is not bounded).
    fn reserve_claim(&self, uid: u32) -> Result<(), String> {
        let mut s = self.state.lock().map_err(|_| "state poisoned")?;
        let held = s.claimed.values().filter(|b| b.owner == Some(uid)).count();
        let under_way = s.claiming.get(&uid).copied().unwrap_or(0);
        let max = self.o.max_claims_per_uid;
        if uid != 0 && held + under_way >= max {
            return Err(format!(
                "user {uid} holds {held} devbox(es) and claims {under_way} more: at most {max} per user\n  hint: remove one first (`cordon devbox ls`, `cordon devbox rm ID`); the daemon's administrator sets the bound with `cordon daemon --max-claims-per-uid N`"
            ));
        }
        *s.claiming.entry(uid).or_default() += 1;
        Ok(())
    }

    fn claim_one(
        self: &Arc<Self>,
        name: &str,
        policy: Option<ClaimPolicy>,
        secrets: crate::secrets::Secrets,
        uid: u32,
    ) -> Result<Reply, String> {
        let t0 = Instant::now();
        let (_, m) = self.snapshot(name)?;
        let hash = m.hash.clone();
        let (pool, pooled) = {
            let mut s = self.state.lock().map_err(|_| "state poisoned")?;
            let pooled = s.idle.get_mut(&hash).and_then(Vec::pop);
            let size = s.targets.get(&hash).copied().unwrap_or(0);
            let ready = s.idle.get(&hash).map_or(0, Vec::len);
            (PoolAtClaim { from_pool: pooled.is_some(), size, ready }, pooled)
        };
        let from_pool = pool.from_pool;
        let mut b = match pooled {
            Some(b) => b,
            None => self.make(&hash)?,
        };
        let spec = match policy {
            None => None,
            Some(p) => {
                let judged = ClaimPolicy::Spec(m.devbox.policy.clone()).load(&b.ws).and_then(|(_, base)| {
                    let (_, claim) = p.load(&b.ws)?;
                    crate::tighten::check(&base, &claim).map_err(|why| {
                        format!(
                            "the claim's policy {} is looser than the snapshot's ({}): it adds {why}\n  hint: a claim may only tighten the snapshot's policy; build a snapshot with a wider `policy` for this",
                            p.name(),
                            m.devbox.policy
                        )
                    })
                });
                if let Err(e) = judged {
                    // Unused: back to the pool.
                    if let Ok(mut s) = self.state.lock() {
                        s.idle.entry(hash.clone()).or_default().push(b);
                    }
                    return Err(e);
                }
                Some(p)
            }
        };
        let env = devbox_env(&m);
        let spec_used = spec.clone();
        b.secrets = secrets.iter().map(|(k, _)| k.clone()).collect();
        let started = send(b.ctl.as_fd(), &ToHolder::Claim { policy: spec, secrets }, &[])
            .map_err(|e| e.to_string())
            .and_then(|_| recv::<FromHolder>(b.ctl.as_fd()).map_err(|e| e.to_string()));
        match started {
            Ok(Some((FromHolder::Running, _))) => b.running = true,
            Ok(Some((FromHolder::Failed { error }, _))) => {
                teardown(b);
                return Err(format!("the devbox could not be claimed: {error}"));
            }
            other => {
                let why = holder_log(&b.dir);
                teardown(b);
                return Err(format!("the devbox's holder ended at claim ({other:?}){why}"));
            }
        }
        // Ready means ready: the probe passed inside the claimed devbox (through its exec server).
        let probe = m.devbox.ready.clone().unwrap_or_else(|| vec!["/bin/true".into()]);
        match probe_in(&b, &probe, &env, self.o.probe_timeout) {
            Ok(0) => {}
            Err(Probe::TimedOut) => {
                teardown(b);
                return Err(format!(
                    "the ready probe `{}` did not pass within {} s (--probe-timeout); the devbox was removed",
                    probe.join(" "),
                    self.o.probe_timeout.as_secs_f64()
                ));
            }
            Ok(code) => {
                teardown(b);
                return Err(format!(
                    "the ready probe `{}` failed (exit status {code}); the devbox was removed",
                    probe.join(" ")
                ));
            }
            Err(Probe::Failed(e)) => {
                // The holder ends once its exec server has: its log says how.
                let _ = b.child.try_wait();
                std::thread::sleep(Duration::from_millis(50));
                let why = holder_log(&b.dir);
                teardown(b);
                return Err(format!(
                    "the ready probe `{}` could not run: {e}{why}; the devbox was removed",
                    probe.join(" ")
                ));
            }
        }
        b.owner = Some(uid);
        let latency_ms = t0.elapsed().as_secs_f64() * 1e3;
        let used = spec_used.unwrap_or_else(|| ClaimPolicy::Spec(m.devbox.policy.clone()));
        match self.start_record(&mut b, &m, &used, uid, pool, latency_ms) {
            Ok(a) => b.audit = Some(Arc::new(Mutex::new(a))),
            Err(e) => {
                teardown(b);
                return Err(format!(
                    "the claim could not be recorded in the audit log {}: {e}; the devbox was removed\n  hint: `cordon audit verify {}`; the daemon's --audit names the log",
                    self.o.audit.display(),
                    self.o.audit.display()
                ));
            }
        }
        let reply = Reply::Claimed { id: b.id.clone(), snapshot: hash, workspace: b.ws.clone(), latency_ms, from_pool };
        let id = b.id.clone();
        let watch = b.ctl.try_clone();
        self.state.lock().map_err(|_| "state poisoned")?.claimed.insert(id.clone(), b);
        match watch {
            Ok(ctl) => {
                let (d, i) = (self.clone(), id.clone());
                if let Err(e) = spawn("watch", move || d.watch(&i, ctl)) {
                    log(&format!("devbox {id}: not watched: {e}"));
                }
            }
            Err(e) => log(&format!("devbox {id}: not watched: {e}")),
        }
        Ok(reply)
    }

    /// Waits for a claimed devbox's holder to report its end (or to end): a devbox that dies by
    /// itself (not rm, not the daemon's stop: those take it out of `claimed` first) is removed and
    /// its session in the audit log ended.
    fn watch(&self, id: &str, ctl: OwnedFd) {
        let code = loop {
            match recv::<FromHolder>(ctl.as_fd()) {
                Ok(Some((FromHolder::Ended { code }, _))) => break Some(code),
                Ok(Some(_)) => continue,
                Err(e) if timed_out(&e) || e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(None) | Err(_) => break None,
            }
        };
        let b = self.state.lock().ok().and_then(|mut s| s.claimed.remove(id));
        if let Some(b) = b {
            let why = match code {
                Some(c) => format!("ended by itself (its exec server's status {c})"),
                None => "ended by itself (its holder is gone)".to_string(),
            };
            log(&format!("devbox {id} {why}: removed"));
            end_record(&b, &why);
            teardown(b);
        }
    }

    /// Runs a command in a claimed devbox: recorded (argv, cwd, uid) before it is handed to the
    /// exec server, and its status recorded when it ends; then answered.
    fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        fds: Vec<OwnedFd>,
        uid: u32,
    ) -> Result<Reply, String> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        if fds.len() != 3 {
            return Err(format!("exec carries stdin, stdout and stderr ({} descriptors came)", fds.len()));
        }
        let (sock, ws, audit) = {
            let s = self.state.lock().map_err(|_| "state poisoned")?;
            let b =
                s.claimed.get(id).ok_or_else(|| format!("no claimed devbox `{id}` (`cordon devbox ls` lists them)"))?;
            if uid != 0 && b.owner != Some(uid) {
                return Err(format!("devbox {id} was claimed by another user"));
            }
            (b.exec.clone(), b.ws.clone(), b.audit.clone())
        };
        let audit = audit.ok_or_else(|| format!("devbox {id} has no session in the audit log"))?;
        // A command that runs is in the log first: if the record cannot be written, nothing runs.
        let n = {
            let mut a = audit.lock().map_err(|_| "audit poisoned")?;
            a.execs += 1;
            let n = a.execs;
            let body = serde_json::json!({"n": n, "argv": argv, "cwd": ws, "uid": uid});
            a.store
                .append(id, &[("exec".into(), cordon_session::recording::now_ms(), body)])
                .map_err(|e| format!("the command was not run: it could not be recorded in the audit log: {e}"))?;
            n
        };
        let (mine, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| format!("socketpair: {e}"))?;
        let order = wire::ExecOrder { argv, env, cwd: ws };
        let raw = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd(), theirs.as_raw_fd()];
        let t = Instant::now();
        let answer = send(sock.as_fd(), &order, &raw)
            .map_err(|e| format!("devbox {id} does not take commands: {e}"))
            .and_then(|_| {
                drop(theirs);
                drop(fds);
                match recv::<Reply>(mine.as_fd()) {
                    Ok(Some((r @ Reply::Exited { .. }, _))) => Ok(r),
                    Ok(Some((other, _))) => Err(format!("unexpected answer from devbox {id}: {other:?}")),
                    Ok(None) => Err(format!("devbox {id} ended while the command ran")),
                    Err(e) => Err(format!("devbox {id}: {e}")),
                }
            });
        let body = match &answer {
            Ok(Reply::Exited { code, signal }) => {
                serde_json::json!({"n": n, "exit_code": code, "signal": signal, "duration_ms": t.elapsed().as_millis() as u64})
            }
            Ok(_) | Err(_) => {
                serde_json::json!({"n": n, "error": answer.as_ref().err(), "duration_ms": t.elapsed().as_millis() as u64})
            }
        };
        if let Ok(mut a) = audit.lock() {
            if let Err(e) = a.store.append(id, &[("exec.end".into(), cordon_session::recording::now_ms(), body)]) {
                log(&format!("devbox {id}: the end of command {n} could not be recorded: {e}"));
            }
        }
        answer
    }

    /// Opens the claim's session in the audit log: the engine's start record, with the devbox's
    /// claim (claimant, snapshot, id, pool, latency to ready) beside it.
    fn start_record(
        &self,
        b: &mut Devbox,
        m: &crate::snapshot::Manifest,
        claim_policy: &ClaimPolicy,
        uid: u32,
        pool: PoolAtClaim,
        latency_ms: f64,
    ) -> Result<Audit, String> {
        use sha2::Digest;
        let (loaded, policy) = claim_policy.load(&b.ws)?;
        let text = loaded.full_text();
        let sha256 = cordon_audit::hex(&sha2::Sha256::digest(text.as_bytes()));
        // The host does not change under the daemon: detected once.
        static HOST: std::sync::OnceLock<cordon_schema::bodies::HostRef> = std::sync::OnceLock::new();
        let host = HOST.get_or_init(|| {
            let caps = cordon_sandbox::KernelCaps::detect();
            cordon_schema::bodies::HostRef {
                kernel: caps.kernel.clone(),
                arch: caps.arch.clone(),
                landlock_abi: caps.landlock_abi,
            }
        });
        let start = cordon_schema::bodies::Start {
            command: vec!["cordon".into(), "devbox".into(), "claim".into(), m.hash.clone()],
            workspace: b.ws.to_string_lossy().into_owned(),
            uid,
            cordon: env!("CARGO_PKG_VERSION").into(),
            policy: cordon_schema::bodies::PolicyRef {
                name: policy.name.clone(),
                sources: policy.sources.clone(),
                sha256,
                text,
                identity: None,
            },
            host: host.clone(),
            guarantees: vec![],
            allow_degraded: false,
        };
        let mut body = serde_json::to_value(&start).map_err(|e| e.to_string())?;
        body["devbox"] = serde_json::json!({
            "id": b.id, "snapshot": m.hash, "claimant_uid": uid, "from_pool": pool.from_pool,
            "latency_ms": (latency_ms * 100.0).round() / 100.0, "policy": claim_policy.name(),
            "pool_size": pool.size, "pool_ready": pool.ready, "secrets": b.secrets,
        });
        let mut store = match b.log_ready.take() {
            Some(s) => s,
            None => cordon_audit::Store::open(&self.o.audit).map_err(|e| e.to_string())?,
        };
        let (seq, hash) = store
            .append(&b.id, &[("start".into(), cordon_session::recording::now_ms(), body)])
            .map_err(|e| e.to_string())?;
        store.set_anchor(seq, hash);
        Ok(Audit { store, execs: 0, since: Instant::now() })
    }

    /// Root sees every devbox; anyone else its own claims, and the pools' sizes.
    fn ls(&self, uid: u32) -> Reply {
        let Ok(s) = self.state.lock() else { return Reply::Error { error: "state poisoned".into() } };
        let row = |b: &Devbox, state: &str| Listed {
            id: b.id.clone(),
            snapshot: b.snapshot.clone(),
            state: state.into(),
            pid: b.init_pid,
            cgroup: b.cgroup.clone(),
            owner: b.owner,
        };
        let mut items: Vec<Listed> =
            if uid == 0 { s.idle.values().flatten().map(|b| row(b, "pooled")).collect() } else { vec![] };
        items.extend(s.claimed.values().filter(|b| uid == 0 || b.owner == Some(uid)).map(|b| row(b, "claimed")));
        items.sort_by(|a, b| (&a.state, &a.id).cmp(&(&b.state, &b.id)));
        let mut pools: Vec<wire::PoolSize> = s
            .targets
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(h, n)| wire::PoolSize { snapshot: h.clone(), size: *n, ready: s.idle.get(h).map_or(0, Vec::len) })
            .collect();
        pools.sort_by(|a, b| a.snapshot.cmp(&b.snapshot));
        Reply::Devboxes { items, pools }
    }

    fn rm(&self, id: &str, uid: u32) -> Result<Reply, String> {
        let b = {
            let mut s = self.state.lock().map_err(|_| "state poisoned")?;
            match s.claimed.get(id) {
                Some(b) if uid != 0 && b.owner != Some(uid) => {
                    return Err(format!("devbox {id} was claimed by another user"))
                }
                Some(_) => s.claimed.remove(id),
                None => None,
            }
        };
        let b = b.ok_or_else(|| format!("no claimed devbox `{id}` (`cordon devbox ls` lists them)"))?;
        end_record(&b, &format!("removed by uid {uid} (cordon devbox rm)"));
        teardown(b);
        Ok(Reply::Removed { id: id.to_string() })
    }

    /// Every devbox removed (SIGTERM, SIGINT).
    fn stop(&self) {
        let all: Vec<Devbox> = match self.state.lock() {
            Ok(mut s) => {
                s.stopping = true;
                let mut v: Vec<Devbox> = s.idle.drain().flat_map(|(_, v)| v).collect();
                v.extend(s.claimed.drain().map(|(_, b)| b));
                v
            }
            Err(_) => return,
        };
        for b in all {
            end_record(&b, "the daemon stopped");
            teardown(b);
        }
    }
}

/// A claim's policy as its request gives it. A file would be read by this daemon, as root, on the
/// claimant's behalf (a file of root's named by a user; a file changed between the check and the
/// use): the client reads it and sends the text, bounded, whose `extends` may name built-in
/// policies only (nothing else is read for it). A bare file name is root's alone (older clients).
fn claim_policy(policy: Option<String>, text: Option<String>, uid: u32) -> Result<Option<ClaimPolicy>, String> {
    let Some(name) = policy else { return Ok(None) };
    let Some(text) = text else {
        if uid != 0 && !name.starts_with("builtin:") {
            return Err(format!(
                "a claim's policy from uid {uid} comes as text or built in (builtin:NAME), not as the file {name}\n  hint: `cordon devbox claim SNAPSHOT --policy FILE` sends the file's text"
            ));
        }
        return Ok(Some(ClaimPolicy::Spec(name)));
    };
    // The name is the client's: recorded as is it could pass a text off as a built-in policy. The
    // daemon names it: who sent it and the file's base name (review 9).
    let base =
        name.rsplit('/').next().unwrap_or(&name).chars().filter(|c| !c.is_control()).take(64).collect::<String>();
    let name = format!("claim-text:uid{uid}:{base}");
    if text.len() > wire::MAX_POLICY_TEXT {
        return Err(format!("the claim's policy {name} is larger than {} KiB", wire::MAX_POLICY_TEXT / 1024));
    }
    let v: toml::Table =
        toml::from_str(&text).map_err(|e| format!("the claim's policy {name} does not parse: {}", e.message()))?;
    let ext = v.get("extends").and_then(|x| x.as_array()).cloned().unwrap_or_default();
    if let Some(bad) = ext.iter().find(|x| !x.as_str().is_some_and(|s| s.starts_with("builtin:"))) {
        return Err(format!(
            "the claim's policy {name} extends {bad}: a claim's policy may extend only built-in policies (builtin:NAME), the daemon reads no file for it\n  hint: put that file's rules in this one"
        ));
    }
    Ok(Some(ClaimPolicy::Text { name, text }))
}

/// The environment a devbox's commands start with: PATH, then the snapshot's `env`.
fn devbox_env(m: &crate::snapshot::Manifest) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())];
    env.extend(m.devbox.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

enum Probe {
    TimedOut,
    Failed(String),
}

impl From<String> for Probe {
    fn from(s: String) -> Probe {
        Probe::Failed(s)
    }
}

/// Runs `argv` in the claimed devbox `b` (stdio: /dev/null) and returns its exit status, waiting
/// at most `limit` for it.
fn probe_in(b: &Devbox, argv: &[String], env: &[(String, String)], limit: Duration) -> Result<i32, Probe> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| e.to_string())?;
    let (mine, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| format!("socketpair: {e}"))?;
    let order = wire::ExecOrder { argv: argv.to_vec(), env: env.to_vec(), cwd: b.ws.clone() };
    let n = null.as_raw_fd();
    set_timeouts(&mine, limit).map_err(|e| format!("the probe's channel: {e}"))?;
    send(b.exec.as_fd(), &order, &[n, n, n, theirs.as_raw_fd()]).map_err(|e| e.to_string())?;
    drop(theirs);
    match recv::<Reply>(mine.as_fd()) {
        Ok(Some((Reply::Exited { code, .. }, _))) => Ok(code),
        Ok(Some((other, _))) => Err(format!("unexpected answer {other:?}").into()),
        Ok(None) => Err("the devbox's exec server ended".to_string().into()),
        Err(e) if timed_out(&e) => Err(Probe::TimedOut),
        Err(e) => Err(e.to_string().into()),
    }
}

/// Ends a claimed devbox's session in the audit log (the engine's end record, then the seal).
fn end_record(b: &Devbox, why: &str) {
    let Some(audit) = &b.audit else { return };
    let Ok(mut a) = audit.lock() else { return };
    let end = cordon_schema::bodies::End {
        ending: cordon_schema::outcome::Ending::Exited { code: 0 },
        exit_code: 0,
        duration_ms: a.since.elapsed().as_millis() as u64,
        peaks: Default::default(),
        denials_total: 0,
        notes: vec![format!("devbox {}: {why}; {} command(s) ran", b.id, a.execs)],
    };
    let now = cordon_session::recording::now_ms();
    let body = serde_json::to_value(&end).unwrap_or_default();
    if let Err(e) = a.store.finish(&b.id, &[("end".into(), now, body)], now) {
        log(&format!("devbox {}: its end could not be recorded: {e}", b.id));
    }
}

/// The end of a holder's log, for an error.
fn holder_log(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("holder.log")).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.into_iter().rev().collect::<Vec<_>>().join(" / "))
    }
}

/// Ends a devbox and removes everything of it: its holder (a pooled one's channel closed, a claimed
/// one's signalled: the signal goes on to its exec server, and the holder's environment kills its
/// cgroup as it ends), its cgroup if any is left, its directory (the upper layer).
fn teardown(b: Devbox) {
    let Devbox { ctl, dir, cgroup, mut child, running, .. } = b;
    if running {
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    }
    // Closing the channel is what ends a pooled holder.
    drop(ctl);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() > deadline => {
                log(&format!("holder {} did not end in 5 s: killed", child.id()));
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    if let Some(cg) = cgroup.filter(|c| c.exists()) {
        // A holder that was killed could not remove it: kill what is left, then remove it.
        let _ = std::fs::write(cg.join("cgroup.kill"), "1");
        for _ in 0..500 {
            if std::fs::remove_dir(&cg).is_ok() || !cg.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
