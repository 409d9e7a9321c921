//! RFC 9111 with Outpost's own origin: objects carry their own `Cache-Control`/`Expires`, which
//! the edge honours downstream and for its own freshness; objects without freshness
//! information are kept (the change feed purges them), and purges still apply at once.

use outpost_tests::clients::{must_eventually, Session};
use outpost_tests::cluster::{EdgeProc, OriginProc, USER_KEY};

fn cache_status(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("x-outpost-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[test]
fn objects_bring_their_own_freshness_and_purges_still_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must("PUT", "/pub", &[("x-container-read", ".r:*")], vec![]);
    let stale = httpdate::fmt_http_date(std::time::SystemTime::UNIX_EPOCH);
    api.must_put("/pub/plain.txt", b"plain".to_vec(), &[], 201);
    api.must_put(
        "/pub/nocache.txt",
        b"revalidate me".to_vec(),
        &[("cache-control", "no-cache")],
        201,
    );
    api.must_put(
        "/pub/expired.txt",
        b"expired".to_vec(),
        &[("expires", &stale)],
        201,
    );
    api.must_put(
        "/pub/short.txt",
        b"short".to_vec(),
        &[("cache-control", "public, max-age=600")],
        201,
    );
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let c = edge.client(&["pub.demo.cdn.test"]);
    let url = |o: &str| format!("http://pub.demo.cdn.test:{}/{o}", edge.addr.port());
    let get = |o: &str| {
        let r = c.get(url(o)).send().expect("get");
        assert_eq!(r.status(), 200, "{o}");
        r
    };
    let gets_before = origin.must_count_gets();
    // No freshness information: kept (push invalidation), a HIT.
    get("plain.txt");
    assert_eq!(cache_status(&get("plain.txt")), "HIT");
    // The object's own Cache-Control goes downstream and rules the edge's freshness.
    get("short.txt");
    let r = get("short.txt");
    assert_eq!(cache_status(&r), "HIT");
    assert_eq!(r.headers()["cache-control"], "public, max-age=600");
    // no-cache: revalidated with the origin on every use.
    get("nocache.txt");
    let r = get("nocache.txt");
    assert_eq!(cache_status(&r), "REVALIDATED");
    assert_eq!(r.text().expect("body"), "revalidate me");
    // A past Expires: stale at once; the configured stale-while-revalidate (60 s by default
    // with an Outpost origin) answers from the entry and revalidates in the background.
    get("expired.txt");
    let r = get("expired.txt");
    assert_eq!(cache_status(&r), "STALE");
    assert_eq!(r.text().expect("body"), "expired");
    assert_eq!(
        origin.must_count_gets() - gets_before,
        4,
        "each body fetched once"
    );
    must_eventually(
        "304s for no-cache's revalidation and expired's background revalidation",
        std::time::Duration::from_secs(10),
        || origin.must_count_gets_answered(&[304]) == 2,
    );
    // An overwrite of a kept object is purged by the feed: the next read is the new version.
    api.must_put("/pub/plain.txt", b"plain v2".to_vec(), &[], 201);
    must_eventually(
        "the overwrite reaches the edge",
        std::time::Duration::from_secs(10),
        || get("plain.txt").text().expect("body") == "plain v2",
    );
}
