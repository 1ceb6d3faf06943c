//! SOCKS5 (RFC 1928): no authentication, CONNECT only.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const REP_OK: u8 = 0x00;
pub const REP_FAILURE: u8 = 0x01;
pub const REP_NOT_ALLOWED: u8 = 0x02;
pub const REP_HOST_UNREACHABLE: u8 = 0x04;
pub const REP_CMD_UNSUPPORTED: u8 = 0x07;
pub const REP_ATYP_UNSUPPORTED: u8 = 0x08;

/// Negotiates and reads the CONNECT request. The first byte (version 5) was already read.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<(String, u16), String> {
    let fut = async {
        let n = s.read_u8().await.map_err(|e| e.to_string())?;
        let mut methods = vec![0u8; n as usize];
        s.read_exact(&mut methods).await.map_err(|e| e.to_string())?;
        if !methods.contains(&0) {
            let _ = s.write_all(&[5, 0xff]).await;
            return Err("client offers no unauthenticated method".to_string());
        }
        s.write_all(&[5, 0]).await.map_err(|e| e.to_string())?;
        let mut req = [0u8; 4];
        s.read_exact(&mut req).await.map_err(|e| e.to_string())?;
        if req[0] != 5 {
            return Err("bad SOCKS version in request".into());
        }
        if req[1] != 1 {
            let _ = reply(s, REP_CMD_UNSUPPORTED).await;
            return Err(format!("unsupported SOCKS command {}", req[1]));
        }
        let host = match req[3] {
            1 => {
                let mut a = [0u8; 4];
                s.read_exact(&mut a).await.map_err(|e| e.to_string())?;
                std::net::Ipv4Addr::from(a).to_string()
            }
            3 => {
                let l = s.read_u8().await.map_err(|e| e.to_string())?;
                let mut d = vec![0u8; l as usize];
                s.read_exact(&mut d).await.map_err(|e| e.to_string())?;
                String::from_utf8(d).map_err(|_| "domain is not UTF-8".to_string())?
            }
            4 => {
                let mut a = [0u8; 16];
                s.read_exact(&mut a).await.map_err(|e| e.to_string())?;
                std::net::Ipv6Addr::from(a).to_string()
            }
            t => {
                let _ = reply(s, REP_ATYP_UNSUPPORTED).await;
                return Err(format!("unsupported address type {t}"));
            }
        };
        let port = s.read_u16().await.map_err(|e| e.to_string())?;
        Ok((host, port))
    };
    tokio::time::timeout(Duration::from_secs(10), fut).await.map_err(|_| "SOCKS handshake timed out".to_string())?
}

pub async fn reply<S: AsyncWrite + Unpin>(s: &mut S, code: u8) -> std::io::Result<()> {
    s.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}
