//! Regenerates src/data/syscalls_<arch>.txt from libseccomp's tables:
//! `cargo run -p cordon-policy --example gen_tables`.
fn main() {
    let names = include_str!("../src/data/syscall_names.txt");
    for (arch, file) in [(libseccomp::ScmpArch::X8664, "x86_64"), (libseccomp::ScmpArch::Aarch64, "aarch64")] {
        let mut out = format!("# syscall numbers for {file}, generated from libseccomp by examples/gen_tables.rs\n");
        for n in names.lines() {
            if let Ok(s) = libseccomp::ScmpSyscall::from_name_by_arch(n, arch) {
                let nr = s.as_raw_syscall();
                if nr >= 0 {
                    out.push_str(&format!("{n} {nr}\n"));
                }
            }
        }
        std::fs::write(format!("{}/src/data/syscalls_{file}.txt", env!("CARGO_MANIFEST_DIR")), out).expect("write");
    }
}
