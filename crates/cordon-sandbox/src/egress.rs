//! The session's way out, as the sandbox sees it: the init opens the proxy's and forwarders'
//! listening sockets inside the session's network namespace and hands them back; whoever started
//! the session serves them (the engine starts cordon-egress on them). The sandbox knows nothing of
//! the proxy itself: it only hands over sockets and later collects the decisions.

use crate::plan::net::ListenerRole;
use cordon_schema::egress::Decision;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Who owns a client socket inside the session (pid, executable), from its address.
pub type Attribution = Arc<dyn Fn(SocketAddr) -> (u32, String) + Send + Sync>;

/// The listeners the init opened, each with its role, and a way to name a client.
pub struct Listeners {
    pub listeners: Vec<(TcpListener, ListenerRole)>,
    pub attribution: Attribution,
}

/// A running server of the session's listeners.
pub trait Server {
    /// Stops serving (open tunnels are closed) and returns every decision made.
    fn finish(self: Box<Self>) -> Vec<Decision>;
}

/// Starts serving; an error stops the session before its command runs.
pub type EgressHook = Box<dyn FnOnce(Listeners) -> Result<Box<dyn Server>, String>>;
