//! `X-Purge-Wait` in a cluster: a write waits for every edge of the DC, whichever node it
//! follows, and says which edges acknowledged.
//!
//! Each node has its own change feed and its own subscribers. A write reaches every node's
//! feed (data or listing row, or a broadcast for accounts, containers and purges), but after
//! a quorum answer some copies are still on their way. So the accepting node:
//! 1. tracks the writes a request makes ([`tracking`]; the write path and the broadcasts
//!    report into it through a task-local, [`note_write`] / [`note_missed`]) and waits for
//!    their background part to finish, learning which nodes the write did not reach;
//! 2. asks every other node for a barrier ([`outpost_proto::paths::CLUSTER_PURGE_WAIT`]): the
//!    node takes its feed position at that moment (which holds the write, since step 1 is
//!    over) and waits until each of its edges applied it ([`NodeAcks`]). A node the write did
//!    not reach lists its edges as pending;
//! 3. merges the answers with its own edges': an edge has purged when any node it follows
//!    says so (an edge that moved from one node to another is not waited for twice).
//!
//! Everything shares the one `X-Purge-Wait-Timeout` deadline. Nodes that cannot be asked are
//! named in the answer (`X-Purge-Unreached`): their edges, if any, are unknown.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use http::{HeaderMap, Method};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Cluster;

/// Format of [`NodeAcks`].
pub const FORMAT: u32 = 1;

/// One node's answer to the barrier: its live edges, split by whether they applied its feed
/// up to the position it had when asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAcks {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Edges that applied it.
    pub acked: Vec<String>,
    /// Edges that had not when the wait ended.
    pub pending: Vec<String>,
}

/// The writes one request made, and the nodes each did not reach (device ids), reported
/// when its background part is over.
#[derive(Debug, Default)]
pub struct Landing {
    writes: Mutex<Vec<oneshot::Receiver<Vec<u32>>>>,
    missed: Mutex<BTreeSet<u32>>,
}

impl Landing {
    fn take(&self) -> Vec<oneshot::Receiver<Vec<u32>>> {
        std::mem::take(
            &mut *self
                .writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn miss(&self, ids: impl IntoIterator<Item = u32>) {
        self.missed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(ids);
    }

    fn missed(&self) -> BTreeSet<u32> {
        self.missed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits (until `deadline`) for every tracked write to finish; true if all did.
    async fn settle(&self, deadline: Instant) -> bool {
        let mut all = true;
        for rx in self.take() {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(ids)) => self.miss(ids),
                // The write task ended without a report: assume nothing about it.
                Ok(Err(_)) => {}
                Err(_) => all = false,
            }
        }
        all
    }
}

tokio::task_local! {
    static LANDING: Arc<Landing>;
}

/// Runs `f` (a request's handler) with its cluster writes tracked.
pub async fn tracking<F: Future>(f: F) -> (F::Output, Arc<Landing>) {
    let landing = Arc::new(Landing::default());
    let out = LANDING.scope(Arc::clone(&landing), f).await;
    (out, landing)
}

/// The write path: a write whose background part reports, on `rx`, the nodes it missed.
/// Without [`tracking`] (no `X-Purge-Wait`), nothing is kept.
pub(super) fn note_write() -> Option<oneshot::Sender<Vec<u32>>> {
    LANDING
        .try_with(|l| {
            let (tx, rx) = oneshot::channel();
            l.writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(rx);
            tx
        })
        .ok()
}

/// A broadcast (account, container, purge) that did not reach these nodes.
pub(super) fn note_missed(ids: impl IntoIterator<Item = u32>) {
    let _ = LANDING.try_with(|l| l.miss(ids));
}

/// Which edges of the DC applied a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Edges that applied it (on any node they follow).
    pub acked: BTreeSet<String>,
    /// Edges that had not when the wait ended.
    pub pending: BTreeSet<String>,
    /// Nodes that could not be asked (`host:port`).
    pub unreached: Vec<String>,
    /// False if some copy of the write was still on its way at the deadline.
    pub landed: bool,
}

impl Coverage {
    /// True when every edge applied it and every node answered.
    pub fn complete(&self) -> bool {
        self.landed && self.pending.is_empty() && self.unreached.is_empty()
    }

    fn add(&mut self, a: NodeAcks) {
        self.acked.extend(a.acked);
        self.pending.extend(a.pending);
        self.pending.retain(|e| !self.acked.contains(e));
    }
}

/// Waits for every edge of the DC to apply the writes `landing` tracked, within `timeout`.
/// `local(remaining)` is this node's own wait, run once the writes landed.
///
/// # Cancel safety
/// Dropping the future abandons the wait; the writes go on.
pub async fn cover<L, F>(cl: &Cluster, landing: &Landing, timeout: Duration, local: L) -> Coverage
where
    L: FnOnce(Duration) -> F,
    F: Future<Output = NodeAcks>,
{
    let deadline = Instant::now() + timeout;
    let landed = landing.settle(deadline).await;
    let missed = landing.missed();
    let remaining = deadline.saturating_duration_since(Instant::now());
    let ring = cl.ring();
    let me = cl.me(&ring);
    let asks = ring.live_devices().filter(|d| Some(d.id) != me).map(|d| {
        let url = format!(
            "{}{}?timeout={:.3}{}",
            d.url(),
            outpost_proto::paths::CLUSTER_PURGE_WAIT,
            remaining.as_secs_f64(),
            if missed.contains(&d.id) {
                "&missed=1"
            } else {
                ""
            }
        );
        let node = d.addr();
        async move {
            let answer = ask(cl, url, remaining).await;
            (node, answer)
        }
    });
    let (mine, theirs) = futures_util::join!(local(remaining), join_all(asks));
    let mut out = Coverage {
        landed,
        ..Coverage::default()
    };
    if me.is_some_and(|id| missed.contains(&id)) {
        out.pending.extend(mine.acked);
        out.pending.extend(mine.pending);
    } else {
        out.add(mine);
    }
    for (node, answer) in theirs {
        match answer {
            Some(a) => out.add(a),
            None => out.unreached.push(node),
        }
    }
    out
}

async fn ask(cl: &Cluster, url: String, wait: Duration) -> Option<NodeAcks> {
    // The node answers after waiting up to `wait`; allow it the usual time to answer on top.
    let resp = cl
        .send_within(Method::GET, url, HeaderMap::new(), None, wait)
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let a: NodeAcks = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
    (a.format == FORMAT).then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(acked: &[&str], pending: &[&str]) -> NodeAcks {
        NodeAcks {
            format: FORMAT,
            acked: acked.iter().map(|s| (*s).to_owned()).collect(),
            pending: pending.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn an_edge_acked_by_any_node_it_follows_is_not_pending() {
        let mut c = Coverage {
            landed: true,
            ..Coverage::default()
        };
        // e2 moved from the first node to the second: stale at the first, current at the second.
        c.add(acks(&["e1"], &["e2"]));
        c.add(acks(&["e2", "e3"], &["e4"]));
        assert_eq!(c.acked, ["e1", "e2", "e3"].map(String::from).into());
        assert_eq!(c.pending, ["e4"].map(String::from).into());
        assert!(!c.complete());
        c.add(acks(&["e4"], &[]));
        assert!(c.complete());
        c.unreached.push("127.0.0.1:1".into());
        assert!(!c.complete());
    }

    #[tokio::test]
    async fn tracked_writes_report_the_nodes_they_missed() {
        let ((), landing) = tracking(async {
            let tx = note_write().expect("tracked");
            note_missed([7]);
            tokio::spawn(async move {
                let _ = tx.send(vec![3]);
            });
        })
        .await;
        assert!(note_write().is_none(), "untracked outside the scope");
        assert!(
            landing
                .settle(Instant::now() + Duration::from_secs(5))
                .await
        );
        assert_eq!(landing.missed(), [3, 7].into());
        // A write still running at the deadline.
        let (_running, slow) = tracking(async { note_write() }).await;
        assert!(!slow.settle(Instant::now()).await);
    }
}
