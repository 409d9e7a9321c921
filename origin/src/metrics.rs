//! Prometheus metrics of an origin node.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The node's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    bytes_out: IntCounterVec,
    latency: HistogramVec,
    edge_lag: prometheus::IntGaugeVec,
    purge_wait: HistogramVec,
    reloads: IntCounterVec,
    last_reload: prometheus::IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "outpost_origin_requests_total",
                "Requests by method and status",
            ),
            &["method", "status"],
        )
        .expect("static metric definition");
        let bytes_out = IntCounterVec::new(
            Opts::new(
                "outpost_origin_response_bytes_total",
                "Response body bytes (Content-Length) by method",
            ),
            &["method"],
        )
        .expect("static metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new("outpost_origin_request_seconds", "Time to response headers"),
            &["method"],
        )
        .expect("static metric definition");
        let edge_lag = prometheus::IntGaugeVec::new(
            Opts::new(
                "outpost_origin_feed_edge_lag",
                "Changes committed but not yet applied, per subscribed edge",
            ),
            &["edge"],
        )
        .expect("static metric definition");
        let purge_wait = HistogramVec::new(
            HistogramOpts::new(
                "outpost_origin_purge_wait_seconds",
                "Time X-Purge-Wait requests waited for every edge",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            &["outcome"],
        )
        .expect("static metric definition");
        let reloads = IntCounterVec::new(
            Opts::new(
                "outpost_origin_config_reloads_total",
                "Config reloads (SIGHUP) by result: ok (applied) or error (refused)",
            ),
            &["result"],
        )
        .expect("static metric definition");
        for r in ["ok", "error"] {
            reloads.with_label_values(&[r]);
        }
        let last_reload = prometheus::IntGauge::new(
            "outpost_origin_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully (start or reload), Unix seconds",
        )
        .expect("static metric definition");
        for c in [
            Box::new(reloads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(last_reload.clone()),
            Box::new(edge_lag.clone()),
            Box::new(purge_wait.clone()),
            Box::new(requests.clone()),
            Box::new(bytes_out.clone()),
            Box::new(latency.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            bytes_out,
            latency,
            edge_lag,
            purge_wait,
            reloads,
            last_reload,
        }
    }

    /// Records a config reload (`ok`: applied) and, when applied, its time (Unix seconds).
    pub fn config_reload(&self, ok: bool, unix_secs: u64) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.with_label_values(&[result]).inc();
        if ok {
            self.config_loaded(unix_secs);
        }
    }

    /// Records when the config in force was loaded (at start, or by a reload).
    pub fn config_loaded(&self, unix_secs: u64) {
        self.last_reload
            .set(i64::try_from(unix_secs).unwrap_or(i64::MAX));
    }

    /// Records one request.
    pub fn observe(&self, method: &str, status: u16, dur: Duration, bytes: u64) {
        // Bounded label values: unknown methods are folded together.
        let m = match method {
            "GET" | "HEAD" | "PUT" | "POST" | "DELETE" | "COPY" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.requests
            .with_label_values(&[m, &status.to_string()])
            .inc();
        self.bytes_out.with_label_values(&[m]).inc_by(bytes);
        self.latency
            .with_label_values(&[m])
            .observe(dur.as_secs_f64());
    }

    /// Sets the feed lag of one edge (bounded cardinality: one series per subscribed edge).
    pub fn edge_lag(&self, edge: &str, lag: u64) {
        self.edge_lag
            .with_label_values(&[edge])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// Records how long an `X-Purge-Wait` waited.
    pub fn purge_wait(&self, waited: Duration, complete: bool) {
        let outcome = if complete { "complete" } else { "timeout" };
        self.purge_wait
            .with_label_values(&[outcome])
            .observe(waited.as_secs_f64());
    }

    /// The registry, for modules that keep their own collectors (`billing`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Available and total bytes of the file system that holds `dir` (the data directory), as
/// Prometheus gauges `outpost_origin_disk_avail_bytes` and `outpost_origin_disk_size_bytes`.
/// Empty when the file system cannot be asked: the series are then absent, never a false zero.
pub fn disk_gauges(dir: &std::path::Path) -> String {
    let Ok(fs) = rustix::fs::statvfs(dir) else {
        return String::new();
    };
    let avail = fs.f_bavail.saturating_mul(fs.f_frsize);
    let size = fs.f_blocks.saturating_mul(fs.f_frsize);
    format!(
        "# HELP outpost_origin_disk_avail_bytes Bytes available to the origin on its data file system\n\
         # TYPE outpost_origin_disk_avail_bytes gauge\n\
         outpost_origin_disk_avail_bytes {avail}\n\
         # HELP outpost_origin_disk_size_bytes Size of the origin's data file system\n\
         # TYPE outpost_origin_disk_size_bytes gauge\n\
         outpost_origin_disk_size_bytes {size}\n"
    )
}
