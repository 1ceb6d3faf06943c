//! Session ports reachable from the host (`--publish HOST_PORT:SESSION_PORT`). The session keeps
//! its own network namespace; a socket made there stays there whoever holds it, so the supervisor
//! cannot connect into it itself (entering another user's network namespace needs CAP_SYS_ADMIN in
//! ours, which an unprivileged supervisor lacks). Instead the supervisor listens on the host, and
//! for each client asks the session's init, over a socket pair made for this, to connect to the
//! session's loopback at the published port and hand the connected socket back; the supervisor
//! then copies bytes both ways. The init connects only to the published ports.

use cordon_policy::netspec::Publish;
use cordon_schema::outcome::Published;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const OK: u8 = b'c';
const FAILED: u8 = b'e';

/// The host side's listeners, bound before anything of the session starts (a port in use stops
/// the run before the command exists).
pub fn bind(publish: &[Publish]) -> Result<Vec<(TcpListener, Publish)>, crate::SandboxError> {
    publish
        .iter()
        .map(|p| {
            TcpListener::bind(p.host)
                .map(|l| (l, *p))
                .map_err(|source| crate::SandboxError::Publish { publish: p.to_string(), source })
        })
        .collect()
}

/// The init's side: answers connect requests until the supervisor closes its end. Runs on a
/// thread of the init once the command is forked.
pub fn serve_connects(sock: OwnedFd, ports: Vec<u16>) {
    let fd = sock.as_raw_fd();
    loop {
        let mut buf = [0u8; 2];
        match nix::sys::socket::recv(fd, &mut buf, MsgFlags::empty()) {
            Ok(2) => {}
            Ok(_) | Err(_) => return,
        }
        let port = u16::from_be_bytes(buf);
        let res = if ports.contains(&port) {
            connect_inside(port)
        } else {
            Err(std::io::Error::from_raw_os_error(libc::EPERM))
        };
        let sent = match res {
            Ok(s) => {
                let fds = [s.as_raw_fd()];
                sendmsg::<()>(fd, &[IoSlice::new(&[OK])], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
            }
            Err(e) => {
                let mut msg = vec![FAILED];
                msg.extend_from_slice(&e.raw_os_error().unwrap_or(libc::EIO).to_be_bytes());
                sendmsg::<()>(fd, &[IoSlice::new(&msg)], &[], MsgFlags::empty(), None)
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// How long the init waits for the session's server to take a connection (a server with a full
/// backlog must not stall every published port: the init answers one request at a time).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Connections relayed at once, over all ports (each holds two threads and a few fds).
const MAX_OPEN: usize = 256;

/// The session's loopback at `port`: IPv4 first, then IPv6 (a server bound to `::1` only).
fn connect_inside(port: u16) -> std::io::Result<TcpStream> {
    let v4 = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port);
    TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT)
        .or_else(|e4| TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| e4))
}

/// The supervisor's side: one accept loop per published port, one pair of copying threads per
/// connection.
pub struct Publisher {
    stop: Arc<AtomicBool>,
    ports: Vec<(Publish, Arc<Counts>, std::thread::JoinHandle<()>)>,
    open: Open,
    wake: Vec<SocketAddr>,
}

/// The connections being relayed, by number: cut at the session's end, forgotten when both
/// directions are done.
type Open = Arc<Mutex<std::collections::HashMap<u64, [TcpStream; 2]>>>;

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    refused: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Publisher {
    pub fn start(listeners: Vec<(TcpListener, Publish)>, init_sock: OwnedFd) -> Publisher {
        let init = Arc::new(Mutex::new(init_sock));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Open = Arc::default();
        let mut ports = vec![];
        let mut wake = vec![];
        for (l, p) in listeners {
            if let Ok(a) = l.local_addr() {
                wake.push(a);
            }
            let counts = Arc::new(Counts::default());
            let (init, stop, open, c) = (init.clone(), stop.clone(), open.clone(), counts.clone());
            let h = std::thread::spawn(move || accept_loop(l, p.session_port, &init, &stop, &open, &c));
            ports.push((p, counts, h));
        }
        Publisher { stop, ports, open, wake }
    }

    /// Stops listening, cuts the open connections, and says what each port carried.
    pub fn finish(self) -> Vec<Published> {
        self.stop.store(true, Ordering::SeqCst);
        // Each accept loop is woken by a connection of our own, which it drops on seeing `stop`.
        for a in &self.wake {
            let _ = TcpStream::connect_timeout(&wake_addr(*a), std::time::Duration::from_millis(200));
        }
        for pair in self.open.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default().into_values() {
            for s in pair {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.ports
            .into_iter()
            .map(|(p, c, h)| {
                let _ = h.join();
                Published {
                    host: p.host.to_string(),
                    session_port: p.session_port,
                    connections: c.connections.load(Ordering::SeqCst),
                    refused: c.refused.load(Ordering::SeqCst),
                    last_error: c.last_error.lock().ok().and_then(|e| e.clone()),
                }
            })
            .collect()
    }
}

/// Where to connect to reach a listener bound to `a` (an unspecified address is reached on loopback).
fn wake_addr(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v) if v.ip().is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), v.port()),
        SocketAddr::V6(v) if v.ip().is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), v.port()),
        other => other,
    }
}

fn accept_loop(l: TcpListener, port: u16, init: &Mutex<OwnedFd>, stop: &AtomicBool, open: &Open, c: &Counts) {
    for client in l.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else {
            // EMFILE and the like: back off instead of spinning on the same error.
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        };
        if open.lock().map(|o| o.len()).unwrap_or(0) >= MAX_OPEN {
            c.refused.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut last) = c.last_error.lock() {
                *last = Some(format!("{MAX_OPEN} connections already open"));
            }
            drop(client);
            continue;
        }
        match ask_init(init, port) {
            Ok(inside) => {
                let n = c.connections.fetch_add(1, Ordering::SeqCst);
                relay(client, inside, open, (u64::from(port) << 40) | n);
            }
            Err(e) => {
                c.refused.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut last) = c.last_error.lock() {
                    *last = Some(e.to_string());
                }
                let _ = client.shutdown(Shutdown::Both);
            }
        }
    }
}

/// One connect request to the init, answered with the connected socket or the errno.
fn ask_init(init: &Mutex<OwnedFd>, port: u16) -> std::io::Result<TcpStream> {
    let guard = init.lock().map_err(|_| std::io::Error::other("publish: lock poisoned"))?;
    let fd: RawFd = guard.as_raw_fd();
    nix::sys::socket::send(fd, &port.to_be_bytes(), MsgFlags::empty()).map_err(std::io::Error::from)?;
    let mut buf = [0u8; 5];
    let (bytes, fds) = crate::sys::recv_with_fds(fd, &mut buf)?;
    match (bytes, buf[0], fds.into_iter().next()) {
        (1, OK, Some(fd)) => Ok(TcpStream::from(fd)),
        (5, FAILED, _) => Err(std::io::Error::from_raw_os_error(i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]))),
        (0, _, _) => Err(std::io::Error::other("the session has ended")),
        _ => Err(std::io::Error::other("publish: an answer the init does not give")),
    }
}

/// Copies both ways until either side closes; the session's end cuts what is still open.
fn relay(client: TcpStream, inside: TcpStream, open: &Open, id: u64) {
    let clones = (client.try_clone(), inside.try_clone(), client.try_clone(), inside.try_clone());
    let (Ok(c2), Ok(i2), Ok(c3), Ok(i3)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    if let Ok(mut reg) = open.lock() {
        reg.insert(id, [c3, i3]);
    }
    let left = Arc::new(std::sync::atomic::AtomicU8::new(2));
    let pair = |mut from: TcpStream, mut to: TcpStream| {
        let (open, left) = (open.clone(), left.clone());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
            if left.fetch_sub(1, Ordering::SeqCst) == 1 {
                if let Ok(mut reg) = open.lock() {
                    reg.remove(&id);
                }
            }
        })
    };
    pair(client, inside);
    pair(i2, c2);
}
