//! Pubcookies: the login grant → session cookie flow, sliding sessions, and cookie handling.
//!
//! 1. The app signs a short-lived, single-use **grant** ([`crate::TokenKind::Grant`], with a
//!    `jti`) and sends the browser to `/.outpost/login?grant=<token>&next=<path>` on the CDN
//!    domain.
//! 2. The edge calls [`redeem_grant`] (signature, expiry, single use through a [`SeenGrants`]
//!    set), then [`issue_session`], sets [`IssuedSession::cookie`] and redirects to
//!    [`safe_next`]`(next)`.
//! 3. Each request with the cookie is verified by [`crate::verify`]; when more than half of the
//!    idle window has passed, [`reissue`] gives a fresh cookie (never past the hard expiry).
//!
//! Session tokens are ordinary Outpost tokens of kind `session`; `nbf` holds the session's start
//! so that revoking a user also catches sessions re-issued after the revocation was decided.

use std::borrow::Cow;
use std::net::IpAddr;

use cookie::{Cookie, SameSite};

use crate::keys::SeenGrants;
use crate::token::{self, Claims};
use crate::verify::{check_revoked, check_token};
use crate::{Error, KeyStore, Mechanism, Revocations, TokenKey, TokenKind, VerifiedGrant};

/// Default session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "outpost_session";

/// Login path on every CDN domain.
pub const LOGIN_PATH: &str = "/.outpost/login";

/// Session lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session dies after this many seconds without a request (default 30 minutes).
    pub idle_timeout: u64,
    /// A session dies this many seconds after login whatever happens (default 12 hours).
    pub max_lifetime: u64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_timeout: 30 * 60,
            max_lifetime: 12 * 3600,
        }
    }
}

/// A freshly signed session.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedSession {
    /// The session token (the cookie's value).
    pub token: String,
    /// Idle deadline, epoch seconds.
    pub expires: u64,
    /// Hard expiry, epoch seconds.
    pub hard_expires: u64,
}

impl std::fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSession")
            .field("expires", &self.expires)
            .field("hard_expires", &self.hard_expires)
            .finish_non_exhaustive()
    }
}

impl IssuedSession {
    /// The `Set-Cookie` value: `HttpOnly; Secure; SameSite=Lax; Path=<path>`, living until the
    /// hard expiry (the token itself enforces the idle deadline).
    pub fn cookie(&self, name: &str, path: &str, now: u64) -> Cookie<'static> {
        let max_age = self.hard_expires.saturating_sub(now);
        Cookie::build((name.to_owned(), self.token.clone()))
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Lax)
            .path(path.to_owned())
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age).unwrap_or(i64::MAX),
            ))
            .build()
    }
}

/// Verifies a login grant for `account` and records it as used.
///
/// # Errors
/// Any token denial, [`Error::WrongKind`] for a non-grant, [`Error::GrantReplayed`] when the
/// grant was seen before, [`Error::Revoked`].
#[allow(clippy::too_many_arguments)] // reason: each argument is an independent input of the check
pub fn redeem_grant(
    grant: &str,
    account: &str,
    client_ip: IpAddr,
    now: u64,
    leeway: u64,
    keys: &impl KeyStore,
    seen: &impl SeenGrants,
    revocations: &impl Revocations,
) -> Result<VerifiedGrant, Error> {
    let claims = check_token(
        grant,
        account,
        TokenKind::Grant,
        Mechanism::Grant,
        client_ip,
        now,
        keys,
        leeway,
        &crate::NoTokenCache,
    )?;
    check_revoked(&claims, revocations)?;
    let nonce = claims.nonce.as_deref().ok_or(Error::Malformed {
        mechanism: Mechanism::Grant,
        what: "grant needs a jti",
    })?;
    if !seen.insert_if_new(account, nonce, claims.expires.saturating_add(leeway)) {
        return Err(Error::GrantReplayed);
    }
    Ok(VerifiedGrant {
        mechanism: Mechanism::Grant,
        account: account.to_owned(),
        expires: claims.expires,
        claims: Some(claims),
    })
}

/// Claims of a new session for `account` over `scopes`, starting `now`.
pub fn session_claims<'a>(
    account: &'a str,
    scopes: Vec<token::ScopeClaim<'a>>,
    session_id: Option<&'a str>,
    user_id: Option<&'a str>,
    hard_expires: u64,
    idle_timeout: u64,
    now: u64,
) -> Claims<'a> {
    Claims {
        account: Cow::Borrowed(account),
        kind: TokenKind::Session,
        scopes,
        not_before: Some(now),
        expires: now.saturating_add(idle_timeout).min(hard_expires),
        issued_at: Some(now),
        hard_expires: Some(hard_expires),
        idle_timeout: Some(idle_timeout),
        ips: Vec::new(),
        session_id: session_id.map(Cow::Borrowed),
        user_id: user_id.map(Cow::Borrowed),
        nonce: None,
    }
}

/// Issues the session a redeemed grant asks for. The grant's `hxp` and `idl` may shorten the
/// policy's limits, never lengthen them; its scopes, address ranges, user and session ids carry
/// over (the session id defaults to the grant's `jti`).
///
/// # Errors
/// [`Error::WrongKind`] when `grant` is not a redeemed grant; [`Error::Malformed`] if the
/// session cannot be signed.
pub fn issue_session(
    grant: &VerifiedGrant,
    key: &TokenKey,
    now: u64,
    policy: SessionPolicy,
) -> Result<IssuedSession, Error> {
    let claims = match (grant.mechanism(), grant.claims()) {
        (Mechanism::Grant, Some(c)) => c,
        _ => {
            return Err(Error::WrongKind {
                expected: TokenKind::Grant,
                found: TokenKind::Session,
            })
        }
    };
    let hard = now
        .saturating_add(policy.max_lifetime)
        .min(claims.hard_expires.unwrap_or(u64::MAX));
    let idle = claims
        .idle_timeout
        .unwrap_or(policy.idle_timeout)
        .min(policy.idle_timeout);
    let mut session = session_claims(
        &claims.account,
        claims.scopes.clone(),
        claims.session_id.as_deref().or(claims.nonce.as_deref()),
        claims.user_id.as_deref(),
        hard,
        idle,
        now,
    );
    session.ips = claims.ips.clone();
    sign_session(&session, key)
}

/// Signs session claims (what an app sharing the parent domain does to set the cookie itself).
///
/// # Errors
/// [`Error::Malformed`] for claims that are not a valid session.
pub fn sign_session(claims: &Claims<'_>, key: &TokenKey) -> Result<IssuedSession, Error> {
    if claims.kind != TokenKind::Session {
        return Err(Error::WrongKind {
            expected: TokenKind::Session,
            found: claims.kind,
        });
    }
    Ok(IssuedSession {
        token: token::sign(claims, key)?,
        expires: claims.expires,
        hard_expires: claims.hard_expires.unwrap_or(claims.expires),
    })
}

/// True when a verified session should be re-issued: more than half of its idle window has
/// passed and its idle deadline is still short of its hard expiry.
pub fn needs_reissue(session: &VerifiedGrant, now: u64) -> bool {
    let Some(c) = session.claims().filter(|c| c.kind == TokenKind::Session) else {
        return false;
    };
    let (Some(iat), Some(idle), Some(hard)) = (c.issued_at, c.idle_timeout, c.hard_expires) else {
        return false;
    };
    now.saturating_sub(iat) > idle / 2 && c.expires < hard
}

/// Re-issues a verified session if [`needs_reissue`] says so: same scopes, ids, start and hard
/// expiry; a new idle deadline `min(now + idle, hard)`.
///
/// # Errors
/// [`Error::Malformed`] if the session cannot be signed.
pub fn reissue(
    session: &VerifiedGrant,
    key: &TokenKey,
    now: u64,
) -> Result<Option<IssuedSession>, Error> {
    if !needs_reissue(session, now) {
        return Ok(None);
    }
    let Some(c) = session.claims() else {
        return Ok(None);
    };
    let mut next = c.clone();
    let idle = c.idle_timeout.unwrap_or(0);
    let hard = c.hard_expires.unwrap_or(c.expires);
    next.issued_at = Some(now);
    next.expires = now.saturating_add(idle).min(hard);
    sign_session(&next, key).map(Some)
}

/// Values of the cookie `name` in all `Cookie` headers (parsed with the `cookie` crate;
/// unparsable pairs are skipped).
pub fn cookie_values<'h>(
    headers: &'h http::HeaderMap,
    name: &'h str,
) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(move |c| c.name_raw() == Some(name))
        .filter_map(|c| c.value_raw())
}

/// Checks a login `next` target: a same-site absolute path only (no scheme, no `//host`,
/// no backslash, no control bytes), so the login endpoint is never an open redirect.
///
/// # Errors
/// [`Error::BadRedirect`].
pub fn safe_next(next: &str) -> Result<&str, Error> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.contains('\\')
        && next.len() <= crate::path::MAX_PATH_BYTES
        && !next.bytes().any(|b| b < 0x20 || b == 0x7f);
    if ok {
        Ok(next)
    } else {
        Err(Error::BadRedirect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_site() {
        assert_eq!(
            safe_next("/videos/x.m3u8?a=1").unwrap(),
            "/videos/x.m3u8?a=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil",
            "evil",
            "",
            "/a\r\nSet-Cookie: x",
        ] {
            assert_eq!(safe_next(bad), Err(Error::BadRedirect), "{bad:?}");
        }
    }

    #[test]
    fn cookie_attributes() {
        let s = IssuedSession {
            token: "op1.k.p.s".into(),
            expires: 1_100,
            hard_expires: 2_000,
        };
        let c = s.cookie(DEFAULT_COOKIE_NAME, "/videos", 1_000).to_string();
        for part in [
            "outpost_session=op1.k.p.s",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/videos",
            "Max-Age=1000",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
    }

    #[test]
    fn reads_cookie_among_others() {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; outpost_session=tok1".parse().unwrap(),
        );
        h.append(
            http::header::COOKIE,
            "outpost_session=tok2;b=2".parse().unwrap(),
        );
        let v: Vec<&str> = cookie_values(&h, DEFAULT_COOKIE_NAME).collect();
        assert_eq!(v, ["tok1", "tok2"]);
    }
}
