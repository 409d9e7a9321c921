//! Criterion benchmarks of `outpost_auth::verify`, one per credential mechanism, and of path
//! canonicalisation: the per-request work of the edge before any cache lookup.
//!
//! Run with `cargo bench -p outpost-benches --bench auth_verify` (add `-- --quick` for a short
//! run). The goal is well under 1 µs per verify; the `parts` group shows where the time goes
//! (split, MAC, claims JSON, tempurl query parsing and per-key HMAC set-up). The `cached`
//! group is `verify_cached` when the token was verified before: with a plain map (the cost in
//! `auth`) and with a moka cache shaped like the edge's `EdgeTokenCache` (the cost at the edge).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use criterion::Criterion;
use http::{HeaderMap, HeaderValue};
use outpost_auth::tempurl::{self, Digest, TempUrlOptions, TempUrlQuery, TempUrlSpec};
use outpost_auth::token::UnverifiedToken;
use outpost_auth::{
    pubcookie, token, verify, verify_cached, AccessRequest, CanonicalPath, Claims, KeySet,
    KeyStore, Mechanism, NoRevocations, Secret, StoragePath, TempUrlKeys, TokenCache, TokenKeySpec,
    TokenKind, VerifiedToken, VerifyOptions,
};

const NOW: u64 = 1_700_000_000;
const TEMPURL_KEY: &[u8] = b"tempurl-account-key";
const OBJECT: &str = "/v1/AUTH_demo/videos/show1/season%201/seg-001.ts";

struct Keys {
    tokens: KeySet,
}

impl KeyStore for Keys {
    fn token_keys(&self, _account: &str) -> Option<&KeySet> {
        Some(&self.tokens)
    }
    fn tempurl_keys(&self, _account: &str, _container: &str) -> TempUrlKeys<'_> {
        // As an edge would: the account's two keys, the second one being the match.
        TempUrlKeys::from_slice(&[b"old-account-key", TEMPURL_KEY])
    }
}

fn keys() -> Keys {
    Keys {
        tokens: KeySet::new([TokenKeySpec {
            id: "k1".into(),
            secret: Secret::new("bench-secret-0123456789abcdef"),
            not_before: None,
            not_after: None,
        }])
        .expect("valid key"),
    }
}

/// A URL token as an app would sign it: one scope, an address range, a session id.
fn url_token(keys: &Keys) -> String {
    let mut claims = Claims::new("demo", TokenKind::Url, "/videos/show1/**", NOW + 3600);
    claims.ips.push("192.0.2.0/24".into());
    claims.session_id = Some("s-1234".into());
    token::sign(&claims, &keys.tokens.keys()[0]).expect("valid claims")
}

fn session_token(keys: &Keys) -> String {
    let mut scope = Claims::new("demo", TokenKind::Url, "/videos/", 0).scopes;
    scope[0].methods = Some("GET,HEAD".into());
    let claims = pubcookie::session_claims(
        "demo",
        scope,
        Some("s-1234"),
        Some("user-42"),
        NOW + 12 * 3600,
        1800,
        NOW - 60,
    );
    pubcookie::sign_session(&claims, &keys.tokens.keys()[0])
        .expect("valid session")
        .token
}

fn tempurl_query(digest: Digest) -> String {
    let decoded = CanonicalPath::parse(OBJECT).expect("valid path");
    let url = tempurl::sign(
        &TempUrlSpec {
            method: "GET",
            path: decoded.as_str(),
            expires: NOW + 3600,
            prefix: false,
            ip_range: None,
            iso8601: false,
            digest,
        },
        TEMPURL_KEY,
    )
    .expect("valid tempurl");
    url[decoded.as_str().len() + 1..].to_owned()
}

/// The least a cache can cost: a map behind a read lock.
#[derive(Default)]
struct MapCache(RwLock<HashMap<String, Arc<VerifiedToken>>>);

impl TokenCache for MapCache {
    fn get(&self, _account: &str, token: &str) -> Option<Arc<VerifiedToken>> {
        self.0.read().expect("not poisoned").get(token).cloned()
    }
    fn insert(&self, _account: &str, token: &str, verified: Arc<VerifiedToken>) {
        let mut map = self.0.write().expect("not poisoned");
        map.insert(token.to_owned(), verified);
    }
}

/// What the edge uses: moka, keyed by `account/token` built in a per-thread buffer.
struct MokaCache(moka::sync::Cache<String, Arc<VerifiedToken>>);

impl TokenCache for MokaCache {
    fn get(&self, account: &str, token: &str) -> Option<Arc<VerifiedToken>> {
        thread_local! {
            static KEY: RefCell<String> = const { RefCell::new(String::new()) };
        }
        KEY.with(|k| {
            let mut k = k.borrow_mut();
            k.clear();
            k.push_str(account);
            k.push('/');
            k.push_str(token);
            self.0.get(k.as_str())
        })
    }
    fn insert(&self, account: &str, token: &str, verified: Arc<VerifiedToken>) {
        self.0.insert(format!("{account}/{token}"), verified);
    }
}

fn bench_verify(c: &mut Criterion) {
    let keys = keys();
    let path = StoragePath::parse(OBJECT).expect("valid path");
    let ip = IpAddr::from([192, 0, 2, 7]);
    let opts = VerifyOptions::default();
    let url = url_token(&keys);
    let empty = HeaderMap::new();
    let base = AccessRequest {
        method: "GET",
        path: &path,
        query: None,
        path_token: None,
        headers: &empty,
        client_ip: ip,
        now: NOW,
    };

    let mut group = c.benchmark_group("verify");
    let mut run = |name: &str, req: AccessRequest<'_>| {
        verify(&req, &keys, &NoRevocations, &opts).expect("benchmark request verifies");
        group.bench_function(name, |b| {
            b.iter(|| verify(black_box(&req), &keys, &NoRevocations, &opts))
        });
    };

    let query = format!("op_token={url}");
    run(
        "query_token",
        AccessRequest {
            query: Some(&query),
            ..base
        },
    );
    run(
        "path_token",
        AccessRequest {
            path_token: Some(&url),
            ..base
        },
    );
    let mut header = HeaderMap::new();
    header.insert(
        "x-outpost-token",
        HeaderValue::from_str(&url).expect("token is a header value"),
    );
    run(
        "header_token",
        AccessRequest {
            headers: &header,
            ..base
        },
    );
    let mut cookie = HeaderMap::new();
    cookie.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&format!(
            "_ga=GA1.2.3; theme=dark; outpost_session={}",
            session_token(&keys)
        ))
        .expect("cookie is a header value"),
    );
    run(
        "session_cookie",
        AccessRequest {
            headers: &cookie,
            ..base
        },
    );
    let sha256 = tempurl_query(Digest::Sha256);
    run(
        "tempurl_sha256",
        AccessRequest {
            query: Some(&sha256),
            ..base
        },
    );
    let sha512 = tempurl_query(Digest::Sha512);
    run(
        "tempurl_sha512",
        AccessRequest {
            query: Some(&sha512),
            ..base
        },
    );
    group.finish();

    // The same token requests again, with a cache.
    let map = MapCache::default();
    let moka = MokaCache(
        moka::sync::Cache::builder()
            .max_capacity(64 * 1024 * 1024)
            .weigher(|k: &String, v: &Arc<VerifiedToken>| {
                u32::try_from(k.len() + v.approx_bytes()).unwrap_or(u32::MAX)
            })
            .build(),
    );
    let mut group = c.benchmark_group("cached");
    let mut run = |name: &str, req: AccessRequest<'_>| {
        for (cache, cache_name) in [(&map as &dyn TokenCache, "map"), (&moka, "moka")] {
            verify_cached(&req, &keys, &NoRevocations, &cache, &opts)
                .expect("benchmark request verifies");
            group.bench_function(format!("{name}_{cache_name}"), |b| {
                b.iter(|| verify_cached(black_box(&req), &keys, &NoRevocations, &cache, &opts))
            });
        }
    };
    run(
        "query_token",
        AccessRequest {
            query: Some(&query),
            ..base
        },
    );
    run(
        "path_token",
        AccessRequest {
            path_token: Some(&url),
            ..base
        },
    );
    run(
        "session_cookie",
        AccessRequest {
            headers: &cookie,
            ..base
        },
    );
    group.finish();
}

/// The stages of a verify, to show where its time goes.
fn bench_parts(c: &mut Criterion) {
    let keys = keys();
    let key = &keys.tokens.keys()[0];
    let m = Mechanism::QueryToken;
    let url = url_token(&keys);
    let unverified = UnverifiedToken::split(&url, m).expect("valid token");
    let payload = unverified.verify(key, m).expect("valid signature");
    let claims = payload.claims(m).expect("valid claims");
    let path = StoragePath::parse(OBJECT).expect("valid path");
    let ip = IpAddr::from([192, 0, 2, 7]);

    let mut group = c.benchmark_group("parts");
    group.bench_function("token_split", |b| {
        b.iter(|| UnverifiedToken::split(black_box(&url), m))
    });
    group.bench_function("token_mac", |b| {
        b.iter(|| black_box(&unverified).verify(key, m))
    });
    group.bench_function("token_claims", |b| b.iter(|| black_box(&payload).claims(m)));
    group.bench_function("token_owned", |b| {
        b.iter(|| black_box(&claims).clone().into_owned())
    });
    group.bench_function("token_scope", |b| {
        b.iter(|| {
            let c = black_box(&claims);
            (
                c.allows_ip(ip),
                c.scope_for("GET", path.account_relative()).is_some(),
            )
        })
    });
    for digest in [Digest::Sha256, Digest::Sha512] {
        let query = tempurl_query(digest);
        let q = TempUrlQuery::parse(&query)
            .expect("valid query")
            .expect("a tempurl query");
        let name = digest.name();
        group.bench_function(format!("{name}_query"), |b| {
            b.iter(|| TempUrlQuery::parse(black_box(&query)))
        });
        group.bench_function(format!("{name}_hmacs"), |b| {
            b.iter(|| {
                tempurl::verify(
                    black_box(&q),
                    "GET",
                    &path,
                    ip,
                    NOW,
                    keys.tempurl_keys("demo", "videos"),
                    TempUrlOptions::default(),
                )
            })
        });
    }
    group.finish();
}

fn bench_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("path");
    group.bench_function("canonical_parse", |b| {
        b.iter(|| CanonicalPath::parse(black_box(OBJECT)))
    });
    group.bench_function("storage_parse", |b| {
        b.iter(|| StoragePath::parse(black_box(OBJECT)))
    });
    group.finish();
}

// What `criterion_group!` + `criterion_main!` expand to, minus their undocumented `pub fn`.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_verify(&mut c);
    bench_parts(&mut c);
    bench_paths(&mut c);
    c.final_summary();
}
