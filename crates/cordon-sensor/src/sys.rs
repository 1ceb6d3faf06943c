//! The generated libbpf-rs skeleton (its unsafe code is generated, not written here).
#![allow(clippy::all, clippy::unwrap_used, clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn, dead_code, non_camel_case_types)]
include!(concat!(env!("OUT_DIR"), "/cordon.skel.rs"));
