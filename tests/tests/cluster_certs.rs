//! The certificate store of custom domains in a cluster: a certificate or an HTTP-01 answer
//! stored through one node is readable through every node, and every node's feed announces
//! the certificate (edges may follow any node). Only the edge, admin and peer credentials
//! reach the store; the lease refuses a second holder with the first one's name.

use outpost_tests::cluster::{ADMIN_SECRET, EDGE_SECRET};
use outpost_tests::ring_cluster::RingCluster;

const RECORD: &str = r#"{"format":1,"domain":"img.example.com","cert_pem":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","key_pem":"-----BEGIN PRIVATE KEY-----\nMIGHAgEAcluster-test-key\n-----END PRIVATE KEY-----\n","not_after":4000000000,"issued_at":1700000000,"issuer":"Test CA"}"#;

#[test]
fn certificates_and_challenges_reach_every_node() {
    let c = RingCluster::start(2, 4, 2, "");
    let http = c.http();
    let url = |i: usize, path: &str| format!("{}{path}", c.nodes[i].url);

    // Refused without the certificate capability.
    let r = http
        .put(url(0, "/internal/certs/img.example.com"))
        .body(RECORD)
        .send()
        .expect("anonymous put");
    assert_eq!(r.status(), 401);
    let token = c.must_login(0);
    let r = http
        .get(url(0, "/internal/certs"))
        .header("x-auth-token", &token)
        .send()
        .expect("user get");
    assert_eq!(r.status(), 403, "a user token does not open the store");

    let r = http
        .put(url(0, "/internal/certs/img.example.com"))
        .header("x-outpost-internal", EDGE_SECRET)
        .body(RECORD)
        .send()
        .expect("edge put");
    assert_eq!(r.status(), 201);
    for i in 0..2 {
        let got: serde_json::Value = http
            .get(url(i, "/internal/certs/img.example.com"))
            .header("x-outpost-internal", ADMIN_SECRET)
            .send()
            .and_then(|r| r.text())
            .map(|t| serde_json::from_str(&t).expect("json"))
            .expect("get");
        assert_eq!(got["issuer"], "Test CA", "node {i}: {got}");
        let index = http
            .get(url(i, "/internal/certs"))
            .header("x-outpost-internal", EDGE_SECRET)
            .send()
            .and_then(|r| r.text())
            .expect("index");
        assert!(
            index.contains("img.example.com") && !index.contains("PRIVATE"),
            "{index}"
        );
        let feed = http
            .get(url(i, "/internal/changes?since=0"))
            .header("x-outpost-internal", EDGE_SECRET)
            .send()
            .and_then(|r| r.text())
            .expect("feed");
        assert!(
            feed.contains(r#""kind":"cert-put","domain":"img.example.com""#),
            "node {i}: {feed}"
        );
        assert!(!feed.contains("PRIVATE"), "node {i}: {feed}");
    }

    let challenge = r#"{"format":1,"domain":"img.example.com","token":"tok-123","key_authorization":"tok-123.thumb","expires_at":4000000000}"#;
    let r = http
        .put(url(1, "/internal/acme-challenges/tok-123"))
        .header("x-outpost-internal", EDGE_SECRET)
        .body(challenge)
        .send()
        .expect("challenge put");
    assert_eq!(r.status(), 201);
    let got = http
        .get(url(0, "/internal/acme-challenges/tok-123"))
        .header("x-outpost-internal", EDGE_SECRET)
        .send()
        .and_then(|r| r.text())
        .expect("challenge get");
    assert!(got.contains("tok-123.thumb"), "{got}");

    let lease = |holder: &str| {
        http.post(url(0, "/internal/certs/img.example.com/lease"))
            .header("x-outpost-internal", EDGE_SECRET)
            .body(format!(
                r#"{{"format":1,"holder":"{holder}","ttl_secs":60}}"#
            ))
            .send()
            .expect("lease")
    };
    assert_eq!(lease("edge-a").status(), 200);
    let r = lease("edge-b");
    assert_eq!(r.status(), 409);
    assert!(r.text().expect("body").contains(r#""holder":"edge-a""#));

    // Certificates are not objects: the account lists no container for them.
    let listing = http
        .get(c.account_url(0))
        .header("x-auth-token", &token)
        .send()
        .and_then(|r| r.text())
        .expect("listing");
    assert!(!listing.contains("img.example.com"), "{listing}");
}
