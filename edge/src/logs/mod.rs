//! Access logs, per-minute billing, and their delivery.
//!
//! - [`record`]: one JSON line per request, built on the request thread from parsed fields
//!   only (never the raw URI, query, cookies or auth headers), so signatures, tokens and
//!   cookies cannot reach a log line.
//! - [`spool`]: request threads hand lines to one writer thread over a bounded channel
//!   (`try_send`: a full queue drops the line and counts it, it never blocks a request). The
//!   writer appends to a segment file under `<disk_dir>/logs/open/`, flushes every
//!   `log.flush_interval`, and closes the segment (fsync, rename to `closed/`) every
//!   `log.delivery_interval` or at `log.segment_max`.
//! - [`billing`]: per account and minute, bytes and requests of successful responses, kept in
//!   memory, saved to `<disk_dir>/billing/state.json` every `billing.save_interval`, and
//!   shipped to the origin once the minute is over. A minute's record is final once shipped;
//!   the origin replaces (never adds) on `(edge, account, minute)`, so re-shipping after a
//!   crash or a lost answer cannot bill twice.
//! - [`ship`]: one thread with its own small tokio runtime: saves and ships billing, splits each
//!   closed segment by account and writes it gzip-compressed into the account's
//!   `.outpost_logs` container through the origin, then deletes it.
//!
//! What a `kill -9` loses is bounded: lines still in the queue (at most `log.queue`) or in the
//! writer's 64 KiB buffer (at most `log.flush_interval` old), and billing counted since the last
//! save (at most `billing.save_interval`). Nothing is counted twice.

pub mod billing;
pub mod record;
pub mod ship;
pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

pub use billing::{Billing, BillingRecord};
pub use record::{IpMode, RequestFacts, Seen};
pub use spool::Spool;

use crate::config::Config;
use crate::Error;

/// The container each account's logs are delivered into.
pub use outpost_proto::meta::LOGS_CONTAINER;

/// `[log]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// Write access logs and deliver them. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// What of the client address is logged: `none` (kept whole), `truncate` (IPv4 to /24,
    /// IPv6 to /48), `drop`. Default `truncate`.
    #[serde(default)]
    pub client_ip: Option<IpMode>,
    /// How often a spool segment is closed and delivered to `.outpost_logs`. Default `1h`.
    #[serde(default, with = "humantime_serde")]
    pub delivery_interval: Option<Duration>,
    /// A segment is closed earlier once it holds this much. Default `64 MiB`; between `4 KiB`
    /// and `256 MiB`.
    #[serde(default)]
    pub segment_max: Option<ByteSize>,
    /// How often buffered lines are written to the spool file (the most a crash loses beyond
    /// the queue). Default `1s`.
    #[serde(default, with = "humantime_serde")]
    pub flush_interval: Option<Duration>,
    /// Lines queued between request threads and the writer; more are dropped and counted in
    /// `outpost_edge_access_log_dropped_total`. Default 16384.
    #[serde(default)]
    pub queue: Option<usize>,
    /// Closed segments kept while the origin cannot take them; past this the oldest are
    /// deleted (counted). Default `1 GiB`.
    #[serde(default)]
    pub spool_max: Option<ByteSize>,
}

/// `[billing]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBilling {
    /// How often finished minutes are shipped to the origin. Default `10s`.
    #[serde(default, with = "humantime_serde")]
    pub ship_interval: Option<Duration>,
    /// How often the counters are saved to disk (the most billing a crash loses). Default `1s`.
    #[serde(default, with = "humantime_serde")]
    pub save_interval: Option<Duration>,
    /// Accounts with their own series in `/metrics`; later ones are summed under `_other`.
    /// Default 100.
    #[serde(default)]
    pub metrics_accounts: Option<usize>,
}

/// Validated `[log]` and `[billing]`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Access logs on.
    pub enabled: bool,
    /// Client address anonymization.
    pub client_ip: IpMode,
    /// Segment age at which it is closed and delivered.
    pub delivery_interval: Duration,
    /// Segment size at which it is closed.
    pub segment_max: u64,
    /// Writer flush interval.
    pub flush_interval: Duration,
    /// Queue length.
    pub queue: usize,
    /// Spool bound.
    pub spool_max: u64,
    /// Billing ship interval.
    pub ship_interval: Duration,
    /// Billing save interval.
    pub save_interval: Duration,
    /// Per-account metric series.
    pub metrics_accounts: usize,
}

fn err(key: &str, reason: &str) -> Error {
    Error::Config {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

fn at_least(key: &str, d: Option<Duration>, default: Duration) -> Result<Duration, Error> {
    let d = d.unwrap_or(default);
    if d < Duration::from_millis(10) {
        return Err(err(key, "must be at least 10ms"));
    }
    Ok(d)
}

impl LogSettings {
    /// Resolves defaults and checks ranges.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key.
    pub fn validate(log: &RawLog, billing: &RawBilling) -> Result<LogSettings, Error> {
        let segment_max = log.segment_max.unwrap_or(ByteSize::mib(64)).as_u64();
        // The shipper reads a closed segment into memory to split it by account.
        if !(4096..=256 << 20).contains(&segment_max) {
            return Err(err("log.segment_max", "must be between 4 KiB and 256 MiB"));
        }
        let spool_max = log.spool_max.unwrap_or(ByteSize::gib(1)).as_u64();
        if spool_max < segment_max {
            return Err(err("log.spool_max", "must be at least log.segment_max"));
        }
        let queue = log.queue.unwrap_or(16_384);
        if !(1..=1_000_000).contains(&queue) {
            return Err(err("log.queue", "must be between 1 and 1000000"));
        }
        let metrics_accounts = billing.metrics_accounts.unwrap_or(100);
        if metrics_accounts > 10_000 {
            return Err(err("billing.metrics_accounts", "must be at most 10000"));
        }
        Ok(LogSettings {
            enabled: log.enabled.unwrap_or(true),
            client_ip: log.client_ip.unwrap_or(IpMode::Truncate),
            delivery_interval: at_least(
                "log.delivery_interval",
                log.delivery_interval,
                Duration::from_secs(3600),
            )?,
            segment_max,
            flush_interval: at_least(
                "log.flush_interval",
                log.flush_interval,
                Duration::from_secs(1),
            )?,
            queue,
            spool_max,
            ship_interval: at_least(
                "billing.ship_interval",
                billing.ship_interval,
                Duration::from_secs(10),
            )?,
            save_interval: at_least(
                "billing.save_interval",
                billing.save_interval,
                Duration::from_secs(1),
            )?,
            metrics_accounts,
        })
    }
}

/// The running log and billing pipeline of one edge.
#[derive(Debug)]
pub struct Logs {
    edge_id: String,
    client_ip: IpMode,
    spool: Option<Spool>,
    billing: Arc<Billing>,
}

impl Logs {
    /// Opens the spool and billing state under `cfg.disk_dir`, starts the writer and shipper
    /// threads, and registers their metrics.
    ///
    /// # Errors
    /// [`Error::Io`] when the directories or the saved billing state cannot be read.
    pub fn start(cfg: &Config, registry: &prometheus::Registry) -> Result<Arc<Logs>, Error> {
        let s = &cfg.logs;
        let billing = Arc::new(Billing::open(
            &cfg.disk_dir.join("billing"),
            &cfg.edge_id,
            s.metrics_accounts,
            registry,
        )?);
        // Generic upstream mode has no accounts to deliver to.
        let spool = if s.enabled && cfg.generic.is_none() {
            Some(Spool::start(&cfg.disk_dir.join("logs"), s, registry)?)
        } else {
            None
        };
        let logs = Arc::new(Logs {
            edge_id: cfg.edge_id.clone(),
            client_ip: s.client_ip,
            spool,
            billing,
        });
        ship::start(cfg, Arc::clone(&logs), registry)?;
        Ok(logs)
    }

    /// Logs and bills one finished request. Called from pingora's `logging` hook: builds one
    /// line and hands it to the writer without blocking.
    pub fn finish(&self, session: &pingora::proxy::Session, facts: &RequestFacts<'_>) {
        self.finish_seen(&record::Seen::of(session), facts);
    }

    /// [`Logs::finish`] for an exchange answered outside pingora's session (the front path).
    pub fn finish_seen(&self, seen: &record::Seen<'_>, facts: &RequestFacts<'_>) {
        if let (Some(account), Some(status)) = (facts.account, seen.sent.status) {
            if record::billable(status) {
                self.billing.record(account, seen.sent.total());
            }
        }
        if let Some(spool) = &self.spool {
            spool.try_log(record::line(seen, facts, &self.edge_id, self.client_ip));
        }
    }

    /// The billing aggregator.
    pub fn billing(&self) -> &Billing {
        &self.billing
    }

    /// The spool, when access logs are on.
    pub fn spool(&self) -> Option<&Spool> {
        self.spool.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::RawConfig;

    const BASE: &str =
        "[origin]\naddress = \"127.0.0.1:8080\"\ninternal_secret = \"0123456789abcdef\"\n";

    fn parse(extra: &str) -> Result<crate::config::Config, crate::Error> {
        RawConfig::parse(&format!("{BASE}{extra}"))?.validate()
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        let l = &c.logs;
        assert!(l.enabled);
        assert_eq!(l.client_ip, super::IpMode::Truncate);
        assert_eq!(l.delivery_interval.as_secs(), 3600);
        assert_eq!(l.flush_interval.as_secs(), 1);
        assert_eq!(l.save_interval.as_secs(), 1);
        assert_eq!(l.ship_interval.as_secs(), 10);
        assert_eq!(l.segment_max, 64 << 20);
        assert_eq!(l.queue, 16_384);
        assert_eq!(l.metrics_accounts, 100);
        let c = parse("[log]\nclient_ip = \"drop\"\ndelivery_interval = \"5m\"\n").unwrap();
        assert_eq!(c.logs.client_ip, super::IpMode::Drop);
        assert_eq!(c.logs.delivery_interval.as_secs(), 300);
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            ("[log]\nclinet_ip = \"drop\"\n", "clinet_ip"),
            ("[log]\nclient_ip = \"hide\"\n", "hide"),
            ("[billing]\nship_every = \"1s\"\n", "ship_every"),
            ("[log]\nflush_interval = \"1ms\"\n", "log.flush_interval"),
            ("[log]\nqueue = 0\n", "log.queue"),
            ("[log]\nsegment_max = \"1 KiB\"\n", "log.segment_max"),
            ("[log]\nsegment_max = \"1 GiB\"\n", "log.segment_max"),
            (
                "[log]\nsegment_max = \"100 MiB\"\nspool_max = \"1 MiB\"\n",
                "log.spool_max",
            ),
            (
                "[billing]\nsave_interval = \"0s\"\n",
                "billing.save_interval",
            ),
            (
                "[billing]\nmetrics_accounts = 20000\n",
                "billing.metrics_accounts",
            ),
        ] {
            let e = parse(extra).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
    }
}
