//! `CORDON_TIMING=1` marks inside the engine's own steps (prepare), printed to stderr as
//! `cordon-timing: prep <us> us  <what>`: microseconds since the first mark of the process. They
//! are how docs/BENCHMARKS.md's startup table is taken apart; nothing else reads them.

use std::sync::OnceLock;
use std::time::Instant;

fn on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CORDON_TIMING").is_some())
}

/// Prints a mark when `CORDON_TIMING` is set; costs one load otherwise.
pub fn mark(what: &str) {
    static T0: OnceLock<Instant> = OnceLock::new();
    if on() {
        let t0 = T0.get_or_init(Instant::now);
        eprintln!("cordon-timing: prep {:>8} us  {what}", t0.elapsed().as_micros());
    }
}
