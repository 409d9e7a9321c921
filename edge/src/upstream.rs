//! The origin as upstream, one set of rules for both engines that fetch from it: the pingora
//! proxy path (`proxy`: whole objects, listings, generic mode) and the slice engine
//! (`slice`: byte ranges of large objects).
//!
//! Both walk the same ordered list ([`Upstreams`]: the object's replicas from the ring, then
//! the configured origin, see [`crate::ring`]), with the same failover rule (a replica that
//! cannot be reached, or answers 404 or 5xx, is skipped while another upstream remains; the
//! last answer is final), the same peer options (`connect_timeout`, `read_timeout`, pooled
//! idle connections) and the same request addressing (`Host`, the edge's credential, the
//! direct-read role for a replica).

use std::net::SocketAddr;
use std::time::Duration;

use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::Result as PResult;

use crate::config::Config;
use crate::feed::INTERNAL_HEADER;
use crate::ring::{Upstream, DIRECT_HEADER};

/// How long an idle upstream connection stays pooled.
const IDLE: Duration = Duration::from_secs(60);

/// The upstreams of one request, in order, and the one being tried. Never empty: the
/// configured origin is always last.
#[derive(Debug, Clone)]
pub struct Upstreams {
    list: Vec<Upstream>,
    at: usize,
}

impl Upstreams {
    /// `list` in order, with `origin` appended when the list does not already end with it.
    pub fn new(mut list: Vec<Upstream>, origin: SocketAddr) -> Upstreams {
        if list.last().is_none_or(|u| u.is_replica()) {
            list.push(Upstream::Origin(origin));
        }
        Upstreams { list, at: 0 }
    }

    /// The upstream being tried.
    pub fn current(&self) -> Upstream {
        self.list[self.at]
    }

    /// Whether another upstream remains after the current one.
    fn more(&self) -> bool {
        self.at + 1 < self.list.len()
    }

    /// After the current upstream answered `status`: moves on and returns true when that
    /// answer must not be final (a replica's 404 or 5xx while another upstream remains).
    pub fn skip_answer(&mut self, status: http::StatusCode) -> bool {
        let skip = self.current().is_replica()
            && self.more()
            && (status == http::StatusCode::NOT_FOUND || status.is_server_error());
        if skip {
            self.at += 1;
        }
        skip
    }

    /// After the current upstream could not be reached (or failed before answering): moves on
    /// and returns true when another upstream remains.
    pub fn skip_failure(&mut self) -> bool {
        let more = self.more();
        if more {
            self.at += 1;
        }
        more
    }

    /// The pingora peer of the current upstream.
    pub fn peer(&self, cfg: &Config) -> HttpPeer {
        peer(cfg, self.current().addr())
    }
}

/// The pingora peer for `addr` with the configured timeouts.
pub fn peer(cfg: &Config, addr: SocketAddr) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = Some(cfg.connect_timeout);
    peer.options.read_timeout = Some(cfg.read_timeout);
    peer.options.idle_timeout = Some(IDLE);
    peer
}

/// How long an upstream connection may wait in the pool.
pub fn idle() -> Option<Duration> {
    Some(IDLE)
}

/// Addresses `req` to `up` as the edge: its `Host`, the edge's credential, and for a replica
/// the direct-read role (the node answers from its own store only).
///
/// # Errors
/// A header pingora refuses (not expected for these values).
pub fn address(req: &mut RequestHeader, up: Upstream, cfg: &Config) -> PResult<()> {
    req.insert_header(http::header::HOST, up.addr().to_string())?;
    if up.is_replica() {
        req.insert_header(DIRECT_HEADER, outpost_proto::direct::Direct::Data.as_str())?;
    }
    req.insert_header(INTERNAL_HEADER, cfg.internal_secret.as_str())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn replicas_fail_over_to_the_origin_whose_answer_is_final() {
        let mut u = Upstreams::new(vec![Upstream::Replica(a(1)), Upstream::Replica(a(2))], a(9));
        assert_eq!(u.current(), Upstream::Replica(a(1)));
        assert!(u.skip_answer(http::StatusCode::NOT_FOUND));
        assert!(!u.skip_answer(http::StatusCode::OK));
        assert_eq!(u.current(), Upstream::Replica(a(2)));
        assert!(u.skip_failure());
        assert_eq!(u.current(), Upstream::Origin(a(9)));
        // The origin's 404 and 503 are answers; nothing is left to fail over to.
        assert!(!u.skip_answer(http::StatusCode::NOT_FOUND));
        assert!(!u.skip_answer(http::StatusCode::SERVICE_UNAVAILABLE));
        assert!(!u.skip_failure());
    }

    #[test]
    fn the_origin_is_always_last_and_never_twice() {
        let u = Upstreams::new(Vec::new(), a(9));
        assert_eq!(u.current(), Upstream::Origin(a(9)));
        let u = Upstreams::new(vec![Upstream::Replica(a(1)), Upstream::Origin(a(9))], a(9));
        assert_eq!(u.list.len(), 2);
    }
}
