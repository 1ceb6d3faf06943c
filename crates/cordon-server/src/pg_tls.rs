//! TLS to PostgreSQL, asked for the way libpq's users already write it: `sslmode` and
//! `sslrootcert` in the URL (`postgres://u@db.example:5432/cordon?sslmode=verify-full&sslrootcert=/etc/cordon/pg-ca.pem`).
//!
//! cordon never encrypts without verifying: every TLS connection checks the server's certificate
//! against `sslrootcert` (a PEM file, or `system` for the host's bundle) and the host name, so
//! `require` and `verify-ca` mean `verify-full` here, and need `sslrootcert`. Without `sslmode`
//! or `sslrootcert` the connection is plain, as before (a local socket, a loopback port).
//!
//! A client certificate (`sslcert` and `sslkey`, both) is presented over such a connection, for a
//! cluster whose pg_hba.conf says `cert`. The key file is judged as libpq judges it (no access for
//! others when it is ours; at most 0640 when root's); an encrypted key (`sslpassword`) is refused
//! by name rather than ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the store connects.
#[derive(Clone)]
pub enum Tls {
    Plain,
    /// TLS, the server's certificate checked against these roots and the URL's host name.
    Verified {
        connector: tokio_postgres_rustls::MakeRustlsConnect,
        roots: String,
        /// The client certificate presented (`sslcert`), if any.
        client: Option<String>,
    },
}

/// The bundle `sslrootcert=system` reads (libpq 16 names the same word), unless SSL_CERT_FILE is set.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The largest root file read (a system bundle is ~200 KiB).
const MAX_ROOTS: u64 = 4 << 20;

/// Splits the URL into what the `postgres` crate parses (sslmode mapped to its words, sslrootcert
/// taken out: it does not know it) and how to connect.
pub fn from_url(url: &str) -> Result<(String, Tls), String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let (mut mode, mut root, mut kept) = (None, None, vec![]);
    let (mut cert, mut key) = (None, None);
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        // Names decoded as the postgres crate decodes them: `ssl%6Dode` is `sslmode` to it too.
        let k = decode(k);
        match k.as_str() {
            "sslmode" => mode = Some(decode(v)),
            "sslrootcert" => root = Some(decode(v)),
            "sslcert" => cert = Some(decode(v)),
            "sslkey" => key = Some(decode(v)),
            "sslpassword" => {
                return Err("`sslpassword` in the URL: encrypted client keys are not supported\n  hint: keep the key unencrypted and private (`openssl pkey -in KEY -out PLAIN.key`, mode 0600) and name it with sslkey=".into())
            }
            _ => kept.push(kv.to_string()),
        }
    }
    // libpq's environment is not read by the postgres crate: TLS asked for there would be ignored.
    if mode.is_none() && root.is_none() {
        let env_mode = std::env::var("PGSSLMODE").unwrap_or_default();
        if std::env::var_os("PGSSLROOTCERT").is_some()
            || !matches!(env_mode.as_str(), "" | "disable" | "allow" | "prefer")
        {
            return Err("PGSSLMODE or PGSSLROOTCERT is set, but cordon reads TLS settings from the URL only\n  hint: put them in the URL: ...?sslmode=verify-full&sslrootcert=CA.pem".into());
        }
    }
    let tls = match (mode.as_deref(), root) {
        (Some("disable"), Some(_)) => {
            return Err("sslmode=disable with sslrootcert: say which one is meant\n  hint: sslmode=verify-full&sslrootcert=CA.pem for TLS, or drop sslrootcert".into())
        }
        (None | Some("disable" | "allow" | "prefer"), None) => None,
        (Some("require" | "verify-ca" | "verify-full"), None) => {
            return Err(format!("sslmode={}: cordon verifies the server's certificate and needs the CA that signed it\n  hint: add sslrootcert=PATH (a PEM file) or sslrootcert=system (the host's bundle)", mode.unwrap_or_default()))
        }
        (None | Some("allow" | "prefer" | "require" | "verify-ca" | "verify-full"), Some(r)) => Some(r),
        (Some(other), _) => {
            return Err(format!("sslmode={other}: not a mode\n  hint: disable, prefer, require, verify-ca or verify-full (the last three are verified in full here)"))
        }
    };
    let client = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) if tls.is_some() => Some((c, k)),
        (Some(_), Some(_)) => {
            return Err("sslcert and sslkey: a client certificate is sent over TLS only\n  hint: add sslmode=verify-full&sslrootcert=CA.pem (the CA of the server's certificate)".into())
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err("sslcert and sslkey go together: the certificate and its private key\n  hint: name both, e.g. sslcert=/etc/cordon/pg-client.crt&sslkey=/etc/cordon/pg-client.key".into())
        }
    };
    kept.push(format!("sslmode={}", if tls.is_some() { "require" } else { "disable" }));
    let url = format!("{base}?{}", kept.join("&"));
    match tls {
        None => Ok((url, Tls::Plain)),
        Some(r) => {
            let (path, shown) = roots_path(&r);
            let roots = root_store(&path).map_err(|e| format!("sslrootcert={shown}: {e}"))?;
            let config = client_config(roots, client.as_ref())?;
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new(config);
            Ok((url, Tls::Verified { connector, roots: shown, client: client.map(|(c, _)| c) }))
        }
    }
}

fn roots_path(r: &str) -> (PathBuf, String) {
    if r == "system" {
        let p = std::env::var_os("SSL_CERT_FILE").map_or_else(|| PathBuf::from(SYSTEM_BUNDLE), PathBuf::from);
        let shown = format!("system ({})", p.display());
        (p, shown)
    } else {
        (PathBuf::from(r), r.to_string())
    }
}

/// The certificates in `path`, to trust.
fn root_store(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| format!("a certificate in it is not usable: {e}"))?;
    }
    Ok(roots)
}

/// The PEM certificates in `path` (at least one).
fn certificates(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let pem = read_bounded(path)?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        // The parser's error carries the offending line's bytes: never shown (a key may be there).
        .map_err(|_| {
            "not a PEM certificate file (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)".to_string()
        })?;
    if certs.is_empty() {
        return Err("holds no certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// rustls with the ring provider, TLS 1.2 and 1.3, trusting only `roots`, presenting the client
/// certificate `client` (certificate file, key file) when there is one.
fn client_config(
    roots: rustls::RootCertStore,
    client: Option<&(String, String)>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let Some((cert, key)) = client else { return Ok(builder.with_no_client_auth()) };
    let chain = certificates(Path::new(cert)).map_err(|e| format!("sslcert={cert}: {e}"))?;
    let private = private_key(Path::new(key)).map_err(|e| format!("sslkey={key}: {e}"))?;
    builder.with_client_auth_cert(chain, private).map_err(|e| {
        if e.to_string().contains("UnsupportedCertVersion") {
            return format!("sslcert={cert}: an X.509 v1 certificate, which cordon's TLS library does not take\n  hint: issue a v3 one: `openssl x509 -req ... -extfile EXT` with `basicConstraints=CA:FALSE` and `extendedKeyUsage=clientAuth` in EXT");
        }
        format!("sslcert={cert} with sslkey={key}: {e}\n  hint: the key must be the certificate's own (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)")
    })
}

/// An unencrypted PEM private key that only its owner can read (libpq 15's rule: at most 0640
/// when root owns it, at most 0600 whoever else does).
fn private_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, String> {
    use rustls_pki_types::pem::PemObject;
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.mode() & 0o777;
    let open = if meta.uid() == 0 { mode & 0o037 } else { mode & 0o077 };
    if open != 0 {
        return Err(format!(
            "others may read it (mode {mode:o})\n  hint: chmod 600 it (0640 when root owns it), as libpq asks"
        ));
    }
    let pem = read_bounded(path)?;
    rustls_pki_types::PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        "not an unencrypted PEM private key\n  hint: -----BEGIN PRIVATE KEY----- (PKCS#8), EC or RSA; decrypt one with `openssl pkey`".to_string()
    })
}

/// The file's bytes: a regular file of at most [`MAX_ROOTS`] (not a FIFO, not /dev/zero). Opened
/// without blocking, so that a FIFO is judged by its descriptor rather than waited on.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut buf = vec![];
    f.take(MAX_ROOTS + 1).read_to_end(&mut buf).map_err(|e| format!("cannot read it: {e}"))?;
    if buf.len() as u64 > MAX_ROOTS {
        return Err(format!("larger than {} MiB", MAX_ROOTS >> 20));
    }
    Ok(buf)
}

/// `%2F` and friends, as in a URL (a path in `sslrootcert` may be written escaped).
pub(crate) fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::with_capacity(b.len()), 0);
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(url: &str) -> String {
        match from_url(url) {
            Ok((u, Tls::Plain)) => u,
            Ok((u, Tls::Verified { .. })) => panic!("{url}: verified as {u}"),
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn modes_map_to_plain_or_verified_and_contradictions_are_named() {
        assert_eq!(plain("postgres://u@h/db"), "postgres://u@h/db?sslmode=disable");
        assert_eq!(
            plain("postgres://u@h/db?sslmode=prefer&application_name=x"),
            "postgres://u@h/db?application_name=x&sslmode=disable"
        );
        let err = |u: &str| from_url(u).err().unwrap_or_else(|| panic!("{u}: accepted"));
        assert!(err("postgres://h/db?sslmode=require").contains("sslrootcert=PATH"));
        assert!(err("postgres://h/db?sslmode=verify-full").contains("needs the CA"));
        assert!(err("postgres://h/db?sslmode=disable&sslrootcert=x").contains("say which one"));
        assert!(err("postgres://h/db?sslmode=bogus").contains("sslmode=bogus: not a mode"));
        assert!(err("postgres://h/db?sslcert=c.pem").contains("go together"));
        assert!(err("postgres://h/db?sslcert=c.pem&sslkey=k.pem").contains("sent over TLS only"));
        assert!(err("postgres://h/db?sslrootcert=system&sslkey=k.pem").contains("go together"));
        assert!(err("postgres://h/db?sslrootcert=system&sslpassword=x").contains("encrypted client keys"));
        assert!(err("postgres://h/db?sslrootcert=system&sslcert=/nonexistent.crt&sslkey=/k")
            .contains("sslcert=/nonexistent.crt: cannot read it"));
        assert!(err("postgres://h/db?ssl%6Dode=require").contains("needs the CA"), "an escaped name is the same name");
        assert!(err("postgres://h/db?sslmode=require&sslrootcert=%2Fnonexistent%2Fca.pem")
            .contains("sslrootcert=/nonexistent/ca.pem: cannot read it"));
        assert!(err("postgres://h/db?sslrootcert=/dev/zero").contains("not a regular file"));
        let empty = std::env::temp_dir().join(format!("cordon-pg-tls-{}.pem", std::process::id()));
        std::fs::write(&empty, "no certificate here\n").expect("write");
        let e = err(&format!("postgres://h/db?sslmode=verify-full&sslrootcert={}", empty.display()));
        let _ = std::fs::remove_file(&empty);
        assert!(e.contains("holds no certificate"), "{e}");
        // A FIFO is refused by its descriptor, never waited on (a hostile trial hung here).
        let fifo = std::env::temp_dir().join(format!("cordon-pg-tls-{}.fifo", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        assert!(std::process::Command::new("mkfifo").arg("-m600").arg(&fifo).status().expect("mkfifo").success());
        let f = fifo.display();
        let e1 = err(&format!("postgres://h/db?sslrootcert={f}"));
        let e2 = err(&format!("postgres://h/db?sslrootcert=system&sslcert={f}&sslkey={f}"));
        let _ = std::fs::remove_file(&fifo);
        assert!(e1.contains("not a regular file") && e2.contains("not a regular file"), "{e1} / {e2}");
    }

    #[test]
    fn the_system_bundle_is_verified_tls() {
        match from_url("postgres://u@h/db?sslrootcert=system") {
            Ok((u, Tls::Verified { roots, client: None, .. })) => {
                assert_eq!(u, "postgres://u@h/db?sslmode=require");
                assert!(roots.starts_with("system ("), "{roots}");
            }
            Ok(_) => panic!("plain"),
            Err(e) => panic!("{e}"),
        }
    }
}
