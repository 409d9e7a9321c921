//! The auditor: re-reads every data file this node holds at a bounded rate and checks its MD5
//! against the version's ETag. A bad copy is moved to `<data_dir>/quarantine/` and its row
//! forgotten (no feed entry: the object did not change), so the replicator's next pass sees
//! this node lacks the version and copies it back from a good replica.
//!
//! A row whose data file is missing is marked listing-only (true of this node), which the
//! replicator's suffix hashes towards primaries show, so the next pass of another primary
//! restores the file.
//!
//! SLO manifests are skipped (their ETag is not the MD5 of the stored bytes).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::Cluster;
use crate::db::ObjectRow;
use crate::store::Store;
use crate::{Error, Result};

/// What one audit pass did (`POST /internal/cluster/audit` returns it).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    /// Objects read.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Copies quarantined.
    pub quarantined: u64,
    /// Rows whose data file was missing (marked listing-only, to be restored).
    #[serde(default)]
    pub missing: u64,
}

/// Runs forever: a rate-limited pass every `audit_interval`.
pub async fn run(st: Arc<Store>, cl: Arc<Cluster>) {
    let mut tick = tokio::time::interval(cl.cfg.audit_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = pass(&st, &cl, Some(cl.cfg.audit_rate)).await {
            tracing::warn!(error = %e, "audit pass failed");
        }
    }
}

/// One pass over every data file; `rate` bounds bytes per second (`None`: as fast as the disk
/// goes, for an operator-triggered pass).
///
/// # Errors
/// [`Error::Db`] when the store cannot be read.
///
/// # Cancel safety
/// Dropping the future stops the pass between files.
pub async fn pass(st: &Arc<Store>, cl: &Cluster, rate: Option<u64>) -> Result<AuditReport> {
    let _one = cl.audit_lock.lock().await;
    let mut rep = AuditReport::default();
    let started = Instant::now();
    let mut after: Option<(String, String, String)> = None;
    loop {
        let a = after.clone();
        let batch = st
            .blocking(move |s| s.db.audit_batch(a.as_ref(), 200))
            .await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = Some((
            last.account.clone(),
            last.container.clone(),
            last.name.clone(),
        ));
        for row in batch {
            let (ok, n) = match check(st, &row).await {
                Ok(v) => v,
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Replaced or removed meanwhile (then the row is no longer this version
                    // and nothing changes), or a row without its file.
                    let r = row.clone();
                    if st.blocking(move |s| s.db.mark_listing_only(&r)).await? {
                        tracing::warn!(account = %row.account, container = %row.container, object = %row.name, ts = %row.ts, "auditor found a row without its data file");
                        rep.missing += 1;
                    }
                    continue;
                }
                Err(_) => continue,
            };
            rep.checked += 1;
            rep.bytes += n;
            if !ok {
                quarantine(st, &row).await?;
                rep.quarantined += 1;
            }
            if let Some(rate) = rate {
                // Bound the read rate: stay behind `rate` bytes per second on average.
                let due = Duration::from_secs_f64(rep.bytes as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    cl.stats.audited.fetch_add(rep.checked, Ordering::Relaxed);
    cl.stats
        .quarantined
        .fetch_add(rep.quarantined, Ordering::Relaxed);
    Ok(rep)
}

/// Reads a version's file: (MD5 matches the ETag, bytes read).
async fn check(st: &Arc<Store>, row: &ObjectRow) -> Result<(bool, u64)> {
    let path = st.data_path(row);
    let mut f = tokio::fs::File::open(&path).await?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()) == row.etag && n == row.size, n))
}

async fn quarantine(st: &Arc<Store>, row: &ObjectRow) -> Result<()> {
    let path = st.data_path(row);
    let qdir = st.cfg.data_dir.join("quarantine");
    let name = format!(
        "{}-{}.data",
        outpost_ring::object_hash_hex(&row.account, &row.container, &row.name),
        row.ts
    );
    let dest = qdir.join(name);
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&qdir)?;
        std::fs::rename(&path, &dest)
    })
    .await
    .map_err(|_| Error::Task)??;
    let r = row.clone();
    st.blocking(move |s| s.db.forget_object(&r)).await?;
    tracing::warn!(account = %row.account, container = %row.container, object = %row.name, ts = %row.ts, "auditor quarantined a corrupt copy");
    Ok(())
}
