//! Object versions: put (stage + commit), post (link under a new timestamp), tombstone, open
//! the live version, listing rows of versions whose data lives on other nodes.

use std::sync::Arc;

use super::Store;
use crate::db::{Applied, Meta, ObjectRow};
use crate::files::Staged;
use crate::hlc::Timestamp;
use crate::{failpoints, Error, Result};

/// What a new version consists of, besides its data.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Account.
    pub account: String,
    /// Container.
    pub container: String,
    /// Object name.
    pub name: String,
    /// The version's timestamp.
    pub ts: Timestamp,
    /// MD5 of the data, hex.
    pub etag: String,
    /// Data bytes.
    pub size: u64,
    /// Content type.
    pub content_type: String,
    /// User metadata and stored system headers.
    pub meta: Meta,
    /// Expiry, epoch seconds.
    pub delete_at: Option<u64>,
    /// The data is an SLO manifest.
    pub slo: bool,
}

/// The live version of an object with its data file open: reading the file yields that
/// version even if a newer one replaces (and unlinks) it meanwhile.
#[derive(Debug)]
pub struct OpenVersion {
    /// The version's row.
    pub row: ObjectRow,
    /// Where its data file is.
    pub path: std::path::PathBuf,
    /// The open data file.
    pub file: Arc<std::fs::File>,
    /// The file's length.
    pub len: u64,
}

/// What a POST changes in a version (besides its timestamp).
#[derive(Debug, Clone)]
pub struct PostUpdate {
    /// The new metadata (replaces the old).
    pub meta: Meta,
    /// `X-Remove-Delete-At`: drop the expiry.
    pub remove_delete_at: bool,
    /// A new expiry (`None`: keep the current one).
    pub delete_at: Option<u64>,
    /// A new content type (`None`: keep the current one).
    pub content_type: Option<String>,
}

/// Runs a future to completion on its own task, so dropping the caller (a client that
/// disconnects) cannot stop it between a metadata commit and the file clean-up that follows.
async fn detached<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(fut).await.map_err(|_| Error::Task)?
}

impl Store {
    /// The live, unexpired row of an object.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none (or only a tombstone, or it expired).
    pub async fn live_row(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        object: &str,
    ) -> Result<ObjectRow> {
        // A point lookup runs on the calling task (see the module docs of `store`).
        let row = self.db.get_object(account, container, object)?;
        let now = self.clock.wall_secs();
        match row {
            Some(r) if !r.deleted && r.delete_at.is_none_or(|d| d > now) => Ok(r),
            _ => Err(Error::NotFound { what: "object" }),
        }
    }

    /// The live row of an object and its data file, opened. Retries when the version it read
    /// was replaced before its file could be opened.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] when the object kept changing; I/O errors.
    pub async fn open_live(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        object: &str,
    ) -> Result<OpenVersion> {
        for _ in 0..5 {
            let row = self.live_row(account, container, object).await?;
            let path = self.data_path(&row);
            // Opened on the calling task, as nginx opens files in its event loop: an open
            // and a `fstat` of a file whose directory is cached cost microseconds, a trip
            // through the blocking pool two context switches.
            let opened = std::fs::File::open(&path).and_then(|f| {
                let len = f.metadata()?.len();
                Ok((f, len))
            });
            match opened {
                Ok((f, len)) => {
                    return Ok(OpenVersion {
                        row,
                        path,
                        file: Arc::new(f),
                        len,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict {
            reason: "the object kept changing while being opened; retry",
        })
    }

    /// Makes a staged file the current version: rename into place, then the metadata row
    /// (newest wins), then drop the replaced version's file.
    ///
    /// # Errors
    /// Storage errors; the staged file is removed.
    ///
    /// # Cancel safety
    /// From the commit on, the work runs to its end on its own task.
    pub async fn put_version(
        self: &Arc<Self>,
        staged: Staged,
        v: NewVersion,
    ) -> Result<Applied<()>> {
        let hash = outpost_ring::object_hash_hex(&v.account, &v.container, &v.name);
        let part = outpost_ring::partition_of_hex(self.part_power(), &hash);
        let dest = self.files.data_path(part, &hash, v.ts);
        failpoints::hit(failpoints::PUT_AFTER_TEMP)?;
        self.files.commit(staged, &dest).await?;
        failpoints::hit(failpoints::PUT_AFTER_RENAME)?;
        let row = ObjectRow {
            account: v.account,
            container: v.container,
            name: v.name,
            ts: v.ts,
            deleted: false,
            size: v.size,
            etag: v.etag,
            content_type: v.content_type,
            meta: v.meta,
            delete_at: v.delete_at,
            slo: v.slo,
            part,
            listing_only: false,
        };
        // From the commit on, run to the end even if the client goes away: a dropped request
        // must not leave the replaced version's file (or an unused new one) behind.
        let st = Arc::clone(self);
        detached(async move {
            let row2 = row.clone();
            match st.blocking(move |s| s.db.put_object(&row2)).await {
                Ok(Applied::Yes(old)) => {
                    failpoints::hit(failpoints::PUT_AFTER_ROW)?;
                    // A listing row completed with its data (same version) has no file of its
                    // own: its path is the one just written.
                    if let Some(old) = old.filter(|o| !o.deleted && !o.listing_only) {
                        st.files.remove(st.data_path(&old)).await;
                    }
                    tracing::info!(target: "audit", account = %row.account, container = %row.container, object = %row.name, ts = %row.ts, action = "object-put");
                    failpoints::hit(failpoints::PUT_BEFORE_REPLY)?;
                    Ok(Applied::Yes(()))
                }
                Ok(Applied::Stale) => {
                    // The same version already stored (a retried or replicated copy) lives at
                    // this very path: keep it.
                    let (a, c, o) = (row.account.clone(), row.container.clone(), row.name.clone());
                    let cur = st.blocking(move |s| s.db.get_object(&a, &c, &o)).await?;
                    let same =
                        cur.is_some_and(|c| c.ts == row.ts && !c.deleted && !c.listing_only);
                    if !same {
                        st.files.remove(dest).await;
                    }
                    Ok(Applied::Stale)
                }
                Err(e) => {
                    st.files.remove(dest).await;
                    Err(e)
                }
            }
        })
        .await
    }

    /// Stores only the listing row of a version whose data lives on other nodes (cluster
    /// mode); a data-holding older version here loses its file.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub async fn put_listing_row(self: &Arc<Self>, row: ObjectRow) -> Result<Applied<()>> {
        let row2 = row.clone();
        match self.blocking(move |s| s.db.put_object(&row2)).await? {
            Applied::Yes(old) => {
                if let Some(old) = old.filter(|o| !o.deleted && !o.listing_only) {
                    self.files.remove(self.data_path(&old)).await;
                }
                Ok(Applied::Yes(()))
            }
            Applied::Stale => Ok(Applied::Stale),
        }
    }

    /// POST on a listing row: new metadata, same (absent) data, committed only if `row` is
    /// still current.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub async fn post_listing_row(
        self: &Arc<Self>,
        row: ObjectRow,
        new_row: ObjectRow,
    ) -> Result<()> {
        let base = row.ts;
        self.blocking(move |s| s.db.put_object_if(&new_row, base))
            .await?;
        Ok(())
    }

    /// POST: a new version with new metadata and the current version's data, linked under the
    /// new timestamp. If a PUT replaces the current version meanwhile, starts over from the
    /// PUT's version (never resurrects the data it replaced). Returns the row it was derived
    /// from, or `None` when a newer write already won.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] when the object kept changing; storage errors.
    pub async fn post_version(
        self: &Arc<Self>,
        (account, container, object): (&str, &str, &str),
        ts: Timestamp,
        update: &PostUpdate,
    ) -> Result<Option<ObjectRow>> {
        for _ in 0..5 {
            let row = self.live_row(account, container, object).await?;
            if row.ts >= ts {
                // A newer write already won.
                return Ok(None);
            }
            let delete_at = if update.remove_delete_at {
                None
            } else {
                update.delete_at.or(row.delete_at)
            };
            // The data file is named by the version's timestamp: link it under the new one,
            // and make the link durable before the metadata names it.
            let old_path = self.data_path(&row);
            let mut new_row = row.clone();
            new_row.ts = ts;
            new_row.meta = update.meta.clone();
            new_row.delete_at = delete_at;
            if let Some(ct) = &update.content_type {
                new_row.content_type = ct.clone();
            }
            let new_path = self.data_path(&new_row);
            let (o, n) = (old_path.clone(), new_path.clone());
            let linked = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::hard_link(&o, &n)?;
                if let Some(dir) = n.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            })
            .await
            .map_err(|_| Error::Task)?;
            match linked {
                Ok(()) => {}
                // Replaced between reading the row and linking: start over.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.files.remove(new_path).await;
                    return Err(e.into());
                }
            }
            let nr = new_row.clone();
            let base = row.ts;
            match self.blocking(move |s| s.db.put_object_if(&nr, base)).await {
                Ok(Applied::Yes(_)) => {
                    self.files.remove(old_path).await;
                    return Ok(Some(row));
                }
                Ok(Applied::Stale) => {
                    self.files.remove(new_path).await;
                }
                Err(e) => {
                    self.files.remove(new_path).await;
                    return Err(e);
                }
            }
        }
        Err(Error::Conflict {
            reason: "the object kept changing during the POST; retry",
        })
    }

    /// Tombstones an object (and removes its data). Returns false when a newer version won.
    ///
    /// # Errors
    /// [`Error::Db`].
    ///
    /// # Cancel safety
    /// Runs to its end on its own task.
    pub async fn tombstone(self: &Arc<Self>, row: &ObjectRow, ts: Timestamp) -> Result<bool> {
        let mut t = row.clone();
        t.ts = ts;
        t.deleted = true;
        t.size = 0;
        t.etag = String::new();
        t.meta = Meta::new();
        t.slo = false;
        t.delete_at = None;
        let st = Arc::clone(self);
        let row = row.clone();
        detached(async move {
            match st.blocking(move |s| s.db.put_object(&t)).await? {
                Applied::Yes(old) => {
                    if let Some(old) = old.filter(|o| !o.deleted && !o.listing_only) {
                        st.files.remove(st.data_path(&old)).await;
                    }
                    tracing::info!(target: "audit", account = %row.account, container = %row.container, object = %row.name, ts = %ts, action = "object-delete");
                    Ok(true)
                }
                Applied::Stale => Ok(false),
            }
        })
        .await
    }
}
