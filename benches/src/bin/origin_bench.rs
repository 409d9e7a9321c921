//! Origin load bench: PUT and GET requests/s for 1 KiB objects through the Swift API and
//! through the S3 API of the same node (SigV4-signed, [`outpost_benches::s3`]), MB/s for
//! 64 MiB objects, and listing pages of 10,000 out of a container of 1,000,000 objects.
//!
//! Run: `benches/origin_bench.sh` or
//! `cargo run --release -p outpost-benches --bin origin_bench -- [--clients N] [--small N]
//! [--large N] [--objects N]`. It starts the `outpost` binary of the same profile (built on
//! demand) on a temp dir, drives it over HTTP with N keep-alive clients, and exits non-zero if
//! a listing page takes a second or more.
//!
//! The million listing rows are inserted straight into the metadata store with
//! `Db::put_objects` (batches of 10,000 per transaction) before the node starts: listings read
//! only metadata, and a million HTTP PUTs would measure the PUT path, which the first part
//! already does.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_benches::s3::S3Client;
use outpost_origin::db::{Db, ListParams, Meta, ObjectRow};
use outpost_origin::hlc::Clock;
use outpost_tests::clients::{pseudo_random, Session};
use outpost_tests::cluster::{free_port, OriginProc, USER_KEY};

const S3_KEY: &str = "AKIAOUTPOSTBENCH0001";
const S3_SECRET: &str = "bench-secret-0123456789abcdef";

struct Args {
    clients: usize,
    small: usize,
    large: usize,
    objects: usize,
}

fn args() -> Args {
    let mut a = Args {
        clients: 8,
        small: 4000,
        large: 4,
        objects: 1_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v: usize = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} needs a number"));
        match k.as_str() {
            "--clients" => a.clients = v.max(1),
            "--small" => a.small = v.max(1),
            "--large" => a.large = v.max(1),
            "--objects" => a.objects = v.max(10_000),
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

/// Runs `total` requests spread over `clients` threads; returns requests per second.
fn rate(
    clients: usize,
    total: usize,
    f: impl Fn(&Session, usize) + Sync + Send + 'static,
    api: &Session,
) -> f64 {
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            // One keep-alive connection pool per client thread.
            let api = Session::must_login(
                api.storage.split("/v1/").next().expect("base URL"),
                "demo:demo",
                USER_KEY,
            );
            let (f, next) = (Arc::clone(&f), Arc::clone(&next));
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                f(&api, i);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// As [`rate`], with one S3 client (its own connection pool) per thread.
fn s3_rate(
    clients: usize,
    total: usize,
    f: impl Fn(&S3Client, usize) + Sync + Send + 'static,
    api: &S3Client,
) -> f64 {
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let api = api.fresh();
            let (f, next) = (Arc::clone(&f), Arc::clone(&next));
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                f(&api, i);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// The same 1 KiB PUT and GET workloads through the S3 API; prints them beside the Swift
/// figures (`swift_put`, `swift_get`) as a ratio.
fn s3_small(a: &Args, endpoint: &str, swift_put: f64, swift_get: f64) {
    let s3 = S3Client::new(endpoint, S3_KEY, S3_SECRET);
    let r = s3.send("PUT", "/s3bench", Vec::new());
    assert_eq!(r.status().as_u16(), 200, "CreateBucket");
    let body = pseudo_random(1, 1024);
    let put = s3_rate(
        a.clients,
        a.small,
        move |s, i| s.must_put(&format!("/s3bench/small/{i}"), body.clone()),
        &s3,
    );
    println!(
        "S3 PUT 1 KiB   {:>6} requests, {:>2} clients: {:>9.0} req/s ({:.0}% of Swift)",
        a.small,
        a.clients,
        put,
        100.0 * put / swift_put
    );
    let gets = a.small * 5;
    let n = a.small;
    let get = s3_rate(
        a.clients,
        gets,
        move |s, i| {
            let (status, got) = s.must_get(&format!("/s3bench/small/{}", (i * 7919) % n));
            assert!(status == 200 && got.len() == 1024);
        },
        &s3,
    );
    println!(
        "S3 GET 1 KiB   {:>6} requests, {:>2} clients: {:>9.0} req/s ({:.0}% of Swift)",
        gets,
        a.clients,
        get,
        100.0 * get / swift_get
    );
}

fn small_and_large(a: &Args) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3_port = free_port();
    let origin = OriginProc::start_with(
        dir.path(),
        &format!(
            "[s3]\nlisten = \"127.0.0.1:{s3_port}\"\n[[s3.keys]]\naccess_key = \"{S3_KEY}\"\n\
             secret_key = \"{S3_SECRET}\"\naccount = \"demo\"\nuser = \"demo\"\n"
        ),
        None,
    );
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/bench", vec![], &[], 201);
    let body = pseudo_random(1, 1024);

    let b = body.clone();
    let put = rate(
        a.clients,
        a.small,
        move |s, i| s.must_put(&format!("/bench/small/{i}"), b.clone(), &[], 201),
        &api,
    );
    println!(
        "PUT 1 KiB      {:>6} requests, {:>2} clients: {:>9.0} req/s",
        a.small, a.clients, put
    );
    let gets = a.small * 5;
    let n = a.small;
    let get = rate(
        a.clients,
        gets,
        move |s, i| {
            let (status, got) = s.must_get(&format!("/bench/small/{}", (i * 7919) % n), &[]);
            assert!(status == 200 && got.len() == 1024);
        },
        &api,
    );
    println!(
        "GET 1 KiB      {:>6} requests, {:>2} clients: {:>9.0} req/s",
        gets, a.clients, get
    );
    s3_small(a, &format!("http://127.0.0.1:{s3_port}"), put, get);

    let big = pseudo_random(64, 64 << 20);
    let start = Instant::now();
    for i in 0..a.large {
        api.must_put(&format!("/bench/large/{i}"), big.clone(), &[], 201);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "PUT 64 MiB     {:>6} objects, sequential: {:>9.0} MB/s",
        a.large,
        (a.large * 64) as f64 * 1.048_576 / secs
    );
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..a.large {
        let mut r = api.send("GET", &format!("/bench/large/{i}"), &[]);
        assert_eq!(r.status(), 200);
        let mut n = 0usize;
        loop {
            let k = r.read(&mut buf).expect("read body");
            if k == 0 {
                break;
            }
            n += k;
        }
        assert_eq!(n, 64 << 20);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "GET 64 MiB     {:>6} objects, sequential: {:>9.0} MB/s",
        a.large,
        (a.large * 64) as f64 * 1.048_576 / secs
    );
}

/// A listing case: its name, the store query, the same as HTTP query parameters.
type Case = (&'static str, ListParams, Vec<(&'static str, String)>);

/// `photos/<dir>/<file>.jpg`: 1,000 objects per pseudo-directory.
fn name(i: usize) -> String {
    format!("photos/{:04}/{:07}.jpg", i / 1000, i)
}

fn listing(a: &Args) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("origin");
    std::fs::create_dir_all(&data).expect("data dir");
    let db = Db::open(&data).expect("open db");
    let clock = Clock::new();
    db.ensure_account("demo", clock.now()).expect("account");
    db.put_container("demo", "big", clock.now(), &[])
        .expect("container");
    let start = Instant::now();
    let mut i = 0;
    while i < a.objects {
        let rows: Vec<ObjectRow> = (i..(i + 10_000).min(a.objects))
            .map(|j| ObjectRow {
                account: "demo".into(),
                container: "big".into(),
                name: name(j),
                ts: clock.now(),
                deleted: false,
                size: 1024,
                etag: "0f343b0931126a20f133d67c2b018a3b".into(),
                content_type: "image/jpeg".into(),
                meta: Meta::new(),
                delete_at: None,
                slo: false,
                part: 0,
                listing_only: false,
            })
            .collect();
        db.put_objects(&rows).expect("bulk insert");
        i += rows.len();
    }
    println!(
        "listing: {} objects inserted in {:.1} s (one transaction per 10,000)",
        a.objects,
        start.elapsed().as_secs_f64()
    );
    let mid = name(a.objects / 2);
    let cases: Vec<Case> = vec![
        ("first page", ListParams::default(), vec![]),
        (
            "from the middle (marker)",
            ListParams {
                marker: Some(mid.clone()),
                ..ListParams::default()
            },
            vec![("marker", mid.clone())],
        ),
        (
            "reverse",
            ListParams {
                reverse: true,
                ..ListParams::default()
            },
            vec![("reverse", "true".into())],
        ),
        (
            "prefix + delimiter (dirs)",
            ListParams {
                prefix: "photos/".into(),
                delimiter: Some("/".into()),
                ..ListParams::default()
            },
            vec![("prefix", "photos/".into()), ("delimiter", "/".into())],
        ),
    ];
    let mut ok = true;
    let mut times = Vec::new();
    for (what, mut p, _) in cases.clone() {
        p.limit = 10_000;
        let start = Instant::now();
        let page = db.list_objects("demo", "big", &p).expect("list");
        times.push((what, page.len(), start.elapsed()));
    }
    drop(db);
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    for ((what, n, db_time), (_, _, q)) in times.into_iter().zip(cases) {
        let mut q = q;
        q.push(("limit", "10000".into()));
        q.push(("format", "json".into()));
        let start = Instant::now();
        let r = api.req("GET", "/big").query(&q).send().expect("listing");
        assert_eq!(r.status(), 200);
        let body = r.bytes().expect("body");
        let http_time = start.elapsed();
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(entries.len(), n, "{what}");
        println!(
            "listing page of {n:>5} of {} — {what:<26} store {:>7.1} ms   HTTP+JSON {:>7.1} ms ({} KiB)",
            a.objects,
            db_time.as_secs_f64() * 1e3,
            http_time.as_secs_f64() * 1e3,
            body.len() / 1024
        );
        ok &= http_time < Duration::from_secs(1);
    }
    ok
}

fn main() {
    let a = args();
    small_and_large(&a);
    if !listing(&a) {
        eprintln!("FAIL: a listing page took a second or more");
        std::process::exit(1);
    }
}
