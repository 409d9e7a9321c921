//! An optional cache of verified tokens, so a token presented again (every HLS segment, every
//! cached object) skips splitting, the MAC and the claims JSON.
//!
//! What is cached is only what does not depend on the request: the token's signature checked
//! out under a given key, and its claims decoded and validated. Every use of a cached token
//! still runs the per-request checks in the same order as without a cache: the key is still
//! known and usable at `now` (and is the same secret that signed it), kind, account, validity
//! window, client address, then scope and revocation. A [`VerifiedToken`] can only be made by
//! this crate, so a cache can hold and hand back entries but never forge one, and an entry is
//! used only for the exact token string and account it was made for.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::{Claims, TokenKind};

/// A token whose signature was checked and whose claims were decoded and validated, as kept
/// by a [`TokenCache`]. Only this crate constructs it.
pub struct VerifiedToken {
    pub(crate) token: Box<str>,
    /// Length of the key id, which follows `op1.` in the token.
    pub(crate) key_id_len: usize,
    /// [`crate::TokenKey`]'s tag of the key that checked the signature.
    pub(crate) key_tag: [u8; 32],
    pub(crate) claims: Arc<Claims<'static>>,
    /// The claims' address ranges, parsed.
    pub(crate) nets: Vec<IpNet>,
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("key_id", &self.key_id())
            .field("account", &self.claims.account)
            .field("expires", &self.claims.expires)
            .finish_non_exhaustive()
    }
}

impl VerifiedToken {
    /// The account the token is for.
    pub fn account(&self) -> &str {
        &self.claims.account
    }

    /// The token's expiry (for sessions: the idle deadline), epoch seconds. A cache has no
    /// reason to keep the entry past it (plus the clock leeway).
    pub fn expires(&self) -> u64 {
        self.claims.expires
    }

    /// The kind of token.
    pub fn kind(&self) -> TokenKind {
        self.claims.kind
    }

    /// Approximate heap bytes held, for a size-bounded cache's weigher.
    pub fn approx_bytes(&self) -> usize {
        let c = &self.claims;
        let strs = c.account.len()
            + c.scopes
                .iter()
                .map(|s| s.pattern.len() + s.methods.as_deref().map_or(0, str::len) + 64)
                .sum::<usize>()
            + c.ips.iter().map(|i| i.len() + 24).sum::<usize>()
            + [&c.session_id, &c.user_id, &c.nonce]
                .iter()
                .map(|o| o.as_deref().map_or(0, str::len))
                .sum::<usize>();
        std::mem::size_of::<Self>()
            + std::mem::size_of::<Claims<'static>>()
            + self.token.len()
            + self.nets.len() * std::mem::size_of::<IpNet>()
            + strs
    }

    pub(crate) fn key_id(&self) -> &str {
        let start = crate::token::VERSION_TAG.len() + 1;
        &self.token[start..start + self.key_id_len]
    }

    pub(crate) fn allows_ip(&self, ip: IpAddr) -> bool {
        allows_ip(&self.nets, ip)
    }
}

/// True if `ip` is in one of `nets`, or there are none.
pub(crate) fn allows_ip(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.is_empty() || nets.iter().any(|n| n.contains(&ip))
}

/// Where [`crate::verify_cached`] keeps tokens it verified. Implemented by the caller (the edge
/// backs it with a bounded, expiring concurrent cache).
///
/// Key entries by account and token: [`crate::verify_cached`] checks that an entry is for the
/// exact token and account presented and ignores it otherwise, so a sloppy key costs only hit
/// rate, never correctness.
pub trait TokenCache {
    /// False to skip the cache entirely (lookups and building entries).
    fn is_enabled(&self) -> bool {
        true
    }
    /// The entry stored for `token` presented for `account`, if any.
    fn get(&self, account: &str, token: &str) -> Option<Arc<VerifiedToken>>;
    /// Stores an entry for `token` presented for `account`. Called only for tokens that
    /// passed every check of the request they came with.
    fn insert(&self, account: &str, token: &str, verified: Arc<VerifiedToken>);
}

impl<C: TokenCache + ?Sized> TokenCache for &C {
    fn is_enabled(&self) -> bool {
        (**self).is_enabled()
    }
    fn get(&self, account: &str, token: &str) -> Option<Arc<VerifiedToken>> {
        (**self).get(account, token)
    }
    fn insert(&self, account: &str, token: &str, verified: Arc<VerifiedToken>) {
        (**self).insert(account, token, verified);
    }
}

/// A [`TokenCache`] that caches nothing: [`crate::verify`] uses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTokenCache;

impl TokenCache for NoTokenCache {
    fn is_enabled(&self) -> bool {
        false
    }
    fn get(&self, _: &str, _: &str) -> Option<Arc<VerifiedToken>> {
        None
    }
    fn insert(&self, _: &str, _: &str, _: Arc<VerifiedToken>) {}
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use http::HeaderMap;

    use super::*;
    use crate::{
        token, verify, verify_cached, AccessRequest, Error, KeySet, KeyStore, NoRevocations,
        Secret, StoragePath, TempUrlKeys, TokenKeySpec, VerifiedGrant, VerifyOptions,
    };

    const NOW: u64 = 1_700_000_000;

    struct Keys(KeySet);
    impl KeyStore for Keys {
        fn token_keys(&self, _: &str) -> Option<&KeySet> {
            Some(&self.0)
        }
        fn tempurl_keys(&self, _: &str, _: &str) -> TempUrlKeys<'_> {
            TempUrlKeys::default()
        }
    }

    fn keys(secret: &str, not_after: Option<u64>) -> Keys {
        Keys(
            KeySet::new([TokenKeySpec {
                id: "k1".into(),
                secret: Secret::new(secret),
                not_before: None,
                not_after,
            }])
            .unwrap(),
        )
    }

    #[derive(Default)]
    struct MapCache(Mutex<HashMap<(String, String), Arc<VerifiedToken>>>);
    impl TokenCache for MapCache {
        fn get(&self, account: &str, token: &str) -> Option<Arc<VerifiedToken>> {
            let map = self.0.lock().unwrap();
            map.get(&(account.to_owned(), token.to_owned())).cloned()
        }
        fn insert(&self, account: &str, token: &str, v: Arc<VerifiedToken>) {
            let mut map = self.0.lock().unwrap();
            map.insert((account.to_owned(), token.to_owned()), v);
        }
    }

    /// Answers every lookup with one entry, whatever the token: a cache keyed wrongly.
    struct Sloppy(Arc<VerifiedToken>);
    impl TokenCache for Sloppy {
        fn get(&self, _: &str, _: &str) -> Option<Arc<VerifiedToken>> {
            Some(Arc::clone(&self.0))
        }
        fn insert(&self, _: &str, _: &str, _: Arc<VerifiedToken>) {}
    }

    fn token(keys: &Keys, account: &str, ips: &[&str]) -> String {
        let mut c = Claims::new(account, TokenKind::Url, "/videos/**", NOW + 60);
        c.ips = ips.iter().map(|&i| i.into()).collect();
        token::sign(&c, &keys.0.keys()[0]).unwrap()
    }

    fn check(
        keys: &Keys,
        cache: &impl TokenCache,
        path: &str,
        token: &str,
        ip: [u8; 4],
        now: u64,
    ) -> (Result<VerifiedGrant, Error>, Result<VerifiedGrant, Error>) {
        let path = StoragePath::parse(path).unwrap();
        let headers = HeaderMap::new();
        let req = AccessRequest {
            method: "GET",
            path: &path,
            query: None,
            path_token: Some(token),
            headers: &headers,
            client_ip: IpAddr::from(ip),
            now,
        };
        let opts = VerifyOptions::default();
        (
            verify_cached(&req, keys, &NoRevocations, cache, &opts),
            verify(&req, keys, &NoRevocations, &opts),
        )
    }

    #[test]
    fn a_cached_token_gets_the_same_answer_as_an_uncached_one() {
        let k = keys("cache-test-secret-0123456789", Some(NOW + 30));
        let cache = MapCache::default();
        let t = token(&k, "demo", &["192.0.2.0/24"]);
        let obj = "/v1/AUTH_demo/videos/a.ts";
        let (cached, plain) = check(&k, &cache, obj, &t, [192, 0, 2, 1], NOW);
        assert_eq!(cached.unwrap(), plain.unwrap());
        assert_eq!(cache.0.lock().unwrap().len(), 1);
        // Hits: every per-request check still runs, with the uncached answer.
        for (path, ip, now) in [
            (obj, [192, 0, 2, 1], NOW),
            (obj, [198, 51, 100, 1], NOW),   // address
            (obj, [192, 0, 2, 1], NOW + 66), // expired
            (obj, [192, 0, 2, 1], NOW + 36), // key retired
            ("/v1/AUTH_demo/music/a.mp3", [192, 0, 2, 1], NOW), // scope
            ("/v1/AUTH_other/videos/a.ts", [192, 0, 2, 1], NOW), // account
        ] {
            let (cached, plain) = check(&k, &cache, path, &t, ip, now);
            assert_eq!(cached, plain, "{path} {ip:?} {now}");
        }
        assert_eq!(cache.0.lock().unwrap().len(), 1, "failures are not cached");
    }

    #[test]
    fn a_replaced_key_is_not_trusted_from_the_cache() {
        let old = keys("cache-test-secret-0123456789", None);
        let cache = MapCache::default();
        let t = token(&old, "demo", &[]);
        let obj = "/v1/AUTH_demo/videos/a.ts";
        assert!(check(&old, &cache, obj, &t, [192, 0, 2, 1], NOW).0.is_ok());
        let new = keys("another-secret-0123456789abc", None);
        let (cached, plain) = check(&new, &cache, obj, &t, [192, 0, 2, 1], NOW);
        assert!(
            matches!(cached, Err(Error::BadSignature { .. })),
            "{cached:?}"
        );
        assert_eq!(cached, plain);
    }

    #[test]
    fn an_entry_for_another_token_or_account_is_ignored() {
        let k = keys("cache-test-secret-0123456789", None);
        let cache = MapCache::default();
        let demo = token(&k, "demo", &[]);
        let obj = "/v1/AUTH_demo/videos/a.ts";
        assert!(check(&k, &cache, obj, &demo, [192, 0, 2, 1], NOW).0.is_ok());
        let entry = cache.0.lock().unwrap().values().next().cloned().unwrap();
        let sloppy = Sloppy(entry);
        let forged = format!("{}x", &demo[..demo.len() - 1]);
        let (cached, plain) = check(&k, &sloppy, obj, &forged, [192, 0, 2, 1], NOW);
        assert!(cached.is_err());
        assert_eq!(cached, plain);
        let other = "/v1/AUTH_other/videos/a.ts";
        let (cached, plain) = check(&k, &sloppy, other, &demo, [192, 0, 2, 1], NOW);
        assert_eq!(cached, plain);
        assert!(matches!(cached, Err(Error::WrongScope { what: "account" })));
    }
}
