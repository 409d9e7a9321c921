//! Copies across accounts in cluster mode (Swift's `Destination-Account` and
//! `X-Copy-From-Account`): the cluster proxy reads the source from its replicas in one
//! account and writes the copy to the other's, each side authorized on its own; the copy is
//! read back through another node.

use outpost_tests::ring_cluster::RingCluster;
use reqwest::blocking::Response;

/// A second account with its own admin, appended to every node's config.
const DEMO2: &str = r#"
[[auth.users]]
account = "demo2"
user = "tester2"
key = "testing2"
"#;

fn must_login2(c: &RingCluster, i: usize) -> String {
    let url = c.account_url(i).replace("/v1/AUTH_demo", "/auth/v1.0");
    let r = c
        .http()
        .get(url)
        .header("x-auth-user", "demo2:tester2")
        .header("x-auth-key", "testing2")
        .send()
        .expect("auth request");
    assert_eq!(r.status(), 200, "demo2 login on node {i}");
    r.headers()["x-auth-token"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

fn send(
    c: &RingCluster,
    method: &str,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut rb = c
        .http()
        .request(method.parse().expect("method"), url)
        .header("x-auth-token", token)
        .body(body.to_owned());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().expect("request")
}

fn must(
    c: &RingCluster,
    method: &str,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let r = send(c, method, url, token, headers, body);
    assert!(r.status().is_success(), "{method} {url}: {}", r.status());
    r
}

#[test]
fn copies_across_accounts_through_the_cluster_proxy() {
    let c = RingCluster::start(3, 4, 3, DEMO2);
    let demo = c.must_login(0);
    let demo2 = must_login2(&c, 0);
    let (a1, a2) = (
        c.account_url(0),
        c.account_url(0).replace("AUTH_demo", "AUTH_demo2"),
    );
    must(&c, "PUT", &format!("{a1}/src"), &demo, &[], "");
    must(
        &c,
        "PUT",
        &format!("{a1}/src/o"),
        &demo,
        &[("x-object-meta-color", "blue")],
        "across accounts",
    );
    // demo may write into demo2's `inbox` and read its `shared`, nothing else.
    must(
        &c,
        "PUT",
        &format!("{a2}/inbox"),
        &demo2,
        &[("x-container-write", "demo")],
        "",
    );
    must(&c, "PUT", &format!("{a2}/private"), &demo2, &[], "");
    must(
        &c,
        "PUT",
        &format!("{a2}/shared"),
        &demo2,
        &[("x-container-read", "demo")],
        "",
    );
    must(
        &c,
        "PUT",
        &format!("{a2}/shared/s"),
        &demo2,
        &[],
        "from demo2",
    );

    // COPY with Destination-Account.
    let r = must(
        &c,
        "COPY",
        &format!("{a1}/src/o"),
        &demo,
        &[
            ("destination", "inbox/o2"),
            ("destination-account", "AUTH_demo2"),
        ],
        "",
    );
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-copied-from-account"], "AUTH_demo");
    let a2_node2 = c.account_url(2).replace("AUTH_demo", "AUTH_demo2");
    let demo2_node2 = must_login2(&c, 2);
    let got = must(
        &c,
        "GET",
        &format!("{a2_node2}/inbox/o2"),
        &demo2_node2,
        &[],
        "",
    );
    assert_eq!(got.headers()["x-object-meta-color"], "blue");
    assert_eq!(got.text().expect("body"), "across accounts");

    // PUT with X-Copy-From-Account.
    let r = must(
        &c,
        "PUT",
        &format!("{a1}/src/s2"),
        &demo,
        &[
            ("x-copy-from", "shared/s"),
            ("x-copy-from-account", "AUTH_demo2"),
        ],
        "",
    );
    assert_eq!(r.headers()["x-copied-from-account"], "AUTH_demo2");
    let a1_node1 = c.account_url(1);
    let got = must(
        &c,
        "GET",
        &format!("{a1_node1}/src/s2"),
        &c.must_login(1),
        &[],
        "",
    );
    assert_eq!(got.text().expect("body"), "from demo2");

    // Each side is authorized on its own.
    let denied = send(
        &c,
        "COPY",
        &format!("{a1}/src/o"),
        &demo,
        &[
            ("destination", "private/o3"),
            ("destination-account", "AUTH_demo2"),
        ],
        "",
    );
    assert_eq!(denied.status(), 403, "no write ACL on demo2/private");
    let denied = send(
        &c,
        "PUT",
        &format!("{a1}/src/o4"),
        &demo,
        &[
            ("x-copy-from", "private/x"),
            ("x-copy-from-account", "AUTH_demo2"),
        ],
        "",
    );
    assert_eq!(denied.status(), 403, "no read ACL on demo2/private");
    let bad = send(
        &c,
        "COPY",
        &format!("{a1}/src/o"),
        &demo,
        &[("destination", "inbox/o5"), ("destination-account", "")],
        "",
    );
    assert_eq!(bad.status(), 412, "an empty Destination-Account");
}
