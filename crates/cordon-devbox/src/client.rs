//! The client side of the daemon's socket (`cordon devbox pool|claim|exec|ls|rm`).

use crate::wire::{connect, recv, send, Reply, Request};
use std::os::fd::AsFd;
use std::path::Path;

/// The socket `cordon daemon` listens on unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/cordon/cordon.sock";

fn hint(socket: &Path, e: std::io::Error) -> String {
    format!(
        "cannot reach the cordon daemon at {}: {e}\n  hint: start it (`sudo cordon daemon --foreground`), or give --socket PATH",
        socket.display()
    )
}

/// One request and its answer (an error answer as Err).
pub fn request(socket: &Path, req: &Request) -> Result<Reply, String> {
    let s = connect(socket).map_err(|e| hint(socket, e))?;
    sent(s.as_fd(), socket, send(s.as_fd(), req, &[]))?;
    answer(s.as_fd())
}

/// A request that could not be sent may have met a refusal the daemon sent at once (too many
/// connections) and closed: that answer is the error to report.
fn sent(s: std::os::fd::BorrowedFd<'_>, socket: &Path, r: std::io::Result<()>) -> Result<(), String> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => match recv::<Reply>(s) {
            Ok(Some((Reply::Error { error }, _))) => Err(error),
            _ => Err(hint(socket, e)),
        },
    }
}

fn answer(s: std::os::fd::BorrowedFd<'_>) -> Result<Reply, String> {
    match recv::<Reply>(s) {
        Ok(Some((Reply::Error { error }, _))) => Err(error),
        Ok(Some((r, _))) => Ok(r),
        Ok(None) => Err("the daemon closed the connection without an answer (the devbox may have ended)".into()),
        Err(e) => Err(format!("reading the daemon's answer: {e}")),
    }
}

/// Runs `argv` in devbox `id` with this process's stdin, stdout and stderr; its exit status.
pub fn exec(socket: &Path, id: &str, argv: Vec<String>, env: Vec<(String, String)>) -> Result<i32, String> {
    let s = connect(socket).map_err(|e| hint(socket, e))?;
    sent(s.as_fd(), socket, send(s.as_fd(), &Request::Exec { id: id.into(), argv, env }, &[0, 1, 2]))?;
    match answer(s.as_fd())? {
        Reply::Exited { code, .. } => Ok(code),
        other => Err(format!("unexpected answer: {other:?}")),
    }
}
