//! Outpost tokens: `UnverifiedToken::split` + `verify` with a fixed key on arbitrary input, and
//! the claims decoder on arbitrary payloads signed here with the same key (a fuzzer cannot
//! forge the MAC, so the decoder is otherwise unreachable). Claims that decode must re-sign
//! and decode to the same value.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use outpost_auth::token::{self, UnverifiedToken};
use outpost_auth::{Mechanism, Secret, TokenKey, TokenKeySpec};

const SECRET: &str = "fuzz-secret-0123456789abcdef";

fn key() -> TokenKey {
    TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(SECRET),
        not_before: None,
        not_after: None,
    })
    .expect("valid key")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = key();
    let m = Mechanism::QueryToken;
    if mode % 2 == 0 {
        // Arbitrary token text.
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(u) = UnverifiedToken::split(text, m) {
            if let Ok(p) = u.verify(&key, m) {
                let _ = p.claims(m);
            }
        }
        return;
    }
    // Arbitrary payload, correctly signed.
    let mut signed = format!("op1.k1.{}", URL_SAFE_NO_PAD.encode(rest));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(signed.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    signed.push('.');
    signed.push_str(&sig);
    let Ok(u) = UnverifiedToken::split(&signed, m) else {
        // Only an empty payload or the length limit can refuse a well-formed token.
        assert!(rest.is_empty() || signed.len() > token::MAX_TOKEN_BYTES);
        return;
    };
    let p = u.verify(&key, m).expect("signed with the same key");
    if let Ok(claims) = p.claims(m) {
        let again = token::sign(&claims, &key).expect("valid claims sign");
        let u2 = UnverifiedToken::split(&again, m).expect("own token splits");
        let p2 = u2.verify(&key, m).expect("own token verifies");
        assert_eq!(p2.claims(m).expect("own claims decode"), claims);
    }
});
