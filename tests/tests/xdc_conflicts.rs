//! Cross-DC replication between two single-node DCs whose clocks are 5 minutes apart:
//! per-container sync metadata, conflicting writes and deletes during a cut link (checked
//! exhaustively against both feeds), causality under skew, SLO manifests, edge purges, and a
//! restart of the shipping node.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outpost_tests::xdc::{DcSpec, TwoDcs};

const C: &str = "shared";
const SEGS: &str = "shared_segments";

fn body(tag: &str, i: usize) -> Vec<u8> {
    format!("{tag}-{i}-{}", "x".repeat(i % 50)).into_bytes()
}

fn must_poll(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

#[test]
fn conflicting_writes_converge_to_the_newest_under_clock_skew() {
    let single = |skew| DcSpec {
        ship_all: false,
        nodes: 0,
        account_policy: false,
        skew_secs: skew,
        extra: String::new(),
    };
    // dc2's clock runs five minutes behind dc1's.
    let mut dcs = TwoDcs::start(&single(0), &single(-300));
    for (dc, peer) in [(&dcs.dc1, "dc2"), (&dcs.dc2, "dc1")] {
        for c in [C, SEGS] {
            dc.must_create_container(
                c,
                &[
                    ("x-container-read", ".r:*,.rlistings"),
                    ("x-container-meta-outpost-sync-to", peer),
                ],
            );
        }
        dc.must_create_container("local-only", &[]);
    }

    // Phase 1: dc1 writes, dc2 receives; a container without sync metadata stays local.
    for i in 0..100 {
        dcs.dc1.must_put(0, C, &format!("n{i:03}"), body("one", i));
    }
    dcs.dc1.must_put(0, "local-only", "x", b"local".to_vec());
    let (t, l) = dcs.must_converge(C, Duration::from_secs(60));
    assert_eq!(l.len(), 100);
    eprintln!("phase 1: 100 objects converged in {t:?}");
    assert!(dcs.dc2.listing("local-only").is_empty());

    // A delete in dc1 purges the object from dc2's edge.
    let (s, b) = dcs.dc2.edge_get(C, "n000");
    assert_eq!((s, b), (200, body("one", 0)));
    dcs.dc1.must_delete(0, C, "n000");
    let t = must_poll(
        "dc2 edge purge after a dc1 delete",
        Duration::from_secs(30),
        || dcs.dc2.edge_get(C, "n000").0 == 404,
    );
    eprintln!("dc1 delete → dc2 edge 404 in {t:?}");

    // SLO: segments in another synced container, manifest after them.
    let seg_a = dcs.dc1.must_put(0, SEGS, "big/1", vec![b'a'; 1000]);
    let seg_b = dcs.dc1.must_put(0, SEGS, "big/2", vec![b'b'; 10]);
    let manifest = serde_json::json!([
        {"path": format!("/{SEGS}/big/1"), "etag": seg_a, "size_bytes": 1000},
        {"path": format!("/{SEGS}/big/2"), "etag": seg_b, "size_bytes": 10},
    ]);
    let r = dcs
        .dc1
        .http()
        .put(format!(
            "{}/{C}/big?multipart-manifest=put",
            dcs.dc1.account_url(0)
        ))
        .header("x-auth-token", dcs.dc1.token())
        .body(manifest.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let want: Vec<u8> = [vec![b'a'; 1000], vec![b'b'; 10]].concat();
    must_poll("the SLO at dc2", Duration::from_secs(30), || {
        let r = dcs
            .dc2
            .http()
            .get(format!("{}/{C}/big", dcs.dc2.account_url(0)))
            .header("x-auth-token", dcs.dc2.token())
            .send()
            .unwrap();
        r.status() == 200 && r.bytes().unwrap().as_ref() == want.as_slice()
    });

    // Phase 2: the link is cut; both DCs write and delete the same names.
    dcs.must_converge(C, Duration::from_secs(60));
    let s1 = dcs.dc1.last_seq();
    let s2 = dcs.dc2.last_seq();
    let before = dcs.dc1.listing(C);
    dcs.cut();
    for i in 0..100 {
        let n = format!("n{i:03}");
        match i % 5 {
            0 => dcs.dc1.must_delete(0, C, &n),
            1 => {
                dcs.dc1.must_put(0, C, &n, body("dc1", i));
            }
            2 => {
                dcs.dc1.must_put(0, C, &n, body("dc1", i));
                dcs.dc1.must_delete(0, C, &n);
            }
            _ => {}
        }
        match i % 7 {
            0 | 3 => dcs.dc2.must_delete(0, C, &n),
            1 | 4 | 5 => {
                dcs.dc2.must_put(0, C, &n, body("dc2", i));
            }
            _ => {}
        }
    }
    for i in 100..130 {
        dcs.dc2
            .must_put(0, C, &format!("n{i:03}"), body("dc2-new", i));
    }
    // While cut, dc1 reports the lag.
    let st = dcs.dc1.sync_status();
    assert!(st[0]["lag_entries"].as_u64().unwrap() > 0, "{st}");
    // Restore, and restart dc1's shipping node while it catches up.
    dcs.restore();
    dcs.dc1.restart_node(0);
    // The truth: for each name, the newest change across both DCs' feeds.
    let mut newest: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for (_, ts, kind, obj, etag) in dcs.dc1.feed(s1).into_iter().chain(dcs.dc2.feed(s2)) {
        if !kind.starts_with("object-") || obj.is_empty() {
            continue;
        }
        let e = newest.entry(obj).or_default();
        if ts > e.0 {
            *e = (ts, kind, etag);
        }
    }
    let mut expected = before.clone();
    for (name, (_, kind, etag)) in &newest {
        if kind == "object-delete" {
            expected.remove(name);
        } else {
            expected.insert(name.clone(), etag.clone());
        }
    }
    let (t, got) = dcs.must_converge(C, Duration::from_secs(90));
    eprintln!("phase 2: conflicts converged in {t:?} after the link came back");
    assert_eq!(
        got, expected,
        "both DCs agree, but not on the newest versions"
    );
    assert!(newest.len() >= 100);

    // Phase 3: dc2 (clock 5 min behind) overwrites what dc1 wrote: having seen dc1's version,
    // its write is newer (hybrid clock) and wins in both DCs.
    let name = "n001";
    let etag = dcs
        .dc2
        .must_put(0, C, name, b"dc2 after seeing dc1".to_vec());
    must_poll(
        "dc2's causally later write wins in dc1",
        Duration::from_secs(30),
        || dcs.dc1.listing(C).get(name) == Some(&etag),
    );
    let (_, l) = dcs.must_converge(C, Duration::from_secs(30));
    assert_eq!(l.get(name), Some(&etag));
    // Nothing echoes: once caught up, both shippers have nothing left.
    must_poll("no lag left", Duration::from_secs(30), || {
        [&dcs.dc1, &dcs.dc2]
            .iter()
            .all(|d| d.sync_status()[0]["lag_entries"].as_u64() == Some(0))
    });
    let st = dcs.dc2.sync_status();
    assert!(
        st[0]["skipped"].as_u64().unwrap() > 0,
        "echoes are skipped: {st}"
    );
}
