//! The devbox's exec server (`cordon devbox-exec-server`, internal): the one command a claim runs,
//! already confined by the claim's process plan. Each order on its stdin (a SOCK_SEQPACKET socket
//! from the daemon) carries a command and four descriptors: its stdin, stdout and stderr (the
//! client's own) and the client's connection, on which the exit status is answered. Every command
//! is its child: it inherits the claim's Landlock, seccomp, rlimits and missing capabilities.

use crate::sys;
use crate::wire::{recv, send, ExecOrder, Reply};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};

pub fn serve() -> i32 {
    let sock = sys::borrow_std(0);
    loop {
        match recv::<ExecOrder>(sock) {
            Ok(Some((order, fds))) => {
                let Ok::<[OwnedFd; 4], _>(fds) = fds.try_into() else { continue };
                std::thread::spawn(move || run(order, fds));
            }
            Ok(None) => return 0,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => continue,
            Err(_) => return 1,
        }
    }
}

fn run(o: ExecOrder, [i, out, err, reply]: [OwnedFd; 4]) {
    let mut signal = None;
    let code = match o.argv.split_first() {
        None => 0,
        Some((prog, args)) => {
            let err2 = err.try_clone();
            let mut c = Command::new(prog);
            c.args(args)
                .envs(o.env)
                .current_dir(&o.cwd)
                .stdin(Stdio::from(i))
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err));
            match c.status() {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    signal = s.signal();
                    s.code().or(s.signal().map(|n| 128 + n)).unwrap_or(125)
                }
                Err(e) => {
                    if let Ok(f) = err2 {
                        use std::io::Write;
                        let _ = writeln!(std::fs::File::from(f), "cordon: devbox: cannot run {prog}: {e}");
                    }
                    if e.kind() == std::io::ErrorKind::NotFound {
                        127
                    } else {
                        126
                    }
                }
            }
        }
    };
    let _ = send(reply.as_fd(), &Reply::Exited { code, signal }, &[]);
}
