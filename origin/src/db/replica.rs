//! What the replicator and the auditor need from the metadata store: rows by partition,
//! tombstone reclamation, listing-only rows, forgetting a quarantined copy, and the account and
//! container rows every node of a cluster keeps.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{
    meta_json, object_from_row, parse_meta, record_change, to_i64, to_u64, ChangeKind, Db, Meta,
    ObjectRow, OBJECT_COLS,
};
use crate::hlc::Timestamp;
use crate::Result;

/// Indexes this module needs (created at open, after the schema 2 migration).
pub(super) const REPLICA_SCHEMA: &str = r#"
CREATE INDEX IF NOT EXISTS objects_part ON objects(part);
"#;

/// One object version as replicas compare them (`format` 1 of `/internal/replication/rows`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRow {
    /// Account.
    pub account: String,
    /// Container.
    pub container: String,
    /// Object.
    pub name: String,
    /// Version timestamp (raw HLC ticks).
    pub ts: u64,
    /// Tombstone.
    pub deleted: bool,
    /// The node holds the version's data (not only its listing row).
    pub has_data: bool,
}

impl ReplicaRow {
    /// The wire form of a local row.
    pub fn of(r: &ObjectRow) -> ReplicaRow {
        ReplicaRow {
            account: r.account.clone(),
            container: r.container.clone(),
            name: r.name.clone(),
            ts: r.ts.0,
            deleted: r.deleted,
            has_data: !r.deleted && !r.listing_only,
        }
    }
}

/// An account or container row as every cluster node keeps it (`format` 1 of
/// `/internal/replication/meta`). Counters are not replicated: each node derives them from its
/// object rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRow {
    /// Account.
    pub account: String,
    /// Container; `None` for the account row itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Last write (raw HLC ticks).
    pub ts: u64,
    /// Tombstone.
    pub deleted: bool,
    /// Metadata headers.
    pub meta: Meta,
    /// Account token keys, as stored (JSON); empty for containers.
    #[serde(default)]
    pub token_keys: String,
    /// Per-key write timestamps, removed keys included, and the row's last update and delete
    /// ([`super::stamps`]). Absent from whole-row peers: then every key counts as written at
    /// `ts`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stamps: std::collections::BTreeMap<String, u64>,
}

/// An account row as replicas exchange it (`name, ts, deleted, meta, token_keys`).
fn account_meta_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MetaRow> {
    Ok(MetaRow {
        account: r.get(0)?,
        container: None,
        ts: to_u64(r.get(1)?),
        deleted: r.get::<_, i64>(2)? != 0,
        meta: parse_meta(&r.get::<_, String>(3)?),
        token_keys: r.get(4)?,
        stamps: parse_stamps(&r.get::<_, String>(5)?),
    })
}

/// A container row as replicas exchange it (`account, name, ts, deleted, meta`).
fn container_meta_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MetaRow> {
    Ok(MetaRow {
        account: r.get(0)?,
        container: Some(r.get(1)?),
        ts: to_u64(r.get(2)?),
        deleted: r.get::<_, i64>(3)? != 0,
        meta: parse_meta(&r.get::<_, String>(4)?),
        token_keys: String::new(),
        stamps: parse_stamps(&r.get::<_, String>(5)?),
    })
}

impl Db {
    /// Partitions this node has object rows in.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn partitions(&self) -> Result<Vec<u32>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT DISTINCT part FROM objects ORDER BY part")?;
            let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
            Ok(rows
                .filter_map(|r| r.ok().and_then(|p| u32::try_from(p).ok()))
                .collect())
        })
    }

    /// Partitions in which this node holds the data of at least one live version (not only
    /// its listing row): with the ring, the ones it is not a primary for are its handoff
    /// backlog.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn data_partitions(&self) -> Result<Vec<u32>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT part FROM objects WHERE deleted = 0 AND listing_only = 0 ORDER BY part",
            )?;
            let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
            Ok(rows
                .filter_map(|r| r.ok().and_then(|p| u32::try_from(p).ok()))
                .collect())
        })
    }

    /// Number of object rows (live, listing-only and tombstones).
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn object_row_count(&self) -> Result<u64> {
        self.read(|c| {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM objects")?
                .query_row([], |r| r.get(0))?;
            Ok(to_u64(n))
        })
    }

    /// Every object row (live, listing-only and tombstones) of a partition.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn rows_in_partition(&self, part: u32) -> Result<Vec<ObjectRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {OBJECT_COLS} FROM objects WHERE part = ?1"
            ))?;
            let rows = st.query_map([i64::from(part)], object_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Drops tombstones older than `before` (every replica has had `reclaim_age` to learn of
    /// them). No feed entry: nothing visible changes.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn reclaim_tombstones(&self, before: Timestamp) -> Result<usize> {
        self.write(|tx| {
            let n = tx
                .prepare_cached("DELETE FROM objects WHERE deleted = 1 AND ts < ?1")?
                .execute([to_i64(before.0)])?;
            Ok((n, None))
        })
    }

    /// Forgets one version (the auditor quarantined its data): the row goes, counters follow,
    /// no feed entry. The replicator then copies the version back from a replica. Returns
    /// false if the row is no longer that version.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn forget_object(&self, row: &ObjectRow) -> Result<bool> {
        self.write(|tx| {
            let n = tx.prepare_cached("DELETE FROM objects WHERE account = ?1 AND container = ?2 AND name = ?3 AND ts = ?4 AND deleted = 0")?.execute(params![row.account, row.container, row.name, to_i64(row.ts.0)],
            )?;
            if n > 0 {
                tx.prepare_cached("UPDATE containers SET object_count = MAX(0, object_count - 1), bytes_used = MAX(0, bytes_used - ?3) WHERE account = ?1 AND name = ?2")?.execute(params![row.account, row.container, to_i64(row.size)],
                )?;
            }
            Ok((n > 0, None))
        })
    }

    /// Marks a version listing-only (its data moved to the primaries). Returns false if the
    /// row is no longer that live version.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn mark_listing_only(&self, row: &ObjectRow) -> Result<bool> {
        self.write(|tx| {
            let n = tx.prepare_cached("UPDATE objects SET listing_only = 1 WHERE account = ?1 AND container = ?2 AND name = ?3 AND ts = ?4 AND deleted = 0")?.execute(params![row.account, row.container, row.name, to_i64(row.ts.0)],
            )?;
            Ok((n > 0, None))
        })
    }

    /// Live rows with data (not SLO manifests) after `after`, in key order: the auditor's scan.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn audit_batch(
        &self,
        after: Option<&(String, String, String)>,
        limit: usize,
    ) -> Result<Vec<ObjectRow>> {
        let (a, c, n) = after.cloned().unwrap_or_default();
        self.read(|conn| {
            let mut st = conn.prepare_cached(&format!(
                "SELECT {OBJECT_COLS} FROM objects WHERE (account, container, name) > (?1, ?2, ?3) AND deleted = 0 AND listing_only = 0 AND slo = 0 ORDER BY account, container, name LIMIT ?4"
            ))?;
            let rows = st.query_map(params![a, c, n, to_i64(limit as u64)], object_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Every account and container row, tombstones included.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn meta_rows(&self) -> Result<Vec<MetaRow>> {
        self.read(|c| {
            let mut out = Vec::new();
            let mut st = c.prepare_cached(
                "SELECT name, ts, deleted, meta, token_keys, stamps FROM accounts",
            )?;
            let rows = st.query_map([], account_meta_row)?;
            out.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
            let mut st = c.prepare_cached(
                "SELECT account, name, ts, deleted, meta, stamps FROM containers",
            )?;
            let rows = st.query_map([], container_meta_row)?;
            out.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
            Ok(out)
        })
    }

    /// One account (`container` `None`) or container row as replicas exchange it, tombstones
    /// included.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn meta_row(&self, account: &str, container: Option<&str>) -> Result<Option<MetaRow>> {
        self.read(|c| {
            Ok(match container {
                None => c
                    .prepare_cached(
                        "SELECT name, ts, deleted, meta, token_keys, stamps FROM accounts WHERE name = ?1",
                    )?
                    .query_row([account], account_meta_row)
                    .optional()?,
                Some(name) => c
                    .prepare_cached("SELECT account, name, ts, deleted, meta, stamps FROM containers WHERE account = ?1 AND name = ?2")?
                    .query_row([account, name], container_meta_row)
                    .optional()?,
            })
        })
    }

    /// Merges account and container rows from a peer into ours, key by key
    /// ([`super::stamps::merge`]), recording each row that changed in the feed. Returns how
    /// many changed.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn merge_meta(&self, rows: &[MetaRow]) -> Result<usize> {
        self.write(|tx| {
            let mut applied = 0;
            let mut last = None;
            for m in rows {
                let cur = meta_row_in(tx, &m.account, m.container.as_deref())?;
                let merged = match &cur {
                    Some(c) => super::stamps::merge(c, m),
                    None => super::stamps::normalize(m),
                };
                if cur
                    .as_ref()
                    .is_some_and(|c| super::stamps::normalize(c) == merged)
                {
                    continue;
                }
                write_meta_row(tx, &merged)?;
                let ts = Timestamp(merged.ts);
                let kind = match &m.container {
                    None if merged.deleted => ChangeKind::AccountDelete,
                    None => ChangeKind::AccountPost,
                    Some(c) => {
                        let container = c.clone();
                        let existed = cur.as_ref().is_some_and(|c| !c.deleted);
                        match (merged.deleted, existed) {
                            (true, _) => ChangeKind::ContainerDelete { container },
                            (false, true) => ChangeKind::ContainerPost { container },
                            (false, false) => ChangeKind::ContainerPut { container },
                        }
                    }
                };
                last = Some(record_change(tx, ts, &m.account, &kind)?);
                applied += 1;
            }
            Ok((applied, last))
        })
    }

    /// Makes sure a container row exists so a replicated object can land before the
    /// container's own row arrives. The placeholder has the oldest possible timestamp, so the
    /// real row replaces it; an existing row (even a tombstone) is left alone.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn ensure_container_placeholder(&self, account: &str, container: &str) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("INSERT OR IGNORE INTO accounts (name, ts, deleted) VALUES (?1, 1, 0)")?.execute([account],
            )?;
            tx.prepare_cached("INSERT OR IGNORE INTO containers (account, name, ts, deleted, meta) VALUES (?1, ?2, 1, 0, '{}')")?.execute([account, container],
            )?;
            Ok(((), None))
        })
    }
}

/// The stamps column (`{}` for rows written before schema 3).
fn parse_stamps(s: &str) -> std::collections::BTreeMap<String, u64> {
    serde_json::from_str(s).unwrap_or_default()
}

/// One account (`container` `None`) or container row inside a write transaction.
pub(super) fn meta_row_in(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    container: Option<&str>,
) -> rusqlite::Result<Option<MetaRow>> {
    match container {
        None => tx
            .prepare_cached("SELECT name, ts, deleted, meta, token_keys, stamps FROM accounts WHERE name = ?1")?
            .query_row([account], account_meta_row)
            .optional(),
        Some(c) => tx
            .prepare_cached("SELECT account, name, ts, deleted, meta, stamps FROM containers WHERE account = ?1 AND name = ?2")?
            .query_row([account, c], container_meta_row)
            .optional(),
    }
}

/// Stores a (normalized) account or container row: flags, metadata, token keys and stamps;
/// a container's counters are kept.
pub(super) fn write_meta_row(tx: &rusqlite::Transaction<'_>, m: &MetaRow) -> rusqlite::Result<()> {
    let stamps = serde_json::to_string(&m.stamps).unwrap_or_else(|_| "{}".into());
    match &m.container {
        None => {
            let keys = if m.token_keys.is_empty() {
                "[]"
            } else {
                m.token_keys.as_str()
            };
            tx.prepare_cached("INSERT INTO accounts (name, ts, deleted, meta, token_keys, stamps) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(name) DO UPDATE SET ts = excluded.ts, deleted = excluded.deleted, meta = excluded.meta, token_keys = excluded.token_keys, stamps = excluded.stamps")?.execute(params![m.account, to_i64(m.ts), i64::from(m.deleted), meta_json(&m.meta), keys, stamps],
            )?;
        }
        Some(c) => {
            tx.prepare_cached("INSERT INTO containers (account, name, ts, deleted, meta, stamps) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(account, name) DO UPDATE SET ts = excluded.ts, deleted = excluded.deleted, meta = excluded.meta, stamps = excluded.stamps")?.execute(params![m.account, c, to_i64(m.ts), i64::from(m.deleted), meta_json(&m.meta), stamps],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, ts: u64, deleted: bool, listing_only: bool) -> ObjectRow {
        ObjectRow {
            account: "a".into(),
            container: "c".into(),
            name: name.into(),
            ts: Timestamp(ts),
            deleted,
            size: if deleted { 0 } else { 3 },
            etag: "e".into(),
            content_type: "t".into(),
            part: 7,
            listing_only,
            ..ObjectRow::default()
        }
    }

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.ensure_container_placeholder("a", "c").unwrap();
        (dir, db)
    }

    #[test]
    fn a_listing_row_is_completed_by_its_data_but_never_downgraded() {
        let (_d, db) = db();
        db.put_object(&row("o", 100, false, true)).unwrap();
        // The same version with data completes the listing row.
        let r = db.put_object(&row("o", 100, false, false)).unwrap();
        assert!(matches!(r, crate::db::Applied::Yes(_)));
        assert!(!db.get_object("a", "c", "o").unwrap().unwrap().listing_only);
        // The listing row of the same version does not replace the data row.
        let r = db.put_object(&row("o", 100, false, true)).unwrap();
        assert_eq!(r, crate::db::Applied::Stale);
        // Counters count the object once.
        assert_eq!(db.get_container("a", "c").unwrap().unwrap().object_count, 1);
    }

    #[test]
    fn tombstones_are_reclaimed_after_their_age_and_rows_forgotten() {
        let (_d, db) = db();
        db.put_object(&row("old", 100, true, false)).unwrap();
        db.put_object(&row("new", 300, true, false)).unwrap();
        db.put_object(&row("live", 100, false, false)).unwrap();
        assert_eq!(db.reclaim_tombstones(Timestamp(200)).unwrap(), 1);
        assert!(db.get_object("a", "c", "old").unwrap().is_none());
        assert!(db.get_object("a", "c", "new").unwrap().is_some());
        assert!(db.get_object("a", "c", "live").unwrap().is_some());
        assert_eq!(db.partitions().unwrap(), vec![7]);
        assert_eq!(db.rows_in_partition(7).unwrap().len(), 2);
        assert!(db.forget_object(&row("live", 100, false, false)).unwrap());
        assert_eq!(db.get_container("a", "c").unwrap().unwrap().object_count, 0);
    }

    #[test]
    fn data_partitions_skip_tombstones_and_listing_rows() {
        let (_d, db) = db();
        let mut r = row("dead", 100, true, false);
        r.part = 1;
        db.put_object(&r).unwrap();
        let mut r = row("listed", 100, false, true);
        r.part = 2;
        db.put_object(&r).unwrap();
        let mut r = row("held", 100, false, false);
        r.part = 3;
        db.put_object(&r).unwrap();
        assert_eq!(db.data_partitions().unwrap(), vec![3]);
        // Handed home: the data is gone, the row stays.
        assert!(db.mark_listing_only(&r).unwrap());
        assert!(db.data_partitions().unwrap().is_empty());
        assert_eq!(db.partitions().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn meta_rows_merge_newest_wins() {
        let (_d, a) = db();
        let (_d2, b) = db();
        a.put_container(
            "a",
            "x",
            Timestamp(500),
            &[("x-container-read".into(), Some(".r:*".into()))],
        )
        .unwrap();
        assert_eq!(b.merge_meta(&a.meta_rows().unwrap()).unwrap(), 1);
        assert_eq!(
            b.get_container("a", "x").unwrap().unwrap().meta["x-container-read"],
            ".r:*"
        );
        // Nothing newer: nothing applied.
        assert_eq!(b.merge_meta(&a.meta_rows().unwrap()).unwrap(), 0);
    }

    /// A schema 1 database (no `listing_only` column) opens and gains the column.
    #[test]
    fn schema_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = rusqlite::Connection::open(dir.path().join("meta.sqlite3")).unwrap();
            c.execute_batch(
                "CREATE TABLE objects (account TEXT NOT NULL, container TEXT NOT NULL, name TEXT NOT NULL, ts INTEGER NOT NULL, deleted INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL, meta TEXT NOT NULL, delete_at INTEGER, slo INTEGER NOT NULL DEFAULT 0, part INTEGER NOT NULL, PRIMARY KEY (account, container, name)) WITHOUT ROWID;
                 INSERT INTO objects VALUES ('a','c','o',5,0,3,'e','t','{}',NULL,0,7);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        let o = db.get_object("a", "c", "o").unwrap().unwrap();
        assert!(!o.listing_only);
        assert_eq!(o.part, 7);
    }
}
