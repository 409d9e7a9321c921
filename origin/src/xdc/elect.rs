//! Which node of a cluster ships to a peer DC, and the hand-over when it goes away.
//!
//! Every node with `[sync] ship = true` runs a worker per peer, but one ships at a time: the
//! node with the lowest ring device id among those that ship and answer. Before each batch a
//! worker asks every live device with a lower id for its `/internal/xdc/status` (at most
//! every [`RECHECK`], each ask bounded by `cluster.node_timeout`); one that answers with this
//! peer in its list ships (or stands by for an even lower one), so this node stands by. A
//! node that does not answer (killed, paused, cut off) or does not ship is passed over: when
//! the shipper dies, the next node in ring order ships within `node_timeout + RECHECK`.
//! Without a ring (a single node) a node always ships.
//!
//! **Hand-over.** Feed positions are per node (each node's feed numbers its own entries), so
//! a standby keeps its own position near the shipper's: each time the shipper it sees reports
//! it is caught up (`lag_entries` 0), the standby moves its position to the end its own feed
//! had [`HANDOVER_MARGIN`] earlier (a change reaches every node's feed within that, or the
//! replicator brings it later and it is a new entry then). A standby that takes over ships
//! from there; the have-check skips what the old shipper already sent, so the overlap costs
//! one have-check per batch, not transfers. Two nodes may ship at once for a moment (an old
//! shipper coming back): duplicates are harmless (have-check, newest wins).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method};

use super::PeerStatus;
use crate::cluster::Cluster;

/// How long an election result holds before the lower nodes are asked again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// How far behind its own feed's end a standby keeps its position (see the module docs).
pub const HANDOVER_MARGIN: Duration = Duration::from_secs(10);

/// What a worker should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Ship.
    Ship,
    /// Stand by; `Some(seq)`: the shipper is caught up, move the position to `seq`.
    Standby(Option<u64>),
}

/// One worker's view of the election.
#[derive(Debug, Default)]
pub struct Election {
    checked: Option<(Instant, bool)>,
    /// `(when, this node's last feed seq then)`, oldest first, while standing by.
    samples: VecDeque<(Instant, u64)>,
}

impl Election {
    /// Decides whether this node ships to `peer` now; `last_seq` is the end of this node's
    /// feed.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the previous decision.
    pub async fn role(&mut self, cl: &Cluster, peer: &str, last_seq: u64) -> Role {
        if let Some((at, ship)) = self.checked {
            if at.elapsed() < RECHECK {
                return if ship {
                    Role::Ship
                } else {
                    Role::Standby(None)
                };
            }
        }
        let shipper = lower_shipper(cl, peer).await;
        let now = Instant::now();
        self.checked = Some((now, shipper.is_none()));
        let Some(caught_up) = shipper else {
            self.samples.clear();
            return Role::Ship;
        };
        self.samples.push_back((now, last_seq));
        if !caught_up {
            return Role::Standby(None);
        }
        Role::Standby(self.settle(now))
    }

    /// The newest sample at least [`HANDOVER_MARGIN`] old (dropping older ones).
    fn settle(&mut self, now: Instant) -> Option<u64> {
        let mut pos = None;
        while let Some(&(at, seq)) = self.samples.front() {
            if now.duration_since(at) < HANDOVER_MARGIN {
                break;
            }
            pos = Some(seq);
            self.samples.pop_front();
        }
        if let Some(seq) = pos {
            // Keep it as the oldest sample: the next settle may reuse it.
            self.samples.push_front((now - HANDOVER_MARGIN, seq));
        }
        pos
    }
}

/// Whether a live node with a lower device id ships to `peer`: `Some(caught_up)` of the
/// first one that answers, `None` when none does.
async fn lower_shipper(cl: &Cluster, peer: &str) -> Option<bool> {
    let ring = cl.ring();
    let me = cl.me(&ring)?;
    let mut lower: Vec<_> = ring.live_devices().filter(|d| d.id < me).collect();
    lower.sort_by_key(|d| d.id);
    for d in lower {
        let url = format!("{}{}", d.url(), outpost_proto::paths::XDC_STATUS);
        let Ok(resp) = cl.send(Method::GET, url, HeaderMap::new(), None).await else {
            continue;
        };
        if !resp.status().is_success() {
            continue;
        }
        let Ok(body) = resp.bytes().await else {
            continue;
        };
        let Ok(peers) = serde_json::from_slice::<Vec<PeerStatus>>(&body) else {
            continue;
        };
        if let Some(p) = peers.iter().find(|p| p.peer == peer) {
            return Some(p.active && p.lag_entries == 0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_trails_its_feed_by_the_margin() {
        let mut e = Election::default();
        let t0 = Instant::now();
        e.samples.push_back((t0, 10));
        e.samples.push_back((t0 + Duration::from_secs(5), 20));
        e.samples.push_back((t0 + Duration::from_secs(12), 30));
        // 11 s after t0: only the first sample is old enough.
        assert_eq!(e.settle(t0 + Duration::from_secs(11)), Some(10));
        // 16 s: the second one is.
        assert_eq!(e.settle(t0 + Duration::from_secs(16)), Some(20));
        // 17 s: nothing newer is old enough; the last settled position stays.
        assert_eq!(e.settle(t0 + Duration::from_secs(17)), Some(20));
        assert_eq!(e.settle(t0 + Duration::from_secs(23)), Some(30));
    }
}
