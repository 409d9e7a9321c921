//! Per-account, per-minute billing on one edge.
//!
//! Requests are counted in the minute they finish (edge clock). A minute is closed once the
//! clock has passed it: its records move to `pending`, the state is saved, and only then are
//! they shipped; they leave `pending` (saved again) once the origin answered 2xx. A record
//! shipped twice (the answer was lost, or the edge died before saving) carries the same
//! values, and the origin replaces on `(edge, account, minute)`. `floor` (saved too) is the
//! first minute not yet closed: a request whose clock reading falls before it (the clock went
//! back) is counted in `floor`, so a closed minute never gets a second, different record.
//!
//! The state file `state.json` is versioned (`"version": 1`) and replaced atomically
//! (temp file, fsync, rename).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Version of `state.json`.
pub const STATE_VERSION: u32 = 1;

/// One (edge, account, minute) record, as saved and as shipped (the wire type).
pub use outpost_proto::billing::BillingRecord;

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    bytes: u64,
    requests: u64,
    /// What of it the per-account counters already show (they are advanced at each save,
    /// off the request path).
    shown_bytes: u64,
    shown_requests: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    edge: String,
    floor: u64,
    open: Vec<BillingRecord>,
    pending: Vec<BillingRecord>,
}

#[derive(Debug, Default)]
struct State {
    floor: u64,
    open: BTreeMap<u64, HashMap<String, Counts>>,
    pending: Vec<BillingRecord>,
    /// Requests counted since the last snapshot.
    unsaved: i64,
}

/// Accounts with their own metric series; the rest share `_other`.
#[derive(Debug)]
pub struct BoundedLabels {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl BoundedLabels {
    /// At most `max` distinct labels.
    pub fn new(max: usize) -> Self {
        BoundedLabels {
            max,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// `account`, or `_other` once `max` other accounts have a series.
    pub fn label<'a>(&self, account: &'a str) -> &'a str {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(account) {
            return account;
        }
        if seen.len() < self.max {
            seen.insert(account.to_owned());
            return account;
        }
        "_other"
    }
}

/// The billing aggregator of one edge.
#[derive(Debug)]
pub struct Billing {
    edge: String,
    path: PathBuf,
    state: Mutex<State>,
    unsaved: IntGauge,
    pending_gauge: IntGauge,
    egress: IntCounterVec,
    requests: IntCounterVec,
    labels: BoundedLabels,
}

fn now_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

fn metric<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    let _ = r.register(Box::new(c.clone()));
    c
}

impl Billing {
    /// Loads `<dir>/state.json` if a previous run left one. Records saved under another edge id
    /// are kept under that id and shipped as they are.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created or the file cannot be read;
    /// [`Error::Config`] naming the file when it is corrupt or of an unknown version.
    pub fn open(
        dir: &Path,
        edge: &str,
        metrics_accounts: usize,
        registry: &Registry,
    ) -> Result<Billing, Error> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("state.json");
        let mut state = State::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let f = parse_state(&bytes).map_err(|reason| Error::Config {
                    key: path.display().to_string(),
                    reason,
                })?;
                state.floor = f.floor;
                state.pending = f.pending;
                for r in f.open {
                    if r.edge == edge {
                        let c = state
                            .open
                            .entry(r.minute)
                            .or_default()
                            .entry(r.account)
                            .or_default();
                        c.bytes += r.bytes;
                        c.requests += r.requests;
                        // The previous process exported these; this one counts from here.
                        c.shown_bytes = c.bytes;
                        c.shown_requests = c.requests;
                    } else {
                        state.pending.push(r);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let unsaved = metric(
            registry,
            IntGauge::new(
                "outpost_edge_billing_unsaved_requests",
                "Billed requests counted in memory but not yet saved to disk",
            )
            .expect("static metric definition"),
        );
        let pending_gauge = metric(
            registry,
            IntGauge::new(
                "outpost_edge_billing_pending_records",
                "Closed billing minutes not yet accepted by the origin",
            )
            .expect("static metric definition"),
        );
        pending_gauge.set(i64::try_from(state.pending.len()).unwrap_or(i64::MAX));
        let egress = metric(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "outpost_edge_account_egress_bytes_total",
                    "Billed bytes sent per account (top accounts; the rest under _other)",
                ),
                &["account"],
            )
            .expect("static metric definition"),
        );
        let requests = metric(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "outpost_edge_account_requests_total",
                    "Billed requests per account (top accounts; the rest under _other)",
                ),
                &["account"],
            )
            .expect("static metric definition"),
        );
        Ok(Billing {
            edge: edge.to_owned(),
            path,
            state: Mutex::new(state),
            unsaved,
            pending_gauge,
            egress,
            requests,
            labels: BoundedLabels::new(metrics_accounts),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one successful response of `bytes` for `account`: one lock and one map lookup
    /// (a key is allocated only for an account's first request in a minute).
    pub fn record(&self, account: &str, bytes: u64) {
        {
            let mut s = self.lock();
            let minute = now_minute().max(s.floor);
            let per = s.open.entry(minute).or_default();
            if let Some(c) = per.get_mut(account) {
                c.bytes += bytes;
                c.requests += 1;
            } else {
                per.insert(
                    account.to_owned(),
                    Counts {
                        bytes,
                        requests: 1,
                        ..Counts::default()
                    },
                );
            }
            s.unsaved += 1;
        }
        self.unsaved.inc();
    }

    /// Advances the per-account counters by what each open record gained since the last save.
    fn show(&self, open: &mut BTreeMap<u64, HashMap<String, Counts>>) {
        for per in open.values_mut() {
            for (account, c) in per.iter_mut() {
                let (b, q) = (c.bytes - c.shown_bytes, c.requests - c.shown_requests);
                if b == 0 && q == 0 {
                    continue;
                }
                let label = self.labels.label(account);
                self.egress.with_label_values(&[label]).inc_by(b);
                self.requests.with_label_values(&[label]).inc_by(q);
                c.shown_bytes = c.bytes;
                c.shown_requests = c.requests;
            }
        }
    }

    /// Closes every minute before the current one and saves the state. Returns the records
    /// waiting to be shipped.
    ///
    /// # Errors
    /// [`Error::Io`] when the state cannot be written; nothing is shipped then.
    pub fn close_and_save(&self) -> Result<Vec<BillingRecord>, Error> {
        self.close_and_save_at(now_minute())
    }

    fn close_and_save_at(&self, now: u64) -> Result<Vec<BillingRecord>, Error> {
        let (file, counted) = {
            let mut s = self.lock();
            self.show(&mut s.open);
            let keep = s.open.split_off(&now);
            let closed = std::mem::replace(&mut s.open, keep);
            for (minute, per) in closed {
                for (account, c) in per {
                    s.pending.push(BillingRecord {
                        edge: self.edge.clone(),
                        account,
                        minute,
                        bytes: c.bytes,
                        requests: c.requests,
                    });
                }
            }
            s.floor = s.floor.max(now);
            let counted = std::mem::take(&mut s.unsaved);
            (self.snapshot(&s), counted)
        };
        let pending = file.pending.clone();
        if let Err(e) = self.write(&file) {
            self.lock().unsaved += counted;
            return Err(e);
        }
        self.unsaved.sub(counted);
        self.pending_gauge
            .set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
        Ok(pending)
    }

    /// Removes records the origin accepted, and saves.
    ///
    /// # Errors
    /// [`Error::Io`]; the records then stay on disk and are shipped again (harmless).
    pub fn shipped(&self, done: &[BillingRecord]) -> Result<(), Error> {
        let file = {
            let mut s = self.lock();
            s.pending.retain(|r| !done.contains(r));
            self.snapshot(&s)
        };
        self.pending_gauge
            .set(i64::try_from(file.pending.len()).unwrap_or(i64::MAX));
        self.write(&file)
    }

    fn snapshot(&self, s: &State) -> StateFile {
        let open = s
            .open
            .iter()
            .flat_map(|(minute, per)| {
                per.iter().map(|(account, c)| BillingRecord {
                    edge: self.edge.clone(),
                    account: account.clone(),
                    minute: *minute,
                    bytes: c.bytes,
                    requests: c.requests,
                })
            })
            .collect();
        StateFile {
            version: STATE_VERSION,
            edge: self.edge.clone(),
            floor: s.floor,
            open,
            pending: s.pending.clone(),
        }
    }

    fn write(&self, file: &StateFile) -> Result<(), Error> {
        let bytes = serde_json::to_vec(file).map_err(|e| Error::Config {
            key: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn parse_state(bytes: &[u8]) -> Result<StateFile, String> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let v: Version = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if v.version != STATE_VERSION {
        return Err(format!("unknown billing state version {}", v.version));
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::core::Collector;

    /// The version 1 state file as written by this version; a later version must still read it.
    const FIXTURE_V1: &str = r#"{"version":1,"edge":"e1","floor":29000001,"open":[{"edge":"e1","account":"demo","minute":29000001,"bytes":100,"requests":2}],"pending":[{"edge":"e0","account":"demo","minute":29000000,"bytes":7,"requests":1}]}"#;

    fn billing(dir: &Path, edge: &str) -> Billing {
        Billing::open(dir, edge, 2, &Registry::new()).unwrap()
    }

    #[test]
    fn reads_the_v1_fixture() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("state.json"), FIXTURE_V1).unwrap();
        let b = billing(d.path(), "e1");
        let pending = b.close_and_save_at(29_000_002).unwrap();
        assert_eq!(pending.len(), 2);
        assert!(pending.contains(&BillingRecord {
            edge: "e1".into(),
            account: "demo".into(),
            minute: 29_000_001,
            bytes: 100,
            requests: 2
        }));
        let e = parse_state(br#"{"version":2}"#).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
    }

    #[test]
    fn restart_mid_minute_continues_the_same_record() {
        let d = tempfile::tempdir().unwrap();
        let now = now_minute();
        {
            let b = billing(d.path(), "e1");
            b.record("demo", 10);
            b.close_and_save_at(now).unwrap();
        }
        let b = billing(d.path(), "e1");
        b.record("demo", 5);
        let pending = b.close_and_save_at(now + 2).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].bytes, pending[0].requests), (15, 2));
        b.shipped(&pending).unwrap();
        assert!(b.close_and_save_at(now + 3).unwrap().is_empty());
        // A clock that went back cannot reopen a shipped minute.
        b.record("demo", 1);
        let late = b.close_and_save_at(now + 4).unwrap();
        assert!(late.iter().all(|r| r.minute >= now + 3), "{late:?}");
    }

    #[test]
    fn counters_advance_at_save_and_cap_accounts() {
        let d = tempfile::tempdir().unwrap();
        let b = Billing::open(d.path(), "e1", 2, &Registry::new()).unwrap();
        for (a, n) in [("a", 10), ("b", 20), ("c", 30), ("d", 40), ("a", 1)] {
            b.record(a, n);
        }
        let series = |b: &Billing| -> Vec<(String, u64)> {
            b.egress
                .collect()
                .iter()
                .flat_map(|f| f.get_metric().to_vec())
                .map(|m| {
                    let label = m.get_label()[0].value().to_owned();
                    (label, m.get_counter().get_value() as u64)
                })
                .collect()
        };
        assert!(
            series(&b).is_empty(),
            "counters move at save time, not per request"
        );
        b.close_and_save().unwrap();
        let s = series(&b);
        assert_eq!(s.iter().map(|x| x.1).sum::<u64>(), 101, "{s:?}");
        assert_eq!(s.len(), 3, "two accounts and _other: {s:?}");
        assert!(s.iter().any(|x| x.0 == "_other"), "{s:?}");
        b.close_and_save().unwrap();
        assert_eq!(series(&b), s, "a second save adds nothing");
    }

    #[test]
    fn labels_are_bounded() {
        let l = BoundedLabels::new(2);
        assert_eq!(l.label("a"), "a");
        assert_eq!(l.label("b"), "b");
        assert_eq!(l.label("c"), "_other");
        assert_eq!(l.label("a"), "a");
    }
}
