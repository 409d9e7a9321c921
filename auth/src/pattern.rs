//! Segment-aware path patterns, the "scopes" of Outpost tokens and sessions.
//!
//! Rules, matched against a decoded path:
//! - A pattern without wildcards covers the path itself and everything below it, at segment
//!   boundaries only: `/videos` covers `/videos` and `/videos/a.mp4`, never `/videos-private`.
//! - `*` inside a segment matches any run of characters except `/` (`/img/*.jpg`).
//! - A segment that is exactly `**` matches zero or more whole segments (`/videos/**/master.m3u8`).
//! - A trailing `/` means "everything below": `/videos/` is `/videos/**`.

use std::fmt;

use crate::Error;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// A validated path pattern.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PathPattern(String);

impl PathPattern {
    /// Validates a pattern.
    ///
    /// # Errors
    /// [`Error::BadPattern`] when it is not absolute, too long, holds control bytes, or has a
    /// `.`/`..` segment or `**` mixed with other characters in one segment.
    pub fn new(pattern: &str) -> Result<Self, Error> {
        validate(pattern)?;
        Ok(PathPattern(pattern.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `path` (decoded, absolute) is covered by this pattern.
    pub fn matches(&self, path: &str) -> bool {
        matches(&self.0, path)
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPattern({:?})", self.0)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn validate(pattern: &str) -> Result<(), Error> {
    if !pattern.starts_with('/') {
        return Err(Error::BadPattern {
            reason: "must start with '/'",
        });
    }
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(Error::BadPattern { reason: "too long" });
    }
    if pattern.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Error::BadPattern {
            reason: "contains a control byte",
        });
    }
    for seg in pattern[1..].split('/') {
        if seg == "." || seg == ".." {
            return Err(Error::BadPattern {
                reason: "contains a '.' or '..' segment",
            });
        }
        if seg.contains("**") && seg != "**" {
            return Err(Error::BadPattern {
                reason: "'**' must be a whole segment",
            });
        }
    }
    Ok(())
}

/// Matches a pattern against a decoded path without allocating. Invalid patterns (see
/// [`PathPattern::new`]) match nothing.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let (Some(pat), Some(path)) = (pattern.strip_prefix('/'), path.strip_prefix('/')) else {
        return false;
    };
    if pattern.len() > MAX_PATTERN_BYTES {
        return false;
    }
    // "/" alone covers everything.
    if pat.is_empty() {
        return true;
    }
    let has_wildcard = pat.contains('*');
    if !has_wildcard {
        let pat = pat.strip_suffix('/').unwrap_or(pat);
        return match path.strip_prefix(pat) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        };
    }
    // A trailing slash means "everything below".
    if let Some(stem) = pat.strip_suffix('/') {
        return match_segments(stem.split('/').chain(std::iter::once("**")), path);
    }
    match_segments(pat.split('/'), path)
}

/// Two-pointer glob match over segments, where `**` is the star and each element is itself a
/// glob over characters. Linear backtracking (one resume point) and no allocation: the resume
/// point is a pair of cloned `Split` iterators.
fn match_segments<'p>(pat: impl Iterator<Item = &'p str> + Clone, path: &str) -> bool {
    let mut p = pat;
    let mut s = path.split('/');
    let mut cur = s.next();
    // (pattern after the `**`, path iterator, first path segment not absorbed by the `**`)
    let mut star: Option<(_, std::str::Split<'_, char>, Option<&str>)> = None;
    while let Some(seg) = cur {
        let mut next_p = p.clone();
        match next_p.next() {
            Some("**") => {
                star = Some((next_p.clone(), s.clone(), cur));
                p = next_p;
            }
            Some(ps) if segment_matches(ps, seg) => {
                p = next_p;
                cur = s.next();
            }
            _ => match &mut star {
                Some((sp, ss, scur)) => {
                    *scur = ss.next();
                    p = sp.clone();
                    s = ss.clone();
                    cur = *scur;
                }
                None => return false,
            },
        }
    }
    p.all(|x| x == "**")
}

/// Glob over characters within one segment: `*` matches any run (no `/` can occur here).
fn segment_matches(pat: &str, seg: &str) -> bool {
    let (pb, sb) = (pat.as_bytes(), seg.as_bytes());
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < sb.len() {
        if p < pb.len() && pb[p] == b'*' {
            star = Some((p, s));
            p += 1;
        } else if p < pb.len() && pb[p] == sb[s] {
            p += 1;
            s += 1;
        } else if let Some((sp, ss)) = star {
            p = sp + 1;
            s = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    pb[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        PathPattern::new(p).unwrap().matches(path)
    }

    #[test]
    fn literal_patterns_respect_segment_boundaries() {
        assert!(m("/videos", "/videos"));
        assert!(m("/videos", "/videos/a.mp4"));
        assert!(m("/videos", "/videos/"));
        assert!(!m("/videos", "/videos-private"));
        assert!(!m("/videos", "/videos-private/a.mp4"));
        assert!(!m("/videos", "/video"));
        assert!(m("/videos/", "/videos/a/b"));
        assert!(!m("/videos/", "/videos-private/a"));
        assert!(m("/", "/anything/at/all"));
    }

    #[test]
    fn wildcards() {
        assert!(m("/img/*.jpg", "/img/a.jpg"));
        assert!(!m("/img/*.jpg", "/img/a.png"));
        assert!(!m("/img/*.jpg", "/img/sub/a.jpg"));
        assert!(m("/img/*", "/img/a"));
        assert!(!m("/img/*", "/img-x/a"));
        assert!(m("/videos/**", "/videos/a/b/c.ts"));
        assert!(m("/videos/**", "/videos"));
        assert!(!m("/videos/**", "/videos-private/x"));
        assert!(m("/videos/**/master.m3u8", "/videos/show/s1/master.m3u8"));
        assert!(m("/videos/**/master.m3u8", "/videos/master.m3u8"));
        assert!(!m("/videos/**/master.m3u8", "/videos/show/master.m3u"));
        assert!(m("/videos/*/", "/videos/show/seg1.ts"));
        assert!(!m("/videos/*/", "/videos-x/show/seg1.ts"));
        assert!(m("/**/*.jpg", "/a/b/c.jpg"));
        assert!(m("/a*b*c", "/aXXbYYc"));
        assert!(!m("/a*b*c", "/aXXbYY"));
    }

    #[test]
    fn bad_patterns() {
        for p in ["videos", "/a/../b", "/a/./b", "/a**", "/a/\u{0}"] {
            assert!(PathPattern::new(p).is_err(), "{p}");
        }
    }
}
