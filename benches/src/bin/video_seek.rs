//! Cold-seek bench: time to first byte of 1 MiB ranges at random places in a large object,
//! through the edge (cold: slice fetched from the origin; warm: from the cache) side by side
//! with the same Range sent straight to the origin, and the bytes the origin sent per edge seek.
//!
//!   cargo run --release -p outpost-benches --bin video_seek -- [size_mib] [seeks]
//!
//! Defaults: a 1024 MiB object, 40 seeks. Uses `$OUTPOST_BIN` or the `outpost` binary of the
//! same profile. Everything it starts is stopped when it ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use outpost_tests::cluster::{EdgeProc, OriginProc};

const MIB: u64 = 1 << 20;
const HOST: &str = "public.demo.cdn.test";

/// A reader producing `len` pseudo-random bytes without holding them.
struct Gen {
    x: u64,
    left: u64,
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.left.min(buf.len() as u64) as usize;
        for b in &mut buf[..n] {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = self.x as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Sends one GET with `headers`, returns (time to first body byte, body bytes read).
fn timed_get(addr: SocketAddr, path: &str, headers: &str) -> (Duration, u64) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let start = Instant::now();
    write!(
        s,
        "GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let mut ttfb = None;
    let mut body = 0u64;
    loop {
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        if ttfb.is_none() {
            head.extend_from_slice(&buf[..n]);
            if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let status = String::from_utf8_lossy(&head[..12]).into_owned();
                assert!(status.contains(" 206"), "{path}: {status}");
                let rest = head.len() - (p + 4);
                if rest > 0 {
                    ttfb = Some(start.elapsed());
                    body += rest as u64;
                }
            }
        } else {
            body += n as u64;
        }
    }
    (ttfb.expect("a body byte"), body)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let size = args.first().copied().unwrap_or(1024) * MIB;
    let seeks = args.get(1).copied().unwrap_or(40);

    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, token) = origin.must_login();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client");
    let ok = |r: reqwest::blocking::Response| assert!(r.status().is_success(), "{}", r.status());
    ok(http
        .put(format!("{storage}/public"))
        .header("x-auth-token", &token)
        .header("x-container-read", ".r:*")
        .send()
        .expect("container"));
    eprintln!("uploading {} MiB...", size / MIB);
    ok(http
        .put(format!("{storage}/public/movie.mp4"))
        .header("x-auth-token", &token)
        .body(reqwest::blocking::Body::sized(
            Gen {
                x: 0x1234_5678_9abc_def1,
                left: size,
            },
            size,
        ))
        .send()
        .expect("upload"));
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");

    // Seek targets: distinct slices spread over the object, unaligned.
    let slices = size / MIB;
    let offsets: Vec<u64> = (0..seeks)
        .map(|i| ((i * 7919 + 13) % (slices - 1)) * MIB + 4321)
        .collect();
    let storage_path = storage
        .split_once("//")
        .and_then(|(_, r)| r.split_once('/'))
        .map(|(_, p)| format!("/{p}"))
        .expect("storage path");

    let mut direct = Vec::new();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut pulled = Vec::new();
    for &at in &offsets {
        let range = format!("Range: bytes={at}-{}\r\n", at + MIB - 1);
        // Straight to the origin.
        let (t, n) = timed_get(
            origin.addr,
            &format!("{storage_path}/public/movie.mp4"),
            &format!("Host: {}\r\nX-Auth-Token: {token}\r\n{range}", origin.addr),
        );
        assert_eq!(n, MIB);
        direct.push(t);
        // Through the edge, cold, counting what the origin sends for it.
        let before = origin.must_count_get_bytes();
        let (t, n) = timed_get(edge.addr, "/movie.mp4", &format!("Host: {HOST}\r\n{range}"));
        assert_eq!(n, MIB);
        cold.push(t);
        // Warm: the same seek again.
        let (t, n) = timed_get(edge.addr, "/movie.mp4", &format!("Host: {HOST}\r\n{range}"));
        assert_eq!(n, MIB);
        warm.push(t);
        pulled.push(origin.must_count_get_bytes() - before);
    }
    let avg_pulled = pulled.iter().sum::<u64>() as f64 / pulled.len() as f64 / MIB as f64;
    println!(
        "cold seeks into a {} MiB object ({} seeks of 1 MiB, unaligned: each spans 2 slices)",
        size / MIB,
        seeks
    );
    println!("{:<28} {:>10} {:>10}", "path", "p50 ms", "p99 ms");
    for (name, v) in [
        ("origin direct (Range)", &mut direct),
        ("edge cold (slices)", &mut cold),
        ("edge warm (cached slices)", &mut warm),
    ] {
        println!("{name:<28} {:>10.2} {:>10.2}", pct(v, 0.5), pct(v, 0.99));
    }
    println!(
        "origin bytes per cold 1 MiB seek: {avg_pulled:.2} MiB (whole-object fetch would be {} MiB)",
        size / MIB
    );
    println!(
        "edge cold / origin direct TTFB (p50): {:.2}x",
        pct(&mut cold, 0.5) / pct(&mut direct, 0.5)
    );
}
