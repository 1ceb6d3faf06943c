//! Reading an HTTP request head from a client, with limits: at most 64 KiB, within 10 seconds.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

pub const MAX_HEAD: usize = 64 * 1024;
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// Bytes read after the head (the start of a body or tunnel data).
    pub rest: Vec<u8>,
}

#[derive(Debug, PartialEq)]
pub enum HeadError {
    TooLarge,
    Timeout,
    Closed,
    Malformed(String),
}

pub async fn read_head<R: AsyncRead + Unpin>(r: &mut R, first: Vec<u8>) -> Result<Head, HeadError> {
    let mut buf = first;
    let fut = async {
        loop {
            if let Some(end) = find_end(&buf) {
                return Ok(end);
            }
            if buf.len() > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            let mut chunk = [0u8; 4096];
            let n = r.read(&mut chunk).await.map_err(|_| HeadError::Closed)?;
            if n == 0 {
                return Err(HeadError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let end = tokio::time::timeout(HEAD_TIMEOUT, fut).await.map_err(|_| HeadError::Timeout)??;
    parse(&buf[..end], buf[end..].to_vec())
}

fn find_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

pub fn parse(head: &[u8], rest: Vec<u8>) -> Result<Head, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed("request head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() && v.starts_with("HTTP/1.") => (m, t, v),
        _ => {
            return Err(HeadError::Malformed(format!(
                "bad request line `{}`",
                line.chars().take(80).collect::<String>()
            )))
        }
    };
    let mut headers = vec![];
    for l in lines.filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once(':').ok_or_else(|| {
            HeadError::Malformed(format!("bad header line `{}`", l.chars().take(80).collect::<String>()))
        })?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Head { method: method.to_string(), target: target.to_string(), version: version.to_string(), headers, rest })
}

/// `host:port` (with IPv6 in brackets) and a default port.
pub fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    if let Some(r) = s.strip_prefix('[') {
        let (h, after) = r.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_string(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((s.to_string(), default)),
    }
    .filter(|(h, p)| !h.is_empty() && *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses() {
        let h = parse(b"CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n", vec![]).expect("ok");
        assert_eq!((h.method.as_str(), h.target.as_str()), ("CONNECT", "a.com:443"));
        assert!(parse(b"CONNECT\r\n\r\n", vec![]).is_err());
        assert!(parse(b"GET / HTTP/1.1\r\nbad header\r\n\r\n", vec![]).is_err());
        assert_eq!(split_host_port("[::1]:80", 1), Some(("::1".into(), 80)));
        assert_eq!(split_host_port("a.com", 443), Some(("a.com".into(), 443)));
        assert_eq!(split_host_port("a.com:0", 443), None);
    }
}
