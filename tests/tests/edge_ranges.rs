//! Byte ranges through the edge, cold (MISS) and warm (HIT), against known bytes: single, open,
//! suffix, multi-range (`multipart/byteranges`), `If-Range`, unsatisfiable (416) and invalid
//! (200) headers.

use outpost_tests::cluster::{EdgeProc, OriginProc};
use reqwest::blocking::{Client, Response};

const HOST: &str = "public.demo.cdn.test";

fn byte_at(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

struct Setup {
    _dir: tempfile::TempDir,
    _origin: OriginProc,
    edge: EdgeProc,
    client: Client,
    data: Vec<u8>,
    etag: String,
    last_modified: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, token) = origin.must_login();
    let http = Client::new();
    let put = |path: &str, headers: &[(&str, &str)], body: Vec<u8>| {
        let mut rb = http
            .put(format!("{storage}{path}"))
            .header("x-auth-token", &token)
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().expect("put");
        assert!(r.status().is_success());
        r
    };
    put("/public", &[("x-container-read", ".r:*")], vec![]);
    let data: Vec<u8> = (0..3_500_000).map(byte_at).collect();
    let r = put(
        "/public/video.mp4",
        &[("content-type", "video/mp4")],
        data.clone(),
    );
    let etag = r.headers()["etag"]
        .to_str()
        .expect("ascii")
        .trim_matches('"')
        .to_owned();
    let last_modified = r.headers()["last-modified"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let client = edge.client(&[HOST]);
    Setup {
        _dir: dir,
        _origin: origin,
        edge,
        client,
        data,
        etag,
        last_modified,
    }
}

impl Setup {
    fn get(&self, headers: &[(&str, &str)]) -> Response {
        let mut rb = self
            .client
            .get(format!("http://{HOST}:{}/video.mp4", self.edge.addr.port()));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().expect("request")
    }

    fn check_single(&self, range: &str, start: usize, end: usize) {
        let r = self.get(&[("range", range)]);
        assert_eq!(r.status(), 206, "{range}");
        let len = self.data.len();
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {start}-{}/{len}", end - 1).as_str(),
            "{range}"
        );
        let body = r.bytes().expect("body");
        assert!(body[..] == self.data[start..end], "{range}: wrong bytes");
    }

    fn check_all_forms(&self) {
        let len = self.data.len();
        self.check_single("bytes=0-99", 0, 100);
        self.check_single("bytes=1000000-2000000", 1_000_000, 2_000_001);
        self.check_single("bytes=3400000-", 3_400_000, len);
        self.check_single("bytes=-500", len - 500, len);
        self.check_single("bytes=3499999-9999999", 3_499_999, len);

        // Multi-range: multipart/byteranges with one part per range.
        let r = self.get(&[("range", "bytes=0-9,2000000-2000009")]);
        assert_eq!(r.status(), 206);
        let ct = r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let boundary = ct
            .split("boundary=")
            .nth(1)
            .expect("multipart boundary")
            .trim_matches('"')
            .to_owned();
        let body = r.bytes().expect("body").to_vec();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.matches(&format!("--{boundary}")).count(), 3, "{text}");
        assert!(text.contains(&format!("bytes 0-9/{len}")));
        assert!(text.contains(&format!("bytes 2000000-2000009/{len}")));
        for (start, end) in [(0usize, 10usize), (2_000_000, 2_000_010)] {
            let want = &self.data[start..end];
            assert!(
                body.windows(want.len()).any(|w| w == want),
                "part {start} missing"
            );
        }

        // Unsatisfiable: 416 with the length.
        let r = self.get(&[("range", "bytes=4000000-")]);
        assert_eq!(r.status(), 416);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes */{len}").as_str()
        );

        // Syntactically invalid: the whole object.
        let r = self.get(&[("range", "bytes=abc")]);
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().expect("body").len(), len);

        // If-Range: a matching validator gives the range, a stale one the whole object.
        let r = self.get(&[
            ("range", "bytes=0-9"),
            ("if-range", &format!("\"{}\"", self.etag)),
        ]);
        assert_eq!(r.status(), 206, "If-Range with the current ETag");
        let r = self.get(&[("range", "bytes=0-9"), ("if-range", &self.last_modified)]);
        assert_eq!(r.status(), 206, "If-Range with the current date");
        let r = self.get(&[("range", "bytes=0-9"), ("if-range", "\"not-the-etag\"")]);
        assert_eq!(r.status(), 200, "If-Range with another ETag");
        assert_eq!(r.bytes().expect("body").len(), len);

        // HEAD with a range.
        let r = self
            .client
            .head(format!("http://{HOST}:{}/video.mp4", self.edge.addr.port()))
            .header("range", "bytes=0-9")
            .send()
            .expect("head");
        assert!(
            r.status() == 206 || r.status() == 200,
            "HEAD: {}",
            r.status()
        );
    }
}

#[test]
fn ranges_cold_and_warm() {
    let s = setup();
    // Cold: the first request is a range on a MISS.
    let r = s.get(&[("range", "bytes=100-199")]);
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["x-outpost-cache"], "MISS");
    assert!(r.bytes().expect("body")[..] == s.data[100..200]);
    // Warm: every form from the cache (the object is larger than a slice, so the edge caches
    // it in slices; the one that served the first range may still be filling).
    let start = std::time::Instant::now();
    loop {
        let r = s.get(&[("range", "bytes=0-0")]);
        if r.headers()["x-outpost-cache"] == "HIT" && r.status() == 206 {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "ranges are never served from the cache"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.check_all_forms();
}
