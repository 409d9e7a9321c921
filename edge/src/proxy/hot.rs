//! The hit fast path: a fresh memory-tier entry answered from `request_filter`, after routing
//! and the access decision (which stay exactly as strict), without pingora's cache phases.
//!
//! It serves only what the slow path would serve as a plain `HIT` from the same entry: a
//! `GET`/`HEAD` without cache directives, an entry that is complete (no fill replacing it),
//! fresh, and does not vary; full bodies, single ranges (`If-Range` included), and `304`s for
//! `If-None-Match`/`If-Modified-Since`. Anything else (stale entries, multi-ranges, disk hits,
//! misses) falls through to the slow path untouched. Purges, overwrites, revocations and ACL
//! changes act on the same memory tier and on the access decision taken before this, so they
//! apply to the very next request.

use std::time::SystemTime;

use pingora::http::ResponseHeader;
use pingora::protocols::http::conditional_filter::{not_modified_filter, to_304};
use pingora::proxy::{RangeType, Session};
use pingora::Result as PResult;

use super::{per_request_headers, strip_internal, Ctx, Edge, CACHE_STATUS_HEADER};
use crate::access::Access;

/// What every fast-path hit of a stored version carries, added once when it is decoded: the
/// cache status, no origin-internal headers, and `Accept-Ranges` where pingora's range filter
/// would add it (a `200` with a length), so requests without `Range` skip that filter.
pub(super) fn prepare_hit(h: &mut ResponseHeader) {
    let _ = h.insert_header(CACHE_STATUS_HEADER, "HIT");
    strip_internal(h);
    let length = h
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if h.status == http::StatusCode::OK && length.is_some() {
        let _ = h.insert_header(http::header::ACCEPT_RANGES, "bytes");
    }
}

impl Edge {
    /// Answers the request from a fresh memory-tier entry if it can; `Ok(false)` leaves it to
    /// the slow path with nothing written.
    pub(super) async fn serve_hot(&self, session: &mut Session, ctx: &mut Ctx) -> PResult<bool> {
        if !self.cfg.hot_path || !ctx.cacheable || !ctx.directives.is_plain() {
            return Ok(false);
        }
        let head_only = match session.req_header().method {
            http::Method::GET => false,
            http::Method::HEAD => true,
            _ => return Ok(false),
        };
        let key = crate::cache_key::key(&ctx.cache_primary);
        let Some(hot) = self.storage.hot(&key, prepare_hit) else {
            return Ok(false);
        };
        let now = SystemTime::now();
        if !hot.is_fresh(now) {
            return Ok(false);
        }
        let mut resp = hot.header.clone();
        let age = now.duration_since(hot.epoch).unwrap_or_default().as_secs();
        resp.insert_header(http::header::AGE, age)?;
        let req = session.req_header();
        let mut body = Some(hot.body.clone());
        let conditional = req.headers.contains_key(http::header::IF_NONE_MATCH)
            || req.headers.contains_key(http::header::IF_MODIFIED_SINCE);
        if conditional && not_modified_filter(req, &resp) {
            to_304(&mut resp);
            body = None;
        } else if req.headers.contains_key(http::header::RANGE) {
            match pingora::proxy::range_header_filter(req, &mut resp, Some(self.slicer.max_ranges))
            {
                RangeType::None => {}
                RangeType::Single(r) => body = body.map(|b| b.slice(r.start..r.end)),
                // Multipart bodies and 416s are the slow path's.
                _ => return Ok(false),
            }
        }
        let private = ctx.access.as_ref().is_some_and(Access::is_private);
        per_request_headers(&mut resp, private, ctx.set_cookie.take(), ctx.cors.as_ref())?;
        super::https::add_hsts(&mut resp, ctx.hsts)?;
        ctx.outcome = "HIT";
        self.metrics.hot_hit();
        let body = body.filter(|_| !head_only);
        session
            .write_response_header(Box::new(resp), body.is_none())
            .await?;
        if let Some(b) = body {
            session.write_response_body(Some(b), true).await?;
        }
        Ok(true)
    }
}
