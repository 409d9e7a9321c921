//! The edge as a shared HTTP cache (RFC 9111), conformance-tested in generic mode against a
//! scripted origin that sends exactly the headers under test and counts what reaches it.
//! Each test is named after the section it checks. Staleness is produced with `Age` and
//! `Date` headers, never by waiting.

use std::time::{Duration, SystemTime};

use outpost_tests::cluster::EdgeProc;
use outpost_tests::scripted::{Script, ScriptedOrigin};

struct Rig {
    origin: ScriptedOrigin,
    edge: EdgeProc,
    client: reqwest::blocking::Client,
    _dir: tempfile::TempDir,
}

const HOST: &str = "site.example";

fn rig_with(extra: &str) -> Option<Rig> {
    let Some(origin) = ScriptedOrigin::start() else {
        eprintln!("SKIPPED: python3 is needed for the scripted origin");
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = EdgeProc::start_raw(
        dir.path(),
        "e",
        &format!(
            "[generic]\naddress = \"127.0.0.1:{}\"\n[cache]\ndisk_dir = \"{}\"\n{extra}",
            origin.port,
            dir.path().join("cache").display()
        ),
    );
    let client = edge.client(&[HOST]);
    Some(Rig {
        origin,
        edge,
        client,
        _dir: dir,
    })
}

fn rig() -> Option<Rig> {
    rig_with("")
}

struct Got {
    status: u16,
    cache: String,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Rig {
    fn url(&self, path: &str) -> String {
        format!("http://{HOST}:{}{path}", self.edge.addr.port())
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut r = self
            .client
            .request(method.parse().expect("method"), self.url(path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let cache = headers
            .get("x-outpost-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.text().expect("body");
        Got {
            status,
            cache,
            headers,
            body,
        }
    }

    fn get(&self, path: &str) -> Got {
        self.send("GET", path, &[])
    }
}

fn http_date(offset_secs: i64) -> String {
    let now = SystemTime::now();
    let t = if offset_secs >= 0 {
        now + Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}

/// §3 / §4.2: a response without explicit freshness, validators or `Last-Modified` is not
/// fresh: nothing is served from cache (the old edge kept every 200 for an hour).
#[test]
fn s3_no_freshness_information_is_never_served_from_cache() {
    let Some(r) = rig() else { return };
    r.origin.must_script("/plain", &Script::ok(&[]));
    for _ in 0..3 {
        let g = r.get("/plain");
        assert_eq!(g.status, 200);
        assert_ne!(g.cache, "HIT");
    }
    assert_eq!(r.origin.must_count("/plain"), 3);
}

/// §3: `no-store`, `private`, `Vary: *`, `Set-Cookie` and 5xx are not stored; a heuristically
/// cacheable status other than 200 (404) and an explicitly fresh 302 are.
#[test]
fn s3_what_may_be_stored() {
    let Some(r) = rig() else { return };
    let not_stored: &[(&str, Script)] = &[
        (
            "/no-store",
            Script::ok(&[("cache-control", "no-store, max-age=60")]),
        ),
        (
            "/private",
            Script::ok(&[("cache-control", "private, max-age=60")]),
        ),
        (
            "/vary-star",
            Script::ok(&[("cache-control", "max-age=60"), ("vary", "*")]),
        ),
        (
            "/cookie",
            Script::ok(&[("cache-control", "max-age=60"), ("set-cookie", "sid=1")]),
        ),
        (
            "/error",
            Script::status(500, &[("cache-control", "max-age=60")]),
        ),
    ];
    for (path, script) in not_stored {
        r.origin.must_script(path, script);
        let a = r.get(path);
        let b = r.get(path);
        assert_ne!(b.cache, "HIT", "{path}");
        assert_ne!(a.body, "", "{path}");
        assert_eq!(
            r.origin.must_count(path),
            2,
            "{path} must reach the origin twice"
        );
    }
    // The cookie reached the client that caused it, but no other.
    let c = r.get("/cookie");
    assert_eq!(c.headers["set-cookie"], "sid=1");
    let stored: &[(&str, Script)] = &[
        (
            "/missing",
            Script::status(404, &[("cache-control", "max-age=60")]),
        ),
        (
            "/moved",
            Script::status(302, &[("cache-control", "max-age=60"), ("location", "/x")]),
        ),
        (
            "/cookie-stripped",
            Script::ok(&[
                ("cache-control", "max-age=60, private=\"set-cookie\""),
                ("set-cookie", "sid=2"),
            ]),
        ),
    ];
    for (path, script) in stored {
        r.origin.must_script(path, script);
        let a = r.get(path);
        let b = r.get(path);
        assert_eq!(a.status, script.status, "{path}");
        assert_eq!(
            (b.status, b.cache.as_str()),
            (script.status, "HIT"),
            "{path}"
        );
        assert_eq!(a.body, b.body, "{path}");
        assert_eq!(r.origin.must_count(path), 1, "{path}");
    }
    let c = r.get("/cookie-stripped");
    assert!(
        c.headers.get("set-cookie").is_none(),
        "private=set-cookie is not replayed"
    );
}

/// §3: an incomplete response (the origin hangs up before `Content-Length` bytes) is never
/// stored.
#[test]
fn s3_incomplete_responses_are_not_stored() {
    let Some(r) = rig() else { return };
    let mut script = Script::ok(&[("cache-control", "max-age=600")]);
    script.truncate = true;
    r.origin.must_script("/short", &script);
    for _ in 0..2 {
        let resp = r.client.get(r.url("/short")).send().expect("request");
        // Either the edge noticed before answering (502) or the client sees the body cut
        // short; never a complete-looking 200.
        let status = resp.status().as_u16();
        assert!(status == 502 || resp.bytes().is_err(), "status {status}");
    }
    assert_eq!(r.origin.must_count("/short"), 2, "nothing was stored");
}

/// §3.5: a request with `Authorization` is stored only if the response says `public`,
/// `s-maxage` or `must-revalidate`, and never shares an entry with anonymous requests.
#[test]
fn s3_5_authorization_never_shares_entries() {
    let Some(r) = rig() else { return };
    r.origin
        .must_script("/me", &Script::ok(&[("cache-control", "max-age=60")]));
    let alice = r.send("GET", "/me", &[("authorization", "Bearer alice")]);
    let bob = r.send("GET", "/me", &[("authorization", "Bearer bob")]);
    assert_eq!(alice.body, "body fetch 1");
    assert_eq!(bob.body, "body fetch 2", "bob never gets alice's answer");
    let anon = r.get("/me");
    assert_eq!(anon.body, "body fetch 3");
    let anon2 = r.get("/me");
    assert_eq!(
        (anon2.cache.as_str(), anon2.body.as_str()),
        ("HIT", "body fetch 3")
    );
    let carol = r.send("GET", "/me", &[("authorization", "Bearer carol")]);
    assert_eq!(
        carol.body, "body fetch 4",
        "an anonymous entry never answers credentials"
    );
    // Marked shareable by the origin: stored for credentialed requests.
    r.origin.must_script(
        "/shared",
        &Script::ok(&[("cache-control", "public, max-age=60")]),
    );
    r.send("GET", "/shared", &[("authorization", "Bearer alice")]);
    let b = r.send("GET", "/shared", &[("authorization", "Bearer bob")]);
    assert_eq!(b.cache, "HIT");
    assert_eq!(r.origin.must_count("/shared"), 1);
}

/// A path, the headers its response carries, and whether the edge may reuse it fresh.
type Case = (&'static str, Vec<(&'static str, String)>, bool);

/// §4.2.1: `s-maxage` over `max-age` over `Expires`; invalid values mean stale.
#[test]
fn s4_2_1_freshness_lifetime() {
    let Some(r) = rig() else { return };
    let cases: &[Case] = &[
        (
            "/smax-wins",
            vec![("cache-control", "max-age=0, s-maxage=600".into())],
            true,
        ),
        (
            "/smax-zero",
            vec![
                ("cache-control", "max-age=600, s-maxage=0".into()),
                ("etag", "\"a\"".into()),
            ],
            false,
        ),
        (
            "/maxage-over-expires",
            vec![
                ("cache-control", "max-age=0".into()),
                ("expires", http_date(600)),
                ("etag", "\"a\"".into()),
            ],
            false,
        ),
        (
            "/expires",
            vec![("date", http_date(0)), ("expires", http_date(600))],
            true,
        ),
        (
            "/expires-past",
            vec![
                ("date", http_date(0)),
                ("expires", http_date(-10)),
                ("etag", "\"a\"".into()),
            ],
            false,
        ),
        (
            "/expires-invalid",
            vec![("expires", "0".into()), ("etag", "\"a\"".into())],
            false,
        ),
        (
            "/maxage-invalid",
            vec![
                ("cache-control", "max-age=soon".into()),
                ("etag", "\"a\"".into()),
            ],
            false,
        ),
    ];
    for (path, headers, fresh) in cases {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        r.origin.must_script(path, &Script::ok(&hs));
        r.get(path);
        let b = r.get(path);
        assert_eq!(b.status, 200, "{path}");
        assert_eq!(b.cache == "HIT", *fresh, "{path}: {}", b.cache);
        assert_eq!(
            r.origin.must_count(path),
            if *fresh { 1 } else { 2 },
            "{path}"
        );
    }
}

/// §4.2.2: heuristic freshness only from `Last-Modified`.
#[test]
fn s4_2_2_heuristic_freshness_needs_last_modified() {
    let Some(r) = rig() else { return };
    r.origin.must_script(
        "/old",
        &Script::ok(&[("last-modified", &http_date(-10 * 86_400))]),
    );
    r.get("/old");
    assert_eq!(r.get("/old").cache, "HIT");
    assert_eq!(r.origin.must_count("/old"), 1);
}

/// §4.2.3: the received `Age` counts against `max-age`, and a hit's `Age` includes it.
#[test]
fn s4_2_3_age_counts() {
    let Some(r) = rig() else { return };
    r.origin.must_script(
        "/aged",
        &Script::ok(&[("cache-control", "max-age=100"), ("age", "40")]),
    );
    r.get("/aged");
    let hit = r.get("/aged");
    assert_eq!(hit.cache, "HIT");
    let age: u64 = hit.headers["age"].to_str().unwrap().parse().unwrap();
    assert!((40..100).contains(&age), "age {age}");
    // Older than its lifetime on arrival: stale at once.
    r.origin.must_script(
        "/too-old",
        &Script::ok(&[
            ("cache-control", "max-age=100"),
            ("age", "150"),
            ("etag", "\"t\""),
        ]),
    );
    r.get("/too-old");
    assert_ne!(r.get("/too-old").cache, "HIT");
    assert_eq!(r.origin.must_count("/too-old"), 2);
}

/// §4.3: `no-cache` and stale entries are revalidated with the stored validator; the `304`
/// updates the stored fields (§4.3.4) and freshens the entry.
#[test]
fn s4_3_validation_and_304_updates() {
    let Some(r) = rig() else { return };
    r.origin.must_script(
        "/nc",
        &Script::ok(&[("cache-control", "no-cache"), ("etag", "\"v1\"")])
            .revalidates_with(&[("etag", "\"v1\""), ("cache-control", "no-cache")]),
    );
    let a = r.get("/nc");
    let b = r.get("/nc");
    let c = r.get("/nc");
    assert_eq!(a.body, "body fetch 1");
    assert_eq!(
        (b.body.as_str(), b.cache.as_str()),
        ("body fetch 1", "REVALIDATED")
    );
    assert_eq!(
        c.cache, "REVALIDATED",
        "no-cache is never served without validation"
    );
    let log = r.origin.must_log("/nc");
    assert_eq!(log.len(), 3);
    assert_eq!(log[1].header("if-none-match"), Some("\"v1\""));
    // A stale entry whose 304 brings new fields and a fresh lifetime.
    r.origin.must_script(
        "/upd",
        &Script::ok(&[
            ("cache-control", "max-age=0"),
            ("etag", "\"e\""),
            ("x-version", "1"),
        ])
        .revalidates_with(&[
            ("etag", "\"e\""),
            ("cache-control", "max-age=600"),
            ("x-version", "2"),
        ]),
    );
    r.get("/upd");
    let v = r.get("/upd");
    assert_eq!(v.cache, "REVALIDATED");
    assert_eq!(v.headers["x-version"], "2");
    let h = r.get("/upd");
    assert_eq!(h.cache, "HIT", "the 304's max-age freshened the entry");
    assert_eq!(h.headers["x-version"], "2");
    assert_eq!(h.headers["cache-control"], "max-age=600");
    assert_eq!(h.body, "body fetch 1");
    assert_eq!(r.origin.must_count("/upd"), 2);
}

/// RFC 5861 / §4.2.4: `stale-if-error` serves the stored response when the origin fails;
/// `must-revalidate` forbids it.
#[test]
fn s4_2_4_stale_if_error_and_must_revalidate() {
    let Some(r) = rig() else { return };
    r.origin.must_script(
        "/sie",
        &Script::ok(&[
            ("cache-control", "max-age=10, stale-if-error=600"),
            ("age", "20"),
        ]),
    );
    r.origin.must_script(
        "/mr",
        &Script::ok(&[
            (
                "cache-control",
                "max-age=10, must-revalidate, stale-if-error=600",
            ),
            ("age", "20"),
        ]),
    );
    assert_eq!(r.get("/sie").status, 200);
    assert_eq!(r.get("/mr").status, 200);
    r.origin
        .must_script("/sie", &Script::status(503, &[("retry-after", "5")]));
    r.origin
        .must_script("/mr", &Script::status(503, &[("retry-after", "5")]));
    let s = r.get("/sie");
    assert_eq!((s.status, s.body.as_str()), (200, "body fetch 1"));
    let m = r.get("/mr");
    assert_eq!(
        m.status, 503,
        "must-revalidate: the error, not the stale body"
    );
}

/// RFC 5861: `stale-while-revalidate` answers at once from the stale entry and refreshes it
/// in the background.
#[test]
fn s4_2_4_stale_while_revalidate() {
    let Some(r) = rig() else { return };
    r.origin.must_script(
        "/swr",
        &Script::ok(&[
            ("cache-control", "max-age=1, stale-while-revalidate=600"),
            ("age", "5"),
        ]),
    );
    r.get("/swr");
    let s = r.get("/swr");
    assert_eq!(
        (s.cache.as_str(), s.body.as_str()),
        ("STALE", "body fetch 1")
    );
    outpost_tests::clients::must_eventually(
        "the background revalidation",
        Duration::from_secs(10),
        || r.origin.must_count("/swr") == 2,
    );
}

/// §4.4: a successful unsafe method invalidates the target URI and same-host `Location` /
/// `Content-Location`; a failed one invalidates nothing.
#[test]
fn s4_4_unsafe_methods_invalidate() {
    let Some(r) = rig() else { return };
    for p in ["/items", "/items/7", "/other"] {
        r.origin
            .must_script(p, &Script::ok(&[("cache-control", "max-age=600")]));
        r.get(p);
        assert_eq!(r.get(p).cache, "HIT", "{p}");
    }
    // A failed POST leaves the entry.
    r.origin.must_script("/items", &Script::status(403, &[]));
    assert_eq!(r.send("POST", "/items", &[]).status, 403);
    r.origin
        .must_script("/items", &Script::ok(&[("cache-control", "max-age=600")]));
    assert_eq!(r.get("/items").cache, "HIT");
    // A successful one invalidates the target and its Location.
    r.origin
        .must_script("/items", &Script::status(201, &[("location", "/items/7")]));
    assert_eq!(r.send("POST", "/items", &[]).status, 201);
    r.origin
        .must_script("/items", &Script::ok(&[("cache-control", "max-age=600")]));
    assert_ne!(r.get("/items").cache, "HIT");
    assert_ne!(r.get("/items/7").cache, "HIT");
    assert_eq!(r.get("/other").cache, "HIT");
    for m in ["PUT", "DELETE", "PATCH"] {
        r.origin
            .must_script("/other", &Script::ok(&[("cache-control", "max-age=600")]));
        r.get("/other");
        assert_eq!(r.get("/other").cache, "HIT");
        assert_eq!(r.send(m, "/other", &[]).status, 200);
        assert_ne!(r.get("/other").cache, "HIT", "{m} invalidates");
    }
}

/// §5.2.1: request `max-age`, `min-fresh`, `max-stale`, `only-if-cached`; `no-cache` from
/// clients is ignored unless configured.
#[test]
fn s5_2_1_request_directives() {
    let Some(r) = rig() else { return };
    r.origin.must_script(
        "/d",
        &Script::ok(&[
            ("cache-control", "max-age=100"),
            ("age", "50"),
            ("etag", "\"d\""),
        ])
        .revalidates_with(&[("etag", "\"d\"")]),
    );
    r.get("/d");
    let n = || r.origin.must_count("/d");
    assert_eq!(
        r.send("GET", "/d", &[("cache-control", "max-age=100")])
            .cache,
        "HIT"
    );
    assert_eq!(n(), 1);
    assert_eq!(
        r.send("GET", "/d", &[("cache-control", "max-age=10")])
            .cache,
        "REVALIDATED"
    );
    assert_eq!(n(), 2);
    assert_eq!(
        r.send("GET", "/d", &[("cache-control", "min-fresh=10")])
            .cache,
        "HIT"
    );
    assert_eq!(
        r.send("GET", "/d", &[("cache-control", "min-fresh=99999")])
            .cache,
        "REVALIDATED"
    );
    assert_eq!(n(), 3);
    assert_eq!(
        r.send("GET", "/d", &[("cache-control", "no-cache")]).cache,
        "HIT"
    );
    assert_eq!(r.send("GET", "/d", &[("pragma", "no-cache")]).cache, "HIT");
    assert_eq!(n(), 3, "client no-cache is ignored by default");
    // max-stale accepts a stale entry.
    r.origin.must_script(
        "/stale",
        &Script::ok(&[
            ("cache-control", "max-age=10"),
            ("age", "30"),
            ("etag", "\"s\""),
        ]),
    );
    r.get("/stale");
    let s = r.send("GET", "/stale", &[("cache-control", "max-stale=600")]);
    assert_eq!((s.status, s.body.as_str()), (200, "body fetch 1"));
    assert_eq!(r.origin.must_count("/stale"), 1);
    // only-if-cached: a miss is a 504 and never reaches the origin.
    r.origin
        .must_script("/never", &Script::ok(&[("cache-control", "max-age=60")]));
    let o = r.send("GET", "/never", &[("cache-control", "only-if-cached")]);
    assert_eq!(o.status, 504);
    assert_eq!(r.origin.must_count("/never"), 0);
    let o = r.send("GET", "/d", &[("cache-control", "only-if-cached")]);
    assert_eq!((o.status, o.cache.as_str()), (200, "HIT"));
}

/// The configured switch: with `honor_request_no_cache`, client `no-cache` revalidates.
#[test]
fn s5_2_1_4_request_no_cache_when_configured() {
    let Some(r) = rig_with("honor_request_no_cache = true\n") else {
        return;
    };
    r.origin.must_script(
        "/h",
        &Script::ok(&[("cache-control", "max-age=600"), ("etag", "\"h\"")])
            .revalidates_with(&[("etag", "\"h\"")]),
    );
    r.get("/h");
    assert_eq!(r.get("/h").cache, "HIT");
    let v = r.send("GET", "/h", &[("cache-control", "no-cache")]);
    assert_eq!(v.cache, "REVALIDATED");
    assert_eq!(r.origin.must_count("/h"), 2);
}

/// Generic mode proxies every method with its body, and strips hop-by-hop fields both ways
/// (RFC 9110 §7.6.1).
#[test]
fn generic_mode_proxies_every_method_and_strips_hop_by_hop() {
    let Some(r) = rig() else { return };
    r.origin.must_script(
        "/api",
        &Script::ok(&[
            ("connection", "x-hop"),
            ("x-hop", "secret"),
            ("x-kept", "1"),
        ]),
    );
    let body = outpost_tests::clients::pseudo_random(7, 3 << 20);
    let md5 = outpost_tests::clients::md5_hex(&body);
    for m in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let resp = r
            .client
            .request(m.parse().unwrap(), r.url("/api"))
            .header("connection", "x-client-hop")
            .header("x-client-hop", "1")
            .header("keep-alive", "timeout=5")
            .body(body.clone())
            .send()
            .expect("send");
        assert_eq!(resp.status(), 200, "{m}");
        assert!(resp.headers().get("x-hop").is_none(), "{m}");
        assert_eq!(resp.headers()["x-kept"], "1");
    }
    let log = r.origin.must_log("/api");
    assert_eq!(log.len(), 5);
    for (seen, m) in log
        .iter()
        .zip(["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    {
        assert_eq!(seen.method, m);
        assert_eq!(
            (seen.body_len, seen.body_md5.as_str()),
            (3 << 20, md5.as_str()),
            "{m}"
        );
        assert_eq!(seen.header("x-client-hop"), None, "{m}");
        assert_eq!(seen.header("keep-alive"), None, "{m}");
    }
}

/// Malformed `Cache-Control`, `Age`, `Expires` and `Vary` from the origin, and malformed
/// request directives, never cause a 500 or a cached error.
#[test]
fn malformed_cache_headers_get_answers_not_errors() {
    let Some(r) = rig() else { return };
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "/m1",
            &[("cache-control", "max-age=\"60"), ("etag", "\"m\"")],
        ),
        (
            "/m2",
            &[("cache-control", ",,;;=,max-age=-5"), ("age", "abc")],
        ),
        (
            "/m3",
            &[
                ("cache-control", "max-age=60"),
                ("age", "99999999999999999999"),
            ],
        ),
        (
            "/m4",
            &[("expires", "yesterday"), ("cache-control", "public")],
        ),
        ("/m5", &[("cache-control", "max-age=60"), ("vary", ",,,")]),
        (
            "/m6",
            &[
                ("cache-control", "max-age=60"),
                ("vary", "accept-encoding, *"),
            ],
        ),
    ];
    for (path, headers) in cases {
        r.origin.must_script(path, &Script::ok(headers));
        for _ in 0..2 {
            let g = r.get(path);
            assert_eq!(g.status, 200, "{path}");
            assert!(g.body.starts_with("body"), "{path}");
        }
    }
    for bad in [
        "max-age=x",
        "min-fresh=",
        "max-stale=-1",
        "\"",
        "only-if-cached=1",
    ] {
        let g = r.send("GET", "/m1", &[("cache-control", bad)]);
        assert!(g.status == 200 || g.status == 504, "{bad}: {}", g.status);
    }
    // A cached error never happens: a 404 without freshness is not stored.
    r.origin.must_script("/gone", &Script::status(404, &[]));
    r.get("/gone");
    assert_ne!(r.get("/gone").cache, "HIT");
}

/// CORS per domain in generic mode (`[[generic.cors]]`): preflights answered at the edge and
/// never sent upstream; actual responses get the exact allowed origin, computed per request so
/// one cache entry serves every origin; the upstream's own CORS headers are replaced.
#[test]
fn generic_mode_cors_per_domain() {
    let Some(r) = rig_with(
        "[[generic.cors]]\ndomains = [\"site.example\"]\n\
         allow_origins = [\"https://app.example\"]\nallow_credentials = true\nmax_age = \"10m\"\n",
    ) else {
        return;
    };
    r.origin.must_script(
        "/font.woff2",
        &Script::ok(&[
            ("cache-control", "max-age=600"),
            ("access-control-allow-origin", "*"),
        ]),
    );
    let pre = r.send(
        "OPTIONS",
        "/font.woff2",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "X-Upload-Id"),
        ],
    );
    assert_eq!(pre.status, 200);
    assert_eq!(
        pre.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(pre.headers["access-control-allow-credentials"], "true");
    assert_eq!(pre.headers["access-control-allow-headers"], "x-upload-id");
    assert_eq!(pre.headers["access-control-max-age"], "600");
    let refused = r.send(
        "OPTIONS",
        "/font.woff2",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(refused.status, 401);
    assert!(refused.headers.get("access-control-allow-origin").is_none());
    assert_eq!(
        r.origin.must_count("/font.woff2"),
        0,
        "preflights never reach the upstream"
    );
    let a = r.send("GET", "/font.woff2", &[("origin", "https://app.example")]);
    assert_eq!(
        a.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(a.headers["vary"].to_str().unwrap().contains("Origin"));
    let b = r.send("GET", "/font.woff2", &[("origin", "https://evil.example")]);
    assert_eq!(b.cache, "HIT", "one entry for every origin");
    assert!(
        b.headers.get("access-control-allow-origin").is_none(),
        "the upstream's `*` is replaced by the edge's rules"
    );
    let c = r.send("GET", "/font.woff2", &[("origin", "https://app.example")]);
    assert_eq!(c.cache, "HIT");
    assert_eq!(
        c.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.origin.must_count("/font.woff2"), 1);
}
