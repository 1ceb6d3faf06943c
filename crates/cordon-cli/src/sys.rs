//! The binary's few raw calls.

/// Restores the default action of SIGPIPE (the Rust runtime ignores it): a read-only command whose
/// reader went away (`cordon audit ls | head -1`) ends quietly, as other Unix tools do, instead of
/// panicking in `println!`. Not for `cordon run`, which must outlive its terminal to finish the record.
pub fn default_sigpipe() {
    // SAFETY: called at the start of main, before any thread exists; SIG_DFL installs no handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
