//! Billing records shipped by edges: per (edge, account, minute), bytes sent and requests of
//! successful responses.
//!
//! Kept in their own SQLite file, `<data_dir>/billing.sqlite3` (WAL, `synchronous=FULL`,
//! `PRAGMA user_version` = [`SCHEMA_VERSION`]), apart from the object metadata. A record is
//! final once an edge ships it, so a write **replaces** the row keyed by
//! `(account, minute, edge)`: an edge that ships the same minute again (a lost answer, a
//! restart) cannot make it count twice. Reports sum the edges' rows.
//!
//! The store is opened once per data directory and shared ([`store`]); a node's `AppState`
//! does not own it, so billing stays out of the object-store code paths.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::{IntCounterVec, Opts, Registry};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{Error, Result};

/// Schema version of `billing.sqlite3`.
pub const SCHEMA_VERSION: i64 = 1;
/// The container each account's logs are delivered into.
pub use outpost_proto::meta::LOGS_CONTAINER;
/// Accounts with their own series in `/metrics`; the rest are summed under `_other`.
pub const METRIC_ACCOUNTS: usize = 100;

/// One record as an edge ships it (the wire type).
pub use outpost_proto::billing::BillingRecord as Record;

/// Sums of one minute over every edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinuteTotal {
    /// Unix seconds / 60.
    pub minute: u64,
    /// Bytes.
    pub bytes: u64,
    /// Requests.
    pub requests: u64,
}

/// The billing store of one node.
#[derive(Debug)]
pub struct BillingStore {
    conn: Mutex<Connection>,
    bytes: IntCounterVec,
    requests: IntCounterVec,
    labels: Mutex<HashSet<String>>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The store of `data_dir`, opened on first use; its counters go into `registry`.
///
/// # Errors
/// [`Error::Db`] when the database cannot be opened or is of a newer schema.
pub fn store(data_dir: &Path, registry: &Registry) -> Result<Arc<BillingStore>> {
    static STORES: OnceLock<Mutex<HashMap<PathBuf, Arc<BillingStore>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(s) = stores.get(data_dir) {
        return Ok(Arc::clone(s));
    }
    let s = Arc::new(BillingStore::open(data_dir, registry)?);
    stores.insert(data_dir.to_owned(), Arc::clone(&s));
    Ok(s)
}

impl BillingStore {
    /// Opens (creating) `<dir>/billing.sqlite3`.
    ///
    /// # Errors
    /// [`Error::Db`]; [`Error::Config`] for a database of a newer schema.
    pub fn open(dir: &Path, registry: &Registry) -> Result<BillingStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("billing.sqlite3");
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS billing (
                 account TEXT NOT NULL,
                 minute INTEGER NOT NULL,
                 edge TEXT NOT NULL,
                 bytes INTEGER NOT NULL,
                 requests INTEGER NOT NULL,
                 PRIMARY KEY (account, minute, edge)
             ) WITHOUT ROWID;",
        )?;
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        match v {
            0 => conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?,
            SCHEMA_VERSION => {}
            _ => {
                return Err(Error::Config {
                    key: path.display().to_string(),
                    reason: format!("billing schema version {v} is newer than this binary"),
                })
            }
        }
        let vec = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["account"])
                .expect("static metric definition");
            // Another store in the same process (tests) may have registered the names.
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        Ok(BillingStore {
            conn: Mutex::new(conn),
            bytes: vec(
                "outpost_origin_account_billed_bytes_total",
                "Bytes billed per account, as shipped by edges (top accounts; the rest under _other)",
            ),
            requests: vec(
                "outpost_origin_account_billed_requests_total",
                "Requests billed per account, as shipped by edges (top accounts; the rest under _other)",
            ),
            labels: Mutex::default(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn label<'a>(&self, account: &'a str) -> &'a str {
        let mut seen = self
            .labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(account) {
            return account;
        }
        if seen.len() < METRIC_ACCOUNTS {
            seen.insert(account.to_owned());
            return account;
        }
        "_other"
    }

    /// Stores records, each replacing any earlier one of the same (edge, account, minute).
    /// Counters grow by the difference, so a repeated record adds nothing.
    ///
    /// # Errors
    /// [`Error::Db`]; nothing is stored then.
    pub fn upsert(&self, records: &[Record]) -> Result<()> {
        let mut deltas: Vec<(&str, u64, u64)> = Vec::with_capacity(records.len());
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            for r in records {
                let old: Option<(i64, i64)> = tx
                    .query_row(
                        "SELECT bytes, requests FROM billing WHERE account = ?1 AND minute = ?2 AND edge = ?3",
                        params![r.account, to_i64(r.minute), r.edge],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?;
                tx.execute(
                    "INSERT INTO billing (account, minute, edge, bytes, requests) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(account, minute, edge) DO UPDATE SET bytes = excluded.bytes, requests = excluded.requests",
                    params![r.account, to_i64(r.minute), r.edge, to_i64(r.bytes), to_i64(r.requests)],
                )?;
                let (ob, or) = old.map_or((0, 0), |(b, q)| (to_u64(b), to_u64(q)));
                deltas.push((
                    &r.account,
                    r.bytes.saturating_sub(ob),
                    r.requests.saturating_sub(or),
                ));
            }
            tx.commit()?;
        }
        for (account, b, q) in deltas {
            let l = self.label(account);
            self.bytes.with_label_values(&[l]).inc_by(b);
            self.requests.with_label_values(&[l]).inc_by(q);
        }
        Ok(())
    }

    /// Per-minute sums over every edge for `account`, minutes in `[from, to)`.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn report(&self, account: &str, from: u64, to: u64) -> Result<Vec<MinuteTotal>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT minute, SUM(bytes), SUM(requests) FROM billing
             WHERE account = ?1 AND minute >= ?2 AND minute < ?3
             GROUP BY minute ORDER BY minute",
        )?;
        let rows = st.query_map(params![account, to_i64(from), to_i64(to)], |r| {
            Ok(MinuteTotal {
                minute: to_u64(r.get(0)?),
                bytes: to_u64(r.get(1)?),
                requests: to_u64(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(edge: &str, minute: u64, bytes: u64) -> Record {
        Record {
            edge: edge.into(),
            account: "demo".into(),
            minute,
            bytes,
            requests: 1,
        }
    }

    #[test]
    fn a_record_shipped_again_replaces_instead_of_adding() {
        let d = tempfile::tempdir().unwrap();
        let s = BillingStore::open(d.path(), &Registry::new()).unwrap();
        s.upsert(&[rec("e1", 10, 100), rec("e2", 10, 50), rec("e1", 11, 7)])
            .unwrap();
        s.upsert(&[rec("e1", 10, 100)]).unwrap();
        let r = s.report("demo", 10, 12).unwrap();
        assert_eq!(
            r,
            vec![
                MinuteTotal {
                    minute: 10,
                    bytes: 150,
                    requests: 2
                },
                MinuteTotal {
                    minute: 11,
                    bytes: 7,
                    requests: 1
                }
            ]
        );
        assert!(s.report("demo", 12, 20).unwrap().is_empty());
        assert!(s.report("other", 0, 20).unwrap().is_empty());
        drop(s);
        let s = BillingStore::open(d.path(), &Registry::new()).unwrap();
        assert_eq!(s.report("demo", 0, 100).unwrap().len(), 2);
    }
}
