//! The generated libbpf-rs skeleton (its unsafe code is generated, not written here).
#![allow(
    clippy::all,
    clippy::unwrap_used,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn,
    dead_code,
    non_camel_case_types
)]
include!(concat!(env!("OUT_DIR"), "/cordon.skel.rs"));

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
