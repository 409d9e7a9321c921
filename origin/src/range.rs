//! `Range` headers (RFC 9110 as Swift applies it) and `multipart/byteranges` framing.

/// Most ranges honoured in one request; a header with more is ignored (full 200), as Swift
/// does.
pub const MAX_RANGES: usize = 50;

/// A byte range `[start, end)` within an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// `Content-Range` value.
    pub fn content_range(&self, len: u64) -> String {
        format!("bytes {}-{}/{len}", self.start, self.end - 1)
    }
    /// Number of bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    /// True for an empty range (never produced by [`parse`]).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// What a `Range` header means for an object of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No header, or one to ignore (bad syntax, other unit, too many ranges): send it all.
    Full,
    /// Satisfiable ranges, in request order.
    Partial(Vec<ByteRange>),
    /// Syntactically valid but no range overlaps the object: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header for an object of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> RangeOutcome {
    let Some(h) = header else {
        return RangeOutcome::Full;
    };
    let Some(specs) = h.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    let mut out = Vec::new();
    let mut count = 0;
    for spec in specs.split(',') {
        let spec = spec.trim();
        count += 1;
        if count > MAX_RANGES {
            return RangeOutcome::Full;
        }
        let Some((a, b)) = spec.split_once('-') else {
            return RangeOutcome::Full;
        };
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return RangeOutcome::Full,
            (true, false) => {
                // Suffix: the last n bytes.
                let Some(n) = num(b) else {
                    return RangeOutcome::Full;
                };
                if n > 0 && len > 0 {
                    out.push(ByteRange {
                        start: len.saturating_sub(n),
                        end: len,
                    });
                }
            }
            (false, _) => {
                let Some(start) = num(a) else {
                    return RangeOutcome::Full;
                };
                let last = if b.is_empty() {
                    u64::MAX
                } else {
                    match num(b) {
                        Some(v) => v,
                        None => return RangeOutcome::Full,
                    }
                };
                if last < start {
                    return RangeOutcome::Full;
                }
                if start < len {
                    out.push(ByteRange {
                        start,
                        end: last.saturating_add(1).min(len),
                    });
                }
            }
        }
    }
    if out.is_empty() {
        RangeOutcome::Unsatisfiable
    } else {
        RangeOutcome::Partial(out)
    }
}

/// `If-Range`: ranges apply only if the validator still matches: a strong ETag equal to
/// `etag`, or exactly the `Last-Modified` second `modified` (Unix seconds). No header: they do.
pub fn if_range_applies(if_range: Option<&str>, etag: &str, modified: u64) -> bool {
    let Some(v) = if_range else {
        return true;
    };
    if let Ok(t) = httpdate::parse_http_date(v) {
        return t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .ok()
            == Some(modified);
    }
    !v.starts_with("W/") && v.trim().trim_matches('"') == etag
}

/// A random multipart boundary.
pub fn boundary() -> String {
    let mut r = [0u8; 12];
    let _ = getrandom::fill(&mut r);
    hex::encode(r)
}

/// The part header that precedes range `i` (the first has no leading CRLF).
pub fn part_header(
    boundary: &str,
    first: bool,
    content_type: &str,
    r: &ByteRange,
    len: u64,
) -> String {
    format!(
        "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
        if first { "" } else { "\r\n" },
        r.content_range(len)
    )
}

/// The closing delimiter.
pub fn closing(boundary: &str) -> String {
    format!("\r\n--{boundary}--")
}

/// Total body length of a multipart/byteranges response.
pub fn multipart_len(boundary: &str, content_type: &str, ranges: &[ByteRange], len: u64) -> u64 {
    let mut total = closing(boundary).len() as u64;
    for (i, r) in ranges.iter().enumerate() {
        total += part_header(boundary, i == 0, content_type, r, len).len() as u64 + r.len();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(h: &str, len: u64) -> RangeOutcome {
        parse(Some(h), len)
    }

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn single_open_suffix() {
        assert_eq!(p("bytes=0-9", 100), RangeOutcome::Partial(vec![r(0, 10)]));
        assert_eq!(p("bytes=90-", 100), RangeOutcome::Partial(vec![r(90, 100)]));
        assert_eq!(p("bytes=-10", 100), RangeOutcome::Partial(vec![r(90, 100)]));
        assert_eq!(
            p("bytes=-1000", 100),
            RangeOutcome::Partial(vec![r(0, 100)])
        );
        assert_eq!(
            p("bytes=50-1000", 100),
            RangeOutcome::Partial(vec![r(50, 100)])
        );
        assert_eq!(
            p("bytes=0-0,-1", 100),
            RangeOutcome::Partial(vec![r(0, 1), r(99, 100)])
        );
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(p("bytes=100-", 100), RangeOutcome::Unsatisfiable);
        assert_eq!(p("bytes=-0", 100), RangeOutcome::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        for bad in [
            "bytes=",
            "bytes=a-b",
            "bytes=5-1",
            "items=0-1",
            "bytes=--1",
            "bytes=1",
        ] {
            assert_eq!(p(bad, 100), RangeOutcome::Full, "{bad}");
        }
        let many = format!("bytes={}", vec!["0-0"; 51].join(","));
        assert_eq!(p(&many, 100), RangeOutcome::Full);
        assert_eq!(parse(None, 5), RangeOutcome::Full);
    }

    #[test]
    fn multipart_length_matches_framing() {
        let rs = [r(0, 2), r(5, 9)];
        let mut body = String::new();
        for (i, x) in rs.iter().enumerate() {
            body.push_str(&part_header("b", i == 0, "text/plain", x, 10));
            body.push_str(&"x".repeat(x.len() as usize));
        }
        body.push_str(&closing("b"));
        assert_eq!(multipart_len("b", "text/plain", &rs, 10), body.len() as u64);
        assert!(body.starts_with(
            "--b\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\nxx\r\n--b\r\n"
        ));
    }
}
