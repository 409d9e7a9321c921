//! The replicator: makes every replica of every partition converge.
//!
//! One pass:
//! 0. makes rows and files agree in every partition ([`Store::reconcile_partition`]): a row
//!    whose data file is missing becomes listing-only, so the hashes below show it and the
//!    other primaries restore the data; a data file no row names is removed once older than
//!    `orphan_grace`;
//! 1. drops tombstones older than `reclaim_age`;
//! 2. pulls every peer's account and container rows and keeps the newest of each;
//! 3. for every partition this node has rows in, and every peer: compares per-suffix hashes
//!    (suffix = last three hex digits of the object's path hash). Towards a primary the hash
//!    covers `(name, timestamp, deleted, has data)` and what this node *would* have as a
//!    primary (data for every live row); towards any other node only `(name, timestamp,
//!    deleted)`. For a differing suffix it fetches the peer's rows there and pushes each
//!    version the peer lacks or has older (tombstones as direct DELETEs, data as direct PUTs
//!    with the file, or only the listing row). A primary holding only a listing row of the
//!    current version gets the data.
//! 4. a partition whose data this node holds without being a primary (a handoff, or a device
//!    the ring moved it away from) is handed home: once every primary confirmed it has every
//!    version, the local data is dropped and the rows kept as listing rows.
//!
//! Pushes are the same direct requests the proxy sends, so the receiving side is one code path.
//!
//! ## Progress
//! While a pass runs, [`super::Stats`] holds its partitions done / to do, the rows examined
//! and the versions and bytes pushed so far, and its start time; when it ends, the same
//! figures of the last pass. The handoff backlog (partitions whose data is here although
//! this node is not a primary: a rebalance's data movement still to do) is counted when a
//! ring loads and when a pass starts ([`count_handoff_backlog`]) and lowered as partitions
//! are handed home.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use md5::{Digest, Md5};
use outpost_proto::paths;
use outpost_ring::{Device, Ring};
use serde::{Deserialize, Serialize};

use super::{
    object_url, unix_now, unix_now_ms, Cluster, Direct, DIRECT_HEADER, SIZE_HEADER, SLO_HEADER,
};
use crate::db::{self, MetaRow, ObjectRow, ReplicaRow};
use crate::hlc::Timestamp;
use crate::store::Store;
use crate::{Error, Result};

/// Concurrent pushes to one peer within a partition.
const PUSHES_PER_PEER: usize = 8;

/// Wire format version of the replication messages.
pub const FORMAT: u32 = 1;

/// How a replica is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// Versions and whether the data is held (towards primaries).
    Data,
    /// Versions only (towards listing replicas).
    Listing,
}

/// `/internal/replication/hashes` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hashes {
    /// [`FORMAT`].
    pub format: u32,
    /// Suffix → hash.
    pub hashes: BTreeMap<String, String>,
}

/// `/internal/replication/rows` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rows {
    /// [`FORMAT`].
    pub format: u32,
    /// The rows in the asked suffixes.
    pub rows: Vec<ReplicaRow>,
}

/// `/internal/replication/meta` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct MetaRows {
    /// [`FORMAT`].
    pub format: u32,
    /// Every account and container row.
    pub rows: Vec<MetaRow>,
}

/// What one pass did (`POST /internal/cluster/replicate` returns it).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PassReport {
    /// Partitions examined.
    pub partitions: u64,
    /// Versions pushed.
    pub pushed: u64,
    /// Failed peer requests.
    pub errors: u64,
    /// Versions handed home and dropped here.
    pub reverted: u64,
    /// Tombstones reclaimed.
    pub reclaimed: u64,
    /// Account/container rows merged from peers.
    pub meta_merged: u64,
    /// Partitions still held here as a handoff after the pass.
    pub handoff_partitions: u64,
    /// Milliseconds.
    pub duration_ms: u64,
    /// Object rows examined.
    #[serde(default)]
    pub rows: u64,
    /// Data bytes pushed.
    #[serde(default)]
    pub bytes: u64,
    /// Rows whose data file was missing (marked listing-only, to be restored).
    #[serde(default)]
    pub missing_files: u64,
    /// Orphan data files removed.
    #[serde(default)]
    pub orphans_removed: u64,
    /// Orphan data files younger than `orphan_grace`, kept for now.
    #[serde(default)]
    pub orphans_young: u64,
}

/// The suffix of an object path hash.
pub fn suffix(hash: &str) -> &str {
    &hash[hash.len().saturating_sub(3)..]
}

/// Per-suffix hashes of rows, as `view` sees them. `as_primary` hashes what a primary should
/// hold (data for every live row) instead of what this node holds.
pub fn suffix_hashes(rows: &[ObjectRow], view: View, as_primary: bool) -> BTreeMap<String, String> {
    let mut by: BTreeMap<String, Vec<(String, u64, bool, bool)>> = BTreeMap::new();
    for r in rows {
        let h = outpost_ring::object_hash_hex(&r.account, &r.container, &r.name);
        let has_data = !r.deleted && (as_primary || !r.listing_only);
        by.entry(suffix(&h).to_owned())
            .or_default()
            .push((h, r.ts.0, r.deleted, has_data));
    }
    by.into_iter()
        .map(|(s, mut v)| {
            v.sort();
            let mut m = Md5::new();
            for (h, ts, del, data) in v {
                m.update(h.as_bytes());
                m.update(ts.to_be_bytes());
                m.update([u8::from(del)]);
                if view == View::Data {
                    m.update([u8::from(data)]);
                }
            }
            (s, hex::encode(m.finalize()))
        })
        .collect()
}

/// Runs forever: a pass every `replication_interval`.
pub async fn run(st: Arc<Store>, cl: Arc<Cluster>) {
    let mut tick = tokio::time::interval(cl.cfg.replication_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = pass(&st, &cl).await {
            tracing::warn!(error = %e, "replication pass failed");
        }
    }
}

/// Counts the partitions whose data this node holds without being their primary in the
/// current ring (the handoff backlog) and stores the count in the stats.
///
/// # Errors
/// [`Error::Db`] when the local store cannot be read.
///
/// # Cancel safety
/// Dropping the future leaves the previous count.
pub async fn count_handoff_backlog(st: &Arc<Store>, cl: &Cluster) -> Result<u64> {
    let ring = cl.ring();
    let me = cl.me(&ring);
    let parts = st.blocking(|s| s.db.data_partitions()).await?;
    let n = parts
        .iter()
        .filter(|&&p| !me.is_some_and(|m| ring.is_primary(p, m)))
        .count() as u64;
    cl.stats.handoff_partitions.store(n, Ordering::Relaxed);
    Ok(n)
}

/// Clears `pass_running` however the pass ends (done, failed or dropped).
struct Running<'a>(&'a super::Stats);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.pass_running.store(false, Ordering::Relaxed);
    }
}

/// One replication pass (waits for a running one to finish first).
///
/// # Errors
/// [`Error::Db`] when the local store cannot be read; peer failures are counted, not errors.
///
/// # Cancel safety
/// Dropping the future stops the pass between pushes; every push is idempotent.
pub async fn pass(st: &Arc<Store>, cl: &Cluster) -> Result<PassReport> {
    let _one = cl.pass_lock.lock().await;
    let started = Instant::now();
    let s = &cl.stats;
    s.last_pass_start.store(unix_now(), Ordering::Relaxed);
    s.pass_start_ms.store(unix_now_ms(), Ordering::Relaxed);
    for c in [
        &s.pass_progress,
        &s.pass_total,
        &s.pass_rows,
        &s.pass_pushed,
        &s.pass_bytes,
    ] {
        c.store(0, Ordering::Relaxed);
    }
    s.pass_running.store(true, Ordering::Relaxed);
    let _running = Running(s);
    let mut rep = PassReport::default();
    let ring = cl.ring();
    let me = cl.me(&ring);
    count_handoff_backlog(st, cl).await?;

    // 0. Rows against files.
    let fixed = reconcile(st, cl.cfg.orphan_grace).await?;
    rep.missing_files = fixed.missing;
    rep.orphans_removed = fixed.orphans;
    rep.orphans_young = fixed.young_orphans;

    // 1. Tombstone reclamation.
    let age = cl.cfg.reclaim_age;
    let cutoff = Timestamp::from_secs(unix_now().saturating_sub(age.as_secs()));
    rep.reclaimed = st
        .blocking(move |s| s.db.reclaim_tombstones(cutoff))
        .await? as u64;

    let peers: Vec<Device> = ring
        .live_devices()
        .filter(|d| Some(d.id) != me)
        .cloned()
        .collect();

    // 2. Accounts and containers.
    for p in &peers {
        match fetch::<MetaRows>(cl, p, paths::REPLICATION_META).await {
            Ok(m) if m.format == FORMAT => {
                let rows = m.rows;
                rep.meta_merged += st.blocking(move |s| s.db.merge_meta(&rows)).await? as u64;
            }
            _ => rep.errors += 1,
        }
    }

    // 3 and 4. Objects, partition by partition, a few at a time.
    let parts = st.blocking(|s| s.db.partitions()).await?;
    s.pass_total.store(parts.len() as u64, Ordering::Relaxed);
    let results: Vec<Result<PartReport>> = futures_util::stream::iter(parts)
        .map(|part| {
            let ring = &ring;
            let peers = &peers;
            async move {
                let r = partition(st, cl, ring, me, peers, part).await;
                cl.stats.pass_progress.fetch_add(1, Ordering::Relaxed);
                r
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for r in results {
        let r = r?;
        rep.partitions += 1;
        rep.pushed += r.pushed;
        rep.errors += r.errors;
        rep.reverted += r.reverted;
        rep.rows += r.rows;
        rep.bytes += r.bytes;
        rep.handoff_partitions += u64::from(r.still_handoff);
    }
    rep.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    s.passes.fetch_add(1, Ordering::Relaxed);
    s.pushed.fetch_add(rep.pushed, Ordering::Relaxed);
    s.errors.fetch_add(rep.errors, Ordering::Relaxed);
    s.reverted.fetch_add(rep.reverted, Ordering::Relaxed);
    s.reclaimed.fetch_add(rep.reclaimed, Ordering::Relaxed);
    s.handoff_partitions
        .store(rep.handoff_partitions, Ordering::Relaxed);
    s.last_pass_partitions
        .store(rep.partitions, Ordering::Relaxed);
    s.last_pass_ms.store(rep.duration_ms, Ordering::Relaxed);
    s.last_pass_rows.store(rep.rows, Ordering::Relaxed);
    s.last_pass_pushed.store(rep.pushed, Ordering::Relaxed);
    s.last_pass_bytes.store(rep.bytes, Ordering::Relaxed);
    s.last_pass_end.store(unix_now(), Ordering::Relaxed);
    Ok(rep)
}

/// Reconciles every partition that has data rows or a directory on disk.
///
/// # Errors
/// [`Error::Db`], [`Error::Io`].
pub async fn reconcile(
    st: &Arc<Store>,
    grace: std::time::Duration,
) -> Result<crate::store::Reconciled> {
    let mut parts = st.blocking(|s| s.db.data_partitions()).await?;
    parts.extend(st.blocking(|s| s.partitions_on_disk()).await?);
    parts.sort_unstable();
    parts.dedup();
    let mut total = crate::store::Reconciled::default();
    for part in parts {
        total.add(st.reconcile_partition(part, grace).await?);
    }
    Ok(total)
}

#[derive(Default)]
struct PartReport {
    rows: u64,
    pushed: u64,
    bytes: u64,
    errors: u64,
    reverted: u64,
    still_handoff: bool,
}

async fn fetch<T: serde::de::DeserializeOwned>(cl: &Cluster, d: &Device, path: &str) -> Result<T> {
    let resp = cl
        .send(
            Method::GET,
            format!("{}{path}", d.url()),
            HeaderMap::new(),
            None,
        )
        .await?;
    if !resp.status().is_success() {
        return Err(Error::Unavailable {
            reason: "a peer refused a replication query",
        });
    }
    let bytes = resp.bytes().await.map_err(|_| Error::Unavailable {
        reason: "a peer's replication answer was cut off",
    })?;
    serde_json::from_slice(&bytes).map_err(|_| Error::Unavailable {
        reason: "a peer's replication answer was malformed",
    })
}

async fn partition(
    st: &Arc<Store>,
    cl: &Cluster,
    ring: &Ring,
    me: Option<u32>,
    peers: &[Device],
    part: u32,
) -> Result<PartReport> {
    let mut rep = PartReport::default();
    let rows = st.blocking(move |s| s.db.rows_in_partition(part)).await?;
    if rows.is_empty() {
        return Ok(rep);
    }
    rep.rows = rows.len() as u64;
    cl.stats.pass_rows.fetch_add(rep.rows, Ordering::Relaxed);
    let i_am_primary = me.is_some_and(|m| ring.is_primary(part, m));
    let holds_data = rows.iter().any(|r| !r.deleted && !r.listing_only);
    let mut primaries_synced = true;
    for peer in peers {
        let primary = ring.is_primary(part, peer.id);
        let view = if primary { View::Data } else { View::Listing };
        match sync_peer(st, cl, peer, part, &rows, view).await {
            Ok(Pushed {
                pushed,
                failed,
                bytes,
            }) => {
                rep.pushed += pushed;
                rep.bytes += bytes;
                rep.errors += failed;
                if primary && failed > 0 {
                    primaries_synced = false;
                }
            }
            Err(_) => {
                rep.errors += 1;
                if primary {
                    primaries_synced = false;
                }
            }
        }
    }
    let primaries = ring.primaries(part).len();
    if !i_am_primary && holds_data {
        if primaries_synced && primaries > 0 {
            rep.reverted = revert(st, &rows).await?;
            // One partition of the backlog moved home.
            let _ = cl.stats.handoff_partitions.fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |n| Some(n.saturating_sub(1)),
            );
        } else {
            rep.still_handoff = true;
        }
    }
    Ok(rep)
}

/// What [`sync_peer`] pushed to one peer.
#[derive(Default)]
struct Pushed {
    pushed: u64,
    failed: u64,
    bytes: u64,
}

/// Compares with one peer and pushes what it lacks.
async fn sync_peer(
    st: &Arc<Store>,
    cl: &Cluster,
    peer: &Device,
    part: u32,
    rows: &[ObjectRow],
    view: View,
) -> Result<Pushed> {
    let v = match view {
        View::Data => "data",
        View::Listing => "listing",
    };
    let theirs: Hashes = fetch(
        cl,
        peer,
        &format!("{}?part={part}&view={v}", paths::REPLICATION_HASHES),
    )
    .await?;
    let ours = suffix_hashes(rows, view, view == View::Data);
    let differ: Vec<&str> = ours
        .iter()
        .filter(|(s, h)| theirs.hashes.get(*s) != Some(*h))
        .map(|(s, _)| s.as_str())
        .collect();
    if differ.is_empty() {
        return Ok(Pushed::default());
    }
    let peer_rows: Rows = fetch(
        cl,
        peer,
        &format!(
            "{}?part={part}&suffixes={}",
            paths::REPLICATION_ROWS,
            differ.join(",")
        ),
    )
    .await?;
    let have: HashMap<(&str, &str, &str), &ReplicaRow> = peer_rows
        .rows
        .iter()
        .map(|r| {
            (
                (r.account.as_str(), r.container.as_str(), r.name.as_str()),
                r,
            )
        })
        .collect();
    let mut todo: Vec<(&ObjectRow, bool)> = Vec::new();
    for row in rows {
        let h = outpost_ring::object_hash_hex(&row.account, &row.container, &row.name);
        if !differ.contains(&suffix(&h)) {
            continue;
        }
        let theirs = have.get(&(
            row.account.as_str(),
            row.container.as_str(),
            row.name.as_str(),
        ));
        let i_have_data = !row.deleted && !row.listing_only;
        if !db::merge::needs_push(row, theirs.copied(), view == View::Data) {
            continue;
        }
        // Towards a primary, a version whose data this node lacks is pushed as a listing
        // row only when the peer has nothing as new; a node with the data completes it.
        todo.push((row, view == View::Data && i_have_data));
    }
    // Pushes are independent and mostly wait on the peer's fsyncs: several at a time.
    let mut out = Pushed::default();
    for chunk in todo.chunks(PUSHES_PER_PEER) {
        let batch = futures_util::future::join_all(chunk.iter().map(|&(row, with_data)| async move {
            match push(st, cl, peer, row, with_data).await {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::debug!(error = %e, peer = %peer.addr(), object = %row.name, "push failed");
                    None
                }
            }
        }))
        .await;
        let (mut pushed, mut bytes) = (0, 0);
        for r in batch {
            match r {
                Some(b) => {
                    pushed += 1;
                    bytes += b;
                }
                None => out.failed += 1,
            }
        }
        // Progress is visible while the pass runs, a chunk at a time.
        cl.stats.pass_pushed.fetch_add(pushed, Ordering::Relaxed);
        cl.stats.pass_bytes.fetch_add(bytes, Ordering::Relaxed);
        out.pushed += pushed;
        out.bytes += bytes;
    }
    Ok(out)
}

fn hv(v: impl ToString) -> Option<HeaderValue> {
    HeaderValue::from_str(&v.to_string()).ok()
}

fn insert(h: &mut HeaderMap, name: &'static str, v: impl ToString) {
    if let Some(v) = hv(v) {
        h.insert(name, v);
    }
}

/// Sends one version to a peer through the direct API; returns the data bytes sent.
async fn push(
    st: &Arc<Store>,
    cl: &Cluster,
    peer: &Device,
    row: &ObjectRow,
    with_data: bool,
) -> Result<u64> {
    let url = object_url(&peer.url(), &row.account, &row.container, &row.name);
    let mut sent = 0;
    let mut h = HeaderMap::new();
    insert(&mut h, "x-timestamp", row.ts);
    let (method, body) = if row.deleted {
        insert(&mut h, DIRECT_HEADER, Direct::Data.as_str());
        insert(&mut h, "content-length", 0);
        (Method::DELETE, None)
    } else {
        for (k, v) in &row.meta {
            if let (Ok(name), Some(val)) = (http::HeaderName::from_bytes(k.as_bytes()), hv(v)) {
                h.insert(name, val);
            }
        }
        insert(&mut h, "content-type", &row.content_type);
        if let Some(d) = row.delete_at {
            insert(&mut h, "x-delete-at", d);
        }
        if row.slo {
            insert(&mut h, SLO_HEADER, "1");
        }
        if with_data {
            let path = st.data_path(row);
            let f = tokio::fs::File::open(&path).await?;
            let len = f.metadata().await?.len();
            sent = len;
            insert(&mut h, DIRECT_HEADER, Direct::Data.as_str());
            insert(&mut h, "content-length", len);
            insert(&mut h, "etag", &row.etag);
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
            (Method::PUT, Some(body))
        } else {
            insert(&mut h, DIRECT_HEADER, Direct::Row.as_str());
            insert(&mut h, "content-length", 0);
            insert(&mut h, SIZE_HEADER, row.size);
            insert(&mut h, "etag", &row.etag);
            (Method::PUT, None)
        }
    };
    let resp = cl.send(method, url, h, body).await?;
    let s = resp.status();
    let _ = resp.bytes().await;
    if s.is_success() || (row.deleted && s == StatusCode::NOT_FOUND) {
        Ok(sent)
    } else {
        Err(Error::Unavailable {
            reason: "a peer refused a replicated version",
        })
    }
}

/// Drops the data of a partition every primary confirmed it holds; the rows stay as listing
/// rows. Returns how many versions were handed home.
async fn revert(st: &Arc<Store>, rows: &[ObjectRow]) -> Result<u64> {
    let mut n = 0;
    for row in rows.iter().filter(|r| !r.deleted && !r.listing_only) {
        let r2 = row.clone();
        if st.blocking(move |s| s.db.mark_listing_only(&r2)).await? {
            st.files.remove(st.data_path(row)).await;
            n += 1;
        }
    }
    Ok(n)
}
