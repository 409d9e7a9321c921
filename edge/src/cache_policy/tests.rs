use super::*;
use std::time::UNIX_EPOCH;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(t(secs))
}

fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
    let mut h = ResponseHeader::build(status, None).unwrap();
    for (k, v) in headers {
        h.append_header(k.to_string(), *v).unwrap();
    }
    h
}

const NOW: u64 = 1_800_000_000;

fn ex() -> Exchange {
    Exchange::at(t(NOW))
}

fn lifetime(policy: &CachePolicy, r: &ResponseHeader) -> Result<u64, &'static str> {
    policy.storable(r, &ex()).map(|f| f.lifetime.as_secs())
}

#[test]
fn s3_storing_rules() {
    let p = CachePolicy::default();
    assert_eq!(
        lifetime(&p, &resp(200, &[("cache-control", "max-age=60")])),
        Ok(60)
    );
    assert_eq!(
        lifetime(&p, &resp(200, &[("cache-control", "no-store, max-age=60")])),
        Err("no-store")
    );
    assert_eq!(
        lifetime(&p, &resp(200, &[("cache-control", "private, max-age=60")])),
        Err("private")
    );
    // Qualified private only strips the named field.
    assert_eq!(
        lifetime(
            &p,
            &resp(
                200,
                &[
                    ("cache-control", "private=\"set-cookie\", max-age=60"),
                    ("set-cookie", "a=b")
                ]
            )
        ),
        Ok(60)
    );
    assert_eq!(
        lifetime(
            &p,
            &resp(
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]
            )
        ),
        Err("set-cookie")
    );
    assert_eq!(
        lifetime(
            &p,
            &resp(200, &[("cache-control", "max-age=60"), ("vary", "*")])
        ),
        Err("vary *")
    );
    assert_eq!(
        lifetime(&p, &resp(206, &[("cache-control", "max-age=60")])),
        Err("status not storable")
    );
    assert_eq!(
        lifetime(&p, &resp(503, &[("cache-control", "max-age=60")])),
        Err("server error")
    );
    // 404 is heuristically cacheable: with max-age it is stored.
    assert_eq!(
        lifetime(&p, &resp(404, &[("cache-control", "max-age=30")])),
        Ok(30)
    );
    // 302 needs explicit freshness.
    assert_eq!(
        lifetime(&p, &resp(302, &[("last-modified", &date(NOW - 1000))])),
        Err("no explicit freshness")
    );
    assert_eq!(
        lifetime(&p, &resp(302, &[("cache-control", "max-age=5")])),
        Ok(5)
    );
}

#[test]
fn s3_5_authorization() {
    let p = CachePolicy::default();
    let auth = Exchange {
        authorization: true,
        ..ex()
    };
    let f = |cc: &str| {
        p.storable(&resp(200, &[("cache-control", cc)]), &auth)
            .map(|_| ())
    };
    assert_eq!(f("max-age=60"), Err("authorization"));
    assert_eq!(f("public, max-age=60"), Ok(()));
    assert_eq!(f("s-maxage=60"), Ok(()));
    assert_eq!(f("must-revalidate, max-age=60"), Ok(()));
}

#[test]
fn s4_2_1_lifetime_precedence_and_invalid_values() {
    let p = CachePolicy::default();
    let both = resp(200, &[("cache-control", "max-age=10, s-maxage=20")]);
    assert_eq!(lifetime(&p, &both), Ok(20));
    let exp = resp(200, &[("date", &date(NOW)), ("expires", &date(NOW + 90))]);
    assert_eq!(lifetime(&p, &exp), Ok(90));
    let exp_and_max = resp(
        200,
        &[("cache-control", "max-age=5"), ("expires", &date(NOW + 90))],
    );
    assert_eq!(lifetime(&p, &exp_and_max), Ok(5));
    // Invalid values: stale (stored only with a validator).
    let bad = resp(200, &[("cache-control", "max-age=abc"), ("etag", "\"x\"")]);
    assert_eq!(lifetime(&p, &bad), Ok(0));
    let bad_exp = resp(200, &[("expires", "tomorrow"), ("etag", "\"x\"")]);
    assert_eq!(lifetime(&p, &bad_exp), Ok(0));
    let bad_no_validator = resp(200, &[("expires", "0")]);
    assert_eq!(lifetime(&p, &bad_no_validator), Err("not fresh"));
    let two_expires = resp(
        200,
        &[
            ("expires", &date(NOW + 90)),
            ("expires", &date(NOW + 90)),
            ("etag", "\"x\""),
        ],
    );
    assert_eq!(lifetime(&p, &two_expires), Ok(0));
    let no_cache = resp(
        200,
        &[
            ("cache-control", "no-cache, max-age=600"),
            ("etag", "\"x\""),
        ],
    );
    assert_eq!(lifetime(&p, &no_cache), Ok(0));
}

#[test]
fn s4_2_2_heuristic_only_with_last_modified() {
    let p = CachePolicy::default();
    assert_eq!(lifetime(&p, &resp(200, &[])), Err("not fresh"));
    let lm = resp(
        200,
        &[("date", &date(NOW)), ("last-modified", &date(NOW - 1000))],
    );
    assert_eq!(lifetime(&p, &lm), Ok(100));
    let old = resp(200, &[("last-modified", &date(NOW - 100 * 86_400))]);
    assert_eq!(lifetime(&p, &old), Ok(86_400), "capped");
    let with_default = CachePolicy {
        default_ttl: Some(Duration::from_secs(3600)),
        ..p
    };
    assert_eq!(lifetime(&with_default, &resp(200, &[])), Ok(3600));
    assert_eq!(
        lifetime(&with_default, &lm),
        Ok(3600),
        "the operator's default wins"
    );
}

#[test]
fn s4_2_3_age_is_folded_into_creation() {
    let p = CachePolicy::default();
    let ex = Exchange {
        authorization: false,
        request_time: t(NOW - 2),
        response_time: t(NOW),
    };
    let r = resp(200, &[("cache-control", "max-age=100"), ("age", "30")]);
    let RespCacheable::Cacheable(meta) = p.admit(&r, &ex) else {
        panic!("cacheable")
    };
    assert_eq!(meta.created(), t(NOW - 32), "age + response delay");
    assert_eq!(meta.fresh_until(), t(NOW + 68));
    assert!(meta.headers().get("age").is_none());
    // Apparent age from Date wins when larger.
    let r = resp(
        200,
        &[("cache-control", "max-age=100"), ("date", &date(NOW - 50))],
    );
    let RespCacheable::Cacheable(meta) = p.admit(&r, &ex) else {
        panic!("cacheable")
    };
    assert_eq!(meta.created(), t(NOW - 50));
    // Invalid Age is ignored.
    assert_eq!(age_header(&resp(200, &[("age", "-5")]).headers), None);
    assert_eq!(age_header(&resp(200, &[("age", "1e3")]).headers), None);
    let huge = format!("{}", u128::MAX);
    assert_eq!(
        age_header(&resp(200, &[("age", &huge)]).headers),
        Some(Duration::from_secs(u64::from(u32::MAX)))
    );
}

#[test]
fn s4_2_4_stale_permissions() {
    let p = CachePolicy {
        stale_while_revalidate: Duration::from_secs(60),
        stale_if_error: Duration::from_secs(600),
        ..CachePolicy::default()
    };
    let f = |cc: &str| {
        let f = p
            .storable(
                &resp(200, &[("cache-control", cc), ("etag", "\"e\"")]),
                &ex(),
            )
            .unwrap();
        (f.stale_while_revalidate, f.stale_if_error)
    };
    assert_eq!(f("max-age=10"), (60, 600));
    assert_eq!(
        f("max-age=10, stale-while-revalidate=5, stale-if-error=7"),
        (5, 7)
    );
    assert_eq!(f("max-age=10, must-revalidate"), (0, 0));
    assert_eq!(f("max-age=10, proxy-revalidate"), (0, 0));
    assert_eq!(f("s-maxage=10"), (0, 0));
    assert_eq!(f("no-cache"), (0, 0));
}

#[test]
fn s4_3_4_304_updates_stored_fields() {
    let mut stored = resp(
        200,
        &[
            ("cache-control", "max-age=1"),
            ("etag", "\"a\""),
            ("x-version", "1"),
            ("content-length", "5"),
        ],
    );
    let nm = resp(
        304,
        &[
            ("cache-control", "max-age=100"),
            ("x-version", "2"),
            ("x-new", "yes"),
            ("content-length", "0"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
        ],
    );
    merge_304(&mut stored, &nm);
    assert_eq!(stored.headers["cache-control"], "max-age=100");
    assert_eq!(stored.headers["x-version"], "2");
    assert_eq!(stored.headers["x-new"], "yes");
    assert_eq!(stored.headers["content-length"], "5");
    assert_eq!(stored.headers["etag"], "\"a\"");
    assert!(stored.headers.get("x-hop").is_none());
}

#[test]
fn s5_2_1_request_directives() {
    let p = CachePolicy::default();
    let r = resp(200, &[("cache-control", "max-age=100")]);
    let now = SystemTime::now();
    let RespCacheable::Cacheable(meta) = p.admit(
        &r,
        &Exchange {
            authorization: false,
            request_time: now - Duration::from_secs(50),
            response_time: now - Duration::from_secs(50),
        },
    ) else {
        panic!()
    };
    let d = |cc: &str| {
        let mut h = HeaderMap::new();
        h.insert("cache-control", cc.parse().unwrap());
        RequestDirectives::parse(&h).decide(&p, &meta, now)
    };
    assert_eq!(d("max-age=60"), HitDecision::AsIs);
    assert_eq!(d("max-age=10"), HitDecision::Revalidate);
    assert_eq!(d("min-fresh=10"), HitDecision::AsIs);
    assert_eq!(d("min-fresh=80"), HitDecision::Revalidate);
    assert_eq!(d("no-cache"), HitDecision::AsIs, "ignored by default");
    let honor = CachePolicy {
        honor_request_no_cache: true,
        ..p
    };
    let mut h = HeaderMap::new();
    h.insert("pragma", "no-cache".parse().unwrap());
    assert_eq!(
        RequestDirectives::parse(&h).decide(&honor, &meta, now),
        HitDecision::Revalidate
    );
    // max-stale on a stale entry.
    let later = now + Duration::from_secs(70);
    let mut h = HeaderMap::new();
    h.insert("cache-control", "max-stale=30".parse().unwrap());
    assert_eq!(
        RequestDirectives::parse(&h).decide(&p, &meta, later),
        HitDecision::ServeStale
    );
    h.insert("cache-control", "max-stale=5".parse().unwrap());
    assert_eq!(
        RequestDirectives::parse(&h).decide(&p, &meta, later),
        HitDecision::AsIs
    );
    h.insert("cache-control", "max-stale".parse().unwrap());
    assert_eq!(
        RequestDirectives::parse(&h).decide(&p, &meta, later),
        HitDecision::ServeStale
    );
    h.insert(
        "cache-control",
        "only-if-cached, max-age=abc".parse().unwrap(),
    );
    let rd = RequestDirectives::parse(&h);
    assert!(rd.only_if_cached);
    assert_eq!(rd.max_age, None, "invalid values are ignored");
}

#[test]
fn s4_4_invalidation_targets() {
    let mut h = HeaderMap::new();
    h.insert("location", "/items/7".parse().unwrap());
    h.insert(
        "content-location",
        "http://other.example/x".parse().unwrap(),
    );
    assert_eq!(
        invalidated_paths("/items?x=1", "site.example", StatusCode::CREATED, &h),
        vec!["/items?x=1".to_owned(), "/items/7".to_owned()]
    );
    h.insert("location", "http://SITE.example/a".parse().unwrap());
    assert_eq!(
        invalidated_paths("/b", "site.example", StatusCode::SEE_OTHER, &h),
        vec!["/b".to_owned(), "/a".to_owned()]
    );
    h.insert("location", "c".parse().unwrap());
    assert_eq!(
        invalidated_paths("/dir/b", "site.example", StatusCode::OK, &h),
        vec!["/dir/b".to_owned(), "/dir/c".to_owned()]
    );
    assert!(invalidated_paths("/b", "site.example", StatusCode::FORBIDDEN, &h).is_empty());
    assert!(is_safe(&Method::GET) && !is_safe(&Method::DELETE));
}

#[test]
fn malformed_headers_never_panic() {
    let p = CachePolicy::default();
    for cc in [
        "",
        ",,,",
        "max-age",
        "max-age=",
        "max-age=\"",
        "=5",
        "s-maxage=-1",
        "\u{7f}",
    ] {
        let mut r = ResponseHeader::build(200, None).unwrap();
        if let Ok(v) = HeaderValue::from_str(cc) {
            r.insert_header("cache-control", v).unwrap();
        }
        r.insert_header("vary", HeaderValue::from_bytes(b"\xff").unwrap())
            .unwrap();
        let _ = p.storable(&r, &ex());
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(cc) {
            h.insert("cache-control", v);
        }
        let _ = RequestDirectives::parse(&h);
    }
}
