//! `CORDON_TIMING=1` marks inside the engine's own steps, printed to stderr: microseconds since the
//! first mark of the process (or [`start`]). `prep` marks take prepare apart; `cli` marks are the
//! CLI's series (from cordon's start), which the startup benchmark reads, including the session's
//! end after the supervisor's report (the audit seal, the outputs closed, the teardown). They are
//! how docs/BENCHMARKS.md's startup table is taken apart; nothing else reads them.
//!
//! Each mark is one `write` to stderr: a line written in pieces could be split by another
//! thread's output, and the extra system calls would be counted in what is measured.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

fn on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CORDON_TIMING").is_some())
}

fn t0() -> &'static Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now)
}

/// Where the marks count from (cordon's start); the first mark sets it otherwise.
pub fn start() {
    t0();
}

/// True when marks are printed.
pub fn enabled() -> bool {
    on()
}

/// A whole `cordon-timing:` line (`text` without the prefix and newline), in one write.
pub fn line(text: &str) {
    let whole = format!("cordon-timing: {text}\n");
    let _ = std::io::stderr().write_all(whole.as_bytes());
}

fn series(name: &str, what: &str) {
    if on() {
        line(&format!("{name} {:>8} us  {what}", t0().elapsed().as_micros()));
    }
}

/// A mark of prepare's; costs one load when `CORDON_TIMING` is not set.
pub fn mark(what: &str) {
    series("prep", what);
}

/// A mark of the CLI's series (the benchmark's `cli:` phases).
pub fn cli(what: &str) {
    series("cli", what);
}
