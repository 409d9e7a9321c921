//! Per-key merge of account and container rows: every metadata key carries the timestamp of
//! its last write, removed keys stay as stamped tombstones, and two rows merge key by key
//! (newest wins per key) instead of one row replacing the other.
//!
//! # The row as a state
//! [`MetaRow::stamps`] maps each metadata key (set or removed) to the timestamp of its last
//! write, plus three reserved entries (`@` is not a header character, so no key collides):
//! - [`LIVE`]: the last creation or update of the row (PUT, POST);
//! - [`CLEARED`]: the last delete of the row: every key stamped at or before it is gone;
//! - [`TOKEN_KEYS`] (accounts): the last change of the token key list, merged as one value.
//!
//! A key in the stamps but not in `meta` is a tombstone (removed at its stamp). The row is
//! deleted when `CLEARED >= LIVE` (a delete and an update of one tick: the delete wins, as for
//! objects). `ts` is the greatest stamp. A row without stamps (a peer or database of the
//! whole-row format) reads as every key written at its `ts` ([`normalize`]).
//!
//! # The laws
//! [`merge`] is a join: `LIVE` and `CLEARED` take the maximum, each key the greater of
//! `(stamp, tombstone, value)` (a removal beats a write of the same tick; equal stamps with
//! different values resolve by value), then keys at or before `CLEARED` are dropped. Each
//! part is a maximum and the drop only depends on the maximum, so the result is commutative,
//! associative and idempotent on normalized rows (property-tested below), and replicas and
//! DCs that exchange rows in any order end with the same row. Concurrent changes of different
//! keys in two DCs both survive; a key removed in one DC after it was set in the other stays
//! removed.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::{Meta, MetaRow};

/// Stamp of the last creation or update of the row.
pub const LIVE: &str = "@live";
/// Stamp of the last delete of the row.
pub const CLEARED: &str = "@cleared";
/// Stamp of the last change of an account's token key list.
pub const TOKEN_KEYS: &str = "@token_keys";

fn is_reserved(k: &str) -> bool {
    k.starts_with('@')
}

/// The row with explicit stamps for everything (see the module docs), keys at or before the
/// last delete dropped, and the flags and `ts` derived from the stamps.
pub fn normalize(r: &MetaRow) -> MetaRow {
    let mut stamps = r.stamps.clone();
    for k in r.meta.keys() {
        stamps.entry(k.clone()).or_insert(r.ts);
    }
    stamps
        .entry(LIVE.to_owned())
        .or_insert(if r.deleted { 0 } else { r.ts });
    stamps
        .entry(CLEARED.to_owned())
        .or_insert(if r.deleted { r.ts } else { 0 });
    let mut token_keys = r.token_keys.clone();
    if r.container.is_none() {
        stamps.entry(TOKEN_KEYS.to_owned()).or_insert(r.ts);
        if token_keys.is_empty() {
            token_keys = "[]".into();
        }
    } else {
        token_keys.clear();
    }
    finish(r, stamps, r.meta.clone(), token_keys)
}

/// Drops what the last delete covers and derives `deleted` and `ts`.
fn finish(
    like: &MetaRow,
    mut stamps: BTreeMap<String, u64>,
    mut meta: Meta,
    mut token_keys: String,
) -> MetaRow {
    let cleared = stamps.get(CLEARED).copied().unwrap_or(0);
    let live = stamps.get(LIVE).copied().unwrap_or(0);
    stamps.retain(|k, ts| is_reserved(k) || *ts > cleared);
    meta.retain(|k, _| stamps.contains_key(k));
    if like.container.is_none() && stamps.get(TOKEN_KEYS).is_some_and(|&t| t <= cleared) {
        token_keys = "[]".into();
    }
    let ts = stamps.values().copied().max().unwrap_or(0);
    MetaRow {
        account: like.account.clone(),
        container: like.container.clone(),
        ts,
        deleted: cleared >= live,
        meta,
        token_keys,
        stamps,
    }
}

/// `a ⊔ b`, key by key (see the module docs). The result is normalized.
pub fn merge(a: &MetaRow, b: &MetaRow) -> MetaRow {
    let (a, b) = (normalize(a), normalize(b));
    let mut stamps = BTreeMap::new();
    for k in [LIVE, CLEARED] {
        stamps.insert(k.to_owned(), a.stamps[k].max(b.stamps[k]));
    }
    let keys: BTreeSet<&String> = a
        .stamps
        .keys()
        .chain(b.stamps.keys())
        .filter(|k| !is_reserved(k))
        .collect();
    let mut meta = Meta::new();
    for k in keys {
        fn side<'r>(r: &'r MetaRow, k: &str) -> Option<(u64, Option<&'r String>)> {
            r.stamps.get(k).map(|&t| (t, r.meta.get(k)))
        }
        let win = match (side(&a, k), side(&b, k)) {
            (Some(x), Some(y)) => {
                if key_order(x, y) == Ordering::Less {
                    y
                } else {
                    x
                }
            }
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => continue,
        };
        stamps.insert(k.clone(), win.0);
        if let Some(v) = win.1 {
            meta.insert(k.clone(), v.clone());
        }
    }
    let mut token_keys = String::new();
    if a.container.is_none() {
        let (ta, tb) = (a.stamps[TOKEN_KEYS], b.stamps[TOKEN_KEYS]);
        let pick_b = (tb, &b.token_keys) > (ta, &a.token_keys);
        stamps.insert(TOKEN_KEYS.to_owned(), ta.max(tb));
        token_keys = if pick_b {
            b.token_keys.clone()
        } else {
            a.token_keys.clone()
        };
    }
    finish(&a, stamps, meta, token_keys)
}

/// The order of two writes of one key: stamp, then a removal over a value, then the value.
fn key_order(x: (u64, Option<&String>), y: (u64, Option<&String>)) -> Ordering {
    x.0.cmp(&y.0)
        .then_with(|| y.1.is_some().cmp(&x.1.is_some()))
        .then_with(|| x.1.cmp(&y.1))
}

/// A local update at `ts` (a PUT or POST of the row: `updates` sets or, with `None`, removes
/// keys; `token_keys` replaces the account's list) merged into the current row.
pub fn write(
    cur: &MetaRow,
    ts: u64,
    updates: &[(String, Option<String>)],
    token_keys: Option<&str>,
) -> MetaRow {
    let mut delta = MetaRow {
        ts,
        deleted: false,
        meta: Meta::new(),
        stamps: BTreeMap::from([(LIVE.to_owned(), ts), (CLEARED.to_owned(), 0)]),
        token_keys: String::new(),
        ..cur.clone()
    };
    for (k, v) in updates {
        delta.stamps.insert(k.clone(), ts);
        if let Some(v) = v {
            delta.meta.insert(k.clone(), v.clone());
        }
    }
    if cur.container.is_none() {
        match token_keys {
            Some(t) => {
                delta.stamps.insert(TOKEN_KEYS.to_owned(), ts);
                delta.token_keys = t.to_owned();
            }
            None => {
                delta.stamps.insert(TOKEN_KEYS.to_owned(), 0);
            }
        }
    }
    merge(cur, &delta)
}

/// A local delete of the row at `ts`, merged into the current row.
pub fn delete(cur: &MetaRow, ts: u64) -> MetaRow {
    let mut delta = MetaRow {
        ts,
        deleted: true,
        meta: Meta::new(),
        stamps: BTreeMap::from([(LIVE.to_owned(), 0), (CLEARED.to_owned(), ts)]),
        token_keys: String::new(),
        ..cur.clone()
    };
    if cur.container.is_none() {
        delta.stamps.insert(TOKEN_KEYS.to_owned(), 0);
    }
    merge(cur, &delta)
}

/// A row that does not exist yet, for [`write`] to create.
pub fn absent(account: &str, container: Option<&str>) -> MetaRow {
    MetaRow {
        account: account.to_owned(),
        container: container.map(str::to_owned),
        ts: 0,
        deleted: true,
        meta: Meta::new(),
        token_keys: String::new(),
        stamps: BTreeMap::from([(LIVE.to_owned(), 0), (CLEARED.to_owned(), 0)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn container() -> MetaRow {
        absent("a", Some("c"))
    }

    fn set(k: &str, v: &str) -> (String, Option<String>) {
        (k.to_owned(), Some(v.to_owned()))
    }

    fn unset(k: &str) -> (String, Option<String>) {
        (k.to_owned(), None)
    }

    #[test]
    fn concurrent_changes_of_different_keys_both_survive() {
        let base = write(&container(), 10, &[set("x-read", "r1")], None);
        let dc1 = write(&base, 20, &[set("x-cors", "https://a")], None);
        let dc2 = write(&base, 21, &[set("x-web-index", "index.html")], None);
        let m = merge(&dc1, &dc2);
        assert_eq!(m, merge(&dc2, &dc1));
        assert_eq!(m.meta.len(), 3, "{m:?}");
        assert_eq!(m.ts, 21);
        assert!(!m.deleted);
    }

    #[test]
    fn a_removed_key_stays_removed_and_a_newer_set_revives_it() {
        let base = write(&container(), 10, &[set("x-read", "r1")], None);
        let removed = write(&base, 20, &[unset("x-read")], None);
        let m = merge(&base, &removed);
        assert!(!m.meta.contains_key("x-read"));
        assert_eq!(m.stamps["x-read"], 20, "the removal is a stamped tombstone");
        let again = write(&base, 30, &[set("x-read", "r2")], None);
        assert_eq!(merge(&m, &again).meta["x-read"], "r2");
        // A removal and a write of one tick: the removal wins either way.
        let w = write(&base, 20, &[set("x-read", "r3")], None);
        assert!(!merge(&w, &removed).meta.contains_key("x-read"));
        assert!(!merge(&removed, &w).meta.contains_key("x-read"));
    }

    #[test]
    fn a_delete_clears_every_older_key_and_a_recreation_starts_empty() {
        let base = write(&container(), 10, &[set("x-read", "r1")], None);
        let gone = delete(&base, 20);
        assert!(gone.deleted && gone.meta.is_empty());
        // A peer that never saw the delete still has the old key: it does not come back.
        assert!(merge(&gone, &base).deleted);
        let again = write(&gone, 30, &[set("x-cors", "*")], None);
        let m = merge(&again, &base);
        assert!(!m.deleted);
        assert_eq!(m.meta.keys().collect::<Vec<_>>(), ["x-cors"]);
        // A delete and a write of one tick: the delete wins.
        assert!(merge(&write(&base, 20, &[], None), &gone).deleted);
    }

    #[test]
    fn whole_row_rows_read_as_every_key_written_at_their_timestamp() {
        let old = MetaRow {
            ts: 7,
            meta: [("x-read".to_owned(), "r".to_owned())].into(),
            deleted: false,
            stamps: BTreeMap::new(),
            ..container()
        };
        let n = normalize(&old);
        assert_eq!(n.stamps["x-read"], 7);
        assert_eq!(n.stamps[LIVE], 7);
        assert_eq!(normalize(&n), n);
        let newer = write(&n, 9, &[set("x-cors", "*")], None);
        assert_eq!(merge(&old, &newer).meta.len(), 2);
    }

    #[test]
    fn token_keys_merge_as_one_value() {
        let acct = write(&absent("a", None), 5, &[], Some("[{\"id\":\"k1\"}]"));
        let post = write(&acct, 6, &[set("x-account-meta-a", "1")], None);
        assert_eq!(post.token_keys, "[{\"id\":\"k1\"}]");
        let rotated = write(&acct, 7, &[], Some("[{\"id\":\"k2\"}]"));
        let m = merge(&post, &rotated);
        assert_eq!(m.token_keys, "[{\"id\":\"k2\"}]");
        assert_eq!(m.meta.len(), 1);
    }

    fn arb_row() -> impl Strategy<Value = MetaRow> {
        let op = (
            1u64..6,
            any::<bool>(),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["x-a", "x-b", "x-c"]),
                    prop::option::of("[xy]"),
                ),
                0..3,
            ),
        );
        (any::<bool>(), prop::collection::vec(op, 0..4)).prop_map(|(account, ops)| {
            let mut r = if account {
                absent("a", None)
            } else {
                container()
            };
            for (ts, del, ups) in ops {
                r = if del {
                    delete(&r, ts)
                } else {
                    let ups: Vec<(String, Option<String>)> =
                        ups.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                    let keys = (account && ts % 2 == 0).then(|| format!("[{ts}]"));
                    write(&r, ts, &ups, keys.as_deref())
                };
            }
            r
        })
    }

    /// Rows of one account or one container.
    fn same_kind(a: &MetaRow, b: &MetaRow) -> bool {
        a.container.is_none() == b.container.is_none()
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_row(), b in arb_row()) {
            prop_assume!(same_kind(&a, &b));
            prop_assert_eq!(merge(&a, &b), merge(&b, &a));
        }

        #[test]
        fn merge_is_associative(a in arb_row(), b in arb_row(), c in arb_row()) {
            prop_assume!(same_kind(&a, &b) && same_kind(&b, &c));
            prop_assert_eq!(merge(&merge(&a, &b), &c), merge(&a, &merge(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in arb_row(), b in arb_row()) {
            prop_assume!(same_kind(&a, &b));
            prop_assert_eq!(merge(&a, &a), normalize(&a));
            let ab = merge(&a, &b);
            prop_assert_eq!(merge(&ab, &b), ab.clone());
            prop_assert_eq!(normalize(&ab), ab);
        }
    }
}
