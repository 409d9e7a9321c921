//! Generic mode in front of a small real web application with state: a form POST, a JSON
//! API with PUT and DELETE, cacheable GETs, a cacheable 404, and a page that depends on the
//! caller's `Authorization`. Every method works through the edge, unsafe methods invalidate
//! what they change (RFC 9111 §4.4), and credentialed requests never share entries.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use outpost_tests::cluster::{free_port, EdgeProc};
use outpost_tests::which;

/// The application: items in memory; listings and items cacheable for 5 minutes, a missing
/// item cacheable as a 404 for a minute, `/me` answering with the caller (and, as real apps
/// often do, forgetting `private`).
const APP: &str = r#"
import http.server, json, sys, threading, urllib.parse
items, lock, nid = {}, threading.Lock(), [0]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def body(self):
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n) if n else b''
    def send(self, status, obj=None, headers=()):
        b = b'' if obj is None else json.dumps(obj).encode()
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(b)))
        if obj is not None:
            self.send_header('Content-Type', 'application/json')
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(b)
    def do_GET(self):
        p = self.path
        if p == '/items':
            with lock:
                out = [{'id': k, 'name': v} for k, v in sorted(items.items())]
            return self.send(200, out, [('Cache-Control', 'public, max-age=300')])
        if p.startswith('/items/'):
            with lock:
                v = items.get(int(p[7:]))
            if v is None:
                return self.send(404, {'error': 'no such item'}, [('Cache-Control', 'max-age=60')])
            return self.send(200, {'name': v}, [('Cache-Control', 'max-age=300')])
        if p == '/me':
            return self.send(200, {'user': self.headers.get('Authorization', 'anonymous')},
                             [('Cache-Control', 'max-age=60')])
        self.send(404, {'error': 'no route'})
    do_HEAD = do_GET
    def do_POST(self):
        form = urllib.parse.parse_qs(self.body().decode())
        with lock:
            nid[0] += 1
            items[nid[0]] = form['name'][0]
        self.send(303, None, [('Location', '/items')])
    def do_PUT(self):
        with lock:
            items[int(self.path[7:])] = json.loads(self.body())['name']
        self.send(200, {'ok': True})
    def do_DELETE(self):
        with lock:
            items.pop(int(self.path[7:]), None)
        self.send(204)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

struct App(Child);
impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_web_app_works_through_the_edge_with_every_method() {
    if which("python3").is_none() {
        eprintln!("SKIPPED: python3 is needed for the web application");
        return;
    }
    let port = free_port();
    let _app = App(Command::new("python3")
        .args(["-c", APP, &port.to_string()])
        .spawn()
        .expect("spawn app"));
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "app did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = EdgeProc::start_raw(
        dir.path(),
        "app-edge",
        &format!(
            "[generic]\naddress = \"127.0.0.1:{port}\"\n[cache]\ndisk_dir = \"{}\"\n",
            dir.path().join("cache").display()
        ),
    );
    let c = edge.client(&["shop.example"]);
    let url = |p: &str| format!("http://shop.example:{}{p}", edge.addr.port());
    let get = |p: &str| {
        let r = c.get(url(p)).send().expect("get");
        let cache = r.headers()["x-outpost-cache"].to_str().unwrap().to_owned();
        let status = r.status().as_u16();
        (status, cache, r.text().expect("body"))
    };
    assert_eq!(get("/items"), (200, "MISS".into(), "[]".into()));
    assert_eq!(get("/items").1, "HIT");
    // A form POST: 303 to the list, which it invalidated.
    let r = c
        .post(url("/items"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=apple")
        .send()
        .expect("post");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/items");
    let (s, cache, body) = get("/items");
    assert_eq!((s, cache.as_str()), (200, "MISS"));
    assert!(body.contains("apple"), "{body}");
    // PUT and DELETE through the JSON API, each invalidating its target.
    assert_eq!(get("/items/1").2, r#"{"name": "apple"}"#);
    assert_eq!(get("/items/1").1, "HIT");
    let r = c
        .put(url("/items/1"))
        .header("content-type", "application/json")
        .body(r#"{"name": "pear"}"#)
        .send()
        .expect("put");
    assert_eq!(r.status(), 200);
    assert_eq!(
        get("/items/1"),
        (200, "MISS".into(), r#"{"name": "pear"}"#.into())
    );
    let r = c.delete(url("/items/1")).send().expect("delete");
    assert_eq!(r.status(), 204);
    let gone = get("/items/1");
    assert_eq!((gone.0, gone.1.as_str()), (404, "MISS"));
    let gone = get("/items/1");
    assert_eq!(
        (gone.0, gone.1.as_str()),
        (404, "HIT"),
        "a 404 with max-age is cached"
    );
    // HEAD answers from the same entry with the same length.
    let head = c.head(url("/items/1")).send().expect("head");
    assert_eq!(head.status(), 404);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        gone.2.len().to_string()
    );
    // Credentialed requests never share entries, although the app forgot `private`.
    let me = |auth: Option<&str>| {
        let mut rb = c.get(url("/me"));
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        rb.send().expect("me").text().expect("body")
    };
    assert!(me(Some("Bearer alice")).contains("alice"));
    assert!(me(Some("Bearer bob")).contains("bob"));
    assert!(me(None).contains("anonymous"));
    assert!(me(None).contains("anonymous"));
    assert!(me(Some("Bearer carol")).contains("carol"));
}
