//! `TempUrlQuery::parse`, `parse_expires` and `parse_ip_range` on arbitrary input, and
//! `tempurl::verify` on whatever parses: no panic, and no forged signature verifies.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use outpost_auth::tempurl::{self, TempUrlOptions, TempUrlQuery};
use outpost_auth::{StoragePath, TempUrlKeys};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = tempurl::parse_expires(input);
    let _ = tempurl::parse_ip_range(input);
    if let Ok(Some(q)) = TempUrlQuery::parse(input) {
        if let Some(iso) = tempurl::format_iso8601(q.expires) {
            assert_eq!(tempurl::parse_expires(&iso).ok(), Some(q.expires));
        }
        let path = StoragePath::parse("/v1/AUTH_fuzz/c/o/bj").expect("valid path");
        let keys = TempUrlKeys::from_slice(&[b"fuzz-key-1", b"fuzz-key-2"]);
        let opts = TempUrlOptions {
            allow_sha1: true,
            leeway: 5,
        };
        for method in ["GET", "HEAD", "PUT", "PATCH"] {
            let r = tempurl::verify(
                &q,
                method,
                &path,
                IpAddr::from([10, 0, 0, 1]),
                0,
                keys,
                opts,
            );
            // Forging an HMAC is not something a fuzzer should manage.
            assert!(r.is_err(), "{input:?} verified");
        }
    }
});
