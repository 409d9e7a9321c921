//! The shipper: one thread with its own small tokio runtime (like the feed follower), so HTTP
//! to the origin never runs on pingora's threads.
//!
//! Every `billing.save_interval` it closes finished minutes and saves the billing state;
//! every `billing.ship_interval` it posts pending records to `POST /internal/billing`; and
//! it delivers closed log segments: each is split by account and kind (`access`, `billing`),
//! gzip-compressed and written with `PUT /internal/logs?account=A&object=O` into the account's
//! `.outpost_logs` container as
//! `<kind>/<YYYY>/<MM>/<DD>/<HH>/<edge>-<segment>.jsonl.gz` (the segment's opening hour, UTC).
//! Names depend only on the segment, so a segment delivered again after a crash overwrites
//! the same objects. The segment file is deleted once every object was written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, Registry};
use serde::{Deserialize, Serialize};

use outpost_proto::billing::BillingBatch;
use outpost_proto::{logs, paths};

use super::record::civil_from_days;
use super::{BillingRecord, Logs};
use crate::config::Config;
use crate::feed::INTERNAL_HEADER;
use crate::Error;

/// A billing record as delivered to the customer in `.outpost_logs`.
#[derive(Debug, Serialize)]
struct CustomerBillingLine<'a> {
    kind: &'static str,
    edge: &'a str,
    account: &'a str,
    minute: String,
    bytes: u64,
    requests: u64,
}

struct Shipper {
    http: reqwest::Client,
    base: String,
    secret: String,
    edge: String,
    logs: Arc<Logs>,
    ship_interval: Duration,
    save_interval: Duration,
    spool_max: u64,
    delivered: IntCounter,
    errors: IntCounter,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    let _ = r.register(Box::new(c.clone()));
    c
}

/// Starts the shipper thread (nothing to ship to in generic upstream mode).
///
/// # Errors
/// [`Error::Origin`] if the HTTP client cannot be built, [`Error::Io`] if the thread cannot
/// start.
pub fn start(cfg: &Config, logs: Arc<Logs>, registry: &Registry) -> Result<(), Error> {
    if cfg.generic.is_some() {
        return Ok(());
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| Error::Origin(e.to_string()))?;
    let s = Shipper {
        http,
        base: format!("http://{}", cfg.origin),
        secret: cfg.internal_secret.clone(),
        edge: cfg.edge_id.clone(),
        logs,
        ship_interval: cfg.logs.ship_interval,
        save_interval: cfg.logs.save_interval,
        spool_max: cfg.logs.spool_max,
        delivered: counter(
            registry,
            "outpost_edge_log_segments_delivered_total",
            "Access-log segments delivered into .outpost_logs and removed from the spool",
        ),
        errors: counter(
            registry,
            "outpost_edge_log_ship_errors_total",
            "Failed billing shipments and log deliveries (retried)",
        ),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("outpost-logship".into())
        .spawn(move || rt.block_on(s.run()))?;
    Ok(())
}

/// `segment ms` → `YYYY/MM/DD/HH`.
fn hour_path(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!("{y:04}/{m:02}/{d:02}/{:02}", secs % 86_400 / 3600)
}

/// The object name of one kind of line of one segment.
pub fn object_name(kind: &str, edge: &str, segment: &str) -> String {
    let ms = segment
        .split('-')
        .next()
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(0);
    let edge: String = edge
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    format!("{kind}/{}/{edge}-{segment}.jsonl.gz", hour_path(ms))
}

#[derive(Deserialize)]
struct Head {
    kind: String,
    #[serde(default)]
    account: Option<String>,
}

/// Splits a segment's lines by (account, kind). Lines without an account (unrouted requests)
/// and torn lines are left out; the second value counts torn lines.
pub fn split(data: &[u8]) -> (BTreeMap<(String, String), Vec<u8>>, u64) {
    let mut out: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    let mut torn = 0;
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // Lines are ours: read the two fields by position when the line is well formed, and
        // parse it only when it is not (the profile of cached hits showed this parse).
        let head = match fast_head(line) {
            Some(h) if h.kind == "access" && access_line_complete(line) => h,
            _ => match serde_json::from_slice::<Head>(line) {
                Ok(h) => h,
                Err(_) => {
                    torn += 1;
                    continue;
                }
            },
        };
        if let Some(account) = head.account {
            let buf = out.entry((account, head.kind)).or_default();
            buf.extend_from_slice(line);
            buf.push(b'\n');
        }
    }
    (out, torn)
}

/// Whether an access line is whole: its last field, `error`, is there and closes the object.
/// (`,"error":` can only be that field: quotes inside strings are escaped.) A line torn by a
/// crash ends mid-way and takes the parser, which counts it as torn.
fn access_line_complete(line: &[u8]) -> bool {
    const KEY: &[u8] = b",\"error\":";
    let Some(at) = line.windows(KEY.len()).rposition(|w| w == KEY) else {
        return false;
    };
    let tail = &line[at + KEY.len()..];
    tail == b"null}"
        || (tail.len() >= 3
            && tail.starts_with(b"\"")
            && tail.ends_with(b"\"}")
            && !tail[1..tail.len() - 2]
                .iter()
                .any(|b| matches!(b, b'"' | b'\\')))
}

/// `kind` and `account` of a line we wrote (`{"kind":"…",…,"account":"…"|null,…}`) without a
/// JSON parse; `None` (parse it instead) for anything unusual, escapes included. Inside JSON
/// strings every `"` is escaped, so `,"account":` can only be the field itself.
fn fast_head(line: &[u8]) -> Option<Head> {
    let rest = line.strip_prefix(b"{\"kind\":\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    let kind = std::str::from_utf8(&rest[..end]).ok()?;
    const KEY: &[u8] = b",\"account\":";
    let at = rest.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let value = &rest[at..];
    let account = if value.starts_with(b"null") {
        None
    } else {
        let v = value.strip_prefix(b"\"")?;
        let end = v.iter().position(|b| *b == b'"' || *b == b'\\')?;
        if v[end] == b'\\' {
            return None;
        }
        Some(std::str::from_utf8(&v[..end]).ok()?.to_owned())
    };
    Some(Head {
        kind: kind.to_owned(),
        account,
    })
}

/// Level 1: several times cheaper than the default on the edge's CPU (which serves hits),
/// for files some 15 % larger in the customer's container.
fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    e.write_all(data)?;
    e.finish()
}

enum Put {
    Done,
    /// The account no longer exists: nowhere to deliver.
    Gone,
}

impl Shipper {
    async fn run(self) {
        let mut last_ship: Option<Instant> = None;
        loop {
            tokio::time::sleep(self.save_interval).await;
            match self.logs.billing().close_and_save() {
                Ok(pending) => {
                    let due = last_ship.is_none_or(|t| t.elapsed() >= self.ship_interval);
                    if !pending.is_empty() && due {
                        last_ship = Some(Instant::now());
                        self.ship_billing(&pending).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "saving billing state failed"),
            }
            self.deliver_segments().await;
        }
    }

    async fn ship_billing(&self, records: &[BillingRecord]) {
        let batch = BillingBatch {
            version: outpost_proto::Format,
            records: records.to_vec(),
        };
        let body = match outpost_proto::to_json(&batch) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode billing records");
                return;
            }
        };
        let resp = self
            .http
            .post(format!("{}{}", self.base, paths::BILLING))
            .header(INTERNAL_HEADER, &self.secret)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                self.errors.inc();
                tracing::warn!(status = %r.status(), "origin refused billing records");
                return;
            }
            Err(e) => {
                self.errors.inc();
                tracing::warn!(error = %e, "shipping billing records failed");
                return;
            }
        }
        if let Some(spool) = self.logs.spool() {
            for r in records {
                let line = CustomerBillingLine {
                    kind: "billing",
                    edge: &r.edge,
                    account: &r.account,
                    minute: super::record::rfc3339_secs(r.minute * 60),
                    bytes: r.bytes,
                    requests: r.requests,
                };
                if let Ok(mut l) = serde_json::to_vec(&line) {
                    l.push(b'\n');
                    spool.log(l);
                }
            }
        }
        if let Err(e) = self.logs.billing().shipped(records) {
            tracing::warn!(error = %e, "saving billing state failed (records will be re-sent)");
        }
    }

    fn closed_segments(&self) -> Vec<(String, PathBuf, u64)> {
        let Some(spool) = self.logs.spool() else {
            return Vec::new();
        };
        let Ok(dir) = std::fs::read_dir(spool.closed_dir()) else {
            return Vec::new();
        };
        let mut segs: Vec<(String, PathBuf, u64)> = dir
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".jsonl")?.to_owned();
                let len = e.metadata().ok()?.len();
                Some((name, e.path(), len))
            })
            .collect();
        segs.sort();
        // Bounded spool: while the origin is away, the oldest segments go first.
        let mut total: u64 = segs.iter().map(|s| s.2).sum();
        while total > self.spool_max && !segs.is_empty() {
            let (_, path, len) = segs.remove(0);
            let lines = std::fs::read(&path)
                .map(|d| d.iter().filter(|b| **b == b'\n').count() as u64)
                .unwrap_or(0);
            if std::fs::remove_file(&path).is_ok() {
                tracing::warn!(segment = %path.display(), lines, "spool over log.spool_max: dropped");
                if let Some(spool) = self.logs.spool() {
                    spool.dropped(lines);
                }
            }
            total -= len;
        }
        segs
    }

    async fn deliver_segments(&self) {
        for (name, path, _) in self.closed_segments() {
            let data = match tokio::fs::read(&path).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, segment = %path.display(), "cannot read segment");
                    continue;
                }
            };
            let (groups, torn) = split(&data);
            if torn > 0 {
                tracing::warn!(segment = %name, torn, "skipped torn access-log lines");
            }
            let mut complete = true;
            for ((account, kind), lines) in groups {
                let object = object_name(&kind, &self.edge, &name);
                match self.put(&account, &object, &lines).await {
                    Ok(Put::Done) => {}
                    Ok(Put::Gone) => {
                        tracing::info!(%account, "account gone: its log lines are dropped");
                    }
                    Err(e) => {
                        self.errors.inc();
                        tracing::warn!(error = %e, %account, "log delivery failed; will retry");
                        complete = false;
                        break;
                    }
                }
            }
            if !complete {
                return;
            }
            if let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::warn!(error = %e, segment = %path.display(), "cannot remove segment");
            }
            self.delivered.inc();
        }
    }

    async fn put(&self, account: &str, object: &str, lines: &[u8]) -> Result<Put, Error> {
        let body = gzip(lines)?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair(logs::PARAM_ACCOUNT, account)
            .append_pair(logs::PARAM_OBJECT, object)
            .finish();
        let r = self
            .http
            .put(format!("{}{}?{query}", self.base, paths::LOGS))
            .header(INTERNAL_HEADER, &self.secret)
            .header("content-type", logs::CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Origin(e.to_string()))?;
        match r.status().as_u16() {
            200..=299 => Ok(Put::Done),
            404 => Ok(Put::Gone),
            s => Err(Error::Origin(format!("PUT {}: HTTP {s}", paths::LOGS))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_head_agrees_with_the_parser() {
        let lines: &[&[u8]] = &[
            br#"{"kind":"access","time":"t","edge":"e","domain":"d","account":"demo","x":1}"#,
            br#"{"kind":"access","time":"t","edge":"e","domain":"d\",\"account\":\"evil","account":"demo"}"#,
            br#"{"kind":"billing","account":null,"x":1}"#,
            br#"{"kind":"access","account":"a\u0062c"}"#,
            br#"{"account":"first","kind":"access"}"#,
        ];
        for l in lines {
            let parsed: Head = serde_json::from_slice(l).unwrap();
            if let Some(h) = fast_head(l) {
                assert_eq!((h.kind, h.account), (parsed.kind, parsed.account), "{l:?}");
            }
        }
        assert!(fast_head(lines[3]).is_none(), "escapes take the parser");
        assert!(
            fast_head(lines[4]).is_none(),
            "another field order takes the parser"
        );
        let whole = br#"{"kind":"access","account":"demo","user_agent":"x}","error":null}"#;
        let cut = br#"{"kind":"access","account":"demo","user_agent":"x}"#;
        assert!(access_line_complete(whole));
        assert!(
            !access_line_complete(cut),
            "a line cut after a brace in a string is torn"
        );
        assert!(access_line_complete(
            br#"{"kind":"access","error":"ConnectTimedout"}"#
        ));
        let mut data = whole.to_vec();
        data.push(b'\n');
        data.extend_from_slice(cut);
        let (g, torn) = split(&data);
        assert_eq!((g.len(), torn), (1, 1));
    }

    #[test]
    fn names_and_split() {
        assert_eq!(
            object_name("access", "e/1", "1795000000000-000001"),
            "access/2026/11/18/11/e_1-1795000000000-000001.jsonl.gz"
        );
        let data = b"{\"kind\":\"access\",\"account\":\"a\",\"x\":1}\n{\"kind\":\"access\",\"account\":null}\n{\"kind\":\"billing\",\"account\":\"a\"}\n{\"kind\":\"acc";
        let (g, torn) = split(data);
        assert_eq!(torn, 1);
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[&("a".to_owned(), "access".to_owned())],
            b"{\"kind\":\"access\",\"account\":\"a\",\"x\":1}\n".to_vec()
        );
    }
}
