//! The origin client (snapshot, change feed) and the subscriber that keeps the catalog current
//! and purges the cache on every change.

use std::sync::Arc;
use std::time::Duration;

pub use outpost_proto::feed::PurgeTarget;
use outpost_proto::feed::{Change, ChangeKind, FeedPage, RevocationKind};
use outpost_proto::{paths, Wire};

use crate::access::EdgeRevocations;
use crate::cache::TieredStorage;
use crate::cache_key;
use crate::catalog::{Catalog, CatalogHandle, Snapshot};
use crate::metrics::EdgeMetrics;
use crate::purgelog::PurgeLog;
use crate::Error;

/// Header carrying the internal secret to the origin.
pub use outpost_proto::headers::INTERNAL as INTERNAL_HEADER;

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

    /// A request to one of the origin's internal endpoints, carrying the edge credential.
    pub(crate) fn internal(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(INTERNAL_HEADER, &self.secret)
    }

    async fn get_json<T: Wire>(&self, path: &str, timeout: Duration) -> Result<T, Error> {
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
        outpost_proto::from_json(&body).map_err(|e| Error::Origin(format!("{path}: {e}")))
    }

    /// The CDN snapshot of every account, or of one.
    ///
    /// # Errors
    /// [`Error::Origin`].
    pub async fn snapshot(&self, account: Option<&str>) -> Result<Snapshot, Error> {
        let path = match account {
            Some(a) => format!(
                "{}?account={}",
                paths::SNAPSHOT,
                percent_encoding::utf8_percent_encode(a, percent_encoding::NON_ALPHANUMERIC)
            ),
            None => paths::SNAPSHOT.to_owned(),
        };
        self.get_json(&path, Duration::from_secs(30)).await
    }

    /// Changes after `since`, long-polling up to `wait`. Asking is also how `edge` tells the
    /// origin it has applied everything up to `since` (for `X-Purge-Wait`).
    ///
    /// # Errors
    /// [`Error::Origin`].
    pub async fn changes(&self, since: u64, wait: Duration, edge: &str) -> Result<FeedPage, Error> {
        let edge = percent_encoding::utf8_percent_encode(edge, percent_encoding::NON_ALPHANUMERIC);
        let path = format!(
            "{}?since={since}&limit=1000&wait={}&edge={edge}",
            paths::CHANGES,
            wait.as_secs()
        );
        self.get_json(&path, wait + Duration::from_secs(10)).await
    }
}

/// The cache and the log of what was purged (see [`crate::purgelog`]).
#[derive(Clone, Copy)]
pub struct Purger<'a> {
    /// The cache.
    pub storage: &'a TieredStorage,
    /// The purge log.
    pub log: &'a PurgeLog,
}

impl Purger<'_> {
    /// Drops every entry (all variants) of one primary key.
    pub fn primary(&self, key: &str) -> usize {
        self.log.exact(key);
        self.storage.purge_primary(key)
    }

    fn prefix(&self, prefix: &str) -> usize {
        self.log.prefix(prefix);
        self.storage.purge_prefix(prefix)
    }

    /// Drops everything.
    pub fn all(&self) -> usize {
        self.log.all();
        self.storage.purge_all()
    }
}

/// Purges what a change of `account` invalidates; returns entries dropped.
pub fn purge_for(p: Purger<'_>, account: &str, kind: &ChangeKind) -> usize {
    let mut n = 0;
    if let Some(cn) = kind.container() {
        // Listings of the container (every query variant).
        let base = cache_key::container_listing(account, cn);
        n += p.primary(&base);
        n += p.prefix(&cache_key::listing_variants(&base));
        // Static-website answers depend on any object and on the settings of the container.
        let (web, web_below) = cache_key::web_site(account, cn);
        n += p.primary(&web);
        n += p.prefix(&web_below);
    }
    match kind {
        ChangeKind::PurgePrefix { container, prefix } => {
            n += p.prefix(&cache_key::object(account, container, prefix));
        }
        ChangeKind::ObjectPut {
            container, object, ..
        }
        | ChangeKind::ObjectPost {
            container, object, ..
        }
        | ChangeKind::ObjectDelete { container, object }
        | ChangeKind::PurgeObject { container, object } => {
            let key = cache_key::object(account, container, object);
            n += p.primary(&key);
            // Slices and other derived entries of the object.
            n += p.prefix(&cache_key::derived(&key));
        }
        ChangeKind::ContainerDelete { container } | ChangeKind::PurgeContainer { container } => {
            n += p.prefix(&cache_key::container_objects(account, container));
        }
        ChangeKind::PurgeAccount => {
            let base = cache_key::account(account);
            n += p.primary(&base);
            n += p.prefix(&format!("{base}/"));
            n += p.prefix(&cache_key::listing_variants(&base));
            n += p.prefix(&cache_key::web_account(account));
        }
        ChangeKind::ContainerPut { .. }
        | ChangeKind::ContainerPost { .. }
        | ChangeKind::AccountPut
        | ChangeKind::AccountPost
        | ChangeKind::AccountDelete
        | ChangeKind::RevokeSession { .. }
        | ChangeKind::RevokeUser { .. }
        | ChangeKind::CertPut { .. } => {}
    }
    n
}

/// Applies a revocation change.
pub fn revoke_for(revocations: &EdgeRevocations, c: &Change) {
    if let Some(r) = c.kind.revocation() {
        apply_revocation(revocations, &c.account, &r);
    }
}

fn apply_revocation(
    revocations: &EdgeRevocations,
    account: &str,
    r: &outpost_proto::feed::Revocation,
) {
    match r.kind {
        RevocationKind::Session => revocations.revoke_session(account, &r.id),
        RevocationKind::User => revocations.revoke_user(account, &r.id, r.at),
    }
}

/// Loads the revocations of a snapshot.
pub fn load_revocations(revocations: &EdgeRevocations, s: &Snapshot) {
    for a in &s.accounts {
        for r in &a.revocations {
            apply_revocation(revocations, &a.name, r);
        }
    }
}

/// Seconds since a change's commit timestamp (Swift format), if it parses.
fn age_of(ts: &str) -> Option<f64> {
    let t: f64 = ts.split('_').next()?.parse().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some((now - t).max(0.0))
}

/// Loads the full snapshot, retrying until the origin answers or `deadline` passes.
///
/// # Errors
/// [`Error::Origin`] when the origin never answered.
pub async fn initial_snapshot(
    client: &OriginClient,
    deadline: Duration,
) -> Result<Snapshot, Error> {
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

/// Everything the feed follower updates.
#[derive(Clone)]
pub struct FeedTargets {
    /// The catalog.
    pub catalog: Arc<CatalogHandle>,
    /// The cache.
    pub storage: &'static TieredStorage,
    /// The purge log shared with the proxy.
    pub purge_log: Arc<PurgeLog>,
    /// Revoked sessions and users.
    pub revocations: EdgeRevocations,
    /// Metrics.
    pub metrics: Arc<EdgeMetrics>,
    /// This edge's id (its acknowledgements carry it).
    pub edge_id: String,
    /// Where the last applied feed position is kept, so a restarted edge resumes from it.
    pub position_file: Option<std::path::PathBuf>,
    /// Automatic certificates (edges with `[tls]`): `cert-put` changes install the domain's
    /// new certificate.
    pub certs: Option<Arc<crate::acme::CertSync>>,
}

/// Reads the feed position a previous run of this edge applied.
pub fn load_position(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Records the applied feed position (temp file + rename: never a torn number).
pub fn save_position(path: &std::path::Path, seq: u64) {
    let tmp = path.with_extension("tmp");
    let ok = std::fs::write(&tmp, seq.to_string()).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = ok {
        tracing::warn!(error = %e, path = %path.display(), "cannot record the feed position");
    }
}

impl FeedTargets {
    fn purger(&self) -> Purger<'_> {
        Purger {
            storage: self.storage,
            log: &self.purge_log,
        }
    }

    async fn resync(&self, client: &OriginClient, why: &str) -> Option<u64> {
        match client.snapshot(None).await {
            Ok(s) => {
                self.catalog.update(|c| *c = Catalog::from_snapshot(&s));
                if let Some(certs) = &self.certs {
                    if let Err(e) = certs.load_all().await {
                        tracing::warn!(error = %e, "reloading certificates failed");
                    }
                }
                load_revocations(&self.revocations, &s);
                let n = self.purger().all();
                self.metrics.purged("resync", n);
                tracing::warn!(
                    purged = n,
                    why,
                    "resynced with the origin and purged the whole cache"
                );
                Some(s.seq)
            }
            Err(e) => {
                tracing::warn!(error = %e, "resync failed; retrying");
                None
            }
        }
    }
}

/// Follows the change feed from `since` forever: updates the catalog, purges the cache,
/// applies revocations. Every poll acknowledges what was applied before it.
pub async fn follow(client: OriginClient, t: FeedTargets, mut since: u64) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if let Some(certs) = t.certs.as_ref().filter(|c| !c.loaded()) {
            // The origin did not answer the certificate index at start: try again.
            if let Err(e) = certs.load_all().await {
                tracing::warn!(error = %e, "automatic certificates not loaded; retrying");
            }
        }
        let page = match client
            .changes(since, Duration::from_secs(25), &t.edge_id)
            .await
        {
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
        if page.truncated || page.last < since {
            // Changes we never saw were trimmed, or the origin's feed started over.
            let why = if page.truncated {
                "feed truncated"
            } else {
                "feed went backwards"
            };
            if let Some(seq) = t.resync(&client, why).await {
                since = seq;
                if let Some(path) = &t.position_file {
                    save_position(path, since);
                }
            }
            continue;
        }
        let mut accounts_to_reload: Vec<String> = Vec::new();
        for c in &page.changes {
            let n = purge_for(t.purger(), &c.account, &c.kind);
            revoke_for(&t.revocations, c);
            t.metrics.purged("feed", n);
            if let Some(age) = age_of(&c.ts) {
                t.metrics.change_applied(age);
            }
            tracing::debug!(
                seq = c.seq,
                kind = c.kind.as_str(),
                purged = n,
                "change applied"
            );
            if let (ChangeKind::CertPut { domain }, Some(certs)) = (&c.kind, &t.certs) {
                // A failure is in the domain's status; the next cert-put or a resync retries.
                if let Err(e) = certs.fetch(domain).await {
                    tracing::warn!(domain = %domain, error = %e, "installing a stored certificate failed");
                }
            }
            if c.kind.changes_metadata() && !accounts_to_reload.contains(&c.account) {
                accounts_to_reload.push(c.account.clone());
            }
        }
        for a in accounts_to_reload {
            match client.snapshot(Some(&a)).await {
                Ok(s) => {
                    load_revocations(&t.revocations, &s);
                    t.catalog.update(|cat| match s.accounts.first() {
                        Some(acc) => cat.set_account(acc),
                        None => cat.remove_account(&a),
                    });
                }
                Err(e) => tracing::warn!(account = %a, error = %e, "reloading account failed"),
            }
        }
        let next = page.changes.last().map_or(since, |c| c.seq);
        if next != since {
            since = next;
            t.metrics.feed_at(since);
            if let Some(path) = &t.position_file {
                save_position(path, since);
            }
        }
    }
}
