//! TLS for the HTTP listener (`--tls-cert FILE --tls-key FILE [--client-ca FILE]`, rustls with the
//! `ring` provider) and the local CA that can make its certificates (`cordon gateway ca init DIR`,
//! `cordon gateway ca issue --name N`, rcgen). With `--client-ca` a client must present a
//! certificate signed by that CA (checked in the handshake; a client without one never reaches
//! HTTP), and its subject's common name is recorded on each of its calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS cannot be set up, or a CA file cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file named by a flag cannot be used.
    #[error("{flag}{path}: {why}\n  hint: {hint}")]
    File { flag: String, path: String, why: String, hint: String },
    /// rustls or rcgen refused what it was given.
    #[error("{what}: {why}\n  hint: {hint}")]
    Setup { what: String, why: String, hint: String },
}

/// `flag`: the flag that named the file ("" for a file `cordon gateway ca` writes).
fn file_err(flag: &str, p: &Path, why: impl Into<String>, hint: impl Into<String>) -> TlsError {
    let flag = if flag.is_empty() { String::new() } else { format!("{flag} ") };
    TlsError::File { flag, path: p.display().to_string(), why: why.into(), hint: hint.into() }
}

const MAKE_HINT: &str =
    "`cordon gateway ca init DIR` makes a local CA, `cordon gateway ca issue --ca DIR --name NAME` \
                         a certificate and key signed by it";

/// The files `--tls-cert`, `--tls-key` and `--client-ca` name.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

fn read(flag: &str, p: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(p).map_err(|e| file_err(flag, p, e.to_string(), MAKE_HINT))
}

/// The listener's rustls configuration: its certificate chain and key, and with a client CA, a
/// verifier that requires every client to present a certificate that CA signed.
pub fn server_config(f: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::os::unix::fs::MetadataExt;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read("--tls-cert", &f.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("--tls-cert", &f.cert, format!("not PEM certificates: {e}"), MAKE_HINT))?;
    if certs.is_empty() {
        return Err(file_err("--tls-cert", &f.cert, "holds no certificate", MAKE_HINT));
    }
    let m = std::fs::metadata(&f.key).map_err(|e| file_err("--tls-key", &f.key, e.to_string(), MAKE_HINT))?;
    if m.mode() & 0o077 != 0 {
        return Err(file_err(
            "--tls-key",
            &f.key,
            format!("its mode is {:o}: others can read the listener's private key", m.mode() & 0o777),
            format!("chmod 600 {}", f.key.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read("--tls-key", &f.key)?)
        .map_err(|e| file_err("--tls-key", &f.key, format!("not a PEM private key: {e}"), MAKE_HINT))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| setup("the TLS versions", e, "report this: rustls refused TLS 1.2 and 1.3"))?;
    let builder = match &f.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read("--client-ca", ca)?)
                .collect::<Result<_, _>>()
                .map_err(|e| file_err("--client-ca", ca, format!("not PEM certificates: {e}"), MAKE_HINT))?;
            let (added, _bad) = roots.add_parsable_certificates(cas);
            if added == 0 {
                return Err(file_err("--client-ca", ca, "holds no usable CA certificate", MAKE_HINT));
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| file_err("--client-ca", ca, e.to_string(), MAKE_HINT))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        setup(
            &format!("--tls-cert {} with --tls-key {}", f.cert.display(), f.key.display()),
            e,
            "give the key of that certificate",
        )
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn setup(what: &str, e: impl std::fmt::Display, hint: &str) -> TlsError {
    TlsError::Setup { what: what.into(), why: e.to_string(), hint: hint.into() }
}

/// The common name of a (DER) certificate's subject; else its whole subject as text.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject.iter_common_name().next().and_then(|c| c.as_str().ok()).map(str::to_string);
    cn.or_else(|| Some(subject.to_string()))
}

/// The names of a local CA's files in its directory.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";

/// Writes `text` into a new file `p` (mode 0600); an existing one only with `force`.
fn write_new(p: &Path, text: &str, force: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).mode(0o600);
    if force {
        // Replaced, not rewritten in place: a file of another mode becomes a new 0600 one.
        let _ = std::fs::remove_file(p);
    }
    o.create_new(true);
    let mut f = o.open(p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            file_err(
                "",
                p,
                "exists: it is not overwritten",
                "pass --force to replace it (what it signed stops verifying)",
            )
        } else {
            file_err("", p, e.to_string(), "the directory must exist and be writable")
        }
    })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| file_err("", p, e.to_string(), "check the disk"))
}

/// Yesterday's date (UTC): certificates are valid from it (clocks a day off still agree), for whole
/// years after it. A civil date from the clock (review 9: a year of 365.2425 days rolled over up to
/// ~22 h early, making certificates not yet valid on Dec 31).
fn valid_from() -> (i32, u8, u8) {
    let ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    civil(&cordon_schema::time::utc(ms - 86_400_000))
}

/// (year, month, day) of `YYYY-MM-DD ...`.
fn civil(date: &str) -> (i32, u8, u8) {
    let n = |r: std::ops::Range<usize>| date.get(r).and_then(|x| x.parse::<i64>().ok()).unwrap_or(1);
    (n(0..4) as i32, n(5..7) as u8, n(8..10) as u8)
}

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> TlsError + '_ {
    move |e| setup(what, e, "report this: rcgen refused it")
}

/// `cordon gateway ca init DIR`: a new CA (ECDSA P-256, 10 years) in DIR/ca.crt and DIR/ca.key
/// (0600; existing files only replaced with `force`). Its common name carries a hash of its key, so
/// that two local CAs are told apart by name too. The files written.
pub fn ca_init(dir: &Path, force: bool) -> Result<Vec<PathBuf>, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).map_err(|e| file_err("", dir, e.to_string(), "name a directory you can write"))?;
    let (crt, keyf) = (dir.join(CA_CERT), dir.join(CA_KEY));
    if !force {
        for p in [&crt, &keyf] {
            if p.exists() {
                return Err(file_err(
                    "",
                    p,
                    "exists: a CA is not overwritten",
                    "pass --force to make a new CA (every certificate it signed stops verifying)",
                ));
            }
        }
    }
    let key = KeyPair::generate().map_err(rcgen_err("a CA key"))?;
    let id: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(key.public_key_der()).iter().take(4).map(|b| format!("{b:02x}")).collect()
    };
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err("the CA's parameters"))?;
    p.distinguished_name.push(DnType::CommonName, format!("cordon-gateway local CA {id}"));
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let (y, m, d) = valid_from();
    (p.not_before, p.not_after) = (rcgen::date_time_ymd(y, m, d), rcgen::date_time_ymd(y + 10, m, d.min(28)));
    let cert = p.self_signed(&key).map_err(rcgen_err("the CA's certificate"))?;
    write_new(&keyf, &key.serialize_pem(), force)?;
    write_new(&crt, &cert.pem(), force)?;
    Ok(vec![crt, keyf])
}

/// `cordon gateway ca issue --ca DIR --name N [--san S...]`: a certificate for N (its common name,
/// and a subject alternative name with each of `sans`: a DNS name or an IP address), for a server
/// or a client, signed by the CA in DIR, valid 2 years; written as OUT/N.crt and OUT/N.key (0600).
pub fn ca_issue(ca: &Path, name: &str, sans: &[String], out: &Path, force: bool) -> Result<Vec<PathBuf>, TlsError> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(TlsError::Setup {
            what: format!("--name {name:?}"),
            why: "a certificate name is 1 to 64 letters, digits, `.`, `-` or `_` (it names the files too)".into(),
            hint: "e.g. --name alice, --name localhost".into(),
        });
    }
    let (crt_in, key_in) = (ca.join(CA_CERT), ca.join(CA_KEY));
    let text = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| file_err("--ca", p, e.to_string(), "`cordon gateway ca init DIR` makes one"))
    };
    let ca_key = KeyPair::from_pem(&text(&key_in)?)
        .map_err(|e| file_err("--ca", &key_in, format!("not a PEM key: {e}"), "the ca.key `ca init` wrote"))?;
    let ca_params = CertificateParams::from_ca_cert_pem(&text(&crt_in)?).map_err(|e| {
        file_err("--ca", &crt_in, format!("not a PEM CA certificate: {e}"), "the ca.crt `ca init` wrote")
    })?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| {
        file_err("--ca", &key_in, format!("does not go with {}: {e}", crt_in.display()), "the pair `ca init` wrote")
    })?;
    let (crt, keyf) = (out.join(format!("{name}.crt")), out.join(format!("{name}.key")));
    if !force {
        for p in [&crt, &keyf] {
            if p.exists() {
                return Err(file_err("", p, "exists: it is not overwritten", "pass --force to replace it"));
            }
        }
    }
    let mut p = CertificateParams::new(sans.to_vec()).map_err(|e| TlsError::Setup {
        what: format!("--san {}", sans.join(" --san ")),
        why: e.to_string(),
        hint: "a DNS name (localhost, gw.example) or an IP address (127.0.0.1)".into(),
    })?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    let (y, m, d) = valid_from();
    (p.not_before, p.not_after) = (rcgen::date_time_ymd(y, m, d), rcgen::date_time_ymd(y + 2, m, d.min(28)));
    let key = KeyPair::generate().map_err(rcgen_err("a key"))?;
    let cert = p.signed_by(&key, &ca_cert, &ca_key).map_err(rcgen_err("the certificate"))?;
    write_new(&keyf, &key.serialize_pem(), force)?;
    write_new(&crt, &cert.pem(), force)?;
    Ok(vec![crt, keyf])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_civil_date_is_read_from_the_clocks_text() {
        assert_eq!(civil("2026-12-31 19:44:00"), (2026, 12, 31));
        assert_eq!(civil(&cordon_schema::time::utc(1_798_761_599_000)), (2026, 12, 31), "23:59:59 on Dec 31");
        assert_eq!(civil(&cordon_schema::time::utc(1_798_761_600_000)), (2027, 1, 1));
    }
}
