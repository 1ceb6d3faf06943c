//! Helpers for this crate's unit tests.

use std::path::PathBuf;

/// A fresh directory under the system temp dir, removed with everything in it on drop.
pub struct Tmp(pub PathBuf);

impl Tmp {
    pub fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("cordon-sandbox-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The io::Error an error keeps as its source.
pub fn io_source(e: &dyn std::error::Error) -> &std::io::Error {
    e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("an io::Error as source")
}

/// The errno an error keeps as its source.
pub fn errno_source(e: &dyn std::error::Error) -> nix::errno::Errno {
    *e.source().and_then(|s| s.downcast_ref::<nix::errno::Errno>()).expect("an Errno as source")
}

/// A xorshift64 generator: random-looking inputs that every run repeats.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
