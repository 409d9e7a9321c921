//! Two nodes' databases exchanging object rows the way the replicator does, without HTTP:
//! rows of a partition, the push decision of `db::merge::needs_push`, and the pushed version
//! applied with `put_object` (data towards a primary when we hold it, else a listing row).

// Test helpers outside #[test] fns: a panic is how these tests fail (clippy.toml allows
// unwrap only inside #[test] fns themselves).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use outpost_origin::cluster::replicator::{suffix_hashes, View};
use outpost_origin::db::merge::{needs_push, Version};
use outpost_origin::db::{Applied, Db, ReplicaRow};
use proptest::prelude::*;

use super::{open_with_container, version};

const PART: u32 = 7;

/// One direction of one pass: pushes from `from` what `to` needs. Returns how many applied.
fn push_all(from: &Db, to: &Db, with_data: bool) -> usize {
    let theirs: BTreeMap<String, ReplicaRow> = to
        .rows_in_partition(PART)
        .unwrap()
        .iter()
        .map(|r| (r.name.clone(), ReplicaRow::of(r)))
        .collect();
    let mut applied = 0;
    for row in from.rows_in_partition(PART).unwrap() {
        if !needs_push(&row, theirs.get(&row.name), with_data) {
            continue;
        }
        let mut sent = row.clone();
        if !row.deleted {
            sent.listing_only = !with_data || row.listing_only;
        }
        if let Applied::Yes(_) = to.put_object(&sent).unwrap() {
            applied += 1;
        }
    }
    applied
}

fn versions(db: &Db, with_data: bool) -> BTreeMap<String, Version> {
    db.rows_in_partition(PART)
        .unwrap()
        .iter()
        .map(|r| {
            let v = Version::of(r);
            (
                r.name.clone(),
                if with_data { v } else { v.ignoring_data() },
            )
        })
        .collect()
}

fn arb_history() -> impl Strategy<Value = Vec<(&'static str, u64, u8)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["o1", "o2", "o3"]),
            10u64..14,
            0u8..3,
        ),
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever each node saw, one pass each way leaves both with the greatest version of
    /// every object, equal suffix hashes, and nothing left to push.
    #[test]
    fn replicas_converge_both_ways(
        one_saw in arb_history(),
        two_saw in arb_history(),
        with_data in any::<bool>(),
    ) {
        let (_d1, one) = open_with_container();
        let (_d2, two) = open_with_container();
        for &(n, ts, k) in &one_saw {
            one.put_object(&version(n, ts, k)).unwrap();
        }
        for &(n, ts, k) in &two_saw {
            two.put_object(&version(n, ts, k)).unwrap();
        }
        // The greatest version of each object over both histories.
        let mut want: BTreeMap<String, Version> = BTreeMap::new();
        for &(n, ts, k) in one_saw.iter().chain(&two_saw) {
            let v = Version::of(&version(n, ts, k));
            let v = if with_data { v } else { v.ignoring_data() };
            let e = want.entry(n.to_owned()).or_insert(v);
            *e = (*e).max(v);
        }
        push_all(&one, &two, with_data);
        push_all(&two, &one, with_data);
        prop_assert_eq!(versions(&one, with_data), want.clone());
        prop_assert_eq!(versions(&two, with_data), want);
        let view = if with_data { View::Data } else { View::Listing };
        let rows = |db: &Db| db.rows_in_partition(PART).unwrap();
        prop_assert_eq!(
            suffix_hashes(&rows(&one), view, false),
            suffix_hashes(&rows(&two), view, false)
        );
        prop_assert_eq!(push_all(&one, &two, with_data), 0);
        prop_assert_eq!(push_all(&two, &one, with_data), 0);
        // Counters agree once the rows do.
        let count = |db: &Db| db.get_container("a", "c").unwrap().unwrap().object_count;
        prop_assert_eq!(count(&one), count(&two));
    }
}

/// Towards a primary, our data completes its listing row; towards a listing replica the data
/// never travels, so a handoff that went home stays listing-only.
#[test]
fn data_completes_a_primary_but_never_a_listing_replica() {
    let (_d1, holder) = open_with_container();
    let (_d2, other) = open_with_container();
    holder.put_object(&version("o", 10, 1)).unwrap();
    other.put_object(&version("o", 10, 0)).unwrap();
    assert_eq!(push_all(&holder, &other, false), 0);
    assert!(
        other
            .get_object("a", "c", "o")
            .unwrap()
            .unwrap()
            .listing_only
    );
    assert_eq!(push_all(&holder, &other, true), 1);
    assert!(
        !other
            .get_object("a", "c", "o")
            .unwrap()
            .unwrap()
            .listing_only
    );
    // Listing-view hashes ignore where the data is; data-view hashes as a primary do not.
    let rows = |db: &Db| db.rows_in_partition(PART).unwrap();
    let (mut listing, data) = (version("o", 10, 0), version("o", 10, 1));
    listing.listing_only = true;
    assert_eq!(
        suffix_hashes(std::slice::from_ref(&listing), View::Listing, false),
        suffix_hashes(&rows(&holder), View::Listing, false)
    );
    assert_ne!(
        suffix_hashes(std::slice::from_ref(&listing), View::Data, false),
        suffix_hashes(std::slice::from_ref(&data), View::Data, false)
    );
    // `as_primary` hashes what a primary should hold: data for every live row.
    assert_eq!(
        suffix_hashes(std::slice::from_ref(&listing), View::Data, true),
        suffix_hashes(std::slice::from_ref(&data), View::Data, false)
    );
}

/// Account and container rows pulled from each other converge both ways.
#[test]
fn meta_rows_converge_both_ways() {
    let (_d1, one) = open_with_container();
    let (_d2, two) = open_with_container();
    let t = outpost_origin::hlc::Timestamp;
    one.put_container(
        "a",
        "x",
        t(20),
        &[("x-container-read".into(), Some(".r:*".into()))],
    )
    .unwrap();
    two.put_container("a", "y", t(21), &[]).unwrap();
    two.post_container(
        "a",
        "c",
        t(22),
        &[("x-container-meta-k".into(), Some("v".into()))],
    )
    .unwrap();
    one.delete_container("a", "c", t(23)).unwrap();
    one.merge_meta(&two.meta_rows().unwrap()).unwrap();
    two.merge_meta(&one.meta_rows().unwrap()).unwrap();
    let sorted = |db: &Db| {
        let mut v = db.meta_rows().unwrap();
        v.sort_by(|a, b| (&a.account, &a.container).cmp(&(&b.account, &b.container)));
        v
    };
    assert_eq!(sorted(&one), sorted(&two));
    assert!(
        two.get_container("a", "c").unwrap().is_none(),
        "the later delete won"
    );
    assert_eq!(
        two.get_container("a", "x").unwrap().unwrap().meta["x-container-read"],
        ".r:*"
    );
    assert!(one.get_container("a", "y").unwrap().is_some());
    assert_eq!(one.merge_meta(&two.meta_rows().unwrap()).unwrap(), 0);
}
