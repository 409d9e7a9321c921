//! `CanonicalPath::parse` and `StoragePath::parse` on arbitrary input: no panic, the documented
//! invariants hold for every accepted path, and accepted paths round-trip through
//! `to_encoded`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_auth::path::MAX_PATH_BYTES;
use outpost_auth::{CanonicalPath, StoragePath};

/// True when a decoded path holds an escape (`%` + two hex digits): accepted paths never do.
fn holds_percent_hex(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = CanonicalPath::parse(input) {
        let s = c.as_str();
        assert!(s.starts_with('/'), "{s:?}");
        assert!(!s.bytes().any(|b| b < 0x20 || b == 0x7f), "{s:?}");
        assert!(!s.split('/').any(|seg| seg == "." || seg == ".."), "{s:?}");
        assert_eq!(CanonicalPath::from_decoded(s).as_ref(), Ok(&c));
        let encoded = c.to_encoded();
        // The raw-length limit does not bound the encoded length (raw UTF-8 grows 3x).
        assert!(!holds_percent_hex(s), "{s:?} holds an escape");
        if encoded.len() <= MAX_PATH_BYTES {
            assert_eq!(CanonicalPath::parse(&encoded).as_ref(), Ok(&c), "{encoded}");
        }
    }
    if let Ok(p) = StoragePath::parse(input) {
        let s = p.as_str();
        assert!(!p.account().is_empty());
        assert!(s.starts_with(&format!("/v1/AUTH_{}", p.account())), "{s:?}");
        assert!(p.container().is_some() || p.object().is_none());
        assert!(p
            .container()
            .is_none_or(|c| !c.is_empty() && !c.contains('/')));
        assert!(p.object().is_none_or(|o| !o.is_empty()));
        assert!(s.ends_with(p.account_relative()) || p.account_relative() == "/");
        let rebuilt = StoragePath::build(p.account(), p.container(), p.object());
        if let (Ok(r), None) = (&rebuilt, p.object()) {
            assert_eq!(r.container(), p.container());
        }
        if let Some(o) = p.object() {
            let r = rebuilt.expect("a parsed object path rebuilds");
            assert_eq!((r.container(), r.object()), (p.container(), Some(o)));
        }
    }
});
