//! The randomized fault test (`outpost_tests::faults`): clients write, overwrite and delete
//! while a nemesis kills, pauses and restarts nodes and cuts links between them; after
//! healing, no acknowledged write is lost, no acknowledged delete resurrected, replicas are
//! identical and the edge serves the final state.
//!
//! CI runs one short seed with every node on the machine's clock. The run with one node's
//! clock 30 s behind is `#[ignore]`d: on 2026-12-07 its seed 19 found an acknowledged DELETE
//! through the slow node resurrected by an older-in-real-time PUT that carried a larger
//! timestamp (last-writer-wins across a sloppy quorum: the PUT's copies were on nodes the
//! DELETE did not reach, so no replica told the proxy to re-send it past the PUT). Until that
//! is fixed it runs by hand: `cargo test -p outpost-tests --test cluster_faults --
//! --include-ignored`, or `scripts/fault_runs.sh`, which records seeds in `docs/fault-runs.md`.
//! `FAULT_SEED` and `FAULT_SECS` pick another run. The seed is printed first, and in the
//! failure message.

use std::time::Duration;

use outpost_tests::faults::{run, Settings};

fn fault_run(skew_secs: i64) {
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(19);
    let secs = std::env::var("FAULT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    eprintln!("fault run: seed {seed}, {secs} s, node 3's clock {skew_secs:+} s");
    let rec = run(&Settings {
        seed,
        duration: Duration::from_secs(secs),
        clients: 4,
        keys: 24,
        skew_secs,
    });
    // One line the script collects.
    println!("FAULT-RUN {}", rec.markdown_row());
    for p in &rec.problems {
        eprintln!("  {p}");
    }
    assert!(
        rec.is_clean(),
        "seed {seed}: {} lost, {} resurrected, {} diverged: {:#?}",
        rec.lost,
        rec.resurrected,
        rec.diverged,
        rec.problems
    );
    assert!(rec.acked > 0, "seed {seed}: nothing was acknowledged");
}

#[test]
fn faults_lose_no_acknowledged_write() {
    fault_run(0);
}

#[test]
#[ignore = "a DELETE through a node whose clock is behind can be resurrected (see the module docs)"]
fn faults_with_a_skewed_clock_lose_no_acknowledged_write() {
    fault_run(-30);
}
