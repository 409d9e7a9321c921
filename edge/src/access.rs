//! Access decisions at the edge: public containers, signed requests, sessions, revocations and
//! the shared "seen grants" set.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;
use outpost_auth::{
    AccessRequest, Revocations, SeenGrants, TokenCache, VerifiedGrant, VerifiedToken,
};

use crate::catalog::Catalog;
use crate::routing::Route;
use crate::Error;

/// How a request was allowed.
#[derive(Debug, Clone)]
pub enum Access {
    /// The container's read ACL lets anyone read (`.r:*`), or this request's `Referer`.
    Public,
    /// A credential verified.
    Granted(Box<VerifiedGrant>),
}

impl Access {
    /// True for private content (responses carry `Cache-Control: private`).
    pub fn is_private(&self) -> bool {
        matches!(self, Access::Granted(_))
    }
}

/// Decides whether a routed request may be served.
///
/// # Errors
/// [`Error::Denied`] with the machine-readable reason, [`Error::NotFound`] for an unknown
/// account or container.
#[allow(clippy::too_many_arguments)] // reason: each argument is one input of the decision
pub fn check(
    catalog: &Catalog,
    route: &Route,
    method: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
    client_ip: IpAddr,
    now: u64,
    opts: &outpost_auth::VerifyOptions,
    revocations: &EdgeRevocations,
    tokens: &EdgeTokenCache,
) -> Result<Access, Error> {
    let account = route.path.account();
    let Some(container) = route.path.container() else {
        return Err(Error::NotFound { what: "container" });
    };
    let Some(info) = catalog.container(account, container) else {
        return Err(Error::NotFound { what: "container" });
    };
    // Decided per request, before any cache lookup: a cached public answer is not served to
    // a referrer the ACL denies (the cache key does not depend on `Referer`).
    let public = info.anonymous_read(route.path.object().is_none(), headers);
    if public && route.path_token.is_none() {
        return Ok(Access::Public);
    }
    let req = AccessRequest {
        method,
        path: &route.path,
        query,
        path_token: route.path_token.as_deref(),
        headers,
        client_ip,
        now,
    };
    match outpost_auth::verify_cached(&req, catalog, revocations, tokens, opts) {
        Ok(g) => Ok(Access::Granted(Box::new(g))),
        // A public object with a bad path token is still public.
        Err(_) if public => Ok(Access::Public),
        Err(e) => Err(Error::Denied {
            reason: e.deny_reason(),
        }),
    }
}

/// Outpost tokens (URL tokens, session cookies) verified recently, so the next request with the
/// same token (every segment of a stream, every cache hit) skips the MAC and the claims JSON.
///
/// Keyed by `account/token` (accounts never contain `/`), and `outpost_auth::verify_cached`
/// uses an entry only for that exact account and token, so a token verified for one account is
/// never reused for another. Time, address, scope, revocation and the key (still known, usable
/// and the same secret) are checked on every request, so catalog key changes and revocations
/// take effect at once. Bounded by memory; an entry lives until its token expires, at most
/// [`TOKEN_CACHE_MAX_TTL`].
#[derive(Debug, Clone)]
pub struct EdgeTokenCache {
    tokens: Cache<String, Arc<VerifiedToken>>,
}

/// Approximate memory the token cache may use, in bytes.
pub const TOKEN_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Longest an entry stays in the token cache, whatever its token's expiry.
pub const TOKEN_CACHE_MAX_TTL: Duration = Duration::from_secs(600);

/// Expires an entry when its token does (or after [`TOKEN_CACHE_MAX_TTL`]).
struct UntilTokenExpiry;

impl moka::Expiry<String, Arc<VerifiedToken>> for UntilTokenExpiry {
    fn expire_after_create(
        &self,
        _: &String,
        token: &Arc<VerifiedToken>,
        _: Instant,
    ) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(Duration::from_secs(token.expires().saturating_sub(now)).min(TOKEN_CACHE_MAX_TTL))
    }
}

impl Default for EdgeTokenCache {
    fn default() -> Self {
        EdgeTokenCache {
            tokens: Cache::builder()
                .max_capacity(TOKEN_CACHE_BYTES)
                .weigher(|k: &String, v: &Arc<VerifiedToken>| {
                    u32::try_from(k.len() + v.approx_bytes()).unwrap_or(u32::MAX)
                })
                .expire_after(UntilTokenExpiry)
                .build(),
        }
    }
}

/// Runs `f` with the cache key of `token` for `account`, built in a per-thread buffer so a
/// lookup does not allocate.
fn with_token_key<R>(account: &str, token: &str, f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static KEY: RefCell<String> = const { RefCell::new(String::new()) };
    }
    KEY.with(|k| {
        let mut k = k.borrow_mut();
        k.clear();
        k.push_str(account);
        k.push('/');
        k.push_str(token);
        f(&k)
    })
}

impl TokenCache for EdgeTokenCache {
    fn get(&self, account: &str, token: &str) -> Option<Arc<VerifiedToken>> {
        with_token_key(account, token, |k| self.tokens.get(k))
    }

    fn insert(&self, account: &str, token: &str, verified: Arc<VerifiedToken>) {
        self.tokens.insert(format!("{account}/{token}"), verified);
    }
}

/// Revocations kept per kind. Past this many the cache evicts, and an evicted revocation no
/// longer applies until the next restart reloads it from the origin's snapshot (documented limit).
pub const MAX_REVOCATIONS: u64 = 1_000_000;

/// Revoked sessions and users, filled from the change feed and the origin's snapshot.
#[derive(Debug, Clone)]
pub struct EdgeRevocations {
    /// `account/session-id` → revoked.
    sessions: Cache<String, ()>,
    /// `account/user-id` → revoked at (epoch seconds): sessions started before are revoked.
    users: Cache<String, u64>,
}

impl Default for EdgeRevocations {
    fn default() -> Self {
        // No time-to-live: sessions (`access.session_max`) and URL tokens with a session id can
        // live longer than any fixed window, and a forgotten revocation would quietly re-enable
        // them. The origin keeps every revocation and the snapshot reloads them at start.
        EdgeRevocations {
            sessions: Cache::builder().max_capacity(MAX_REVOCATIONS).build(),
            users: Cache::builder().max_capacity(MAX_REVOCATIONS).build(),
        }
    }
}

impl EdgeRevocations {
    /// Revokes a session.
    pub fn revoke_session(&self, account: &str, session_id: &str) {
        self.sessions.insert(format!("{account}/{session_id}"), ());
    }

    /// Revokes every session of a user started before `at`.
    pub fn revoke_user(&self, account: &str, user_id: &str, at: u64) {
        self.users.insert(format!("{account}/{user_id}"), at);
    }
}

impl Revocations for EdgeRevocations {
    fn is_revoked(
        &self,
        account: &str,
        session_id: Option<&str>,
        user_id: Option<&str>,
        issued_at: u64,
    ) -> bool {
        if let Some(s) = session_id {
            if self.sessions.contains_key(&format!("{account}/{s}")) {
                return true;
            }
        }
        if let Some(u) = user_id {
            if let Some(at) = self.users.get(&format!("{account}/{u}")) {
                return issued_at <= at;
            }
        }
        false
    }
}

/// Grants already redeemed, shared by all of the edge's workers, each remembered until it
/// expires.
#[derive(Debug, Clone)]
pub struct EdgeSeenGrants {
    seen: Cache<String, u64>,
}

impl Default for EdgeSeenGrants {
    fn default() -> Self {
        EdgeSeenGrants {
            // Grants are short-lived; an hour covers any sane grant lifetime plus leeway.
            seen: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }
}

impl SeenGrants for EdgeSeenGrants {
    fn insert_if_new(&self, account: &str, nonce: &str, expires: u64) -> bool {
        let entry = self
            .seen
            .entry(format!("{account}/{nonce}"))
            .or_insert_with(|| expires);
        entry.is_fresh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_single_use() {
        let s = EdgeSeenGrants::default();
        assert!(s.insert_if_new("a", "n1", 10));
        assert!(!s.insert_if_new("a", "n1", 10));
        assert!(s.insert_if_new("b", "n1", 10));
    }

    #[test]
    fn user_revocation_covers_earlier_sessions() {
        let r = EdgeRevocations::default();
        r.revoke_user("a", "u1", 100);
        assert!(r.is_revoked("a", None, Some("u1"), 99));
        assert!(!r.is_revoked("a", None, Some("u1"), 101));
        r.revoke_session("a", "s1");
        assert!(r.is_revoked("a", Some("s1"), None, 0));
        assert!(!r.is_revoked("b", Some("s1"), None, 0));
    }
}

/// Grace for ranges of an object whose earlier range was authorized: a player that started a
/// video with a token (or session) that expires mid-playback may go on fetching ranges of
/// *that object* for `grace` past the expiry. Nothing else is extended: another object, a
/// request without a `Range`, or a credential other than the one that was authorized
/// (compared by a fingerprint of the path token, `X-Outpost-Token`, query string and `Cookie`
/// header) is denied with `expired` as usual, and a revoked session or user gets no grace.
/// `grace = 0` (the default) turns it off.
#[derive(Debug, Clone)]
pub struct EdgeRangeGrace {
    grace: u64,
    seen: Cache<u64, Arc<VerifiedGrant>>,
    hasher: std::hash::RandomState,
}

impl EdgeRangeGrace {
    /// Grace of `grace` (whole seconds) past a credential's expiry.
    pub fn new(grace: Duration) -> EdgeRangeGrace {
        EdgeRangeGrace {
            grace: grace.as_secs(),
            seen: Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Whether grace is on.
    pub fn enabled(&self) -> bool {
        self.grace > 0
    }

    /// The fingerprint of a request's object and credential (keyed SipHash, so it cannot be
    /// aimed at another entry from outside).
    pub fn fingerprint(
        &self,
        route: &Route,
        query: Option<&str>,
        headers: &http::HeaderMap,
    ) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.hasher.build_hasher();
        route.path.as_str().hash(&mut h);
        route.path_token.as_deref().hash(&mut h);
        query.hash(&mut h);
        for name in [outpost_auth::TOKEN_HEADER, "cookie"] {
            headers
                .get(name)
                .map(http::HeaderValue::as_bytes)
                .hash(&mut h);
        }
        h.finish()
    }

    /// Notes an authorized range request.
    pub fn remember(&self, fingerprint: u64, grant: &VerifiedGrant) {
        if self.enabled() && grant.expires() != u64::MAX {
            self.seen.insert(fingerprint, Arc::new(grant.clone()));
        }
    }

    /// The grant of an earlier authorized range of the same object and credential, if `now`
    /// is within the grace after its expiry and it was not revoked since.
    pub fn allow(
        &self,
        fingerprint: u64,
        now: u64,
        revocations: &EdgeRevocations,
    ) -> Option<Box<VerifiedGrant>> {
        if !self.enabled() {
            return None;
        }
        let g = self.seen.get(&fingerprint)?;
        if now > g.expires().saturating_add(self.grace) {
            self.seen.invalidate(&fingerprint);
            return None;
        }
        let issued = g.claims().and_then(|c| c.issued_at).unwrap_or(0);
        if outpost_auth::Revocations::is_revoked(
            revocations,
            g.account(),
            g.session_id(),
            g.user_id(),
            issued,
        ) {
            return None;
        }
        Some(Box::new((*g).clone()))
    }
}
