//! (d) `CanonicalPath::parse` never panics and what it accepts round-trips; (e) literal
//! patterns respect segment boundaries and globs agree with a naive reference matcher.

use outpost_auth::{CanonicalPath, PathPattern, StoragePath};
use proptest::prelude::*;

/// Pieces that are fine on their own (`|`-separated), several of them escapes that decode to
/// hex digits or `%`, so their combinations probe decoding exactly once.
const FINE_PIECES: &str = "/|/|a|b|é|4|1|F|+| |;|~|%25|%41|%34|%32|%46|%66|%2e|%20|%3F|%C3%A9";

/// Pieces that are usually rejected, or end the path (`?`, `#`).
const NASTY_PIECES: &str = "%|%2|%2F|%2f|.|..|%00|%7F|%C0%AF|%E0%80%AE|%ED%A0%80|%FF|?|#|\\|\
                            \u{0}|\u{7f}";

/// Strings made mostly of [`FINE_PIECES`], with some [`NASTY_PIECES`].
fn pathish() -> impl Strategy<Value = String> {
    let pieces = |all: &'static str| prop::sample::select(all.split('|').collect::<Vec<_>>());
    let piece = prop_oneof![9 => pieces(FINE_PIECES), 1 => pieces(NASTY_PIECES)];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn check_round_trip(input: &str) -> Result<(), TestCaseError> {
    // StoragePath::parse must not panic either.
    let _ = StoragePath::parse(input);
    let Ok(c) = CanonicalPath::parse(input) else {
        return Ok(());
    };
    prop_assert!(c.as_str().starts_with('/'));
    prop_assert!(!c.as_str().bytes().any(|b| b < 0x20 || b == 0x7f));
    prop_assert!(!c.as_str().split('/').any(|s| s == "." || s == ".."));
    let encoded = c.to_encoded();
    prop_assert!(encoded.is_ascii());
    prop_assert_eq!(CanonicalPath::parse(&encoded), Ok(c.clone()), "{}", encoded);
    prop_assert_eq!(CanonicalPath::from_decoded(c.as_str()), Ok(c));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// (d) Arbitrary strings: never a panic; accepted paths round-trip.
    #[test]
    fn canonical_path_any_string(s in any::<String>()) {
        check_round_trip(&s)?;
        check_round_trip(&format!("/{s}"))?;
    }

    /// (d) Strings built from escapes, dots and slashes.
    #[test]
    fn canonical_path_tricky_pieces(s in pathish()) {
        check_round_trip(&s)?;
        check_round_trip(&format!("/{s}"))?;
    }
}

/// Naive reference: a literal pattern covers itself and what is below; otherwise segments are
/// matched recursively, `**` taking zero or more whole segments and `*` any run inside one.
fn reference_matches(pattern: &str, path: &str) -> bool {
    fn seg(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| seg(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && seg(rest, &s[1..]),
        }
    }
    fn segs(p: &[&str], s: &[&str]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => (0..=s.len()).any(|i| segs(rest, &s[i..])),
            Some((first, rest)) => {
                !s.is_empty() && seg(first.as_bytes(), s[0].as_bytes()) && segs(rest, &s[1..])
            }
        }
    }
    let (Some(pat), Some(path)) = (pattern.strip_prefix('/'), path.strip_prefix('/')) else {
        return false;
    };
    if pat.is_empty() {
        return true;
    }
    let path: Vec<&str> = path.split('/').collect();
    if !pat.contains('*') {
        let lit: Vec<&str> = pat.strip_suffix('/').unwrap_or(pat).split('/').collect();
        return path.len() >= lit.len() && path[..lit.len()] == lit[..];
    }
    let mut p: Vec<&str> = pat.split('/').collect();
    if pat.ends_with('/') {
        *p.last_mut().expect("split yields one item at least") = "**";
    }
    segs(&p, &path)
}

fn glob_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ab]{1,3}",
        1 => Just("*".to_owned()),
        1 => Just("**".to_owned()),
        1 => "[ab]{0,2}\\*[ab]{0,2}",
        1 => Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// (e) A literal pattern `/a` never covers `/a` followed by anything but `/`.
    #[test]
    fn literal_pattern_respects_segment_boundary(
        lit in prop::collection::vec("[a-zA-Z0-9 _.é-]{1,6}", 1..4),
        trailing_slash in any::<bool>(),
        next in any::<char>().prop_filter("not a slash", |c| *c != '/'),
        rest in "[a-z/.-]{0,8}",
    ) {
        prop_assume!(lit.iter().all(|s| s != "." && s != ".."));
        let base = format!("/{}", lit.join("/"));
        let written = if trailing_slash { format!("{base}/") } else { base.clone() };
        let pattern = PathPattern::new(&written).expect("valid literal pattern");
        prop_assert!(pattern.matches(&base));
        let below = format!("{base}/{rest}");
        prop_assert!(pattern.matches(&below));
        let path = format!("{base}{next}{rest}");
        prop_assert!(!pattern.matches(&path), "{} covers {}", pattern, path);
    }

    /// (e) Glob matching agrees with the naive reference matcher.
    #[test]
    fn glob_matches_reference(
        pat in prop::collection::vec(glob_segment(), 1..5),
        path in prop::collection::vec("[ab]{0,3}", 1..6),
    ) {
        let pattern = format!("/{}", pat.join("/"));
        prop_assume!(PathPattern::new(&pattern).is_ok());
        let path = format!("/{}", path.join("/"));
        let pattern = PathPattern::new(&pattern).expect("checked above");
        prop_assert_eq!(pattern.matches(&path), reference_matches(pattern.as_str(), &path),
            "{} vs {}", pattern, path);
    }
}

/// Decoded exactly once, however the `%` was spelled: `%25%XX%YY` is the literal text
/// `%<X><Y>` of a name (as in Swift), and re-encoding gives a path that decodes to it again.
#[test]
fn literal_percent_escapes_are_names() {
    for (input, name) in [
        ("/a%25%34%31", "/a%41"),
        ("/a%25%32%46b", "/a%2Fb"),
        ("/a%25%32F", "/a%2F"),
        ("/%25a%41", "/%aA"),
        ("/a%252Fb", "/a%2Fb"),
    ] {
        let c = CanonicalPath::parse(input).expect(input);
        assert_eq!(c.as_str(), name, "{input}");
        assert_eq!(CanonicalPath::parse(&c.to_encoded()), Ok(c.clone()));
        assert_eq!(c.segments().count(), name.matches('/').count());
    }
}
