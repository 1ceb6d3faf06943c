//! The log's Ed25519 signing key: created once, atomically, even when many sessions start on a new
//! log together (each writes its own candidate and links it into place; the first link wins and the
//! others read the winner).

use crate::files::{key_path, sync_dir, unique_tmp};
use ed25519_dalek::SigningKey;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn load_or_create(db: &Path) -> Result<SigningKey, String> {
    let p = key_path(db);
    trusted(&p)?;
    match read(&p) {
        Ok(Some(k)) => return Ok(k),
        Ok(None) => {}
        Err(e) => return Err(e),
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    let tmp = unique_tmp(&p);
    let made = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&seed)?;
        f.sync_all()?;
        let installed = install(&tmp, &p);
        let _ = std::fs::remove_file(&tmp);
        match installed {
            Ok(()) => sync_dir(&p).map(|_| true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })()
    .map_err(|e| format!("cannot create the signing key {}: {e}", p.display()))?;
    if made {
        return Ok(SigningKey::from_bytes(&seed));
    }
    trusted(&p)?;
    read(&p)?.ok_or_else(|| format!("signing key {} vanished while it was being created", p.display()))
}

/// Puts the candidate `tmp` in place as `key`, failing with AlreadyExists if a key is there: no two
/// sessions can both install one. A rename that refuses to replace: the key never has a second name,
/// which a session opening the log meanwhile would take for a planted hard link (a link() and an
/// unlink() of the candidate left that window open; found as a CI failure of
/// `concurrent_first_use_signs_with_one_key`). Where the filesystem cannot rename that way, link().
pub(crate) fn install(tmp: &Path, key: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, tmp, AT_FDCWD, key, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => std::fs::hard_link(tmp, key),
        Err(e) => Err(e.into()),
    }
}

/// A key someone else made or could read signs nothing: ours, mode 0600 (or tighter).
pub(crate) fn trusted(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    crate::files::check_owned(p, "signing key")?;
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.mode() & 0o077 != 0 => Err(format!(
            "signing key {} is readable by other users (mode {:o}): it may be known; not used",
            p.display(),
            m.mode() & 0o777
        )),
        _ => Ok(()),
    }
}

/// The key at `p`, if there is one, once it is found trusted and with one name.
pub(crate) fn load(p: &Path) -> Result<Option<SigningKey>, String> {
    trusted(p)?;
    crate::files::check_single_link(p)?;
    read(p)
}

/// The key, if the file exists. A file of the wrong size is an error, never replaced.
pub(crate) fn read(p: &Path) -> Result<Option<SigningKey>, String> {
    match crate::files::read_regular(p, 4096).map_err(|m| format!("signing key: {m}")) {
        Ok(Some(b)) => {
            let arr: [u8; 32] = b.as_slice().try_into().map_err(|_| {
                format!("signing key {} is not 32 bytes ({} bytes): it was damaged or replaced", p.display(), b.len())
            })?;
            Ok(Some(SigningKey::from_bytes(&arr)))
        }
        Ok(None) => Ok(None),
        Err(m) => Err(m),
    }
}

/// The public half, for verification (None when the key file is missing or unreadable).
pub fn public_key(db: &Path) -> Result<ed25519_dalek::VerifyingKey, String> {
    read(&key_path(db))?
        .map(|k| k.verifying_key())
        .ok_or_else(|| format!("the signing key {} is missing", key_path(db).display()))
}
