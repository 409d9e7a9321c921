//! `outpost-proto`: the one definition of every contract between Outpost's processes (edge
//! ↔ origin, origin ↔ origin, CLI → origin).
//!
//! What it is: names and serialized forms, nothing else.
//! - [`headers`]: every protocol header name (`x-outpost-internal`, `x-outpost-direct`, ...).
//! - [`paths`]: every internal endpoint path (`/internal/changes`, `/internal/snapshot`, ...);
//!   the origin's router mounts these and clients build URLs from them.
//! - [`meta`]: metadata keys with protocol meaning (domains, cache defaults) and reserved
//!   container names (`.outpost_logs`).
//! - [`feed`]: the change feed — [`feed::FeedPage`], [`feed::Change`] with a typed
//!   [`feed::ChangeKind`], [`feed::PurgeTarget`], [`feed::Revocation`].
//! - [`snapshot`]: the CDN snapshot an edge starts from ([`snapshot::Snapshot`]).
//! - [`billing`]: billing records, the batch an edge ships and the admin report.
//! - [`logs`]: log delivery into `.outpost_logs`.
//! - [`certs`]: certificates of custom domains stored for every edge (ACME), the ordering
//!   lease and HTTP-01 challenge answers.
//! - [`direct`]: the direct-storage request a cluster peer or ring-aware edge sends.
//!
//! What it is not: no I/O, no clock, no async runtime, no HTTP client or server, and no
//! dependency on another workspace crate (`outpost-auth`'s `TokenKeySpec` is mirrored by
//! [`snapshot::TokenKey`]; the placement hash belongs to `outpost-ring`).
//!
//! Versions: every serialized form carries a format version ([`version::Format`]) and has a
//! fixture per version under `tests/fixtures/`. [`from_json`] refuses a version this build
//! does not know with [`Error::UnknownFormat`] instead of half-reading it.
//!
//! ```
//! use outpost_proto::feed::{ChangeKind, FeedPage};
//!
//! let page: FeedPage = outpost_proto::from_json(br#"{"format":1,"first":1,"last":2,
//!     "truncated":false,"changes":[{"seq":2,"ts":"1700000000.00000","account":"demo",
//!     "kind":"purge-prefix","container":"photos","prefix":"2024/"}]}"#).unwrap();
//! assert_eq!(
//!     page.changes[0].kind,
//!     ChangeKind::PurgePrefix { container: "photos".into(), prefix: "2024/".into() }
//! );
//!
//! let newer = br#"{"format":9,"first":0,"last":0,"truncated":false,"changes":[]}"#;
//! let err = outpost_proto::from_json::<FeedPage>(newer).unwrap_err();
//! assert!(matches!(err, outpost_proto::Error::UnknownFormat { found: 9, .. }));
//! ```

pub mod billing;
pub mod certs;
pub mod direct;
mod error;
pub mod feed;
pub mod headers;
pub mod logs;
pub mod meta;
pub mod paths;
pub mod snapshot;
pub mod version;

pub use error::Error;
pub use version::{from_json, to_json, Format, Wire};
