//! One loaded copy of the sensor's BPF programs, shared by every session a process watches.
//!
//! The programs find a task's session by its cgroup: `filter` holds the depths below the v2 root
//! at which watched cgroups sit and a bitmap of their ids, `sessions` maps a cgroup id to that
//! session's settings (its network mode, the syscalls its seccomp filter may refuse). A process
//! outside every session stops at the bitmap: every syscall on the host passes through these
//! programs while they are loaded. Each session has a ring buffer of its own (`rings`, a hash of maps keyed by the
//! same id) and per-CPU counters of records offered and dropped (`counts`): one session's burst can
//! neither fill another's buffer nor blur its loss count, and per session offered = read + lost.
//! The cgroup-bpf network programs are loaded once and attached to each session's cgroup that has
//! network rules, through links the session owns.
//!
//! Changing a hash of maps makes the kernel wait for an RCU grace period (about 10 ms here), once
//! when a session's ring is put in and once when it is taken out. The first session of a hub
//! loaded for it ([`Hub::shared`] through `Sensor::start`) uses instead the object's own ring,
//! sized before load, so a process that watches one session pays no such wait; that ring serves
//! no later session.
//!
//! Adding a session: its depth and bit in `filter`, its ring, counters and allow-list, then its
//! `sessions` entry (from
//! which point its records flow), then its network links. Removing it ([`Registration::stop`]):
//! the links go, then the `sessions` entry, so no record starts after it; its reader drains the
//! ring until offered = read + lost; then the rest is deleted when the registration drops.
//!
//! A process normally holds one hub ([`Hub::shared`]): `Sensor::start` adds its session to the
//! hub that is loaded, or loads one; the hub is unloaded when its last session ends.

use crate::cgroup::Target;
use crate::sensor::{Config, NetRules, Sensor, SensorError};
use crate::sys::CordonSkelBuilder;
use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, MapType, ProgramHandle};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// As in bpf/cordon.bpf.c.
const MAX_LEVELS: usize = 4;
const FILTER_BITS: usize = 4096;
const NR_SYSCALLS_MAX: usize = 512;
const MAX_SESSIONS: usize = 1024;
/// struct session: cgid, net_mode, ring, watch[8].
const SESSION_SIZE: usize = 8 + 4 + 4 + 64;
/// struct counts: offered, dropped.
const COUNTS_SIZE: usize = 16;

struct Maps {
    sessions: MapHandle,
    filter: MapHandle,
    counts: MapHandle,
    rings: MapHandle,
    kill_tgids: MapHandle,
    net_allow: MapHandle,
}

/// The loaded programs and their maps. Cheap to share (`Arc`); every method takes `&self`, so
/// sessions may be added and removed from any thread.
pub struct Hub {
    // Dropped first: detaching the tracepoint programs stops all reporting before the maps go.
    _links: Vec<Link>,
    net_progs: Vec<(&'static str, ProgramHandle, libbpf_sys::bpf_attach_type)>,
    maps: Maps,
    state: Mutex<State>,
    /// The object's own ring (`events`), until the session it was sized for takes it.
    own_ring: Mutex<Option<MapHandle>>,
    cpus: usize,
    /// How long loading and attaching took.
    pub loaded_in: Duration,
    /// The kernel's ids of every program loaded, for [`Hub::program_time`].
    prog_ids: Vec<u32>,
}

struct State {
    /// Cgroup ids of the sessions registered now.
    watched: BTreeSet<u64>,
    /// The depths in the `filter` map (depth + 1), in its order.
    levels: Vec<u32>,
    /// Per bit of the filter's bitmap: how many watched sessions' ids set it.
    bits: Vec<u32>,
    /// Signals asked for in kill_tgids by the sessions registered now.
    kills: u32,
    /// The syscalls the sensor records (from `kinds`, fixed at load).
    recorded: BTreeSet<u32>,
    /// Per syscall number: how many sessions registered now watch it (their seccomp filter may
    /// refuse it).
    watching: Vec<u32>,
}

impl Default for State {
    fn default() -> State {
        State {
            watched: BTreeSet::new(),
            levels: vec![],
            bits: vec![0; FILTER_BITS],
            kills: 0,
            recorded: BTreeSet::new(),
            watching: vec![0; NR_SYSCALLS_MAX],
        }
    }
}

impl State {
    /// struct filter in bpf/cordon.bpf.c.
    fn filter(&self) -> Vec<u8> {
        let care_at = 4 * MAX_LEVELS + FILTER_BITS / 8 + 8;
        let mut v = vec![0u8; care_at + NR_SYSCALLS_MAX / 8];
        for (i, l) in self.levels.iter().enumerate().take(MAX_LEVELS) {
            v[4 * i..4 * i + 4].copy_from_slice(&l.to_ne_bytes());
        }
        for (w, chunk) in self.bits.chunks(64).enumerate() {
            let word = chunk.iter().enumerate().filter(|(_, n)| **n > 0).fold(0u64, |a, (i, _)| a | 1 << i);
            let at = 4 * MAX_LEVELS + 8 * w;
            v[at..at + 8].copy_from_slice(&word.to_ne_bytes());
        }
        let at = 4 * MAX_LEVELS + FILTER_BITS / 8;
        v[at..at + 4].copy_from_slice(&self.kills.to_ne_bytes());
        let mut care = [0u64; NR_SYSCALLS_MAX / 64];
        let watching = self.watching.iter().enumerate().filter(|(_, n)| **n > 0).map(|(nr, _)| nr as u32);
        for nr in self.recorded.iter().copied().chain(watching).filter(|nr| (*nr as usize) < NR_SYSCALLS_MAX) {
            care[nr as usize / 64] |= 1 << (nr % 64);
        }
        for (w, word) in care.iter().enumerate() {
            v[care_at + 8 * w..care_at + 8 * w + 8].copy_from_slice(&word.to_ne_bytes());
        }
        v
    }

    /// Counts a session's watched syscalls in (`add`) or out.
    fn watch(&mut self, nrs: &[u32], add: bool) {
        for nr in nrs {
            if let Some(n) = self.watching.get_mut(*nr as usize) {
                *n = if add { *n + 1 } else { n.saturating_sub(1) };
            }
        }
    }
}

fn filter_bit(cgid: u64) -> usize {
    (cgid % FILTER_BITS as u64) as usize
}

impl Hub {
    /// Loads and attaches the programs; no session is watched yet.
    pub fn load() -> Result<Arc<Hub>, SensorError> {
        Hub::load_inner(None)
    }

    /// With `first_ring`: the object's own ring has that size, for the first session that asks
    /// for that size.
    fn load_inner(first_ring: Option<u32>) -> Result<Arc<Hub>, SensorError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(SensorError::NotRoot);
        }
        let started = Instant::now();
        let load = |what: &str, e: libbpf_rs::Error| SensorError::Load(format!("{what}: {e:#}"));
        let mut obj = std::mem::MaybeUninit::uninit();
        let mut open = CordonSkelBuilder::default().open(&mut obj).map_err(|e| load("opening the object", e))?;
        let own = ring_size(first_ring.unwrap_or(0));
        open.maps.events.set_max_entries(own).map_err(|e| load(&format!("a ring buffer of {own} bytes"), e))?;
        let skel = open.load().map_err(|e| load("the verifier", e))?;
        // Which syscalls to decode, per this architecture's numbers (the same for every session).
        let mut state = State::default();
        for (nr, t) in crate::kinds::table(crate::kinds::native_arch()) {
            let flags = if t.quiet_ok { crate::kinds::KF_QUIET_OK } else { 0 };
            let v = [t.kind, t.p1, t.p2, flags];
            if (nr as usize) < NR_SYSCALLS_MAX && v != [0; 4] {
                skel.maps.kinds.update(&nr.to_ne_bytes(), &v, MapFlags::ANY).map_err(|e| load("kinds map", e))?;
                state.recorded.insert(nr);
            }
        }
        let m = &skel.maps;
        let dup = |map: &libbpf_rs::MapMut, what: &str| MapHandle::try_from(map).map_err(|e| load(what, e));
        let own_ring = match first_ring {
            Some(_) => Some(dup(&m.events, "events ring")?),
            None => None,
        };
        let maps = Maps {
            sessions: dup(&m.sessions, "sessions map")?,
            filter: dup(&m.filter, "filter map")?,
            counts: dup(&m.counts, "counts map")?,
            rings: dup(&m.rings, "rings map")?,
            kill_tgids: dup(&m.kill_tgids, "kill_tgids map")?,
            net_allow: dup(&m.net_allow, "net_allow map")?,
        };
        let p = &skel.progs;
        let net = [
            ("cgroup/connect4", &p.connect4, libbpf_sys::BPF_CGROUP_INET4_CONNECT),
            ("cgroup/connect6", &p.connect6, libbpf_sys::BPF_CGROUP_INET6_CONNECT),
            ("cgroup/sendmsg4", &p.sendmsg4, libbpf_sys::BPF_CGROUP_UDP4_SENDMSG),
            ("cgroup/sendmsg6", &p.sendmsg6, libbpf_sys::BPF_CGROUP_UDP6_SENDMSG),
            ("cgroup/sock_create", &p.sock_create, libbpf_sys::BPF_CGROUP_INET_SOCK_CREATE),
        ];
        let mut net_progs = vec![];
        for (name, prog, attach) in net {
            net_progs.push((name, ProgramHandle::try_from(prog).map_err(|e| load(name, e))?, attach));
        }
        let tps: [(&'static str, &libbpf_rs::ProgramMut); 5] = [
            ("tp_btf/sys_enter", &p.sys_enter),
            ("tp_btf/sys_exit", &p.sys_exit),
            ("tp_btf/sched_process_exec", &p.on_exec),
            ("tp_btf/sched_process_fork", &p.on_fork),
            ("tp_btf/sched_process_exit", &p.on_exit),
        ];
        let mut prog_ids = vec![];
        for prog in tps.iter().map(|t| t.1).chain(net.iter().map(|n| n.1)) {
            prog_ids.extend(libbpf_rs::Program::id_from_fd(prog.as_fd()));
        }
        let mut links = vec![];
        for (name, prog) in tps {
            links.push(prog.attach().map_err(|e| SensorError::Attach { prog: name, err: format!("{e:#}") })?);
        }
        // The links, program and map descriptors above keep everything loaded; libbpf's view of
        // the object is not needed any more.
        drop(skel);
        Ok(Arc::new(Hub {
            _links: links,
            net_progs,
            maps,
            state: Mutex::new(state),
            own_ring: Mutex::new(own_ring),
            cpus: libbpf_rs::num_possible_cpus().unwrap_or(1).max(1),
            loaded_in: started.elapsed(),
            prog_ids,
        }))
    }

    /// This process's hub: the one loaded now if a session still holds it, else a new one.
    pub fn shared() -> Result<Arc<Hub>, SensorError> {
        Hub::shared_or_loaded(0).map(|(h, _)| h)
    }

    /// [`Hub::shared`], and whether it had to be loaded (then with its own ring sized for a first
    /// session whose ring is `ring_bytes`).
    pub(crate) fn shared_or_loaded(ring_bytes: u32) -> Result<(Arc<Hub>, bool), SensorError> {
        static SHARED: Mutex<Weak<Hub>> = Mutex::new(Weak::new());
        let mut g = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = g.upgrade() {
            return Ok((h, false));
        }
        let h = Hub::load_inner(Some(ring_bytes))?;
        *g = Arc::downgrade(&h);
        Ok((h, true))
    }

    /// Starts watching the session in `cfg.cgroup`; its events go to `cfg.sink` from a reader
    /// thread of its own. [`Sensor::finish`] (or dropping it) removes the session.
    /// How often the programs ran and the time they took, summed over all of them, for every
    /// process they ran in (those outside any session return at once, but pay for the call). None
    /// unless the kernel keeps the figures (`sysctl kernel.bpf_stats_enabled=1`, which itself adds
    /// two clock reads to every run).
    pub fn program_time(&self) -> Option<(u64, Duration)> {
        let (runs, ns) = libbpf_rs::query::ProgInfoIter::default()
            .filter(|p| self.prog_ids.contains(&p.id))
            .fold((0u64, 0u64), |(r, t), p| (r + p.run_cnt, t + p.run_time_ns));
        (ns > 0).then(|| (runs, Duration::from_nanos(ns)))
    }

    pub fn add_session(self: &Arc<Self>, cfg: Config) -> Result<Sensor, SensorError> {
        Sensor::attach(self.clone(), cfg)
    }

    /// How many sessions are watched now.
    pub fn sessions(&self) -> usize {
        self.lock().watched.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts one session in the maps (see the module's comment for the order).
    pub(crate) fn register(
        self: &Arc<Self>,
        target: &Target,
        net: Option<&NetRules>,
        watch: &[u32],
        ring_bytes: u32,
    ) -> Result<Registration, SensorError> {
        let setup = |what: String| move |e: libbpf_rs::Error| SensorError::Setup(format!("{what}: {e:#}"));
        let size = ring_size(ring_bytes);
        let own = {
            let mut o = self.own_ring.lock().unwrap_or_else(|e| e.into_inner());
            if o.as_ref().is_some_and(|r| r.max_entries() == size) {
                o.take()
            } else {
                None
            }
        };
        let (ring, own) = match own {
            Some(r) => (r, true),
            None => {
                let opts = libbpf_sys::bpf_map_create_opts {
                    sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as libbpf_sys::size_t,
                    ..Default::default()
                };
                let r = MapHandle::create(MapType::RingBuf, Some("cordon_ring"), 0, 0, size, &opts)
                    .map_err(setup(format!("a ring buffer of {size} bytes")))?;
                (r, false)
            }
        };
        {
            let mut st = self.lock();
            if st.watched.contains(&target.id) {
                return Err(SensorError::Setup(format!(
                    "the cgroup {} is already watched by this process's sensor",
                    target.dir.display()
                )));
            }
            if st.watched.len() >= MAX_SESSIONS {
                return Err(SensorError::Setup(format!("this process already watches {MAX_SESSIONS} sessions")));
            }
            let level = target.level + 1;
            let new_level = !st.levels.contains(&level);
            if new_level && st.levels.len() >= MAX_LEVELS {
                return Err(SensorError::Setup(format!(
                    "the cgroup {} is {} levels deep; the sessions watched by this process already sit at {MAX_LEVELS} other depths ({:?}), the most the sensor follows",
                    target.dir.display(),
                    target.level,
                    st.levels.iter().map(|l| l - 1).collect::<Vec<_>>()
                )));
            }
            if new_level {
                st.levels.push(level);
            }
            st.bits[filter_bit(target.id)] += 1;
            st.watch(watch, true);
            if let Err(e) = self.maps.filter.update(&0u32.to_ne_bytes(), &st.filter(), MapFlags::ANY) {
                // A depth, once in the map, stays; one that could not be written is not there.
                st.bits[filter_bit(target.id)] -= 1;
                st.watch(watch, false);
                if new_level {
                    st.levels.pop();
                }
                return Err(setup("filter map".into())(e));
            }
            st.watched.insert(target.id);
        }
        // From here on, dropping `reg` undoes whatever was done.
        let mut reg = Registration {
            hub: self.clone(),
            cgid: target.id,
            ring,
            own_ring: own,
            watch: watch.to_vec(),
            links: Mutex::default(),
            net_keys: vec![],
            kills: Mutex::default(),
        };
        let key = target.id.to_ne_bytes();
        let zeros = vec![vec![0u8; COUNTS_SIZE]; self.cpus];
        self.maps.counts.update_percpu(&key, &zeros, MapFlags::ANY).map_err(setup("counts map".into()))?;
        if !own {
            let fd = reg.ring.as_fd().as_raw_fd() as u32;
            self.maps.rings.update(&key, &fd.to_ne_bytes(), MapFlags::ANY).map_err(setup("rings map".into()))?;
        }
        for (ip, port) in net.map(|n| n.allow.as_slice()).unwrap_or_default() {
            let k = net_key(target.id, ip, *port);
            self.maps.net_allow.update(&k, &[1], MapFlags::ANY).map_err(setup("net_allow map".into()))?;
            reg.net_keys.push(k);
        }
        let value = session_value(target.id, net, watch, own);
        self.maps.sessions.update(&key, &value, MapFlags::ANY).map_err(setup("sessions map".into()))?;
        if net.is_some() {
            let dir = std::fs::File::open(&target.dir)
                .map_err(|e| SensorError::Setup(format!("open {}: {e}", target.dir.display())))?;
            let mut links = reg.links.lock().unwrap_or_else(|e| e.into_inner());
            for (name, prog, attach) in &self.net_progs {
                let l = crate::sys::cgroup_link(prog.as_fd(), dir.as_fd(), *attach)
                    .map_err(|e| SensorError::Attach { prog: name, err: format!("{}: {e}", target.dir.display()) })?;
                links.push(l);
            }
        }
        Ok(reg)
    }
}

/// A ring buffer's size in bytes: a power of two, at least a page.
fn ring_size(bytes: u32) -> u32 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u32;
    bytes.max(page).checked_next_power_of_two().unwrap_or(1 << 31)
}

/// struct session in bpf/cordon.bpf.c.
fn session_value(cgid: u64, net: Option<&NetRules>, watch: &[u32], own_ring: bool) -> [u8; SESSION_SIZE] {
    let mut v = [0u8; SESSION_SIZE];
    v[..8].copy_from_slice(&cgid.to_ne_bytes());
    let mode = u32::from(net.is_some_and(|n| n.loopback_only));
    v[8..12].copy_from_slice(&mode.to_ne_bytes());
    v[12..16].copy_from_slice(&u32::from(!own_ring).to_ne_bytes());
    let mut bits = [0u64; 8];
    for nr in watch.iter().filter(|nr| **nr < 512) {
        bits[(*nr >> 6) as usize] |= 1 << (nr & 63);
    }
    for (i, b) in bits.iter().enumerate() {
        v[16 + 8 * i..24 + 8 * i].copy_from_slice(&b.to_ne_bytes());
    }
    v
}

/// struct net_key in bpf/cordon.bpf.c.
fn net_key(cgid: u64, ip: &IpAddr, port: Option<u16>) -> [u8; 32] {
    let mut k = [0u8; 32];
    let (fam, bytes): (u32, Vec<u8>) = match ip {
        IpAddr::V4(a) => (2, a.octets().to_vec()),
        IpAddr::V6(a) => (10, a.octets().to_vec()),
    };
    k[..8].copy_from_slice(&cgid.to_ne_bytes());
    k[8..12].copy_from_slice(&fam.to_ne_bytes());
    k[12..16].copy_from_slice(&u32::from(port.unwrap_or(0)).to_ne_bytes());
    k[16..16 + bytes.len()].copy_from_slice(&bytes);
    k
}

/// One session's place in the hub: its entries in the maps, its ring buffer and its network
/// links. Dropping it removes all of them.
pub(crate) struct Registration {
    hub: Arc<Hub>,
    pub(crate) cgid: u64,
    pub(crate) ring: MapHandle,
    /// `ring` is the object's own, not an entry of `rings`.
    own_ring: bool,
    /// The syscalls the session's seccomp filter may refuse, counted in the filter's `care` bits.
    watch: Vec<u32>,
    links: Mutex<Vec<OwnedFd>>,
    net_keys: Vec<[u8; 32]>,
    /// Processes a signal was asked for.
    kills: Mutex<Vec<u32>>,
}

impl Registration {
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Stops the session's reporting: its network programs are detached and the programs no longer
    /// count its processes as a session's. Records already offered stay in the ring.
    pub(crate) fn stop(&self) {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = self.hub.maps.sessions.delete(&self.cgid.to_ne_bytes());
    }

    /// Per CPU: records offered to the session's ring, and records dropped because it was full.
    pub(crate) fn counters(&self) -> (Vec<u64>, Vec<u64>) {
        let word = |b: &[u8], at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_ne_bytes);
        match self.hub.maps.counts.lookup_percpu(&self.cgid.to_ne_bytes(), MapFlags::ANY) {
            Ok(Some(v)) => v.iter().map(|b| (word(b, 0).unwrap_or(0), word(b, 8).unwrap_or(0))).unzip(),
            _ => (vec![0; self.hub.cpus], vec![0; self.hub.cpus]),
        }
    }

    /// Sends `sig` to process `pid` at its next system call, if it is in this session then.
    pub(crate) fn signal(&self, pid: u32, sig: u32) -> Result<(), SensorError> {
        let mut v = [0u8; 16];
        v[..4].copy_from_slice(&sig.to_ne_bytes());
        v[8..].copy_from_slice(&self.cgid.to_ne_bytes());
        self.hub
            .maps
            .kill_tgids
            .update(&pid.to_ne_bytes(), &v, MapFlags::ANY)
            .map_err(|e| SensorError::Setup(format!("kill_tgids map: {e:#}")))?;
        let mut kills = self.kills.lock().unwrap_or_else(|e| e.into_inner());
        if !kills.contains(&pid) {
            kills.push(pid);
            let mut st = self.hub.lock();
            st.kills += 1;
            self.hub
                .maps
                .filter
                .update(&0u32.to_ne_bytes(), &st.filter(), MapFlags::ANY)
                .map_err(|e| SensorError::Setup(format!("filter map: {e:#}")))?;
        }
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stop();
        let m = &self.hub.maps;
        let key = self.cgid.to_ne_bytes();
        // Taking the ring out waits for a grace period; when this session holds the hub's last
        // reference the whole object goes at once instead.
        if !self.own_ring && Arc::strong_count(&self.hub) > 1 {
            let _ = m.rings.delete(&key);
        }
        let _ = m.counts.delete(&key);
        for k in &self.net_keys {
            let _ = m.net_allow.delete(k);
        }
        // A pid asked for by this session, unless another session has asked for it since.
        for pid in self.kills.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let ours = m
                .kill_tgids
                .lookup(&pid.to_ne_bytes(), MapFlags::ANY)
                .ok()
                .flatten()
                .is_some_and(|v| v.get(8..16) == Some(&key[..]));
            if ours {
                let _ = m.kill_tgids.delete(&pid.to_ne_bytes());
            }
        }
        let mut st = self.hub.lock();
        st.watched.remove(&self.cgid);
        let bit = filter_bit(self.cgid);
        st.bits[bit] = st.bits[bit].saturating_sub(1);
        let kills = self.kills.lock().unwrap_or_else(|e| e.into_inner()).len() as u32;
        st.kills = st.kills.saturating_sub(kills);
        st.watch(&self.watch, false);
        let _ = m.filter.update(&0u32.to_ne_bytes(), &st.filter(), MapFlags::ANY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_value_sets_mode_and_watch_bits() {
        let n = NetRules { loopback_only: true, allow: vec![] };
        let v = session_value(7, Some(&n), &[0, 63, 64, 321, 511, 512], false);
        assert_eq!(u64::from_ne_bytes(v[..8].try_into().expect("width")), 7);
        assert_eq!(u32::from_ne_bytes(v[8..12].try_into().expect("width")), 1);
        assert_eq!(u32::from_ne_bytes(v[12..16].try_into().expect("width")), 1, "a ring of its own");
        let word = |i: usize| u64::from_ne_bytes(v[16 + 8 * i..24 + 8 * i].try_into().expect("width"));
        assert_eq!(word(0), 1 | 1 << 63);
        assert_eq!(word(1), 1);
        assert_eq!(word(5), 1 << (321 - 320));
        assert_eq!(word(7), 1 << 63, "511 is the last; 512 is out of the table");
        assert_eq!(session_value(7, None, &[], true)[8..], [0u8; SESSION_SIZE - 8]);
    }

    #[test]
    fn filter_layout() {
        let mut st = State { levels: vec![3, 5], kills: 2, ..Default::default() };
        st.bits[filter_bit(4096 + 70)] = 1;
        st.bits[filter_bit(4095)] = 2;
        let v = st.filter();
        let word = |at: usize| u64::from_ne_bytes(v[at..at + 8].try_into().expect("width"));
        assert_eq!(v.len(), 16 + 512 + 8 + 64);
        assert_eq!(u32::from_ne_bytes(v[528..532].try_into().expect("width")), 2);
        assert_eq!((v[0], v[4], v[8], v[12]), (3, 5, 0, 0));
        assert_eq!(word(16 + 8), 1 << 6, "bit 70: word 1, bit 6");
        assert_eq!(word(16 + 8 * 63), 1 << 63, "bit 4095: the last");
        assert_eq!(v.iter().skip(16).take(512).filter(|b| **b != 0).count(), 2);
    }

    #[test]
    fn care_bits_are_the_recorded_calls_and_those_some_session_watches() {
        let mut st = State { recorded: [2, 257].into_iter().collect(), ..Default::default() };
        st.watch(&[59, 257, 511, 512], true);
        st.watch(&[59], true);
        let care = |st: &State| -> Vec<u32> {
            let v = st.filter();
            (0..512u32)
                .filter(|nr| {
                    let at = 536 + 8 * (*nr as usize / 64);
                    u64::from_ne_bytes(v[at..at + 8].try_into().expect("width")) >> (nr % 64) & 1 == 1
                })
                .collect()
        };
        assert_eq!(care(&st), [2, 59, 257, 511]);
        st.watch(&[59, 257, 511, 512], false);
        assert_eq!(care(&st), [2, 59, 257], "59 is still watched by the other session; 257 is recorded");
        st.watch(&[59], false);
        assert_eq!(care(&st), [2, 257]);
    }

    #[test]
    fn the_limits_match_the_bpf_source() {
        let src = include_str!("../bpf/cordon.bpf.c");
        let define = |name: &str| -> Option<usize> {
            src.lines()
                .find_map(|l| l.strip_prefix("#define ")?.strip_prefix(name)?.split_whitespace().next()?.parse().ok())
        };
        for (name, ours) in [
            ("MAX_SESSIONS ", MAX_SESSIONS),
            ("MAX_LEVELS ", MAX_LEVELS),
            ("FILTER_BITS ", FILTER_BITS),
            ("NR_SYSCALLS_MAX ", NR_SYSCALLS_MAX),
        ] {
            assert_eq!(define(name), Some(ours), "#define {name}in bpf/cordon.bpf.c");
        }
    }

    #[test]
    fn net_key_layout() {
        let k = net_key(9, &"10.1.2.3".parse().expect("address"), Some(443));
        assert_eq!(u64::from_ne_bytes(k[..8].try_into().expect("width")), 9);
        assert_eq!(u32::from_ne_bytes(k[8..12].try_into().expect("width")), 2);
        assert_eq!(u32::from_ne_bytes(k[12..16].try_into().expect("width")), 443);
        assert_eq!(&k[16..20], &[10, 1, 2, 3]);
        assert_eq!(net_key(9, &"::1".parse().expect("address"), None)[8..12], 10u32.to_ne_bytes());
    }
}
