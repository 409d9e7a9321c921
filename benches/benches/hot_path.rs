//! Criterion benchmarks of the edge's hit fast path decision: what a cached 1 KiB hit costs
//! before pingora writes it — routing, the access decision (public and with a signed URL),
//! the synchronous memory-tier lookup of the decoded head, and the per-request patch of the
//! head (`Age`; the cache status is added once per stored version).
//!
//! Run with `cargo bench -p outpost-benches --bench hot_path` (add `-- --quick` for a short
//! run). `RESULTS.md` records the figures.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::Criterion;
use http::HeaderMap;
use outpost_auth::token::{self, Claims};
use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind};
use outpost_edge::access::{self, EdgeRevocations, EdgeTokenCache};
use outpost_edge::cache::{CacheConfig, TieredStorage};
use outpost_edge::cache_policy::{CachePolicy, Exchange};
use outpost_edge::catalog::{Catalog, Snapshot};
use outpost_edge::routing;
use pingora::cache::storage::Storage;
use pingora::cache::trace::Span;
use pingora::cache::{CacheKey, RespCacheable};
use pingora::http::ResponseHeader;

const SECRET: &str = "bench-token-secret-0123456789";

fn catalog() -> Catalog {
    let wire: Snapshot = serde_json::from_str(&format!(
        r#"{{"format": 1, "seq": 1, "accounts": [{{"name": "demo", "meta": {{}},
            "token_keys": [{{"id": "k1", "secret": "{SECRET}"}}],
            "containers": [
              {{"name": "public", "meta": {{"x-container-read": ".r:*"}}}},
              {{"name": "private", "meta": {{}}}}
            ], "revocations": []}}]}}"#
    ))
    .expect("snapshot");
    Catalog::from_snapshot(&wire)
}

fn storage(
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
    keys: &[&str],
) -> &'static TieredStorage {
    let s: &'static TieredStorage = Box::leak(Box::new(
        TieredStorage::open(CacheConfig {
            memory_bytes: 64 << 20,
            memory_object_max: 1 << 20,
            disk_dir: dir.to_path_buf(),
            disk_bytes: 256 << 20,
        })
        .expect("open"),
    ));
    let mut resp = ResponseHeader::build(200, None).expect("header");
    for (k, v) in [
        ("content-type", "application/octet-stream"),
        ("content-length", "1024"),
        ("etag", "\"0123456789abcdef0123456789abcdef\""),
        ("last-modified", "Sun, 06 Dec 2026 12:00:00 GMT"),
    ] {
        resp.insert_header(k, v).expect("header");
    }
    let RespCacheable::Cacheable(meta) = CachePolicy {
        default_ttl: Some(Duration::from_secs(3600)),
        ..CachePolicy::default()
    }
    .admit(&resp, &Exchange::at(SystemTime::now())) else {
        panic!("cacheable")
    };
    rt.block_on(async {
        for key in keys {
            let key = CacheKey::new(*key, "");
            let mut mh = s
                .get_miss_handler(&key, &meta, &Span::inactive().handle())
                .await
                .expect("miss handler");
            mh.write_body(Bytes::from(vec![7u8; 1024]), true)
                .await
                .expect("write");
            mh.finish().await.expect("finish");
        }
    });
    s
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let public = "/v1/AUTH_demo/public/1k.bin";
    let private = "/v1/AUTH_demo/private/1k.bin";
    let s = storage(dir.path(), &rt, &[public, private]);
    let cat = catalog();
    let revocations = EdgeRevocations::default();
    let tokens = EdgeTokenCache::default();
    let opts = outpost_auth::VerifyOptions::default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let key = TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(SECRET),
        not_before: None,
        not_after: None,
    })
    .expect("key");
    let tok = token::sign(
        &Claims::new("demo", TokenKind::Url, "/private", now + 3600),
        &key,
    )
    .expect("sign");
    let query = format!("op_token={tok}");
    let headers = HeaderMap::new();
    let ip: IpAddr = [127, 0, 0, 1].into();

    let mut g = c.benchmark_group("hot_path");
    g.bench_function("route_public", |b| {
        b.iter(|| routing::route(&cat, "localhost", "127.0.0.1:8081", black_box(public)))
    });
    let route = routing::route(&cat, "localhost", "127.0.0.1", public).expect("route");
    g.bench_function("access_public", |b| {
        b.iter(|| {
            access::check(
                &cat,
                &route,
                "GET",
                None,
                &headers,
                ip,
                now,
                &opts,
                &revocations,
                &tokens,
            )
        })
    });
    let proute = routing::route(&cat, "localhost", "127.0.0.1", private).expect("route");
    g.bench_function("access_signed_cached", |b| {
        b.iter(|| {
            access::check(
                &cat,
                &proute,
                "GET",
                Some(black_box(query.as_str())),
                &headers,
                ip,
                now,
                &opts,
                &revocations,
                &tokens,
            )
        })
    });
    g.bench_function("lookup", |b| {
        b.iter(|| {
            s.hot(&CacheKey::new(black_box(public), ""), |_| {})
                .expect("hot")
        })
    });
    g.bench_function("lookup_and_patch", |b| {
        b.iter(|| {
            let hot = s
                .hot(&CacheKey::new(black_box(public), ""), |_| {})
                .expect("hot");
            let now = SystemTime::now();
            assert!(hot.is_fresh(now));
            let mut resp = hot.header.clone();
            let age = now.duration_since(hot.epoch).unwrap_or_default().as_secs();
            resp.insert_header(http::header::AGE, age).expect("age");
            resp.insert_header("x-outpost-cache", "HIT")
                .expect("status");
            resp.insert_header("cache-control", "private").expect("cc");
            (resp, hot.body.clone())
        })
    });
    g.bench_function("whole_decision_public", |b| {
        b.iter(|| {
            let route = routing::route(&cat, "localhost", "127.0.0.1:8081", black_box(public))
                .expect("route");
            let a = access::check(
                &cat,
                &route,
                "GET",
                None,
                &headers,
                ip,
                now,
                &opts,
                &revocations,
                &tokens,
            )
            .expect("access");
            let hot = s
                .hot(&CacheKey::new(route.path.as_str(), ""), |_| {})
                .expect("hot");
            let mut resp = hot.header.clone();
            resp.insert_header("x-outpost-cache", "HIT")
                .expect("status");
            (a, resp)
        })
    });
    g.finish();
    c.final_summary();
}
