//! Video through the real edge: an HLS player following relative URLs from a path-token URL,
//! the range grace after a token expires mid-playback, and headless Chromium playing and
//! seeking an MP4 (made with ffmpeg) from a private container through a pubcookie session on a
//! custom domain.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost_auth::token::{self, Claims};
use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind};
use outpost_tests::clients::{pseudo_random, Session};
use outpost_tests::cluster::{EdgeProc, OriginProc, USER_KEY};
use outpost_tests::which;
use reqwest::blocking::{Client, Response};

const KEY_SECRET: &str = "video-test-token-secret-0123456789";
const HOST: &str = "private.demo.cdn.test";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn key() -> TokenKey {
    TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(KEY_SECRET),
        not_before: None,
        not_after: None,
    })
    .expect("key")
}

/// Swift calls as the demo user.
fn login(origin: &OriginProc) -> Session {
    Session::must_login(&origin.url, "demo:demo", USER_KEY)
}

/// A private container `private` with an HLS show: master → media playlist → 3 segments.
fn hls_setup(api: &Session) -> Vec<(String, Vec<u8>)> {
    api.must("PUT", "/private", &[], vec![]);
    api.must(
        "POST",
        "",
        &[("x-account-outpost-key-k1", KEY_SECRET)],
        vec![],
    );
    let mut files = vec![
        (
            "show/master.m3u8".to_owned(),
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=1280x720\n720p/index.m3u8\n"
                .to_vec(),
        ),
        (
            "show/720p/index.m3u8".to_owned(),
            b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg0.ts\n#EXTINF:4.0,\nseg1.ts\n#EXTINF:4.0,\nseg2.ts\n#EXT-X-ENDLIST\n"
                .to_vec(),
        ),
    ];
    for i in 0..3u64 {
        files.push((
            format!("show/720p/seg{i}.ts"),
            pseudo_random(40 + i, 300_000),
        ));
    }
    for (name, body) in &files {
        let ct = if name.ends_with(".m3u8") {
            "application/vnd.apple.mpegurl"
        } else {
            "video/mp2t"
        };
        api.must(
            "PUT",
            &format!("/private/{name}"),
            &[("content-type", ct)],
            body.clone(),
        );
    }
    files
}

/// Resolves a playlist line against the playlist's URL (relative URLs only, as players do).
fn resolve(base: &str, line: &str) -> String {
    let dir = &base[..=base.rfind('/').expect("a path")];
    format!("{dir}{line}")
}

/// What an HLS player fetches: the master, then each media playlist, then each segment.
fn play(client: &Client, master: &str) -> Vec<(String, Response)> {
    let mut fetched = Vec::new();
    let mut queue = vec![master.to_owned()];
    while let Some(url) = queue.pop() {
        let r = client.get(&url).send().expect("player request");
        if url.ends_with(".m3u8") && r.status() == 200 {
            let text = r.text().expect("playlist");
            for line in text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                queue.push(resolve(&url, line));
            }
            let again = client.get(&url).send().expect("player request");
            fetched.push((url, again));
        } else {
            fetched.push((url, r));
        }
    }
    fetched
}

#[test]
fn hls_player_follows_relative_urls_from_a_path_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = login(&origin);
    let files = hls_setup(&api);
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let client = edge.client(&[HOST]);
    let port = edge.addr.port();
    let tok = token::sign(
        &Claims::new("demo", TokenKind::Url, "/private/show", now() + 300),
        &key(),
    )
    .expect("sign");
    // The edge learns the key from the change feed.
    let master = format!("http://{HOST}:{port}/.op/{tok}/show/master.m3u8");
    let start = Instant::now();
    while client.get(&master).send().expect("probe").status() != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "key never reached the edge"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let fetched = play(&client, &master);
    assert_eq!(fetched.len(), 5, "master, media playlist, 3 segments");
    for (url, r) in fetched {
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["cache-control"], "private", "{url}");
        let name = url
            .split(&format!("/.op/{tok}/"))
            .nth(1)
            .expect("the token stays in every derived URL");
        let body = r.bytes().expect("body");
        let want = &files.iter().find(|(n, _)| n == name).expect("known file").1;
        assert!(body[..] == want[..], "{name}: wrong bytes");
        // The same URL without the token is refused.
        let bare = format!("http://{HOST}:{port}/{name}");
        let r = client.get(&bare).send().expect("bare request");
        assert_eq!(r.status(), 403, "{bare}");
    }

    // The token's scope ends at the show: another path under the container is refused.
    let r = client
        .get(format!("http://{HOST}:{port}/.op/{tok}/other/master.m3u8"))
        .send()
        .expect("request");
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-outpost-deny"], "wrong-scope");
}

#[test]
fn ranges_of_a_started_video_get_grace_past_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = login(&origin);
    hls_setup(&api);
    let edge = EdgeProc::start(
        dir.path(),
        "e1",
        origin.addr,
        "[access]\nleeway = \"0s\"\nrange_grace = \"60s\"\n",
    );
    let client = edge.client(&[HOST]);
    let port = edge.addr.port();
    let probe = token::sign(
        &Claims::new("demo", TokenKind::Url, "/private/show", now() + 300),
        &key(),
    )
    .expect("sign");
    let url = |tok: &str, seg: u32| format!("http://{HOST}:{port}/.op/{tok}/show/720p/seg{seg}.ts");
    let start = Instant::now();
    while client.get(url(&probe, 0)).send().expect("probe").status() != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "key never reached the edge"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A token that expires in 2 s; playback of seg0 starts with a range.
    let tok = token::sign(
        &Claims::new("demo", TokenKind::Url, "/private/show", now() + 2),
        &key(),
    )
    .expect("sign");
    let ranged = |seg: u32, range: &str| {
        client
            .get(url(&tok, seg))
            .header("range", range)
            .send()
            .expect("request")
    };
    assert_eq!(ranged(0, "bytes=0-99").status(), 206);

    // Expiry: a further segment is denied with `expired` …
    let start = Instant::now();
    loop {
        let r = client.get(url(&tok, 1)).send().expect("request");
        if r.status() == 403 {
            assert_eq!(r.headers()["x-outpost-deny"], "expired");
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the token never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // … while further ranges of the object that was playing go on within the grace.
    let r = ranged(0, "bytes=100-199");
    assert_eq!(
        r.status(),
        206,
        "a range of the started object within the grace"
    );
    // Not a whole-object request, not another object.
    let r = client.get(url(&tok, 0)).send().expect("request");
    assert_eq!(r.status(), 403, "no grace without a Range");
    assert_eq!(r.headers()["x-outpost-deny"], "expired");
    let r = ranged(2, "bytes=0-99");
    assert_eq!(r.status(), 403, "no grace for an object never authorized");
    assert_eq!(r.headers()["x-outpost-deny"], "expired");
}

fn chromium() -> Option<std::path::PathBuf> {
    which("chromium").or_else(|| which("chromium-browser"))
}

/// Makes a real MP4 (H.264, 20 s, noisy so it is a few MB) with ffmpeg.
fn make_mp4(path: &Path) {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=20:size=320x240:rate=25,noise=alls=30:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "2M",
            "-maxrate",
            "2M",
            "-bufsize",
            "1M",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(path)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Access-log lines of the edge (JSON, from its log spool under `dir`).
fn access_log_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for f in outpost_tests::clients::walk(dir) {
        let Ok(text) = std::fs::read_to_string(dir.join(&f)) else {
            continue;
        };
        for l in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                if v.get("status").is_some() && v.get("object").is_some() {
                    lines.push(v);
                }
            }
        }
    }
    lines
}

#[test]
fn chromium_plays_and_seeks_a_private_mp4_through_a_session() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let Some(_) = which("ffmpeg") else {
        eprintln!("SKIPPED: ffmpeg is not installed (apt-get install ffmpeg)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("movie.mp4");
    make_mp4(&mp4);
    let movie = std::fs::read(&mp4).expect("read mp4");
    assert!(movie.len() > 2 << 20, "the MP4 spans several slices");

    let origin = OriginProc::start(dir.path());
    let api = login(&origin);
    const SITE: &str = "watch.localhost";
    api.must("PUT", "/private", &[], vec![]);
    api.must(
        "POST",
        "",
        &[
            ("x-account-outpost-key-k1", KEY_SECRET),
            ("x-account-meta-outpost-domains", SITE),
        ],
        vec![],
    );
    api.must(
        "PUT",
        "/private/movie.mp4",
        &[("content-type", "video/mp4")],
        movie.clone(),
    );
    let page = r#"<!doctype html><html><body><p>player</p>
<video id="v" src="/private/movie.mp4" muted playsinline preload="auto"></video>
<script>
const v = document.getElementById('v');
const d = document.body.dataset;
v.addEventListener('loadedmetadata', () => { d.duration = v.duration; v.currentTime = v.duration / 2; });
v.addEventListener('seeked', () => {
  if (d.seeked) return;
  d.seeked = v.currentTime;
  v.play().catch(e => { d.playError = e.name; });
});
v.addEventListener('timeupdate', () => {
  if (d.seeked && v.currentTime > parseFloat(d.seeked) + 1.0) { d.advanced = v.currentTime; }
});
v.addEventListener('error', () => { d.error = v.error ? v.error.code : 'unknown'; });
</script></body></html>"#;
    api.must(
        "PUT",
        "/private/index.html",
        &[("content-type", "text/html")],
        page.as_bytes().to_vec(),
    );

    let edge = EdgeProc::start(
        dir.path(),
        "e1",
        origin.addr,
        "cache.slice_size = \"256 KiB\"\n[log]\nflush_interval = \"100ms\"\n",
    );
    let port = edge.addr.port();
    let c = edge.client(&[SITE]);
    let start = Instant::now();
    loop {
        let s = c
            .get(format!("http://{SITE}:{port}/private/index.html"))
            .send()
            .expect("probe")
            .status();
        if s == 403 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "edge never learned {SITE} ({s})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut grant = Claims::new("demo", TokenKind::Grant, "/private", now() + 60);
    grant.nonce = Some("video-nonce".into());
    let grant = token::sign(&grant, &key()).expect("sign");
    let login =
        format!("http://{SITE}:{port}/.outpost/login?grant={grant}&next=/private/index.html");
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--autoplay-policy=no-user-gesture-required",
            "--virtual-time-budget=30000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(&login)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("player"), "the page did not load: {dom}");
    assert!(!dom.contains("data-error"), "the video failed: {dom}");
    assert!(
        dom.contains("data-seeked"),
        "the player never seeked: {dom}"
    );
    assert!(
        dom.contains("data-advanced"),
        "playback did not advance after the seek: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The edge's access log shows the seek served by a range starting mid-file.
    let edge_dir = dir.path().join("e1-cache");
    let start = Instant::now();
    loop {
        let lines = access_log_lines(&edge_dir);
        let seek = lines.iter().find(|l| {
            l["object"] == "movie.mp4"
                && l["status"] == 206
                && l["range"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.split('-').next())
                    .and_then(|a| a.parse::<u64>().ok())
                    .is_some_and(|a| a > 0)
        });
        if let Some(l) = seek {
            eprintln!("seek in the edge log: {l}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no mid-file range of movie.mp4 in the edge's access log ({} lines)",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Only slices were pulled from the origin, never the whole file twice.
    let pulled = origin.must_count_get_bytes();
    assert!(
        pulled <= movie.len() as u64 + page.len() as u64,
        "the origin sent {pulled} bytes for a {} byte movie",
        movie.len()
    );
}
