//! cordon-audit owns the evidence: every session's record (start, policy, guarantees, denials,
//! egress decisions, limits, end) appended to a SQLite file (WAL) as a hash chain over canonical
//! record bytes, each session sealed with an Ed25519 signature over its last hash, and a signed head
//! file outside the database so that truncation is detected too. Records the database would not
//! take are spooled and imported later, never dropped. It knows nothing of sandboxes.

mod birth;
mod chain;
pub mod files;
mod head;
mod key;
pub mod served;
pub mod ship;
pub mod spool;
mod store;
mod verify;

pub use chain::{canonical, hex, record_hash, unhex, Record};
pub use head::Head;
pub use key::{load_or_create, public_key};
pub use store::{default_path, standard_path, AuditError, Durability, SessionRow, Store};
pub use verify::{verify, verify_with, Problem, VerifyReport};
