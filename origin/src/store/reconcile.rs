//! Rows against files: a row that claims data whose file is gone, and a data file no row
//! names, are both found here and made right.
//!
//! - **Missing file** (a row with data, `listing_only = 0`, whose file is absent): the row is
//!   marked listing-only, which is true of this node. The replicator's suffix hashes towards
//!   primaries cover "has data", so every other primary now sees the difference and pushes
//!   the data back. Without this, the hashes of such a node agree with its peers' and nothing
//!   ever repairs it (issue 19: a replica file missing after replication "converged").
//! - **Orphan file** (a data file no live data row names: a write that crashed between the
//!   rename and the row commit, the replaced version of a write that crashed after its row
//!   commit, a newer version that won elsewhere meanwhile): removed once older than the
//!   grace period. The age is the newer of its change and modification times: a rename or a
//!   hard link (POST) sets the change time, so a file that a write in flight is about to name
//!   is never older than the grace.
//!
//! # Races
//! Rows are read after the files are listed, so a file whose row commits during the scan is
//! seen with its row. A missing file is checked again on disk, and the row is only marked if it
//! is still that version (a newer version removing the old file meanwhile changes nothing). An
//! orphan is checked again for its age just before removal; a same-version copy renamed over it
//! in between could still be removed, which the next scan then sees as a missing file and
//! repairs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Store;
use crate::hlc::Timestamp;
use crate::Result;

/// What [`Store::reconcile_partition`] found and fixed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Rows with data whose file was missing, marked listing-only.
    pub missing: u64,
    /// Orphan files removed.
    pub orphans: u64,
    /// Orphan files kept because they are younger than the grace period.
    pub young_orphans: u64,
}

impl Reconciled {
    /// Adds another partition's figures.
    pub fn add(&mut self, o: Reconciled) {
        self.missing += o.missing;
        self.orphans += o.orphans;
        self.young_orphans += o.young_orphans;
    }
}

/// A data file on disk: its path hash, version and age reference.
struct OnDisk {
    hash: String,
    ts: u64,
    path: PathBuf,
    changed: SystemTime,
}

/// The newer of a file's change and modification times.
fn changed_at(meta: &std::fs::Metadata) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    let ctime = u64::try_from(meta.ctime()).unwrap_or(0);
    let c = SystemTime::UNIX_EPOCH + Duration::from_secs(ctime);
    let m = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    c.max(m)
}

/// Every `<hash[0..3]>/<hash>/<ts>.data` under a partition directory.
fn list_partition(dir: &Path) -> Vec<OnDisk> {
    let mut out = Vec::new();
    let Ok(prefixes) = std::fs::read_dir(dir) else {
        return out;
    };
    for p in prefixes.flatten() {
        for h in std::fs::read_dir(p.path()).into_iter().flatten().flatten() {
            let hash = h.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(h.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Some(ts) = name
                    .strip_suffix(".data")
                    .and_then(|t| t.parse::<Timestamp>().ok())
                else {
                    continue;
                };
                let Ok(meta) = f.metadata() else { continue };
                out.push(OnDisk {
                    hash: hash.clone(),
                    ts: ts.0,
                    path: f.path(),
                    changed: changed_at(&meta),
                });
            }
        }
    }
    out
}

impl Store {
    /// Partitions that have a directory under `objects/` (whether or not rows name them).
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the directory cannot be read.
    pub fn partitions_on_disk(&self) -> Result<Vec<u32>> {
        let mut out: Vec<u32> = std::fs::read_dir(self.files.objects_dir())?
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Makes partition `part`'s rows and files agree (see the module docs): rows whose file
    /// is missing become listing-only, files no row names are removed once older than
    /// `grace`.
    ///
    /// # Errors
    /// [`crate::Error::Db`]; [`crate::Error::Task`] when the blocking task dies.
    ///
    /// # Cancel safety
    /// Runs to its end on a blocking thread; every step is idempotent.
    pub async fn reconcile_partition(
        self: &Arc<Self>,
        part: u32,
        grace: Duration,
    ) -> Result<Reconciled> {
        self.blocking(move |st| st.reconcile_blocking(part, grace))
            .await
    }

    fn reconcile_blocking(&self, part: u32, grace: Duration) -> Result<Reconciled> {
        let mut rep = Reconciled::default();
        let files = list_partition(&self.files.objects_dir().join(part.to_string()));
        let rows = self.db.rows_in_partition(part)?;
        let mut named: HashSet<(String, u64)> = HashSet::new();
        for r in rows.iter().filter(|r| !r.deleted && !r.listing_only) {
            let hash = outpost_ring::object_hash_hex(&r.account, &r.container, &r.name);
            let path = self.files.data_path(part, &hash, r.ts);
            named.insert((hash, r.ts.0));
            if path.exists() {
                continue;
            }
            if self.db.mark_listing_only(r)? {
                rep.missing += 1;
                tracing::warn!(account = %r.account, container = %r.container, object = %r.name, ts = %r.ts, "a row's data file is missing: marked listing-only for the replicator to restore");
            }
        }
        let now = SystemTime::now();
        for f in files {
            if named.contains(&(f.hash.clone(), f.ts)) {
                continue;
            }
            let old = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age >= grace);
            if !old(f.changed) {
                rep.young_orphans += 1;
                continue;
            }
            // Checked again right before removal: a copy renamed over it since is young.
            match std::fs::metadata(&f.path) {
                Ok(m) if old(changed_at(&m)) => {}
                _ => continue,
            }
            if std::fs::remove_file(&f.path).is_ok() {
                rep.orphans += 1;
                if let Some(dir) = f.path.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
                tracing::info!(part, hash = %f.hash, ts = %Timestamp(f.ts), "removed an orphan data file");
            }
        }
        Ok(rep)
    }
}
