//! Scope patterns: `PathPattern::new` and `matches` on arbitrary pattern / path pairs (split at
//! the first newline): no panic, and a literal pattern covers itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_auth::PathPattern;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, path) = input.split_once('\n').unwrap_or((input, "/"));
    let Ok(p) = PathPattern::new(pattern) else {
        return;
    };
    let _ = p.matches(path);
    if !pattern.contains('*') {
        assert!(p.matches(pattern), "{pattern:?}");
    }
});
