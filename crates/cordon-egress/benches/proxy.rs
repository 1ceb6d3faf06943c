//! The egress proxy against direct connections on loopback, in one run:
//! throughput of a large download, added connect latency, 500 concurrent connections, memory.
//! `cargo bench -p cordon-egress --bench proxy`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

/// Upstream: reads an 8-byte length, sends that many bytes, closes.
fn upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    cordon_egress::server::deepen_backlog(&l);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut n = [0u8; 8];
                if s.read_exact(&mut n).is_err() {
                    return;
                }
                let mut left = u64::from_le_bytes(n);
                let buf = vec![7u8; 256 * 1024];
                while left > 0 {
                    let k = left.min(buf.len() as u64) as usize;
                    if s.write_all(&buf[..k]).is_err() {
                        return;
                    }
                    left -= k as u64;
                }
            });
        }
    });
    a
}

fn fetch(s: TcpStream, n: u64) -> u64 {
    try_fetch(s, n).expect("fetch")
}

fn try_fetch(mut s: TcpStream, n: u64) -> std::io::Result<u64> {
    s.write_all(&n.to_le_bytes())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            k => got += k as u64,
        }
    }
    Ok(got)
}

fn via_proxy(proxy: SocketAddr, up: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(proxy)?;
    s.set_nodelay(true)?;
    write!(s, "CONNECT {up} HTTP/1.1\r\nHost: {up}\r\n\r\n")?;
    let mut head = vec![];
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(std::io::Error::other("proxy closed"));
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other(String::from_utf8_lossy(&head).into_owned()));
    }
    Ok(s)
}

fn direct(up: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(up).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let up = upstream();
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy = l.local_addr().expect("addr");
    let policy = cordon_egress::Policy {
        allow: vec![cordon_policy::netspec::parse_allow(&up.to_string()).expect("allow")],
        resolve_override: vec![],
    };
    let h = cordon_egress::start(vec![(l, cordon_egress::Role::Proxy)], policy, Arc::new(|_| (0, String::new())))
        .expect("proxy");
    let rss0 = rss_kib("VmRSS:");

    // Throughput: 1 GiB, interleaved.
    let size: u64 = std::env::var("CORDON_BENCH_BYTES").ok().and_then(|s| s.parse().ok()).unwrap_or(1 << 30);
    let (mut d, mut p) = (vec![], vec![]);
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(fetch(direct(up), size), size);
        d.push(size as f64 / t.elapsed().as_secs_f64() / 1e6);
        let t = Instant::now();
        assert_eq!(fetch(via_proxy(proxy, up).expect("proxy"), size), size);
        p.push(size as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    let (md, mp) = (median(&mut d), median(&mut p));
    println!(
        "throughput, {} MiB download x3 (median MB/s): direct {md:.0}, through proxy {mp:.0} = {:.0}% of direct",
        size >> 20,
        mp / md * 100.0
    );

    // Latency: connect, ask for 1 byte, read it.
    let (mut ld, mut lp) = (vec![], vec![]);
    for _ in 0..500 {
        let t = Instant::now();
        fetch(direct(up), 1);
        ld.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        fetch(via_proxy(proxy, up).expect("proxy"), 1);
        lp.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (a, b) = (median(&mut ld), median(&mut lp));
    println!(
        "connect + first byte, 500 interleaved (median ms): direct {a:.3}, through proxy {b:.3}, added {:.3}",
        b - a
    );

    // 500 concurrent connections, each downloading 256 KiB.
    let t = Instant::now();
    let threads: Vec<_> = (0..500)
        .map(|_| {
            std::thread::spawn(move || -> Result<u64, String> {
                let s = via_proxy(proxy, up).map_err(|e| e.to_string())?;
                try_fetch(s, 256 * 1024).map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut errors = 0;
    for th in threads {
        match th.join() {
            Ok(Ok(n)) if n == 256 * 1024 => {}
            other => {
                if errors < 3 {
                    eprintln!("error: {:?}", other.map(|r| r.map(|n| format!("short read {n}"))));
                }
                errors += 1
            }
        }
    }
    println!("500 concurrent connections x 256 KiB: {errors} errors, {:.2} s", t.elapsed().as_secs_f64());
    println!(
        "memory: RSS {} MiB after start, {} MiB now, peak {} MiB (proxy and benchmark clients in one process)",
        rss0 / 1024,
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024
    );
    let decisions = h.finish();
    println!("decisions recorded: {}", decisions.len());
    assert_eq!(errors, 0);
}
