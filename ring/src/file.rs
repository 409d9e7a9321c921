//! [`RingFile`]: a ring file kept current in memory, for the processes that follow it (origin
//! nodes and ring-aware edges). Operators replace the file atomically (`mv`); a holder
//! re-reads it when its modification time changes and adopts it only if its `version` is
//! newer, so a stale or half-copied file never replaces the ring in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use crate::{Error, Ring};

/// What [`RingFile::reload_if_changed`] found.
#[derive(Debug)]
pub enum Reload {
    /// The file did not change since the last look.
    Unchanged,
    /// The file changed but holds no newer version: the ring in use stays.
    NotNewer,
    /// A newer ring is now in use.
    Loaded(Arc<Ring>),
    /// The file changed but cannot be loaded: the ring in use stays and the next call
    /// tries again.
    Failed(Error),
}

/// A ring loaded from a file, reloadable in place.
#[derive(Debug)]
pub struct RingFile {
    path: PathBuf,
    ring: RwLock<Arc<Ring>>,
    seen: Mutex<Option<SystemTime>>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl RingFile {
    /// Loads the ring file.
    ///
    /// # Errors
    /// As [`Ring::load`].
    pub fn open(path: &Path) -> Result<RingFile, Error> {
        let seen = mtime(path);
        let ring = Ring::load(path)?;
        Ok(RingFile {
            path: path.to_path_buf(),
            ring: RwLock::new(Arc::new(ring)),
            seen: Mutex::new(seen),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ring in use.
    pub fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.ring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the file if its modification time changed, and adopts it if its version is
    /// newer than the ring in use.
    pub fn reload_if_changed(&self) -> Reload {
        let now = mtime(&self.path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if now.is_none() || *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match Ring::load(&self.path) {
            Ok(r) if r.version > self.ring().version => {
                let r = Arc::new(r);
                *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&r);
                Reload::Loaded(r)
            }
            Ok(_) => Reload::NotNewer,
            Err(e) => {
                // Look again next time, even if the time stamp stays.
                *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = None;
                Reload::Failed(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceSpec;

    fn ring(version_bumps: usize) -> Ring {
        let mut r = Ring::new(4, 1).unwrap();
        r.add_device(DeviceSpec {
            region: 1,
            zone: 1,
            host: "127.0.0.1".into(),
            port: 6000,
            device: "d0".into(),
            weight: 100.0,
        })
        .unwrap();
        r.rebalance().unwrap();
        for _ in 0..version_bumps {
            r.set_weight(0, 100.0).unwrap();
        }
        r
    }

    fn touch_later(path: &Path, seconds: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(seconds))
            .unwrap();
    }

    #[test]
    fn adopts_only_newer_versions() {
        let dir = std::env::temp_dir().join(format!("ringfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ring.json");
        let old = ring(0);
        old.save(&path).unwrap();
        let f = RingFile::open(&path).unwrap();
        assert!(matches!(f.reload_if_changed(), Reload::Unchanged));

        // Same version rewritten: kept.
        old.save(&path).unwrap();
        touch_later(&path, 10);
        assert!(matches!(f.reload_if_changed(), Reload::NotNewer));

        // Garbage: kept, and retried on the next call.
        std::fs::write(&path, b"{not json").unwrap();
        touch_later(&path, 20);
        assert!(matches!(f.reload_if_changed(), Reload::Failed(_)));
        assert_eq!(f.ring().version, old.version);

        let new = ring(2);
        assert!(new.version > old.version);
        new.save(&path).unwrap();
        touch_later(&path, 30);
        assert!(matches!(f.reload_if_changed(), Reload::Loaded(r) if r.version == new.version));
        assert_eq!(f.ring().version, new.version);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
