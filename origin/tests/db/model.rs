//! A real `Db` against the naive reference model: a fold of the pure merge.

// Test helpers outside #[test] fns: a panic is how these tests fail (clippy.toml allows
// unwrap only inside #[test] fns themselves).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use outpost_origin::db::merge::Merge;
use outpost_origin::db::{stamps, Applied, MetaRow, ObjectRow};
use proptest::prelude::*;

use super::{open, open_with_container, version};

/// Writes: (object name, timestamp, kind). Few names and ticks, so overwrites, duplicates and
/// equal timestamps of different kinds are common.
fn arb_writes() -> impl Strategy<Value = Vec<(&'static str, u64, u8)>> {
    prop::collection::vec(
        (prop::sample::select(vec!["o1", "o2"]), 10u64..16, 0u8..3),
        1..14,
    )
}

fn fold(writes: &[ObjectRow]) -> BTreeMap<String, ObjectRow> {
    let mut model: BTreeMap<String, ObjectRow> = BTreeMap::new();
    for w in writes {
        model
            .entry(w.name.clone())
            .and_modify(|cur| cur.merge(w))
            .or_insert_with(|| w.clone());
    }
    model
}

/// Checks the database's rows and counters against the model.
fn check(
    db: &outpost_origin::db::Db,
    model: &BTreeMap<String, ObjectRow>,
) -> Result<(), TestCaseError> {
    for (name, want) in model {
        let got = db.get_object("a", "c", name).unwrap();
        prop_assert_eq!(got.as_ref(), Some(want), "object {}", name);
    }
    let live: Vec<&ObjectRow> = model.values().filter(|r| !r.deleted).collect();
    let c = db.get_container("a", "c").unwrap().unwrap();
    prop_assert_eq!(c.object_count, live.len() as u64);
    prop_assert_eq!(c.bytes_used, live.iter().map(|r| r.size).sum::<u64>());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// One write at a time (each its own transaction), in the generated order.
    #[test]
    fn object_writes_in_any_order_end_as_the_fold_of_the_merge(writes in arb_writes()) {
        let (_d, db) = open_with_container();
        let rows: Vec<ObjectRow> = writes.iter().map(|&(n, ts, k)| version(n, ts, k)).collect();
        let mut model: BTreeMap<String, ObjectRow> = BTreeMap::new();
        for r in &rows {
            let before = model.get(&r.name).cloned();
            let applied = db.put_object(r).unwrap();
            let wins = outpost_origin::db::merge::supersedes(r, before.as_ref());
            // `Applied` says exactly whether the merge let the version in, and what it replaced.
            match applied {
                Applied::Yes(old) => {
                    prop_assert!(wins);
                    prop_assert_eq!(old, before);
                }
                Applied::Stale => prop_assert!(!wins),
            }
            model
                .entry(r.name.clone())
                .and_modify(|cur| cur.merge(r))
                .or_insert_with(|| r.clone());
        }
        prop_assert_eq!(&model, &fold(&rows));
        check(&db, &model)?;
    }

    /// The same versions, shuffled and batched (`put_objects`: one transaction), end the same.
    #[test]
    fn batched_and_reordered_writes_end_the_same(
        writes in arb_writes(),
        seed in any::<u64>(),
        split in 0usize..14,
    ) {
        let mut rows: Vec<ObjectRow> = writes.iter().map(|&(n, ts, k)| version(n, ts, k)).collect();
        let model = fold(&rows);
        // A permutation from the seed (a duplicate of the first write goes last).
        let mut s = seed | 1;
        for i in (1..rows.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            rows.swap(i, (s % (i as u64 + 1)) as usize);
        }
        rows.push(rows[0].clone());
        let (_d, db) = open_with_container();
        let split = split.min(rows.len());
        db.put_objects(&rows[..split]).unwrap();
        db.put_objects(&rows[split..]).unwrap();
        check(&db, &model)?;
    }
}

fn arb_meta_rows() -> impl Strategy<Value = Vec<MetaRow>> {
    let row = (
        prop::sample::select(vec![None, Some("c")]),
        10u64..14,
        any::<bool>(),
        prop::collection::btree_map("x-container-meta-[ab]", "[xy]", 0..3),
        prop::sample::select(vec!["", "[]"]),
    )
        .prop_map(|(container, ts, deleted, meta, keys)| MetaRow {
            account: "a".into(),
            container: container.map(Into::into),
            ts,
            deleted,
            meta,
            token_keys: if container.is_some() {
                String::new()
            } else {
                keys.into()
            },
            stamps: Default::default(),
        });
    prop::collection::vec(row, 1..10)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Account and container rows merged in any grouping and order (duplicates included) end
    /// as the fold of the pure merge.
    #[test]
    fn meta_rows_in_any_order_end_as_the_fold_of_the_merge(
        rows in arb_meta_rows(),
        split in 0usize..10,
        reverse in any::<bool>(),
    ) {
        let mut model: BTreeMap<Option<String>, MetaRow> = BTreeMap::new();
        for r in &rows {
            model
                .entry(r.container.clone())
                .and_modify(|cur| cur.merge(r))
                .or_insert_with(|| stamps::normalize(r));
        }
        let mut sent = rows.clone();
        if reverse {
            sent.reverse();
        }
        sent.extend(rows.iter().take(2).cloned());
        let (_d, db) = open();
        let split = split.min(sent.len());
        db.merge_meta(&sent[..split]).unwrap();
        db.merge_meta(&sent[split..]).unwrap();
        let got: BTreeMap<Option<String>, MetaRow> = db
            .meta_rows()
            .unwrap()
            .into_iter()
            .map(|r| (r.container.clone(), r))
            .collect();
        prop_assert_eq!(got.len(), model.len());
        for (k, want) in &model {
            let g = &got[k];
            prop_assert_eq!(stamps::normalize(g), stamps::normalize(want), "{:?}", k);
        }
    }
}

/// Applying what was already merged applies nothing (the replicator's steady state).
#[test]
fn merging_a_nodes_own_meta_rows_back_applies_nothing() {
    let (_d, db) = open_with_container();
    db.post_container(
        "a",
        "c",
        outpost_origin::hlc::Timestamp(9),
        &[("x-container-meta-k".into(), Some("v".into()))],
    )
    .unwrap();
    let seq = db.last_seq();
    assert_eq!(db.merge_meta(&db.meta_rows().unwrap()).unwrap(), 0);
    assert_eq!(
        db.last_seq(),
        seq,
        "no feed entry for a row that did not change"
    );
}
