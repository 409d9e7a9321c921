//! The edge in generic mode in front of a private S3 bucket, signing its upstream requests
//! with SigV4 (`[generic.sigv4]`), against `s3s-fs`, a real S3 server that verifies
//! signatures (`cargo install s3s-fs --locked --version 0.14.1 --features binary`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost_tests::cluster::{free_port, EdgeProc};
use outpost_tests::which;

const ACCESS_KEY: &str = "OUTPOSTTESTKEY";
const SECRET_KEY: &str = "outpost-test-secret-0123456789";
const BUCKET: &str = "private";

/// An `s3s-fs` server on 127.0.0.1, killed by its handle when dropped.
struct S3Fs {
    child: Child,
    port: u16,
}

impl S3Fs {
    /// Serves `root` (one directory per bucket, one file per object: s3s-fs's layout).
    fn start(root: &Path) -> S3Fs {
        let port = free_port();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn s3s-fs");
        let s3 = S3Fs { child, port };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "s3s-fs did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s3
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Fs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic object bytes.
fn object_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// An edge in generic mode in front of `s3`, signing with `secret`.
fn signing_edge(dir: &Path, name: &str, s3: &S3Fs, secret: &str) -> EdgeProc {
    let cache: PathBuf = dir.join(format!("{name}-cache"));
    EdgeProc::start_raw(
        dir,
        name,
        &format!(
            r#"[generic]
address = "{addr}"
host = "{addr}"
[generic.sigv4]
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{secret}"
[cache]
disk_dir = "{cache}"
default_ttl = "1h"
"#,
            addr = s3.addr(),
            cache = cache.display()
        ),
    )
}

/// `(status, x-outpost-cache, content-type, body)` of a `GET` through `edge`.
fn get(edge: &EdgeProc, path: &str, headers: &[(&str, &str)]) -> (u16, String, String, Vec<u8>) {
    let c = edge.client(&["cdn.test"]);
    let mut req = c.get(format!("http://cdn.test:{}{path}", edge.addr.port()));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let r = req.send().expect("request through the edge");
    let status = r.status().as_u16();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (cache, content_type) = (header("x-outpost-cache"), header("content-type"));
    (
        status,
        cache,
        content_type,
        r.bytes().expect("body").to_vec(),
    )
}

#[test]
fn edge_signs_upstream_requests_for_a_private_s3_bucket() {
    if which("s3s-fs").is_none() {
        println!(
            "SKIPPED: s3s-fs is needed (cargo install s3s-fs --locked --version 0.14.1 --features binary)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("s3");
    let bucket = root.join(BUCKET);
    std::fs::create_dir_all(&bucket).expect("bucket dir");
    let spaced = object_bytes(1, 64 << 10);
    let plus = object_bytes(2, 1000);
    let other = object_bytes(3, 5000);
    std::fs::write(bucket.join("hello world.bin"), &spaced).expect("object");
    std::fs::write(bucket.join("a+b.bin"), &plus).expect("object");
    std::fs::write(bucket.join("other.bin"), &other).expect("object");
    let s3 = S3Fs::start(&root);

    // (a) The bucket is private: an unsigned request straight to the server is refused.
    let direct = reqwest::blocking::Client::new()
        .get(format!("http://{}/{BUCKET}/hello%20world.bin", s3.addr()))
        .send()
        .expect("direct request");
    assert_eq!(direct.status(), 403, "s3s-fs served an unsigned request");

    // (b) Through a signing edge: the object, then the same object from cache.
    let edge = signing_edge(dir.path(), "s3-edge", &s3, SECRET_KEY);
    let path = format!("/{BUCKET}/hello%20world.bin");
    let (status, cache, _, body) = get(&edge, &path, &[]);
    assert_eq!((status, cache.as_str()), (200, "MISS"));
    assert!(body == spaced, "wrong bytes for {path}");
    let (status, cache, _, body) = get(&edge, &path, &[]);
    assert_eq!((status, cache.as_str()), (200, "HIT"));
    assert!(body == spaced, "wrong cached bytes for {path}");

    // A `+` in a key and a query string are signed the way S3 reads them.
    let (status, _, _, body) = get(&edge, &format!("/{BUCKET}/a+b.bin"), &[]);
    assert_eq!(status, 200);
    assert!(body == plus, "wrong bytes for a+b.bin");
    let (status, _, content_type, body) = get(
        &edge,
        &format!("/{BUCKET}/hello%20world.bin?response-content-type=text%2Fplain"),
        &[],
    );
    assert_eq!((status, content_type.as_str()), (200, "text/plain"));
    assert!(body == spaced, "wrong bytes with a query string");

    // (d) A client's own signature never reaches S3 in place of the edge's.
    let (status, _, _, body) = get(
        &edge,
        &format!("/{BUCKET}/other.bin"),
        &[
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=EVIL/20000101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0000",
            ),
            ("x-amz-date", "20000101T000000Z"),
            ("x-amz-content-sha256", "garbage"),
        ],
    );
    assert_eq!(status, 200, "a client Authorization replaced the edge's");
    assert!(body == other, "wrong bytes for other.bin");

    // (c) A wrong secret: S3 refuses, and the refusal is not cached.
    let wrong = signing_edge(dir.path(), "s3-edge-wrong", &s3, "not-the-secret");
    for round in 0..2 {
        let (status, cache, _, _) = get(&wrong, &path, &[]);
        assert_eq!(
            status, 403,
            "round {round}: a wrongly signed request was served"
        );
        assert_ne!(cache, "HIT", "round {round}: a 403 was cached");
    }
}
