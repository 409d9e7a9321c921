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

/// Container metadata of static websites (Swift's staticweb): the index object of directories.
pub const WEB_INDEX: &str = "x-container-meta-web-index";
/// Static websites: the suffix of error pages (`404` + this, e.g. `404error.html`).
pub const WEB_ERROR: &str = "x-container-meta-web-error";
/// Static websites: HTML listings of directories without an index (a true value).
pub const WEB_LISTINGS: &str = "x-container-meta-web-listings";
/// Static websites: the stylesheet of HTML listings.
pub const WEB_LISTINGS_CSS: &str = "x-container-meta-web-listings-css";
/// Static websites: the title of HTML listings instead of the storage path.
pub const WEB_LISTINGS_LABEL: &str = "x-container-meta-web-listings-label";
/// Static websites: the content type of directory marker objects.
pub const WEB_DIRECTORY_TYPE: &str = "x-container-meta-web-directory-type";

/// Account or container metadata of a custom domain: `true` answers plain-HTTP requests with
/// a `301` to the same URL over HTTPS (ACME challenges excepted). The container's value wins
/// over the account's. Default off.
pub const ACCOUNT_HTTPS_REDIRECT: &str = "x-account-meta-outpost-https-redirect";
/// Container form of [`ACCOUNT_HTTPS_REDIRECT`].
pub const CONTAINER_HTTPS_REDIRECT: &str = "x-container-meta-outpost-https-redirect";
/// Account or container metadata of a custom domain: HTTPS answers carry
/// `Strict-Transport-Security: max-age=<value>` (seconds; `includeSubDomains` may follow).
/// The container's value wins over the account's. Default none.
pub const ACCOUNT_HSTS: &str = "x-account-meta-outpost-hsts";
/// Container form of [`ACCOUNT_HSTS`].
pub const CONTAINER_HSTS: &str = "x-container-meta-outpost-hsts";
