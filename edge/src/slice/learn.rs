//! Learning an unknown object: its size, validators and whole-object header, from one
//! ranged fetch (or a one-byte probe), under a cache lock so concurrent viewers wait for one
//! learner.

use super::*;

/// What learning an unknown object produced.
pub(super) enum Learned {
    /// The info, and the source of slice `index` if it was fetched on the way.
    Info(Arc<ObjectInfo>, Option<(u64, Source)>),
    /// The origin did not answer with the object; its answer went to the client.
    Passthrough,
}

impl SliceEnv<'_> {
    /// Learns an unknown object by fetching the slice that holds the first requested byte.
    pub(super) async fn learn(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        req: &SliceRequest<'_>,
        finish: &Finish<'_>,
    ) -> PResult<Learned> {
        let info_key = crate::cache_key::info(req.primary);
        let permit = match self.lock.lock(&info_key, false) {
            Locked::Write(p) => Some(p),
            Locked::Read(r) => {
                r.wait().await;
                if let Some(info) = slicer.info(req.primary, self.purge_log) {
                    return Ok(Learned::Info(info, None));
                }
                None
            }
        };
        let learned = self.learn_locked(slicer, session, req, finish).await;
        if let Some(p) = permit {
            let status = if learned.is_ok() {
                LockStatus::Done
            } else {
                LockStatus::TransientError
            };
            self.lock.release(&info_key, p, status);
        }
        learned
    }

    /// Learns an object's size and validators from a one-byte range, caching nothing.
    pub(super) async fn probe(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        req: &SliceRequest<'_>,
        finish: &Finish<'_>,
    ) -> PResult<Learned> {
        let epoch = self.purge_log.current();
        let (mut up, resp, from) = self.upstream_range(slicer, req.uri, 0, 0, None).await?;
        let len = match resp.status.as_u16() {
            206 => match content_range(&resp) {
                Some((Some((0, 0)), len)) => len,
                _ => return Err(upstream_error("origin answered a different range")),
            },
            // An empty object (nothing to range over) or an origin ignoring ranges.
            416 => content_range(&resp).map_or(0, |(_, len)| len),
            200 => content_length(&resp).unwrap_or(0),
            _ => {
                self.pass_and_release(slicer, session, up, resp, from, finish)
                    .await?;
                return Ok(Learned::Passthrough);
            }
        };
        let info = Arc::new(build_info(resp, len, epoch, self.policy));
        slicer
            .infos
            .insert(req.primary.to_owned(), Arc::clone(&info));
        // The body is at most one byte: finish it so the connection can be reused.
        let drained = async {
            while up.read_response_body().await?.is_some() {}
            Ok::<_, Box<PError>>(())
        }
        .await;
        if drained.is_ok() {
            slicer
                .connector
                .release_http_session(up, &self.peer_at(from), Some(Duration::from_secs(60)))
                .await;
        }
        Ok(Learned::Info(info, None))
    }

    pub(super) async fn learn_locked(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        req: &SliceRequest<'_>,
        finish: &Finish<'_>,
    ) -> PResult<Learned> {
        let size = slicer.slice_size;
        let mut index = match learn_plan(session.req_header()) {
            Learn::SliceAt(p) => p / size,
            Learn::Probe => return self.probe(slicer, session, req, finish).await,
        };
        loop {
            let epoch = self.purge_log.current();
            let first = index * size;
            let (up, resp, from) = self
                .upstream_range(slicer, req.uri, first, first + size - 1, None)
                .await?;
            let (len, body_len) = match resp.status.as_u16() {
                206 => match content_range(&resp) {
                    Some((Some((a, b)), len)) if a == first && b >= a && b < len => {
                        (len, b - a + 1)
                    }
                    _ => return Err(upstream_error("origin answered a different range")),
                },
                200 => match content_length(&resp) {
                    // The origin sent everything: that is slice 0 when it fits one.
                    Some(len) if len <= size => {
                        index = 0;
                        (len, len)
                    }
                    _ => return Err(upstream_error("origin ignored the slice range")),
                },
                // Asked past the end: the size is in Content-Range; start from slice 0.
                416 if index > 0 => {
                    index = 0;
                    continue;
                }
                _ => {
                    self.pass_and_release(slicer, session, up, resp, from, finish)
                        .await?;
                    return Ok(Learned::Passthrough);
                }
            };
            let info = Arc::new(build_info(resp.clone(), len, epoch, self.policy));
            // The info is published only once the fill it points to is registered: a request
            // that sees "small" goes to pingora's path and must find the entry there.
            let publish = |info: &Arc<ObjectInfo>| {
                slicer
                    .infos
                    .insert(req.primary.to_owned(), Arc::clone(info));
            };
            if !info.cacheable {
                publish(&info);
                return Ok(Learned::Info(
                    info,
                    Some((
                        index,
                        Source::Upstream {
                            session: Box::new(up),
                            start: 0,
                        },
                    )),
                ));
            }
            if info.len <= size {
                // A small object: this answer is all of it. Cache it as pingora's own entry
                // of the object, so the next requests are ordinary hits.
                let whole = crate::cache_key::key(req.primary);
                let cacheable = self
                    .policy
                    .admit(&info.header, &Exchange::at(SystemTime::now()));
                let meta = match cacheable {
                    RespCacheable::Cacheable(m)
                        if !self.purge_log.purged_since(req.primary, epoch) =>
                    {
                        m
                    }
                    _ => {
                        publish(&info);
                        let src = Source::Upstream {
                            session: Box::new(up),
                            start: 0,
                        };
                        return Ok(Learned::Info(info, Some((0, src))));
                    }
                };
                let tag = self
                    .spawn_fill(slicer, &whole, meta, up, from, body_len)
                    .await?;
                publish(&info);
                let src = self.follow_fill(&whole, &tag).await?;
                return Ok(Learned::Info(info, src.map(|s| (0, s))));
            }
            let key = crate::cache_key::slice(req.primary, index, info.etag.as_deref());
            let meta = Self::slice_meta(&info, body_len)?;
            let tag = self
                .spawn_fill(slicer, &key, meta, up, from, body_len)
                .await?;
            publish(&info);
            let src = self.follow_fill(&key, &tag).await?;
            return Ok(Learned::Info(info, src.map(|s| (index, s))));
        }
    }
}
