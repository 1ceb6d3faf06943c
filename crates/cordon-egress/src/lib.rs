//! cordon-egress owns the session's only way out: a proxy that speaks HTTP CONNECT, plain HTTP
//! forwarding and SOCKS5 on listeners the sandbox's init opened inside the session's network
//! namespace, and port forwards for allowlisted host-loopback services. It resolves names itself,
//! matches the name and port against the allowlist, refuses private, link-local and metadata addresses
//! unless an IP or CIDR entry names them, pins the address it resolved, and records every decision.

pub mod decide;
pub mod head;
pub mod record;
pub mod server;
pub mod socks;
mod sys;

pub use decide::{Policy, Verdict};
pub use record::Decision;
pub use server::{start, Attribution, Handle, Role};
