//! The store layer: one node's objects, containers and accounts, and the rules that keep them
//! consistent, below every HTTP front-end and background subsystem.
//!
//! ## Layers
//! `api/` (the Swift HTTP handlers) and `cluster/proxy.rs` (the cluster-mode front-end) turn
//! requests into typed values ([`ObjectHeaders`], built by [`crate::request`]) and call the
//! store; the replicator, the auditor, cross-DC shipping and the expirer call the same store.
//! Nothing here knows HTTP: no axum, no header maps, no responses. Errors are the crate's one
//! [`Error`], which the HTTP layer renders.
//!
//! ## What it holds
//! [`Store`] owns the validated config, the metadata database, the data files, the hybrid
//! clock and the metrics. The HTTP-only state (issued auth tokens, the edges following the
//! feed) stays in `api::AppState`, which holds a `Store` beside the cluster and cross-DC
//! state.
//!
//! ## Operations (by file)
//! - [`validate`]: a new object's size, metadata limits, expiry and content type.
//! - [`quota`]: container and account quotas.
//! - `object.rs`: put a version (stage + commit), post metadata (a hard link under the new
//!   timestamp, committed only if the version it came from is still current), tombstone,
//!   open the live version for reading, listing rows of versions held elsewhere.
//! - `meta.rs`: account and container create, update, delete (a container PUT creates
//!   its account; token keys merge by id).
//! - [`slo`]: Static Large Object manifests: segment checks, the stored form and its ETag,
//!   writing one over existing segments, resolving one to its live segments.
//! - [`pieces`]: object bodies streamed from data files (both front-ends' GETs).
//! - `expirer.rs`: removes objects whose `X-Delete-At` passed.
//! - `reconcile.rs`: rows against files: a row whose data file is missing becomes
//!   listing-only (the replicator restores it), an orphan data file is removed after a grace.
//!
//! ## Where the work runs
//! Point lookups (one row by its key: an object, a container, an account) and the open of a
//! data file run on the calling task: they take microseconds when the database pages and the
//! directory are cached, as nginx's open and read of a cache file do in its event loop, while
//! a trip through the blocking pool costs two context switches (half of a small GET's CPU
//! time, measured by `benches/profile_origin.sh`). The database reader taken is the first
//! free one, so a lookup does not wait behind a listing. Writes, listings and every scan
//! go through [`Store::blocking`].
//!
//! ## Invariants
//! A data file is committed (renamed and fsynced) before the row naming it; readers find data
//! only through a committed row; a write older than the current row is ignored
//! ([`Applied::Stale`]).

mod expirer;
mod meta;
mod object;
pub mod pieces;
pub mod quota;
mod reconcile;
pub mod slo;
pub mod validate;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::db::{Applied, Db, ObjectRow};
use crate::files::Files;
use crate::hlc::{Clock, Timestamp};
use crate::metrics::Metrics;
use crate::{Error, Result};

pub use expirer::expirer;
pub use object::{NewVersion, OpenVersion, PostUpdate};
pub use reconcile::Reconciled;
pub use validate::{Expiry, MetaUpdate, NewObject, ObjectHeaders};

/// One node's storage: metadata, data files, clock, config and metrics.
#[derive(Debug)]
pub struct Store {
    /// Validated config.
    pub cfg: Config,
    /// Metadata.
    pub db: Db,
    /// Data files.
    pub files: Files,
    /// Hybrid logical clock.
    pub clock: Clock,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The partition power objects are placed by (the ring's in cluster mode).
    part_power: AtomicU32,
}

impl Store {
    /// A store over an opened database and data directory.
    pub fn new(
        cfg: Config,
        db: Db,
        files: Files,
        clock: Clock,
        metrics: Metrics,
        part_power: u32,
    ) -> Store {
        Store {
            cfg,
            db,
            files,
            clock,
            metrics,
            part_power: AtomicU32::new(part_power),
        }
    }

    /// The partition power objects are placed by: the ring's in cluster mode, else
    /// [`crate::files::DEFAULT_PART_POWER`].
    pub fn part_power(&self) -> u32 {
        self.part_power.load(Ordering::Relaxed)
    }

    /// Follows a reloaded ring's partition power.
    pub fn set_part_power(&self, p: u32) {
        self.part_power.store(p, Ordering::Relaxed);
    }

    /// Runs blocking database work off the async threads.
    ///
    /// # Errors
    /// What `f` returns; [`Error::Task`] if the blocking task panicked.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop `f`, which runs to its end.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let st = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&st))
            .await
            .map_err(|_| Error::Task)?
    }

    /// Where a row's data file lives.
    pub fn data_path(&self, row: &ObjectRow) -> PathBuf {
        let hash = outpost_ring::object_hash_hex(&row.account, &row.container, &row.name);
        self.files.data_path(row.part, &hash, row.ts)
    }

    /// The timestamp of a write: `given` (a peer's original timestamp, which the clock then
    /// moves past), or now.
    pub fn write_ts(&self, given: Option<Timestamp>) -> Timestamp {
        match given {
            Some(ts) => {
                self.clock.observe(ts);
                ts
            }
            None => self.clock.now(),
        }
    }

    /// An empty row for `account/container/object` in its partition (the base of a tombstone
    /// or a listing row).
    pub fn blank_row(&self, account: &str, container: &str, object: &str) -> ObjectRow {
        let hash = outpost_ring::object_hash_hex(account, container, object);
        ObjectRow {
            account: account.to_owned(),
            container: container.to_owned(),
            name: object.to_owned(),
            part: outpost_ring::partition_of_hex(self.part_power(), &hash),
            ..ObjectRow::default()
        }
    }

    /// Stores a small object from memory (demo content, delivered logs) through the PUT path.
    ///
    /// # Errors
    /// Any storage error.
    pub async fn put_bytes(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        name: &str,
        content_type: &str,
        data: bytes::Bytes,
    ) -> Result<()> {
        let staged = self.files.stage_bytes(data).await?;
        let ts = self.clock.now();
        let etag = staged.md5.clone();
        let size = staged.size;
        self.put_version(
            staged,
            NewVersion {
                account: account.to_owned(),
                container: container.to_owned(),
                name: name.to_owned(),
                ts,
                etag,
                size,
                content_type: content_type.to_owned(),
                meta: crate::db::Meta::new(),
                delete_at: None,
                slo: false,
            },
        )
        .await
        .map(|_: Applied<()>| ())
    }
}
