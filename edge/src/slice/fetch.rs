//! Slice fetching: upstream range requests (replicas in turn), slice fills written to the
//! cache while requests read them, and answers passed through from upstream.

use super::*;

impl SliceEnv<'_> {
    pub(super) fn peer_at(&self, addr: SocketAddr) -> HttpPeer {
        crate::upstream::peer(self.cfg, addr)
    }

    /// Sends `GET uri` with `Range: bytes=first-last` (and `If-Match`) to the request's
    /// upstreams in order (replicas from the ring, then the origin; see [`crate::ring`]): a
    /// replica that cannot be reached or answers 404 or 5xx is skipped. Returns the session
    /// with the response header read and the address that answered. A pooled connection that
    /// fails is retried once on a fresh one.
    pub(super) async fn upstream_range(
        &self,
        slicer: &Slicer,
        uri: &str,
        first: u64,
        last: u64,
        if_match: Option<&str>,
    ) -> PResult<(HttpSession, ResponseHeader, SocketAddr)> {
        let mut ups = self.upstreams.clone();
        loop {
            let up = ups.current();
            match self
                .upstream_try(slicer, up, uri, first, last, if_match)
                .await
            {
                Ok((_, resp)) if ups.skip_answer(resp.status) => {
                    tracing::debug!(replica = %up.addr(), status = %resp.status, "slice: next replica");
                }
                Ok((s, resp)) => return Ok((s, resp, up.addr())),
                Err(e) if ups.skip_failure() => {
                    tracing::debug!(upstream = %up.addr(), error = %e, "slice: upstream failed; next");
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) async fn upstream_try(
        &self,
        slicer: &Slicer,
        up: Upstream,
        uri: &str,
        first: u64,
        last: u64,
        if_match: Option<&str>,
    ) -> PResult<(HttpSession, ResponseHeader)> {
        let peer = self.peer_at(up.addr());
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut s, reused) = slicer
                .connector
                .get_http_session(&peer)
                .await
                .map_err(PError::into_up)?;
            let mut req = RequestHeader::build(http::Method::GET, uri.as_bytes(), Some(6))?;
            crate::upstream::address(&mut req, up, self.cfg)?;
            req.insert_header(http::header::RANGE, format!("bytes={first}-{last}"))?;
            if let Some(e) = if_match {
                req.insert_header(http::header::IF_MATCH, e)?;
            }
            let sent = async {
                s.write_request_header(Box::new(req)).await?;
                s.finish_request_body().await?;
                s.read_response_header().await
            }
            .await;
            match sent {
                Ok(()) => {
                    slicer.stats.fetches.fetch_add(1, Ordering::Relaxed);
                    let resp = s
                        .response_header()
                        .cloned()
                        .ok_or_else(|| upstream_error("no response header"))?;
                    return Ok((s, resp));
                }
                Err(e) if reused && tries < 2 => {
                    tracing::debug!(error = %e, "slice: pooled upstream connection failed; retrying");
                }
                Err(e) => return Err(e.into_up()),
            }
        }
    }

    /// Caches the body of `session` (one whole slice) as `key` in a background task; returns
    /// the fill's streaming tag so the caller can read it.
    pub(super) async fn spawn_fill(
        &self,
        slicer: &Slicer,
        key: &CacheKey,
        meta: CacheMeta,
        mut session: HttpSession,
        from: SocketAddr,
        expected: u64,
    ) -> PResult<[u8; 8]> {
        let mut miss: MissHandler = self.storage.get_miss_handler(key, &meta, &span()).await?;
        let mut tag = [0u8; 8];
        if let Some(t) = miss.streaming_write_tag() {
            let n = t.len().min(8);
            tag[..n].copy_from_slice(&t[..n]);
        }
        let connector = Arc::clone(&slicer.connector);
        let stats = Arc::clone(&slicer.stats);
        let peer = self.peer_at(from);
        tokio::spawn(async move {
            let mut got = 0u64;
            let filled: PResult<()> = async {
                while let Some(chunk) = session.read_response_body().await? {
                    got += chunk.len() as u64;
                    stats
                        .upstream_bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if got > expected {
                        return Err(upstream_error("slice body longer than its range"));
                    }
                    miss.write_body(chunk, got == expected).await?;
                }
                if got != expected {
                    return Err(upstream_error(format!(
                        "slice body ended at {got} of {expected} bytes"
                    )));
                }
                miss.finish().await?;
                Ok(())
            }
            .await;
            match filled {
                Ok(()) => {
                    connector
                        .release_http_session(session, &peer, crate::upstream::idle())
                        .await;
                }
                // Dropping the miss handler aborts the fill: its readers get an error.
                Err(e) => tracing::warn!(error = %e, "slice fill failed"),
            }
        });
        Ok(tag)
    }

    /// The meta of a slice entry of `len` bytes.
    pub(super) fn slice_meta(info: &ObjectInfo, len: u64) -> PResult<CacheMeta> {
        let mut header = info.header.clone();
        header.insert_header(http::header::CONTENT_LENGTH, len)?;
        let now = SystemTime::now();
        Ok(CacheMeta::new(now + SLICE_FRESH, now, 0, 0, header))
    }

    /// Reads the fill tagged `tag` of `key`.
    pub(super) async fn follow_fill(
        &self,
        key: &CacheKey,
        tag: &[u8; 8],
    ) -> PResult<Option<Source>> {
        Ok(self
            .storage
            .lookup_streaming_write(key, Some(tag), &span())
            .await?
            .map(|(_, hit)| Source::Hit(hit)))
    }

    /// Checks an upstream slice answer against what was asked; returns the body length.
    pub(super) fn check_slice(
        resp: &ResponseHeader,
        info: &ObjectInfo,
        first: u64,
        last: u64,
    ) -> Result<u64, SliceError> {
        match resp.status.as_u16() {
            206 => {}
            412 | 416 => return Err(SliceError::Changed),
            200 if first == 0 && content_length(resp) == Some(info.len) => {}
            s => return Err(upstream_error(format!("origin answered {s} for a slice")).into()),
        }
        if etag_of(resp) != info.etag {
            return Err(SliceError::Changed);
        }
        if resp.status == http::StatusCode::OK {
            return Ok(info.len);
        }
        match content_range(resp) {
            Some((Some((a, b)), len)) if a == first && b == last && len == info.len => {
                Ok(last - first + 1)
            }
            Some((_, len)) if len != info.len => Err(SliceError::Changed),
            _ => Err(upstream_error("origin answered a different range").into()),
        }
    }

    /// The source of slice `index` of a known object: the cache (hit or fill in progress),
    /// after fetching it if nobody has.
    pub(super) async fn open_slice(
        &self,
        slicer: &Slicer,
        req: &SliceRequest<'_>,
        info: &ObjectInfo,
        index: u64,
    ) -> Result<Source, SliceError> {
        let first = index * slicer.slice_size;
        let last = (first + slicer.slice_size).min(info.len) - 1;
        if !info.cacheable {
            return self.direct(slicer, req, info, first, last).await;
        }
        let key = crate::cache_key::slice(req.primary, index, info.etag.as_deref());
        for _ in 0..SLICE_ATTEMPTS {
            if let Some((_, hit)) = self.storage.lookup(&key, &span()).await? {
                return Ok(Source::Hit(hit));
            }
            match self.lock.lock(&key, false) {
                Locked::Write(permit) => {
                    let started = async {
                        let (session, resp, from) = self
                            .upstream_range(slicer, req.uri, first, last, info.etag.as_deref())
                            .await?;
                        let expected = Self::check_slice(&resp, info, first, last)?;
                        let meta = Self::slice_meta(info, expected)?;
                        Ok::<_, SliceError>(
                            self.spawn_fill(slicer, &key, meta, session, from, expected)
                                .await?,
                        )
                    }
                    .await;
                    match started {
                        Ok(tag) => {
                            self.lock.release(&key, permit, LockStatus::Done);
                            if let Some(src) = self.follow_fill(&key, &tag).await? {
                                return Ok(src);
                            }
                        }
                        Err(e) => {
                            self.lock.release(&key, permit, LockStatus::TransientError);
                            return Err(e);
                        }
                    }
                }
                Locked::Read(r) => r.wait().await,
            }
        }
        self.direct(slicer, req, info, first, last).await
    }

    /// Slice bytes straight from upstream, not cached.
    pub(super) async fn direct(
        &self,
        slicer: &Slicer,
        req: &SliceRequest<'_>,
        info: &ObjectInfo,
        first: u64,
        last: u64,
    ) -> Result<Source, SliceError> {
        let (session, resp, _) = self
            .upstream_range(slicer, req.uri, first, last, info.etag.as_deref())
            .await?;
        Self::check_slice(&resp, info, first, last)?;
        Ok(Source::Upstream {
            session: Box::new(session),
            start: 0,
        })
    }
}

/// Sends the origin's own (non-success) answer to the client.
pub(super) async fn passthrough(
    session: &mut Session,
    up: &mut HttpSession,
    mut resp: ResponseHeader,
    finish: &Finish<'_>,
) -> PResult<()> {
    // The proxy's downstream headers (cache status, privacy, CORS) on errors too.
    finish(&mut resp, Served::Passthrough)?;
    for h in [
        "x-trans-id",
        "x-openstack-request-id",
        "x-timestamp",
        "connection",
    ] {
        resp.remove_header(h);
    }
    let head = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head)
        .await
        .map_err(PError::into_down)?;
    // The upstream body is read to its end even for HEAD (these are short answers: errors,
    // redirects), so the caller can put the connection back in the pool.
    while let Some(chunk) = up.read_response_body().await? {
        if !head {
            session
                .write_response_body(Some(chunk), false)
                .await
                .map_err(PError::into_down)?;
        }
    }
    if head {
        return Ok(());
    }
    session
        .write_response_body(None, true)
        .await
        .map_err(PError::into_down)
}

impl SliceEnv<'_> {
    /// Answers with the upstream response as it is (see [`passthrough`]), then returns the
    /// upstream connection to the pool: the 90/10 mix profile showed every miss of an unknown
    /// object (a 404) paying a new upstream connection.
    pub(super) async fn pass_and_release(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        mut up: HttpSession,
        resp: ResponseHeader,
        from: SocketAddr,
        finish: &Finish<'_>,
    ) -> PResult<()> {
        // On success the body was read to its end: the connection is clean.
        passthrough(session, &mut up, resp, finish).await?;
        slicer
            .connector
            .release_http_session(up, &self.peer_at(from), crate::upstream::idle())
            .await;
        Ok(())
    }
}
