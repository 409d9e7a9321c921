//! # outpost-auth
//!
//! Everything Outpost needs to decide whether a request may read private content: canonical
//! paths, Swift temporary URLs, Outpost tokens, pubcookie sessions and key sets.
//!
//! This crate is a pure library: no I/O, no clock (every check takes `now` in epoch seconds),
//! no randomness (callers supply nonces and session ids). The edge and the origin both use it,
//! with keys they loaded themselves through the [`KeyStore`] trait.
//!
//! ## Key types
//! - [`CanonicalPath`], [`StoragePath`]: request paths decoded exactly once (`%2520` is the
//!   name `%20`), with every ambiguity (`..`, `%2F`, bad UTF-8, control bytes) rejected by a
//!   typed [`Error`].
//! - [`PathPattern`]: segment-aware globs; `/videos` never covers `/videos-private`.
//! - [`tempurl`]: Swift tempurls, byte-compatible with OpenStack Swift.
//! - [`token`]: Outpost tokens `op1.<kid>.<payload>.<sig>` (see `docs/tokens.md`).
//! - [`pubcookie`]: login grants, session cookies, sliding re-issue.
//! - [`acl`]: Swift's container ACLs (`X-Container-Read`/`-Write`, referrers, grants) and
//!   tempauth's account ACLs (`X-Account-Access-Control`), parsed and validated as Swift does.
//! - [`verify()`]: the one entry point; returns a [`VerifiedGrant`] (which only this crate can
//!   construct) or an [`Error`] whose [`Error::deny_reason`] is the stable `X-Outpost-Deny`
//!   value.
//!
//! ## Guarantees and limits
//! Signatures are compared in constant time and never appear in `Debug` or `Display` output;
//! secrets print as their length. Clock leeway defaults to 5 seconds. Swift tempurl prefixes
//! match as string prefixes (Swift's semantics); Outpost scopes match whole segments.
//!
//! ## Example
//! ```
//! use std::net::IpAddr;
//! use outpost_auth::*;
//!
//! struct Keys(KeySet);
//! impl KeyStore for Keys {
//!     fn token_keys(&self, _account: &str) -> Option<&KeySet> { Some(&self.0) }
//!     fn tempurl_keys(&self, _: &str, _: &str) -> TempUrlKeys<'_> { TempUrlKeys::default() }
//! }
//! let keys = Keys(KeySet::new([TokenKeySpec {
//!     id: "k1".into(),
//!     secret: Secret::new("a-secret-of-at-least-16-bytes"),
//!     not_before: None,
//!     not_after: None,
//! }]).unwrap());
//!
//! // The app signs a URL token for everything under /videos/show1 for 15 seconds.
//! let now = 1_700_000_000;
//! let claims = Claims::new("demo", TokenKind::Url, "/videos/show1", now + 15);
//! let token = token::sign(&claims, &keys.0.keys()[0]).unwrap();
//!
//! // The edge verifies a request for a segment under that scope.
//! let path = StoragePath::parse("/v1/AUTH_demo/videos/show1/seg-001.ts").unwrap();
//! let query = format!("op_token={token}");
//! let headers = http::HeaderMap::new();
//! let req = AccessRequest {
//!     method: "GET",
//!     path: &path,
//!     query: Some(&query),
//!     path_token: None,
//!     headers: &headers,
//!     client_ip: IpAddr::from([192, 0, 2, 7]),
//!     now,
//! };
//! let grant = verify(&req, &keys, &NoRevocations, &VerifyOptions::default()).unwrap();
//! assert_eq!(grant.account(), "demo");
//!
//! // Twenty seconds later it is expired (15 s + 5 s leeway have passed).
//! let late = AccessRequest { now: now + 21, ..req };
//! let err = verify(&late, &keys, &NoRevocations, &VerifyOptions::default()).unwrap_err();
//! assert_eq!(err.deny_reason().as_str(), "expired");
//! ```

pub mod acl;
mod cache;
mod error;
pub mod keys;
pub mod path;
pub mod pattern;
pub mod pubcookie;
mod query;
pub mod tempurl;
pub mod token;
mod verify;

pub use cache::{NoTokenCache, TokenCache, VerifiedToken};
pub use error::{DenyReason, Error};
pub use keys::{
    KeySet, KeyStore, NoRevocations, Revocations, Secret, SeenGrants, TempUrlKeys, TokenKey,
    TokenKeySpec,
};
pub use path::{CanonicalPath, StoragePath};
pub use pattern::PathPattern;
pub use token::{Claims, ScopeClaim, TokenKind};
pub use verify::{
    split_path_token, verify, verify_cached, AccessRequest, Mechanism, VerifiedGrant,
    VerifyOptions, DEFAULT_LEEWAY_SECS, PATH_TOKEN_SEGMENT, TOKEN_HEADER, TOKEN_QUERY_PARAM,
};
