//! Metadata store: accounts, containers, objects and the change feed in one SQLite database
//! (WAL, `synchronous=FULL`: a commit is on disk when it returns).
//!
//! Every row carries a hybrid-logical-clock [`Timestamp`]; deletes are tombstones; a write
//! older than the row it would replace is ignored (newest wins, with the tie-breaks and laws
//! documented in [`merge`]). Each write appends to the `changes` table in the same
//! transaction, so the feed never misses or invents a change. Container counters are
//! maintained in the same transaction as the object row, so listings and counts are
//! read-your-writes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

mod certs;
mod feed;
pub mod merge;
mod namespace;
mod replica;
mod scan;
pub mod stamps;

pub use certs::lease_rule;
pub use feed::{PurgeTarget, Revocation};
pub use replica::{MetaRow, ReplicaRow};

use crate::hlc::Timestamp;
use crate::{Error, Result};
pub use scan::successor;
use scan::{list, range_query};

/// Schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}',
    token_keys TEXT NOT NULL DEFAULT '[]',
    stamps TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS containers (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    ts INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}',
    object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0,
    stamps TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (account, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    name TEXT NOT NULL,
    ts INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    content_type TEXT NOT NULL,
    meta TEXT NOT NULL,
    delete_at INTEGER,
    slo INTEGER NOT NULL DEFAULT 0,
    part INTEGER NOT NULL,
    listing_only INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, container, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_delete_at ON objects(delete_at) WHERE delete_at IS NOT NULL AND deleted = 0;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    container TEXT,
    object TEXT,
    etag TEXT
);
"#;

/// Metadata: lower-case header name → value.
pub type Meta = BTreeMap<String, String>;

/// An account row with its aggregated counters.
#[derive(Debug, Clone, Default)]
pub struct AccountRow {
    /// Name (without `AUTH_`).
    pub name: String,
    /// Last write.
    pub ts: Timestamp,
    /// Metadata headers.
    pub meta: Meta,
    /// Outpost token keys.
    pub token_keys: Vec<outpost_auth::TokenKeySpec>,
    /// Live containers.
    pub container_count: u64,
    /// Live objects over all containers.
    pub object_count: u64,
    /// Bytes over all containers.
    pub bytes_used: u64,
}

/// A container row.
#[derive(Debug, Clone, Default)]
pub struct ContainerRow {
    /// Name.
    pub name: String,
    /// Last write to the container itself.
    pub ts: Timestamp,
    /// Metadata (incl. `x-container-read`).
    pub meta: Meta,
    /// Live objects.
    pub object_count: u64,
    /// Bytes of live objects.
    pub bytes_used: u64,
}

/// An object row (live or tombstone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRow {
    /// Account.
    pub account: String,
    /// Container.
    pub container: String,
    /// Name.
    pub name: String,
    /// Version timestamp.
    pub ts: Timestamp,
    /// Tombstone.
    pub deleted: bool,
    /// Content length (for an SLO: the manifest's own length on disk).
    pub size: u64,
    /// MD5 hex of the data (for an SLO: MD5 of the segment ETags).
    pub etag: String,
    /// Content type.
    pub content_type: String,
    /// `x-object-meta-*` and stored system headers.
    pub meta: Meta,
    /// `X-Delete-At`, epoch seconds.
    pub delete_at: Option<u64>,
    /// SLO manifest: the data file holds the manifest JSON.
    pub slo: bool,
    /// Ring partition.
    pub part: u32,
    /// Cluster mode: this node knows the version (for listings and counters) but holds no
    /// data for it; the data lives on the partition's primaries.
    pub listing_only: bool,
}

/// One entry of the change feed (the wire type; `db/feed.rs` maps it to the `changes` table).
pub use outpost_proto::feed::{Change, ChangeKind};

/// What a listing asks for (Swift's query parameters).
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Only names starting with this.
    pub prefix: String,
    /// Roll names up to the first delimiter after the prefix.
    pub delimiter: Option<String>,
    /// Only names after this (before it with `reverse`).
    pub marker: Option<String>,
    /// Only names before this (after it with `reverse`).
    pub end_marker: Option<String>,
    /// At most this many entries (subdirs count).
    pub limit: usize,
    /// Descending order.
    pub reverse: bool,
    /// Object listings: hide objects whose `X-Delete-At` is at or before this time (epoch
    /// seconds), as they already answer 404. `None` lists them until the expirer runs.
    pub live_at: Option<u64>,
}

/// A listing entry.
#[derive(Debug, Clone)]
pub enum Entry<T> {
    /// A row.
    Item(T),
    /// A rolled-up pseudo-directory.
    Subdir(String),
}

/// The database: one writer, a few readers (WAL lets them run alongside the writer).
pub struct Db {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    feed: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

fn open_conn(path: &Path) -> Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    // Every statement is prepared once per connection (`prepare_cached`): parsing SQL was a
    // tenth of a GET's CPU time before.
    c.set_prepared_statement_cache_capacity(64);
    Ok(c)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn meta_json(m: &Meta) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

fn parse_meta(s: &str) -> Meta {
    serde_json::from_str(s).unwrap_or_default()
}

const OBJECT_COLS: &str =
    "account, container, name, ts, deleted, size, etag, content_type, meta, delete_at, slo, part, listing_only";

fn object_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        account: r.get(0)?,
        container: r.get(1)?,
        name: r.get(2)?,
        ts: Timestamp(to_u64(r.get(3)?)),
        deleted: r.get::<_, i64>(4)? != 0,
        size: to_u64(r.get(5)?),
        etag: r.get(6)?,
        content_type: r.get(7)?,
        meta: parse_meta(&r.get::<_, String>(8)?),
        delete_at: r.get::<_, Option<i64>>(9)?.map(to_u64),
        slo: r.get::<_, i64>(10)? != 0,
        part: u32::try_from(r.get::<_, i64>(11)?).unwrap_or(0),
        listing_only: r.get::<_, i64>(12)? != 0,
    })
}

fn record_change(
    tx: &rusqlite::Transaction<'_>,
    ts: Timestamp,
    account: &str,
    kind: &ChangeKind,
) -> Result<u64> {
    let c = feed::Columns::of(kind);
    tx.prepare_cached(
        "INSERT INTO changes (ts, kind, account, container, object, etag) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![to_i64(ts.0), c.kind, account, c.container, c.object, c.etag])?;
    Ok(to_u64(tx.last_insert_rowid()))
}

/// Result of a write under newest-wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied<T> {
    /// Written; holds what it replaced.
    Yes(T),
    /// A newer version was already there; nothing changed.
    Stale,
}

impl Db {
    /// Opens (creating if needed) the database in `dir`.
    ///
    /// # Errors
    /// [`Error::Db`] when SQLite fails, [`Error::Config`] for a database of a newer schema.
    pub fn open(dir: &Path) -> Result<Db> {
        let path = dir.join("meta.sqlite3");
        let writer = open_conn(&path)?;
        let version: i64 = writer.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::Config {
                key: "data_dir".into(),
                reason: format!(
                    "metadata schema {version} is newer than this binary's {SCHEMA_VERSION}"
                ),
            });
        }
        writer.execute_batch(SCHEMA)?;
        // Schema 1 → 2: cluster mode's listing-only rows.
        let has_listing_only: i64 = writer
            .prepare_cached(
                "SELECT COUNT(*) FROM pragma_table_info('objects') WHERE name = 'listing_only'",
            )?
            .query_row([], |r| r.get(0))?;
        if has_listing_only == 0 {
            writer.execute_batch(
                "ALTER TABLE objects ADD COLUMN listing_only INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        // Schema 2 → 3: per-key stamps of account and container rows (`stamps.rs`); rows
        // without them read as every key written at the row's timestamp.
        for table in ["accounts", "containers"] {
            let has_stamps: i64 = writer.query_row(
                &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = 'stamps'"),
                [],
                |r| r.get(0),
            )?;
            if has_stamps == 0 {
                writer.execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN stamps TEXT NOT NULL DEFAULT '{{}}'"
                ))?;
            }
        }
        writer.execute_batch(feed::FEED_SCHEMA)?;
        writer.execute_batch(certs::CERTS_SCHEMA)?;
        writer.execute_batch(replica::REPLICA_SCHEMA)?;
        writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let readers = (0..4)
            .map(|_| open_conn(&path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let last: i64 = writer
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")?
            .query_row([], |r| r.get(0))?;
        let (feed, _) = tokio::sync::watch::channel(to_u64(last));
        Ok(Db {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            feed,
        })
    }

    /// Runs `f` on a reader connection: the first free one (a point lookup never waits
    /// behind a listing that holds another), else the next in turn.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        for k in 0..n {
            match self.readers[(start + k) % n].try_lock() {
                Ok(conn) => return f(&conn),
                Err(std::sync::TryLockError::Poisoned(p)) => return f(&p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let conn = lock(&self.readers[start % n]);
        f(&conn)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(T, Option<u64>)>,
    ) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (out, seq) = f(&tx)?;
        tx.commit()?;
        if let Some(seq) = seq {
            self.feed.send_replace(seq);
        }
        Ok(out)
    }

    /// Subscribes to the feed's latest sequence number.
    pub fn feed_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.feed.subscribe()
    }

    /// The highest sequence number written.
    pub fn last_seq(&self) -> u64 {
        *self.feed.borrow()
    }

    /// The largest timestamp stored anywhere (the clock starts past it).
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn max_ts(&self) -> Result<u64> {
        self.read(|c| {
            let v: i64 = c.prepare_cached("SELECT MAX(COALESCE((SELECT MAX(ts) FROM objects), 0), COALESCE((SELECT MAX(ts) FROM containers), 0), COALESCE((SELECT MAX(ts) FROM accounts), 0), COALESCE((SELECT MAX(ts) FROM changes), 0))")?.query_row([],
                |r| r.get(0),
            )?;
            Ok(to_u64(v))
        })
    }

    // ---- objects ----

    /// The current row of an object (live or tombstone).
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn get_object(
        &self,
        account: &str,
        container: &str,
        name: &str,
    ) -> Result<Option<ObjectRow>> {
        self.read(|c| {
            Ok(c
                .prepare_cached(&format!(
                    "SELECT {OBJECT_COLS} FROM objects WHERE account = ?1 AND container = ?2 AND name = ?3"
                ))?
                .query_row([account, container, name], object_from_row)
                .optional()?)
        })
    }

    /// Writes an object row (a new version or a tombstone) if it is newer than the current
    /// one, updating container counters and the feed (`object-put`, or `object-delete` for a
    /// tombstone). The container must exist for a live row.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing container, [`Error::Db`].
    pub fn put_object(&self, row: &ObjectRow) -> Result<Applied<Option<ObjectRow>>> {
        self.write(|tx| apply_object(tx, row, None))
    }

    /// [`Db::put_object`] for a version derived from the current one (a POST): applied only
    /// if the current version is still the one at `base`, so a POST racing a PUT never
    /// brings back the data the PUT replaced. [`Applied::Stale`] when it changed. The feed
    /// records it as `object-post`.
    ///
    /// # Errors
    /// As [`Db::put_object`].
    pub fn put_object_if(
        &self,
        row: &ObjectRow,
        base: Timestamp,
    ) -> Result<Applied<Option<ObjectRow>>> {
        self.write(|tx| apply_object(tx, row, Some(base)))
    }

    /// Applies many object rows in one transaction (one fsync): bulk loads, replication
    /// batches. Each row obeys newest-wins as in [`Db::put_object`]; the first error aborts
    /// the whole batch.
    ///
    /// # Errors
    /// As [`Db::put_object`].
    pub fn put_objects(&self, rows: &[ObjectRow]) -> Result<Vec<Applied<Option<ObjectRow>>>> {
        self.write(|tx| {
            let mut out = Vec::with_capacity(rows.len());
            let mut last = None;
            for row in rows {
                let (applied, seq) = apply_object(tx, row, None)?;
                last = seq.or(last);
                out.push(applied);
            }
            Ok((out, last))
        })
    }

    /// Lists live objects of a container.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn list_objects(
        &self,
        account: &str,
        container: &str,
        p: &ListParams,
    ) -> Result<Vec<Entry<ObjectRow>>> {
        let live_at = to_i64(p.live_at.unwrap_or(0));
        self.read(|c| {
            list(p, |lower, upper, n| {
                let (sql, args) = range_query(
                    &format!("SELECT {OBJECT_COLS} FROM objects WHERE account = ?1 AND container = ?2 AND deleted = 0 AND (delete_at IS NULL OR delete_at > ?3)"),
                    4,
                    lower,
                    upper,
                    p.reverse,
                    n,
                );
                let mut st = c.prepare_cached(&sql)?;
                let mut all: Vec<&dyn rusqlite::ToSql> = vec![&account, &container, &live_at];
                all.extend(args.iter().map(|s| s as &dyn rusqlite::ToSql));
                let rows = st.query_map(all.as_slice(), object_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            }, |r: &ObjectRow| r.name.as_str())
        })
    }

    /// Live objects whose `X-Delete-At` has passed.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn expired_objects(&self, now: u64, limit: usize) -> Result<Vec<ObjectRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {OBJECT_COLS} FROM objects WHERE delete_at IS NOT NULL AND deleted = 0 AND delete_at <= ?1 LIMIT ?2"
            ))?;
            let rows = st.query_map(params![to_i64(now), to_i64(limit as u64)], object_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    // ---- change feed ----

    /// Changes after `since`, at most `limit`.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn changes_since(&self, since: u64, limit: usize) -> Result<Vec<Change>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, ts, kind, account, container, object, etag FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(
                params![to_i64(since), to_i64(limit as u64)],
                feed::change_from_row,
            )?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.into_iter().flatten().collect())
        })
    }

    /// The oldest sequence number still retained (0 when the feed is empty).
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn first_seq(&self) -> Result<u64> {
        self.read(|c| {
            let v: i64 = c
                .prepare_cached("SELECT COALESCE(MIN(seq), 0) FROM changes")?
                .query_row([], |r| r.get(0))?;
            Ok(to_u64(v))
        })
    }

    /// Drops all but the newest `retain` changes.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn trim_changes(&self, retain: u64) -> Result<usize> {
        self.write(|tx| {
            let n = tx.prepare_cached("DELETE FROM changes WHERE seq <= (SELECT COALESCE(MAX(seq), 0) FROM changes) - ?1")?.execute([to_i64(retain)],
            )?;
            Ok((n, None))
        })
    }
}

/// One object write inside a transaction: newest wins by [`merge::supersedes`] (and, with
/// `base`, only over that exact version: [`merge::derives_from`]), container counters follow,
/// the feed records it.
fn apply_object(
    tx: &rusqlite::Transaction<'_>,
    row: &ObjectRow,
    base: Option<Timestamp>,
) -> Result<(Applied<Option<ObjectRow>>, Option<u64>)> {
    let live_container: Option<i64> = tx
        .prepare_cached(
            "SELECT 1 FROM containers WHERE account = ?1 AND name = ?2 AND deleted = 0",
        )?
        .query_row([&row.account, &row.container], |r| r.get(0))
        .optional()?;
    if live_container.is_none() && !row.deleted {
        return Err(Error::NotFound { what: "container" });
    }
    let old = tx
        .prepare_cached(&format!(
            "SELECT {OBJECT_COLS} FROM objects WHERE account = ?1 AND container = ?2 AND name = ?3"
        ))?
        .query_row([&row.account, &row.container, &row.name], object_from_row)
        .optional()?;
    // Newest wins, ties resolved as `merge` documents (a data row completes the listing row of
    // its version; a tombstone beats a live row of the same tick).
    if !merge::supersedes(row, old.as_ref()) {
        return Ok((Applied::Stale, None));
    }
    if base.is_some_and(|base| !merge::derives_from(old.as_ref(), base)) {
        return Ok((Applied::Stale, None));
    }
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO objects ({OBJECT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?
    .execute(params![
        row.account,
        row.container,
        row.name,
        to_i64(row.ts.0),
        i64::from(row.deleted),
        to_i64(row.size),
        row.etag,
        row.content_type,
        meta_json(&row.meta),
        row.delete_at.map(to_i64),
        i64::from(row.slo),
        i64::from(row.part),
        i64::from(row.listing_only),
    ])?;
    let (mut dc, mut db) = (0i64, 0i64);
    if let Some(o) = old.as_ref().filter(|o| !o.deleted) {
        dc -= 1;
        db -= to_i64(o.size);
    }
    if !row.deleted {
        dc += 1;
        db += to_i64(row.size);
    }
    if dc != 0 || db != 0 {
        tx.prepare_cached(
            "UPDATE containers SET object_count = MAX(0, object_count + ?3), bytes_used = MAX(0, bytes_used + ?4) WHERE account = ?1 AND name = ?2",
        )?
        .execute(params![row.account, row.container, dc, db])?;
    }
    let (container, object) = (row.container.clone(), row.name.clone());
    let kind = match (row.deleted, base) {
        (true, _) => ChangeKind::ObjectDelete { container, object },
        (false, Some(_)) => ChangeKind::ObjectPost {
            container,
            object,
            etag: row.etag.clone(),
        },
        (false, None) => ChangeKind::ObjectPut {
            container,
            object,
            etag: row.etag.clone(),
        },
    };
    let seq = record_change(tx, row.ts, &row.account, &kind)?;
    Ok((Applied::Yes(old), Some(seq)))
}

/// Applies Swift metadata semantics: `Some(v)` sets, `None` or an empty value removes.
pub fn apply_updates(meta: &mut Meta, updates: &[(String, Option<String>)]) {
    for (k, v) in updates {
        match v {
            Some(v) if !v.is_empty() => {
                meta.insert(k.clone(), v.clone());
            }
            _ => {
                meta.remove(k);
            }
        }
    }
}
