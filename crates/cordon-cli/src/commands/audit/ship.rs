//! `cordon audit ship` and `cordon run --server`: delivers the audit log to `cordon server`. The log
//! is the spool: nothing is removed from it, and a per-server cursor beside it (in `<log>.ship/`,
//! masked from sessions like the log itself) remembers the last record the server acknowledged.
//! A batch the server stored but whose answer was lost is sent again and counted once there.
//!
//! The client is a small blocking HTTP/1.1 exchange over `std::net::TcpStream` (no async runtime in
//! `cordon`): plain `http://` to a loopback address only, for now — a token must not cross a network
//! in clear. Reach a remote server through a local TLS proxy or tunnel.

use anyhow::{bail, Context as _, Result};
use clap::Args;
use cordon_audit::ship::{Batch, WireRecord};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Records per batch at most, and the byte budget of one batch's records (the server takes 8 MiB).
const BATCH_RECORDS: usize = 5000;
const BATCH_BYTES: usize = 4 << 20;

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// Ship the audit log to this `cordon server` (http://127.0.0.1:PORT; loopback only for now).
    #[arg(long, value_name = "URL", requires = "server_token_file")]
    pub server: Option<String>,
    /// A file holding the server's node token (`cordon server token create --role node`).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub server_token_file: Option<PathBuf>,
    /// The name this node ships under: the name of its node token (default: the host name).
    #[arg(long, value_name = "NAME", requires = "server")]
    pub server_node: Option<String>,
}

/// The follower's target (`cordon_session::shipping`), None without --server.
pub fn ship_to(a: &ServerArgs) -> Option<cordon_session::shipping::ShipTo> {
    let (server, token_file) = (a.server.clone()?, a.server_token_file.clone()?);
    Some(cordon_session::shipping::ShipTo { server, token_file, node: a.server_node.clone() })
}

#[derive(Args)]
pub struct ShipArgs {
    #[command(flatten)]
    pub to: ServerArgs,
    /// The audit log (default as for `cordon audit ls`).
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
    /// Records per batch (at most; a batch also stays under 4 MiB).
    #[arg(long, value_name = "N", default_value_t = BATCH_RECORDS, hide = true)]
    pub batch: usize,
    /// Keep shipping what is added to the log, every --interval, until SIGTERM/SIGINT/SIGHUP (or
    /// the end of --watch-pid); then ship once more and exit (0: everything delivered, 1: not; what
    /// was not delivered stays in the log). An unreachable server is said once and retried.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: how often to ship (e.g. 2s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = interval, requires = "follow")]
    pub interval: Duration,
    /// With --follow: stop (after a last shipping) when the process with this pid ends, and not
    /// before: stop signals are then ignored, so that the process's own last records are shipped.
    /// `cordon daemon --server` and `cordon gateway --server` watch themselves this way.
    #[arg(long, value_name = "PID", requires = "follow", value_parser = clap::value_parser!(i32).range(1..))]
    pub watch_pid: Option<i32>,
}

fn interval(s: &str) -> Result<Duration, String> {
    // Policy durations are whole seconds; an interval may be shorter.
    let d = match s.trim().strip_suffix("ms").map(str::parse::<u64>) {
        Some(Ok(ms)) => Duration::from_millis(ms),
        Some(Err(_)) => return Err(format!("{s}: not a number of milliseconds, e.g. 500ms")),
        None => cordon_policy::units::parse_duration(s)?,
    };
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!("{s}: give an interval from 100ms to 1h, e.g. 2s"));
    }
    Ok(d)
}

/// Where and as whom to ship, checked before anything runs.
pub struct Target {
    url: Url,
    token: String,
    node: String,
}

impl Target {
    /// None when no `--server` was given.
    pub fn from_args(a: &ServerArgs) -> Result<Option<Target>> {
        let (Some(server), Some(file)) = (&a.server, &a.server_token_file) else { return Ok(None) };
        let url = Url::parse(server)?;
        let token = read_token(file)?;
        if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
            bail!(
                "--server-token-file {}: does not hold a token (one line, as `cordon server token create` prints it)",
                file.display()
            );
        }
        let node = match &a.server_node {
            Some(n) => n.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| anyhow::anyhow!("this host has no name: give --server-node NAME"))?,
        };
        Ok(Some(Target { url, token, node }))
    }

    pub fn server(&self) -> &str {
        &self.url.text
    }

    /// The name this node ships under.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// One GET with the node's token: (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        self.url.exchange("GET", path, &self.token, b"")
    }
}

/// A token file's text: a regular file (a fifo would block the start of a daemon or gateway), at
/// most 4 KiB read (a token is 71 bytes; /dev/zero must not fill memory).
fn read_token(file: &Path) -> Result<String> {
    let cannot = || format!("--server-token-file {}: cannot read it", file.display());
    let meta = std::fs::metadata(file).with_context(cannot)?;
    if !meta.is_file() {
        bail!(
            "--server-token-file {}: not a regular file\n  hint: the file `cordon server token create` printed into",
            file.display()
        );
    }
    let mut text = String::new();
    std::fs::File::open(file).with_context(cannot)?.take(4096).read_to_string(&mut text).with_context(cannot)?;
    Ok(text.trim().to_string())
}

/// The most of an answer read (a server that never stops sending cannot fill this process).
const MAX_ANSWER: u64 = 64 << 20;

/// What one shipping did.
#[derive(Debug, Default)]
pub struct Shipped {
    pub batches: usize,
    pub accepted: u64,
    pub duplicates: u64,
    pub acked_seq: i64,
}

pub fn run(a: ShipArgs) -> Result<i32> {
    let Some(t) = Target::from_args(&a.to)? else { bail!("--server URL and --server-token-file FILE are required") };
    let db = super::path(&a.audit)?;
    if a.follow {
        let until = super::follow::Until { interval: a.interval, watch_pid: a.watch_pid };
        return super::follow::follow(&db, &t, a.batch.max(1), &until);
    }
    let s = ship(&db, &t, a.batch.max(1))?;
    println!(
        "shipped {} record(s) in {} batch(es) to {} as node `{}` ({} the server already held); it holds this log up to record {}",
        s.accepted,
        s.batches,
        t.url.text,
        t.node,
        s.duplicates,
        s.acked_seq
    );
    Ok(0)
}

/// One batch ready to send: its first and last record, and the request body.
struct Prepared {
    first: i64,
    last: i64,
    body: Vec<u8>,
}

/// Sends every record after the cursor, batch by batch, moving the cursor after each answer. The
/// next batch is read from the log and serialized (a thread of its own) while the server verifies
/// and stores the one before: the two sides' work overlaps instead of adding up.
pub fn ship(db: &Path, t: &Target, per_batch: usize) -> Result<Shipped> {
    let store = cordon_audit::Store::open_read_only(db)?;
    let key = cordon_audit::public_key(db).map_err(anyhow::Error::msg)?;
    let public_key: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let cursor_file = cursor_path(db, &t.url.text);
    let after = read_cursor(&cursor_file, &store)?;
    drop(store);
    let mut done = Shipped { acked_seq: after, ..Default::default() };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared>>(1);
    std::thread::scope(|scope| {
        scope.spawn(|| prepare_batches(db, &t.node, &public_key, after, per_batch, tx));
        // A refusal returns early: `rx` goes, and the preparing thread's next send fails and ends it.
        for p in rx {
            send_batch(t, p?, &cursor_file, &mut done)?;
        }
        Ok(done)
    })
}

/// Reads and serializes batch after batch from `after` on, until the log has no more records or
/// the receiver is gone.
fn prepare_batches(
    db: &Path,
    node: &str,
    public_key: &str,
    mut after: i64,
    per_batch: usize,
    tx: std::sync::mpsc::SyncSender<Result<Prepared>>,
) {
    let store = match cordon_audit::Store::open_read_only(db) {
        Ok(s) => s,
        Err(e) => return drop(tx.send(Err(e.into()))),
    };
    loop {
        let recs = match store.records_after(after, per_batch) {
            Ok(r) if r.is_empty() => return,
            Ok(r) => r,
            Err(e) => return drop(tx.send(Err(e.into()))),
        };
        let mut bytes = 0;
        let records: Vec<WireRecord> = recs
            .iter()
            .take_while(|r| {
                bytes += r.body.len() + 300;
                bytes <= BATCH_BYTES || bytes == r.body.len() + 300
            })
            .map(WireRecord::from_record)
            .collect();
        let (first, last) = (records[0].seq, records[records.len() - 1].seq);
        let body = serde_json::to_vec(&Batch { node: node.to_string(), public_key: public_key.to_string(), records })
            .map_err(anyhow::Error::from);
        let stop = body.is_err();
        if tx.send(body.map(|body| Prepared { first, last, body })).is_err() || stop {
            return;
        }
        after = last;
    }
}

/// The server answered a batch with a refusal (4xx): its judgement, not a failure to retry at once.
#[derive(Debug)]
pub struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Posts one batch; on a 200 that acknowledges it whole, moves the cursor.
fn send_batch(t: &Target, p: Prepared, cursor_file: &Path, done: &mut Shipped) -> Result<()> {
    let Prepared { first, last, body } = p;
    let (status, answer) = t.url.post("/api/v1/ingest", &t.token, &body)?;
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    if status != 200 {
        let why =
            v["error"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
        let text = format!("{} records {first}..{last} ({status}): {why}", t.url.text);
        // A 4xx is the server's judgement of the batch (sent again, refused again): typed, so that
        // a follower can tell it; anything else is the server failing (retried at once).
        if (400..500).contains(&status) {
            return Err(Refused(text.replacen(" records ", " refused records ", 1)).into());
        }
        bail!("{}", text.replacen(" records ", " failed on records ", 1));
    }
    let (Some(acked), Some(hash)) = (v["acked_seq"].as_i64(), v["acked_hash"].as_str()) else {
        bail!("{} answered 200 without acked_seq and acked_hash: not a cordon server?", t.url.text);
    };
    if acked < last {
        bail!("{} acknowledged records up to {acked} of a batch that ends at {last}", t.url.text);
    }
    write_cursor(cursor_file, &t.url.text, acked, hash)?;
    done.batches += 1;
    done.accepted += v["accepted"].as_u64().unwrap_or(0);
    done.duplicates += v["duplicates"].as_u64().unwrap_or(0);
    done.acked_seq = acked;
    Ok(())
}

/// `<log>.ship/<first 16 hex of sha256(server URL)>.json`.
fn cursor_path(db: &Path, server: &str) -> PathBuf {
    use sha2::Digest;
    let tag: String = sha2::Sha256::digest(server.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
    cordon_audit::files::ship_dir(db).join(format!("{tag}.json"))
}

/// The record after which to continue: the cursor's, if the log still holds that record as it was
/// acknowledged; else the start (the server keeps what it has and says what it holds).
fn read_cursor(file: &Path, store: &cordon_audit::Store) -> Result<i64> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => bail!("cannot read the shipping cursor {}: {e}", file.display()),
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let (Some(seq), Some(hash)) = (v["seq"].as_i64(), v["hash"].as_str()) else { return Ok(0) };
    let here = store.hash_at(seq)?.map(|h| h.iter().map(|b| format!("{b:02x}")).collect::<String>());
    Ok(if here.as_deref() == Some(hash) { seq } else { 0 })
}

fn write_cursor(file: &Path, server: &str, seq: i64, hash: &str) -> Result<()> {
    if let Some(d) = file.parent() {
        cordon_audit::files::private_dirs(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let text = serde_json::json!({"server": server, "seq": seq, "hash": hash}).to_string();
    cordon_audit::files::write_atomic(file, text.as_bytes())
        .with_context(|| format!("cannot write the shipping cursor {}", file.display()))
}

/// `http://HOST:PORT[/PREFIX]` with HOST a loopback address.
struct Url {
    text: String,
    addr: SocketAddr,
    host: String,
    prefix: String,
}

impl Url {
    fn parse(s: &str) -> Result<Url> {
        let text = s.trim_end_matches('/').to_string();
        let Some(rest) = text.strip_prefix("http://") else {
            if text.starts_with("https://") {
                bail!("--server {s}: https is not supported yet\n  hint: ship to a loopback address (http://127.0.0.1:PORT) and reach a remote server through a local TLS proxy or an SSH tunnel");
            }
            bail!("--server {s}: not a URL cordon ships to\n  hint: http://127.0.0.1:PORT");
        };
        let (host, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let addr = host
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| anyhow::anyhow!("--server {s}: `{host}` is not HOST:PORT that resolves"))?;
        if !addr.ip().is_loopback() {
            bail!("--server {s}: {} is not a loopback address, and cordon ships over plain HTTP: the token and the records would cross the network in clear\n  hint: reach the server through a local TLS proxy or an SSH tunnel (http://127.0.0.1:PORT)", addr.ip());
        }
        Ok(Url { host: host.to_string(), prefix: prefix.to_string(), addr, text })
    }

    /// One POST; (status, body).
    fn post(&self, path: &str, token: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        self.exchange("POST", path, token, body)
    }

    fn exchange(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let unreachable = |e: std::io::Error| anyhow::anyhow!("cannot reach {}: {e}", self.text);
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(unreachable)?;
        s.set_read_timeout(Some(Duration::from_secs(60))).map_err(unreachable)?;
        s.set_write_timeout(Some(Duration::from_secs(60))).map_err(unreachable)?;
        let head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.prefix,
            self.host,
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).map_err(unreachable)?;
        let mut raw = vec![];
        (&mut s).take(MAX_ANSWER).read_to_end(&mut raw).map_err(unreachable)?;
        parse_response(&raw).ok_or_else(|| anyhow::anyhow!("{} sent no HTTP answer (the connection closed)", self.text))
    }
}

/// Status and body of an HTTP/1.1 response read to its end (Content-Length or chunked).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status: u16 = head.strip_prefix("HTTP/1.")?.get(2..)?.split(' ').next()?.parse().ok()?;
    let mut body = &raw[end + 4..];
    let lower = head.to_ascii_lowercase();
    if lower.contains("\r\ntransfer-encoding: chunked") {
        let mut out = vec![];
        loop {
            let nl = body.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[..nl]).ok()?.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                return Some((status, out));
            }
            out.extend_from_slice(body.get(nl + 2..nl + 2 + size)?);
            body = body.get(nl + 4 + size..)?;
        }
    }
    if let Some(n) =
        lower.split("\r\n").find_map(|l| l.strip_prefix("content-length:")).and_then(|n| n.trim().parse::<usize>().ok())
    {
        body = body.get(..n)?;
    }
    Some((status, body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_by_length_or_chunks_and_urls_stay_on_loopback() {
        let r = parse_response(b"HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\n{}junk").expect("parses");
        assert_eq!(r, (409, b"{}".to_vec()));
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        assert_eq!(r, Some((200, b"abcde".to_vec())));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None, "cut short");
        assert!(Url::parse("http://127.0.0.1:1/").is_ok());
        let e = |u: &str| Url::parse(u).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e("https://127.0.0.1:1").contains("https is not supported yet"));
        assert!(e("http://192.0.2.1:80").contains("not a loopback address"));
        assert!(e("ftp://x").contains("not a URL"));
    }
}
