//! Account and container metadata merge key by key across DCs (`origin/src/db/stamps.rs`):
//! while the link is cut, DC1 and DC2 change different keys of one container and DC1 removes
//! a key both had; after the link returns both DCs hold both new keys and neither holds the
//! removed one (whole-row newest-wins kept only the later DC's row).

use std::time::Duration;

use outpost_tests::cluster::must_become;
use outpost_tests::xdc::{Dc, DcSpec, TwoDcs};

fn post(dc: &Dc, headers: &[(&str, &str)]) {
    let mut req = dc
        .http()
        .post(format!("{}/shared", dc.account_url(0)))
        .header("x-auth-token", dc.token());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().expect("container POST");
    assert!(r.status().is_success(), "POST: {}", r.status());
}

fn meta(dc: &Dc, key: &str) -> Option<String> {
    let r = dc
        .http()
        .head(format!("{}/shared", dc.account_url(0)))
        .header("x-auth-token", dc.token())
        .send()
        .expect("HEAD");
    r.headers()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[test]
fn concurrent_changes_of_different_keys_both_survive() {
    let spec = DcSpec {
        nodes: 0,
        account_policy: true,
        skew_secs: 0,
        extra: String::new(),
        ship_all: false,
    };
    let dcs = TwoDcs::start(&spec, &spec);
    let (dc1, dc2) = (&dcs.dc1, &dcs.dc2);
    let wait = Duration::from_secs(30);
    dc1.must_create_container("shared", &[("x-container-meta-old", "both")]);
    must_become("DC2 has the container", wait, || {
        meta(dc2, "x-container-meta-old").as_deref() == Some("both")
    });

    dcs.cut();
    post(
        dc1,
        &[
            ("x-container-meta-colour", "blue"),
            ("x-remove-container-meta-old", "x"),
        ],
    );
    post(dc2, &[("x-container-meta-size", "large")]);
    dcs.restore();

    for (name, dc) in [("dc1", dc1), ("dc2", dc2)] {
        must_become(
            &format!("{name} holds both keys, not the removed one"),
            wait,
            || {
                meta(dc, "x-container-meta-colour").as_deref() == Some("blue")
                    && meta(dc, "x-container-meta-size").as_deref() == Some("large")
                    && meta(dc, "x-container-meta-old").is_none()
            },
        );
    }
}
