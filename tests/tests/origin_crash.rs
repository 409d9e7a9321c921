//! Durability: `kill -9` the real origin in the middle of a stream of concurrent PUTs, restart
//! it on the same data directory, and check that every PUT answered 201 is there with its
//! bytes, and that nothing partial is listed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outpost_tests::clients::{md5_hex, must_eventually, pseudo_random, Session};
use outpost_tests::cluster::{OriginProc, USER_KEY};

const WRITERS: usize = 6;

/// Size of the `n`-th object of a writer: mostly small, some large enough to be mid-body
/// when the kill lands.
fn size_of(n: usize) -> usize {
    match n % 10 {
        0 => 3 * 1024 * 1024 + n,
        1..=3 => 200 * 1024 + n,
        _ => 1 + (n * 131) % 8000,
    }
}

fn seed(writer: usize, n: usize) -> u64 {
    (writer as u64) << 32 | n as u64
}

/// What a name may hold after the crash: its last acknowledged version, or the version whose
/// PUT was in flight when the origin died (it may have committed without answering).
#[derive(Debug, Clone, Default)]
struct Allowed {
    acked: String,
    in_flight: Option<String>,
}

/// Writers PUT new objects (and overwrite a shared one) until the origin dies; returns, for
/// every name with an acknowledged (201) write, what it may hold now.
fn write_until_killed(origin: &mut OriginProc, round: usize) -> BTreeMap<String, Allowed> {
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    let acked: Arc<Mutex<BTreeMap<String, Allowed>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let interrupted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (api, acked, count, interrupted, stop) = (
                api.clone(),
                Arc::clone(&acked),
                Arc::clone(&count),
                Arc::clone(&interrupted),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // Every third write overwrites one name per writer: an interrupted
                    // overwrite must leave the previous version intact.
                    let name = if n % 3 == 2 {
                        format!("r{round}/w{w}/shared")
                    } else {
                        format!("r{round}/w{w}/o{n}")
                    };
                    let data = pseudo_random(seed(w, n + round * 100_000), size_of(n));
                    let md5 = md5_hex(&data);
                    if let Some(a) = acked.lock().expect("lock").get_mut(&name) {
                        a.in_flight = Some(md5.clone());
                    }
                    let r = api
                        .req("PUT", &format!("/crash/{name}"))
                        .header("etag", &md5)
                        .body(data)
                        .send();
                    match r {
                        Ok(r) if r.status() == 201 => {
                            acked.lock().expect("lock").insert(
                                name,
                                Allowed {
                                    acked: md5,
                                    in_flight: None,
                                },
                            );
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => panic!("PUT {name}: unexpected {}", r.status()),
                        // The origin died under us: this write was never acknowledged.
                        Err(_) => {
                            interrupted.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    // Let a good number of writes land, then kill -9 while the writers are mid-stream.
    must_eventually("writes acknowledged", Duration::from_secs(120), || {
        count.load(Ordering::Relaxed) >= 150
    });
    origin.kill();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer thread");
    }
    assert!(
        interrupted.load(Ordering::Relaxed) > 0,
        "the kill interrupted no PUT"
    );
    let acked = acked.lock().expect("lock").clone();
    acked
}

/// Every acknowledged write reads back identically; every listed object downloads with its
/// listed size and ETag; the counters agree with the listing; no temp files survive.
fn must_be_consistent(origin: &OriginProc, acked: &BTreeMap<String, Allowed>) {
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    let listed = api.must_list_all("crash");
    let by_name: BTreeMap<&str, (u64, &str)> = listed
        .iter()
        .map(|(n, b, h)| (n.as_str(), (*b, h.as_str())))
        .collect();
    for (name, allowed) in acked {
        let (status, body) = api.must_get(&format!("/crash/{name}"), &[]);
        assert_eq!(status, 200, "acknowledged {name} is gone");
        let got = md5_hex(&body);
        assert!(
            got == allowed.acked || allowed.in_flight.as_ref() == Some(&got),
            "acknowledged {name} holds other bytes: {got} not in {allowed:?}"
        );
        assert_eq!(
            by_name.get(name.as_str()).map(|x| x.1),
            Some(got.as_str()),
            "{name} is listed as it reads"
        );
    }
    let mut bytes = 0;
    for (name, size, hash) in &listed {
        let (status, body) = api.must_get(&format!("/crash/{name}"), &[]);
        assert_eq!(status, 200, "listed {name} cannot be read");
        assert_eq!(body.len() as u64, *size, "listed {name} is partial");
        assert_eq!(&md5_hex(&body), hash, "listed {name} has other bytes");
        bytes += size;
    }
    let head = api.send("HEAD", "/crash", &[]);
    assert_eq!(
        head.headers()["x-container-object-count"],
        listed.len().to_string().as_str()
    );
    assert_eq!(
        head.headers()["x-container-bytes-used"],
        bytes.to_string().as_str()
    );
    let tmp = std::fs::read_dir(origin.data.join("tmp"))
        .expect("tmp dir")
        .count();
    assert_eq!(tmp, 0, "temp files survived the restart");
}

#[test]
fn kill_9_during_concurrent_puts_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/crash", vec![], &[], 201);

    let mut all = BTreeMap::new();
    for round in 0..2 {
        let acked = write_until_killed(&mut origin, round);
        assert!(
            acked.len() >= 150 / 3,
            "round {round}: {} acked",
            acked.len()
        );
        origin.restart();
        all.extend(acked);
        must_be_consistent(&origin, &all);
    }
    // The restarted node takes writes again, and its clock never goes back.
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/crash/after", b"after".to_vec(), &[], 201);
    let (status, body) = api.must_get("/crash/after", &[]);
    assert_eq!((status, body.as_slice()), (200, &b"after"[..]));
}

/// A small tmpfs mounted over the origin's data directory; unmounted on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(at: &std::path::Path, size: &str) -> Option<TinyDisk> {
        std::fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| TinyDisk(at.to_owned()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk answers 507, stores nothing partial, and the node keeps serving.
#[test]
fn full_disk_is_507_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Declared before the origin so it is unmounted after the origin is killed.
    let Some(_disk) = TinyDisk::mount(&dir.path().join("origin"), "4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/c", vec![], &[], 201);
    api.must_put("/c/keep", b"keep".to_vec(), &[], 201);
    let big = pseudo_random(9, 6 << 20);
    let r = api.req("PUT", "/c/big").body(big).send().expect("PUT");
    assert_eq!(r.status(), 507);
    // Fill it up with objects that fit one at a time.
    let chunk = pseudo_random(10, 700 << 10);
    let mut refused = 0;
    for i in 0..12 {
        let r = api
            .req("PUT", &format!("/c/fill{i}"))
            .body(chunk.clone())
            .send()
            .expect("PUT");
        match r.status().as_u16() {
            201 => {}
            507 => refused += 1,
            s => panic!("fill{i}: {s}"),
        }
    }
    assert!(refused > 0, "the disk never filled up");
    assert_eq!(api.send("HEAD", "/c/big", &[]).status(), 404);
    let tmp = std::fs::read_dir(origin.data.join("tmp"))
        .expect("tmp")
        .count();
    assert_eq!(tmp, 0, "refused bodies left temp files");
    // Everything listed is whole; the old object is intact.
    for (name, size, hash) in api.must_list_all("c") {
        let (status, body) = api.must_get(&format!("/c/{name}"), &[]);
        assert_eq!(status, 200);
        assert_eq!((body.len() as u64, md5_hex(&body)), (size, hash), "{name}");
    }
    let (status, body) = api.must_get("/c/keep", &[]);
    assert_eq!((status, body.as_slice()), (200, &b"keep"[..]));
    // Freeing space makes writes work again.
    assert_eq!(api.send("DELETE", "/c/fill0", &[]).status(), 204);
    api.must_put("/c/after", b"after".to_vec(), &[], 201);
}

/// PUT, POST, DELETE and GET racing on the same few names: no 5xx, every GET body matches its
/// own ETag (an overwrite never tears a response), and the listing ends up agreeing with GETs.
#[test]
fn racing_writes_to_the_same_names_never_tear_or_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/race", vec![], &[], 201);
    let checked = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (api, checked) = (api.clone(), Arc::clone(&checked));
            std::thread::spawn(move || {
                for i in 0..150usize {
                    let name = format!("/race/n{}", (i + t) % 3);
                    let r = match (i * 7 + t) % 5 {
                        0 | 1 => {
                            let data = pseudo_random((t * 1000 + i) as u64, 64 * 1024 + i);
                            api.req("PUT", &name).body(data).send()
                        }
                        2 => api
                            .req("POST", &name)
                            .header("x-object-meta-n", i.to_string())
                            .send(),
                        3 => api.req("DELETE", &name).send(),
                        _ => api.req("GET", &name).send(),
                    };
                    let r = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                    let status = r.status().as_u16();
                    assert!(status < 500, "{name}: {status}");
                    if status == 200 && r.headers().contains_key("x-timestamp") {
                        let etag = r.headers()["etag"]
                            .to_str()
                            .expect("ascii")
                            .trim_matches('"')
                            .to_owned();
                        let body = r.bytes().expect("a whole body");
                        if !body.is_empty() {
                            assert_eq!(md5_hex(&body), etag, "{name}: torn body");
                            checked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("racer");
    }
    assert!(
        checked.load(Ordering::Relaxed) > 0,
        "no GET found an object"
    );
    for (name, size, hash) in api.must_list_all("race") {
        let (status, body) = api.must_get(&format!("/race/{name}"), &[]);
        assert_eq!(status, 200);
        assert_eq!((body.len() as u64, md5_hex(&body)), (size, hash));
    }
}
