//! # outpost-edge
//!
//! The Outpost edge node, built on Pingora 0.9 (`pingora-proxy` + `pingora-cache`).
//!
//! **Status: skeleton.** This crate compiles against pingora so the dependency is pinned and
//! built in CI; the proxy itself arrives with the edge issue. What it will be:
//!
//! - **Routing**: `<container>.<account>.<base-domain>` with no setup, custom domains mapped to
//!   an account or one container through origin metadata, `/v1/AUTH_a/c/o` on the base domain.
//! - **Access**: every private request is checked by [`outpost_auth`] (Swift tempurl, Outpost
//!   token, pubcookie session) with key sets fetched from the origin; denials are 403 with an
//!   `X-Outpost-Deny` reason header.
//! - **Cache**: a pingora-cache `Storage` with a moka memory tier over a disk tier; cache keys
//!   never contain tokens.
//! - **Video**: byte ranges from cache and per-slice fetching of large objects.
//! - **Invalidation**: a subscriber to the origin's change feed that purges on every change.
//!
//! The edge talks to the origin only over HTTP; it shares plain data types, never internals.
//!
//! ```
//! assert_eq!(outpost_edge::NAME, "outpost-edge");
//! ```

/// Name reported in logs and `Server` headers.
pub const NAME: &str = "outpost-edge";

/// Pingora's version this edge is built against (the cache API differs between 0.8 and 0.9).
pub const PINGORA_API: &str = "0.9";

#[doc(hidden)]
pub use pingora as _pingora;
