//! Cookies: `pubcookie::cookie_values` over `Cookie` headers built from the input (one header
//! per line), and `pubcookie::safe_next` on the whole input: no panic, and every accepted
//! redirect target is a same-site path.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use outpost_auth::pubcookie::{self, DEFAULT_COOKIE_NAME};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(http::header::COOKIE, v);
        }
    }
    for v in pubcookie::cookie_values(&headers, DEFAULT_COOKIE_NAME) {
        assert!(!v.contains(';'), "{v:?}");
    }
    let _ = pubcookie::cookie_values(&headers, "").count();
    let Ok(next) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ok) = pubcookie::safe_next(next) {
        assert_eq!(ok, next);
        assert!(ok.starts_with('/') && !ok.starts_with("//"), "{ok:?}");
        assert!(!ok.contains('\\'), "{ok:?}");
        assert!(!ok.bytes().any(|b| b < 0x20 || b == 0x7f), "{ok:?}");
    }
});
