//! The merge rules of replicated rows, as pure functions over plain values.
//!
//! Every node keeps, per object, account and container, one row: the greatest version it has
//! seen. The database ([`crate::db::Db::put_object`], [`crate::db::Db::merge_meta`]) and the
//! replicator's push decision ([`needs_push`]) ask these functions which of two rows wins;
//! none of them compares timestamps on its own.
//!
//! # The laws
//! [`Merge::merge`] is the join of a semilattice: for all rows `a`, `b`, `c` of one object,
//! - commutative: `a ⊔ b = b ⊔ a`,
//! - associative: `(a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)`,
//! - idempotent: `a ⊔ a = a`.
//!
//! So replicas that receive the same versions, in any order, any number of times, end with the
//! same row: that is what lets the replicator and cross-DC sync retry and re-send freely.
//! The join is "take the greater under a total order", which gives all three laws at once;
//! the total orders are below. `proptest` checks the laws and checks a real
//! [`crate::db::Db`] against a fold of these functions (`origin/tests/db.rs`).
//!
//! # Object versions: [`Version`]
//! Ordered by hybrid-logical-clock timestamp, then by [`Kind`] at equal timestamps:
//! `Listing < Data < Tombstone`.
//! - `Listing < Data`: a listing-only row (cluster mode: this node knows the version but holds
//!   no data) and the data row of the *same* version are one version in two states; the data
//!   row wins, so a replicator completing a copy replaces the listing row, and a listing row
//!   never downgrades a node that holds the data.
//! - `Data < Tombstone`: a delete and a write issued at the same tick (two nodes or two DCs)
//!   resolve to the delete everywhere, whatever order they arrive in.
//!
//! Version identity: a version is named by `(timestamp, kind)`. The rest of the row (ETag,
//! size, metadata) is not compared: data files are named by the timestamp alone
//! (`objects/<part>/<hash>/<ts>.data`), so two different contents at one tick cannot both be
//! kept, and the clock never issues one tick twice on a node. Rows with equal versions are
//! interchangeable (the incumbent stays, so a re-sent version is [`Applied::Stale`]). The laws
//! hold on versions; where two writers really picked the same tick for different contents, the
//! first to arrive stays on each node (a known limit, see `docs/ARCHITECTURE.md`).
//!
//! ## Versions derived from the current one (POST)
//! A POST makes a new version (new timestamp, same data, new metadata) from the current row.
//! [`derives_from`] adds one condition on top of newest-wins: the current row must still be
//! the live version at `base`, else the derived version is stale even if its timestamp is
//! greater (a PUT that replaced `base` meanwhile keeps its data; the POST starts over).
//! This is a precondition of a local write, not part of the join: replicas receive the POST's
//! result as an ordinary version.
//!
//! # Account and container rows: [`MetaRow`]
//! Merged key by key: every metadata key carries the timestamp of its last write, removed
//! keys stay as stamped tombstones, and a row delete clears every older key
//! ([`super::stamps`], where the laws are written down and property-tested). A node that
//! missed a POST gets its keys from any peer that has them. [`MetaRow::merge_order`] (the
//! whole-row order of schema 2) remains only as a total order for sorting.
//!
//! # Container counters
//! Not merged: object count and bytes are derived on each node from its own object rows, in
//! the transaction that changes them.
//!
//! [`Applied::Stale`]: crate::db::Applied::Stale

use std::cmp::Ordering;

use super::{MetaRow, ObjectRow, ReplicaRow};
use crate::hlc::Timestamp;

/// A value that replicas merge. Implementations must make [`Merge::merge`] commutative,
/// associative and idempotent (see the module docs); [`Merge::supersedes`] is its strict
/// order: `a.supersedes(b)` exactly when `b ⊔ a = a ≠ b` as versions.
pub trait Merge: Clone {
    /// True if `self` wins over `other` (strictly greater in the merge order).
    fn supersedes(&self, other: &Self) -> bool;

    /// `self ⊔ other`: keeps the greater of the two.
    fn merge(&mut self, other: &Self) {
        if other.supersedes(self) {
            *self = other.clone();
        }
    }
}

/// What a row is, in the order equal timestamps are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Live, but this node holds no data for it (cluster mode).
    Listing,
    /// Live, with its data on this node.
    Data,
    /// Deleted.
    Tombstone,
}

impl Kind {
    /// The kind of a row with these flags (a tombstone's `listing_only` does not matter).
    pub fn of(deleted: bool, has_data: bool) -> Kind {
        match (deleted, has_data) {
            (true, _) => Kind::Tombstone,
            (false, true) => Kind::Data,
            (false, false) => Kind::Listing,
        }
    }
}

/// An object version as the merge orders it: timestamp, then kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// When it was written.
    pub ts: Timestamp,
    /// What it is; breaks ties between equal timestamps.
    pub kind: Kind,
}

impl Version {
    /// The version of a local row.
    pub fn of(r: &ObjectRow) -> Version {
        Version {
            ts: r.ts,
            kind: Kind::of(r.deleted, !r.listing_only),
        }
    }

    /// The version of a peer's row as the replication wire carries it.
    pub fn of_replica(r: &ReplicaRow) -> Version {
        Version {
            ts: Timestamp(r.ts),
            kind: Kind::of(r.deleted, r.has_data),
        }
    }

    /// The version as a node that does not care where the data is sees it: a listing row and
    /// a data row of one timestamp are equal.
    pub fn ignoring_data(self) -> Version {
        let kind = match self.kind {
            Kind::Data => Kind::Listing,
            k => k,
        };
        Version { kind, ..self }
    }
}

impl Merge for ObjectRow {
    fn supersedes(&self, other: &Self) -> bool {
        Version::of(self) > Version::of(other)
    }
}

/// Newest wins: true if `incoming` replaces `current` (none: anything is applied).
pub fn supersedes<T: Merge>(incoming: &T, current: Option<&T>) -> bool {
    current.is_none_or(|c| incoming.supersedes(c))
}

/// The precondition of a version derived from the one at `base` (a POST): `current` must
/// still be that live version.
pub fn derives_from(current: Option<&ObjectRow>, base: Timestamp) -> bool {
    current.is_some_and(|c| c.ts == base && !c.deleted)
}

/// The replicator's decision: does a peer holding `theirs` (or nothing) need our row `ours`?
///
/// `with_data` compares as towards a primary, where holding the data counts (a listing row
/// there is completed by our data row); otherwise only versions count, so data is never
/// pushed back to a node that handed it home.
pub fn needs_push(ours: &ObjectRow, theirs: Option<&ReplicaRow>, with_data: bool) -> bool {
    let Some(theirs) = theirs else {
        return true;
    };
    let (o, t) = (Version::of(ours), Version::of_replica(theirs));
    if with_data {
        o > t
    } else {
        o.ignoring_data() > t.ignoring_data()
    }
}

impl MetaRow {
    /// Token keys as compared: an absent value is the empty list.
    fn keys_for_order(&self) -> &str {
        if self.token_keys.is_empty() {
            "[]"
        } else {
            &self.token_keys
        }
    }

    /// The merge order of two rows of one account or container.
    pub fn merge_order(&self, other: &MetaRow) -> Ordering {
        self.ts
            .cmp(&other.ts)
            .then(self.deleted.cmp(&other.deleted))
            .then_with(|| self.meta.cmp(&other.meta))
            .then_with(|| self.keys_for_order().cmp(other.keys_for_order()))
    }
}

/// Account and container rows merge key by key ([`super::stamps::merge`], whose laws are
/// written and property-tested there); `a.supersedes(b)` means `a` brings `b` something new.
impl Merge for MetaRow {
    fn supersedes(&self, other: &Self) -> bool {
        super::stamps::merge(other, self) != super::stamps::normalize(other)
    }

    fn merge(&mut self, other: &Self) {
        *self = super::stamps::merge(self, other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Rows of one object whose content is a function of the version (version identity).
    fn object(ts: u64, kind: u8) -> ObjectRow {
        let (deleted, listing_only) = match kind % 3 {
            0 => (false, true),
            1 => (false, false),
            _ => (true, false),
        };
        ObjectRow {
            account: "a".into(),
            container: "c".into(),
            name: "o".into(),
            ts: Timestamp(ts),
            deleted,
            size: if deleted { 0 } else { ts * 7 },
            etag: if deleted {
                String::new()
            } else {
                format!("{ts:032x}")
            },
            listing_only,
            ..ObjectRow::default()
        }
    }

    fn arb_object() -> impl Strategy<Value = ObjectRow> {
        // Few timestamps, so equal ones (the tie-breaks) come up often.
        (1u64..6, 0u8..3).prop_map(|(ts, k)| object(ts, k))
    }

    fn arb_meta() -> impl Strategy<Value = MetaRow> {
        (
            1u64..5,
            any::<bool>(),
            prop::collection::btree_map("[ab]", "[xy]", 0..3),
            prop::sample::select(vec!["", "[]", "[{\"id\":\"k\"}]"]),
        )
            .prop_map(|(ts, deleted, meta, keys)| MetaRow {
                account: "a".into(),
                container: None,
                ts,
                deleted,
                meta,
                token_keys: keys.into(),
                stamps: Default::default(),
            })
    }

    fn join<T: Merge>(a: &T, b: &T) -> T {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    /// Equality of merge results as the order sees them.
    fn same_object(a: &ObjectRow, b: &ObjectRow) -> bool {
        Version::of(a) == Version::of(b) && a == b
    }

    fn same_meta(a: &MetaRow, b: &MetaRow) -> bool {
        crate::db::stamps::normalize(a) == crate::db::stamps::normalize(b)
    }

    proptest! {
        #[test]
        fn object_merge_is_commutative(a in arb_object(), b in arb_object()) {
            prop_assert!(same_object(&join(&a, &b), &join(&b, &a)));
        }

        #[test]
        fn object_merge_is_associative(a in arb_object(), b in arb_object(), c in arb_object()) {
            prop_assert!(same_object(&join(&join(&a, &b), &c), &join(&a, &join(&b, &c))));
        }

        #[test]
        fn object_merge_is_idempotent(a in arb_object(), b in arb_object()) {
            prop_assert!(same_object(&join(&a, &a), &a));
            // Re-sending a merged version changes nothing either.
            let ab = join(&a, &b);
            prop_assert!(same_object(&join(&ab, &b), &ab));
        }

        #[test]
        fn object_merge_keeps_the_greatest_version(a in arb_object(), b in arb_object()) {
            let m = join(&a, &b);
            prop_assert_eq!(Version::of(&m), Version::of(&a).max(Version::of(&b)));
        }

        #[test]
        fn meta_merge_is_commutative(a in arb_meta(), b in arb_meta()) {
            prop_assert!(same_meta(&join(&a, &b), &join(&b, &a)));
        }

        #[test]
        fn meta_merge_is_associative(a in arb_meta(), b in arb_meta(), c in arb_meta()) {
            prop_assert!(same_meta(&join(&join(&a, &b), &c), &join(&a, &join(&b, &c))));
        }

        #[test]
        fn meta_merge_is_idempotent(a in arb_meta()) {
            prop_assert!(same_meta(&join(&a, &a), &a));
            prop_assert!(!a.supersedes(&a));
        }

        /// After each side pushes what the other needs, both hold the same version (as the
        /// comparison in use sees it), whatever each started with.
        #[test]
        fn pushes_converge_two_replicas(a in arb_object(), b in arb_object(), with_data in any::<bool>()) {
            let view = |r: &ObjectRow| if with_data { Version::of(r) } else { Version::of(r).ignoring_data() };
            let (mut x, mut y) = (a.clone(), b.clone());
            if needs_push(&x, Some(&ReplicaRow::of(&y)), with_data) {
                y.merge(&x);
            }
            if needs_push(&y, Some(&ReplicaRow::of(&x)), with_data) {
                x.merge(&y);
            }
            prop_assert_eq!(view(&x), view(&y));
            prop_assert_eq!(view(&x), view(&a).max(view(&b)));
        }
    }

    #[test]
    fn equal_timestamps_resolve_listing_then_data_then_tombstone() {
        let (l, d, t) = (object(5, 0), object(5, 1), object(5, 2));
        assert!(d.supersedes(&l));
        assert!(t.supersedes(&d));
        assert!(t.supersedes(&l));
        assert!(!l.supersedes(&d));
        assert!(!d.supersedes(&t));
        // A later timestamp beats any kind.
        assert!(object(6, 0).supersedes(&t));
    }

    #[test]
    fn a_re_sent_version_is_not_applied() {
        for k in 0..3 {
            assert!(!supersedes(&object(5, k), Some(&object(5, k))));
        }
        assert!(supersedes(&object(5, 0), None));
    }

    #[test]
    fn a_post_applies_only_over_the_live_version_it_was_derived_from() {
        assert!(derives_from(Some(&object(5, 1)), Timestamp(5)));
        // A listing row is POSTed to as well (cluster mode, metadata only).
        assert!(derives_from(Some(&object(5, 0)), Timestamp(5)));
        assert!(!derives_from(Some(&object(6, 1)), Timestamp(5)));
        assert!(!derives_from(Some(&object(5, 2)), Timestamp(5)));
        assert!(!derives_from(None, Timestamp(5)));
    }

    #[test]
    fn push_decisions_towards_primaries_and_listing_replicas() {
        let (l, d, t) = (object(5, 0), object(5, 1), object(5, 2));
        let wire = ReplicaRow::of;
        // Towards a primary: our data completes its listing row, not the other way round.
        assert!(needs_push(&d, Some(&wire(&l)), true));
        assert!(!needs_push(&l, Some(&wire(&d)), true));
        // Towards a listing replica, data is never pushed over the same version.
        assert!(!needs_push(&d, Some(&wire(&l)), false));
        // Tombstones win ties in both views; older rows never travel.
        assert!(needs_push(&t, Some(&wire(&d)), false));
        assert!(needs_push(&t, Some(&wire(&l)), true));
        assert!(!needs_push(&d, Some(&wire(&t)), true));
        assert!(!needs_push(&object(4, 2), Some(&wire(&l)), true));
        assert!(needs_push(&l, None, false));
    }

    #[test]
    fn meta_rows_resolve_equal_timestamps_by_tombstone_then_content() {
        let row = |deleted: bool, v: &str| MetaRow {
            account: "a".into(),
            container: Some("c".into()),
            ts: 9,
            deleted,
            meta: [("x-container-read".to_owned(), v.to_owned())].into(),
            token_keys: String::new(),
            stamps: Default::default(),
        };
        assert!(row(true, "a").supersedes(&row(false, "b")));
        assert!(row(false, "b").supersedes(&row(false, "a")));
        assert!(!row(false, "a").supersedes(&row(false, "a")));
        // An absent token key list and an empty one are the same row.
        let mut empty = row(false, "a");
        empty.token_keys = "[]".into();
        assert!(same_meta(&empty, &row(false, "a")));
    }
}
