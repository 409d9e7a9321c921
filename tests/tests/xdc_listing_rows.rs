//! Regression: the shipping node of a ring DC holds only the listing row of the versions it
//! is not a replica of; cross-DC sync reads their data from the replicas (there is no
//! loopback HTTP read of its own node any more) and the peer DC still gets every byte.

use std::time::Duration;

use outpost_tests::xdc::{DcSpec, TwoDcs};

#[test]
fn versions_the_shipper_holds_only_as_listing_rows_still_ship() {
    let ring = DcSpec {
        ship_all: false,
        nodes: 4,
        account_policy: true,
        skew_secs: 0,
        extra: String::new(),
    };
    let single = DcSpec {
        nodes: 0,
        ..ring.clone()
    };
    let dcs = TwoDcs::start(&ring, &single);
    dcs.dc1.must_create_container("c", &[]);
    let names: Vec<String> = (0..24).map(|i| format!("o{i:02}")).collect();
    for (i, n) in names.iter().enumerate() {
        dcs.dc1
            .must_put(i % 4, "c", n, vec![b'a' + (i as u8); 1000 + i]);
    }
    // With 3 replicas of 4 nodes, the shipper (node 0) lacks the data of some objects.
    let http = dcs.dc1.http();
    let listing_only = names
        .iter()
        .filter(|n| {
            let r = http
                .get(format!("{}/v1/AUTH_demo/c/{n}", dcs.dc1.nodes[0].url))
                .header("x-outpost-internal", outpost_tests::cluster::SECRET)
                .header("x-outpost-direct", "data")
                .send()
                .expect("direct read");
            r.status() == 404
                && r.headers()
                    .get("x-backend-state")
                    .is_some_and(|v| v == "listing")
        })
        .count();
    assert!(listing_only > 0, "node 0 holds data for every object");
    let (_, l) = dcs.must_converge("c", Duration::from_secs(60));
    assert_eq!(l.len(), names.len());
    for (i, n) in names.iter().enumerate() {
        let r = dcs
            .dc2
            .http()
            .get(format!("{}/c/{n}", dcs.dc2.account_url(0)))
            .header("x-auth-token", dcs.dc2.token())
            .send()
            .expect("dc2 read");
        assert_eq!(r.status(), 200, "{n}");
        assert_eq!(
            r.bytes().unwrap().to_vec(),
            vec![b'a' + (i as u8); 1000 + i]
        );
    }
}
