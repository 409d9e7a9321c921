//! The shipper of a DC fails over: every node of DC1 (a 3-node ring) may ship, one at a time
//! (the lowest ring device id that answers, `origin/src/xdc/elect.rs`). Node 0 ships while the
//! others stand by; once it is killed, writes through node 1 still reach DC2, node 1 reports
//! itself the active shipper and its lag returns to 0; node 0 back, it ships again and node 1
//! stands by.

use std::collections::BTreeMap;
use std::time::Duration;

use outpost_tests::cluster::must_become;
use outpost_tests::xdc::{Dc, DcSpec, TwoDcs};

/// `(active, lag_entries)` of node `i`'s shipper to `dc2`.
fn shipper(dc: &Dc, i: usize) -> Option<(bool, u64)> {
    let v = dc.sync_status_of(i);
    let p = v.as_array()?.iter().find(|p| p["peer"] == "dc2")?;
    Some((p["active"].as_bool()?, p["lag_entries"].as_u64()?))
}

fn must_reach_dc2(dcs: &TwoDcs, want: &BTreeMap<String, String>) {
    must_become("DC2 lists every object", Duration::from_secs(60), || {
        let have = dcs.dc2.listing("photos");
        want.iter().all(|(k, v)| have.get(k) == Some(v))
    });
}

#[test]
fn another_node_ships_when_the_shipper_dies() {
    let ring = DcSpec {
        nodes: 3,
        account_policy: true,
        skew_secs: 0,
        extra: String::new(),
        ship_all: true,
    };
    let single = DcSpec {
        nodes: 0,
        ship_all: false,
        ..ring.clone()
    };
    let mut dcs = TwoDcs::start(&ring, &single);
    dcs.dc1.must_create_container("photos", &[]);
    let mut want = BTreeMap::new();
    for i in 0..10 {
        let name = format!("before-{i}");
        let etag = dcs
            .dc1
            .must_put(1, "photos", &name, name.clone().into_bytes());
        want.insert(name, etag);
    }
    must_reach_dc2(&dcs, &want);
    must_become(
        "node 0 ships, 1 and 2 stand by",
        Duration::from_secs(30),
        || {
            shipper(&dcs.dc1, 0) == Some((true, 0))
                && shipper(&dcs.dc1, 1).is_some_and(|s| !s.0)
                && shipper(&dcs.dc1, 2).is_some_and(|s| !s.0)
        },
    );

    // The shipper dies; writes go on through node 1.
    dcs.dc1.nodes[0].kill();
    for i in 0..10 {
        let name = format!("after-{i}");
        let etag = dcs
            .dc1
            .must_put(1, "photos", &name, name.clone().into_bytes());
        want.insert(name, etag);
    }
    must_reach_dc2(&dcs, &want);
    must_become(
        "node 1 ships and its lag returns to 0",
        Duration::from_secs(30),
        || shipper(&dcs.dc1, 1) == Some((true, 0)) && shipper(&dcs.dc1, 2).is_some_and(|s| !s.0),
    );

    // Node 0 back: it ships again, node 1 stands by.
    dcs.dc1.restart_node(0);
    must_become("node 0 ships again", Duration::from_secs(30), || {
        shipper(&dcs.dc1, 0).is_some_and(|s| s.0) && shipper(&dcs.dc1, 1).is_some_and(|s| !s.0)
    });
    let name = "back".to_owned();
    let etag = dcs.dc1.must_put(2, "photos", &name, b"back".to_vec());
    want.insert(name, etag);
    must_reach_dc2(&dcs, &want);
}
