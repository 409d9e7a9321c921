//! The edge in front of a real origin: routing, access, caching, collapsing, stale-if-error,
//! restart persistence, pubcookie login. Every process is the real `outpost` binary.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost_auth::token::{self, Claims};
use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind};
use outpost_tests::cluster::{EdgeProc, OriginProc};
use reqwest::blocking::{Client, Response};

const KEY_SECRET: &str = "edge-test-token-secret-0123456789";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn key() -> TokenKey {
    TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(KEY_SECRET),
        not_before: None,
        not_after: None,
    })
    .expect("key")
}

fn url_token(scope: &str, ttl: u64) -> String {
    token::sign(
        &Claims::new("demo", TokenKind::Url, scope, now() + ttl),
        &key(),
    )
    .expect("sign")
}

/// Swift API calls as the demo user.
struct Api {
    http: Client,
    storage: String,
    token: String,
}

impl Api {
    fn new(origin: &OriginProc) -> Api {
        let (storage, token) = origin.must_login();
        Api {
            http: Client::new(),
            storage,
            token,
        }
    }

    fn must(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
        let mut rb = self
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.storage),
            )
            .header("x-auth-token", &self.token)
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().expect("origin request");
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        r
    }

    /// A public container `public`, a private one `private`, token key k1.
    fn setup(&self) {
        self.must(
            "PUT",
            "/public",
            &[("x-container-read", ".r:*,.rlistings")],
            vec![],
        );
        self.must("PUT", "/private", &[], vec![]);
        self.must(
            "POST",
            "",
            &[("x-account-outpost-key-k1", KEY_SECRET)],
            vec![],
        );
    }
}

fn body_of(r: Response) -> Vec<u8> {
    r.bytes().expect("body").to_vec()
}

fn cache_status(r: &Response) -> String {
    r.headers()
        .get("x-outpost-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Polls `f` until it returns true (the edge learns changes through the feed).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const PUBLIC_HOST: &str = "public.demo.cdn.test";
const PRIVATE_HOST: &str = "private.demo.cdn.test";

/// Sends a request line exactly as given and returns the status code.
fn raw_status(edge: &EdgeProc, host: &str, target: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(edge.addr).expect("connect");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line")
}

fn get(c: &Client, edge: &EdgeProc, host: &str, path: &str) -> Response {
    let port = edge.addr.port();
    c.get(format!("http://{host}:{port}{path}"))
        .send()
        .expect("edge request")
}

#[test]
fn public_miss_then_hit_and_unknown_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Api::new(&origin);
    api.setup();
    api.must(
        "PUT",
        "/public/hello.txt",
        &[("content-type", "text/plain")],
        b"hello edge".to_vec(),
    );
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let c = edge.client(&[PUBLIC_HOST, "nowhere.test"]);

    let r = get(&c, &edge, PUBLIC_HOST, "/hello.txt");
    assert_eq!(r.status(), 200);
    assert_eq!(cache_status(&r), "MISS");
    assert_eq!(body_of(r), b"hello edge");
    let r = get(&c, &edge, PUBLIC_HOST, "/hello.txt");
    assert_eq!(cache_status(&r), "HIT");
    assert!(r
        .headers()
        .get("cache-control")
        .is_none_or(|v| v != "private"));
    assert_eq!(body_of(r), b"hello edge");

    // /v1 paths on the base domain work too, and share the entry.
    let c2 = edge.client(&["cdn.test"]);
    let r = get(&c2, &edge, "cdn.test", "/v1/AUTH_demo/public/hello.txt");
    assert_eq!(cache_status(&r), "HIT");

    let r = get(&c, &edge, "nowhere.test", "/hello.txt");
    assert_eq!(r.status(), 404);
    assert!(r.text().expect("text").contains("unknown host"));

    // HTTP clients normalize dot segments away; send them raw.
    assert_eq!(raw_status(&edge, PUBLIC_HOST, "/a/../hello.txt"), 400);
    assert_eq!(raw_status(&edge, PUBLIC_HOST, "/a%2Fhello.txt"), 400);
    assert_eq!(raw_status(&edge, PUBLIC_HOST, "/a%00.txt"), 400);
    let r = c
        .post(format!(
            "http://{PUBLIC_HOST}:{}/hello.txt",
            edge.addr.port()
        ))
        .send()
        .expect("post");
    assert_eq!(r.status(), 405);
}

#[test]
fn private_content_needs_a_grant_and_shares_one_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Api::new(&origin);
    api.setup();
    api.must("PUT", "/private/photo.jpg", &[], vec![7u8; 5000]);
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let c = edge.client(&[PRIVATE_HOST]);

    let before = origin.must_count_gets();
    let t1 = url_token("/private", 60);
    let r = get(
        &c,
        &edge,
        PRIVATE_HOST,
        &format!("/photo.jpg?op_token={t1}"),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "private");
    assert_eq!(body_of(r).len(), 5000);

    // A differently signed URL for the same object: served from the same entry.
    let t2 = url_token("/private/photo.jpg", 120);
    assert_ne!(t1, t2);
    let r = get(
        &c,
        &edge,
        PRIVATE_HOST,
        &format!("/photo.jpg?op_token={t2}"),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(cache_status(&r), "HIT");
    // The token in the path works too.
    let r = get(&c, &edge, PRIVATE_HOST, &format!("/.op/{t2}/photo.jpg"));
    assert_eq!(cache_status(&r), "HIT");
    assert_eq!(
        origin.must_count_gets() - before,
        1,
        "one origin fetch for every signed variant"
    );

    // Cached, but never served without a valid grant.
    let deny = |r: Response| {
        assert_eq!(r.status(), 403);
        r.headers()["x-outpost-deny"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    assert_eq!(deny(get(&c, &edge, PRIVATE_HOST, "/photo.jpg")), "invalid");
    let mut bad = t1.clone();
    bad.pop();
    bad.push(if t1.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        deny(get(
            &c,
            &edge,
            PRIVATE_HOST,
            &format!("/photo.jpg?op_token={bad}")
        )),
        "invalid"
    );
    let expired = token::sign(
        &Claims::new("demo", TokenKind::Url, "/private", now() - 60),
        &key(),
    )
    .expect("sign");
    assert_eq!(
        deny(get(
            &c,
            &edge,
            PRIVATE_HOST,
            &format!("/photo.jpg?op_token={expired}")
        )),
        "expired"
    );
    let other = url_token("/private/other.jpg", 60);
    assert_eq!(
        deny(get(
            &c,
            &edge,
            PRIVATE_HOST,
            &format!("/photo.jpg?op_token={other}")
        )),
        "wrong-scope"
    );
    let sibling = url_token("/priv", 60);
    assert_eq!(
        deny(get(
            &c,
            &edge,
            PRIVATE_HOST,
            &format!("/photo.jpg?op_token={sibling}")
        )),
        "wrong-scope"
    );
}

/// 50 concurrent cold GETs of `name`: every reader gets `data`; returns the origin GETs.
fn fifty_concurrent_misses(origin: &OriginProc, edge: &EdgeProc, name: &str, data: &[u8]) -> u64 {
    // The feed's own GETs (an edge catching up) would count as origin fetches.
    origin.must_see_edges_caught_up(1);
    let before = origin.must_count_gets();
    std::thread::scope(|scope| {
        for _ in 0..50 {
            scope.spawn(|| {
                let c = edge.client(&[PUBLIC_HOST]);
                let r = get(&c, edge, PUBLIC_HOST, &format!("/{name}"));
                assert_eq!(r.status(), 200);
                assert!(
                    body_of(r) == data,
                    "a collapsed reader got a different body"
                );
            });
        }
    });
    origin.must_count_gets() - before
}

#[test]
fn concurrent_misses_collapse_into_one_origin_fetch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Api::new(&origin);
    api.setup();
    // A small object (below the 1 MiB slice size) is fetched once, whole.
    let small: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    api.must("PUT", "/public/small.bin", &[], small.clone());
    // A large one is fetched once per slice.
    let big: Vec<u8> = (0..2_500_000u32).map(|i| (i % 253) as u8).collect();
    api.must("PUT", "/public/big.bin", &[], big.clone());
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    assert_eq!(
        fifty_concurrent_misses(&origin, &edge, "small.bin", &small),
        1,
        "50 concurrent misses of a small object, one origin request"
    );
    assert_eq!(
        fifty_concurrent_misses(&origin, &edge, "big.bin", &big),
        3,
        "50 concurrent misses of a 2.4 MiB object, one origin request per 1 MiB slice"
    );
}

#[test]
fn stale_if_error_and_disk_tier_survive_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut origin = OriginProc::start(dir.path());
    let api = Api::new(&origin);
    api.setup();
    api.must(
        "PUT",
        "/public/a.txt",
        &[("cache-control", "max-age=1")],
        b"version a".to_vec(),
    );
    api.must("PUT", "/public/b.txt", &[], b"version b".to_vec());
    let mut edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let c = edge.client(&[PUBLIC_HOST]);
    assert_eq!(body_of(get(&c, &edge, PUBLIC_HOST, "/a.txt")), b"version a");
    assert_eq!(body_of(get(&c, &edge, PUBLIC_HOST, "/b.txt")), b"version b");
    // A fill commits (fsync, rename into place) just after its last byte reached the client.
    let cache_dir = dir.path().join("e1-cache");
    eventually("both entries to be committed to disk", || {
        outpost_tests::clients::walk(&cache_dir)
            .iter()
            .filter(|f| f.ends_with(".meta"))
            .count()
            >= 2
    });

    // Restart the edge: the disk tier still has both.
    edge.restart();
    let c = edge.client(&[PUBLIC_HOST]);
    let r = get(&c, &edge, PUBLIC_HOST, "/b.txt");
    assert_eq!(cache_status(&r), "HIT", "disk tier survives a restart");
    assert_eq!(body_of(r), b"version b");

    // Origin down: the expired entry is served stale, an uncached object is a 502.
    origin.kill();
    eventually("a.txt to expire and be served stale", || {
        let r = get(&c, &edge, PUBLIC_HOST, "/a.txt");
        r.status() == 200 && cache_status(&r) == "STALE"
    });
    let r = get(&c, &edge, PUBLIC_HOST, "/never-cached.txt");
    assert_eq!(r.status(), 502);
}

#[test]
fn custom_domain_and_pubcookie_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Api::new(&origin);
    api.setup();
    api.must("PUT", "/private/secret.txt", &[], b"top secret".to_vec());
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    // Map a custom domain to the account; the edge learns it from the feed.
    api.must(
        "POST",
        "",
        &[
            ("x-account-meta-outpost-domains", "photos.example.test"),
            ("x-account-meta-outpost-default-container", "public"),
        ],
        vec![],
    );
    let host = "photos.example.test";
    let c = edge.client(&[host]);
    eventually("the custom domain to be known", || {
        get(&c, &edge, host, "/private/secret.txt").status() == 403
    });

    let mut grant = Claims::new("demo", TokenKind::Grant, "/private", now() + 30);
    grant.nonce = Some("nonce-1".into());
    let grant = token::sign(&grant, &key()).expect("sign");
    let login = format!("/.outpost/login?grant={grant}&next=/private/secret.txt");
    let r = get(&c, &edge, host, &login);
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/private/secret.txt");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let r = c
        .get(format!(
            "http://{host}:{}/private/secret.txt",
            edge.addr.port()
        ))
        .header("cookie", &pair)
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(body_of(r), b"top secret");

    // Single use.
    let r = get(&c, &edge, host, &login);
    assert_eq!(r.status(), 403);
    // No open redirect.
    let r = get(
        &c,
        &edge,
        host,
        &format!("/.outpost/login?grant={grant}&next=https://evil.test/"),
    );
    assert_eq!(r.status(), 400);
}

/// A session past half its idle window is re-issued by the edge (sliding), keeping its start
/// and hard expiry; a fresh one is not.
#[test]
fn sessions_slide() {
    use outpost_auth::pubcookie;
    use outpost_auth::token::ScopeClaim;
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Api::new(&origin);
    api.setup();
    api.must("PUT", "/private/s.txt", &[], b"slide".to_vec());
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let c = edge.client(&[PRIVATE_HOST]);
    let session = |started: u64| {
        let scopes = vec![ScopeClaim {
            pattern: "/private".into(),
            methods: None,
        }];
        let hard = now() + 3600;
        let mut claims =
            pubcookie::session_claims("demo", scopes, Some("s1"), None, hard, 600, started);
        // Still inside its idle window, but past half of it when started 400 s ago.
        claims.expires = now() + 200;
        format!(
            "outpost_session={}",
            pubcookie::sign_session(&claims, &key())
                .expect("sign")
                .token
        )
    };
    let fetch = |cookie: &str| {
        c.get(format!("http://{PRIVATE_HOST}:{}/s.txt", edge.addr.port()))
            .header("cookie", cookie)
            .send()
            .expect("request")
    };
    let r = fetch(&session(now() - 400));
    assert_eq!(r.status(), 200);
    let renewed = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(renewed.starts_with("outpost_session=op1.k1."), "{renewed}");
    let pair = renewed.split(';').next().expect("pair").to_owned();
    assert_eq!(fetch(&pair).status(), 200, "the re-issued session works");
    let r = fetch(&session(now()));
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("set-cookie").is_none(),
        "a fresh session is not re-issued"
    );
}
