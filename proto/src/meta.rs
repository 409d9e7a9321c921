//! Metadata keys and reserved names with a meaning in Outpost's protocol (beyond Swift's).
//!
//! Keys are lower case, as the origin stores them and as they appear in
//! [`crate::snapshot::Snapshot`] metadata maps.

/// Account metadata: custom domains mapped to the whole account (comma or space separated).
pub const ACCOUNT_DOMAINS: &str = "x-account-meta-outpost-domains";
/// Account metadata: the default container of account-mapped domains.
pub const ACCOUNT_DEFAULT_CONTAINER: &str = "x-account-meta-outpost-default-container";
/// Container metadata: custom domains mapped to that container.
pub const CONTAINER_DOMAINS: &str = "x-container-meta-outpost-domains";
/// Container metadata: the default `Cache-Control` of its objects.
pub const CONTAINER_CACHE_CONTROL: &str = "x-container-meta-outpost-cache-control";

/// Account tempurl keys (Swift's names; the edge verifies tempurls with them).
pub const ACCOUNT_TEMPURL_KEYS: [&str; 2] = [
    "x-account-meta-temp-url-key",
    "x-account-meta-temp-url-key-2",
];
/// Container tempurl keys (Swift's names).
pub const CONTAINER_TEMPURL_KEYS: [&str; 2] = [
    "x-container-meta-temp-url-key",
    "x-container-meta-temp-url-key-2",
];

/// The container each account's access logs and billing lines are delivered into.
pub const LOGS_CONTAINER: &str = ".outpost_logs";

/// Container metadata: the peer DCs (realm names, comma separated) a container replicates to.
pub const CONTAINER_SYNC_TO: &str = "x-container-meta-outpost-sync-to";
