//! The in-process test tier of `outpost-origin`: a real [`Db`] in a temp dir, no HTTP, no
//! processes.
//!
//! - `model`: any sequence of versions (any order, duplicates) applied to a `Db` ends with the
//!   row a fold of the pure merge rules (`db::merge`) gives, for objects and for
//!   account/container rows; container counters follow the final rows.
//! - `objects`: put / overwrite / delete ordering, stale writes, versions derived by POST,
//!   counters, and the regression tests of the merge's tie-breaks.
//! - `replicas`: two nodes exchanging rows the way the replicator decides to
//!   (`db::merge::needs_push`) converge both ways; the replicator's suffix hashes agree after.
//! - `migration`: a schema-2 database (fixture) opens as schema 3 and merges key by key.
//! - `listing`: the listing scan at its edges (markers, end markers, delimiters, reverse,
//!   paging by marker, expiry).
//!
//! Case counts keep the binary at a few seconds in debug builds (every write is an fsync);
//! `PROPTEST_CASES=1000` searches deeper.

use outpost_origin::db::{Db, ObjectRow};
use outpost_origin::hlc::Timestamp;

#[path = "db/listing.rs"]
mod listing;
#[path = "db/migration.rs"]
mod migration;
#[path = "db/model.rs"]
mod model;
#[path = "db/objects.rs"]
mod objects;
#[path = "db/replicas.rs"]
mod replicas;

/// A fresh database in a temp dir (kept alive by the returned guard).
pub fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(dir.path()).expect("open db");
    (dir, db)
}

/// A fresh database holding the live container `a/c`.
pub fn open_with_container() -> (tempfile::TempDir, Db) {
    let (dir, db) = open();
    db.ensure_account("a", Timestamp(1)).expect("account");
    db.put_container("a", "c", Timestamp(2), &[])
        .expect("container");
    (dir, db)
}

/// A version of object `a/c/<name>` whose content is a function of `(ts, kind)`: the merge's
/// version identity (one tick names one content). Kinds: 0 listing row, 1 data, 2 tombstone.
pub fn version(name: &str, ts: u64, kind: u8) -> ObjectRow {
    let (deleted, listing_only) = match kind % 3 {
        0 => (false, true),
        1 => (false, false),
        _ => (true, false),
    };
    ObjectRow {
        account: "a".into(),
        container: "c".into(),
        name: name.into(),
        ts: Timestamp(ts),
        deleted,
        size: if deleted { 0 } else { ts * 10 + 1 },
        etag: if deleted {
            String::new()
        } else {
            format!("{ts:032x}")
        },
        content_type: "text/plain".into(),
        meta: if deleted {
            Default::default()
        } else {
            [("x-object-meta-v".to_owned(), ts.to_string())].into()
        },
        delete_at: None,
        slo: false,
        part: 7,
        listing_only,
    }
}
