//! `X-Purge-Wait` in a cluster covers every edge of the DC: four nodes (two replicas, so some
//! nodes hold only listing rows), one edge following each node. A write through any node
//! returns once all four edges purged it, and says which did; a stopped edge is named as
//! pending, a killed node as unreached.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use outpost_tests::cluster::{must_become, EdgeProc, ADMIN_SECRET};
use outpost_tests::ring_cluster::RingCluster;
use reqwest::blocking::{Client, Response};

const HOST: &str = "public.demo.cdn.test";

/// Fields drop in order: the edges stop before the nodes and their temp dir go.
struct Dc {
    edges: Vec<EdgeProc>,
    ring: RingCluster,
    tokens: Vec<String>,
    edge_clients: Vec<Client>,
}

impl Dc {
    /// A write through node `node` with `X-Purge-Wait: edges` (and a timeout if given).
    fn write(&self, node: usize, method: &str, path: &str, body: &str, timeout: &str) -> Response {
        let mut rb = self
            .ring
            .http()
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.ring.account_url(node)),
            )
            .header("x-auth-token", &self.tokens[node])
            .header("x-purge-wait", "edges")
            .body(body.to_owned());
        if !timeout.is_empty() {
            rb = rb.header("x-purge-wait-timeout", timeout);
        }
        let r = rb.send().expect("write");
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        r
    }

    fn get(&self, edge: usize, object: &str) -> (u16, String) {
        let port = self.edges[edge].addr.port();
        let r = self.edge_clients[edge]
            .get(format!("http://{HOST}:{port}/{object}"))
            .send()
            .expect("edge GET");
        (r.status().as_u16(), r.text().expect("body"))
    }
}

fn list(r: &Response, header: &str) -> BTreeSet<String> {
    r.headers()
        .get(header)
        .map(|v| {
            v.to_str()
                .expect("ascii")
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Polls node `i`'s `/metrics` until an edge follows its feed.
fn must_see_an_edge(c: &RingCluster, i: usize) {
    must_become(
        &format!("an edge follows node {i}"),
        Duration::from_secs(20),
        || {
            c.http()
                .get(format!("{}/metrics", c.nodes[i].url))
                .send()
                .and_then(|r| r.text())
                .is_ok_and(|t| {
                    t.lines()
                        .any(|l| l.starts_with("outpost_origin_feed_edge_lag{"))
                })
        },
    );
}

#[test]
fn purge_wait_covers_every_edge_of_the_dc() {
    let ring = RingCluster::start(4, 4, 2, "");
    let tokens: Vec<String> = (0..4).map(|i| ring.must_login(i)).collect();
    let r = ring
        .http()
        .put(format!("{}/public", ring.account_url(0)))
        .header("x-auth-token", &tokens[0])
        .header("x-container-read", ".r:*,.rlistings")
        .send()
        .expect("container PUT");
    assert_eq!(r.status(), 201);
    let edges: Vec<EdgeProc> = (0..4)
        .map(|i| {
            let addr = format!("127.0.0.1:{}", ring.nodes[i].port)
                .parse()
                .expect("addr");
            EdgeProc::start(ring.dir.path(), &format!("e{i}"), addr, "")
        })
        .collect();
    for i in 0..4 {
        must_see_an_edge(&ring, i);
    }
    let edge_clients = edges.iter().map(|e| e.client(&[HOST])).collect();
    let mut dc = Dc {
        edges,
        ring,
        tokens,
        edge_clients,
    };
    let all = names(&["e0", "e1", "e2", "e3"]);

    // Several objects, so that on each some nodes hold the data and the others the row only.
    let objects: Vec<String> = (0..6).map(|i| format!("page-{i}.txt")).collect();
    for o in &objects {
        dc.write(0, "PUT", &format!("/public/{o}"), "version 1", "");
        for e in 0..4 {
            must_become(
                &format!("edge {e} serves {o}"),
                Duration::from_secs(10),
                || dc.get(e, o) == (200, "version 1".into()),
            );
        }
    }

    // Overwrites through each node: every edge purged before the answer, and is named.
    for (k, o) in objects.iter().enumerate() {
        let node = k % 4;
        let body = format!("version 2 via node {node}");
        let r = dc.write(node, "PUT", &format!("/public/{o}"), &body, "");
        assert_eq!(r.headers()["x-purge-status"], "complete", "{o}");
        assert_eq!(list(&r, "x-purge-acked"), all, "{o} via node {node}");
        assert!(r.headers().get("x-purge-pending").is_none());
        for e in 0..4 {
            assert_eq!(dc.get(e, o), (200, body.clone()), "{o} at edge {e}");
        }
    }

    // A delete through another node than the writes.
    let r = dc.write(3, "DELETE", "/public/page-0.txt", "", "");
    assert_eq!(r.headers()["x-purge-status"], "complete");
    assert_eq!(list(&r, "x-purge-acked"), all);
    for e in 0..4 {
        assert_eq!(dc.get(e, "page-0.txt").0, 404, "edge {e}");
    }

    // An operator's purge through one node reaches the edges of every node.
    let r = dc
        .ring
        .http()
        .post(format!(
            "{}{}?account=demo&container=public&object=page-1.txt",
            dc.ring.nodes[2].url,
            outpost_proto::paths::PURGE
        ))
        .header("x-outpost-internal", ADMIN_SECRET)
        .header("x-purge-wait", "edges")
        .send()
        .expect("purge");
    assert!(r.status().is_success(), "purge: {}", r.status());
    assert_eq!(r.headers()["x-purge-status"], "complete");
    assert_eq!(list(&r, "x-purge-acked"), all);

    // A stopped edge is waited for until the timeout, then named as pending.
    let e3 = dc.edges[3].pid();
    signal(e3, "-STOP");
    let r = dc.write(1, "PUT", "/public/page-2.txt", "version 3", "1");
    signal(e3, "-CONT");
    assert_eq!(r.headers()["x-purge-status"], "timeout");
    assert_eq!(list(&r, "x-purge-acked"), names(&["e0", "e1", "e2"]));
    assert_eq!(list(&r, "x-purge-pending"), names(&["e3"]));
    must_become("edge 3 catches up", Duration::from_secs(10), || {
        dc.get(3, "page-2.txt") == (200, "version 3".into())
    });

    // A node that is down cannot be asked: it is named, the other edges still acknowledge.
    dc.ring.kill(3);
    let r = dc.write(0, "PUT", "/public/page-3.txt", "version 4", "1");
    assert_eq!(r.headers()["x-purge-status"], "timeout");
    assert_eq!(
        list(&r, "x-purge-unreached"),
        names(&[&format!("127.0.0.1:{}", dc.ring.nodes[3].port)])
    );
    let acked = list(&r, "x-purge-acked");
    assert!(
        names(&["e0", "e1", "e2"]).is_subset(&acked),
        "acked: {acked:?}"
    );
    for e in 0..3 {
        assert_eq!(dc.get(e, "page-3.txt"), (200, "version 4".into()));
    }
}
