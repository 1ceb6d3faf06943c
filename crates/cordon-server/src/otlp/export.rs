//! One OTLP/HTTP request: a protobuf body POSTed to ENDPOINT/v1/traces or /v1/logs, over TCP or
//! TLS (rustls, `ring`), a new connection each time (the exporter sends a few large requests a
//! second at most). Any 2xx is success; everything else is a [`Failure`], which says whether the
//! OTLP specification calls it retryable (the queue retries those).

use super::cli::Endpoint;
use axum::http::{header, HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Connect, TLS handshake, request and answer together.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to send.
#[derive(Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Some for an https endpoint.
    pub tls: Option<tokio_rustls::TlsConnector>,
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("the endpoint's name is not one a certificate can name")]
    Name,
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the request could not be made: {0}")]
    Request(#[from] axum::http::Error),
    #[error("answered {0}")]
    Status(u16, Option<Duration>),
    #[error("no answer within {}s", TIMEOUT.as_secs())]
    Timeout,
}

impl Failure {
    /// A short, fixed name: each kind is logged once.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect(_) => "connect",
            Failure::Tls(_) | Failure::Name => "tls",
            Failure::Http(_) | Failure::Request(_) => "http",
            Failure::Status(..) => "status",
            Failure::Timeout => "timeout",
        }
    }

    /// Worth another try (OTLP/HTTP: 429, 502, 503, 504, and a connection that failed or timed out);
    /// anything else will fail the same way again.
    pub fn retryable(&self) -> bool {
        match self {
            Failure::Connect(_) | Failure::Http(_) | Failure::Timeout => true,
            Failure::Status(code, _) => matches!(code, 429 | 502 | 503 | 504),
            Failure::Tls(_) | Failure::Name | Failure::Request(_) => false,
        }
    }

    /// The wait the receiver asked for (Retry-After, in seconds).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status(_, after) => *after,
            _ => None,
        }
    }
}

/// A TLS client trusting `roots` (the --otlp-ca-file, else the system's bundle).
pub fn connector(roots: rustls::RootCertStore) -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// POSTs `body` to ENDPOINT/v1/`signal`.
pub async fn post(t: &Target, signal: &str, body: Bytes) -> Result<(), Failure> {
    tokio::time::timeout(TIMEOUT, send(t, signal, body)).await.map_err(|_| Failure::Timeout)?
}

async fn send(t: &Target, signal: &str, body: Bytes) -> Result<(), Failure> {
    let e = &t.endpoint;
    let mut req = Request::post(format!("{}/v1/{signal}", e.base_path))
        .header(header::HOST, &e.authority)
        .header(header::CONTENT_TYPE, "application/x-protobuf");
    for (k, v) in &t.headers {
        req = req.header(k, v);
    }
    let req = req.body(Full::new(body))?;
    let tcp = tokio::net::TcpStream::connect((e.host.as_str(), e.port)).await.map_err(Failure::Connect)?;
    let _ = tcp.set_nodelay(true);
    match &t.tls {
        None => exchange(tcp, req).await,
        Some(tls) => {
            let name = rustls_pki_types::ServerName::try_from(e.host.clone()).map_err(|_| Failure::Name)?;
            let stream = tls.connect(name, tcp).await.map_err(Failure::Tls)?;
            exchange(stream, req).await
        }
    }
}

async fn exchange<S>(io: S, req: Request<Full<Bytes>>) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let conn = tokio::spawn(conn);
    let answer = sender.send_request(req).await?;
    let status = answer.status();
    let after = answer
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read the answer through (an OTLP partial-success body, ignored) so the connection ends cleanly.
    let _ = answer.into_body().collect().await;
    drop(sender);
    let _ = conn.await;
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::Status(status.as_u16(), after))
    }
}
