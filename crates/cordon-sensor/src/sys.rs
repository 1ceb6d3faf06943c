//! The generated libbpf-rs skeletons (their unsafe code is generated, not written here), and the
//! raw calls the crate makes itself.

use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub use skel::*;

mod skel {
    #![allow(
        clippy::all,
        clippy::unwrap_used,
        clippy::undocumented_unsafe_blocks,
        unsafe_op_in_unsafe_fn,
        dead_code,
        non_camel_case_types
    )]
    include!(concat!(env!("OUT_DIR"), "/cordon.skel.rs"));
}

/// The BPF-LSM probe's skeleton (bpf/lsm_probe.bpf.c).
pub mod lsm {
    #![allow(
        clippy::all,
        clippy::unwrap_used,
        clippy::undocumented_unsafe_blocks,
        unsafe_op_in_unsafe_fn,
        dead_code,
        non_camel_case_types,
        unused_imports
    )]
    include!(concat!(env!("OUT_DIR"), "/lsm_probe.skel.rs"));
}

/// Attaches the cgroup-bpf program `prog` to the cgroup `cgroup` through a BPF link of type
/// `attach` (BPF_LINK_CREATE): the program stays attached until the returned descriptor is closed.
/// The loaded object's programs are kept as bare descriptors once it is loaded, so libbpf-rs's
/// `Program::attach_cgroup` is not at hand.
pub(crate) fn cgroup_link(prog: BorrowedFd, cgroup: BorrowedFd, attach: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: both descriptors are open for the whole call (borrowed); a null options pointer means
    // no options (libbpf checks it with OPTS_VALID); the call reads only its arguments.
    let fd = unsafe {
        libbpf_rs::libbpf_sys::bpf_link_create(prog.as_raw_fd(), cgroup.as_raw_fd(), attach, std::ptr::null())
    };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a non-negative return is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until the ring buffer has data, `wake` is readable, or `timeout` passes (whichever comes
/// first), so that a reader told to stop need not sit out its poll timeout.
pub(crate) fn wait_ring_or(rb: &libbpf_rs::RingBuffer, wake: BorrowedFd, timeout: Duration) {
    // SAFETY: the epoll descriptor belongs to `rb`, which is borrowed for the whole call and closes
    // it only when dropped; the borrowed descriptor does not outlive this function.
    let ep = unsafe { BorrowedFd::borrow_raw(rb.epoll_fd()) };
    let mut fds = [PollFd::new(ep, PollFlags::POLLIN), PollFd::new(wake, PollFlags::POLLIN)];
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let _ = nix::poll::poll(&mut fds, PollTimeout::from(ms));
}
