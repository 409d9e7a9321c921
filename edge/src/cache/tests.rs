//! Tests of the tiered storage through pingora's `Storage` / `HandleHit` / `HandleMiss` API.
//! Storages are leaked (pingora wants `&'static`); a "restart" opens a second storage on the
//! same directory after the first went idle, which is what a process restart leaves behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora::cache::eviction::{CacheEntryId, CacheEntryKey};
use pingora::cache::key::CacheHashKey;
use pingora::cache::storage::Storage;
use pingora::cache::storage::{HitHandler, PurgeOutcome, PurgeTarget, PurgeType};
use pingora::cache::trace::{Span, SpanHandle};
use pingora::cache::{CacheKey, CacheMeta};
use pingora::http::ResponseHeader;

use super::*;

const KIB: u64 = 1024;

fn span() -> SpanHandle {
    Span::inactive().handle()
}

fn config(dir: &Path) -> CacheConfig {
    CacheConfig {
        memory_bytes: 1024 * KIB,
        memory_object_max: 64 * KIB,
        disk_dir: dir.to_path_buf(),
        disk_bytes: 16 * 1024 * KIB,
    }
}

fn open(cfg: CacheConfig) -> &'static TieredStorage {
    Box::leak(Box::new(TieredStorage::open(cfg).expect("open")))
}

fn meta(fresh: Duration) -> CacheMeta {
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.append_header("etag", "\"v1\"").unwrap();
    let now = SystemTime::now();
    CacheMeta::new(now + fresh, now, 30, 60, header)
}

/// A body whose every byte depends on its position, so a misplaced chunk shows.
fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

async fn put(s: &'static TieredStorage, key: &CacheKey, body: &[u8]) {
    let mut mh = s
        .get_miss_handler(key, &meta(Duration::from_secs(300)), &span())
        .await
        .unwrap();
    for chunk in body.chunks(10_000) {
        mh.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    mh.write_body(Bytes::new(), true).await.unwrap();
    mh.finish().await.unwrap();
}

async fn hit(s: &'static TieredStorage, key: &CacheKey) -> (CacheMeta, HitHandler) {
    s.lookup(key, &span()).await.unwrap().expect("a hit")
}

fn tier(h: &HitHandler) -> CacheTier {
    h.as_any()
        .downcast_ref::<CacheHit>()
        .expect("our hit")
        .tier()
}

/// Reads the whole body; returns it and the chunk sizes.
async fn read_all(h: &mut HitHandler) -> (Vec<u8>, Vec<usize>) {
    let (mut out, mut sizes) = (Vec::new(), Vec::new());
    while let Some(b) = h.read_body().await.unwrap() {
        sizes.push(b.len());
        out.extend_from_slice(&b);
    }
    (out, sizes)
}

/// The `CacheError` inside a pingora error.
fn cause(e: &pingora::Error) -> &CacheError {
    e.root_cause()
        .downcast_ref::<CacheError>()
        .expect("a CacheError cause")
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).unwrap() {
        let shard = shard.unwrap().path();
        if shard.is_dir() {
            for f in std::fs::read_dir(&shard).unwrap() {
                out.push(f.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn file_of(dir: &Path, key: &CacheKey, ext: &str) -> PathBuf {
    let hash = key.combined_bin();
    match ext {
        "meta" => format::meta_path(dir, &hash),
        _ => format::body_path(dir, &hash),
    }
}

#[tokio::test]
async fn writes_then_hits_from_memory_and_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/v1/AUTH_a/c/small", "");
    assert!(s.lookup(&key, &span()).await.unwrap().is_none());
    let data = body(20_000, 1);
    put(s, &key, &data).await;

    let (m, mut h) = hit(s, &key).await;
    assert_eq!(tier(&h), CacheTier::Memory);
    assert_eq!(m.headers().get("etag").unwrap(), "\"v1\"");
    let (got, sizes) = read_all(&mut h).await;
    assert_eq!(got, data);
    assert_eq!(sizes.len(), 1, "a memory hit is one zero-copy slice");
    assert_eq!(s.stats().memory_entries, 1);
    assert_eq!(s.stats().disk_entries, 1);

    // Restart: the memory tier is empty, the disk tier serves and promotes.
    let s2 = open(config(dir.path()));
    assert_eq!(s2.stats().disk_entries, 1);
    let (m2, mut h2) = hit(s2, &key).await;
    assert_eq!(tier(&h2), CacheTier::Disk);
    assert_eq!(m2.fresh_until(), m.fresh_until());
    assert_eq!(read_all(&mut h2).await.0, data);
    let (_, mut h3) = hit(s2, &key).await;
    assert_eq!(tier(&h3), CacheTier::Memory, "small disk hits are promoted");
    assert_eq!(read_all(&mut h3).await.0, data);
}

#[tokio::test]
async fn large_body_stays_on_disk_and_streams_in_chunks_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/v1/AUTH_a/c/large", "");
    let data = body(300_000, 2);
    put(s, &key, &data).await;
    assert_eq!(s.stats().memory_entries, 0);

    for store in [s, open(config(dir.path()))] {
        let (_, mut h) = hit(store, &key).await;
        assert_eq!(tier(&h), CacheTier::Disk);
        assert_eq!(h.get_eviction_weight() as u64, store.stats().disk_bytes);
        let (got, sizes) = read_all(&mut h).await;
        assert_eq!(got, data);
        assert!(sizes.len() >= 5, "read in chunks: {sizes:?}");
        assert!(sizes.iter().all(|&n| n as u64 <= hit::CHUNK));
        assert_eq!(store.stats().memory_entries, 0, "never in the memory tier");
    }
}

#[tokio::test]
async fn seek_on_memory_and_disk_hits() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let small = CacheKey::new("small", "");
    let large = CacheKey::new("large", "");
    let small_body = body(1000, 3);
    let large_body = body(200_000, 4);
    put(s, &small, &small_body).await;
    put(s, &large, &large_body).await;

    for (key, data, want) in [
        (&small, &small_body, CacheTier::Memory),
        (&large, &large_body, CacheTier::Disk),
    ] {
        let (_, mut h) = hit(s, key).await;
        assert_eq!(tier(&h), want);
        assert!(h.can_seek() && h.can_seek_multipart());
        assert!(h.seek(data.len(), None).is_err(), "start past the end");
        // Ranges as pingora passes them: [start, end), end clamped to the body.
        let len = data.len();
        for (start, end) in [
            (5, None),
            (4, Some(5)),
            (len - 10, Some(len + 100)),
            (0, Some(len)),
        ] {
            h.seek(start, end).unwrap();
            let stop = end.unwrap_or(len).min(len);
            assert_eq!(
                read_all(&mut h).await.0,
                data[start..stop],
                "{start}..{end:?}"
            );
        }
        // Multipart: each part seeks the same handler again, after it was read to the end.
        h.seek_multipart(100, Some(200)).unwrap();
        assert_eq!(read_all(&mut h).await.0, data[100..200]);
        h.seek_multipart(0, Some(3)).unwrap();
        assert_eq!(read_all(&mut h).await.0, data[..3]);
    }
    // A seek across chunk boundaries on disk.
    let (_, mut h) = hit(s, &large).await;
    h.seek(70_000, Some(150_001)).unwrap();
    let (got, sizes) = read_all(&mut h).await;
    assert_eq!(got, large_body[70_000..150_001]);
    assert!(sizes.len() > 1);
}

async fn pending(h: &mut HitHandler) -> bool {
    tokio::time::timeout(Duration::from_millis(30), h.read_body())
        .await
        .is_err()
}

#[tokio::test]
async fn reader_started_during_fill_gets_the_full_body() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/growing", "");
    let data = body(250_000, 5);
    let mut mh = s
        .get_miss_handler(&key, &meta(Duration::from_secs(60)), &span())
        .await
        .unwrap();
    assert_eq!(s.stats().fills_in_progress, 1);

    let (_, mut early) = hit(s, &key).await;
    assert_eq!(tier(&early), CacheTier::Fill);
    assert!(early.can_seek(), "ranges may be served from a fill");
    let tag = mh.streaming_write_tag().unwrap().to_vec();
    let (_, mut own) = s
        .lookup_streaming_write(&key, Some(&tag), &span())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tier(&own), CacheTier::Fill);
    assert!(s
        .lookup_streaming_write(&key, Some(&[9; 8]), &span())
        .await
        .unwrap()
        .is_none());
    assert!(pending(&mut early).await, "nothing written yet");

    let mut got = Vec::new();
    mh.write_body(Bytes::copy_from_slice(&data[..1000]), false)
        .await
        .unwrap();
    got.extend_from_slice(&early.read_body().await.unwrap().unwrap());
    assert_eq!(got, data[..1000]);
    assert!(pending(&mut early).await);

    let reader = tokio::spawn(async move {
        let mut got = got;
        got.extend(read_all(&mut early).await.0);
        got
    });
    for chunk in data[1000..].chunks(30_000) {
        mh.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    // A reader arriving mid-fill starts from byte 0.
    let (_, mut late) = hit(s, &key).await;
    mh.write_body(Bytes::new(), true).await.unwrap();
    mh.finish().await.unwrap();

    assert_eq!(reader.await.unwrap(), data);
    assert_eq!(read_all(&mut late).await.0, data);
    assert_eq!(read_all(&mut own).await.0, data);
    assert_eq!(s.stats().fills_in_progress, 0);
    let (_, mut after) = hit(s, &key).await;
    assert_eq!(tier(&after), CacheTier::Disk);
    assert_eq!(read_all(&mut after).await.0, data);
}

#[tokio::test]
async fn aborted_fill_errors_its_readers_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/aborted", "");
    let mut mh = s
        .get_miss_handler(&key, &meta(Duration::from_secs(60)), &span())
        .await
        .unwrap();
    mh.write_body(Bytes::from_static(b"partial"), false)
        .await
        .unwrap();
    let (_, mut reader) = hit(s, &key).await;
    assert_eq!(&reader.read_body().await.unwrap().unwrap()[..], b"partial");
    let blocked = tokio::spawn(async move { reader.read_body().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(mh);

    let err = blocked
        .await
        .unwrap()
        .expect_err("a truncated body must not look complete");
    assert!(matches!(cause(&err), CacheError::FillAborted), "{err:?}");
    assert!(s.lookup(&key, &span()).await.unwrap().is_none());
    assert_eq!(s.stats(), CacheStats::default());
    // The temp file is unlinked on the blocking pool.
    for _ in 0..100 {
        if files(dir.path()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(files(dir.path()), Vec::<String>::new());
    // Nor does a restart find anything.
    assert_eq!(open(config(dir.path())).stats().disk_entries, 0);
}

#[tokio::test]
async fn writes_past_eof_and_oversized_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(CacheConfig {
        disk_bytes: 100 * KIB,
        ..config(dir.path())
    });
    assert_eq!(s.max_object_bytes(), 100 * KIB);
    let key = CacheKey::new("/big", "");
    let mut mh = s
        .get_miss_handler(&key, &meta(Duration::from_secs(60)), &span())
        .await
        .unwrap();
    let err = mh
        .write_body(Bytes::from(vec![0; 101 * 1024]), false)
        .await
        .unwrap_err();
    assert!(matches!(cause(&err), CacheError::TooLarge { limit, .. } if *limit == 100 * KIB));
    drop(mh);

    let mut mh = s
        .get_miss_handler(&key, &meta(Duration::from_secs(60)), &span())
        .await
        .unwrap();
    mh.write_body(Bytes::from_static(b"x"), true).await.unwrap();
    assert!(mh
        .write_body(Bytes::from_static(b"y"), false)
        .await
        .is_err());
    mh.write_body(Bytes::new(), true).await.unwrap();
    mh.finish().await.unwrap();
    let (_, mut h) = hit(s, &key).await;
    assert_eq!(read_all(&mut h).await.0, b"x");
}

#[tokio::test]
async fn eviction_over_disk_bytes_deletes_least_recently_used_files() {
    let dir = tempfile::tempdir().unwrap();
    // Room for three 100 KiB bodies (plus their small metas), not four.
    let s = open(CacheConfig {
        disk_bytes: 350 * KIB,
        ..config(dir.path())
    });
    let keys: Vec<CacheKey> = (0..5)
        .map(|i| CacheKey::new(format!("/obj/{i}"), ""))
        .collect();
    for key in &keys[..3] {
        put(s, key, &body(100 * 1024, 6)).await;
    }
    // Touch obj/0 so obj/1 is now the least recently used.
    drop(hit(s, &keys[0]).await);
    put(s, &keys[3], &body(100 * 1024, 7)).await;
    put(s, &keys[4], &body(100 * 1024, 8)).await;

    let st = s.stats();
    assert_eq!(st.disk_entries, 3);
    assert!(st.disk_bytes <= 350 * KIB, "{st:?}");
    for (i, present) in [(0, true), (1, false), (2, false), (3, true), (4, true)] {
        let key = &keys[i];
        assert_eq!(
            file_of(dir.path(), key, "meta").exists(),
            present,
            "meta of {i}"
        );
        assert_eq!(
            file_of(dir.path(), key, "body").exists(),
            present,
            "body of {i}"
        );
        assert_eq!(
            s.lookup(key, &span()).await.unwrap().is_some(),
            present,
            "lookup {i}"
        );
    }
    assert_eq!(files(dir.path()).len(), 6, "no trash left behind");
    // Evicted hashes left the purge index too.
    assert_eq!(lock(&s.inner.index).len(), 3);
    assert_eq!(s.purge_primary("/obj/1"), 0);
}

#[tokio::test]
async fn purge_by_primary_prefix_and_all_counts_variances_and_fills() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let variant = |primary: &str, v: u8| {
        let mut k = CacheKey::new(primary, "");
        k.set_variance_key([v; 16]);
        k
    };
    put(s, &variant("/v1/AUTH_a/c/x", 1), b"gzip").await;
    put(s, &variant("/v1/AUTH_a/c/x", 2), b"identity").await;
    put(s, &CacheKey::new("/v1/AUTH_a/c/y", ""), &body(100_000, 9)).await;
    put(s, &CacheKey::new("/v1/AUTH_a/d/z", ""), b"z").await;
    put(s, &CacheKey::new("/v1/AUTH_b/c/x", ""), b"b").await;

    assert_eq!(s.purge_primary("/v1/AUTH_a/c/x"), 2);
    assert_eq!(s.purge_primary("/v1/AUTH_a/c/x"), 0);
    assert!(s
        .lookup(&variant("/v1/AUTH_a/c/x", 1), &span())
        .await
        .unwrap()
        .is_none());

    // A fill in progress under the prefix is dropped and never commits.
    let filling = CacheKey::new("/v1/AUTH_a/c/filling", "");
    let mut mh = s
        .get_miss_handler(&filling, &meta(Duration::from_secs(60)), &span())
        .await
        .unwrap();
    mh.write_body(Bytes::from_static(b"old"), true)
        .await
        .unwrap();
    assert_eq!(s.purge_prefix("/v1/AUTH_a/c/"), 2, "y and the fill");
    assert!(s.lookup(&filling, &span()).await.unwrap().is_none());
    mh.finish().await.unwrap();
    assert!(
        s.lookup(&filling, &span()).await.unwrap().is_none(),
        "purged fill committed"
    );

    assert_eq!(s.purge_prefix("/v1/AUTH_a/"), 1);
    assert_eq!(s.stats().disk_entries, 1);
    put(s, &CacheKey::new("/again", ""), b"1").await;
    assert_eq!(s.purge_all(), 2);
    assert_eq!(s.purge_all(), 0);
    assert_eq!(s.stats(), CacheStats::default());
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn purge_index_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    put(s, &CacheKey::new("/p/1", ""), b"1").await;
    put(s, &CacheKey::new("/p/2", ""), &body(100_000, 1)).await;
    put(s, &CacheKey::new("/q/1", ""), b"3").await;
    let s2 = open(config(dir.path()));
    assert_eq!(s2.purge_prefix("/p/"), 2);
    assert_eq!(s2.purge_primary("/q/1"), 1);
    assert_eq!(s2.stats().disk_entries, 0);
}

#[tokio::test]
async fn storage_purge_and_expire_by_combined_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/expire-me", "");
    put(s, &key, b"body").await;
    let compact = key.to_compact();

    let out = s
        .expire(PurgeTarget::Active(&compact), &span())
        .await
        .unwrap();
    assert_eq!(out, PurgeOutcome::Expired);
    let (m, mut h) = hit(s, &key).await;
    assert!(!m.is_fresh(SystemTime::now() + Duration::from_secs(1)));
    assert!(m.serve_stale_while_revalidate(SystemTime::now()));
    assert_eq!(read_all(&mut h).await.0, b"body");
    // The disk copy was expired too.
    let (m2, _) = hit(open(config(dir.path())), &key).await;
    assert!(!m2.is_fresh(SystemTime::now()));

    let sp = span();
    let out = s.purge(PurgeTarget::Active(&compact), PurgeType::Invalidation, &sp);
    assert_eq!(out.await.unwrap(), PurgeOutcome::Purged(None));
    assert!(s.lookup(&key, &span()).await.unwrap().is_none());
    let out = s.purge(PurgeTarget::Active(&compact), PurgeType::Eviction, &sp);
    assert_eq!(out.await.unwrap(), PurgeOutcome::NotFound);
    assert_eq!(
        s.purge_primary("/expire-me"),
        0,
        "index pruned by the purge"
    );
    put(s, &key, b"again").await;
    let exact = CacheEntryKey::key_only(compact.clone());
    let out = s.purge(PurgeTarget::Exact(&exact), PurgeType::Eviction, &sp);
    assert_eq!(out.await.unwrap(), PurgeOutcome::Purged(None));
    let identified = CacheEntryKey::identified(compact.clone(), CacheEntryId::new(1));
    put(s, &key, b"again").await;
    let out = s.purge(PurgeTarget::Exact(&identified), PurgeType::Eviction, &sp);
    assert_eq!(
        out.await.unwrap(),
        PurgeOutcome::NotFound,
        "we assign no entry ids"
    );
    assert!(s.lookup(&key, &span()).await.unwrap().is_some());
}

#[tokio::test]
async fn update_meta_refreshes_both_tiers_but_not_a_newer_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/revalidated", "");
    put(s, &key, b"v1 body").await;

    let (mut m, _) = hit(s, &key).await;
    let later = SystemTime::now() + Duration::from_secs(3600);
    m.update_freshness(later, 5, 6);
    assert!(s.update_meta(&key, &m, &span()).await.unwrap());
    let (m_mem, mut h) = hit(s, &key).await;
    assert_eq!(m_mem.fresh_until(), m.fresh_until());
    assert_eq!(read_all(&mut h).await.0, b"v1 body");
    let (m_disk, _) = hit(open(config(dir.path())), &key).await;
    assert_eq!(m_disk.fresh_until(), m.fresh_until());
    assert_eq!(m_disk.stale_if_error_sec(), 6);

    // A meta read before the entry was replaced must not land on the new body.
    let (stale_meta, _) = hit(s, &key).await;
    put(s, &key, b"v2 body, longer").await;
    assert!(!s.update_meta(&key, &stale_meta, &span()).await.unwrap());
    let (m_new, mut h) = hit(s, &key).await;
    assert_ne!(m_new.fresh_until(), m.fresh_until());
    assert_eq!(read_all(&mut h).await.0, b"v2 body, longer");
}

/// Regression: a small old version in memory shadowed a large new version on disk.
#[tokio::test]
async fn replacing_a_small_entry_with_a_large_one_serves_the_new_body() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/grew", "");
    put(s, &key, b"small v1").await;
    let large = body(100_000, 15);
    put(s, &key, &large).await;
    let (_, mut h) = hit(s, &key).await;
    assert_eq!(tier(&h), CacheTier::Disk);
    assert_eq!(read_all(&mut h).await.0, large);
    assert_eq!(s.stats().memory_entries, 0);
}

#[tokio::test]
async fn open_disk_reader_survives_replace_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/replaced", "");
    let v1 = body(200_000, 10);
    put(s, &key, &v1).await;
    let (_, mut old) = hit(s, &key).await;
    let first = old.read_body().await.unwrap().unwrap();
    put(s, &key, &body(150_000, 11)).await;
    assert_eq!(s.purge_all(), 1);
    let mut got = first.to_vec();
    got.extend(read_all(&mut old).await.0);
    assert_eq!(got, v1);
}

#[tokio::test]
async fn corrupt_truncated_and_leftover_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let keys: Vec<CacheKey> = (0..5)
        .map(|i| CacheKey::new(format!("/f/{i}"), ""))
        .collect();
    for key in &keys {
        put(s, key, &body(5000, 12)).await;
    }
    let d = dir.path();
    // 0: truncated meta; 1: a flipped byte in the meta; 2: short body; 3: meta gone (orphan
    // body); 4 stays good. Plus a crashed fill's temp, an unlinked-body trash file and a
    // stranger's file.
    let m0 = std::fs::read(file_of(d, &keys[0], "meta")).unwrap();
    std::fs::write(file_of(d, &keys[0], "meta"), &m0[..m0.len() / 2]).unwrap();
    let mut m1 = std::fs::read(file_of(d, &keys[1], "meta")).unwrap();
    m1[40] ^= 0xff;
    std::fs::write(file_of(d, &keys[1], "meta"), &m1).unwrap();
    std::fs::write(file_of(d, &keys[2], "body"), b"short").unwrap();
    std::fs::remove_file(file_of(d, &keys[3], "meta")).unwrap();
    let h = keys[4].combined_bin();
    std::fs::write(format::temp_body_path(d, &h, 77), b"half a fill").unwrap();
    std::fs::write(format::trash_path(d, &h, 78), b"evicted").unwrap();
    std::fs::write(d.join("00").join("README"), b"not ours").unwrap();
    std::fs::write(d.join("00").join("empty.meta"), b"").unwrap();

    let s2 = open(config(d));
    assert_eq!(s2.stats().disk_entries, 1);
    for key in &keys[..4] {
        assert!(s2.lookup(key, &span()).await.unwrap().is_none());
    }
    let (_, mut good) = hit(s2, &keys[4]).await;
    assert_eq!(read_all(&mut good).await.0, body(5000, 12));
    let hex4 = hex::encode(h);
    let mut want = vec![
        "README".to_owned(),
        format!("{hex4}.body"),
        format!("{hex4}.meta"),
        "empty.meta".to_owned(),
    ];
    want.sort();
    assert_eq!(files(d), want, "foreign files are left alone");
}

#[tokio::test]
async fn a_meta_corrupted_while_running_is_a_miss_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(CacheConfig {
        memory_object_max: 0,
        ..config(dir.path())
    });
    let key = CacheKey::new("/rot", "");
    put(s, &key, b"body").await;
    std::fs::write(file_of(dir.path(), &key, "meta"), b"OPCM garbage").unwrap();
    assert!(s.lookup(&key, &span()).await.unwrap().is_none());
    assert_eq!(s.stats().disk_entries, 0);
    assert!(!file_of(dir.path(), &key, "body").exists());
}

#[tokio::test]
async fn capacity_lowered_between_runs_evicts_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    for i in 0..4 {
        put(
            s,
            &CacheKey::new(format!("/c/{i}"), ""),
            &body(100 * 1024, 13),
        )
        .await;
    }
    let s2 = open(CacheConfig {
        disk_bytes: 250 * KIB,
        ..config(dir.path())
    });
    let st = s2.stats();
    assert_eq!(st.disk_entries, 2);
    assert!(st.disk_bytes <= 250 * KIB);
    assert_eq!(files(dir.path()).len(), 4);
}

/// A handful of writers and readers on a few keys at once: every complete read must be one
/// of the bodies written for that key, never a mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fills_lookups_and_purges_never_mix_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(CacheConfig {
        disk_bytes: 600 * KIB,
        memory_object_max: 50 * KIB,
        ..config(dir.path())
    });
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        tasks.push(tokio::spawn(async move {
            for round in 0..20u8 {
                let k = CacheKey::new(format!("/race/{}", round % 3), "");
                let len = if t % 2 == 0 { 30_000 } else { 120_000 };
                match (t + round) % 4 {
                    0 | 1 => put(s, &k, &body(len, round % 3)).await,
                    2 => {
                        if let Some((_, mut h)) = s.lookup(&k, &span()).await.unwrap() {
                            let mut got = Vec::new();
                            let mut failed = false;
                            loop {
                                match h.read_body().await {
                                    Ok(Some(b)) => got.extend_from_slice(&b),
                                    Ok(None) => break,
                                    Err(_) => {
                                        failed = true;
                                        break;
                                    }
                                }
                            }
                            if !failed {
                                let seed = round % 3;
                                assert!(
                                    got == body(30_000, seed) || got == body(120_000, seed),
                                    "mixed body of {} bytes",
                                    got.len()
                                );
                            }
                        }
                    }
                    _ => {
                        s.purge_primary(&format!("/race/{}", round % 3));
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let st = s.stats();
    assert_eq!(st.fills_in_progress, 0);
    assert!(st.disk_bytes <= 600 * KIB);
    // Whatever is left on disk matches the index after a restart.
    let s2 = open(config(dir.path()));
    assert_eq!(s2.stats().disk_entries, st.disk_entries);
    assert_eq!(files(dir.path()).len() as u64, 2 * st.disk_entries);
}

/// Regression guard: pingora may drop a `finish()` future (downstream gone) while the commit
/// runs on the blocking pool. The entry must end up either stored and purgeable, or absent,
/// with no temp file left either way.
#[tokio::test]
async fn finish_dropped_midway_leaves_a_consistent_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/dropped-finish", "");
    let mut mh = s
        .get_miss_handler(&key, &meta(Duration::from_secs(60)), &span())
        .await
        .unwrap();
    mh.write_body(Bytes::from(body(200_000, 14)), true)
        .await
        .unwrap();
    // Polled once (starting the blocking commit), then dropped.
    let _ = tokio::time::timeout(Duration::ZERO, mh.finish()).await;
    for _ in 0..200 {
        if s.stats().fills_in_progress == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(s.stats().fills_in_progress, 0);
    let stored = s.lookup(&key, &span()).await.unwrap().is_some();
    assert_eq!(s.purge_primary("/dropped-finish"), usize::from(stored));
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

// --- Request collapsing: pingora's cache lock with streaming fills (see `fill_lock.rs`). ---

use pingora::cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked};

const LOCK_AGE: Duration = Duration::from_secs(30);

/// What pingora's `set_miss_handler` does for a storage with streaming partial writes: the
/// fill is registered, then the write lock is released as `Done` so readers follow the fill.
async fn start_fill(
    s: &'static TieredStorage,
    lock: &(dyn CacheKeyLock + Sync),
    key: &CacheKey,
    permit: pingora::cache::lock::WritePermit,
) -> pingora::cache::storage::MissHandler {
    let mh = s
        .get_miss_handler(key, &meta(Duration::from_secs(300)), &span())
        .await
        .unwrap();
    lock.release(key, permit, LockStatus::Done);
    mh
}

/// Waits on a read lock as pingora's `cache_lock_wait` does; returns the status it ended with.
async fn wait_status(locked: Locked) -> LockStatus {
    let r = match locked {
        Locked::Read(r) => r,
        Locked::Write(permit) => {
            // Dropping an unreleased permit panics too (debug builds): keep the report clean.
            std::mem::forget(permit);
            panic!("expected to wait, got a write permit");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), r.wait())
        .await
        .expect("the lock is released");
    r.lock_status()
}

/// The race behind a second origin fetch of a cold object: a request's lookup misses just
/// before the writer's fill is registered, and it asks for the lock just after the writer
/// released it at header time. pingora's own lock then elects it as a second writer; ours
/// sends it back to look up again, and it streams the first fill.
#[tokio::test]
async fn a_miss_racing_a_new_fill_follows_it_instead_of_fetching_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let data = body(200_000, 21);

    // The bug, with pingora's plain lock.
    let key = CacheKey::new("/collapse/plain", "");
    let plain = CacheLock::new(LOCK_AGE);
    assert!(
        s.lookup(&key, &span()).await.unwrap().is_none(),
        "late: miss"
    );
    let Locked::Write(first) = plain.lock(&key, false) else {
        panic!("the first request writes");
    };
    let _fill = start_fill(s, &plain, &key, first).await;
    let Locked::Write(second) = plain.lock(&key, false) else {
        panic!("pingora's lock no longer elects a second writer here: revisit fill_lock.rs");
    };
    plain.release(&key, second, LockStatus::Done);

    // The fix.
    let key = CacheKey::new("/collapse/ours", "");
    let lock = FillAwareLock::new(s, LOCK_AGE);
    assert!(
        s.lookup(&key, &span()).await.unwrap().is_none(),
        "late: miss"
    );
    let Locked::Write(first) = lock.lock(&key, false) else {
        panic!("the first request writes");
    };
    let mut mh = start_fill(s, &lock, &key, first).await;
    assert_eq!(
        wait_status(lock.lock(&key, false)).await,
        LockStatus::Done,
        "late: told to look up again, not to fetch"
    );
    let (_, mut late) = hit(s, &key).await;
    assert_eq!(tier(&late), CacheTier::Fill);
    let reader = tokio::spawn(async move { read_all(&mut late).await.0 });
    for chunk in data.chunks(50_000) {
        mh.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    mh.write_body(Bytes::new(), true).await.unwrap();
    mh.finish().await.unwrap();
    assert_eq!(reader.await.unwrap(), data);
}

/// A request arriving right after a fill committed hits the committed entry, in either tier;
/// one whose lookup missed just before the commit is sent back to it too.
#[tokio::test]
async fn requests_right_after_a_commit_hit() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let lock = FillAwareLock::new(s, LOCK_AGE);
    for (path, len, expect) in [
        ("/commit/small", 20_000, CacheTier::Memory),
        ("/commit/large", 200_000, CacheTier::Disk),
    ] {
        let key = CacheKey::new(path, "");
        let data = body(len, 22);
        assert!(
            s.lookup(&key, &span()).await.unwrap().is_none(),
            "late: miss"
        );
        let Locked::Write(first) = lock.lock(&key, false) else {
            panic!("the first request writes");
        };
        let mut mh = start_fill(s, &lock, &key, first).await;
        mh.write_body(Bytes::from(data.clone()), true)
            .await
            .unwrap();
        mh.finish().await.unwrap();
        assert_eq!(s.stats().fills_in_progress, 0);

        let (_, mut h) = hit(s, &key).await;
        assert_eq!(tier(&h), expect, "{path}");
        assert_eq!(read_all(&mut h).await.0, data, "{path}");
        assert_eq!(
            wait_status(lock.lock(&key, false)).await,
            LockStatus::Done,
            "{path}: late is sent to the committed entry"
        );
    }
}

/// The re-check only stands in for a plain miss on something a lookup would serve.
#[tokio::test]
async fn the_lock_still_elects_writers_when_nothing_is_there_to_follow() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let lock = FillAwareLock::new(s, LOCK_AGE);

    // Cold key: a writer, and a reader behind it until it is done.
    let key = CacheKey::new("/elect/cold", "");
    let Locked::Write(permit) = lock.lock(&key, false) else {
        panic!("a cold key gets a writer");
    };
    let behind = lock.lock(&key, false);
    assert!(!behind.is_write());
    lock.release(&key, permit, LockStatus::TransientError);
    assert_eq!(wait_status(behind).await, LockStatus::TransientError);

    // A stale writer revalidates what it found.
    put(s, &key, b"stored").await;
    let Locked::Write(permit) = lock.lock(&key, true) else {
        panic!("a stale writer revalidates");
    };
    lock.release(&key, permit, LockStatus::Done);

    // A purged fill or an abandoned one is nothing to follow.
    let key = CacheKey::new("/elect/purged", "");
    let Locked::Write(first) = lock.lock(&key, false) else {
        panic!("writer");
    };
    let purged = start_fill(s, &lock, &key, first).await;
    assert_eq!(s.purge_primary("/elect/purged"), 1);
    let Locked::Write(second) = lock.lock(&key, false) else {
        panic!("a purged fill does not hold off a new writer");
    };
    lock.release(&key, second, LockStatus::Done);
    drop(purged);

    let key = CacheKey::new("/elect/aborted", "");
    let Locked::Write(first) = lock.lock(&key, false) else {
        panic!("writer");
    };
    let aborted = start_fill(s, &lock, &key, first).await;
    drop(aborted);
    let Locked::Write(second) = lock.lock(&key, false) else {
        panic!("an aborted fill does not hold off a new writer");
    };
    lock.release(&key, second, LockStatus::Done);
}

/// pingora's lookup loop for one request over the storage and the lock: returns whether the
/// request was elected to fetch (then it fills the cache like pingora does) and the body it
/// served.
async fn serve(
    s: &'static TieredStorage,
    lock: &'static FillAwareLock,
    key: CacheKey,
) -> (bool, Vec<u8>) {
    let data = body(300_000, 23);
    for _ in 0..4 {
        if let Some((_, mut h)) = s.lookup(&key, &span()).await.unwrap() {
            return (false, read_all(&mut h).await.0);
        }
        match lock.lock(&key, false) {
            Locked::Write(permit) => {
                let mut mh = start_fill(s, lock, &key, permit).await;
                let tag = mh.streaming_write_tag().unwrap().to_vec();
                let (_, mut own) = s
                    .lookup_streaming_write(&key, Some(&tag), &span())
                    .await
                    .unwrap()
                    .unwrap();
                for chunk in data.chunks(16_384) {
                    mh.write_body(Bytes::copy_from_slice(chunk), false)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
                mh.write_body(Bytes::new(), true).await.unwrap();
                mh.finish().await.unwrap();
                return (true, read_all(&mut own).await.0);
            }
            read => assert_eq!(wait_status(read).await, LockStatus::Done),
        }
    }
    panic!("no hit after retries");
}

/// The integration scenario at storage level: many concurrent requests for one cold key,
/// exactly one of them fetches, every one serves the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_misses_elect_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let lock: &'static FillAwareLock = Box::leak(Box::new(FillAwareLock::new(s, LOCK_AGE)));
    for round in 0..10 {
        let tasks: Vec<_> = (0..50)
            .map(|_| tokio::spawn(serve(s, lock, CacheKey::new(format!("/herd/{round}"), ""))))
            .collect();
        let mut writers = 0;
        for t in tasks {
            let (wrote, got) = t.await.unwrap();
            writers += usize::from(wrote);
            assert!(got == body(300_000, 23), "round {round}: wrong body");
        }
        assert_eq!(
            writers, 1,
            "round {round}: one fetch for 50 concurrent misses"
        );
    }
}

#[tokio::test]
async fn a_range_of_a_fill_waits_for_its_bytes_and_stops_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(config(dir.path()));
    let key = CacheKey::new("/growing-range", "");
    let data = body(300_000, 9);
    let mut mh = s
        .get_miss_handler(&key, &meta(Duration::from_secs(60)), &span())
        .await
        .unwrap();
    let (_, mut ranged) = hit(s, &key).await;
    assert_eq!(tier(&ranged), CacheTier::Fill);
    ranged.seek(200_000, Some(200_100)).unwrap();
    mh.write_body(Bytes::copy_from_slice(&data[..150_000]), false)
        .await
        .unwrap();
    assert!(pending(&mut ranged).await, "the range is not written yet");
    let reader = tokio::spawn(async move { read_all(&mut ranged).await.0 });
    mh.write_body(Bytes::copy_from_slice(&data[150_000..]), true)
        .await
        .unwrap();
    mh.finish().await.unwrap();
    let got = reader.await.unwrap();
    assert_eq!(got, data[200_000..200_100]);
}
