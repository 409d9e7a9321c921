//! # outpost-origin
//!
//! The Outpost origin node: an object store (accounts → containers → objects) that speaks the
//! OpenStack Swift v1 API, so `swift`, python-swiftclient and rclone work unchanged.
//!
//! ## What it is
//! - **API** ([`api`]): auth v1 (tempauth style), objects (streamed PUT with MD5 check, ranges,
//!   conditionals, POST metadata, COPY / `X-Copy-From`, `X-Delete-At`), containers and accounts
//!   (metadata, counters, listings with prefix/delimiter/markers/limit/reverse in plain, JSON
//!   and XML), tempauth's container and account ACLs ([`access`]), tempurls and Outpost
//!   tokens (verified by [`outpost_auth`]), Static and Dynamic Large Objects, copies across
//!   accounts, `/info`, `/healthz`, `/metrics`.
//! - **S3 API** ([`s3`], `[s3]` in the config): the same accounts, containers and objects
//!   under S3's names on an address of its own (path-style and virtual-hosted-style, SigV4
//!   header and presigned-query auth by the `s3s` crate, access keys mapped to
//!   `[[auth.users]]` identities); multipart uploads become Static Large Objects. Every write
//!   goes through [`store`], so the edge, the change feed, quotas and billing see it.
//! - **Storage** ([`db`], [`files`]): data files written to a temp file, fsynced and renamed
//!   into a path named by the version's timestamp; metadata in SQLite (WAL, synchronous=FULL)
//!   written after the rename. A PUT returns 201 only when both are durable, and a crash leaves
//!   either the old or the new version, never a partial one.
//! - **Time** ([`hlc`]): every record carries a hybrid-logical-clock timestamp in Swift's
//!   `X-Timestamp` format; deletes are tombstones; the newest timestamp wins.
//! - **Change feed**: every write appends to an ordered feed in the same transaction;
//!   `/internal/changes?since=SEQ&wait=S` long-polls it for edges.
//!
//! - **Cluster mode** ([`cluster`], `[cluster]` in the config): the node is one device of a
//!   ring ([`outpost_ring`]). Any node proxies the Swift API; object writes reach the
//!   partition's primaries (handoffs for dead ones) and succeed on a quorum; every node keeps
//!   every account, container and object row, so listings and the change feed are complete on
//!   each node; a replicator and an auditor repair divergence and bit-rot. Without
//!   `[cluster]` the node runs alone exactly as before.
//! - **Cross-datacenter sync** ([`xdc`], `[sync]` in the config): containers
//!   (`X-Container-Meta-Outpost-Sync-To`) or whole accounts replicate to peer DCs, both ways,
//!   from the change feed, each version with its original timestamp (newest wins), with a
//!   durable per-peer position and lag metrics.
//! - **Progress** ([`progress`]): rate over the last minute and ETA of long background work
//!   (replication passes, cross-DC catch-up), shown by the status endpoints and `/metrics`.
//! - **Billing** ([`billing`]): per-edge, per-minute egress records stored idempotently.
//! - **Limits** ([`limits`], `[limits]` in the config): request head size and time and
//!   connections per process, enforced by the accept loop in [`server`].
//! - **Reload** ([`reload`]): `SIGHUP` re-reads the config file and applies the log level;
//!   other changed keys are named in a warning and need a restart.
//!
//! ## What it is not (yet)
//! In cluster mode, SLO manifests answer 501 (assembling segments would read other objects'
//! data locally), and `[s3]` is refused (it writes through one node's store).
//!
//! ## Example
//! ```no_run
//! # async fn demo() -> Result<(), outpost_origin::Error> {
//! let cfg = outpost_origin::config::RawConfig::parse(r#"
//!     listen = "127.0.0.1:0"
//!     data_dir = "/tmp/outpost-origin"
//!     internal_secret = "a-cluster-secret-of-16+-bytes"
//!     [[auth.users]]
//!     account = "demo"
//!     user = "demo"
//!     key = "demo-key"
//! "#)?.validate()?;
//! let node = outpost_origin::server::start(cfg).await?;
//! println!("Swift API at {}/v1/AUTH_demo", node.url());
//! node.stop().await;
//! # Ok(()) }
//! ```

pub mod access;
pub mod api;
pub mod billing;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod db;
pub mod dev;
mod error;
pub mod failpoints;
pub mod files;
pub mod hlc;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod progress;
pub mod range;
pub mod reload;
pub mod request;
pub mod s3;
pub mod server;
pub mod store;
pub mod xdc;

pub use error::{Blame, Error, Refusal, Result};

/// Name reported in logs.
pub const NAME: &str = "outpost-origin";
