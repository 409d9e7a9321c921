//! `outpost ring ...` as an operator uses it: build, show, grow, shrink; bad input names the
//! parameter and changes nothing.

use outpost_tests::{must_fail_outpost, must_run_outpost};

fn moved(out: &str) -> u64 {
    out.split("moved ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no move count in {out:?}"))
}

#[test]
fn build_show_grow_and_shrink_a_ring() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.json");
    let r = ring.to_str().unwrap();
    must_run_outpost(&["ring", "create", r, "--part-power", "8", "--replicas", "3"]);
    let e = must_fail_outpost(&["ring", "create", r, "--part-power", "8"]);
    assert!(e.contains("exists"), "{e}");
    for (i, zone) in ["1", "2", "3"].iter().enumerate() {
        let port = (6000 + i).to_string();
        must_run_outpost(&[
            "ring", "add", r, "--zone", zone, "--host", "10.0.0.1", "--port", &port,
        ]);
    }
    let out = must_run_outpost(&["ring", "rebalance", r]);
    assert_eq!(moved(&out), 256 * 3, "{out}");
    let show = must_run_outpost(&["ring", "show", r]);
    assert!(show.contains("last rebalance moved 768"), "{show}");
    assert!(show.contains("10.0.0.1:6002/d0"), "{show}");

    // A 4th device takes a quarter of the replicas; nothing else moves.
    must_run_outpost(&[
        "ring", "add", r, "--zone", "4", "--host", "10.0.0.2", "--port", "6000",
    ]);
    let out = must_run_outpost(&["ring", "rebalance", r]);
    assert_eq!(moved(&out), 192, "{out}");
    assert_eq!(moved(&must_run_outpost(&["ring", "rebalance", r])), 0);
    let show = must_run_outpost(&["ring", "show", r]);
    assert!(show.contains("last rebalance moved 0"), "{show}");

    // Removing it moves exactly its replicas back.
    must_run_outpost(&["ring", "remove", r, "--id", "3"]);
    assert_eq!(moved(&must_run_outpost(&["ring", "rebalance", r])), 192);

    // Bad input: named, and the ring file is unchanged.
    let before = std::fs::read(&ring).unwrap();
    let e = must_fail_outpost(&[
        "ring", "add", r, "--zone", "1", "--host", "10.0.0.1", "--port", "6000",
    ]);
    assert!(e.contains("already exists"), "{e}");
    let e = must_fail_outpost(&[
        "ring",
        "add",
        r,
        "--zone",
        "1",
        "--host",
        "10.0.0.9",
        "--port",
        "1",
        "--weight=-3",
    ]);
    assert!(e.contains("weight"), "{e}");
    let e = must_fail_outpost(&["ring", "remove", r, "--id", "42"]);
    assert!(e.contains("42"), "{e}");
    assert_eq!(std::fs::read(&ring).unwrap(), before);
    let bad = dir.path().join("bad.json");
    let e = must_fail_outpost(&[
        "ring",
        "create",
        bad.to_str().unwrap(),
        "--part-power",
        "30",
    ]);
    assert!(e.contains("part_power"), "{e}");
    std::fs::write(&bad, b"{\"format\": 9}").unwrap();
    let e = must_fail_outpost(&["ring", "show", bad.to_str().unwrap()]);
    assert!(e.contains("format 9"), "{e}");
}
