//! The proxy's side of the slice path (objects above `cache.slice_size`, see
//! [`crate::slice`]): which requests take it, where their misses read from, and the
//! downstream headers of what it serves.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result as PResult;

use super::{downstream_headers, send_error, Ctx, Edge};
use crate::access::Access;
use crate::upstream::Upstreams;
use crate::Error;

impl Edge {
    /// Whether this object request takes the slice path: the object is known to be larger
    /// than a slice, or it is unknown and no complete copy is cached (the slice path then
    /// learns its size with one ranged fetch, and caches a small object whole).
    pub(super) async fn wants_slices(&self, ctx: &Ctx) -> bool {
        if self.cfg.generic.is_some()
            || ctx.route.as_ref().is_none_or(|r| r.path.object().is_none())
        {
            return false;
        }
        if let Some(info) = self.slicer.info(&ctx.cache_primary, &self.purge_log) {
            return self.slicer.is_large(&info);
        }
        // In-memory state only (the 90/10 profile showed a disk lookup on the blocking pool
        // for every miss of an unknown object here).
        !self
            .storage
            .contains(&crate::cache_key::key(&ctx.cache_primary))
    }

    /// Where a miss of this request may read from: with a ring, the object's replicas and
    /// then the origin; otherwise the origin.
    pub(super) fn upstreams_of(&self, ctx: &Ctx) -> Upstreams {
        let object = ctx.route.as_ref().and_then(|r| {
            let p = &r.path;
            Some((p.account(), p.container()?, p.object()?))
        });
        let list = match (&self.ring, object) {
            (Some(ring), Some((a, c, o))) if self.cfg.generic.is_none() => {
                ring.upstreams(a, c, o, self.cfg.origin)
            }
            _ => Vec::new(),
        };
        Upstreams::new(list, self.cfg.origin)
    }

    /// Serves an object from slices (see [`crate::slice`]).
    pub(super) async fn serve_sliced(&self, session: &mut Session, ctx: &mut Ctx) -> PResult<bool> {
        let upstreams = self.upstreams_of(ctx);
        let env = crate::slice::SliceEnv {
            upstreams: &upstreams,
            cfg: &self.cfg,
            storage: self.storage,
            lock: self.lock,
            purge_log: &self.purge_log,
            policy: &self.cfg.policy,
        };
        let req = crate::slice::SliceRequest {
            primary: &ctx.cache_primary,
            uri: &ctx.upstream_uri,
        };
        let private = ctx.access.as_ref().is_some_and(Access::is_private);
        let cors = ctx.cors.as_ref();
        let cookie = std::sync::Mutex::new(ctx.set_cookie.take());
        let hsts = ctx.hsts;
        let finish = |resp: &mut ResponseHeader, served: crate::slice::Served| {
            let status = match served {
                crate::slice::Served::Hit => "HIT",
                _ => "MISS",
            };
            let c = cookie
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            downstream_headers(resp, status, private, c, cors)?;
            super::https::add_hsts(resp, hsts)
        };
        let served = match env.serve(&self.slicer, session, &req, &finish).await {
            Ok(s) => s,
            Err(e) if e.esource() == &pingora::ErrorSource::Downstream => {
                // The client went away (players cancel a request when they seek elsewhere).
                tracing::debug!(error = %e, "slice response: client gone");
                session.set_keepalive(None);
                ctx.outcome = "SLICE-GONE";
                return Ok(true);
            }
            Err(e)
                if e.esource() == &pingora::ErrorSource::Upstream
                    && session.response_written().is_none() =>
            {
                ctx.outcome = "SLICE-ERROR";
                return send_error(session, &Error::Origin(e.to_string())).await;
            }
            Err(e) => return Err(e),
        };
        ctx.outcome = match served {
            crate::slice::Served::Hit => "SLICE-HIT",
            crate::slice::Served::Miss => "SLICE-MISS",
            crate::slice::Served::Passthrough => "SLICE-PASS",
            crate::slice::Served::Defer => {
                // Nothing was sent; the cookie to re-issue goes out with pingora's response.
                ctx.set_cookie = cookie
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                return Ok(false);
            }
        };
        Ok(true)
    }
}
