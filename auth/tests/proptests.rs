//! Property tests of `outpost-auth` through its public API.
//!
//! - Outpost tokens round-trip through [`outpost_auth::verify`] on every carrier (query, header,
//!   `Authorization`, path prefix, session cookie), and any single mutation of the token or of
//!   the request is denied.
//! - Swift tempurls signed with [`tempurl::sign`] verify, and any single-field mutation is
//!   denied.
//! - [`CanonicalPath::parse`] never panics, and what it accepts round-trips through
//!   [`CanonicalPath::to_encoded`].
//! - Literal scope patterns respect segment boundaries, and glob matching agrees with a naive
//!   recursive reference matcher.
//!
//! Case counts are kept small enough for the whole binary to run in a few seconds in debug
//! builds; `PROPTEST_CASES=20000` runs a deeper search (about 30 s).

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use outpost_auth::{
    verify, AccessRequest, DenyReason, Error, KeySet, KeyStore, Mechanism, NoRevocations, Secret,
    StoragePath, TempUrlKeys, TokenKeySpec, VerifiedGrant, VerifyOptions, DEFAULT_LEEWAY_SECS,
};
use proptest::prelude::*;

// One module per concern; `#[path]` keeps them out of cargo's test-target discovery.
#[path = "proptests/paths.rs"]
mod paths;
#[path = "proptests/tempurl.rs"]
mod tempurl_props;
#[path = "proptests/token.rs"]
mod token_props;

const LEEWAY: u64 = DEFAULT_LEEWAY_SECS;

/// Token keys `k1` and `k2` (one character apart, so a mutated key id can name a real key)
/// for every account, and a list of tempurl keys for every container.
struct Keys {
    tokens: KeySet,
    tempurl: Vec<Vec<u8>>,
}

impl Keys {
    fn new(k1_secret: &str, tempurl: Vec<Vec<u8>>) -> Self {
        let spec = |id: &str, secret: &str| TokenKeySpec {
            id: id.into(),
            secret: Secret::new(secret),
            not_before: None,
            not_after: None,
        };
        Keys {
            tokens: KeySet::new([
                spec("k1", k1_secret),
                spec("k2", "another-secret-of-enough-bytes"),
            ])
            .expect("valid test keys"),
            tempurl,
        }
    }
}

impl KeyStore for Keys {
    fn token_keys(&self, _account: &str) -> Option<&KeySet> {
        Some(&self.tokens)
    }
    fn tempurl_keys(&self, _account: &str, _container: &str) -> TempUrlKeys<'_> {
        let keys: Vec<&[u8]> = self.tempurl.iter().map(Vec::as_slice).collect();
        TempUrlKeys::from_slice(&keys)
    }
}

const K1_SECRET: &str = "proptest-secret-0123456789";

/// Where a token travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Query,
    Header,
    Authorization,
    Path,
    Cookie,
}

impl Carrier {
    fn mechanism(self) -> Mechanism {
        match self {
            Carrier::Query => Mechanism::QueryToken,
            Carrier::Header | Carrier::Authorization => Mechanism::HeaderToken,
            Carrier::Path => Mechanism::PathToken,
            Carrier::Cookie => Mechanism::SessionCookie,
        }
    }
}

fn carrier() -> impl Strategy<Value = Carrier> {
    prop_oneof![
        Just(Carrier::Query),
        Just(Carrier::Header),
        Just(Carrier::Authorization),
        Just(Carrier::Path),
        Just(Carrier::Cookie),
    ]
}

/// One request to verify: everything `AccessRequest` borrows, owned.
struct Req {
    method: String,
    path: StoragePath,
    query: Option<String>,
    path_token: Option<String>,
    headers: HeaderMap,
    client_ip: IpAddr,
    now: u64,
}

impl Req {
    /// A request carrying `token` the way `carrier` says.
    fn new(
        carrier: Carrier,
        token: &str,
        method: &str,
        path: StoragePath,
        ip: IpAddr,
        now: u64,
    ) -> Self {
        let mut req = Req {
            method: method.to_owned(),
            path,
            query: None,
            path_token: None,
            headers: HeaderMap::new(),
            client_ip: ip,
            now,
        };
        let header = |v: String| HeaderValue::from_str(&v).expect("visible ASCII header value");
        match carrier {
            Carrier::Query => req.query = Some(format!("a=1&op_token={token}&b=2")),
            Carrier::Path => req.path_token = Some(token.to_owned()),
            Carrier::Header => {
                req.headers
                    .insert("x-outpost-token", header(token.to_owned()));
            }
            Carrier::Authorization => {
                req.headers.insert(
                    http::header::AUTHORIZATION,
                    header(format!("Outpost {token}")),
                );
            }
            Carrier::Cookie => {
                req.headers.insert(
                    http::header::COOKIE,
                    header(format!("theme=dark; outpost_session={token}")),
                );
            }
        }
        req
    }

    fn verify(&self, keys: &Keys) -> Result<VerifiedGrant, Error> {
        let req = AccessRequest {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            path_token: self.path_token.as_deref(),
            headers: &self.headers,
            client_ip: self.client_ip,
            now: self.now,
        };
        verify(&req, keys, &NoRevocations, &VerifyOptions::default())
    }
}

/// A path segment: printable, with spaces and non-ASCII, never `.` or `..`, no `*`.
fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _~.é❤-]{1,8}".prop_filter("dot segment", |s| s != "." && s != "..")
}

/// Address ranges inside 10.0.0.0/8 and fd00::/8, written as CIDR (host bits allowed) or bare
/// addresses, so 192.0.2.0/24 and 2001:db8::/32 are always outside.
fn ip_range() -> impl Strategy<Value = (String, IpAddr)> {
    prop_oneof![
        (any::<[u8; 3]>(), 8u8..=32, any::<bool>()).prop_map(|(b, len, bare)| {
            let ip = IpAddr::from([10, b[0], b[1], b[2]]);
            (
                if bare {
                    ip.to_string()
                } else {
                    format!("{ip}/{len}")
                },
                ip,
            )
        }),
        (any::<[u8; 15]>(), 8u8..=128, any::<bool>()).prop_map(|(b, len, bare)| {
            let mut o = [0xfd; 16];
            o[1..].copy_from_slice(&b);
            let ip = IpAddr::from(o);
            (
                if bare {
                    ip.to_string()
                } else {
                    format!("{ip}/{len}")
                },
                ip,
            )
        }),
    ]
}

/// The deny reason of a result that must be a denial.
fn denied(r: Result<VerifiedGrant, Error>) -> Result<DenyReason, TestCaseError> {
    match r {
        Ok(g) => Err(TestCaseError::fail(format!("mutation was accepted: {g:?}"))),
        Err(e) => Ok(e.deny_reason()),
    }
}
