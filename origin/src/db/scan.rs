//! Name-range scans behind listings: Swift's prefix / delimiter / marker / end_marker /
//! limit / reverse semantics over a table ordered by name.

use rusqlite::types::Value;

use crate::db::{Entry, ListParams};
use crate::Result;

/// A bound on names: the name and whether it is inclusive.
pub(super) type Bound<'a> = Option<(&'a str, bool)>;

/// Completes `base` (a `SELECT ... WHERE ...` using parameters `?1..?{first-1}`) with name
/// bounds, order and limit. Returns the SQL and the values of parameters `?{first}..`. The
/// SQL text depends only on which bounds are present, so `prepare_cached` reuses it.
pub(super) fn range_query(
    base: &str,
    first: usize,
    lower: Bound<'_>,
    upper: Bound<'_>,
    desc: bool,
    n: usize,
) -> (String, Vec<Value>) {
    let mut sql = base.to_owned();
    let mut args: Vec<Value> = Vec::new();
    if let Some((l, incl)) = lower {
        sql.push_str(&format!(
            " AND name {} ?{}",
            if incl { ">=" } else { ">" },
            first + args.len()
        ));
        args.push(Value::Text(l.to_owned()));
    }
    if let Some((u, incl)) = upper {
        sql.push_str(&format!(
            " AND name {} ?{}",
            if incl { "<=" } else { "<" },
            first + args.len()
        ));
        args.push(Value::Text(u.to_owned()));
    }
    sql.push_str(if desc {
        " ORDER BY name DESC"
    } else {
        " ORDER BY name"
    });
    sql.push_str(&format!(" LIMIT ?{}", first + args.len()));
    args.push(Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
    (sql, args)
}

/// The smallest string greater than every string starting with `s` (`None`: there is none).
/// SQLite compares TEXT bytewise, and UTF-8 byte order is code point order, so incrementing
/// the last code point is enough.
pub fn successor(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(c) = next {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Swift listing semantics over a name-ordered table: prefix, delimiter roll-up, marker,
/// end_marker, limit, reverse. `fetch(lower, upper, n)` returns up to `n` rows in order.
///
/// Scans resume from a cursor, so a pseudo-directory with a million names under it costs one
/// seek, not a million rows; a subdir equal to the marker is not repeated (that is how
/// clients page through delimited listings).
pub(super) fn list<T>(
    p: &ListParams,
    mut fetch: impl FnMut(Bound<'_>, Bound<'_>, usize) -> Result<Vec<T>>,
    name_of: impl Fn(&T) -> &str,
) -> Result<Vec<Entry<T>>> {
    let mut out: Vec<Entry<T>> = Vec::new();
    if p.limit == 0 {
        return Ok(out);
    }
    // Cursor: the next fetch starts after (forward) / before (reverse) this name, or at it
    // when inclusive.
    let mut cursor: Option<(String, bool)> = if p.reverse {
        let prefix_end = if p.prefix.is_empty() {
            None
        } else {
            successor(&p.prefix)
        };
        match (&p.marker, prefix_end) {
            (Some(m), Some(e)) if e.as_str() < m.as_str() => Some((e, false)),
            (Some(m), _) => Some((m.clone(), false)),
            (None, e) => e.map(|e| (e, false)),
        }
    } else {
        match &p.marker {
            Some(m) if m.as_str() >= p.prefix.as_str() => Some((m.clone(), false)),
            _ if !p.prefix.is_empty() => Some((p.prefix.clone(), true)),
            _ => None,
        }
    };
    let delimiter = p.delimiter.as_deref().filter(|d| !d.is_empty());
    // Rows after a subdir's first row are usually inside it: rather than read them to skip
    // them, a subdir ends the batch and the scan resumes past it. Batches start small after
    // such a jump and grow while rows are listed one by one, so a page of 1,000 subdirs of
    // 1,000 names reads a few rows per subdir, not a million.
    let mut cap = 1000;
    'scan: loop {
        let want = p.limit - out.len();
        let batch = want.clamp(1, cap);
        let c = cursor.as_ref().map(|(s, i)| (s.as_str(), *i));
        let end = p.end_marker.as_deref().map(|e| (e, false));
        let rows = if p.reverse {
            fetch(end, c, batch)?
        } else {
            fetch(c, end, batch)?
        };
        let got = rows.len();
        for row in rows {
            let name = name_of(&row);
            if !name.starts_with(&p.prefix) {
                // Scans start at the edge of the prefix range: leaving it means we are done.
                return Ok(out);
            }
            if let Some(d) = delimiter {
                if let Some(i) = name[p.prefix.len()..].find(d) {
                    let dir = name[..p.prefix.len() + i + d.len()].to_owned();
                    // Resume past everything under the subdir.
                    cursor = if p.reverse {
                        Some((dir.clone(), false))
                    } else {
                        match successor(&dir) {
                            Some(s) => Some((s, true)),
                            None => return Ok(out),
                        }
                    };
                    if p.marker.as_deref() != Some(dir.as_str()) {
                        out.push(Entry::Subdir(dir));
                        if out.len() >= p.limit {
                            return Ok(out);
                        }
                    }
                    cap = 16;
                    continue 'scan;
                }
            }
            cursor = Some((name.to_owned(), false));
            out.push(Entry::Item(row));
            if out.len() >= p.limit {
                return Ok(out);
            }
        }
        if got < batch {
            break;
        }
        cap = (cap * 4).min(1000);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fetch over an in-memory sorted list, with the SQL bounds' semantics.
    fn fetch_from<'a>(
        names: &'a [String],
        reverse: bool,
    ) -> impl FnMut(Bound<'_>, Bound<'_>, usize) -> Result<Vec<String>> + 'a {
        move |lower, upper, n| {
            let ok = |s: &str| {
                lower.is_none_or(|(l, incl)| if incl { s >= l } else { s > l })
                    && upper.is_none_or(|(u, incl)| if incl { s <= u } else { s < u })
            };
            let it = names.iter().filter(|s| ok(s)).cloned();
            Ok(if reverse {
                it.rev().take(n).collect()
            } else {
                it.take(n).collect()
            })
        }
    }

    /// The reference model: filter, order, roll up, limit — one pass over everything.
    fn naive(names: &[String], p: &ListParams) -> Vec<String> {
        let mut v: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with(&p.prefix))
            .filter(|n| match (&p.marker, p.reverse) {
                (Some(m), false) => n.as_str() > m.as_str(),
                (Some(m), true) => n.as_str() < m.as_str(),
                (None, _) => true,
            })
            .filter(|n| match (&p.end_marker, p.reverse) {
                (Some(e), false) => n.as_str() < e.as_str(),
                (Some(e), true) => n.as_str() > e.as_str(),
                (None, _) => true,
            })
            .collect();
        if p.reverse {
            v.reverse();
        }
        let mut out: Vec<String> = Vec::new();
        let mut last_dir: Option<String> = None;
        for n in v {
            let d = p.delimiter.as_deref().and_then(|d| {
                n[p.prefix.len()..]
                    .find(d)
                    .map(|i| n[..p.prefix.len() + i + d.len()].to_owned())
            });
            match d {
                Some(d) => {
                    if last_dir.as_deref() != Some(&d) && p.marker.as_deref() != Some(&d) {
                        out.push(d.clone());
                    }
                    last_dir = Some(d);
                }
                None => {
                    last_dir = None;
                    out.push(n.clone());
                }
            }
        }
        out.truncate(p.limit);
        out
    }

    fn names_of(entries: Vec<Entry<String>>) -> Vec<String> {
        entries
            .into_iter()
            .map(|e| match e {
                Entry::Item(s) | Entry::Subdir(s) => s,
            })
            .collect()
    }

    #[test]
    fn successor_bounds_every_extension() {
        assert_eq!(successor("abc").as_deref(), Some("abd"));
        assert_eq!(successor("a/").as_deref(), Some("a0"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor(""), None);
        let s = successor("dir/").unwrap();
        for ext in ["", "x", "\u{10FFFF}\u{10FFFF}", "/"] {
            assert!(format!("dir/{ext}") < s);
        }
    }

    /// Regression: `swift list --prefix dir/ --delimiter /` looped forever, because the page
    /// after `marker=dir/sub/` started with `dir/sub/` again.
    #[test]
    fn subdir_equal_to_marker_is_not_repeated() {
        let names: Vec<String> = ["dir/a.txt", "dir/sub/b.txt", "dir/sub/c.txt", "top"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut p = ListParams {
            prefix: "dir/".into(),
            delimiter: Some("/".into()),
            limit: 10,
            ..ListParams::default()
        };
        let got = names_of(list(&p, fetch_from(&names, false), |s| s).unwrap());
        assert_eq!(got, ["dir/a.txt", "dir/sub/"]);
        p.marker = Some("dir/sub/".into());
        let got = names_of(list(&p, fetch_from(&names, false), |s| s).unwrap());
        assert!(got.is_empty(), "{got:?}");
    }

    /// Rolling up big pseudo-directories reads a few rows per subdir, not every name.
    #[test]
    fn subdirs_are_skipped_not_scanned() {
        let names: Vec<String> = (0..100)
            .flat_map(|d| (0..1000).map(move |f| format!("d{d:03}/f{f:04}")))
            .collect();
        for reverse in [false, true] {
            let p = ListParams {
                delimiter: Some("/".into()),
                limit: 10_000,
                reverse,
                ..ListParams::default()
            };
            let mut read = 0;
            let mut inner = fetch_from(&names, reverse);
            let got = list(
                &p,
                |l, u, n| {
                    let rows = inner(l, u, n)?;
                    read += rows.len();
                    Ok(rows)
                },
                |s| s,
            )
            .unwrap();
            assert_eq!(got.len(), 100);
            assert!(read <= 100 * 16 + 1000, "read {read} rows for 100 subdirs");
        }
    }

    /// Every combination of parameters over a generated tree agrees with the naive model.
    #[test]
    fn agrees_with_reference_model() {
        let mut names = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let parts = ["a", "b", "a/", "b/", "ab", "/", "-", "\u{e9}", "\u{10FFFF}"];
        for _ in 0..400 {
            let len = 1 + rnd(6);
            let name: String = (0..len)
                .map(|_| parts[rnd(parts.len() as u64) as usize])
                .collect();
            names.push(name);
        }
        names.sort();
        names.dedup();
        let probes = ["", "a", "a/", "ab", "b/", "a/b", "\u{e9}", "zz"];
        let mut checked = 0;
        for reverse in [false, true] {
            for prefix in ["", "a", "a/", "b/a"] {
                for delimiter in [None, Some("/"), Some("b")] {
                    for marker in probes {
                        for end_marker in probes {
                            for limit in [1, 3, 1000] {
                                let p = ListParams {
                                    prefix: prefix.into(),
                                    delimiter: delimiter.map(Into::into),
                                    marker: (!marker.is_empty()).then(|| marker.into()),
                                    end_marker: (!end_marker.is_empty()).then(|| end_marker.into()),
                                    limit,
                                    reverse,
                                    live_at: None,
                                };
                                let got =
                                    names_of(list(&p, fetch_from(&names, reverse), |s| s).unwrap());
                                assert_eq!(got, naive(&names, &p), "{p:?}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 4 * 3 * 8 * 8 * 3);
    }
}
