//! Decodes the records the BPF programs write (bpf/events.h) from bytes, without unsafe casts: a
//! short or malformed record is an error, never a read past the end.

pub const EV_EXEC: u32 = 1;
pub const EV_FORK: u32 = 2;
pub const EV_EXIT: u32 = 3;
pub const EV_SYSCALL: u32 = 4;
pub const EV_NET: u32 = 5;

pub const F_NOT_ENTERED: u32 = 1;
pub const F_TRUNC: u32 = 2;

const HDR: usize = 56;

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
    Net { h: Hdr, hook: u32, allowed: bool, family: u32, sock_type: u32, protocol: u32, port: u16, addr: [u8; 16] },
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
    Ok(match h.kind {
        EV_EXEC => {
            let fn_len = r.u16(o + 4)? as usize;
            let argv_len = r.u16(o + 6)? as usize;
            let filename = r.cstr(o + 8, fn_len, 256)?;
            let raw = r.bytes(o + 8 + 256, argv_len.min(512))?;
            let argv = raw
                .split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            Raw::Exec { old_pid: r.u32(o)?, filename, argv, h }
        }
        EV_FORK => Raw::Fork { child_pid: r.u32(o)?, child_tid: r.u32(o + 4)?, child_start: r.u64(o + 8)?, h },
        EV_EXIT => Raw::Exit { code: r.u32(o)? as i32, h },
        EV_SYSCALL => {
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
            let p1 = if p1_len > 0 { Some(r.cstr(data, p1_len, 256)?) } else { None };
            let p2 = if p2_len > 0 { Some(r.cstr(data + p1_len, p2_len, 256)?) } else { None };
            let addr = if addr_len > 0 { r.bytes(data + p1_len + p2_len, addr_len.min(112))?.to_vec() } else { vec![] };
            Raw::Syscall { nr, ret, args, p1, p2, addr, h }
        }
        EV_NET => {
            let mut addr = [0u8; 16];
            addr.copy_from_slice(r.bytes(o + 24, 16)?);
            Raw::Net {
                hook: r.u32(o)?,
                allowed: r.u32(o + 4)? == 1,
                family: r.u32(o + 8)?,
                sock_type: r.u32(o + 12)?,
                protocol: r.u32(o + 16)?,
                port: r.u32(o + 20)? as u16,
                addr,
                h,
            }
        }
        _ => return Err(DecodeError { len: b.len(), what: "unknown kind" }),
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
