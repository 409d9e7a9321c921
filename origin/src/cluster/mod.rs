//! Cluster mode: this node is one device of a ring (`[cluster]` in the config).
//!
//! ## Roles
//! - **Proxy** ([`proxy`]): every node accepts the Swift API. Object writes go to the
//!   partition's primaries (a handoff device replaces a primary that does not answer) and
//!   succeed on a quorum (`replicas / 2 + 1`) of durable acks; every other node gets the
//!   object's *listing row* (no data), so each node holds every account, container and object
//!   row: listings, counters, ACLs and the change feed are local everywhere. Reads go to one
//!   primary and fall back to the others and the handoffs on error or 404; a newer tombstone
//!   beats older data; `X-Newest: true` asks every primary.
//!   The write path ([`write`]) answers at quorum and finishes the other copies in the
//!   background; SLO manifests ([`slo`]) are assembled from segments on their own replicas.
//!   The S3 API calls the same paths through typed entry points ([`objects`]).
//! - **Storage**: requests carrying the cluster secret and `X-Outpost-Direct: data|row` are
//!   applied to this node's own store only, with the sender's `X-Timestamp`. This is the one
//!   internal write API: the proxy, the replicator and (later) cross-datacenter sync use it.
//! - **Replicator** ([`replicator`]): per partition and peer, compares per-suffix hashes and
//!   pushes what the peer lacks or has older (tombstones included); data moves home from
//!   handoffs and is then dropped; old tombstones are reclaimed; account and container rows
//!   are pulled from every peer (newest wins).
//! - **Auditor** ([`auditor`]): re-reads data at a bounded rate, checks MD5 against the ETag,
//!   quarantines bad copies and forgets their rows so the replicator restores them.
//!
//! The ring file is polled; a new version takes effect without a restart.

pub mod auditor;
pub mod broadcast;
pub mod objects;
pub mod proxy;
pub mod purge_wait;
pub mod replicator;
pub mod slo;
pub mod status;
pub mod write;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method};
use outpost_ring::{Reload, Ring, RingFile};

use crate::config::ClusterConfig;
use crate::{Error, Result};

/// On a direct 404: `listing` when the node has the version's row but not its data.
pub use outpost_proto::headers::BACKEND_STATE as BACKEND_STATE_HEADER;
/// On a direct 404: the timestamp of the tombstone (or listing row) the node holds.
pub use outpost_proto::headers::BACKEND_TIMESTAMP as BACKEND_TS_HEADER;
/// Header selecting the storage role: `data` (store the version with its data) or `row`
/// (store only its listing row). Honoured only with the cluster secret.
pub use outpost_proto::headers::DIRECT as DIRECT_HEADER;
/// On a listing-row PUT: the object's size.
pub use outpost_proto::headers::SIZE as SIZE_HEADER;
/// On a direct PUT: the version is an SLO manifest.
pub use outpost_proto::headers::SLO as SLO_HEADER;

pub use crate::request::Direct;

/// Counters shown by `/internal/cluster/status`, `outpost cluster status` and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Completed replication passes.
    pub passes: AtomicU64,
    /// Unix seconds when the last pass started.
    pub last_pass_start: AtomicU64,
    /// Unix seconds when the last pass finished (0: none yet).
    pub last_pass_end: AtomicU64,
    /// Duration of the last pass, milliseconds.
    pub last_pass_ms: AtomicU64,
    /// Partitions examined in the last pass.
    pub last_pass_partitions: AtomicU64,
    /// Partitions of the current pass done so far (progress).
    pub pass_progress: AtomicU64,
    /// Partitions the current pass will examine.
    pub pass_total: AtomicU64,
    /// True while a pass runs.
    pub pass_running: AtomicBool,
    /// Unix milliseconds when the current (or last) pass started.
    pub pass_start_ms: AtomicU64,
    /// Object rows the current pass has examined so far.
    pub pass_rows: AtomicU64,
    /// Versions the current pass has pushed so far.
    pub pass_pushed: AtomicU64,
    /// Data bytes the current pass has pushed so far.
    pub pass_bytes: AtomicU64,
    /// Object rows the last completed pass examined.
    pub last_pass_rows: AtomicU64,
    /// Versions the last completed pass pushed.
    pub last_pass_pushed: AtomicU64,
    /// Data bytes the last completed pass pushed.
    pub last_pass_bytes: AtomicU64,
    /// Versions pushed to peers, ever.
    pub pushed: AtomicU64,
    /// Failed pushes or peer queries, ever.
    pub errors: AtomicU64,
    /// Partitions whose data this node holds without being a primary (the handoff backlog:
    /// what a rebalance still has to move away from here). Counted when a ring loads and
    /// when a pass starts, lowered as the pass hands partitions home, and set to what is left
    /// when it ends.
    pub handoff_partitions: AtomicU64,
    /// Versions whose data moved home and was dropped here, ever.
    pub reverted: AtomicU64,
    /// Tombstones reclaimed, ever.
    pub reclaimed: AtomicU64,
    /// Objects the auditor checked, ever.
    pub audited: AtomicU64,
    /// Copies the auditor quarantined, ever.
    pub quarantined: AtomicU64,
    /// Proxy writes that needed a handoff, ever.
    pub handoff_writes: AtomicU64,
}

/// Cluster state of a node.
#[derive(Debug)]
pub struct Cluster {
    /// Validated settings.
    pub cfg: ClusterConfig,
    ring: RingFile,
    secret: HeaderValue,
    client: reqwest::Client,
    permits: tokio::sync::Semaphore,
    /// Counters.
    pub stats: Stats,
    /// One replication pass at a time.
    pub pass_lock: tokio::sync::Mutex<()>,
    /// One audit pass at a time.
    pub audit_lock: tokio::sync::Mutex<()>,
    /// Unix seconds when the node started.
    pub started: u64,
}

/// Now as Unix milliseconds.
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Now as Unix seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Cluster {
    /// Loads the ring and builds the peer client.
    ///
    /// # Errors
    /// [`Error::Config`] naming `cluster.ring` when the ring cannot be loaded, or
    /// `internal_secret` when it is not a valid header value.
    pub fn open(cfg: ClusterConfig, secret: &str) -> Result<Cluster> {
        let ring = RingFile::open(&cfg.ring).map_err(|e| Error::Config {
            key: "cluster.ring".into(),
            reason: e.to_string(),
        })?;
        if ring.ring().device_at(&cfg.node).is_none() {
            tracing::warn!(node = %cfg.node, "this node is not in the ring (yet): it proxies but holds no partitions");
        }
        let secret = HeaderValue::from_str(secret).map_err(|_| Error::Config {
            key: "internal_secret".into(),
            reason: "must be a valid header value".into(),
        })?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .connect_timeout(cfg.node_timeout)
            .local_address(cfg.source_address)
            .build()
            .map_err(|e| Error::Config {
                key: "cluster".into(),
                reason: format!("cannot build the peer client: {e}"),
            })?;
        Ok(Cluster {
            permits: tokio::sync::Semaphore::new(cfg.max_peer_requests),
            cfg,
            ring,
            secret,
            client,
            stats: Stats::default(),
            pass_lock: tokio::sync::Mutex::new(()),
            audit_lock: tokio::sync::Mutex::new(()),
            started: unix_now(),
        })
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.ring()
    }

    /// This node's device id in `ring`, if it is in it.
    pub fn me(&self, ring: &Ring) -> Option<u32> {
        ring.device_at(&self.cfg.node).map(|d| d.id)
    }

    /// Reloads the ring if the file changed and holds a newer version. Returns true if it did.
    pub fn reload_if_changed(&self) -> bool {
        match self.ring.reload_if_changed() {
            Reload::Loaded(r) => {
                tracing::info!(version = r.version, "loaded a new ring");
                true
            }
            Reload::Failed(e) => {
                tracing::warn!(error = %e, "cannot load the ring file; keeping the current ring");
                false
            }
            Reload::Unchanged | Reload::NotNewer => false,
        }
    }

    /// Sends one request to a peer with the cluster secret, waiting at most `node_timeout`
    /// for the response headers.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the peer cannot be reached or does not answer in time.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request.
    pub async fn send(
        &self,
        method: Method,
        url: String,
        headers: HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response> {
        self.send_within(method, url, headers, body, Duration::ZERO)
            .await
    }

    /// As [`Cluster::send`], for a request the peer answers only after waiting up to `extra`:
    /// the answer may take `node_timeout + extra`. Such a wait takes none of the
    /// `max_peer_requests` permits (it loads neither side, and must not starve the writes).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the peer cannot be reached or does not answer in time.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request.
    pub async fn send_within(
        &self,
        method: Method,
        url: String,
        mut headers: HeaderMap,
        body: Option<reqwest::Body>,
        extra: Duration,
    ) -> Result<reqwest::Response> {
        let _permit = if extra.is_zero() {
            Some(self.permits.acquire().await.map_err(|_| Error::Task)?)
        } else {
            None
        };
        headers.insert(crate::request::INTERNAL_HEADER, self.secret.clone());
        let mut req = self.client.request(method, &url).headers(headers);
        if let Some(b) = body {
            req = req.body(b);
        }
        match tokio::time::timeout(self.cfg.node_timeout + extra, req.send()).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                tracing::debug!(%url, error = %e, "peer request failed");
                Err(Error::Unavailable {
                    reason: "a peer could not be reached",
                })
            }
            Err(_) => {
                tracing::debug!(%url, "peer request timed out");
                Err(Error::Unavailable {
                    reason: "a peer did not answer in time",
                })
            }
        }
    }

    /// Counts one event.
    pub fn count(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// `/v1/AUTH_<account>/<container>/<object>` on a peer, percent-encoded.
pub fn object_url(base: &str, account: &str, container: &str, object: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
    // Everything but unreserved characters and '/' inside object names.
    const SEG: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'[')
        .add(b']')
        .add(b'\\')
        .add(b'^')
        .add(b'|')
        .add(b'&')
        .add(b'+')
        .add(b';')
        .add(b'=');
    const SEG_NO_SLASH: &AsciiSet = &SEG.add(b'/');
    format!(
        "{base}/v1/AUTH_{}/{}/{}",
        utf8_percent_encode(account, SEG_NO_SLASH),
        utf8_percent_encode(container, SEG_NO_SLASH),
        utf8_percent_encode(object, SEG)
    )
}

/// Runs forever: reloads the ring when its file changes (the store follows its partition
/// power).
pub async fn watch_ring(st: Arc<crate::store::Store>, cl: Arc<Cluster>) {
    let mut tick = tokio::time::interval(cl.cfg.ring_poll);
    loop {
        tick.tick().await;
        if cl.reload_if_changed() {
            st.set_part_power(cl.ring().part_power);
            // A rebalance shows its data movement at once, not only after the next pass.
            if let Err(e) = replicator::count_handoff_backlog(&st, &cl).await {
                tracing::warn!(error = %e, "cannot count the handoff backlog");
            }
        }
    }
}
