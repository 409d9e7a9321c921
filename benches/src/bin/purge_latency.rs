//! Purge latency: one origin and three edges on this machine. For each of N cached objects,
//! time from the origin's DELETE returning to the last edge answering 404 (edges polled in
//! parallel), then the same with `X-Purge-Wait: edges` (time for the DELETE itself to return).
//!
//! Run: `cargo run --release -p outpost-benches --bin purge_latency -- [count]` (default 1000).
//! It starts the `outpost` binary of the same profile (built on demand).

use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_tests::cluster::{EdgeProc, OriginProc};
use reqwest::blocking::Client;

const HOST: &str = "public.demo.cdn.test";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name:<44} n={:<5} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        v.len(),
        percentile(&v, 0.50).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, token) = origin.must_login();
    let api = Client::new();
    let put = |path: &str, hdr: Option<(&str, &str)>, body: &'static [u8]| {
        let mut rb = api
            .put(format!("{storage}{path}"))
            .header("x-auth-token", &token)
            .body(body);
        if let Some((k, v)) = hdr {
            rb = rb.header(k, v);
        }
        assert!(rb.send().expect("put").status().is_success());
    };
    put("/public", Some(("x-container-read", ".r:*")), b"");
    let edges: Vec<Arc<EdgeProc>> = (1..=3)
        .map(|i| {
            Arc::new(EdgeProc::start(
                dir.path(),
                &format!("e{i}"),
                origin.addr,
                "",
            ))
        })
        .collect();
    let clients: Vec<Client> = edges.iter().map(|e| e.client(&[HOST])).collect();
    let get = |i: usize, path: &str| {
        clients[i]
            .get(format!("http://{HOST}:{}{path}", edges[i].addr.port()))
            .send()
            .expect("edge get")
            .status()
            .as_u16()
    };
    origin.must_see_subscribers(3);

    let mut plain = Vec::with_capacity(count);
    let mut waited = Vec::with_capacity(count);
    for round in 0..2 {
        for n in 0..count {
            let path = format!("/o{round}-{n}");
            put(&format!("/public{path}"), None, b"cached bytes");
            for i in 0..3 {
                get(i, &path);
                assert_eq!(get(i, &path), 200);
            }
            let mut rb = api
                .delete(format!("{storage}/public{path}"))
                .header("x-auth-token", &token);
            if round == 1 {
                rb = rb.header("x-purge-wait", "edges");
            }
            let started = Instant::now();
            let r = rb.send().expect("delete");
            assert_eq!(r.status(), 204);
            let returned = Instant::now();
            if round == 1 {
                assert_eq!(r.headers()["x-purge-status"], "complete");
                waited.push(returned - started);
                for i in 0..3 {
                    assert_eq!(
                        get(i, &path),
                        404,
                        "edge {i} served after an acknowledged purge"
                    );
                }
                continue;
            }
            // Poll every edge in parallel until each answers 404.
            let last = std::thread::scope(|s| {
                let handles: Vec<_> = (0..3)
                    .map(|i| {
                        let get = &get;
                        let path = &path;
                        s.spawn(move || {
                            while get(i, path) != 404 {
                                assert!(
                                    returned.elapsed() < Duration::from_secs(10),
                                    "edge {i} never purged"
                                );
                            }
                            Instant::now()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("poller"))
                    .max()
                    .expect("three edges")
            });
            plain.push(last - returned);
        }
    }
    println!(
        "purge latency, 1 origin + 3 edges on one machine, {count} deletes of cached objects each:"
    );
    report("DELETE returned -> last edge 404", plain);
    report("DELETE with X-Purge-Wait (all edges acked)", waited);
}
