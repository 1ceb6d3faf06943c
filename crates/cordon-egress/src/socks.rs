//! SOCKS5 (RFC 1928): no authentication, CONNECT only.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const REP_OK: u8 = 0x00;
pub const REP_FAILURE: u8 = 0x01;
pub const REP_NOT_ALLOWED: u8 = 0x02;
pub const REP_HOST_UNREACHABLE: u8 = 0x04;
pub const REP_CMD_UNSUPPORTED: u8 = 0x07;
pub const REP_ATYP_UNSUPPORTED: u8 = 0x08;

/// Why a SOCKS5 handshake did not yield a CONNECT request.
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    /// Reading from or writing to the client failed (it closed, or reset the connection).
    #[error("SOCKS handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error("client offers no unauthenticated method")]
    NoUnauthenticatedMethod,
    #[error("bad SOCKS version in request")]
    BadVersion,
    #[error("unsupported SOCKS command {0}")]
    UnsupportedCommand(u8),
    #[error("domain is not UTF-8")]
    DomainNotUtf8(#[source] std::string::FromUtf8Error),
    #[error("unsupported address type {0}")]
    UnsupportedAddressType(u8),
    #[error("SOCKS handshake timed out")]
    TimedOut,
}

/// Negotiates and reads the CONNECT request. The first byte (version 5) was already read.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<(String, u16), SocksError> {
    let fut = async {
        let n = s.read_u8().await?;
        let mut methods = vec![0u8; n as usize];
        s.read_exact(&mut methods).await?;
        if !methods.contains(&0) {
            let _ = s.write_all(&[5, 0xff]).await;
            return Err(SocksError::NoUnauthenticatedMethod);
        }
        s.write_all(&[5, 0]).await?;
        let mut req = [0u8; 4];
        s.read_exact(&mut req).await?;
        if req[0] != 5 {
            return Err(SocksError::BadVersion);
        }
        if req[1] != 1 {
            let _ = reply(s, REP_CMD_UNSUPPORTED).await;
            return Err(SocksError::UnsupportedCommand(req[1]));
        }
        let host = match req[3] {
            1 => {
                let mut a = [0u8; 4];
                s.read_exact(&mut a).await?;
                std::net::Ipv4Addr::from(a).to_string()
            }
            3 => {
                let l = s.read_u8().await?;
                let mut d = vec![0u8; l as usize];
                s.read_exact(&mut d).await?;
                String::from_utf8(d).map_err(SocksError::DomainNotUtf8)?
            }
            4 => {
                let mut a = [0u8; 16];
                s.read_exact(&mut a).await?;
                std::net::Ipv6Addr::from(a).to_string()
            }
            t => {
                let _ = reply(s, REP_ATYP_UNSUPPORTED).await;
                return Err(SocksError::UnsupportedAddressType(t));
            }
        };
        let port = s.read_u16().await?;
        Ok((host, port))
    };
    tokio::time::timeout(Duration::from_secs(10), fut).await.map_err(|_| SocksError::TimedOut)?
}

pub async fn reply<S: AsyncWrite + Unpin>(s: &mut S, code: u8) -> std::io::Result<()> {
    s.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

#[cfg(test)]
mod tests {
    //! Handshakes over a real socket pair; the client's bytes after the version byte.
    use super::*;
    use std::error::Error as _;
    use tokio::net::UnixStream;

    /// Runs the handshake against a client that sends `sent` (then closes its side for writing),
    /// and returns the result and what the client received.
    fn handshake_with(sent: &[u8]) -> (Result<(String, u16), SocksError>, Vec<u8>) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (mut server, mut client) = UnixStream::pair().expect("socketpair");
            client.write_all(sent).await.expect("send");
            client.shutdown().await.expect("shutdown");
            let r = handshake(&mut server).await;
            drop(server);
            let mut got = vec![];
            client.read_to_end(&mut got).await.expect("read");
            (r, got)
        })
    }

    #[test]
    fn a_connect_request_by_name_is_read() {
        let (r, got) = handshake_with(&[1, 0, 5, 1, 0, 3, 5, b'a', b'.', b'c', b'o', b'm', 1, 187]);
        assert_eq!(r.expect("ok"), ("a.com".to_string(), 443));
        assert_eq!(got, [5, 0]);
    }

    #[test]
    fn a_client_that_hangs_up_midway_is_an_io_error_kept_as_source() {
        let (r, _) = handshake_with(&[1, 0, 5, 1]);
        let e = r.expect_err("cut short");
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("io source");
        assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(e.to_string(), format!("SOCKS handshake: {io}"));
    }

    #[test]
    fn refusals_say_what_was_refused_and_answer_the_client() {
        let (r, got) = handshake_with(&[1, 2]);
        assert!(matches!(r, Err(SocksError::NoUnauthenticatedMethod)), "{r:?}");
        assert_eq!(got, [5, 0xff]);
        let (r, got) = handshake_with(&[1, 0, 5, 2, 0, 1]);
        let e = r.expect_err("BIND");
        assert_eq!(e.to_string(), "unsupported SOCKS command 2");
        assert_eq!(got[2..4], [5, REP_CMD_UNSUPPORTED]);
        let (r, _) = handshake_with(&[1, 0, 5, 1, 0, 3, 1, 0xff]);
        let e = r.expect_err("not UTF-8");
        assert_eq!(e.to_string(), "domain is not UTF-8");
        assert!(e.source().is_some_and(|s| s.is::<std::string::FromUtf8Error>()));
    }
}
