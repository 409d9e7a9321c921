//! Object rows through a real `Db`: ordering, stale writes, POST-derived versions, counters,
//! and the regression tests of the merge's tie-breaks.

use outpost_origin::db::{Applied, MetaRow};
use outpost_origin::hlc::Timestamp;
use outpost_origin::Error;

use super::{open, open_with_container, version};

const DATA: u8 = 1;
const LISTING: u8 = 0;
const TOMBSTONE: u8 = 2;

#[test]
fn overwrites_and_deletes_apply_in_timestamp_order() {
    let (_d, db) = open_with_container();
    let v10 = version("o", 10, DATA);
    let v20 = version("o", 20, DATA);
    assert_eq!(db.put_object(&v10).unwrap(), Applied::Yes(None));
    assert_eq!(
        db.put_object(&v20).unwrap(),
        Applied::Yes(Some(v10.clone()))
    );
    // An older version arriving late changes nothing.
    assert_eq!(db.put_object(&v10).unwrap(), Applied::Stale);
    let del = version("o", 30, TOMBSTONE);
    assert_eq!(db.put_object(&del).unwrap(), Applied::Yes(Some(v20)));
    // A write older than the tombstone stays deleted.
    assert_eq!(
        db.put_object(&version("o", 25, DATA)).unwrap(),
        Applied::Stale
    );
    assert_eq!(db.get_object("a", "c", "o").unwrap(), Some(del.clone()));
    // A newer write brings the object back.
    let v40 = version("o", 40, DATA);
    assert_eq!(db.put_object(&v40).unwrap(), Applied::Yes(Some(del)));
    let c = db.get_container("a", "c").unwrap().unwrap();
    assert_eq!((c.object_count, c.bytes_used), (1, v40.size));
}

#[test]
fn stale_writes_leave_no_feed_entry() {
    let (_d, db) = open_with_container();
    db.put_object(&version("o", 20, DATA)).unwrap();
    let seq = db.last_seq();
    for (ts, kind) in [
        (10, DATA),
        (10, TOMBSTONE),
        (20, DATA),
        (20, LISTING),
        (19, LISTING),
    ] {
        assert_eq!(
            db.put_object(&version("o", ts, kind)).unwrap(),
            Applied::Stale,
            "ts {ts} kind {kind}"
        );
    }
    assert_eq!(db.last_seq(), seq);
    let changes = db.changes_since(0, 100).unwrap();
    assert_eq!(
        changes.last().unwrap().kind,
        outpost_proto::feed::ChangeKind::ObjectPut {
            container: "c".into(),
            object: "o".into(),
            etag: version("o", 20, DATA).etag,
        }
    );
}

#[test]
fn a_live_row_needs_a_live_container_but_a_tombstone_does_not() {
    let (_d, db) = open();
    let err = db.put_object(&version("o", 10, DATA)).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { what: "container" }),
        "{err:?}"
    );
    // A replicated delete of an object in an unknown container still leaves its tombstone.
    assert_eq!(
        db.put_object(&version("o", 10, TOMBSTONE)).unwrap(),
        Applied::Yes(None)
    );
}

#[test]
fn a_post_applies_only_over_the_version_it_was_derived_from() {
    let (_d, db) = open_with_container();
    let base = version("o", 10, DATA);
    db.put_object(&base).unwrap();
    let mut post = base.clone();
    post.ts = Timestamp(12);
    post.meta = [("x-object-meta-k".to_owned(), "v".to_owned())].into();
    // Derived from a version that is no longer current: a PUT replaced it meanwhile.
    let put = version("o", 11, DATA);
    db.put_object(&put).unwrap();
    assert_eq!(
        db.put_object_if(&post, Timestamp(10)).unwrap(),
        Applied::Stale
    );
    assert_eq!(db.get_object("a", "c", "o").unwrap(), Some(put.clone()));
    // Derived from the current one: applied, although plain newest-wins would also apply it.
    let mut post2 = put.clone();
    post2.ts = Timestamp(12);
    assert_eq!(
        db.put_object_if(&post2, Timestamp(11)).unwrap(),
        Applied::Yes(Some(put))
    );
    // Never over a tombstone, even the one at `base`.
    db.put_object(&version("o", 13, TOMBSTONE)).unwrap();
    let mut post3 = post2.clone();
    post3.ts = Timestamp(14);
    assert_eq!(
        db.put_object_if(&post3, Timestamp(13)).unwrap(),
        Applied::Stale
    );
    // Nor where nothing is stored.
    let mut other = version("p", 14, DATA);
    other.ts = Timestamp(14);
    assert_eq!(
        db.put_object_if(&other, Timestamp(13)).unwrap(),
        Applied::Stale
    );
}

#[test]
fn container_counters_follow_listing_rows_overwrites_and_tombstones() {
    let (_d, db) = open_with_container();
    let counts = || {
        let c = db.get_container("a", "c").unwrap().unwrap();
        let a = db.get_account("a").unwrap().unwrap();
        assert_eq!(
            (a.object_count, a.bytes_used),
            (c.object_count, c.bytes_used)
        );
        (c.object_count, c.bytes_used)
    };
    db.put_object(&version("x", 10, LISTING)).unwrap();
    assert_eq!(counts(), (1, 101));
    // The data of the same version completes the row without counting it twice.
    db.put_object(&version("x", 10, DATA)).unwrap();
    assert_eq!(counts(), (1, 101));
    db.put_object(&version("y", 11, DATA)).unwrap();
    assert_eq!(counts(), (2, 101 + 111));
    db.put_object(&version("x", 12, DATA)).unwrap();
    assert_eq!(counts(), (2, 121 + 111));
    db.put_object(&version("y", 13, TOMBSTONE)).unwrap();
    assert_eq!(counts(), (1, 121));
    // Tombstones of unknown objects count nothing.
    db.put_object(&version("z", 13, TOMBSTONE)).unwrap();
    assert_eq!(counts(), (1, 121));
    assert!(db.forget_object(&version("x", 12, DATA)).unwrap());
    assert_eq!(counts(), (0, 0));
}

/// Regression: a delete and a write of the same tick were resolved by arrival order, so two
/// replicas that received them in opposite orders kept different rows forever (the
/// replicator only pushed strictly newer timestamps). The tombstone now wins everywhere.
#[test]
fn a_delete_and_a_write_of_the_same_tick_converge_in_either_order() {
    for kind in [DATA, LISTING] {
        let (_d1, one) = open_with_container();
        let (_d2, two) = open_with_container();
        let live = version("o", 10, kind);
        let dead = version("o", 10, TOMBSTONE);
        one.put_object(&live).unwrap();
        assert_eq!(
            one.put_object(&dead).unwrap(),
            Applied::Yes(Some(live.clone()))
        );
        two.put_object(&dead).unwrap();
        assert_eq!(two.put_object(&live).unwrap(), Applied::Stale);
        assert_eq!(one.get_object("a", "c", "o").unwrap(), Some(dead.clone()));
        assert_eq!(two.get_object("a", "c", "o").unwrap(), Some(dead));
        assert_eq!(
            one.get_container("a", "c").unwrap().unwrap().object_count,
            0
        );
    }
}

/// Regression: account/container rows of one timestamp with different contents (a node that
/// missed one POST, then received the next) never converged: a peer's row applied only if
/// strictly newer. Now the merge's content tie-break picks the same row on every node.
#[test]
fn container_rows_of_one_timestamp_with_different_metadata_converge() {
    let (_d1, one) = open_with_container();
    let (_d2, two) = open_with_container();
    let acl = ("x-container-read".to_owned(), Some(".r:*".to_owned()));
    let tag = ("x-container-meta-tag".to_owned(), Some("t".to_owned()));
    // `one` got the ACL POST, `two` missed it; both got the next POST.
    one.post_container("a", "c", Timestamp(5), std::slice::from_ref(&acl))
        .unwrap();
    one.post_container("a", "c", Timestamp(6), std::slice::from_ref(&tag))
        .unwrap();
    two.post_container("a", "c", Timestamp(6), std::slice::from_ref(&tag))
        .unwrap();
    let container = |db: &outpost_origin::db::Db| -> MetaRow {
        db.meta_rows()
            .unwrap()
            .into_iter()
            .find(|r| r.container.as_deref() == Some("c"))
            .unwrap()
    };
    assert_ne!(container(&one).meta, container(&two).meta);
    one.merge_meta(&two.meta_rows().unwrap()).unwrap();
    two.merge_meta(&one.meta_rows().unwrap()).unwrap();
    assert_eq!(container(&one), container(&two));
}

/// A container tombstone beats a live container row of the same timestamp.
#[test]
fn a_container_delete_wins_over_a_write_of_the_same_tick() {
    let (_d, db) = open_with_container();
    let row = |deleted| MetaRow {
        account: "a".into(),
        container: Some("c".into()),
        ts: 50,
        deleted,
        meta: Default::default(),
        token_keys: String::new(),
        stamps: Default::default(),
    };
    assert_eq!(db.merge_meta(&[row(true)]).unwrap(), 1);
    // The write's update stamp is kept (the merge is a join), the row stays deleted, and
    // sending either again changes nothing.
    db.merge_meta(&[row(false)]).unwrap();
    assert_eq!(db.merge_meta(&[row(false), row(true)]).unwrap(), 0);
    assert!(db.get_container("a", "c").unwrap().is_none());
}
