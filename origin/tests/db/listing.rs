//! Listings through a real `Db` at their edges, against a naive model: filter, order, roll up,
//! limit in one pass over every live name.

// Test helpers outside #[test] fns: a panic is how these tests fail (clippy.toml allows
// unwrap only inside #[test] fns themselves).
#![allow(clippy::unwrap_used)]

use outpost_origin::db::{Db, Entry, ListParams};
use outpost_origin::hlc::Timestamp;

use super::{open_with_container, version};

/// Live names of the fixture (tombstones and an expired object are added besides).
const NAMES: &[&str] = &[
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "a/c",
    "a//d",
    "ab",
    "b",
    "b/x",
    "b/y",
    "\u{e9}",
    "\u{10FFFF}",
    "\u{10FFFF}/z",
];

fn fixture() -> (tempfile::TempDir, Db) {
    let (d, db) = open_with_container();
    for (i, n) in NAMES.iter().enumerate() {
        // `b/y` is a listing-only row: listed like any live row.
        let kind = if *n == "b/y" { 0 } else { 1 };
        db.put_object(&version(n, 10 + i as u64, kind)).unwrap();
    }
    db.put_object(&version("a/dead", 10, 1)).unwrap();
    db.put_object(&version("a/dead", 11, 2)).unwrap();
    db.put_object(&version("zz-tombstone", 11, 2)).unwrap();
    let mut exp = version("a/exp", 12, 1);
    exp.delete_at = Some(100);
    db.put_object(&exp).unwrap();
    (d, db)
}

fn names(entries: Vec<Entry<outpost_origin::db::ObjectRow>>) -> Vec<String> {
    entries
        .into_iter()
        .map(|e| match e {
            Entry::Item(r) => r.name,
            Entry::Subdir(s) => s,
        })
        .collect()
}

fn naive(all: &[String], p: &ListParams) -> Vec<String> {
    let mut v: Vec<&String> = all
        .iter()
        .filter(|n| n.starts_with(&p.prefix))
        .filter(|n| match (&p.marker, p.reverse) {
            (Some(m), false) => n.as_str() > m.as_str(),
            (Some(m), true) => n.as_str() < m.as_str(),
            (None, _) => true,
        })
        .filter(|n| match (&p.end_marker, p.reverse) {
            (Some(e), false) => n.as_str() < e.as_str(),
            (Some(e), true) => n.as_str() > e.as_str(),
            (None, _) => true,
        })
        .collect();
    v.sort();
    if p.reverse {
        v.reverse();
    }
    let mut out: Vec<String> = Vec::new();
    for n in v {
        let dir = p.delimiter.as_deref().and_then(|d| {
            n[p.prefix.len()..]
                .find(d)
                .map(|i| n[..p.prefix.len() + i + d.len()].to_owned())
        });
        match dir {
            Some(d) if out.last() == Some(&d) || p.marker.as_deref() == Some(d.as_str()) => {}
            Some(d) => out.push(d),
            None => out.push(n.clone()),
        }
    }
    out.truncate(p.limit);
    out
}

fn live(with_expired: bool) -> Vec<String> {
    let mut v: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    if with_expired {
        v.push("a/exp".into());
    }
    v
}

/// Every combination of edge values agrees with the model: markers equal to names, between
/// names, past the last name; prefixes that are names themselves; the top code point.
#[test]
fn listings_at_the_edges_agree_with_the_model() {
    let (_d, db) = fixture();
    let probes = [
        None,
        Some(""),
        Some("a"),
        Some("a/"),
        Some("a/b"),
        Some("a0"),
        Some("b/y"),
        Some("\u{10FFFF}"),
        Some("\u{10FFFF}\u{10FFFF}"),
    ];
    let mut checked = 0;
    for reverse in [false, true] {
        for prefix in ["", "a", "a/", "a/b", "\u{10FFFF}"] {
            for delimiter in [None, Some("/")] {
                for marker in probes {
                    for end_marker in [None, Some("a/c"), Some("b"), Some("\u{10FFFF}")] {
                        for limit in [1, 2, 1000] {
                            let p = ListParams {
                                prefix: prefix.into(),
                                delimiter: delimiter.map(Into::into),
                                marker: marker.map(Into::into),
                                end_marker: end_marker.map(Into::into),
                                limit,
                                reverse,
                                live_at: Some(1000),
                            };
                            let got = names(db.list_objects("a", "c", &p).unwrap());
                            assert_eq!(got, naive(&live(false), &p), "{p:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 5 * 2 * 9 * 4 * 3);
}

/// Paging the way clients do (marker = the last entry of the previous page) visits every
/// entry exactly once, forward and reverse, with and without a delimiter.
#[test]
fn paging_by_marker_visits_every_entry_once() {
    let (_d, db) = fixture();
    for reverse in [false, true] {
        for delimiter in [None, Some("/")] {
            for prefix in ["", "a/"] {
                let mut p = ListParams {
                    prefix: prefix.into(),
                    delimiter: delimiter.map(Into::into),
                    limit: 10_000,
                    reverse,
                    ..ListParams::default()
                };
                let all = names(db.list_objects("a", "c", &p).unwrap());
                p.limit = 1;
                let mut paged = Vec::new();
                loop {
                    let page = names(db.list_objects("a", "c", &p).unwrap());
                    let Some(last) = page.last().cloned() else {
                        break;
                    };
                    paged.extend(page);
                    p.marker = Some(last);
                    assert!(paged.len() <= all.len(), "paging does not end: {paged:?}");
                }
                assert_eq!(paged, all, "{p:?}");
            }
        }
    }
}

#[test]
fn tombstones_are_never_listed_and_expired_objects_only_without_live_at() {
    let (_d, db) = fixture();
    let mut p = ListParams {
        limit: 1000,
        ..ListParams::default()
    };
    let got = names(db.list_objects("a", "c", &p).unwrap());
    assert_eq!(got, naive(&live(true), &p));
    assert!(got.iter().all(|n| n != "a/dead" && n != "zz-tombstone"));
    // At its `X-Delete-At` the object answers 404, so listings drop it.
    p.live_at = Some(100);
    assert_eq!(
        names(db.list_objects("a", "c", &p).unwrap()),
        naive(&live(false), &p)
    );
    p.live_at = Some(99);
    assert!(names(db.list_objects("a", "c", &p).unwrap()).contains(&"a/exp".to_owned()));
}

#[test]
fn container_listings_skip_deleted_containers_and_honour_markers() {
    let (_d, db) = open_with_container();
    for (i, n) in ["c1", "c2", "c2/x", "c3"].iter().enumerate() {
        db.put_container("a", n, Timestamp(10 + i as u64), &[])
            .unwrap();
    }
    db.delete_container("a", "c2", Timestamp(20)).unwrap();
    let list = |p: &ListParams| -> Vec<String> {
        db.list_containers("a", p)
            .unwrap()
            .into_iter()
            .map(|e| match e {
                Entry::Item(r) => r.name,
                Entry::Subdir(s) => s,
            })
            .collect()
    };
    let mut p = ListParams {
        limit: 100,
        ..ListParams::default()
    };
    assert_eq!(list(&p), ["c", "c1", "c2/x", "c3"]);
    p.marker = Some("c1".into());
    p.delimiter = Some("/".into());
    assert_eq!(list(&p), ["c2/", "c3"]);
    p.marker = Some("c2/".into());
    assert_eq!(list(&p), ["c3"]);
    p.reverse = true;
    p.marker = Some("c3".into());
    assert_eq!(list(&p), ["c2/", "c1", "c"]);
}
