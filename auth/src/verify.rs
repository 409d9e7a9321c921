//! The one entry point that turns a request into a [`VerifiedGrant`] or a typed denial.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::cache::{self, NoTokenCache, TokenCache, VerifiedToken};
use crate::tempurl::{self, TempUrlOptions, TempUrlQuery};
use crate::token::{Claims, UnverifiedToken};
use crate::{pubcookie, Error, KeyStore, Revocations, StoragePath, TokenKey, TokenKind};

/// Default clock leeway, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

/// Query parameter that carries an Outpost token.
pub const TOKEN_QUERY_PARAM: &str = "op_token";

/// Header that carries an Outpost token (also accepted: `Authorization: Outpost <token>`).
pub const TOKEN_HEADER: &str = "x-outpost-token";

/// First path segment of a path-carried token: `/.op/<token>/rest/of/path`.
pub const PATH_TOKEN_SEGMENT: &str = ".op";

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// Swift `temp_url_sig` / `temp_url_expires`.
    SwiftTempUrl,
    /// Outpost token in a `/.op/<token>/` path prefix.
    PathToken,
    /// Outpost token in the `op_token` query parameter.
    QueryToken,
    /// Outpost token in `X-Outpost-Token` or `Authorization: Outpost`.
    HeaderToken,
    /// Session cookie (pubcookie).
    SessionCookie,
    /// Login grant of the pubcookie flow.
    Grant,
}

impl Mechanism {
    /// Stable name for logs: `tempurl`, `token-path`, `token-query`, `token-header`, `cookie`,
    /// `grant`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mechanism::SwiftTempUrl => "tempurl",
            Mechanism::PathToken => "token-path",
            Mechanism::QueryToken => "token-query",
            Mechanism::HeaderToken => "token-header",
            Mechanism::SessionCookie => "cookie",
            Mechanism::Grant => "grant",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Verification settings.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Seconds of clock leeway on both ends of validity (default 5).
    pub leeway: u64,
    /// Accept sha1 tempurls (default off).
    pub allow_sha1: bool,
    /// Session cookie name (default [`pubcookie::DEFAULT_COOKIE_NAME`]).
    pub cookie_name: String,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            leeway: DEFAULT_LEEWAY_SECS,
            allow_sha1: false,
            cookie_name: pubcookie::DEFAULT_COOKIE_NAME.to_owned(),
        }
    }
}

/// The request as the edge or origin sees it after routing.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Storage path the request resolved to (whatever domain it came on).
    pub path: &'a StoragePath,
    /// Query string without `?`.
    pub query: Option<&'a str>,
    /// Token from a `/.op/<token>/` path prefix (see [`split_path_token`]).
    pub path_token: Option<&'a str>,
    /// Request headers (`X-Outpost-Token`, `Authorization`, `Cookie`).
    pub headers: &'a http::HeaderMap,
    /// Client address.
    pub client_ip: IpAddr,
    /// Now, epoch seconds.
    pub now: u64,
}

/// Proof that a request carried a valid credential. Only this crate constructs it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedGrant {
    pub(crate) mechanism: Mechanism,
    pub(crate) account: String,
    pub(crate) expires: u64,
    /// Shared with the [`TokenCache`] entry, when there is one.
    pub(crate) claims: Option<Arc<Claims<'static>>>,
}

impl fmt::Debug for VerifiedGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedGrant")
            .field("mechanism", &self.mechanism)
            .field("account", &self.account)
            .field("expires", &self.expires)
            .field("session_id", &self.session_id())
            .finish_non_exhaustive()
    }
}

impl VerifiedGrant {
    /// Which mechanism the credential used.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }
    /// The account the grant is for.
    pub fn account(&self) -> &str {
        &self.account
    }
    /// When the grant expires (for sessions: the idle deadline), epoch seconds.
    pub fn expires(&self) -> u64 {
        self.expires
    }
    /// The Outpost token claims (absent for Swift tempurls).
    pub fn claims(&self) -> Option<&Claims<'static>> {
        self.claims.as_deref()
    }
    /// Session id, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.claims.as_ref()?.session_id.as_deref()
    }
    /// User id, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.claims.as_ref()?.user_id.as_deref()
    }
    /// True if this grant also allows `method` on the account-relative `path` (used to
    /// authorize sub-requests, e.g. HLS segments under a playlist's token).
    pub fn allows(&self, method: &str, path: &str) -> bool {
        match &self.claims {
            Some(c) => c.scope_for(method, path).is_some(),
            None => false,
        }
    }
}

/// Splits `/.op/<token>/rest` into the token and `/rest`. `None` when the path does not start
/// with the `.op` segment. The token itself is never percent-encoded (it is base64url).
pub fn split_path_token(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/.op/")?;
    match rest.find('/') {
        Some(i) => Some((&rest[..i], &rest[i..])),
        None => Some((rest, "/")),
    }
}

/// Verifies the request's credentials.
///
/// Credentials are tried in this order, and the first that verifies wins: path token, query
/// token, Swift tempurl, header token, session cookie. If none verifies, the error of the first
/// one presented is returned (so a stale cookie never hides a bad signed URL's reason), or
/// [`Error::NoCredential`] when there was none.
///
/// # Errors
/// A typed denial; map it with [`Error::deny_reason`].
pub fn verify(
    req: &AccessRequest<'_>,
    keys: &impl KeyStore,
    revocations: &impl Revocations,
    opts: &VerifyOptions,
) -> Result<VerifiedGrant, Error> {
    verify_cached(req, keys, revocations, &NoTokenCache, opts)
}

/// [`verify()`] with a cache of verified Outpost tokens (URL tokens and session cookies; not
/// tempurls, whose HMAC covers the method and path of each request).
///
/// A token found in `cache` skips splitting, the MAC and the claims JSON; everything that
/// depends on the request or may have changed since is checked again, in the same order and
/// with the same errors as without a cache: the key is still known, usable and the same secret,
/// then kind, account, validity window, address, scope and revocation. A token that fails any
/// check is never cached. The result is always the same as [`verify()`]'s.
///
/// # Errors
/// As [`verify()`].
pub fn verify_cached(
    req: &AccessRequest<'_>,
    keys: &impl KeyStore,
    revocations: &impl Revocations,
    cache: &impl TokenCache,
    opts: &VerifyOptions,
) -> Result<VerifiedGrant, Error> {
    let mut first_err: Option<Error> = None;
    let mut note = |e: Error| {
        if first_err.is_none() {
            first_err = Some(e);
        }
    };
    if let Some(t) = req.path_token {
        match verify_token(
            req,
            t,
            TokenKind::Url,
            Mechanism::PathToken,
            keys,
            revocations,
            cache,
            opts,
        ) {
            Ok(g) => return Ok(g),
            Err(e) => note(e),
        }
    }
    if let Some(q) = req.query {
        if let Some(t) = crate::query::param(q, TOKEN_QUERY_PARAM) {
            match verify_token(
                req,
                &t,
                TokenKind::Url,
                Mechanism::QueryToken,
                keys,
                revocations,
                cache,
                opts,
            ) {
                Ok(g) => return Ok(g),
                Err(e) => note(e),
            }
        }
        match verify_tempurl(req, q, keys, opts) {
            Ok(Some(g)) => return Ok(g),
            Ok(None) => {}
            Err(e) => note(e),
        }
    }
    if let Some(t) = header_token(req.headers) {
        match verify_token(
            req,
            t,
            TokenKind::Url,
            Mechanism::HeaderToken,
            keys,
            revocations,
            cache,
            opts,
        ) {
            Ok(g) => return Ok(g),
            Err(e) => note(e),
        }
    }
    for t in pubcookie::cookie_values(req.headers, &opts.cookie_name) {
        match verify_token(
            req,
            t,
            TokenKind::Session,
            Mechanism::SessionCookie,
            keys,
            revocations,
            cache,
            opts,
        ) {
            Ok(g) => return Ok(g),
            Err(e) => note(e),
        }
    }
    Err(first_err.unwrap_or(Error::NoCredential))
}

fn header_token(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Outpost "))
        .map(str::trim)
}

fn verify_tempurl(
    req: &AccessRequest<'_>,
    query: &str,
    keys: &impl KeyStore,
    opts: &VerifyOptions,
) -> Result<Option<VerifiedGrant>, Error> {
    let Some(q) = TempUrlQuery::parse(query)? else {
        return Ok(None);
    };
    let container = req
        .path
        .container()
        .ok_or(Error::WrongScope { what: "path" })?;
    let candidates = keys.tempurl_keys(req.path.account(), container);
    let t_opts = TempUrlOptions {
        allow_sha1: opts.allow_sha1,
        leeway: opts.leeway,
    };
    let g = tempurl::verify(
        &q,
        req.method,
        req.path,
        req.client_ip,
        req.now,
        candidates,
        t_opts,
    )?;
    Ok(Some(VerifiedGrant {
        mechanism: Mechanism::SwiftTempUrl,
        account: req.path.account().to_owned(),
        expires: g.expires,
        claims: None,
    }))
}

/// Verifies an Outpost token of `kind` for this request: key, signature, kind, account, time,
/// address, scope, revocation, in that order.
#[allow(clippy::too_many_arguments)] // reason: private helper; the arguments are the check's inputs
pub(crate) fn verify_token(
    req: &AccessRequest<'_>,
    token: &str,
    kind: TokenKind,
    mechanism: Mechanism,
    keys: &impl KeyStore,
    revocations: &impl Revocations,
    cache: &impl TokenCache,
    opts: &VerifyOptions,
) -> Result<VerifiedGrant, Error> {
    let account = req.path.account();
    let claims = check_token(
        token,
        account,
        kind,
        mechanism,
        req.client_ip,
        req.now,
        keys,
        opts.leeway,
        cache,
    )?;
    let path = req.path.account_relative();
    if claims.scope_for(req.method, path).is_none() {
        let what = if claims
            .scopes
            .iter()
            .any(|s| crate::pattern::matches(&s.pattern, path))
        {
            "method"
        } else {
            "path"
        };
        return Err(Error::WrongScope { what });
    }
    check_revoked(&claims, revocations)?;
    Ok(VerifiedGrant {
        mechanism,
        account: account.to_owned(),
        expires: claims.expires,
        claims: Some(claims),
    })
}

/// Signature, kind, account, time and address checks shared by every token use.
///
/// With a `cache`, a hit is used only for the exact token and account, and only while the key
/// it was verified with is still known, usable and the same secret; otherwise the token is
/// verified from scratch. Either way the checks after the signature run on every call.
#[allow(clippy::too_many_arguments)] // reason: private helper; the arguments are the check's inputs
pub(crate) fn check_token(
    token: &str,
    account: &str,
    kind: TokenKind,
    mechanism: Mechanism,
    client_ip: IpAddr,
    now: u64,
    keys: &impl KeyStore,
    leeway: u64,
    cache: &impl TokenCache,
) -> Result<Arc<Claims<'static>>, Error> {
    if cache.is_enabled() {
        if let Some(hit) = cache
            .get(account, token)
            .filter(|h| &*h.token == token && h.claims.account == account)
        {
            let key = find_key(keys, account, hit.key_id(), now, leeway)?;
            if key.tag() == &hit.key_tag {
                check_claims(&hit.claims, kind, account, now, leeway)?;
                if !hit.allows_ip(client_ip) {
                    return Err(Error::WrongIp { ip: client_ip });
                }
                return Ok(Arc::clone(&hit.claims));
            }
            // Same key id, another secret: the key was replaced; verify from scratch.
        }
    }
    let unverified = UnverifiedToken::split(token, mechanism)?;
    let key = find_key(keys, account, unverified.key_id(), now, leeway)?;
    let (claims, nets) = unverified.verify_owned(key, mechanism)?;
    check_claims(&claims, kind, account, now, leeway)?;
    if !cache::allows_ip(&nets, client_ip) {
        return Err(Error::WrongIp { ip: client_ip });
    }
    let claims = Arc::new(claims);
    if cache.is_enabled() {
        let entry = VerifiedToken {
            token: token.into(),
            key_id_len: unverified.key_id_len(),
            key_tag: *key.tag(),
            claims: Arc::clone(&claims),
            nets,
        };
        cache.insert(account, token, Arc::new(entry));
    }
    Ok(claims)
}

fn find_key<'k>(
    keys: &'k impl KeyStore,
    account: &str,
    key_id: &str,
    now: u64,
    leeway: u64,
) -> Result<&'k TokenKey, Error> {
    keys.token_keys(account)
        .and_then(|ks| ks.get(key_id, now, leeway))
        .ok_or_else(|| Error::UnknownKey {
            key_id: key_id.to_owned(),
        })
}

/// The checks of verified claims that depend on the request: kind, account, validity window.
/// (Address ranges are checked by the caller, against ranges it parsed once.)
fn check_claims(
    claims: &Claims<'_>,
    kind: TokenKind,
    account: &str,
    now: u64,
    leeway: u64,
) -> Result<(), Error> {
    if claims.kind != kind {
        return Err(Error::WrongKind {
            expected: kind,
            found: claims.kind,
        });
    }
    if claims.account != account {
        return Err(Error::WrongScope { what: "account" });
    }
    if let Some(nb) = claims.not_before {
        // Sessions keep their start time in `nbf`; it is never in the future for them.
        if now.saturating_add(leeway) < nb {
            return Err(Error::NotYetValid {
                not_before: nb,
                now,
            });
        }
    }
    if now > claims.expires.saturating_add(leeway) {
        return Err(Error::Expired {
            expired_at: claims.expires,
            now,
        });
    }
    if let Some(hard) = claims.hard_expires.filter(|_| kind == TokenKind::Session) {
        if now > hard.saturating_add(leeway) {
            return Err(Error::Expired {
                expired_at: hard,
                now,
            });
        }
    }
    Ok(())
}

pub(crate) fn check_revoked(
    claims: &Claims<'_>,
    revocations: &impl Revocations,
) -> Result<(), Error> {
    if claims.session_id.is_none() && claims.user_id.is_none() {
        return Ok(());
    }
    let started = claims.not_before.or(claims.issued_at).unwrap_or(0);
    if revocations.is_revoked(
        &claims.account,
        claims.session_id.as_deref(),
        claims.user_id.as_deref(),
        started,
    ) {
        return Err(Error::Revoked);
    }
    Ok(())
}
