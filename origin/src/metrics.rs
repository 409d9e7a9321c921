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
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
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
        }
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

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
