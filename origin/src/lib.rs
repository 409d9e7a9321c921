//! # outpost-origin
//!
//! The Outpost origin: an object store (accounts → containers → objects) that speaks the
//! OpenStack Swift v1 API, so `swift`, python-swiftclient and rclone work unchanged.
//!
//! **Status: skeleton.** What it will be:
//!
//! - **API**: auth v1, objects/containers/accounts with metadata, listings, ranges,
//!   conditional requests, ACLs, tempurls (verified by [`outpost_auth`]), SLO manifests, `/info`.
//! - **Storage**: every record carries a hybrid-logical-clock timestamp in Swift's
//!   `X-Timestamp` format; deletes are tombstones; the newest timestamp wins.
//! - **Cluster**: a consistent-hash ring, quorum writes, handoff, a replicator and an auditor.
//! - **Change feed**: an ordered, resumable feed of every change that edges subscribe to.
//!
//! ```
//! assert_eq!(outpost_origin::NAME, "outpost-origin");
//! ```

/// Name reported in logs and `Server` headers.
pub const NAME: &str = "outpost-origin";
