//! Cluster status: one node's view (`GET /internal/cluster/status`), the same figures as
//! Prometheus metrics, and [`fetch_all`] behind `outpost cluster status`.

use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderValue, Method};
use outpost_ring::Ring;
use serde::{Deserialize, Serialize};

use super::{unix_now, Cluster};

/// One node's replication and audit state (`format` 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Wire format version.
    pub format: u32,
    /// `host:port` of this node in the ring.
    pub node: String,
    /// Ring version loaded.
    pub ring_version: u64,
    /// Completed replication passes.
    pub passes: u64,
    /// Unix seconds of the last completed pass (0: none).
    pub last_pass_end: u64,
    /// Seconds since the last completed pass ended (replication lag bound), or since start.
    pub lag_secs: u64,
    /// Duration of the last pass in milliseconds.
    pub last_pass_ms: u64,
    /// Partitions examined by the last pass.
    pub last_pass_partitions: u64,
    /// Current pass progress: partitions done / to do.
    pub progress: (u64, u64),
    /// Versions pushed to peers, ever.
    pub pushed: u64,
    /// Failed peer requests during replication, ever.
    pub errors: u64,
    /// Partitions held here as a handoff after the last pass.
    pub handoff_partitions: u64,
    /// Versions handed home, ever.
    pub reverted: u64,
    /// Tombstones reclaimed, ever.
    pub reclaimed: u64,
    /// Objects audited, ever.
    pub audited: u64,
    /// Copies quarantined, ever.
    pub quarantined: u64,
    /// Writes that needed a handoff, ever.
    pub handoff_writes: u64,
    /// Object rows held (live, listing-only, tombstones) and data copies held.
    pub objects: u64,
}

/// This node's status.
pub fn of(cl: &Cluster, objects: u64) -> NodeStatus {
    let started = cl.started;
    let s = &cl.stats;
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let end = ld(&s.last_pass_end);
    NodeStatus {
        format: 1,
        node: cl.cfg.node.clone(),
        ring_version: cl.ring().version,
        passes: ld(&s.passes),
        last_pass_end: end,
        lag_secs: unix_now().saturating_sub(if end == 0 { started } else { end }),
        last_pass_ms: ld(&s.last_pass_ms),
        last_pass_partitions: ld(&s.last_pass_partitions),
        progress: (ld(&s.pass_progress), ld(&s.pass_total)),
        pushed: ld(&s.pushed),
        errors: ld(&s.errors),
        handoff_partitions: ld(&s.handoff_partitions),
        reverted: ld(&s.reverted),
        reclaimed: ld(&s.reclaimed),
        audited: ld(&s.audited),
        quarantined: ld(&s.quarantined),
        handoff_writes: ld(&s.handoff_writes),
        objects,
    }
}

/// The status as Prometheus text exposition lines.
pub fn prometheus(st: &NodeStatus) -> String {
    let mut out = String::new();
    let mut line = |name: &str, help: &str, kind: &str, v: u64| {
        out.push_str(&format!(
            "# HELP outpost_cluster_{name} {help}\n# TYPE outpost_cluster_{name} {kind}\noutpost_cluster_{name} {v}\n"
        ));
    };
    line(
        "ring_version",
        "Ring version loaded",
        "gauge",
        st.ring_version,
    );
    line(
        "replication_passes_total",
        "Completed replication passes",
        "counter",
        st.passes,
    );
    line(
        "replication_lag_seconds",
        "Seconds since the last replication pass ended",
        "gauge",
        st.lag_secs,
    );
    line(
        "replication_last_pass_ms",
        "Duration of the last replication pass",
        "gauge",
        st.last_pass_ms,
    );
    line(
        "replication_progress_partitions",
        "Partitions done in the current pass",
        "gauge",
        st.progress.0,
    );
    line(
        "replication_pushed_total",
        "Versions pushed to peers",
        "counter",
        st.pushed,
    );
    line(
        "replication_errors_total",
        "Failed replication requests",
        "counter",
        st.errors,
    );
    line(
        "handoff_partitions",
        "Partitions held here as a handoff",
        "gauge",
        st.handoff_partitions,
    );
    line(
        "handoff_reverted_total",
        "Versions handed home",
        "counter",
        st.reverted,
    );
    line(
        "tombstones_reclaimed_total",
        "Tombstones reclaimed",
        "counter",
        st.reclaimed,
    );
    line("audited_total", "Objects audited", "counter", st.audited);
    line(
        "quarantined_total",
        "Corrupt copies quarantined",
        "counter",
        st.quarantined,
    );
    line(
        "handoff_writes_total",
        "Proxy writes that used a handoff",
        "counter",
        st.handoff_writes,
    );
    out
}

/// Asks every live device of `ring` for its status. Unreachable nodes give an error string.
pub async fn fetch_all(ring: &Ring, secret: &str) -> Vec<(String, Result<NodeStatus, String>)> {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return vec![("-".into(), Err(e.to_string()))],
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(secret) {
        headers.insert(crate::request::INTERNAL_HEADER, v);
    }
    let futs = ring.live_devices().map(|d| {
        let client = client.clone();
        let headers = headers.clone();
        let addr = d.addr();
        let url = format!("{}{}", d.url(), outpost_proto::paths::CLUSTER_STATUS);
        async move {
            let r = async {
                let resp = client
                    .request(Method::GET, url)
                    .headers(headers)
                    .send()
                    .await
                    .map_err(|e| format!("unreachable: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("answered {}", resp.status()));
                }
                let b = resp.bytes().await.map_err(|e| e.to_string())?;
                serde_json::from_slice::<NodeStatus>(&b).map_err(|e| e.to_string())
            }
            .await;
            (addr, r)
        }
    });
    futures_util::future::join_all(futs).await
}
