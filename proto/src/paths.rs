//! Endpoint paths between processes. The origin's router mounts exactly these; clients
//! (edges, peers, the CLI) build their URLs from them.

/// `GET ?since=SEQ&limit=N&wait=SECS&edge=ID`: the change feed ([`crate::feed::FeedPage`]).
pub const CHANGES: &str = "/internal/changes";
/// `GET [?account=A]`: the CDN snapshot ([`crate::snapshot::Snapshot`]).
pub const SNAPSHOT: &str = "/internal/snapshot";
/// `POST ?account=A[&container=C[&object=O | &prefix=P]]`: an explicit purge. The same
/// path on an edge drops its own entries only.
pub const PURGE: &str = "/internal/purge";
/// `POST`: a [`crate::billing::BillingBatch`].
pub const BILLING: &str = "/internal/billing";
/// `PUT ?account=A&object=O`: a log object for `.outpost_logs` ([`crate::logs`]).
pub const LOGS: &str = "/internal/logs";

/// `GET`: the [`crate::certs::CertIndex`] of stored certificates (no keys).
/// `GET`/`PUT` `CERTS/<domain>`: one [`crate::certs::CertRecord`] (key included; edge, admin
/// and peer credentials only). `POST CERTS/<domain>/lease`: a [`crate::certs::LeaseRequest`].
pub const CERTS: &str = "/internal/certs";
/// `GET`/`PUT` `ACME_CHALLENGES/<token>`: a pending HTTP-01 answer
/// ([`crate::certs::ChallengeRecord`]).
pub const ACME_CHALLENGES: &str = "/internal/acme-challenges";

/// `GET ?part=P&view=data|listing`: per-suffix hashes of one partition.
pub const REPLICATION_HASHES: &str = "/internal/replication/hashes";
/// `GET ?part=P&suffixes=abc,def`: the rows in those suffixes.
pub const REPLICATION_ROWS: &str = "/internal/replication/rows";
/// `GET`: every account and container row.
pub const REPLICATION_META: &str = "/internal/replication/meta";

/// `GET`: one node's cluster status.
pub const CLUSTER_STATUS: &str = "/internal/cluster/status";
/// `POST`: run one replication pass now.
pub const CLUSTER_REPLICATE: &str = "/internal/cluster/replicate";
/// `POST`: run one audit pass now.
pub const CLUSTER_AUDIT: &str = "/internal/cluster/audit";
/// `GET ?timeout=SECS[&missed=1]`: waits until every edge following this node applied its
/// feed as it stands now (the barrier behind `X-Purge-Wait` in a cluster); answers which
/// edges did. `missed=1`: the write did not reach this node, list its edges as pending.
pub const CLUSTER_PURGE_WAIT: &str = "/internal/cluster/purge-wait";

/// Prefix of the cross-DC endpoints; what follows it is a Swift path (`/v1/AUTH_a/c/o`).
pub const XDC: &str = "/internal/xdc";
/// `POST`: which versions a peer DC already has.
pub const XDC_HAVE: &str = "/internal/xdc/have";
/// `GET`: this node's per-peer replication state.
pub const XDC_STATUS: &str = "/internal/xdc/status";
/// `POST`: a peer DC's account and container rows (`MetaBatch`); also from another node of
/// this cluster (peer secret) sending them on.
pub const XDC_META: &str = "/internal/xdc/meta";
/// A peer DC's change: `XDC_APPLY` + `/AUTH_<account>/<container>[/<object>]`.
pub const XDC_APPLY: &str = "/internal/xdc/v1";

/// `GET ?account=A&from=T&to=T`: per-minute billing ([`crate::billing::BillingReport`]).
pub const ADMIN_BILLING: &str = "/admin/billing";
