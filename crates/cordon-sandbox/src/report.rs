//! What the supervisor saw during a session: the types are cordon's shared vocabulary
//! (cordon-schema); the supervisor fills them in.

pub use cordon_schema::outcome::{Denials, Ending, Outcome, Peaks};
pub use cordon_schema::{Denial, Layer};
