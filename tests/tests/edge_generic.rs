//! The edge in front of any HTTP origin (generic mode), `Vary`, and a large object streamed
//! through the edge with bounded memory.

use std::io::Read;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use outpost_tests::cluster::{free_port, EdgeProc, OriginProc};
use outpost_tests::which;

/// A tiny origin that is not Outpost: answers by `Accept-Language` with `Vary`, and says
/// whether it was asked (`X-Hits`).
const PY_ORIGIN: &str = r#"
import http.server, sys
hits = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        lang = self.headers.get('Accept-Language', 'en')
        hits[self.path] = hits.get(self.path, 0) + 1
        body = ('hello in %s from %s (fetch %d)' % (lang, self.path, hits[self.path])).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Cache-Control', 'public, max-age=300')
        self.send_header('Vary', 'Accept-Language')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

struct Py(Child);
impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fronts_any_http_origin_with_vary() {
    if which("python3").is_none() {
        eprintln!("SKIPPED: python3 is needed for the stand-in HTTP origin");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _py = Py(Command::new("python3")
        .args(["-c", PY_ORIGIN, &port.to_string()])
        .spawn()
        .expect("spawn python"));
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "python origin did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let edge = EdgeProc::start_raw(
        dir.path(),
        "g1",
        &format!(
            "[generic]\naddress = \"127.0.0.1:{port}\"\n[cache]\ndisk_dir = \"{}\"\n",
            dir.path().join("g1-cache").display()
        ),
    );
    let c = edge.client(&["site.example"]);
    let get = |lang: &str| {
        let r = c
            .get(format!("http://site.example:{}/page?x=1", edge.addr.port()))
            .header("accept-language", lang)
            .send()
            .expect("request");
        assert_eq!(r.status(), 200);
        let cache = r.headers()["x-outpost-cache"]
            .to_str()
            .expect("ascii")
            .to_owned();
        (cache, r.text().expect("body"))
    };
    let (c1, b1) = get("en");
    assert_eq!(c1, "MISS");
    assert_eq!(b1, "hello in en from /page?x=1 (fetch 1)");
    let (c2, b2) = get("en");
    assert_eq!((c2.as_str(), b2.as_str()), ("HIT", b1.as_str()));
    // Another language is another variant: its own fetch, then its own hit.
    let (c3, b3) = get("fr");
    assert_eq!(c3, "MISS");
    assert_eq!(b3, "hello in fr from /page?x=1 (fetch 2)");
    assert_eq!(get("fr").1, b3);
    assert_eq!(get("en").1, b1);
}

/// Deterministic bytes for offset `i`.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

struct Pattern {
    pos: u64,
    len: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(self.pos + k as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A large object passes through the edge (and into its disk tier) while the edge's memory
/// grows by at most the memory tier's bound + 64 MiB. Size: `OUTPOST_BIG_MB` (default 256; the
/// acceptance run uses 1024).
#[test]
fn large_object_streams_with_bounded_memory() {
    let mb: u64 = std::env::var("OUTPOST_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let len = mb << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, token) = origin.must_login();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client");
    let r = http
        .put(format!("{storage}/public"))
        .header("x-auth-token", &token)
        .header("x-container-read", ".r:*")
        .send()
        .expect("put container");
    assert!(r.status().is_success());
    let body = reqwest::blocking::Body::sized(Pattern { pos: 0, len }, len);
    let r = http
        .put(format!("{storage}/public/big.bin"))
        .header("x-auth-token", &token)
        .body(body)
        .send()
        .expect("put object");
    assert_eq!(r.status(), 201);

    let memory_mib = 64;
    let edge = EdgeProc::start(
        dir.path(),
        "e1",
        origin.addr,
        &format!("cache.memory = \"{memory_mib} MiB\"\ncache.memory_object_max = \"1 MiB\"\ncache.disk = \"4 GiB\""),
    );
    let c = edge.client(&["public.demo.cdn.test"]);
    // What the process holds before the object passes (code, runtime, empty tiers): the bound
    // is on what streaming the object adds, not on the size of a debug build.
    let base = edge.peak_rss();
    for round in ["MISS", "HIT"] {
        let mut r = c
            .get(format!(
                "http://public.demo.cdn.test:{}/big.bin",
                edge.addr.port()
            ))
            .send()
            .expect("get");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-outpost-cache"], round);
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        loop {
            let n = r.read(&mut buf).expect("read body");
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate().step_by(4093) {
                assert_eq!(
                    *b,
                    byte_at(pos + k as u64),
                    "byte {} differs",
                    pos + k as u64
                );
            }
            pos += n as u64;
        }
        assert_eq!(pos, len, "{round}: short body");
    }
    let peak = edge.peak_rss();
    let bound = (memory_mib + 64) << 20;
    let grew = peak.saturating_sub(base);
    eprintln!(
        "edge peak RSS {} MiB for a {mb} MiB object, {} MiB at start: grew {} MiB (bound {} MiB)",
        peak >> 20,
        base >> 20,
        grew >> 20,
        bound >> 20
    );
    assert!(
        grew <= bound,
        "edge RSS grew {} MiB (peak {} MiB, {} MiB at start) over {} MiB",
        grew >> 20,
        peak >> 20,
        base >> 20,
        bound >> 20
    );
}
