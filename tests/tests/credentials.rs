//! Least-privilege service credentials, with real processes: an edge's secret reads, follows
//! the feed and serves, but cannot write, delete, choose a timestamp, replicate, purge or read
//! the sync and cluster endpoints; a peer's secret can; an operator's secret writes without
//! timestamps and runs reports; during a rotation two edge secrets are valid, and after it the
//! old one is refused.

use outpost_tests::cluster::{EdgeProc, OriginProc};
use reqwest::blocking::{Client, Response};

const EDGE_NEW: &str = "edge-secret-new-0123456789";
const EDGE_OLD: &str = "edge-secret-old-0123456789";
const PEER: &str = "peer-secret-0123456789abcdef";
const ADMIN: &str = "admin-secret-0123456789abcdef";
const INTERNAL: &str = "x-outpost-internal";

fn credentials(edge: &[&str]) -> String {
    let list: Vec<String> = edge.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[credentials]\nedge = [{}]\npeer = \"{PEER}\"\nadmin = \"{ADMIN}\"\n",
        list.join(", ")
    )
}

fn send(
    method: &str,
    url: &str,
    secret: Option<&str>,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> Response {
    let mut r = Client::new()
        .request(method.parse().expect("method"), url)
        .body(body);
    if let Some(s) = secret {
        r = r.header(INTERNAL, s);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().expect("request")
}

fn refused(r: Response, what: &str) {
    let status = r.status().as_u16();
    let code = r
        .headers()
        .get("x-outpost-error")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    // Swift's HTML body for every 403; the specific reason travels in X-Outpost-Reason.
    let reason = r
        .headers()
        .get(outpost_proto::headers::REASON)
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let body = r.text().unwrap_or_default();
    assert_eq!(status, 403, "{what}: {status} {body}");
    assert!(code.is_some(), "{what}: no X-Outpost-Error");
    assert!(reason.contains("credential"), "{what}: reason {reason:?}");
}

#[test]
fn each_service_secret_does_only_what_its_role_may() {
    let dir = tempfile::tempdir().unwrap();
    let origin =
        OriginProc::start_secured(dir.path(), &credentials(&[EDGE_NEW, EDGE_OLD]), "", None);
    let (storage, token) = origin.must_login();
    let c = Client::new();
    let url = |p: &str| format!("{storage}/{p}");
    let r = c
        .put(url("files"))
        .header("x-auth-token", &token)
        .header("x-container-read", ".r:*")
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = c
        .put(url("files/a.txt"))
        .header("x-auth-token", &token)
        .body("original")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let base = &origin.url;

    // The edge credential (either of the two during a rotation): reads and the feed.
    for s in [EDGE_NEW, EDGE_OLD] {
        let r = send("GET", &url("files/a.txt"), Some(s), &[], b"");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().unwrap(), "original");
        let r = send(
            "GET",
            &url("files/a.txt"),
            Some(s),
            &[("x-outpost-direct", "data")],
            b"",
        );
        assert_eq!(
            r.status(),
            200,
            "a direct read (ring-aware edges) is a read"
        );
        for p in ["/internal/changes?since=0", "/internal/snapshot"] {
            assert_eq!(
                send("GET", &format!("{base}{p}"), Some(s), &[], b"").status(),
                200,
                "{p}"
            );
        }
    }

    // ... and nothing that writes or administers.
    let e = Some(EDGE_NEW);
    refused(send("PUT", &url("files/a.txt"), e, &[], b"forged"), "PUT");
    refused(
        send(
            "POST",
            &url("files/a.txt"),
            e,
            &[("x-object-meta-x", "1")],
            b"",
        ),
        "POST",
    );
    refused(send("DELETE", &url("files/a.txt"), e, &[], b""), "DELETE");
    refused(send("PUT", &url("files/new"), e, &[], b""), "PUT container");
    refused(
        send(
            "PUT",
            &url("files/a.txt"),
            e,
            &[("x-timestamp", "9999999999.00000")],
            b"forged",
        ),
        "timestamped PUT",
    );
    refused(
        send(
            "PUT",
            &url("files/a.txt"),
            e,
            &[
                ("x-outpost-direct", "data"),
                ("x-timestamp", "9999999999.00000"),
            ],
            b"forged",
        ),
        "direct PUT",
    );
    for (m, p) in [
        ("GET", "/internal/replication/meta"),
        ("GET", "/internal/cluster/status"),
        ("GET", "/internal/xdc/status"),
        ("POST", "/internal/purge?account=demo"),
        (
            "GET",
            "/admin/billing?account=demo&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
        ),
    ] {
        refused(send(m, &format!("{base}{p}"), e, &[], b""), p);
    }
    let r = send("GET", &url("files/a.txt"), None, &[], b"");
    assert_eq!(
        r.text().unwrap(),
        "original",
        "nothing the edge sent was stored"
    );

    // An unknown secret is no credential at all.
    let r = send(
        "GET",
        &format!("{base}/internal/changes"),
        Some("not-a-secret-0123456789"),
        &[],
        b"",
    );
    assert_eq!(r.status(), 401);

    // The peer credential: storage writes with their own timestamp.
    let p = Some(PEER);
    let r = send(
        "PUT",
        &url("files/b.txt"),
        p,
        &[("x-timestamp", "1700000000.00000")],
        b"peer",
    );
    assert_eq!(r.status(), 201);
    let r = send("HEAD", &url("files/b.txt"), p, &[], b"");
    assert_eq!(r.headers()["x-timestamp"], "1700000000.00000");

    // The admin credential: writes at the node's time, reports, purges; never a timestamp.
    let a = Some(ADMIN);
    assert_eq!(
        send("PUT", &url("files/c.txt"), a, &[], b"admin").status(),
        201
    );
    refused(
        send(
            "PUT",
            &url("files/c.txt"),
            a,
            &[("x-timestamp", "1.00000")],
            b"old",
        ),
        "admin timestamped PUT",
    );
    refused(
        send(
            "GET",
            &format!("{base}/internal/replication/meta"),
            a,
            &[],
            b"",
        ),
        "admin replication",
    );
    assert_eq!(
        send(
            "POST",
            &format!("{base}/internal/purge?account=demo"),
            a,
            &[],
            b""
        )
        .status(),
        200
    );
    let report = "/admin/billing?account=demo&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
    assert_eq!(
        send("GET", &format!("{base}{report}"), a, &[], b"").status(),
        200
    );

    // An edge holding the old secret serves the public object (snapshot, feed and reads).
    let edge = EdgeProc::start_raw(
        dir.path(),
        "e1",
        &format!(
            "base_domain = \"cdn.test\"\n[origin]\naddress = \"{}\"\ninternal_secret = \"{EDGE_OLD}\"\n[cache]\ndisk_dir = \"{}\"\n",
            origin.addr,
            dir.path().join("e1-cache").display()
        ),
    );
    let r = edge
        .client(&["files.demo.cdn.test"])
        .get(format!(
            "http://files.demo.cdn.test:{}/a.txt",
            edge.addr.port()
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "original");
}

#[test]
fn a_finished_rotation_refuses_the_old_edge_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut origin =
        OriginProc::start_secured(dir.path(), &credentials(&[EDGE_NEW, EDGE_OLD]), "", None);
    let changes = |o: &OriginProc, s: &str| {
        send(
            "GET",
            &format!("{}/internal/changes", o.url),
            Some(s),
            &[],
            b"",
        )
        .status()
        .as_u16()
    };
    assert_eq!(changes(&origin, EDGE_OLD), 200);
    assert_eq!(changes(&origin, EDGE_NEW), 200);
    // Every edge now holds the new secret: drop the old one and restart the node.
    let text = std::fs::read_to_string(origin.config_path()).unwrap();
    let text = text.replace(&format!(", \"{EDGE_OLD}\""), "");
    assert!(!text.contains(EDGE_OLD));
    std::fs::write(origin.config_path(), text).unwrap();
    let addr = origin.addr;
    origin.restart_at(addr);
    assert_eq!(changes(&origin, EDGE_OLD), 401);
    assert_eq!(changes(&origin, EDGE_NEW), 200);
}
