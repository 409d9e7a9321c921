//! A scriptable HTTP origin for cache-conformance tests: each path answers exactly what the
//! test scripted for it, and the origin counts and records what reached it.
//!
//! It is a small Python `http.server` (every method, bodies read in full and hashed), driven
//! over HTTP on its own port: `PUT /__script?path=P` with a JSON [`Script`], `GET
//! /__log?path=P` for the requests that reached `P`.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::free_port;

const SERVER: &str = r#"
import hashlib, http.server, json, sys, threading, urllib.parse
scripts, log, lock = {}, {}, threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def handle_one(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        n = int(self.headers.get('Content-Length') or 0)
        body = b''
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            while True:
                size = int(self.rfile.readline().strip().split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        elif n:
            body = self.rfile.read(n)
        if u.path == '/__script':
            with lock:
                scripts[q['path']] = json.loads(body)
            return self.reply(204, [], b'')
        if u.path == '/__log':
            with lock:
                out = json.dumps(log.get(q['path'], [])).encode()
            return self.reply(200, [('Content-Type', 'application/json')], out)
        target = self.path
        with lock:
            log.setdefault(target, []).append({
                'method': self.command,
                'headers': [[k.lower(), v] for k, v in self.headers.items()],
                'body_len': len(body), 'body_md5': hashlib.md5(body).hexdigest()})
            s = scripts.get(target) or scripts.get(u.path) or {'status': 404, 'headers': [], 'body': 'not scripted'}
        s = dict(s)
        inm = self.headers.get('If-None-Match')
        etag = next((v for k, v in s.get('headers', []) if k.lower() == 'etag'), None)
        if 'not_modified' in s and inm is not None and etag is not None and inm == etag:
            return self.reply(304, s['not_modified'], b'')
        b = s.get('body', '').encode()
        hs = list(s.get('headers', []))
        if s.get('echo_fetch'):
            b += (' fetch %d' % len(log[target])).encode()
        if s.get('truncate'):
            # Promise more than is sent, then hang up: an incomplete response.
            hs.append(('Content-Length', str(len(b) + 100)))
            self.close_connection = True
        elif not any(k.lower() == 'content-length' for k, v in hs):
            hs.append(('Content-Length', str(len(b))))
        self.reply(s.get('status', 200), hs, b if self.command != 'HEAD' else b'')
    def reply(self, status, headers, body):
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        if status in (204, 304) or any(k.lower() == 'content-length' for k, v in headers):
            pass
        else:
            self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
for m in ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']:
    setattr(H, 'do_' + m, H.handle_one)
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

/// What the origin answers for one path.
#[derive(Debug, Clone)]
pub struct Script {
    /// Status.
    pub status: u16,
    /// Header lines, in order (repeat a name for several lines).
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
    /// Append ` fetch N` (the N-th request for this path) to the body.
    pub echo_fetch: bool,
    /// When the request's `If-None-Match` equals the scripted `ETag`: answer `304` with
    /// these headers.
    pub not_modified: Option<Vec<(String, String)>>,
    /// Announce 100 bytes more than the body and close the connection after it.
    pub truncate: bool,
}

impl Script {
    /// A `200` with these headers whose body counts fetches.
    pub fn ok(headers: &[(&str, &str)]) -> Script {
        Script::status(200, headers)
    }

    /// A response of `status` with these headers whose body counts fetches.
    pub fn status(status: u16, headers: &[(&str, &str)]) -> Script {
        Script {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: "body".into(),
            echo_fetch: true,
            not_modified: None,
            truncate: false,
        }
    }

    /// Answer `304` with these headers to a matching `If-None-Match`.
    pub fn revalidates_with(mut self, headers: &[(&str, &str)]) -> Script {
        self.not_modified = Some(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "status": self.status,
            "headers": self.headers,
            "body": self.body,
            "echo_fetch": self.echo_fetch,
            "truncate": self.truncate,
        });
        if let Some(nm) = &self.not_modified {
            v["not_modified"] = json!(nm);
        }
        v
    }
}

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body length.
    pub body_len: u64,
    /// MD5 of the body, hex.
    pub body_md5: String,
}

impl Seen {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The running scripted origin; killed when dropped.
pub struct ScriptedOrigin {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    http: reqwest::blocking::Client,
}

impl ScriptedOrigin {
    /// Starts it, or `None` without python3 (the caller prints `SKIPPED`).
    pub fn start() -> Option<ScriptedOrigin> {
        crate::which("python3")?;
        let port = free_port();
        let child = Command::new("python3")
            .args(["-c", SERVER, &port.to_string()])
            .spawn()
            .expect("spawn python3");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "scripted origin did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(ScriptedOrigin {
            child,
            port,
            http: reqwest::blocking::Client::new(),
        })
    }

    /// Sets what `path` (with its query, or without one for every query) answers.
    pub fn must_script(&self, path: &str, script: &Script) {
        let r = self
            .http
            .put(format!("http://127.0.0.1:{}/__script", self.port))
            .query(&[("path", path)])
            .body(script.to_json().to_string())
            .send()
            .expect("script the origin");
        assert_eq!(r.status(), 204);
    }

    /// The requests that reached `path` (exactly as the origin saw the request target).
    pub fn must_log(&self, path: &str) -> Vec<Seen> {
        let v: Value = self
            .http
            .get(format!("http://127.0.0.1:{}/__log", self.port))
            .query(&[("path", path)])
            .send()
            .and_then(|r| r.text())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .expect("origin log");
        v.as_array()
            .expect("array")
            .iter()
            .map(|r| Seen {
                method: r["method"].as_str().unwrap_or("").to_owned(),
                headers: r["headers"]
                    .as_array()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h[0].as_str().unwrap_or("").to_owned(),
                                    h[1].as_str().unwrap_or("").to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                body_len: r["body_len"].as_u64().unwrap_or(0),
                body_md5: r["body_md5"].as_str().unwrap_or("").to_owned(),
            })
            .collect()
    }

    /// How many requests reached `path`.
    pub fn must_count(&self, path: &str) -> usize {
        self.must_log(path).len()
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
