//! Serving a request from slices: the head (conditionals, ranges), then each range slice by
//! slice from the cache or a fill.

use super::*;

/// Writes the part of `chunk` (which starts at slice offset `pos`) inside `[from, to)`;
/// returns the offset after the chunk.
async fn send_part(
    session: &mut Session,
    chunk: Bytes,
    pos: u64,
    from: u64,
    to: u64,
) -> PResult<u64> {
    let end = pos + chunk.len() as u64;
    if end > from && pos < to {
        let a = usize::try_from(from.saturating_sub(pos)).unwrap_or(0);
        let b = usize::try_from(to.min(end) - pos).unwrap_or(chunk.len());
        session
            .write_response_body(Some(chunk.slice(a..b)), false)
            .await
            .map_err(PError::into_down)?;
    }
    Ok(end)
}

/// Copies bytes `[from, to)` of a slice from `src` to the client.
async fn copy_slice(session: &mut Session, src: Source, from: u64, to: u64) -> PResult<()> {
    let mut pos;
    match src {
        Source::Hit(mut hit) => {
            pos = 0;
            if hit.can_seek() {
                let a = usize::try_from(from).unwrap_or(usize::MAX);
                let b = usize::try_from(to).unwrap_or(usize::MAX);
                hit.seek(a, Some(b))?;
                pos = from;
            }
            while pos < to {
                let Some(chunk) = hit.read_body().await? else {
                    break;
                };
                pos = send_part(session, chunk, pos, from, to).await?;
            }
        }
        Source::Upstream {
            session: mut up,
            start,
        } => {
            pos = start;
            while pos < to {
                let Some(chunk) = up.read_response_body().await? else {
                    break;
                };
                pos = send_part(session, chunk, pos, from, to).await?;
            }
        }
    }
    if pos < to {
        return Err(upstream_error(format!(
            "slice ended at byte {pos}, {to} expected"
        )));
    }
    Ok(())
}

/// The byte ranges a range decision asks for (empty for 416).
fn parts_of(range: &RangeType, len: u64) -> Vec<Range<u64>> {
    match range {
        RangeType::None => std::iter::once(0..len).collect(),
        RangeType::Single(r) => std::iter::once(r.start as u64..r.end as u64).collect(),
        RangeType::Multi(m) => m
            .ranges
            .iter()
            .map(|r| r.start as u64..r.end as u64)
            .collect(),
        RangeType::Invalid => Vec::new(),
    }
}

impl SliceEnv<'_> {
    /// Serves a GET/HEAD of an object from slices (see the module docs). `finish` adds the
    /// proxy's downstream headers (cache status, privacy, cookies) to the response head.
    pub(crate) async fn serve(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        req: &SliceRequest<'_>,
        finish: &Finish<'_>,
    ) -> PResult<Served> {
        let size = slicer.slice_size;
        let mut restarted = false;
        loop {
            let (info, mut fetched) = match slicer.info(req.primary, self.purge_log) {
                Some(i) => (i, None),
                None => match self.learn(slicer, session, req, finish).await? {
                    Learned::Info(i, f) => (i, f),
                    Learned::Passthrough => return Ok(Served::Passthrough),
                },
            };
            if fetched.is_none() && !slicer.is_large(&info) {
                return Ok(Served::Defer);
            }
            let head = session.req_header().method == http::Method::HEAD;
            let mut resp = info.header.clone();
            if if_match_fails(session.req_header(), info.etag.as_deref()) {
                let mut r = ResponseHeader::build(412, Some(4))?;
                r.insert_header(http::header::CONTENT_LENGTH, 0)?;
                if let Some(e) = &info.etag {
                    r.insert_header(http::header::ETAG, e.as_str())?;
                }
                finish(&mut r, Served::Hit)?;
                session
                    .write_response_header(Box::new(r), true)
                    .await
                    .map_err(PError::into_down)?;
                return Ok(Served::Hit);
            }
            if not_modified_filter(session.req_header(), &resp) {
                to_304(&mut resp);
                finish(&mut resp, Served::Hit)?;
                session
                    .write_response_header(Box::new(resp), true)
                    .await
                    .map_err(PError::into_down)?;
                return Ok(Served::Hit);
            }
            let range =
                range_header_filter(session.req_header(), &mut resp, Some(slicer.max_ranges));
            let parts = parts_of(&range, info.len);
            // The first slice is opened before the head goes out: if the object changed, the
            // response can still start over with the new version.
            let mut first: Option<(u64, Source)> = None;
            if let Some(p) = parts.first().filter(|p| !head && p.start < p.end) {
                let index = p.start / size;
                first = match fetched.take() {
                    Some((i, src)) if i == index => Some((i, src)),
                    _ => match self.open_slice(slicer, req, &info, index).await {
                        Ok(src) => Some((index, src)),
                        Err(SliceError::Changed) if !restarted => {
                            slicer.stats.changed.fetch_add(1, Ordering::Relaxed);
                            slicer.forget(req.primary);
                            restarted = true;
                            continue;
                        }
                        Err(e) => return Err(e.into_pingora()),
                    },
                };
            }
            let served = match &first {
                Some((_, src)) if !src.is_cached() => Served::Miss,
                _ => Served::Hit,
            };
            finish(&mut resp, served)?;
            let bodiless = head || parts.is_empty();
            session
                .write_response_header(Box::new(resp), bodiless)
                .await
                .map_err(PError::into_down)?;
            if bodiless {
                return Ok(served);
            }
            let multi = match &range {
                RangeType::Multi(m) => Some(m),
                _ => None,
            };
            for part in &parts {
                if let Some(m) = multi {
                    let ct = m
                        .content_type
                        .as_deref()
                        .map(|ct| format!("Content-Type: {ct}\r\n"))
                        .unwrap_or_default();
                    let h = format!(
                        "\r\n--{}\r\n{ct}Content-Range: bytes {}-{}/{}\r\n\r\n",
                        m.boundary,
                        part.start,
                        part.end - 1,
                        info.len
                    );
                    session
                        .write_response_body(Some(Bytes::from(h)), false)
                        .await
                        .map_err(PError::into_down)?;
                }
                let mut pos = part.start;
                while pos < part.end {
                    let index = pos / size;
                    let src = match first.take() {
                        Some((i, src)) if i == index => src,
                        _ => self
                            .open_slice(slicer, req, &info, index)
                            .await
                            .map_err(|e| {
                                if matches!(e, SliceError::Changed) {
                                    slicer.stats.changed.fetch_add(1, Ordering::Relaxed);
                                    slicer.forget(req.primary);
                                }
                                e.into_pingora()
                            })?,
                    };
                    let base = index * size;
                    let end = part.end.min(base + size);
                    copy_slice(session, src, pos - base, end - base).await?;
                    pos = end;
                }
            }
            if let Some(m) = multi {
                let tail = format!("\r\n--{}--\r\n", m.boundary);
                session
                    .write_response_body(Some(Bytes::from(tail)), false)
                    .await
                    .map_err(PError::into_down)?;
            }
            session
                .write_response_body(None, true)
                .await
                .map_err(PError::into_down)?;
            return Ok(served);
        }
    }
}
