//! Cross-datacenter replication (`[sync]`): each DC is its own cluster (or a single node);
//! containers and whole accounts replicate asynchronously, both ways, to peer DCs.
//!
//! ## How a change travels
//! - **Selection**: the shipping worker ([`worker`]) of each peer reads this node's change
//!   feed in order, in batches of `sync.batch` entries, and keeps the object changes of
//!   containers that replicate to that peer: the container's
//!   `X-Container-Meta-Outpost-Sync-To` names it (comma-separated list), or a
//!   `[[sync.accounts]]` policy covers the container's account. Within a batch each object is
//!   shipped once, in its current state (the newest version or tombstone).
//! - **Have-check**: one `POST /internal/xdc/have` per batch asks the peer which timestamp it
//!   holds for each object (tombstones included). Only versions newer than the peer's are
//!   shipped. This is also what stops echoes: a version the peer sent us is, by definition,
//!   one the peer already holds at that timestamp, so it is never shipped back.
//! - **Shipping**: PUT (data and metadata) or DELETE to the peer's
//!   `/internal/xdc/v1/AUTH_<account>/<container>/<object>` carrying the version's original
//!   `X-Timestamp`. SLO manifests are shipped after every other object of the batch, and only
//!   once their segments are at the peer (segments missing there are shipped first).
//! - **Applying** (`origin/src/api/xdc.rs`): the peer checks the realm key, then runs the
//!   request through its normal write path as an internal request with that timestamp: newest
//!   wins, a cluster places it on its replicas, and the write lands in the peer's own change
//!   feed, so the peer DC's edges purge.
//! - **Progress**: after a batch is fully at the peer, the feed position is stored durably
//!   ([`position`]); a failed batch is retried whole with exponential backoff. A restart on
//!   either side resumes from the stored position.
//! - **Catch-up**: the shipper is *catching up* from the moment it finds entries after the
//!   position it last stood caught up at (`catchup_from`) until it reaches the end of the
//!   feed again. [`status`] shows done / total of that catch-up (the total grows while
//!   writes keep coming), the position's rate over the last minute and the ETA at that rate;
//!   a full comparison after a trimmed feed shows its partitions done / total.
//!
//! Concurrent writes of one name in two DCs converge: both sides keep the version with the
//! larger hybrid-clock timestamp, and the receiver's clock moves past every timestamp it
//! applies, so a write made after seeing a peer's version always wins over it, whatever the
//! clocks' skew.

pub mod elect;
pub mod meta;
pub mod position;
pub mod worker;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use crate::config::sync::{Peer, RawSync, SyncConfig};

use crate::cluster::Cluster;
use crate::hlc::TICKS_PER_SEC;
use crate::progress::{eta_secs, RateWindow};
use crate::store::Store;

/// Header naming the sending DC (its `[sync] name`).
pub use outpost_proto::headers::SYNC_FROM as FROM_HEADER;
/// Header carrying the realm key shared with the sending DC.
pub use outpost_proto::headers::SYNC_KEY as KEY_HEADER;
/// Container metadata naming the peers a container replicates to.
pub use outpost_proto::meta::CONTAINER_SYNC_TO as SYNC_TO_META;
/// Wire format version of the sync messages.
pub const FORMAT: u32 = 1;

/// One object named in a have-check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Account.
    pub account: String,
    /// Container.
    pub container: String,
    /// Object.
    pub object: String,
}

/// `POST /internal/xdc/have` body (`format` 1).
#[derive(Debug, Serialize, Deserialize)]
pub struct HaveRequest {
    /// Wire format version.
    pub format: u32,
    /// Objects asked about.
    pub objects: Vec<ObjectRef>,
}

/// `POST /internal/xdc/have` answer: per object, the timestamp of the version or tombstone
/// held (Swift form), or null.
#[derive(Debug, Serialize, Deserialize)]
pub struct HaveResponse {
    /// Wire format version.
    pub format: u32,
    /// One entry per asked object, in order.
    pub ts: Vec<Option<String>>,
}

/// Counters of one peer.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Feed position: every entry up to it is at the peer.
    pub position: AtomicU64,
    /// Versions and tombstones shipped, ever.
    pub shipped: AtomicU64,
    /// Data bytes shipped, ever.
    pub bytes: AtomicU64,
    /// Objects the peer already had (including echoes of its own writes), ever.
    pub skipped: AtomicU64,
    /// Objects the peer refused for good (4xx), ever.
    pub rejected: AtomicU64,
    /// Failed batches (retried), ever.
    pub errors: AtomicU64,
    /// Consecutive failed batches (0: the link works).
    pub failing: AtomicU64,
    /// Times the worker found its position trimmed from the feed.
    pub truncated: AtomicU64,
    /// Last error, for the status.
    pub last_error: Mutex<String>,
    /// The position the worker last stood caught up at (the start of the current catch-up).
    pub catchup_from: AtomicU64,
    /// Samples of the position, for its rate over the last minute.
    pub rate: Mutex<RateWindow>,
    /// Partitions a running full comparison (after a trimmed feed) has done.
    pub resync_done: AtomicU64,
    /// Partitions a running full comparison will do (0: none runs).
    pub resync_total: AtomicU64,
    /// This node ships to the peer now (not standing by for a lower node, see [`elect`]).
    pub active: std::sync::atomic::AtomicBool,
}

impl PeerStats {
    /// Records that the position is `pos` now (after a batch, a comparison or at start).
    pub fn moved_to(&self, pos: u64) {
        self.position.store(pos, Ordering::Relaxed);
        self.rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(Instant::now(), pos);
    }
}

/// Cross-DC replication state of a node.
#[derive(Debug)]
pub struct Xdc {
    /// Validated settings.
    pub cfg: SyncConfig,
    /// Per peer, in `cfg.peers` order.
    pub stats: Vec<PeerStats>,
    /// Writes applied for peers, ever.
    pub received: AtomicU64,
}

impl Xdc {
    /// Builds the state (positions are loaded by the workers).
    pub fn new(cfg: SyncConfig) -> Xdc {
        let stats = cfg.peers.iter().map(|_| PeerStats::default()).collect();
        Xdc {
            cfg,
            stats,
            received: AtomicU64::new(0),
        }
    }

    /// The configured peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.cfg.peers.iter().find(|p| p.name == name)
    }

    /// True if the peer called `name` presented `key` (constant-time compare).
    pub fn authenticate(&self, name: &str, key: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.peer(name)
            .is_some_and(|p| bool::from(p.realm_key.as_bytes().ct_eq(key)))
    }

    /// Peers a container replicates to: its `X-Container-Meta-Outpost-Sync-To` list plus the
    /// account policies.
    pub fn targets(&self, account: &str, container_meta: &crate::db::Meta) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(v) = container_meta.get(SYNC_TO_META) {
            for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if self.peer(p).is_some() && !out.iter().any(|o| o == p) {
                    out.push(p.to_owned());
                }
            }
        }
        for (a, peers) in &self.cfg.accounts {
            if a == account {
                for p in peers {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
        }
        out
    }
}

/// One peer's replication state (`outpost cluster status`, `/internal/xdc/status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Peer name.
    pub peer: String,
    /// Feed position shipped up to.
    pub position: u64,
    /// Feed entries after the position (upper bound of objects behind).
    pub lag_entries: u64,
    /// Age of the oldest change not yet shipped, seconds (0 when caught up).
    pub lag_secs: u64,
    /// Versions and tombstones shipped, ever.
    pub shipped: u64,
    /// Data bytes shipped, ever.
    pub bytes: u64,
    /// Objects the peer already had, ever.
    pub skipped: u64,
    /// Objects the peer refused for good, ever.
    pub rejected: u64,
    /// Failed batches, ever.
    pub errors: u64,
    /// True while the last batch failed.
    pub failing: bool,
    /// Last error seen.
    pub last_error: String,
    /// Feed entries the current catch-up has shipped (0 when caught up).
    #[serde(default)]
    pub catchup_done: u64,
    /// Feed entries the current catch-up covers so far (0 when caught up; grows while
    /// writes keep coming).
    #[serde(default)]
    pub catchup_total: u64,
    /// Feed entries shipped per second over the last minute.
    #[serde(default)]
    pub rate_per_sec: f64,
    /// Seconds until caught up at that rate; absent when the rate is zero.
    #[serde(default)]
    pub eta_secs: Option<u64>,
    /// Partitions a running full comparison (after a trimmed feed) has done.
    #[serde(default)]
    pub resync_done: u64,
    /// Partitions that comparison covers (0: none runs).
    #[serde(default)]
    pub resync_total: u64,
    /// This node ships to the peer now; false: it stands by for a node lower in the ring
    /// ([`elect`]). Absent from older nodes, which always ship.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

impl PeerStatus {
    /// The catch-up figures of a shipper at `pos` that stood caught up at `from`, with the
    /// feed ending at `last` and the position moving at `rate` entries per second:
    /// `(done, total, eta_secs)`.
    pub fn catchup(from: u64, pos: u64, last: u64, rate: f64) -> (u64, u64, Option<u64>) {
        let behind = last.saturating_sub(pos);
        if behind == 0 {
            return (0, 0, Some(0));
        }
        let from = from.min(pos);
        (pos - from, last - from, eta_secs(behind, rate))
    }
}

/// Every peer's state as seen from this node (empty without `[sync]` or shipping).
///
/// # Errors
/// [`crate::Error::Db`].
pub fn status(st: &Store, x: &Xdc) -> crate::Result<Vec<PeerStatus>> {
    if !x.cfg.ship {
        return Ok(Vec::new());
    }
    let last = st.db.last_seq();
    let now = st.clock.wall_secs();
    let mut out = Vec::new();
    for (p, s) in x.cfg.peers.iter().zip(&x.stats) {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let pos = ld(&s.position);
        let rate = s
            .rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .per_sec(Instant::now())
            .unwrap_or(0.0);
        let (catchup_done, catchup_total, eta) =
            PeerStatus::catchup(ld(&s.catchup_from), pos, last, rate);
        let lag_secs = if pos < last {
            st.db
                .changes_since(pos, 1)?
                .first()
                .and_then(|c| c.ts.parse::<crate::hlc::Timestamp>().ok())
                .map_or(0, |t| now.saturating_sub(t.0 / TICKS_PER_SEC))
        } else {
            0
        };
        out.push(PeerStatus {
            peer: p.name.clone(),
            position: pos,
            lag_entries: last.saturating_sub(pos),
            lag_secs,
            shipped: ld(&s.shipped),
            bytes: ld(&s.bytes),
            skipped: ld(&s.skipped),
            rejected: ld(&s.rejected),
            errors: ld(&s.errors),
            failing: ld(&s.failing) > 0,
            last_error: s
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            catchup_done,
            catchup_total,
            rate_per_sec: rate,
            eta_secs: eta,
            resync_done: ld(&s.resync_done),
            resync_total: ld(&s.resync_total),
            active: s.active.load(Ordering::Relaxed),
        });
    }
    Ok(out)
}

/// The same figures as Prometheus text.
pub fn prometheus(peers: &[PeerStatus], received: u64) -> String {
    let mut s = String::new();
    type Metric = (&'static str, &'static str, fn(&PeerStatus) -> u64);
    let metrics: [Metric; 11] = [
        (
            "outpost_xdc_lag_entries",
            "Feed entries not yet shipped to the peer",
            |p| p.lag_entries,
        ),
        (
            "outpost_xdc_lag_seconds",
            "Age of the oldest change not yet shipped to the peer",
            |p| p.lag_secs,
        ),
        (
            "outpost_xdc_shipped_total",
            "Versions and tombstones shipped to the peer",
            |p| p.shipped,
        ),
        (
            "outpost_xdc_shipped_bytes_total",
            "Data bytes shipped to the peer",
            |p| p.bytes,
        ),
        (
            "outpost_xdc_skipped_total",
            "Objects the peer already held",
            |p| p.skipped,
        ),
        (
            "outpost_xdc_rejected_total",
            "Objects the peer refused for good",
            |p| p.rejected,
        ),
        (
            "outpost_xdc_errors_total",
            "Failed (retried) batches",
            |p| p.errors,
        ),
        (
            "outpost_xdc_catchup_done_entries",
            "Feed entries the current catch-up has shipped",
            |p| p.catchup_done,
        ),
        (
            "outpost_xdc_catchup_entries",
            "Feed entries the current catch-up covers so far",
            |p| p.catchup_total,
        ),
        (
            "outpost_xdc_resync_done_partitions",
            "Partitions a running full comparison has done",
            |p| p.resync_done,
        ),
        (
            "outpost_xdc_resync_partitions",
            "Partitions a running full comparison covers",
            |p| p.resync_total,
        ),
    ];
    for (name, help, f) in metrics {
        let _ = writeln!(s, "# HELP {name} {help}");
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(s, "# TYPE {name} {kind}");
        for p in peers {
            let _ = writeln!(s, "{name}{{peer=\"{}\"}} {}", p.peer, f(p));
        }
    }
    let _ = writeln!(
        s,
        "# HELP outpost_xdc_rate_entries_per_second Feed entries shipped per second over the last minute\n# TYPE outpost_xdc_rate_entries_per_second gauge"
    );
    for p in peers {
        let _ = writeln!(
            s,
            "outpost_xdc_rate_entries_per_second{{peer=\"{}\"}} {}",
            p.peer, p.rate_per_sec
        );
    }
    let _ = writeln!(
        s,
        "# HELP outpost_xdc_eta_seconds Seconds until caught up at the last minute's rate (absent when stalled)\n# TYPE outpost_xdc_eta_seconds gauge"
    );
    for p in peers {
        if let Some(eta) = p.eta_secs {
            let _ = writeln!(s, "outpost_xdc_eta_seconds{{peer=\"{}\"}} {eta}", p.peer);
        }
    }
    let _ = writeln!(
        s,
        "# HELP outpost_xdc_received_total Writes applied for peer DCs\n# TYPE outpost_xdc_received_total counter\noutpost_xdc_received_total {received}"
    );
    s
}

/// Starts one shipping worker per peer (when `[sync] ship` is on). Workers read versions
/// from the local store; in a cluster, a version whose data this node does not hold is read
/// from its replicas.
pub fn spawn(
    st: &Arc<Store>,
    x: &Arc<Xdc>,
    cluster: Option<&Arc<Cluster>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    if !x.cfg.ship {
        return Vec::new();
    }
    (0..x.cfg.peers.len())
        .map(|i| {
            tokio::spawn(worker::run(
                Arc::clone(st),
                Arc::clone(x),
                cluster.cloned(),
                i,
            ))
        })
        .collect()
}

/// Skew added to this node's wall clock, from `OUTPOST_CLOCK_SKEW_SECS` (test-only knob for
/// cross-DC convergence under clock skew; unset in production).
///
/// # Errors
/// [`crate::Error::Config`] naming the variable when it is not an integer.
pub fn clock_skew_from_env() -> crate::Result<i64> {
    match std::env::var("OUTPOST_CLOCK_SKEW_SECS") {
        Err(_) => Ok(0),
        Ok(v) => v.trim().parse().map_err(|_| crate::Error::Config {
            key: "OUTPOST_CLOCK_SKEW_SECS".into(),
            reason: "must be an integer number of seconds".into(),
        }),
    }
}

/// Asks each node (`(name, base URL)`) for its cross-DC state (`outpost cluster status`).
/// Nodes that do not ship answer an empty list; unreachable ones an error string.
pub async fn fetch_all(
    nodes: Vec<(String, String)>,
    secret: &str,
) -> Vec<(String, std::result::Result<Vec<PeerStatus>, String>)> {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return vec![("-".into(), Err(e.to_string()))],
    };
    let futs = nodes.into_iter().map(|(name, url)| {
        let client = client.clone();
        let secret = secret.to_owned();
        async move {
            let r = async {
                let resp = client
                    .get(format!("{url}{}", outpost_proto::paths::XDC_STATUS))
                    .header(crate::request::INTERNAL_HEADER, secret)
                    .send()
                    .await
                    .map_err(|e| format!("unreachable: {e}"))?;
                if resp.status() == http::StatusCode::NOT_FOUND {
                    return Ok(Vec::new());
                }
                if !resp.status().is_success() {
                    return Err(format!("answered {}", resp.status()));
                }
                let b = resp.bytes().await.map_err(|e| e.to_string())?;
                serde_json::from_slice::<Vec<PeerStatus>>(&b).map_err(|e| e.to_string())
            }
            .await;
            (name, r)
        }
    });
    futures_util::future::join_all(futs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catchup_counts_from_where_the_shipper_last_stood_caught_up() {
        // Caught up: no catch-up, nothing left.
        assert_eq!(PeerStatus::catchup(40, 100, 100, 0.0), (0, 0, Some(0)));
        // Stood caught up at 100, the feed grew to 1100, 400 shipped at 50/s: 600 left.
        assert_eq!(
            PeerStatus::catchup(100, 500, 1_100, 50.0),
            (400, 1_000, Some(12))
        );
        // Stalled (the link is down): no ETA.
        assert_eq!(PeerStatus::catchup(100, 100, 1_100, 0.0), (0, 1_000, None));
        // A start position past the current one (cannot happen, but never underflows).
        assert_eq!(PeerStatus::catchup(900, 500, 1_100, 0.0), (0, 600, None));
    }

    #[test]
    fn older_peer_status_reads_and_progress_is_exported() {
        let old = r#"[{"peer":"dc2","position":5,"lag_entries":3,"lag_secs":1,"shipped":5,
            "bytes":50,"skipped":0,"rejected":0,"errors":0,"failing":false,"last_error":""}]"#;
        let mut peers: Vec<PeerStatus> = serde_json::from_str(old).unwrap();
        assert_eq!(peers[0].eta_secs, None);
        assert_eq!(peers[0].catchup_total, 0);
        peers[0].catchup_done = 2;
        peers[0].catchup_total = 5;
        peers[0].rate_per_sec = 2.5;
        peers[0].eta_secs = Some(2);
        let text = prometheus(&peers, 0);
        for want in [
            "outpost_xdc_catchup_done_entries{peer=\"dc2\"} 2\n",
            "outpost_xdc_catchup_entries{peer=\"dc2\"} 5\n",
            "outpost_xdc_rate_entries_per_second{peer=\"dc2\"} 2.5\n",
            "outpost_xdc_eta_seconds{peer=\"dc2\"} 2\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
    }
}
