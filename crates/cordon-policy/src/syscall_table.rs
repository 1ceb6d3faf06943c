//! Syscall numbers per architecture, generated from libseccomp's tables (examples/gen_tables.rs). Data, no syscalls: the sandbox builds
//! its filter from it and the sensor names the calls it sees with it. and
//! checked against libseccomp and the native libc in tests.

use crate::syscalls::Arch;

fn table(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => include_str!("data/syscalls_x86_64.txt"),
        Arch::Aarch64 => include_str!("data/syscalls_aarch64.txt"),
    }
}

fn parsed(arch: Arch) -> &'static [(&'static str, i32)] {
    static X86: std::sync::OnceLock<Vec<(&'static str, i32)>> = std::sync::OnceLock::new();
    static ARM: std::sync::OnceLock<Vec<(&'static str, i32)>> = std::sync::OnceLock::new();
    let cell = match arch {
        Arch::X86_64 => &X86,
        Arch::Aarch64 => &ARM,
    };
    cell.get_or_init(|| {
        let mut v: Vec<(&'static str, i32)> = table(arch)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (n, nr) = l.split_once(' ')?;
                Some((n, nr.parse().ok()?))
            })
            .collect();
        v.sort_unstable();
        v
    })
}

/// The number of `name` on `arch`, if it exists there.
pub fn number(arch: Arch, name: &str) -> Option<i32> {
    let t = parsed(arch);
    t.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| t[i].1)
}

/// The name of syscall `nr` on `arch`.
pub fn name(arch: Arch, nr: i32) -> Option<&'static str> {
    table(arch).lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, x) = l.split_once(' ')?;
        (x.parse::<i32>().ok()? == nr).then_some(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use libseccomp::{ScmpArch, ScmpSyscall};

    #[test]
    fn tables_agree_with_libseccomp() {
        for (a, s) in [(Arch::X86_64, ScmpArch::X8664), (Arch::Aarch64, ScmpArch::Aarch64)] {
            for l in table(a).lines().filter(|l| !l.starts_with('#')) {
                let (n, nr) = l.split_once(' ').expect("line");
                let want = ScmpSyscall::from_name_by_arch(n, s).expect(n).as_raw_syscall();
                assert_eq!(nr.parse::<i32>().ok(), Some(want), "{a:?} {n}");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn native_table_agrees_with_libc() {
        for (n, nr) in [
            ("read", libc::SYS_read),
            ("ptrace", libc::SYS_ptrace),
            ("io_uring_setup", libc::SYS_io_uring_setup),
            ("clone3", libc::SYS_clone3),
            ("socket", libc::SYS_socket),
            ("ioctl", libc::SYS_ioctl),
        ] {
            assert_eq!(number(Arch::X86_64, n), Some(nr as i32), "{n}");
        }
        assert_eq!(name(Arch::X86_64, libc::SYS_ptrace as i32), Some("ptrace"));
    }
}
