//! Compiles bpf/cordon.bpf.c with clang (clang-19 on Debian, which installs no plain `clang`;
//! override with CORDON_CLANG) and generates the libbpf-rs skeleton.
use libbpf_cargo::SkeletonBuilder;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86",
        Ok("aarch64") => "arm64",
        Ok(other) => panic!("cordon's sensor supports x86_64 and aarch64, not {other}"),
        Err(_) => "x86",
    };
    let clang = std::env::var("CORDON_CLANG").unwrap_or_else(|_| {
        if std::process::Command::new("clang-19").arg("--version").output().is_ok() {
            "clang-19".into()
        } else {
            "clang".into()
        }
    });
    for (src, skel) in [("bpf/cordon.bpf.c", "cordon.skel.rs"), ("bpf/lsm_probe.bpf.c", "lsm_probe.skel.rs")] {
        SkeletonBuilder::new()
            .source(src)
            .clang(&clang)
            .clang_args([
                format!("-D__TARGET_ARCH_{arch}"),
                "-Ibpf".into(),
                "-Wall".into(),
                "-Wno-unused-function".into(),
            ])
            .build_and_generate(out.join(skel))
            .unwrap_or_else(|e| {
                panic!("building {src} with {clang} failed (run ./scripts/setup, which installs clang-19): {e:#}")
            });
    }
    for f in ["bpf/cordon.bpf.c", "bpf/lsm_probe.bpf.c", "bpf/events.h", "bpf/vmlinux_min.h"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=CORDON_CLANG");
}
