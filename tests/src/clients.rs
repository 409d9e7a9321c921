//! Driving an origin the way users do: external clients (`swift`, `rclone`, `curl`) run with a
//! deadline, raw HTTP for requests no well-behaved client library would send, and a small
//! authenticated Swift session over reqwest.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use reqwest::blocking::{Client, RequestBuilder, Response};

/// Runs `cmd` to completion within `timeout`, killing it past the deadline (a client stuck in
/// a loop fails the test instead of hanging it). Panics with its output if it fails.
pub fn must_run_within(cmd: &mut Command, timeout: Duration) -> Output {
    let out = run_within(cmd, timeout);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` within `timeout` and returns its output whatever its exit status; panics only
/// when it cannot be started or overruns the deadline.
pub fn run_within(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap_or_else(|e| panic!("wait for {cmd:?}: {e}")),
        Err(_) => {
            // The child is owned by the waiting thread; kill it by its id.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
    }
}

/// MD5 of `data`, lower-case hex (Swift's ETag).
pub fn md5_hex(data: &[u8]) -> String {
    hex_lower(&Md5::digest(data))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `len` deterministic pseudo-random bytes (xorshift64*), different for every `seed`: cheap
/// test data that neither compresses nor repeats at segment boundaries.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code, or 0 when the server closed the connection without answering.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Whatever followed the headers until the server closed the connection.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (request line and headers, without the blank line: it is added along with
/// `Connection: close`) and `body` as raw bytes, optionally half-closes the connection (an
/// aborted upload), and reads the answer until the server closes.
pub fn raw_http(addr: SocketAddr, head: &str, body: &[u8], half_close: bool) -> RawResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut req = head.trim_end().replace('\n', "\r\n").replace("\r\r", "\r");
    req.push_str("\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send head");
    // The server may answer (and close) before reading a body it rejects.
    let _ = s.write_all(body);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_raw(&buf)
}

fn parse_raw(buf: &[u8]) -> RawResponse {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return RawResponse {
            status: 0,
            headers: Vec::new(),
            body: buf.to_vec(),
        };
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

/// An authenticated Swift session: the storage URL (`http://.../v1/AUTH_demo`) and a token.
#[derive(Debug, Clone)]
pub struct Session {
    /// Storage URL.
    pub storage: String,
    /// `X-Auth-Token`.
    pub token: String,
    /// The client (no redirects, generous timeout).
    pub client: Client,
}

impl Session {
    /// Logs in with Swift auth v1 at `base` (`http://host:port`).
    pub fn must_login(base: &str, user: &str, key: &str) -> Session {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        let r = client
            .get(format!("{base}/auth/v1.0"))
            .header("x-auth-user", user)
            .header("x-auth-key", key)
            .send()
            .expect("auth request");
        assert_eq!(r.status(), 200, "auth as {user} failed");
        let h = r.headers();
        Session {
            storage: h["x-storage-url"].to_str().expect("ascii").to_owned(),
            token: h["x-auth-token"].to_str().expect("ascii").to_owned(),
            client,
        }
    }

    /// A request to `storage + path` carrying the token.
    pub fn req(&self, method: &str, path: &str) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.client
            .request(m, format!("{}{path}", self.storage))
            .header("x-auth-token", &self.token)
    }

    /// Sends a request and panics if it cannot be sent.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut rb = self.req(method, path);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Sends `method path` with `headers` and `body`, asserting a 2xx answer.
    pub fn must(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        let mut rb = self.req(method, path).body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        r
    }

    /// PUTs `body` at `path` and asserts `expect`.
    pub fn must_put(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)], expect: u16) {
        let mut rb = self.req("PUT", path).body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        let status = r.status().as_u16();
        assert_eq!(
            status,
            expect,
            "PUT {path}: {}",
            r.text().unwrap_or_default()
        );
    }

    /// GETs `path` and returns (status, body).
    pub fn must_get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let r = self.send("GET", path, headers);
        let status = r.status().as_u16();
        (status, r.bytes().expect("body").to_vec())
    }

    /// Every object of a container, paging through the JSON listing with `marker`:
    /// (name, bytes, hash).
    pub fn must_list_all(&self, container: &str) -> Vec<(String, u64, String)> {
        let mut out: Vec<(String, u64, String)> = Vec::new();
        loop {
            let mut rb = self.req("GET", &format!("/{container}"));
            rb = rb.query(&[("format", "json"), ("limit", "1000")]);
            if let Some((last, _, _)) = out.last() {
                rb = rb.query(&[("marker", last.as_str())]);
            }
            let r = rb.send().expect("listing");
            assert!(r.status().is_success(), "listing: {}", r.status());
            let page: Vec<serde_json::Value> =
                serde_json::from_slice(&r.bytes().expect("listing body")).expect("JSON listing");
            if page.is_empty() {
                return out;
            }
            for o in page {
                out.push((
                    o["name"].as_str().expect("name").to_owned(),
                    o["bytes"].as_u64().expect("bytes"),
                    o["hash"].as_str().expect("hash").to_owned(),
                ));
            }
        }
    }
}

/// Files under `root` (relative paths with `/`), sorted.
pub fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                go(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
pub fn must_eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "{what}: not true after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_behave() {
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
        let a = pseudo_random(1, 1000);
        assert_eq!(a.len(), 1000);
        assert_eq!(a, pseudo_random(1, 1000));
        assert_ne!(a, pseudo_random(2, 1000));
        let r =
            parse_raw(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */5\r\n\r\nx");
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */5"));
        assert_eq!(r.body, b"x");
    }
}
