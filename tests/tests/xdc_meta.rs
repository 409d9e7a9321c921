//! Cross-DC sync of account and container rows: a domain, a token key and a CORS rule set in
//! DC1 reach every node of DC2 (a 3-node ring: the receiving node sends them on) and its
//! edge; a removed key disappears; a container deleted in DC1 disappears in DC2.

use std::time::Duration;

use outpost_proto::meta;
use outpost_tests::cluster::{must_become, SECRET};
use outpost_tests::xdc::{Dc, DcSpec, TwoDcs};

const CORS: &str = "x-container-meta-access-control-allow-origin";

fn head(dc: &Dc, node: usize, path: &str) -> (u16, reqwest::header::HeaderMap) {
    let r = dc
        .http()
        .head(format!("{}{path}", dc.account_url(node)))
        .header("x-auth-token", dc.token())
        .send()
        .expect("HEAD");
    (r.status().as_u16(), r.headers().clone())
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The token key ids node `node` of `dc` hands its edges for `demo`.
fn snapshot_has_key(dc: &Dc, node: usize, key_id: &str) -> bool {
    dc.http()
        .get(format!(
            "{}{}?account=demo",
            dc.nodes[node].url,
            outpost_proto::paths::SNAPSHOT
        ))
        .header("x-outpost-internal", SECRET)
        .send()
        .and_then(|r| r.text())
        .is_ok_and(|t| t.contains(&format!("\"{key_id}\"")))
}

#[test]
fn account_and_container_rows_replicate_and_container_deletes_too() {
    let single = DcSpec {
        ship_all: false,
        nodes: 0,
        account_policy: true,
        skew_secs: 0,
        extra: String::new(),
    };
    let ring = DcSpec {
        nodes: 3,
        ..single.clone()
    };
    let dcs = TwoDcs::start(&single, &ring);
    let (dc1, dc2) = (&dcs.dc1, &dcs.dc2);
    let wait = Duration::from_secs(30);

    // Account metadata and a token key, a container with its read ACL and a CORS rule.
    let r = dc1
        .http()
        .post(dc1.account_url(0))
        .header("x-auth-token", dc1.token())
        .header(meta::ACCOUNT_DOMAINS, "video.example")
        .header(
            "x-account-outpost-key-k7",
            "xdc-meta-token-secret-0123456789",
        )
        .send()
        .expect("account POST");
    assert!(r.status().is_success(), "account POST: {}", r.status());
    dc1.must_create_container(
        "site",
        &[
            ("x-container-read", ".r:*"),
            (CORS, "https://app.example"),
            ("x-container-meta-quota-bytes", "1000000"),
        ],
    );
    dc1.must_put(0, "site", "index.html", b"<h1>hello</h1>".to_vec());

    for node in 0..3 {
        must_become(
            &format!("DC2 node {node} has the account's domain"),
            wait,
            || {
                header(&head(dc2, node, "").1, meta::ACCOUNT_DOMAINS).as_deref()
                    == Some("video.example")
            },
        );
        must_become(&format!("DC2 node {node} has the token key"), wait, || {
            snapshot_has_key(dc2, node, "k7")
        });
        must_become(
            &format!("DC2 node {node} has the container's CORS rule and quota"),
            wait,
            || {
                let (s, h) = head(dc2, node, "/site");
                s == 204
                    && header(&h, CORS).as_deref() == Some("https://app.example")
                    && header(&h, "x-container-meta-quota-bytes").as_deref() == Some("1000000")
            },
        );
    }
    // The read ACL works at DC2's edge.
    must_become("DC2's edge serves the public object", wait, || {
        dc2.edge_get("site", "index.html") == (200, b"<h1>hello</h1>".to_vec())
    });

    // A removed key is removed in DC2 too (the newer row carries its absence).
    let r = dc1
        .http()
        .post(format!("{}/site", dc1.account_url(0)))
        .header("x-auth-token", dc1.token())
        .header("x-remove-container-meta-access-control-allow-origin", "x")
        .send()
        .expect("container POST");
    assert!(r.status().is_success(), "container POST: {}", r.status());
    for node in 0..3 {
        must_become(
            &format!("the CORS rule is gone at DC2 node {node}"),
            wait,
            || {
                let (s, h) = head(dc2, node, "/site");
                s == 204
                    && header(&h, CORS).is_none()
                    && header(&h, "x-container-meta-quota-bytes").as_deref() == Some("1000000")
            },
        );
    }

    // A container deleted in DC1 (after its object) disappears in DC2.
    dc1.must_delete(0, "site", "index.html");
    let r = dc1
        .http()
        .delete(format!("{}/site", dc1.account_url(0)))
        .header("x-auth-token", dc1.token())
        .send()
        .expect("container DELETE");
    assert_eq!(r.status(), 204, "container DELETE");
    for node in 0..3 {
        must_become(
            &format!("the container is gone at DC2 node {node}"),
            wait,
            || head(dc2, node, "/site").0 == 404,
        );
    }
    // Nothing echoes back: DC1 still has no container, and both shippers are caught up.
    assert_eq!(head(dc1, 0, "/site").0, 404);
    must_become("DC1's shipper is caught up", wait, || {
        dc1.sync_status()[0]["lag_entries"] == 0
    });
}
