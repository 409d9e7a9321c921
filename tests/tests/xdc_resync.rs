//! Regression: a shipper whose feed position was trimmed away (`[feed] retain`) compares
//! every replicated object with the peer instead of silently skipping the gap.

use std::time::Duration;

use outpost_tests::xdc::{DcSpec, TwoDcs};

#[test]
fn a_trimmed_feed_position_falls_back_to_a_full_comparison() {
    let spec = |extra: &str| DcSpec {
        ship_all: false,
        nodes: 0,
        account_policy: true,
        skew_secs: 0,
        extra: extra.to_owned(),
    };
    // dc1 keeps only its 5 newest changes; it trims at start.
    let mut dcs = TwoDcs::start(&spec("[feed]\nretain = 5\n"), &spec(""));
    dcs.cut();
    dcs.dc1.must_create_container("c", &[]);
    for i in 0..40 {
        dcs.dc1.must_put(0, "c", &format!("o{i:02}"), vec![b'z'; i]);
    }
    dcs.dc1.must_delete(0, "c", "o00");
    dcs.dc1.restart_node(0);
    let first = dcs.dc1.feed(0).first().map(|c| c.0).unwrap();
    assert!(first > 30, "the feed was trimmed (first entry {first})");
    dcs.restore();
    let (_, l) = dcs.must_converge("c", Duration::from_secs(60));
    assert_eq!(l.len(), 39);
    assert!(!l.contains_key("o00"));
    must_refuse_bad_sync_requests(&dcs);
}

/// Bad sync requests get precise 4xx answers and change nothing.
fn must_refuse_bad_sync_requests(dcs: &TwoDcs) {
    let base = &dcs.dc2.nodes[0].url;
    let http = dcs.dc2.http();
    let key = outpost_tests::xdc::REALM_KEY;
    let have = |from: &str, k: &str, body: &str| {
        http.post(format!("{base}/internal/xdc/have"))
            .header("x-outpost-sync-from", from)
            .header("x-outpost-sync-key", k)
            .body(body.to_owned())
            .send()
            .expect("have-check request")
    };
    let ok = r#"{"format":1,"objects":[{"account":"demo","container":"c","object":"o01"}]}"#;
    assert_eq!(have("dc1", key, ok).status(), 200);
    assert_eq!(have("dc1", "wrong-key-wrong-key", ok).status(), 401);
    assert_eq!(have("dc9", key, ok).status(), 401);
    let r = have("dc1", key, "{not json");
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-outpost-error"], "bad-sync-message");
    let r = have("dc1", key, r#"{"format":7,"objects":[]}"#);
    assert_eq!(r.status(), 400);
    let put = |ts: Option<&str>, method: reqwest::Method| {
        let mut b = http
            .request(method, format!("{base}/internal/xdc/v1/AUTH_demo/c/evil"))
            .header("x-outpost-sync-from", "dc1")
            .header("x-outpost-sync-key", key)
            .body("x");
        if let Some(t) = ts {
            b = b.header("x-timestamp", t);
        }
        b.send().expect("apply request")
    };
    assert_eq!(put(None, reqwest::Method::PUT).status(), 400);
    assert_eq!(put(Some("yesterday"), reqwest::Method::PUT).status(), 400);
    assert_eq!(
        put(Some("1700000000.00000"), reqwest::Method::POST).status(),
        405
    );
    let r = http
        .delete(format!("{base}/internal/xdc/v1/AUTH_demo/c"))
        .header("x-outpost-sync-from", "dc1")
        .header("x-outpost-sync-key", key)
        .header("x-timestamp", "9999999999.00000")
        .send()
        .expect("container delete");
    assert_eq!(r.status(), 403, "peers cannot delete containers");
    assert!(!dcs.dc2.listing("c").contains_key("evil"));
}
