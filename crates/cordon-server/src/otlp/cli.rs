//! The `--otlp-*` flags' values, checked when the arguments are parsed (clap names the flag and
//! the value in its error): the endpoint's URL, extra request headers, a CA file for https.

use axum::http::{HeaderName, HeaderValue, Uri};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::{Path, PathBuf};

/// Where the OTLP/HTTP receiver is: `/v1/traces` and `/v1/logs` are appended to `base_path`.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub https: bool,
    /// As in the URL (an IPv6 address keeps its brackets): the Host header.
    pub authority: String,
    /// The host name or address, without brackets: what is connected to and what the
    /// certificate must name.
    pub host: String,
    pub port: u16,
    /// The URL's path without its trailing `/` ("" for none).
    pub base_path: String,
}

impl Endpoint {
    /// The URL as given (without a trailing `/`).
    pub fn base(&self) -> String {
        format!("{}://{}{}", if self.https { "https" } else { "http" }, self.authority, self.base_path)
    }

    /// Where one signal (`traces`, `logs`) is sent.
    pub fn url(&self, signal: &str) -> String {
        format!("{}/v1/{signal}", self.base())
    }
}

/// `http://HOST[:PORT][/PATH]` or `https://...` (ports 4318 and 443 by default: OTLP/HTTP's and
/// https's), no query, no fragment, no user info.
pub fn endpoint(s: &str) -> Result<Endpoint, String> {
    let uri: Uri = s.parse().map_err(|e| format!("not a URL ({e}); e.g. http://127.0.0.1:4318"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("the URL's scheme is neither http nor https (OTLP/HTTP; gRPC is not supported)".into()),
    };
    let auth = uri.authority().ok_or("the URL names no host")?;
    if auth.as_str().contains('@') {
        return Err("a user or password in the URL is not supported: pass --otlp-header instead".into());
    }
    if uri.query().is_some() || s.contains('#') {
        return Err("a query or fragment in the URL is not supported".into());
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']').to_string();
    if host.is_empty() {
        return Err("the URL names no host".into());
    }
    let port = auth.port_u16().unwrap_or(if https { 443 } else { 4318 });
    let base_path = uri.path().trim_end_matches('/').to_string();
    Ok(Endpoint { https, authority: auth.as_str().to_string(), host, port, base_path })
}

/// Headers given by one `--otlp-header`: `KEY=VALUE`, or `@FILE` for a file of such lines (a
/// token then stays out of the command line, which every user of the machine can read).
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(HeaderName, HeaderValue)>);

/// Larger than any file of headers.
const MAX_HEADERS_FILE: u64 = 64 << 10;

/// `KEY=VALUE` or `@FILE`.
pub fn headers(s: &str) -> Result<Headers, String> {
    let Some(path) = s.strip_prefix('@') else {
        return header(s).map(|h| Headers(vec![h]));
    };
    let text = read_bounded(Path::new(path))?;
    private(Path::new(path))?;
    let mut out = vec![];
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let at = format!("{path}:{}", i + 1);
        let line = std::str::from_utf8(line).map_err(|_| format!("{at}: not UTF-8 text"))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The line is not repeated in the error: it may hold the secret the file keeps.
        out.push(header(line).map_err(|_| {
            format!("{at}: not a header as KEY=VALUE (a valid name, a value without control characters, not one the exporter sets); the line is not shown, it may hold a secret")
        })?);
    }
    if out.is_empty() {
        return Err(format!("{path}: holds no header (one KEY=VALUE a line; # starts a comment)"));
    }
    Ok(Headers(out))
}

/// A file of headers holds secrets: refused when others than its owner may read it.
fn private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: others may read it (mode {:o}), and it holds the collector's credentials\n  hint: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    let mut text = vec![];
    f.take(MAX_HEADERS_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    if text.len() as u64 > MAX_HEADERS_FILE {
        return Err(format!("{}: larger than {} KiB: not a file of headers", path.display(), MAX_HEADERS_FILE >> 10));
    }
    Ok(text)
}

/// `KEY=VALUE`: a valid HTTP header name and value (e.g. `Authorization=Bearer TOKEN`).
pub fn header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE, e.g. Authorization=Bearer TOKEN")?;
    let name =
        HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| format!("`{}` is not a header name", k.trim()))?;
    if ["host", "content-type", "content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
        return Err(format!("`{name}` is set by the exporter itself"));
    }
    let value =
        HeaderValue::from_str(v.trim()).map_err(|_| "the value holds characters a header may not".to_string())?;
    Ok((name, value))
}

/// A PEM file of one or more CA certificates that the endpoint's certificate must chain to.
#[derive(Debug, Clone)]
pub struct CaFile {
    pub path: PathBuf,
    pub certs: Vec<CertificateDer<'static>>,
}

pub fn ca_file(s: &str) -> Result<CaFile, String> {
    let path = PathBuf::from(s);
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read it: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM file of certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no certificate (expected -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(CaFile { path, certs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_headers_and_ca_files_are_checked_not_panicked_on() {
        let e = endpoint("http://127.0.0.1:4318/").expect("ok");
        assert_eq!(e.url("traces"), "http://127.0.0.1:4318/v1/traces");
        let e = endpoint("https://[::1]/otel").expect("ok");
        assert_eq!((e.host.as_str(), e.port, e.url("logs").as_str()), ("::1", 443, "https://[::1]/otel/v1/logs"));
        for bad in ["", "127.0.0.1:4318", "grpc://h:4317", "http://u:p@h/", "http://h/?a=1", "http:///x", "\u{1b}[31m"]
        {
            assert!(endpoint(bad).is_err(), "{bad:?}");
        }
        assert!(header("Authorization=Bearer x=y").is_ok_and(|(k, v)| k == "authorization" && v == "Bearer x=y"));
        for bad in ["novalue", "bad name=x", "Host=x", "k=a\nb"] {
            assert!(header(bad).is_err(), "{bad:?}");
        }
        assert!(ca_file("/nonexistent/ca.pem").is_err_and(|e| e.contains("cannot read")));
        for (bad, says) in [
            ("@/nonexistent/h", "/nonexistent/h: cannot read"),
            ("@/dev/zero", "larger than 64 KiB"),
            ("@/etc/hostname", "/etc/hostname: others may read it (mode "),
        ] {
            assert!(headers(bad).is_err_and(|e| e.contains(says)), "{bad}: {:?}", headers(bad));
        }
        let dir = std::env::temp_dir().join(format!("cordon-otlp-headers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("h");
        let write = |text: &str| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&f, text).expect("write");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            headers(&format!("@{}", f.display()))
        };
        assert!(write("# only a comment\n").is_err_and(|e| e.contains("holds no header")));
        let e = write("A=b\nAuthorization: Bearer s3cret=\n").expect_err("a curl-style line");
        assert!(e.contains(":2: not a header") && !e.contains("s3cret"), "{e}");
        assert!(write("A = b\n\n# c\nB=c=d\n").is_ok_and(|h| h.0.len() == 2 && h.0[1].1 == "c=d"));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(ca_file("/etc/hostname").is_err_and(|e| e.contains("no certificate")));
    }
}
