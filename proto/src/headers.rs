//! Every HTTP header name with a meaning in Outpost's own protocol, lower case (as `http`
//! and pingora compare them).
//!
//! Swift's own headers (`X-Timestamp`, `X-Container-Meta-*`, ...) are not here: their
//! meaning is Swift's. Headers sent to clients (`X-Outpost-Error`, `X-Outpost-Deny`,
//! `X-Outpost-Cache`) are here because both processes emit them and clients rely on them.

/// The internal secret shared by origin nodes and edges (constant-time compared).
pub const INTERNAL: &str = "x-outpost-internal";

/// Selects the storage role of a cluster node: see [`crate::direct::Direct`].
pub const DIRECT: &str = "x-outpost-direct";
/// On a direct PUT: the version is an SLO manifest.
pub const SLO: &str = "x-outpost-slo";
/// On a listing-row PUT: the object's size.
pub const SIZE: &str = "x-outpost-size";
/// On a direct 404: the timestamp of the tombstone (or listing row) the node holds.
pub const BACKEND_TIMESTAMP: &str = "x-backend-timestamp";
/// On a direct 404: `deleted` or `listing` (the node has the row but not the data).
pub const BACKEND_STATE: &str = "x-backend-state";

/// Common prefix of the revocation headers (a proxy forwards every header with it).
pub const REVOKE_PREFIX: &str = "x-outpost-revoke";
/// Account POST: revoke these session ids (comma-separated).
pub const REVOKE_SESSION: &str = "x-outpost-revoke-session";
/// Account POST: revoke every session these users started up to now (comma-separated).
pub const REVOKE_USER: &str = "x-outpost-revoke-user";
/// How errors name the revocation headers as a family.
pub const REVOKE_ANY: &str = "x-outpost-revoke-*";

/// Cross-DC sync: the sending DC's name.
pub const SYNC_FROM: &str = "x-outpost-sync-from";
/// Cross-DC sync: the realm key authenticating the sending DC.
pub const SYNC_KEY: &str = "x-outpost-sync-key";

/// A stable machine-readable error code on every error answer (origin and edge).
pub const ERROR: &str = "x-outpost-error";
/// The origin's reason for a refusal whose body is Swift's standard one (`container not
/// empty` behind Swift's `409 Conflict` page).
pub const REASON: &str = "x-outpost-reason";
/// The edge's reason for a 403 (`invalid`, `expired`, `revoked`, ...).
pub const DENY: &str = "x-outpost-deny";
/// The edge's cache status (`HIT`, `MISS`, `STALE`, ...).
pub const CACHE: &str = "x-outpost-cache";
/// An Outpost token carried in a request header.
pub const TOKEN: &str = "x-outpost-token";
/// Swift's staticweb: answer as a static website even with a credential (`true`). The edge
/// sends it for anonymous requests to a web container; the origin then answers as it would an
/// anonymous client.
pub const WEB_MODE: &str = "x-web-mode";
