//! Cluster status: one node's view (`GET /internal/cluster/status`), the same figures as
//! Prometheus metrics, and [`fetch_all`] behind `outpost cluster status`.
//!
//! Format 1 grew the pass progress fields (`pass_*`, `last_pass_rows|pushed|bytes`) later;
//! they default when absent, so a newer CLI reads an older node and the other way round.

use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderValue, Method};
use outpost_ring::Ring;
use serde::{Deserialize, Serialize};

use super::{unix_now, unix_now_ms, Cluster};
use crate::progress::eta_from_pace;

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
    /// True while a replication pass runs (then `progress` and `pass_*` are its progress).
    #[serde(default)]
    pub pass_running: bool,
    /// Milliseconds the running pass has taken so far (0 when none runs).
    #[serde(default)]
    pub pass_elapsed_ms: u64,
    /// Object rows the running pass has examined so far.
    #[serde(default)]
    pub pass_rows: u64,
    /// Versions the running pass has pushed so far.
    #[serde(default)]
    pub pass_pushed: u64,
    /// Data bytes the running pass has pushed so far.
    #[serde(default)]
    pub pass_bytes: u64,
    /// Seconds the running pass still needs at its pace so far (partitions per second);
    /// absent when unknown (nothing done yet, or no pass running).
    #[serde(default)]
    pub pass_eta_secs: Option<u64>,
    /// Object rows the last completed pass examined.
    #[serde(default)]
    pub last_pass_rows: u64,
    /// Versions the last completed pass pushed.
    #[serde(default)]
    pub last_pass_pushed: u64,
    /// Data bytes the last completed pass pushed.
    #[serde(default)]
    pub last_pass_bytes: u64,
}

impl NodeStatus {
    /// Object rows examined per second by the running pass (0 when none runs).
    pub fn pass_rows_per_sec(&self) -> f64 {
        if !self.pass_running || self.pass_elapsed_ms == 0 {
            return 0.0;
        }
        self.pass_rows as f64 * 1000.0 / self.pass_elapsed_ms as f64
    }
}

/// This node's status.
pub fn of(cl: &Cluster, objects: u64) -> NodeStatus {
    let started = cl.started;
    let s = &cl.stats;
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let end = ld(&s.last_pass_end);
    let running = s.pass_running.load(Ordering::Relaxed);
    let (done, total) = (ld(&s.pass_progress), ld(&s.pass_total));
    let elapsed_ms = if running {
        unix_now_ms().saturating_sub(ld(&s.pass_start_ms))
    } else {
        0
    };
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
        pass_running: running,
        pass_elapsed_ms: elapsed_ms,
        pass_rows: if running { ld(&s.pass_rows) } else { 0 },
        pass_pushed: if running { ld(&s.pass_pushed) } else { 0 },
        pass_bytes: if running { ld(&s.pass_bytes) } else { 0 },
        pass_eta_secs: running
            .then(|| eta_from_pace(done, total, std::time::Duration::from_millis(elapsed_ms)))
            .flatten(),
        last_pass_rows: ld(&s.last_pass_rows),
        last_pass_pushed: ld(&s.last_pass_pushed),
        last_pass_bytes: ld(&s.last_pass_bytes),
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
        "replication_pass_partitions",
        "Partitions the current (or last) pass examines",
        "gauge",
        st.progress.1,
    );
    line(
        "replication_pass_running",
        "1 while a replication pass runs",
        "gauge",
        u64::from(st.pass_running),
    );
    line(
        "replication_pass_elapsed_ms",
        "Milliseconds the running replication pass has taken so far",
        "gauge",
        st.pass_elapsed_ms,
    );
    line(
        "replication_pass_rows",
        "Object rows the running pass has examined",
        "gauge",
        st.pass_rows,
    );
    line(
        "replication_pass_pushed",
        "Versions the running pass has pushed",
        "gauge",
        st.pass_pushed,
    );
    line(
        "replication_pass_bytes",
        "Data bytes the running pass has pushed",
        "gauge",
        st.pass_bytes,
    );
    if let Some(eta) = st.pass_eta_secs {
        line(
            "replication_pass_eta_seconds",
            "Seconds the running pass still needs at its pace so far",
            "gauge",
            eta,
        );
    }
    line(
        "replication_last_pass_rows",
        "Object rows the last completed pass examined",
        "gauge",
        st.last_pass_rows,
    );
    line(
        "replication_last_pass_pushed",
        "Versions the last completed pass pushed",
        "gauge",
        st.last_pass_pushed,
    );
    line(
        "replication_last_pass_bytes",
        "Data bytes the last completed pass pushed",
        "gauge",
        st.last_pass_bytes,
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
        "Partitions whose data is held here without being a primary (handoff backlog)",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a node answered before the pass progress fields existed.
    const FORMAT_1_BEFORE_PROGRESS: &str = r#"{"format":1,"node":"127.0.0.1:6000",
        "ring_version":3,"passes":2,"last_pass_end":1700000000,"lag_secs":5,
        "last_pass_ms":1200,"last_pass_partitions":64,"progress":[64,64],"pushed":10,
        "errors":0,"handoff_partitions":1,"reverted":4,"reclaimed":0,"audited":0,
        "quarantined":0,"handoff_writes":0,"objects":300}"#;

    #[test]
    fn an_older_status_reads_with_progress_defaults() {
        let s: NodeStatus = serde_json::from_str(FORMAT_1_BEFORE_PROGRESS).unwrap();
        assert_eq!(s.progress, (64, 64));
        assert!(!s.pass_running);
        assert_eq!(s.pass_eta_secs, None);
        assert_eq!(s.last_pass_bytes, 0);
        assert_eq!(s.pass_rows_per_sec(), 0.0);
    }

    #[test]
    fn running_pass_progress_is_exposed_as_metrics() {
        let mut s: NodeStatus = serde_json::from_str(FORMAT_1_BEFORE_PROGRESS).unwrap();
        s.pass_running = true;
        s.progress = (16, 64);
        s.pass_elapsed_ms = 4_000;
        s.pass_rows = 12_400;
        s.pass_eta_secs = Some(12);
        assert_eq!(s.pass_rows_per_sec(), 3_100.0);
        let text = prometheus(&s);
        for want in [
            "outpost_cluster_replication_progress_partitions 16\n",
            "outpost_cluster_replication_pass_partitions 64\n",
            "outpost_cluster_replication_pass_running 1\n",
            "outpost_cluster_replication_pass_rows 12400\n",
            "outpost_cluster_replication_pass_eta_seconds 12\n",
            "outpost_cluster_handoff_partitions 1\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        s.pass_eta_secs = None;
        assert!(!prometheus(&s).contains("eta_seconds"));
    }
}
