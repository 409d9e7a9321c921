//! Prometheus metrics of an edge node.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Status classes of `outpost_edge_requests_total`.
const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "other"];
/// Cache outcomes of `outpost_edge_requests_total` (anything else counts as `other`).
const OUTCOMES: [&str; 10] = [
    "HIT",
    "MISS",
    "STALE",
    "REVALIDATED",
    "EXPIRED",
    "BYPASS",
    "denied",
    "route",
    "login",
    "other",
];

use crate::cache::CacheStats;

/// The edge's metrics.
#[derive(Debug)]
pub struct EdgeMetrics {
    registry: Registry,
    /// `outpost_edge_requests_total` handles, resolved once: `[class * OUTCOMES.len() + outcome]`.
    requests: Vec<IntCounter>,
    hot_hits: IntCounter,
    front_hits: IntCounter,
    denials: IntCounterVec,
    purged: IntCounterVec,
    latency: Histogram,
    mem_bytes: IntGauge,
    disk_bytes: IntGauge,
    feed_seq: IntGauge,
    purge_delay: Histogram,
    /// `outpost_edge_config_reloads_total{result}`: `[ok, error]`.
    reloads: [IntCounter; 2],
    last_reload: IntGauge,
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

impl EdgeMetrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let r = Registry::new();
        let requests = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "outpost_edge_requests_total",
                    "Requests by status class and cache outcome",
                ),
                &["status", "cache"],
            )
            .expect("static metric definition"),
        );
        let requests = CLASSES
            .iter()
            .flat_map(|c| OUTCOMES.iter().map(move |o| [*c, *o]))
            .map(|labels| requests.with_label_values(&labels))
            .collect();
        let hot_hits = reg(
            &r,
            IntCounter::new(
                "outpost_edge_hot_hits_total",
                "Hits answered by the fast path (also counted as HIT in outpost_edge_requests_total)",
            )
            .expect("static metric definition"),
        );
        let front_hits = reg(
            &r,
            IntCounter::new(
                "outpost_edge_front_hits_total",
                "Fast-path hits answered before pingora's session (the front path; also counted in outpost_edge_hot_hits_total)",
            )
            .expect("static metric definition"),
        );
        let denials = reg(
            &r,
            IntCounterVec::new(
                Opts::new("outpost_edge_denials_total", "Denials by reason"),
                &["reason"],
            )
            .expect("static metric definition"),
        );
        let purged = reg(
            &r,
            IntCounterVec::new(
                Opts::new("outpost_edge_purged_total", "Cache entries purged by cause"),
                &["cause"],
            )
            .expect("static metric definition"),
        );
        let latency = reg(
            &r,
            Histogram::with_opts(HistogramOpts::new(
                "outpost_edge_request_seconds",
                "Request duration",
            ))
            .expect("static metric definition"),
        );
        let mem_bytes = reg(
            &r,
            IntGauge::new(
                "outpost_edge_cache_memory_bytes",
                "Bytes in the memory tier",
            )
            .expect("static metric definition"),
        );
        let disk_bytes = reg(
            &r,
            IntGauge::new("outpost_edge_cache_disk_bytes", "Bytes in the disk tier")
                .expect("static metric definition"),
        );
        let feed_seq = reg(
            &r,
            IntGauge::new("outpost_edge_feed_seq", "Last change-feed position applied")
                .expect("static metric definition"),
        );
        let purge_delay = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "outpost_edge_change_apply_seconds",
                    "Time from an origin commit to this edge applying it (purge, revocation)",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
            )
            .expect("static metric definition"),
        );
        let reloads = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "outpost_edge_config_reloads_total",
                    "Config reloads (SIGHUP) by result: ok (applied) or error (refused)",
                ),
                &["result"],
            )
            .expect("static metric definition"),
        );
        let reloads = ["ok", "error"].map(|r| reloads.with_label_values(&[r]));
        let last_reload = reg(
            &r,
            IntGauge::new(
                "outpost_edge_config_last_reload_success_timestamp_seconds",
                "When the config was last loaded successfully (start or reload), Unix seconds",
            )
            .expect("static metric definition"),
        );
        EdgeMetrics {
            reloads,
            last_reload,
            purge_delay,
            registry: r,
            requests,
            hot_hits,
            front_hits,
            denials,
            purged,
            latency,
            mem_bytes,
            disk_bytes,
            feed_seq,
        }
    }

    /// Counts a hit answered by the fast path.
    pub fn hot_hit(&self) {
        self.hot_hits.inc();
    }

    /// Counts a hit answered by the front path (call beside [`EdgeMetrics::hot_hit`]).
    pub fn front_hit(&self) {
        self.front_hits.inc();
    }

    /// Records a finished request.
    pub fn request(&self, status: u16, cache: &str, dur: Duration) {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => 4,
        };
        let outcome = OUTCOMES[..OUTCOMES.len() - 1]
            .iter()
            .position(|o| *o == cache)
            .unwrap_or(OUTCOMES.len() - 1);
        if let Some(c) = self.requests.get(class * OUTCOMES.len() + outcome) {
            c.inc();
        }
        self.latency.observe(dur.as_secs_f64());
    }

    /// Records a config reload (`ok`: applied) and, when applied, its time (Unix seconds).
    pub fn config_reload(&self, ok: bool, unix_secs: u64) {
        self.reloads[usize::from(!ok)].inc();
        if ok {
            self.config_loaded(unix_secs);
        }
    }

    /// Records when the config in force was loaded (at start, or by a reload).
    pub fn config_loaded(&self, unix_secs: u64) {
        self.last_reload
            .set(i64::try_from(unix_secs).unwrap_or(i64::MAX));
    }

    /// The registry, for modules that keep their own collectors (`logs`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records a denial.
    pub fn denied(&self, reason: &str) {
        self.denials.with_label_values(&[reason]).inc();
    }

    /// Records purged entries.
    pub fn purged(&self, cause: &str, n: usize) {
        self.purged.with_label_values(&[cause]).inc_by(n as u64);
    }

    /// Records how long after its commit a change was applied.
    pub fn change_applied(&self, secs: f64) {
        self.purge_delay.observe(secs);
    }

    /// Records the feed position.
    pub fn feed_at(&self, seq: u64) {
        self.feed_seq.set(i64::try_from(seq).unwrap_or(i64::MAX));
    }

    /// Text exposition, with cache gauges refreshed from `stats`.
    pub fn render(&self, stats: CacheStats) -> String {
        self.mem_bytes
            .set(i64::try_from(stats.memory_bytes).unwrap_or(i64::MAX));
        self.disk_bytes
            .set(i64::try_from(stats.disk_bytes).unwrap_or(i64::MAX));
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
