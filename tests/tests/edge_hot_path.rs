//! The hit fast path is invisible to clients: two edges in front of the same origin, one with
//! `cache.hot_path = false`, answer every request form with the same status, headers and
//! bytes; and purges, overwrites, revocations and ACL changes act on the very next request.

use std::time::{Duration, SystemTime};

use outpost_auth::token::{self, Claims};
use outpost_auth::{TokenKey, TokenKind};
use outpost_tests::clients::{must_eventually, Session};
use outpost_tests::cluster::{EdgeProc, OriginProc, USER_KEY};
use outpost_tests::tokens::{key_k1, now};

const KEY_SECRET: &str = "hot-path-token-secret-0123456789";

fn key() -> TokenKey {
    key_k1(KEY_SECRET)
}

fn url_token(scope: &str) -> String {
    token::sign(
        &Claims::new("demo", TokenKind::Url, scope, now() + 600),
        &key(),
    )
    .expect("sign")
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    age: Option<u64>,
    body: Vec<u8>,
}

fn fetch(c: &reqwest::blocking::Client, method: &str, url: &str, hs: &[(&str, &str)]) -> Answer {
    let mut rb = c.request(method.parse().expect("method"), url);
    for (k, v) in hs {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().expect("request");
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "age"))
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    headers.sort();
    let age = r
        .headers()
        .get("age")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut body = r.bytes().expect("body").to_vec();
    // Multipart boundaries are random per response: compare everything else.
    for (k, v) in headers.iter_mut() {
        if let Some(b) = v.strip_prefix("multipart/byteranges; boundary=") {
            let text = String::from_utf8_lossy(&body).replace(b, "BOUNDARY");
            body = text.into_bytes();
            *v = "multipart/byteranges".into();
            assert_eq!(k, "content-type");
        }
    }
    Answer {
        status,
        headers,
        age,
        body,
    }
}

fn counter(edge: &EdgeProc, name: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{}/metrics", edge.url))
        .and_then(|r| r.text())
        .expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn hot_hits(edge: &EdgeProc) -> u64 {
    counter(edge, "outpost_edge_hot_hits_total")
}

/// Hits answered before pingora's session (the front path, a part of the hot hits).
fn front_hits(edge: &EdgeProc) -> u64 {
    counter(edge, "outpost_edge_front_hits_total")
}

/// Method, host, path with query, request headers.
type Case<'a> = (&'a str, &'a str, String, Vec<(&'a str, &'a str)>);

#[test]
fn the_fast_path_answers_exactly_like_the_slow_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must(
        "PUT",
        "/pub",
        &[("x-container-read", ".r:*,.rlistings")],
        vec![],
    );
    api.must("PUT", "/priv", &[], vec![]);
    api.must(
        "POST",
        "",
        &[("x-account-outpost-key-k1", KEY_SECRET)],
        vec![],
    );
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    api.must_put(
        "/pub/a.bin",
        body.clone(),
        &[("content-type", "application/x-test")],
        201,
    );
    api.must_put(
        "/pub/cc.txt",
        b"with its own cache-control".to_vec(),
        &[("cache-control", "public, max-age=300")],
        201,
    );
    api.must_put("/priv/p.txt", b"private bytes".to_vec(), &[], 201);
    let slow = EdgeProc::start(dir.path(), "slow", origin.addr, "cache.hot_path = false");
    let fast = EdgeProc::start(dir.path(), "fast", origin.addr, "");
    let host = "pub.demo.cdn.test";
    let phost = "priv.demo.cdn.test";
    let cs = slow.client(&[host, phost]);
    let cf = fast.client(&[host, phost]);
    let u = |e: &EdgeProc, h: &str, p: &str| format!("http://{h}:{}{p}", e.addr.port());
    let etag = {
        let a = fetch(&cf, "GET", &u(&fast, host, "/a.bin"), &[]);
        a.headers
            .iter()
            .find(|(k, _)| k == "etag")
            .map(|(_, v)| v.clone())
            .expect("etag")
    };
    let lm = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
    let tok = url_token("/priv");
    let ptoken = format!("/p.txt?op_token={tok}");
    let cases: Vec<Case> = vec![
        ("GET", host, "/a.bin".into(), vec![]),
        ("HEAD", host, "/a.bin".into(), vec![]),
        ("GET", host, "/cc.txt".into(), vec![]),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("range", "bytes=100-199")],
        ),
        ("GET", host, "/a.bin".into(), vec![("range", "bytes=-500")]),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("range", "bytes=19990-")],
        ),
        ("HEAD", host, "/a.bin".into(), vec![("range", "bytes=0-9")]),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("range", "bytes=0-1,5-9")],
        ),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("range", "bytes=50000-")],
        ),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("if-none-match", etag.as_str())],
        ),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("if-none-match", "\"other\"")],
        ),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("if-modified-since", lm.as_str())],
        ),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("range", "bytes=0-9"), ("if-range", etag.as_str())],
        ),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("range", "bytes=0-9"), ("if-range", "\"stale\"")],
        ),
        (
            "GET",
            host,
            "/a.bin".into(),
            vec![("cache-control", "max-age=0")],
        ),
        ("GET", phost, ptoken.clone(), vec![]),
        ("HEAD", phost, ptoken.clone(), vec![]),
        ("GET", phost, "/p.txt".into(), vec![]),
        ("GET", host, "/?format=json".into(), vec![]),
    ];
    let before = hot_hits(&fast);
    let front_before = front_hits(&fast);
    for (m, h, p, hs) in &cases {
        // Twice on each edge: the first may fill, the second is the hit under test.
        fetch(&cs, m, &u(&slow, h, p), hs);
        fetch(&cf, m, &u(&fast, h, p), hs);
        let a = fetch(&cs, m, &u(&slow, h, p), hs);
        let b = fetch(&cf, m, &u(&fast, h, p), hs);
        let what = format!("{m} {h}{p} {hs:?}");
        assert_eq!(a.status, b.status, "{what}");
        assert_eq!(a.headers, b.headers, "{what}");
        assert_eq!(a.body, b.body, "{what}");
        assert_eq!(
            a.age.is_some(),
            b.age.is_some(),
            "{what}: Age on both or neither"
        );
        if let (Some(x), Some(y)) = (a.age, b.age) {
            assert!(x.abs_diff(y) <= 2, "{what}: Age {x} vs {y}");
        }
    }
    assert!(
        hot_hits(&fast) - before >= 12,
        "most of the forms above took the fast path"
    );
    assert_eq!(hot_hits(&slow), 0);
    // The plain forms (GET and HEAD of a.bin, cc.txt, the signed GET and HEAD, the listing)
    // were answered before pingora's session; the others by the hot path inside it.
    let front = front_hits(&fast) - front_before;
    assert!(
        (6..=12).contains(&front),
        "plain hits took the front path: {front}"
    );
    assert_eq!(front_hits(&slow), 0);

    // A purge (overwrite) acts on the very next request once the edge applied it.
    let url_a = u(&fast, host, "/a.bin");
    api.must_put(
        "/pub/a.bin",
        b"new version".to_vec(),
        &[("x-purge-wait", "edges")],
        201,
    );
    assert_eq!(fetch(&cf, "GET", &url_a, &[]).body, b"new version");
    api.must("DELETE", "/pub/a.bin", &[("x-purge-wait", "edges")], vec![]);
    assert_eq!(fetch(&cf, "GET", &url_a, &[]).status, 404);
    // The container turned private: the cached object needs a grant at once.
    let url_cc = u(&fast, host, "/cc.txt");
    assert_eq!(fetch(&cf, "GET", &url_cc, &[]).status, 200);
    api.must("POST", "/pub", &[("x-container-read", "")], vec![]);
    must_eventually(
        "the ACL change reaches the edge",
        Duration::from_secs(10),
        || fetch(&cf, "GET", &url_cc, &[]).status == 403,
    );
    assert_eq!(
        fetch(&cf, "GET", &u(&fast, phost, "/p.txt"), &[]).status,
        403
    );
    // A revoked session: its signed URL is refused on the next request, although the object
    // sits in the memory tier (the access decision comes before the fast path).
    let mut claims = Claims::new("demo", TokenKind::Url, "/priv", now() + 600);
    claims.session_id = Some("hot-session".into());
    let sess = token::sign(&claims, &key()).expect("sign");
    let url_s = u(&fast, phost, &format!("/p.txt?op_token={sess}"));
    let hits = hot_hits(&fast);
    assert_eq!(fetch(&cf, "GET", &url_s, &[]).status, 200);
    assert_eq!(hot_hits(&fast), hits + 1, "served by the fast path");
    api.must(
        "POST",
        "",
        &[
            ("x-outpost-revoke-session", "hot-session"),
            ("x-purge-wait", "edges"),
        ],
        vec![],
    );
    let r = fetch(&cf, "GET", &url_s, &[]);
    assert_eq!(r.status, 403);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k == "x-outpost-deny" && v == "revoked"));
}

/// Stale and `no-cache` entries are revalidated by the slow path, never served by the fast one.
#[test]
fn stale_and_no_cache_entries_never_take_the_fast_path() {
    use outpost_tests::scripted::{Script, ScriptedOrigin};
    let Some(origin) = ScriptedOrigin::start() else {
        eprintln!("SKIPPED: python3 is needed for the scripted origin");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = EdgeProc::start_raw(
        dir.path(),
        "g",
        &format!(
            "[generic]\naddress = \"127.0.0.1:{}\"\n[cache]\ndisk_dir = \"{}\"\n",
            origin.port,
            dir.path().join("cache").display()
        ),
    );
    let c = edge.client(&["site.example"]);
    let url = |p: &str| format!("http://site.example:{}{p}", edge.addr.port());
    let fresh = Script::ok(&[("cache-control", "max-age=600")]);
    let stale = Script::ok(&[
        ("cache-control", "max-age=100"),
        ("age", "150"),
        ("etag", "\"s\""),
    ])
    .revalidates_with(&[("etag", "\"s\"")]);
    let no_cache = Script::ok(&[("cache-control", "no-cache"), ("etag", "\"n\"")])
        .revalidates_with(&[("etag", "\"n\"")]);
    origin.must_script("/fresh", &fresh);
    origin.must_script("/stale", &stale);
    origin.must_script("/nc", &no_cache);
    for p in ["/fresh", "/stale", "/nc"] {
        fetch(&c, "GET", &url(p), &[]);
    }
    let before = hot_hits(&edge);
    let cache_of = |p: &str| {
        let a = fetch(&c, "GET", &url(p), &[]);
        a.headers
            .iter()
            .find(|(k, _)| k == "x-outpost-cache")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(cache_of("/fresh"), "HIT");
    assert_eq!(hot_hits(&edge) - before, 1);
    assert_eq!(cache_of("/stale"), "REVALIDATED");
    assert_eq!(cache_of("/nc"), "REVALIDATED");
    assert_eq!(cache_of("/nc"), "REVALIDATED");
    assert_eq!(
        hot_hits(&edge) - before,
        1,
        "only the fresh entry took the fast path"
    );
    assert_eq!(origin.must_count("/nc"), 3);
}

/// One answer read off a raw connection: status, lower-cased headers, body.
fn read_answer(
    r: &mut std::io::BufReader<std::net::TcpStream>,
    head_only: bool,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').expect("field");
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().expect("length"));
    let mut body = vec![0; if head_only || status == 304 { 0 } else { len }];
    r.read_exact(&mut body).expect("body");
    (status, headers, body)
}

/// Front-path answers and pingora's alternate on one keep-alive connection without either
/// leaving the connection in a state the other misreads; a client's `Connection: close` and
/// HTTP/1.0 go to pingora, which honours them.
#[test]
fn one_connection_mixes_front_path_and_proxy_answers() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must("PUT", "/pub", &[("x-container-read", ".r:*")], vec![]);
    let body: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    api.must_put("/pub/k.bin", body.clone(), &[], 201);
    let edge = EdgeProc::start(dir.path(), "e", origin.addr, "");
    let c = edge.client(&["pub.demo.cdn.test"]);
    let url = format!("http://pub.demo.cdn.test:{}/k.bin", edge.addr.port());
    // Fill, then the entry is a memory-tier hit.
    assert_eq!(fetch(&c, "GET", &url, &[]).body, body);
    let etag = fetch(&c, "GET", &url, &[])
        .headers
        .into_iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v)
        .expect("etag");
    let before = front_hits(&edge);
    let sock = std::net::TcpStream::connect(edge.addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = sock.try_clone().expect("clone");
    let mut r = std::io::BufReader::new(sock);
    let mut ask = |extra: &str, method: &str| {
        write!(
            w,
            "{method} /k.bin HTTP/1.1\r\nHost: pub.demo.cdn.test\r\n{extra}\r\n"
        )
        .expect("write");
        read_answer(&mut r, method == "HEAD")
    };
    let full = ask("", "GET");
    assert_eq!((full.0, &full.2), (200, &body));
    let cache = |h: &[(String, String)]| {
        h.iter()
            .find(|(k, _)| k == "x-outpost-cache")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(cache(&full.1).as_deref(), Some("HIT"));
    for k in ["date", "age", "connection", "etag", "content-length"] {
        assert!(full.1.iter().any(|(n, _)| n == k), "{k} in {:?}", full.1);
    }
    let range = ask("Range: bytes=10-19\r\n", "GET");
    assert_eq!((range.0, &range.2[..]), (206, &body[10..20]));
    let head = ask("", "HEAD");
    assert_eq!((head.0, head.2.len()), (200, 0));
    let not_modified = ask(&format!("If-None-Match: {etag}\r\n"), "GET");
    assert_eq!(not_modified.0, 304);
    let again = ask("User-Agent: raw\r\n", "GET");
    assert_eq!((again.0, &again.2), (200, &body));
    assert_eq!(
        front_hits(&edge) - before,
        3,
        "the plain GETs and the HEAD took the front path"
    );
    let closing = ask("Connection: close\r\n", "GET");
    assert_eq!(closing.0, 200);
    assert!(closing
        .1
        .iter()
        .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close")));
    assert_eq!(
        front_hits(&edge) - before,
        3,
        "Connection: close is pingora's"
    );
    // HTTP/1.0 on a fresh connection: pingora's, closed after the answer.
    let mut old = std::net::TcpStream::connect(edge.addr).expect("connect");
    old.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        old,
        "GET /k.bin HTTP/1.0\r\nHost: pub.demo.cdn.test\r\n\r\n"
    )
    .expect("write");
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut old, &mut all).expect("read to close");
    assert!(all.starts_with(b"HTTP/1.1 200") || all.starts_with(b"HTTP/1.0 200"));
    assert!(all.ends_with(&body));
    assert_eq!(front_hits(&edge) - before, 3);
}
