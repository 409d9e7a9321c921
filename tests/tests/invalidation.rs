//! Instant invalidation: one origin, three real edges following its change feed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost_auth::pubcookie;
use outpost_auth::token::ScopeClaim;
use outpost_auth::{Secret, TokenKey, TokenKeySpec};
use outpost_tests::cluster::{EdgeProc, OriginProc, SECRET};
use reqwest::blocking::{Client, Response};

const KEY_SECRET: &str = "invalidation-token-secret-0123456789";
const HOST: &str = "public.demo.cdn.test";

struct Cluster {
    _dir: tempfile::TempDir,
    origin: OriginProc,
    edges: Vec<EdgeProc>,
    api: Client,
    storage: String,
    token: String,
}

impl Cluster {
    fn start(edges: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = OriginProc::start(dir.path());
        let (storage, token) = origin.must_login();
        let c = Cluster {
            edges: (0..edges)
                .map(|i| EdgeProc::start(dir.path(), &format!("e{}", i + 1), origin.addr, ""))
                .collect(),
            _dir: dir,
            origin,
            api: Client::new(),
            storage,
            token,
        };
        c.write(
            "PUT",
            "/public",
            &[("x-container-read", ".r:*,.rlistings")],
            vec![],
        );
        c.write(
            "POST",
            "",
            &[("x-account-outpost-key-k1", KEY_SECRET)],
            vec![],
        );
        c.origin.must_see_subscribers(edges);
        c
    }

    /// A write that returns only once every edge applied it (`X-Purge-Wait: edges`).
    fn write(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
        let mut rb = self
            .api
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.storage),
            )
            .header("x-auth-token", &self.token)
            .header("x-purge-wait", "edges")
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().expect("origin request");
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        r
    }

    fn client(&self, edge: &EdgeProc) -> Client {
        edge.client(&[HOST])
    }

    fn get(&self, edge: &EdgeProc, path: &str) -> Response {
        self.client(edge)
            .get(format!("http://{HOST}:{}{path}", edge.addr.port()))
            .send()
            .expect("edge request")
    }
}

fn assert_purge_complete(r: &Response, edges: usize) {
    assert_eq!(r.headers()["x-purge-status"], "complete");
    let acked = r.headers()["x-purge-acked"].to_str().expect("ascii");
    assert_eq!(acked.split(", ").count(), edges, "acked: {acked}");
}

#[test]
fn deletes_overwrites_listings_and_acls_reach_every_edge() {
    let c = Cluster::start(3);
    c.write("PUT", "/public/dir/a.txt", &[], b"version 1".to_vec());
    for e in &c.edges {
        assert_eq!(c.get(e, "/dir/a.txt").text().expect("body"), "version 1");
        assert_eq!(c.get(e, "/dir/a.txt").headers()["x-outpost-cache"], "HIT");
        let listing = c
            .get(e, "/?prefix=dir/&delimiter=/")
            .text()
            .expect("listing");
        assert_eq!(listing, "dir/a.txt\n");
    }

    // Overwrite: new bytes everywhere as soon as the PUT returns.
    let r = c.write("PUT", "/public/dir/a.txt", &[], b"version 2".to_vec());
    assert_purge_complete(&r, 3);
    for e in &c.edges {
        assert_eq!(c.get(e, "/dir/a.txt").text().expect("body"), "version 2");
    }

    // A new object: the cached pseudo-directory listing is updated.
    c.write("PUT", "/public/dir/b.txt", &[], b"b".to_vec());
    for e in &c.edges {
        let listing = c
            .get(e, "/?prefix=dir/&delimiter=/")
            .text()
            .expect("listing");
        assert_eq!(listing, "dir/a.txt\ndir/b.txt\n");
    }

    // Delete with X-Purge-Wait: gone from every edge immediately.
    let r = c.write("DELETE", "/public/dir/a.txt", &[], vec![]);
    assert_purge_complete(&r, 3);
    for e in &c.edges {
        assert_eq!(c.get(e, "/dir/a.txt").status(), 404);
    }

    // Without X-Purge-Wait: gone within the purge latency.
    c.write("PUT", "/public/quick.txt", &[], b"quick".to_vec());
    for e in &c.edges {
        assert_eq!(c.get(e, "/quick.txt").status(), 200);
    }
    let r = c
        .api
        .delete(format!("{}/public/quick.txt", c.storage))
        .header("x-auth-token", &c.token)
        .send()
        .expect("delete");
    assert_eq!(r.status(), 204);
    let deleted = Instant::now();
    for e in &c.edges {
        while c.get(e, "/quick.txt").status() != 404 {
            assert!(
                deleted.elapsed() < Duration::from_secs(2),
                "edge still serves a deleted object"
            );
        }
    }

    // Public → private: the cached copy now needs a grant.
    c.write("PUT", "/public/photo.jpg", &[], b"photo".to_vec());
    for e in &c.edges {
        assert_eq!(c.get(e, "/photo.jpg").status(), 200);
    }
    c.write("POST", "/public", &[("x-container-read", "")], vec![]);
    for e in &c.edges {
        let r = c.get(e, "/photo.jpg");
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-outpost-deny"], "invalid");
    }
}

#[test]
fn explicit_purge_and_session_revocation_fan_out() {
    let c = Cluster::start(3);
    c.write("PUT", "/public/p/one.txt", &[], b"one".to_vec());
    c.write("PUT", "/public/p/two.txt", &[], b"two".to_vec());
    for e in &c.edges {
        for p in ["/p/one.txt", "/p/two.txt"] {
            c.get(e, p);
            assert_eq!(c.get(e, p).headers()["x-outpost-cache"], "HIT");
        }
    }
    // Operator purge by prefix through the origin: every edge drops both entries.
    let r = c
        .api
        .post(format!(
            "{}/internal/purge?account=demo&container=public&prefix=p/",
            c.origin.url
        ))
        .header("x-outpost-internal", SECRET)
        .header("x-purge-wait", "edges")
        .send()
        .expect("purge");
    assert_eq!(r.status(), 200);
    assert_purge_complete(&r, 3);
    for e in &c.edges {
        assert_eq!(c.get(e, "/p/one.txt").headers()["x-outpost-cache"], "MISS");
    }
    // Purge on one edge directly; unauthenticated purges are refused.
    let e1 = &c.edges[0];
    assert_eq!(c.get(e1, "/p/two.txt").headers()["x-outpost-cache"], "MISS");
    let url = format!(
        "{}/.outpost/purge?account=demo&container=public&object=p/two.txt",
        e1.url
    );
    let r = c.api.post(&url).send().expect("purge");
    assert_eq!(r.status(), 401);
    let r = c
        .api
        .post(&url)
        .header("x-outpost-internal", SECRET)
        .send()
        .expect("purge");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("body").trim(), "{\"purged\":1}");
    let r = c
        .api
        .post(&url)
        .header("x-outpost-internal", SECRET)
        .send()
        .expect("purge");
    assert_eq!(
        r.text().expect("body").trim(),
        "{\"purged\":0}",
        "idempotent"
    );

    // A session works on every edge until it is revoked, then nowhere.
    c.write("PUT", "/private", &[], vec![]);
    c.write("PUT", "/private/s.txt", &[], b"secret".to_vec());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let key = TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(KEY_SECRET),
        not_before: None,
        not_after: None,
    })
    .expect("key");
    let scopes = vec![ScopeClaim {
        pattern: "/private".into(),
        methods: None,
    }];
    let claims = pubcookie::session_claims(
        "demo",
        scopes,
        Some("sess-1"),
        Some("user-1"),
        now + 3600,
        600,
        now,
    );
    let cookie = format!(
        "outpost_session={}",
        pubcookie::sign_session(&claims, &key).expect("sign").token
    );
    let fetch = |e: &EdgeProc| {
        e.client(&["private.demo.cdn.test"])
            .get(format!(
                "http://private.demo.cdn.test:{}/s.txt",
                e.addr.port()
            ))
            .header("cookie", &cookie)
            .send()
            .expect("request")
    };
    for e in &c.edges {
        assert_eq!(fetch(e).status(), 200);
    }
    let r = c.write(
        "POST",
        "",
        &[("x-outpost-revoke-session", "sess-1")],
        vec![],
    );
    assert_purge_complete(&r, 3);
    for e in &c.edges {
        let r = fetch(e);
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-outpost-deny"], "revoked");
    }
}

#[test]
fn an_edge_that_was_down_catches_up_on_restart() {
    let mut c = Cluster::start(2);
    for i in 0..100 {
        c.write(
            "PUT",
            &format!("/public/o{i}.txt"),
            &[],
            format!("old {i}").into_bytes(),
        );
    }
    for i in 0..100 {
        assert_eq!(c.get(&c.edges[1], &format!("/o{i}.txt")).status(), 200);
    }
    c.edges[1].kill();
    // 100 changes while e2 is down (X-Purge-Wait would time out waiting for it: skip it).
    for i in 0..100 {
        let r = c
            .api
            .put(format!("{}/public/o{i}.txt", c.storage))
            .header("x-auth-token", &c.token)
            .body(format!("new {i}"))
            .send()
            .expect("put");
        assert_eq!(r.status(), 201);
    }
    c.edges[1].restart();
    let e2 = &c.edges[1];
    for i in 0..100 {
        assert_eq!(
            c.get(e2, &format!("/o{i}.txt")).text().expect("body"),
            format!("new {i}")
        );
    }
}

/// A random mix of writes and reads across three edges: no read that started after a write
/// was acknowledged with `X-Purge-Wait` returns bytes that write replaced or deleted.
#[test]
fn checker_no_read_after_acknowledged_purge_sees_old_bytes() {
    let c = Arc::new(Cluster::start(3));
    // body → instant it stopped being current (set when its replacement was acknowledged)
    let superseded: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = Instant::now() + Duration::from_secs(6);
    let keys = 8;
    let writer = {
        let (c, superseded) = (Arc::clone(&c), Arc::clone(&superseded));
        std::thread::spawn(move || {
            let mut current: HashMap<usize, String> = HashMap::new();
            let mut n = 0u64;
            let mut writes = 0;
            while Instant::now() < stop {
                n += 1;
                let k = (n * 7919 % keys as u64) as usize;
                let delete = n % 3 == 0 && current.contains_key(&k);
                let path = format!("/public/k{k}");
                let mut previous = None;
                let r = if delete {
                    c.write("DELETE", &path, &[], vec![])
                } else {
                    let body = format!("k{k} v{n}");
                    let r = c.write("PUT", &path, &[], body.clone().into_bytes());
                    previous = current.insert(k, body);
                    r
                };
                let acked = Instant::now();
                assert_eq!(r.headers()["x-purge-status"], "complete");
                // The body this write replaced or deleted is dead from now on.
                let old = if delete { current.remove(&k) } else { previous };
                if let Some(old) = old {
                    superseded.lock().expect("lock").insert(old, acked);
                }
                writes += 1;
            }
            writes
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut i = r as u64;
                while Instant::now() < stop {
                    i += 1;
                    let k = (i * 31 % keys as u64) as usize;
                    let started = Instant::now();
                    let resp = c.get(&c.edges[r], &format!("/k{k}"));
                    if resp.status() == 200 {
                        seen.push((resp.text().expect("body"), started));
                    }
                }
                seen
            })
        })
        .collect();
    let writes = writer.join().expect("writer");
    let mut reads = 0;
    let superseded = superseded.lock().expect("lock");
    for r in readers {
        for (body, started) in r.join().expect("reader") {
            reads += 1;
            if let Some(dead_at) = superseded.get(&body) {
                assert!(
                    started < *dead_at,
                    "a read that started after the purge of {body:?} was acknowledged returned it"
                );
            }
        }
    }
    assert!(
        writes > 10 && reads > 50,
        "too little traffic: {writes} writes, {reads} reads"
    );
}
