//! OTLP export (`cordon server --otlp-endpoint URL`): what the server stores is also sent, as
//! OTLP/HTTP protobuf, to the collector a team already runs: sessions and tool calls as spans,
//! everything else as logs (map.rs), from a bounded queue off the ingest path (queue.rs), by one
//! thread that retries what may succeed later (worker.rs), one request at a time (export.rs).
//!
//! Not the opentelemetry SDK's exporter (opentelemetry-otlp): it exports what the application
//! itself records now, with ids it makes and clocks it reads. The server maps records it stored,
//! made elsewhere and earlier, to spans and logs with their own timestamps and with ids derived
//! from their node and session (so a tool call can name its sandbox session's span, and a record
//! sent again maps to the same ids). So only the OTLP messages are used (opentelemetry-proto).

pub mod cli;
pub mod export;
pub mod map;
pub mod queue;
mod worker;

pub use queue::{Drained, Exporter, DRAIN};

use axum::http::{HeaderName, HeaderValue};
use cli::{CaFile, Endpoint};

/// The system's CA bundle (Debian's path), trusted by an https endpoint without --otlp-ca-file.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where to send, from the flags: an error names the flag.
pub fn target(
    endpoint: Endpoint,
    headers: Vec<(HeaderName, HeaderValue)>,
    ca: Option<CaFile>,
) -> Result<export::Target, String> {
    if !endpoint.https {
        if let Some(ca) = ca {
            return Err(format!(
                "--otlp-ca-file {}: the endpoint {} is plain http, where no certificate is checked\n  hint: an https:// endpoint",
                ca.path.display(),
                endpoint.base()
            ));
        }
        return Ok(export::Target { endpoint, headers, tls: None });
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for c in ca.certs {
                roots.add(c).map_err(|e| {
                    format!("--otlp-ca-file {}: a certificate that cannot be a CA: {e}", ca.path.display())
                })?;
            }
        }
        None => {
            let system = cli::ca_file(SYSTEM_CAS).map_err(|e| {
                format!("--otlp-endpoint {}: https, and {SYSTEM_CAS}: {e}\n  hint: --otlp-ca-file PEM names the CA that signed the collector's certificate", endpoint.base())
            })?;
            roots.add_parsable_certificates(system.certs);
        }
    }
    let tls = export::connector(roots).map_err(|e| format!("--otlp-endpoint: TLS: {e}"))?;
    Ok(export::Target { endpoint, headers, tls: Some(tls) })
}
