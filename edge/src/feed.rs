//! The origin client (snapshot, change feed) and the subscriber that keeps the catalog current
//! and purges the cache on every change.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::cache::TieredStorage;
use crate::catalog::{Catalog, CatalogHandle, SnapshotWire};
use crate::Error;

/// Header carrying the internal secret to the origin.
pub const INTERNAL_HEADER: &str = "x-outpost-internal";

/// One change of the origin's feed.
#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    /// Position.
    pub seq: u64,
    /// Kind: `object-put`, `object-post`, `object-delete`, `container-*`, `account-*`.
    pub kind: String,
    /// Account.
    pub account: String,
    /// Container.
    #[serde(default)]
    pub container: Option<String>,
    /// Object.
    #[serde(default)]
    pub object: Option<String>,
}

/// A page of the feed.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedPage {
    /// Oldest retained position.
    pub first: u64,
    /// Newest position.
    pub last: u64,
    /// The changes after our position were trimmed: resync.
    pub truncated: bool,
    /// Changes.
    pub changes: Vec<Change>,
}

/// HTTP client for the origin's internal endpoints.
#[derive(Debug, Clone)]
pub struct OriginClient {
    http: reqwest::Client,
    base: String,
    secret: String,
}

impl OriginClient {
    /// A client for the origin at `addr`.
    ///
    /// # Errors
    /// [`Error::Origin`] if the HTTP client cannot be built.
    pub fn new(addr: std::net::SocketAddr, secret: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(4)
            .build()
            .map_err(|e| Error::Origin(e.to_string()))?;
        Ok(OriginClient {
            http,
            base: format!("http://{addr}"),
            secret: secret.to_owned(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<T, Error> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(INTERNAL_HEADER, &self.secret)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Error::Origin(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(Error::Origin(format!("{path}: HTTP {}", resp.status())));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Origin(format!("{path}: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| Error::Origin(format!("{path}: {e}")))
    }

    /// The CDN snapshot of every account, or of one.
    ///
    /// # Errors
    /// [`Error::Origin`].
    pub async fn snapshot(&self, account: Option<&str>) -> Result<SnapshotWire, Error> {
        let path = match account {
            Some(a) => format!(
                "/internal/snapshot?account={}",
                percent_encoding::utf8_percent_encode(a, percent_encoding::NON_ALPHANUMERIC)
            ),
            None => "/internal/snapshot".to_owned(),
        };
        self.get_json(&path, Duration::from_secs(30)).await
    }

    /// Changes after `since`, long-polling up to `wait`.
    ///
    /// # Errors
    /// [`Error::Origin`].
    pub async fn changes(&self, since: u64, wait: Duration) -> Result<FeedPage, Error> {
        let path = format!(
            "/internal/changes?since={since}&limit=1000&wait={}",
            wait.as_secs()
        );
        self.get_json(&path, wait + Duration::from_secs(10)).await
    }
}

/// The primary cache key of an object (see `proxy::cache_primary`).
pub fn object_key(account: &str, container: &str, object: &str) -> String {
    format!("/v1/AUTH_{account}/{container}/{object}")
}

/// Purges what a change invalidates; returns entries dropped.
pub fn purge_for(storage: &TieredStorage, c: &Change) -> usize {
    let container_base = c
        .container
        .as_ref()
        .map(|cn| format!("/v1/AUTH_{}/{cn}", c.account));
    let mut n = 0;
    if let Some(base) = &container_base {
        // Listings of the container (every query variant).
        n += storage.purge_primary(base);
        n += storage.purge_prefix(&format!("{base}?"));
    }
    match (&c.container, &c.object) {
        (Some(cn), Some(o)) => {
            let key = object_key(&c.account, cn, o);
            n += storage.purge_primary(&key);
            // Slices and other derived entries of the object.
            n += storage.purge_prefix(&format!("{key}#"));
        }
        (Some(_), None) if c.kind == "container-delete" => {
            if let Some(base) = &container_base {
                n += storage.purge_prefix(&format!("{base}/"));
            }
        }
        _ => {}
    }
    n
}

/// Loads the full snapshot, retrying until the origin answers or `deadline` passes.
///
/// # Errors
/// [`Error::Origin`] when the origin never answered.
pub async fn initial_snapshot(
    client: &OriginClient,
    deadline: Duration,
) -> Result<SnapshotWire, Error> {
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match client.snapshot(None).await {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() < deadline => {
                tracing::warn!(error = %e, "origin snapshot failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Follows the change feed from `since` forever: updates the catalog, purges the cache.
pub async fn follow(
    client: OriginClient,
    catalog: Arc<CatalogHandle>,
    storage: &'static TieredStorage,
    mut since: u64,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let page = match client.changes(since, Duration::from_secs(25)).await {
            Ok(p) => {
                backoff = Duration::from_millis(100);
                p
            }
            Err(e) => {
                tracing::warn!(error = %e, since, "change feed unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if page.truncated {
            tracing::warn!(
                since,
                first = page.first,
                "change feed truncated: resyncing and purging the whole cache"
            );
            match client.snapshot(None).await {
                Ok(s) => {
                    catalog.update(|c| *c = Catalog::from_snapshot(&s));
                    let n = storage.purge_all();
                    tracing::warn!(purged = n, "cache purged after feed gap");
                    since = s.seq;
                }
                Err(e) => tracing::warn!(error = %e, "resync failed; retrying"),
            }
            continue;
        }
        let mut accounts_to_reload: Vec<String> = Vec::new();
        for c in &page.changes {
            let n = purge_for(storage, c);
            tracing::debug!(seq = c.seq, kind = %c.kind, purged = n, "change applied");
            if (c.kind.starts_with("container-") || c.kind.starts_with("account-"))
                && !accounts_to_reload.contains(&c.account)
            {
                accounts_to_reload.push(c.account.clone());
            }
        }
        for a in accounts_to_reload {
            match client.snapshot(Some(&a)).await {
                Ok(s) => catalog.update(|cat| match s.accounts.first() {
                    Some(acc) => cat.set_account(acc),
                    None => cat.remove_account(&a),
                }),
                Err(e) => tracing::warn!(account = %a, error = %e, "reloading account failed"),
            }
        }
        since = page.changes.last().map_or(page.last.max(since), |c| c.seq);
    }
}
