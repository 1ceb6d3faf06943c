//! Decodes the records the BPF programs write (bpf/events.h) from bytes, without unsafe casts: a
//! short or malformed record is an error, never a read past the end.

/// A C enum of bpf/events.h as a Rust enum: its variants, their numbers and C names in one list,
/// from which `ALL`, `c_name` and `from_raw` are made (a variant cannot be left out of them).
macro_rules! wire_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident: $repr:ty { $($(#[$vm:meta])* $v:ident = $n:literal => $c:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr($repr)]
        $vis enum $name { $($(#[$vm])* $v = $n),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// The enumerator's name in bpf/events.h.
            pub const fn c_name(self) -> &'static str {
                match self { $($name::$v => $c),+ }
            }

            pub fn from_raw(n: $repr) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| *v as $repr == n)
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// What a record is (enum ev_kind, the header's first field).
    pub enum Kind: u32 {
        Exec = 1 => "EV_EXEC",
        Fork = 2 => "EV_FORK",
        Exit = 3 => "EV_EXIT",
        Syscall = 4 => "EV_SYSCALL",
        Net = 5 => "EV_NET",
    }
}

wire_enum! {
    /// The cgroup program that made a network decision (enum net_hook).
    pub enum Hook: u32 {
        Connect4 = 1 => "HOOK_CONNECT4",
        Connect6 = 2 => "HOOK_CONNECT6",
        Sendmsg4 = 3 => "HOOK_SENDMSG4",
        Sendmsg6 = 4 => "HOOK_SENDMSG6",
        SockCreate = 5 => "HOOK_SOCK_CREATE",
    }
}

/// Bumped with every change of the records' layout, here and in bpf/events.h.
pub const WIRE_VERSION: u32 = 1;

pub const EV_EXEC: u32 = Kind::Exec as u32;
pub const EV_FORK: u32 = Kind::Fork as u32;
pub const EV_EXIT: u32 = Kind::Exit as u32;
pub const EV_SYSCALL: u32 = Kind::Syscall as u32;
pub const EV_NET: u32 = Kind::Net as u32;

/// struct ev_hdr.flags.
pub const F_NOT_ENTERED: u32 = 1;
pub const F_TRUNC_PATH: u32 = 2;

/// Sizes of the records' fixed buffers.
pub const PATH_MAX_BPF: usize = 256;
pub const ARGV_MAX: usize = 512;
pub const ADDR_MAX: usize = 112;

const HDR: usize = 56;

/// Every number bpf/events.h shares with the Rust side, by its C name.
pub fn wire_numbers() -> Vec<(&'static str, u64)> {
    let mut v: Vec<(&'static str, u64)> = vec![];
    v.extend(Kind::ALL.iter().map(|k| (k.c_name(), *k as u64)));
    v.extend(Hook::ALL.iter().map(|k| (k.c_name(), *k as u64)));
    v.extend(crate::kinds::Decode::ALL.iter().map(|k| (k.c_name(), *k as u64)));
    v.extend([
        ("WIRE_VERSION", u64::from(WIRE_VERSION)),
        ("F_NOT_ENTERED", u64::from(F_NOT_ENTERED)),
        ("F_TRUNC_PATH", u64::from(F_TRUNC_PATH)),
        ("KF_QUIET_OK", u64::from(crate::kinds::KF_QUIET_OK)),
        ("PATH_MAX_BPF", PATH_MAX_BPF as u64),
        ("ARGV_MAX", ARGV_MAX as u64),
        ("ADDR_MAX", ADDR_MAX as u64),
    ]);
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hdr {
    pub kind: u32,
    pub flags: u32,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub ts: u64,
    pub start: u64,
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    Exec { h: Hdr, old_pid: u32, filename: String, argv: Vec<String> },
    Fork { h: Hdr, child_pid: u32, child_tid: u32, child_start: u64 },
    Exit { h: Hdr, code: i32 },
    Syscall { h: Hdr, nr: u32, ret: i64, args: [u64; 6], p1: Option<String>, p2: Option<String>, addr: Vec<u8> },
    Net { h: Hdr, hook: Hook, allowed: bool, family: u32, sock_type: u32, protocol: u32, port: u16, addr: [u8; 16] },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed sensor record ({len} bytes): {what}")]
pub struct DecodeError {
    pub len: usize,
    pub what: &'static str,
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn bytes(&self, off: usize, n: usize) -> Result<&[u8], DecodeError> {
        self.0.get(off..off + n).ok_or(DecodeError { len: self.0.len(), what: "record shorter than its kind" })
    }
    fn u16(&self, off: usize) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.bytes(off, 2)?.try_into().unwrap_or_default()))
    }
    fn u32(&self, off: usize) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.bytes(off, 4)?.try_into().unwrap_or_default()))
    }
    fn u64(&self, off: usize) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.bytes(off, 8)?.try_into().unwrap_or_default()))
    }
    /// A NUL-terminated string of at most `max` bytes; `len` is what the kernel said it copied.
    fn cstr(&self, off: usize, len: usize, max: usize) -> Result<String, DecodeError> {
        let len = len.min(max);
        let b = self.bytes(off, len)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(String::from_utf8_lossy(&b[..end]).into_owned())
    }
}

fn hdr(r: &R) -> Result<Hdr, DecodeError> {
    Ok(Hdr {
        kind: r.u32(0)?,
        flags: r.u32(4)?,
        pid: r.u32(8)?,
        tid: r.u32(12)?,
        ppid: r.u32(16)?,
        uid: r.u32(20)?,
        ts: r.u64(24)?,
        start: r.u64(32)?,
        comm: r.cstr(40, 16, 16)?,
    })
}

pub fn decode(b: &[u8]) -> Result<Raw, DecodeError> {
    let r = R(b);
    let h = hdr(&r)?;
    let o = HDR;
    let Some(kind) = Kind::from_raw(h.kind) else {
        return Err(DecodeError { len: b.len(), what: "unknown kind" });
    };
    Ok(match kind {
        Kind::Exec => {
            let fn_len = r.u16(o + 4)? as usize;
            let argv_len = r.u16(o + 6)? as usize;
            let filename = r.cstr(o + 8, fn_len, PATH_MAX_BPF)?;
            let raw = r.bytes(o + 8 + PATH_MAX_BPF, argv_len.min(ARGV_MAX))?;
            let argv = raw
                .split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            Raw::Exec { old_pid: r.u32(o)?, filename, argv, h }
        }
        Kind::Fork => Raw::Fork { child_pid: r.u32(o)?, child_tid: r.u32(o + 4)?, child_start: r.u64(o + 8)?, h },
        Kind::Exit => Raw::Exit { code: r.u32(o)? as i32, h },
        Kind::Syscall => {
            let nr = r.u32(o)?;
            let p1_len = r.u16(o + 4)? as usize;
            let p2_len = r.u16(o + 6)? as usize;
            let ret = r.u64(o + 8)? as i64;
            let mut args = [0u64; 6];
            for (i, a) in args.iter_mut().enumerate() {
                *a = r.u64(o + 16 + 8 * i)?;
            }
            let addr_len = r.u16(o + 64)? as usize;
            // Packed: p1, p2 and addr follow the fixed part back to back.
            let data = o + 72;
            let p1 = if p1_len > 0 { Some(r.cstr(data, p1_len, PATH_MAX_BPF)?) } else { None };
            let p2 = if p2_len > 0 { Some(r.cstr(data + p1_len, p2_len, PATH_MAX_BPF)?) } else { None };
            let addr =
                if addr_len > 0 { r.bytes(data + p1_len + p2_len, addr_len.min(ADDR_MAX))?.to_vec() } else { vec![] };
            Raw::Syscall { nr, ret, args, p1, p2, addr, h }
        }
        Kind::Net => {
            let mut addr = [0u8; 16];
            addr.copy_from_slice(r.bytes(o + 24, 16)?);
            let hook = Hook::from_raw(r.u32(o)?).ok_or(DecodeError { len: b.len(), what: "unknown network hook" })?;
            Raw::Net {
                hook,
                allowed: r.u32(o + 4)? == 1,
                family: r.u32(o + 8)?,
                sock_type: r.u32(o + 12)?,
                protocol: r.u32(o + 16)?,
                port: r.u32(o + 20)? as u16,
                addr,
                h,
            }
        }
    })
}

impl Raw {
    pub fn hdr(&self) -> &Hdr {
        match self {
            Raw::Exec { h, .. }
            | Raw::Fork { h, .. }
            | Raw::Exit { h, .. }
            | Raw::Syscall { h, .. }
            | Raw::Net { h, .. } => h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32) -> Vec<u8> {
        let mut v = vec![];
        for x in [kind, 0, 10, 11, 1, 1000] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&5u64.to_le_bytes());
        v.extend_from_slice(&6u64.to_le_bytes());
        let mut comm = [0u8; 16];
        comm[..2].copy_from_slice(b"sh");
        v.extend_from_slice(&comm);
        v
    }

    #[test]
    fn fork_and_short_records() {
        let mut v = header(EV_FORK);
        v.extend_from_slice(&12u32.to_le_bytes());
        v.extend_from_slice(&12u32.to_le_bytes());
        v.extend_from_slice(&99u64.to_le_bytes());
        match decode(&v).expect("decodes") {
            Raw::Fork { h, child_pid, child_start, .. } => {
                assert_eq!((h.pid, h.comm.as_str(), child_pid, child_start), (10, "sh", 12, 99));
            }
            other => panic!("{other:?}"),
        }
        for n in 0..v.len() {
            assert!(decode(&v[..n]).is_err(), "{n} bytes decoded");
        }
        let mut bad = header(77);
        bad.extend_from_slice(&[0; 64]);
        assert!(decode(&bad).is_err());
    }

    /// `NAME = N` inside an enum and `#define NAME N`, for the names the two sides share.
    fn header_numbers(text: &str) -> Vec<(String, u64)> {
        let shared =
            |n: &str| ["EV_", "HOOK_", "SK_", "F_", "KF_"].iter().any(|p| n.starts_with(p)) || n == "WIRE_VERSION";
        let shared = |n: &str| shared(n) || ["PATH_MAX_BPF", "ARGV_MAX", "ADDR_MAX"].contains(&n);
        let mut v = vec![];
        for line in text.lines() {
            let code = line.split("/*").next().unwrap_or("").trim();
            let (name, value) = if let Some(d) = code.strip_prefix("#define ") {
                let mut w = d.split_whitespace();
                (w.next().unwrap_or(""), w.next().unwrap_or(""))
            } else if let Some((n, val)) = code.split_once('=') {
                (n.trim(), val.trim().trim_end_matches(','))
            } else {
                continue;
            };
            if shared(name) {
                let n = value.parse().unwrap_or_else(|_| panic!("events.h: {name} = `{value}` is not a number"));
                v.push((name.to_string(), n));
            }
        }
        v
    }

    #[test]
    fn the_wire_numbers_match_events_h() {
        let header = header_numbers(include_str!("../bpf/events.h"));
        let rust: Vec<(String, u64)> = wire_numbers().into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        let missing_in_rust: Vec<_> = header.iter().filter(|h| !rust.contains(h)).collect();
        let missing_in_c: Vec<_> = rust.iter().filter(|r| !header.contains(r)).collect();
        assert!(missing_in_rust.is_empty(), "in bpf/events.h, not (or not so) in Rust: {missing_in_rust:?}");
        assert!(missing_in_c.is_empty(), "in Rust, not (or not so) in bpf/events.h: {missing_in_c:?}");
        assert!(header.len() >= 20, "the parser found only {header:?}");
    }

    #[test]
    fn an_unknown_network_hook_is_malformed() {
        let mut v = header(EV_NET);
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&[0u8; 36]);
        assert_eq!(decode(&v), Err(DecodeError { len: v.len(), what: "unknown network hook" }));
        v[HDR..HDR + 4].copy_from_slice(&(Hook::SockCreate as u32).to_le_bytes());
        assert!(matches!(decode(&v), Ok(Raw::Net { hook: Hook::SockCreate, .. })));
    }

    #[test]
    fn syscall_with_path_only_is_trimmed() {
        let mut v = header(EV_SYSCALL);
        v.extend_from_slice(&257u32.to_le_bytes());
        v.extend_from_slice(&5u16.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&(-13i64).to_le_bytes());
        v.extend_from_slice(&[0u8; 48]);
        v.extend_from_slice(&[0u8; 8]);
        v.extend_from_slice(b"/etc\0");
        match decode(&v).expect("decodes") {
            Raw::Syscall { nr, ret, p1, p2, addr, .. } => {
                assert_eq!((nr, ret, p1.as_deref(), p2, addr.len()), (257, -13, Some("/etc"), None, 0))
            }
            other => panic!("{other:?}"),
        }
    }
}
