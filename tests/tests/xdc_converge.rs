//! Acceptance: two DCs of 3 ring nodes each (one edge each) replicating the `demo` account
//! both ways. 5,000 objects (see [`per_dc`]) are written in each DC while the link is cut; once it is
//! restored both DCs list the same 10,000 objects with identical ETags and both edges serve
//! them.

use std::time::{Duration, Instant};

use outpost_tests::xdc::{Dc, DcSpec, TwoDcs};

const C: &str = "bulk";
/// Objects written in each DC: `XDC_OBJECTS_PER_DC`, default 2,000 to keep debug CI short;
/// the acceptance figure is 5,000 (`XDC_OBJECTS_PER_DC=5000`).
fn per_dc() -> usize {
    std::env::var("XDC_OBJECTS_PER_DC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn body(tag: &str, i: usize) -> Vec<u8> {
    format!("{tag}:{i}:{}", "y".repeat(i % 200)).into_bytes()
}

/// Writes [`per_dc`] objects through every node of the DC from 6 threads.
fn must_write_many(dc: &Dc, tag: &str) {
    std::thread::scope(|s| {
        for t in 0..6 {
            s.spawn(move || {
                for i in (t..per_dc()).step_by(6) {
                    dc.must_put(
                        i % dc.nodes.len(),
                        C,
                        &format!("{tag}/{i:05}"),
                        body(tag, i),
                    );
                }
            });
        }
    });
}

#[test]
fn ten_thousand_objects_written_during_a_cut_converge_in_both_dcs() {
    let spec = DcSpec {
        ship_all: false,
        nodes: 3,
        account_policy: true,
        skew_secs: 0,
        extra: String::new(),
    };
    let t0 = Instant::now();
    let dcs = TwoDcs::start(&spec, &spec);
    eprintln!("[{:?}] started", t0.elapsed());
    for dc in [&dcs.dc1, &dcs.dc2] {
        dc.must_create_container(C, &[("x-container-read", ".r:*,.rlistings")]);
    }
    dcs.cut();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| must_write_many(&dcs.dc1, "dc1"));
        s.spawn(|| must_write_many(&dcs.dc2, "dc2"));
    });
    eprintln!(
        "wrote {} objects in {:?} with the link cut",
        2 * per_dc(),
        t0.elapsed()
    );
    assert_eq!(dcs.dc1.listing(C).len(), per_dc());
    assert_eq!(dcs.dc2.listing(C).len(), per_dc());
    let st = dcs.dc1.sync_status();
    assert!(
        st[0]["lag_entries"].as_u64().unwrap() >= per_dc() as u64,
        "{st}"
    );
    // A catch-up is pending: it covers at least the writes made during the cut.
    let (done, total) = (
        st[0]["catchup_done"].as_u64().unwrap(),
        st[0]["catchup_total"].as_u64().unwrap(),
    );
    assert!(total >= per_dc() as u64 && done < total, "{st}");
    // `outpost cluster status` shows the shipper's lag and the link as down.
    let ring = dcs.dc1.ring.as_ref().expect("dc1 is a ring");
    let out = outpost_tests::must_run_outpost(&[
        "cluster",
        "status",
        "--ring",
        ring.to_str().expect("utf-8"),
        "--secret",
        outpost_tests::cluster::SECRET,
    ]);
    let line = out
        .lines()
        .find(|l| l.contains(" dc2 "))
        .unwrap_or_else(|| panic!("no cross-dc line: {out}"));
    assert!(line.contains("DOWN"), "{out}");
    let behind: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(behind >= per_dc() as u64, "{out}");
    // The catch-up column: done/total feed entries.
    let catchup_total: u64 = line
        .split_whitespace()
        .nth(8)
        .and_then(|c| c.split_once('/'))
        .and_then(|(_, t)| t.parse().ok())
        .unwrap_or_else(|| panic!("no catch-up in {line:?}"));
    assert!(catchup_total >= per_dc() as u64, "{out}");

    dcs.restore();
    let (took, all) = dcs.must_converge(C, Duration::from_secs(300));
    eprintln!(
        "{} objects converged {took:?} after the link came back",
        2 * per_dc()
    );
    assert_eq!(all.len(), 2 * per_dc());
    for tag in ["dc1", "dc2"] {
        for i in 0..per_dc() {
            let name = format!("{tag}/{i:05}");
            let want = format!("{:x}", md5_of(&body(tag, i)));
            assert_eq!(all.get(&name), Some(&want), "{name}");
        }
    }
    eprintln!("[{:?}] checking edges", t0.elapsed());
    // Each DC's edge serves objects written in either DC.
    for dc in [&dcs.dc1, &dcs.dc2] {
        for tag in ["dc1", "dc2"] {
            for i in (0..per_dc()).step_by(97) {
                let (s, b) = dc.edge_get(C, &format!("{tag}/{i:05}"));
                assert_eq!(
                    (s, b),
                    (200, body(tag, i)),
                    "{} edge, {tag}/{i:05}",
                    dc.name
                );
            }
        }
    }
    eprintln!("[{:?}] checking lag", t0.elapsed());
    for dc in [&dcs.dc1, &dcs.dc2] {
        let t = Instant::now();
        while dc.sync_status()[0]["lag_entries"].as_u64() != Some(0) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{}: lag stays",
                dc.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Caught up: no catch-up is running and nothing is left.
        let st = dc.sync_status();
        assert_eq!(st[0]["catchup_total"], 0, "{st}");
        assert_eq!(st[0]["eta_secs"], 0, "{st}");
    }
    eprintln!("[{:?}] done", t0.elapsed());
}

fn md5_of(b: &[u8]) -> impl std::fmt::LowerHex {
    use md5::Digest;
    md5::Md5::digest(b)
}
