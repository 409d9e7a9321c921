//! # outpost-edge
//!
//! The Outpost edge node, built on Pingora 0.9 (`pingora-proxy` + `pingora-cache`): it serves
//! browsers on customers' domains from cache, checks signed URLs and pubcookie sessions itself
//! (with [`outpost_auth`]) and goes to the origin only on a miss.
//!
//! ## Pieces
//! - [`routing`]: `<container>.<account>.<base-domain>`, the base domain's `/v1/AUTH_a/c/o`
//!   paths, and custom domains mapped (by origin metadata) to an account or a container.
//! - [`catalog`]: accounts, domains, ACLs, keys and cache defaults from the origin's
//!   `/internal/snapshot`, kept current by [`feed`] (the origin's change feed), which also
//!   purges the cache on every change.
//! - [`access`]: public containers, Swift tempurls, Outpost tokens, session cookies;
//!   revocations and the shared single-use grant set.
//! - [`cache`]: our pingora-cache `Storage`, a moka memory tier over a disk tier;
//!   [`cache_policy`]: what a shared HTTP cache may store and for how long (RFC 9111), for
//!   every cache path.
//! - [`cors`]: CORS rules (container metadata or `[[generic.cors]]`), preflights answered at
//!   the edge, per-request headers; [`generic`]: keys and invalidation of generic mode.
//! - [`proxy`]: the `ProxyHttp` implementation; [`server`] wires it into a Pingora server;
//!   [`tls`] picks per-domain certificates by SNI for the HTTPS (HTTP/2) listener.
//! - [`limits`], [`head`]: `[limits]` (request head size and time, keep-alive, body and send
//!   timeouts, connections per process), enforced before pingora parses a head.
//! - [`sigv4`]: AWS Signature V4 for generic-mode upstream requests (`[generic.sigv4]`), so an
//!   edge can front a private S3 bucket.
//! - [`acme`]: automatic HTTPS for custom domains (ACME orders under an origin lease,
//!   certificates stored at the origin and installed on every edge from the change feed).
//! - [`reload`]: `SIGHUP` re-reads the config file and applies certificates, key files and
//!   the log level in place (swappable [`tls::CertStore`] and upstream signer); keys that need a
//!   restart are kept and named in a warning.
//! - [`logs`]: JSON access logs, per-account per-minute billing shipped to the origin, and
//!   delivery of each account's logs into its `.outpost_logs` container.
//!
//! ## Invariants
//! - Authorization is checked on every request before the cache is consulted; the cache key
//!   is the storage path (plus listing parameters), never a token, so every signed variant of
//!   an object shares one entry and a cached private object is never served without a grant.
//! - Client tokens and cookies are never forwarded upstream; the edge uses its own internal
//!   credential.
//!
//! ```
//! assert_eq!(outpost_edge::NAME, "outpost-edge");
//! ```

pub mod access;
pub mod acme;
pub mod cache;
pub mod cache_key;
pub mod cache_policy;
pub mod catalog;
pub mod config;
pub mod cors;
mod error;
pub mod feed;
pub mod generic;
pub mod head;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod proxy;
pub mod purgelog;
pub mod reload;
pub mod ring;
pub mod routing;
pub mod server;
pub mod sigv4;
pub mod slice;
pub mod tls;
pub mod upstream;

pub use error::Error;

/// Name reported in logs.
pub const NAME: &str = "outpost-edge";
