//! The server's one system call outside std: lowering a thread's CPU priority.

/// Raises the calling thread's nice value by 10 (at most 19), relative to what it runs at (a
/// server started under `nice` stays below it): exporting yields to ingest and the dashboard when
/// the CPU is busy. Linux: `setpriority(PRIO_PROCESS, tid)` acts on the one thread.
pub fn lower_priority() -> std::io::Result<()> {
    // SAFETY: gettid takes no argument and cannot fail.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    // SAFETY: getpriority reads its two integer arguments only. It fails only for a bad `which` or
    // `who` (neither here); -1 is then also a valid nice value, and taken as one.
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    // SAFETY: setpriority reads its three integer arguments only; a bad one is an error return.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, (now + 10).min(19)) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
