//! Slice caching of large objects through the real edge: a cold seek pulls only the slices it
//! touches (counted at the origin), concurrent viewers share slice fills, every range form is
//! right cold and warm on a 1 GiB object, an object that changes mid-stream is never stitched
//! from two versions, and memory stays bounded while clients stream different large objects.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use outpost_tests::cluster::{EdgeProc, OriginProc};
use reqwest::blocking::{Client, Response};

const HOST: &str = "public.demo.cdn.test";
const MIB: u64 = 1 << 20;
const SLICE: u64 = MIB;

/// Byte `i` of test object number `seed`: computable anywhere, so 1 GiB need not be held.
fn byte_at(seed: u64, i: u64) -> u8 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x >> 56) as u8 ^ (i as u8)
}

fn bytes_of(seed: u64, range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(|i| byte_at(seed, i)).collect()
}

/// A reader producing object `seed` of `len` bytes.
struct Gen {
    seed: u64,
    pos: u64,
    len: u64,
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(self.seed, self.pos + k as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

struct Setup {
    dir: tempfile::TempDir,
    origin: OriginProc,
    storage: String,
    token: String,
    http: Client,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, token) = origin.must_login();
    let http = Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let s = Setup {
        dir,
        origin,
        storage,
        token,
        http,
    };
    let r = s
        .http
        .put(format!("{}/public", s.storage))
        .header("x-auth-token", &s.token)
        .header("x-container-read", ".r:*")
        .send()
        .expect("put container");
    assert!(r.status().is_success());
    s
}

impl Setup {
    fn put(&self, name: &str, seed: u64, len: u64) -> String {
        let r = self
            .http
            .put(format!("{}/public/{name}", self.storage))
            .header("x-auth-token", &self.token)
            .header("content-type", "video/mp4")
            .body(reqwest::blocking::Body::sized(
                Gen { seed, pos: 0, len },
                len,
            ))
            .send()
            .expect("put object");
        assert_eq!(r.status(), 201, "PUT {name}");
        r.headers()["etag"].to_str().expect("etag").to_owned()
    }

    fn edge(&self, name: &str, extra: &str) -> EdgeProc {
        EdgeProc::start(self.dir.path(), name, self.origin.addr, extra)
    }
}

fn get(client: &Client, edge: &EdgeProc, name: &str, headers: &[(&str, &str)]) -> Response {
    let mut rb = client.get(format!("http://{HOST}:{}/{name}", edge.addr.port()));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().expect("request")
}

/// Checks a single-range answer against object `seed`.
fn must_range(r: Response, seed: u64, len: u64, start: u64, end: u64) {
    assert_eq!(r.status(), 206, "bytes {start}-{}", end - 1);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes {start}-{}/{len}", end - 1).as_str()
    );
    let body = r.bytes().expect("body");
    assert_eq!(body.len() as u64, end - start);
    assert!(
        body[..] == bytes_of(seed, start..end)[..],
        "wrong bytes in {start}-{}",
        end - 1
    );
}

/// The origin bytes a request pulled: runs `f`, returns the origin's GET body bytes delta.
fn pulled(origin: &OriginProc, f: impl FnOnce()) -> u64 {
    let before = origin.must_count_get_bytes();
    f();
    origin.must_count_get_bytes() - before
}

#[test]
fn cold_seeks_pull_only_the_slices_they_touch() {
    let s = setup();
    let len = 3 * MIB + MIB / 2; // 3.5 slices
    s.put("clip.mp4", 7, len);
    let edge = s.edge("e1", "");
    let c = edge.client(&[HOST]);

    // A cold seek into slice 2: exactly that slice comes from the origin.
    let start = 2 * MIB + 123_456;
    let n = pulled(&s.origin, || {
        let r = get(
            &c,
            &edge,
            "clip.mp4",
            &[("range", &format!("bytes={start}-{}", start + 99))],
        );
        assert_eq!(r.headers()["x-outpost-cache"], "MISS");
        must_range(r, 7, len, start, start + 100);
    });
    assert_eq!(n, SLICE, "a cold seek pulled {n} bytes, one slice expected");

    // A range across slices 2 and 3 (the short last slice): only slice 3 is new.
    let n = pulled(&s.origin, || {
        let r = get(
            &c,
            &edge,
            "clip.mp4",
            &[("range", &format!("bytes={}-", 3 * MIB - 10))],
        );
        must_range(r, 7, len, 3 * MIB - 10, len);
    });
    assert_eq!(n, MIB / 2, "the last half slice");

    // The whole object: slices 0 and 1 are fetched, 2 and 3 come from the cache.
    let n = pulled(&s.origin, || {
        let r = get(&c, &edge, "clip.mp4", &[]);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], len.to_string().as_str());
        assert_eq!(r.headers()["accept-ranges"], "bytes");
        let body = r.bytes().expect("body");
        assert!(body[..] == bytes_of(7, 0..len)[..], "whole object bytes");
    });
    assert_eq!(n, 2 * SLICE);

    // Warm: every range form, nothing more from the origin.
    let n = pulled(&s.origin, || {
        must_range(
            get(&c, &edge, "clip.mp4", &[("range", "bytes=0-0")]),
            7,
            len,
            0,
            1,
        );
        must_range(
            get(&c, &edge, "clip.mp4", &[("range", "bytes=-500")]),
            7,
            len,
            len - 500,
            len,
        );
        must_range(
            get(
                &c,
                &edge,
                "clip.mp4",
                &[("range", &format!("bytes={}-{}", MIB - 5, 2 * MIB + 5))],
            ),
            7,
            len,
            MIB - 5,
            2 * MIB + 6,
        );
        let r = get(&c, &edge, "clip.mp4", &[("range", "bytes=0-0")]);
        assert_eq!(r.headers()["x-outpost-cache"], "HIT");
        assert_multipart(
            get(
                &c,
                &edge,
                "clip.mp4",
                &[("range", "bytes=0-9,3000000-3000009,-5")],
            ),
            7,
            len,
            &[(0, 10), (3_000_000, 3_000_010), (len - 5, len)],
        );
        let r = get(
            &c,
            &edge,
            "clip.mp4",
            &[("range", &format!("bytes={len}-"))],
        );
        assert_eq!(r.status(), 416);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes */{len}").as_str()
        );
        let r = get(&c, &edge, "clip.mp4", &[("range", "bytes=x-y")]);
        assert_eq!(r.status(), 200, "an invalid Range header is ignored");
        assert_eq!(r.bytes().expect("body").len() as u64, len);
        let etag = get(&c, &edge, "clip.mp4", &[("range", "bytes=0-0")]).headers()["etag"]
            .to_str()
            .expect("etag")
            .to_owned();
        let r = get(
            &c,
            &edge,
            "clip.mp4",
            &[("range", "bytes=5-9"), ("if-range", &etag)],
        );
        must_range(r, 7, len, 5, 10);
        let r = get(
            &c,
            &edge,
            "clip.mp4",
            &[("range", "bytes=5-9"), ("if-range", "\"other\"")],
        );
        assert_eq!(
            r.status(),
            200,
            "If-Range with another ETag gives the whole object"
        );
        assert_eq!(r.bytes().expect("body").len() as u64, len);
        let r = get(&c, &edge, "clip.mp4", &[("if-none-match", &etag)]);
        assert_eq!(r.status(), 304);
        let r = c
            .head(format!("http://{HOST}:{}/clip.mp4", edge.addr.port()))
            .header("range", "bytes=10-19")
            .send()
            .expect("head");
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["content-length"], "10");
    });
    assert_eq!(n, 0, "warm ranges pulled {n} bytes from the origin");

    // Too many ranges: the whole object, not 65 parts.
    let many: Vec<String> = (0..65)
        .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
        .collect();
    let r = get(
        &c,
        &edge,
        "clip.mp4",
        &[("range", &format!("bytes={}", many.join(",")))],
    );
    assert_eq!(r.status(), 200, "more than max_ranges ranges");
}

/// Every range form on a cold edge of its own: the right bytes, and exactly the slices the form
/// touches pulled from the origin (a form that needs the size first — suffix, invalid, HEAD —
/// costs a one-byte probe).
#[test]
fn every_range_form_cold_pulls_only_its_slices() {
    let s = setup();
    let len = 3 * MIB + MIB / 2;
    // Swift's bare ETag from the PUT; the edge serves (and compares) the quoted RFC 9110 form.
    let etag = format!("\"{}\"", s.put("clip.mp4", 8, len).trim_matches('"'));
    let half = MIB / 2;
    let mut n_edge = 0;
    let mut cold = |what: &str, expect_pulled: u64, f: &dyn Fn(&Client, &EdgeProc)| {
        n_edge += 1;
        let edge = s.edge(&format!("c{n_edge}"), "");
        let c = edge.client(&[HOST]);
        let n = pulled(&s.origin, || f(&c, &edge));
        assert_eq!(n, expect_pulled, "{what}: pulled {n} bytes from the origin");
    };
    let at = 2 * MIB + 123_456;
    cold("single", MIB, &|c, e| {
        let r = get(
            c,
            e,
            "clip.mp4",
            &[("range", &format!("bytes={at}-{}", at + 99))],
        );
        must_range(r, 8, len, at, at + 100);
    });
    cold("open", MIB + half, &|c, e| {
        let r = get(
            c,
            e,
            "clip.mp4",
            &[("range", &format!("bytes={}-", 3 * MIB - 10))],
        );
        must_range(r, 8, len, 3 * MIB - 10, len);
    });
    cold("suffix", half + 1, &|c, e| {
        must_range(
            get(c, e, "clip.mp4", &[("range", "bytes=-500")]),
            8,
            len,
            len - 500,
            len,
        );
    });
    cold("multi", 2 * MIB + half, &|c, e| {
        let r = get(
            c,
            e,
            "clip.mp4",
            &[("range", "bytes=0-9,3000000-3000009,-5")],
        );
        assert_multipart(
            r,
            8,
            len,
            &[(0, 10), (3_000_000, 3_000_010), (len - 5, len)],
        );
    });
    cold("unsatisfiable", half, &|c, e| {
        let r = get(c, e, "clip.mp4", &[("range", &format!("bytes={len}-"))]);
        assert_eq!(r.status(), 416);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes */{len}").as_str()
        );
    });
    cold("invalid", len + 1, &|c, e| {
        let r = get(c, e, "clip.mp4", &[("range", "bytes=x-y")]);
        assert_eq!(r.status(), 200);
        assert!(r.bytes().expect("body")[..] == bytes_of(8, 0..len)[..]);
    });
    cold("If-Range match", MIB, &|c, e| {
        let r = get(
            c,
            e,
            "clip.mp4",
            &[("range", "bytes=5-9"), ("if-range", &etag)],
        );
        must_range(r, 8, len, 5, 10);
    });
    cold("If-Range mismatch", len, &|c, e| {
        let r = get(
            c,
            e,
            "clip.mp4",
            &[("range", "bytes=5-9"), ("if-range", "\"old\"")],
        );
        assert_eq!(r.status(), 200);
        assert!(r.bytes().expect("body")[..] == bytes_of(8, 0..len)[..]);
    });
    cold("HEAD with a range", 1, &|c, e| {
        let r = c
            .head(format!("http://{HOST}:{}/clip.mp4", e.addr.port()))
            .header("range", "bytes=10-19")
            .send()
            .expect("head");
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["content-length"], "10");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes 10-19/{len}").as_str()
        );
    });
    cold("whole", len, &|c, e| {
        let r = get(c, e, "clip.mp4", &[]);
        assert_eq!(r.status(), 200);
        assert!(r.bytes().expect("body")[..] == bytes_of(8, 0..len)[..]);
    });
}

/// Checks a `multipart/byteranges` body: one part per range, in order, with its headers.
fn assert_multipart(r: Response, seed: u64, len: u64, parts: &[(u64, u64)]) {
    assert_eq!(r.status(), 206);
    let ct = r.headers()["content-type"].to_str().expect("ct").to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart content type")
        .to_owned();
    let declared: usize = r.headers()["content-length"]
        .to_str()
        .expect("cl")
        .parse()
        .expect("number");
    let body = r.bytes().expect("body").to_vec();
    assert_eq!(body.len(), declared, "Content-Length of the multipart body");
    let mut rest = &body[..];
    for &(a, b) in parts {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: video/mp4\r\nContent-Range: bytes {a}-{}/{len}\r\n\r\n",
            b - 1
        );
        assert!(
            rest.starts_with(head.as_bytes()),
            "part header for {a}-{}",
            b - 1
        );
        rest = &rest[head.len()..];
        let n = (b - a) as usize;
        assert!(rest[..n] == bytes_of(seed, a..b)[..], "part {a} bytes");
        rest = &rest[n..];
    }
    assert_eq!(rest, format!("\r\n--{boundary}--\r\n").as_bytes());
}

#[test]
fn one_gib_object_seeks_and_shared_fills() {
    let s = setup();
    let len = 1024 * MIB;
    s.put("movie.mp4", 11, len);
    let edge = s.edge("e1", "");
    let c = edge.client(&[HOST]);

    // Cold seek to the middle, slice-aligned: one slice from the origin.
    let mid = 512 * MIB;
    let n = pulled(&s.origin, || {
        must_range(
            get(
                &c,
                &edge,
                "movie.mp4",
                &[("range", &format!("bytes={mid}-{}", mid + MIB - 1))],
            ),
            11,
            len,
            mid,
            mid + MIB,
        );
    });
    assert_eq!(n, SLICE, "cold seek into 1 GiB");

    // Eight viewers seek to the same cold spot at once: each slice is fetched once.
    let at = 700 * MIB + 1000;
    let n = pulled(&s.origin, || {
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let c = edge.client(&[HOST]);
                    must_range(
                        get(
                            &c,
                            &edge,
                            "movie.mp4",
                            &[("range", &format!("bytes={at}-{}", at + 2 * MIB))],
                        ),
                        11,
                        len,
                        at,
                        at + 2 * MIB + 1,
                    );
                });
            }
        });
    });
    assert_eq!(
        n,
        3 * SLICE,
        "8 concurrent viewers of 3 cold slices pulled {n} bytes"
    );

    // The end (open range) and a suffix of the tail: one slice.
    let n = pulled(&s.origin, || {
        must_range(
            get(
                &c,
                &edge,
                "movie.mp4",
                &[("range", &format!("bytes={}-", len - 100))],
            ),
            11,
            len,
            len - 100,
            len,
        );
        must_range(
            get(&c, &edge, "movie.mp4", &[("range", "bytes=-1000")]),
            11,
            len,
            len - 1000,
            len,
        );
    });
    assert_eq!(n, SLICE);

    // A multi-range across far-apart cold slices: exactly those two slices.
    let n = pulled(&s.origin, || {
        assert_multipart(
            get(
                &c,
                &edge,
                "movie.mp4",
                &[(
                    "range",
                    &format!("bytes=5-14,{}-{}", 900 * MIB, 900 * MIB + 9),
                )],
            ),
            11,
            len,
            &[(5, 15), (900 * MIB, 900 * MIB + 10)],
        );
    });
    assert_eq!(n, 2 * SLICE);

    // Unsatisfiable, and (as HEAD, to spare moving 1 GiB) If-Range and invalid syntax.
    let n = pulled(&s.origin, || {
        let r = get(
            &c,
            &edge,
            "movie.mp4",
            &[("range", &format!("bytes={len}-"))],
        );
        assert_eq!(r.status(), 416);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes */{len}").as_str()
        );
        let head = |h: &[(&str, &str)]| {
            let mut rb = c.head(format!("http://{HOST}:{}/movie.mp4", edge.addr.port()));
            for (k, v) in h {
                rb = rb.header(*k, *v);
            }
            rb.send().expect("head")
        };
        let etag = head(&[]).headers()["etag"]
            .to_str()
            .expect("etag")
            .to_owned();
        let r = head(&[("range", "bytes=5-9"), ("if-range", &etag)]);
        assert_eq!(r.status(), 206);
        let r = head(&[("range", "bytes=5-9"), ("if-range", "\"old\"")]);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], len.to_string().as_str());
        let r = head(&[("range", "bytes=oops")]);
        assert_eq!(r.status(), 200);
    });
    assert_eq!(n, 0, "answered from what the edge knows");

    // Warm: the middle again, no origin traffic, and a HEAD answers from what the edge knows.
    let n = pulled(&s.origin, || {
        let r = get(
            &c,
            &edge,
            "movie.mp4",
            &[("range", &format!("bytes={mid}-{}", mid + 9))],
        );
        assert_eq!(r.headers()["x-outpost-cache"], "HIT");
        must_range(r, 11, len, mid, mid + 10);
        let r = c
            .head(format!("http://{HOST}:{}/movie.mp4", edge.addr.port()))
            .send()
            .expect("head");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], len.to_string().as_str());
    });
    assert_eq!(n, 0);
}

/// Reads an HTTP/1.1 response head from a raw socket; returns (head, leftover body bytes).
fn read_head(sock: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).expect("read head");
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).into_owned();
            return (head, buf[p + 4..].to_vec());
        }
    }
}

#[test]
fn an_object_changed_mid_stream_is_never_stitched() {
    let s = setup();
    let len = 48 * MIB;
    let old_etag = s.put("live.mp4", 21, len);
    let edge = s.edge("e1", "");
    let c = edge.client(&[HOST]);
    // The edge learns the object is large (a small range), so the full GET takes the slice path.
    must_range(
        get(&c, &edge, "live.mp4", &[("range", "bytes=0-9")]),
        21,
        len,
        0,
        10,
    );

    // A slow viewer: asks for everything, reads 1 MiB, then stops reading.
    let mut sock = TcpStream::connect(edge.addr).expect("connect");
    write!(
        sock,
        "GET /live.mp4 HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let (head, mut body) = read_head(&mut sock);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {len}")),
        "{head}"
    );
    let mut chunk = vec![0u8; 64 * 1024];
    while (body.len() as u64) < MIB {
        let n = sock.read(&mut chunk).expect("read");
        assert!(n > 0);
        body.extend_from_slice(&chunk[..n]);
    }

    // The object is replaced meanwhile (same size, other bytes); the edge hears of it.
    let new_etag = s.put("live.mp4", 22, len);
    assert_ne!(old_etag, new_etag);
    let start = Instant::now();
    loop {
        let r = get(&c, &edge, "live.mp4", &[("range", "bytes=0-9")]);
        let etag = r.headers()["etag"]
            .to_str()
            .expect("etag")
            .trim_matches('"')
            .to_owned();
        if etag == new_etag.trim_matches('"') {
            must_range(r, 22, len, 0, 10);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the edge never saw the new version"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The slow viewer reads on: it gets a prefix of the old version and then the connection
    // ends early, never bytes of the new version.
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    loop {
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let got = body.len() as u64;
    assert!(
        got < len,
        "the whole {len} bytes were sent although the object changed"
    );
    assert!(
        body[..] == bytes_of(21, 0..got)[..],
        "the response mixed two versions (first {got} bytes checked)"
    );

    // New viewers get the new version, whole.
    let r = get(&c, &edge, "live.mp4", &[]);
    assert_eq!(r.status(), 200);
    let whole = r.bytes().expect("body");
    assert!(
        whole[..] == bytes_of(22, 0..len)[..],
        "new version after the change"
    );
}

#[test]
fn memory_stays_bounded_while_many_clients_stream_large_objects() {
    let s = setup();
    let len = 32 * MIB;
    for i in 0..6u64 {
        s.put(&format!("m{i}.mp4"), 100 + i, len);
    }
    let edge = s.edge("e1", "cache.memory = \"8 MiB\"\n");
    let c = edge.client(&[HOST]);
    for i in 0..6u64 {
        must_range(
            get(&c, &edge, &format!("m{i}.mp4"), &[("range", "bytes=0-0")]),
            100 + i,
            len,
            0,
            1,
        );
    }
    let baseline = edge.peak_rss();
    std::thread::scope(|scope| {
        for i in 0..6u64 {
            let edge = &edge;
            scope.spawn(move || {
                let c = edge.client(&[HOST]);
                let mut r = get(&c, edge, &format!("m{i}.mp4"), &[]);
                assert_eq!(r.status(), 200);
                // Checked as it streams, never held whole.
                let mut pos = 0u64;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = r.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    assert!(
                        buf[..n] == bytes_of(100 + i, pos..pos + n as u64)[..],
                        "m{i} at {pos}"
                    );
                    pos += n as u64;
                }
                assert_eq!(pos, len);
            });
        }
    });
    let peak = edge.peak_rss();
    eprintln!(
        "edge RSS: {} MiB before, {} MiB peak after streaming 6 x 32 MiB",
        baseline >> 20,
        peak >> 20
    );
    assert!(
        peak < baseline + 96 * MIB,
        "edge peak RSS grew from {} MiB to {} MiB streaming 192 MiB",
        baseline >> 20,
        peak >> 20
    );
}
