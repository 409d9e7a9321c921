//! Ring-aware upstream selection: on a miss for an object, go straight to a storage node that
//! holds it (skipping the origin proxy's hop), fail over to the other replicas, and fall back to
//! the configured origin address (the proxy, which also knows handoffs) last.
//!
//! The ring is the origin cluster's ring file ([`outpost_ring::Ring`]), named by
//! `[origin] ring` in the edge config. A thread polls it once a second and swaps in a newer
//! `version` without a restart; a file that fails to load keeps the previous ring (logged).
//!
//! A direct read carries `X-Outpost-Direct: data` with the edge's internal secret (the
//! cluster's), so the node answers from its own store only. A replica that is down, answers
//! 5xx or 404 (it may lack a copy the replicator has not brought yet) is skipped; the proxy's
//! answer is final.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outpost_ring::{Reload, Ring, RingFile};

use crate::Error;

/// The header selecting the storage role of an origin node (read from its own store).
pub use outpost_proto::headers::DIRECT as DIRECT_HEADER;

/// Where an object may be read from, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// A storage node holding a replica (direct read).
    Replica(SocketAddr),
    /// The configured origin address (the cluster's proxy role).
    Origin(SocketAddr),
}

impl Upstream {
    /// Its address.
    pub fn addr(self) -> SocketAddr {
        match self {
            Upstream::Replica(a) | Upstream::Origin(a) => a,
        }
    }

    /// True for a direct read from a replica.
    pub fn is_replica(self) -> bool {
        matches!(self, Upstream::Replica(_))
    }
}

/// The ring as the edge sees it.
#[derive(Debug)]
pub struct RingView {
    file: RingFile,
}

impl RingView {
    /// Loads the ring file.
    ///
    /// # Errors
    /// [`Error::Config`] naming `origin.ring` when the file cannot be read or parsed.
    pub fn open(path: &Path) -> Result<Arc<RingView>, Error> {
        let file = RingFile::open(path).map_err(|e| Error::Config {
            key: "origin.ring".into(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(RingView { file }))
    }

    /// The ring in use.
    pub fn ring(&self) -> Arc<Ring> {
        self.file.ring()
    }

    /// Reloads the file if it changed and holds a newer version; returns the version in use.
    pub fn refresh(&self) -> u64 {
        match self.file.reload_if_changed() {
            Reload::Loaded(r) => tracing::info!(version = r.version, "edge: new ring loaded"),
            Reload::Failed(e) => {
                tracing::warn!(error = %e, "edge: ring file unreadable; keeping the ring in use");
            }
            Reload::Unchanged | Reload::NotNewer => {}
        }
        self.file.ring().version
    }

    /// Polls the file once a second on a thread of its own, for the life of the process.
    pub fn watch(self: &Arc<RingView>) -> std::io::Result<()> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("ring-watch".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                me.refresh();
            })
            .map(|_| ())
    }

    /// Where to read `account/container/object` from: its primaries in ring order (rotated by
    /// the partition so load spreads), then `origin`. Devices are reached at the `host:port`
    /// the ring names; a device whose host is not an IP address is skipped (no DNS lookups
    /// on the request path), leaving its reads to the origin proxy.
    pub fn upstreams(
        &self,
        account: &str,
        container: &str,
        object: &str,
        origin: SocketAddr,
    ) -> Vec<Upstream> {
        let ring = self.ring();
        let part = ring.partition(account, container, object);
        let mut out: Vec<Upstream> = ring
            .primaries(part)
            .into_iter()
            .filter_map(|d| d.addr().parse().ok())
            .map(Upstream::Replica)
            .collect();
        if !out.is_empty() {
            let k = part as usize % out.len();
            out.rotate_left(k);
        }
        out.push(Upstream::Origin(origin));
        out
    }
}
