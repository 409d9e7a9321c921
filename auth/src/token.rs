//! Outpost tokens, version 1: `op1.<key-id>.<payload>.<signature>`.
//!
//! - `payload` is the unpadded base64url encoding of the claims as compact JSON
//!   ([`Claims`]; field order as declared, no whitespace, unknown fields rejected);
//! - `signature` is the unpadded base64url HMAC-SHA256, with the key named by `key-id`, of the
//!   ASCII string `op1.<key-id>.<payload>` (everything before the last dot).
//!
//! The MAC covers the exact bytes sent, so verification never re-encodes anything. The format is
//! URL-, cookie- and path-safe (`[A-Za-z0-9._-]`). `docs/tokens.md` has a worked example that
//! reproduces a token with Python's standard library.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::keys::is_valid_key_id;
use crate::{pattern, Error, Mechanism, TokenKey};

/// The version tag every v1 token starts with.
pub const VERSION_TAG: &str = "op1";

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Most scopes a token may carry.
pub const MAX_SCOPES: usize = 16;

/// Most address ranges a token may carry.
pub const MAX_IPS: usize = 16;

/// The HTTP methods a scope may allow.
pub const METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"];

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A signed URL (query, header or path segment).
    Url,
    /// A short-lived, single-use login grant for the pubcookie flow.
    Grant,
    /// A session cookie issued by the edge (or by an app sharing the parent domain).
    Session,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::Url => "url",
            TokenKind::Grant => "grant",
            TokenKind::Session => "session",
        })
    }
}

impl FromStr for TokenKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "url" => Ok(TokenKind::Url),
            "grant" => Ok(TokenKind::Grant),
            "session" => Ok(TokenKind::Session),
            _ => Err(Error::Malformed {
                mechanism: Mechanism::QueryToken,
                what: "unknown token kind",
            }),
        }
    }
}

/// One scope: a path pattern (see [`crate::PathPattern`]) over the account-relative path
/// `/<container>/<object>`, and the methods it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeClaim<'a> {
    /// The path pattern.
    #[serde(rename = "p", borrow)]
    pub pattern: Cow<'a, str>,
    /// Comma-separated methods, e.g. `GET,HEAD`; absent means `GET,HEAD`. `HEAD` is always
    /// allowed where `GET` is.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none", borrow)]
    pub methods: Option<Cow<'a, str>>,
}

impl ScopeClaim<'_> {
    /// True if this scope allows `method` on `path`.
    pub fn allows(&self, method: &str, path: &str) -> bool {
        self.allows_method(method) && pattern::matches(&self.pattern, path)
    }

    /// True if this scope allows `method`.
    pub fn allows_method(&self, method: &str) -> bool {
        let list = self.methods.as_deref().unwrap_or("GET,HEAD");
        list.split(',')
            .any(|m| m == method || (method == "HEAD" && m == "GET"))
    }

    /// An owned copy.
    pub fn into_owned(self) -> ScopeClaim<'static> {
        ScopeClaim {
            pattern: Cow::Owned(self.pattern.into_owned()),
            methods: self.methods.map(|m| Cow::Owned(m.into_owned())),
        }
    }
}

/// The claims of a token. Field order is the canonical JSON order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims<'a> {
    /// Account the token is for (without `AUTH_`).
    #[serde(rename = "acc", borrow)]
    pub account: Cow<'a, str>,
    /// Kind.
    #[serde(rename = "knd")]
    pub kind: TokenKind,
    /// Scopes, at least one.
    #[serde(rename = "scp", borrow)]
    pub scopes: Vec<ScopeClaim<'a>>,
    /// Not valid before (epoch seconds). For sessions: when the session started; kept across
    /// re-issues so user revocation catches re-issued sessions too.
    #[serde(rename = "nbf", default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// Expiry (epoch seconds). For sessions: the idle deadline.
    #[serde(rename = "exp")]
    pub expires: u64,
    /// Issued at (epoch seconds). Sessions: time of the last (re-)issue.
    #[serde(rename = "iat", default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<u64>,
    /// Sessions: hard expiry that no re-issue extends. Grants: requested session hard expiry.
    #[serde(rename = "hxp", default, skip_serializing_if = "Option::is_none")]
    pub hard_expires: Option<u64>,
    /// Sessions and grants: idle timeout in seconds.
    #[serde(rename = "idl", default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// Client address ranges (CIDR or single address, v4 or v6); empty means any.
    #[serde(rename = "ips", default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<Cow<'a, str>>,
    /// Session id (revocable).
    #[serde(
        rename = "sid",
        default,
        skip_serializing_if = "Option::is_none",
        borrow
    )]
    pub session_id: Option<Cow<'a, str>>,
    /// User id (revocable: all of a user's sessions).
    #[serde(
        rename = "uid",
        default,
        skip_serializing_if = "Option::is_none",
        borrow
    )]
    pub user_id: Option<Cow<'a, str>>,
    /// Unique id: required for grants (single use).
    #[serde(
        rename = "jti",
        default,
        skip_serializing_if = "Option::is_none",
        borrow
    )]
    pub nonce: Option<Cow<'a, str>>,
}

impl<'a> Claims<'a> {
    /// Minimal claims: one scope, expiry, kind.
    pub fn new(account: &'a str, kind: TokenKind, scope: &'a str, expires: u64) -> Self {
        Claims {
            account: Cow::Borrowed(account),
            kind,
            scopes: vec![ScopeClaim {
                pattern: Cow::Borrowed(scope),
                methods: None,
            }],
            not_before: None,
            expires,
            issued_at: None,
            hard_expires: None,
            idle_timeout: None,
            ips: Vec::new(),
            session_id: None,
            user_id: None,
            nonce: None,
        }
    }

    /// Checks the claims are well-formed (what [`sign`] refuses to sign and verification
    /// refuses to accept).
    ///
    /// # Errors
    /// [`Error::Malformed`] naming the broken rule.
    pub fn validate(&self, mechanism: Mechanism) -> Result<(), Error> {
        self.validate_nets(mechanism).map(drop)
    }

    /// [`Claims::validate`], returning the address ranges parsed on the way.
    pub(crate) fn validate_nets(&self, mechanism: Mechanism) -> Result<Vec<IpNet>, Error> {
        let bad = |what| Err(Error::Malformed { mechanism, what });
        if self.account.is_empty() || self.account.contains('/') {
            return bad("account is empty or contains '/'");
        }
        if self.scopes.is_empty() || self.scopes.len() > MAX_SCOPES {
            return bad("token needs 1 to 16 scopes");
        }
        for s in &self.scopes {
            if pattern::validate(&s.pattern).is_err() {
                return bad("invalid scope pattern");
            }
            if let Some(m) = &s.methods {
                if m.split(',').any(|m| !METHODS.contains(&m)) {
                    return bad("unknown method in scope");
                }
            }
        }
        if self.ips.len() > MAX_IPS {
            return bad("too many address ranges");
        }
        let mut nets = Vec::with_capacity(self.ips.len());
        for ip in &self.ips {
            match parse_net(ip) {
                Some(n) => nets.push(n),
                None => return bad("invalid address range"),
            }
        }
        if self.not_before.is_some_and(|nb| nb > self.expires) {
            return bad("not-before is after expiry");
        }
        if self.kind == TokenKind::Grant && self.nonce.as_deref().is_none_or(str::is_empty) {
            return bad("grant needs a jti");
        }
        if self.kind == TokenKind::Session
            && (self.issued_at.is_none()
                || self.hard_expires.is_none()
                || self.idle_timeout.is_none())
        {
            return bad("session needs iat, hxp and idl");
        }
        Ok(nets)
    }

    /// True if `ip` is inside one of the ranges (or there are none).
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.ips.is_empty()
            || self
                .ips
                .iter()
                .any(|r| parse_net(r).is_some_and(|n| n.contains(&ip)))
    }

    /// The first scope allowing `method` on the account-relative `path`, if any.
    pub fn scope_for(&self, method: &str, path: &str) -> Option<&ScopeClaim<'a>> {
        self.scopes.iter().find(|s| s.allows(method, path))
    }

    /// An owned copy.
    pub fn into_owned(self) -> Claims<'static> {
        let own = |c: Option<Cow<'_, str>>| c.map(|c| Cow::Owned(c.into_owned()));
        Claims {
            account: Cow::Owned(self.account.into_owned()),
            kind: self.kind,
            scopes: self
                .scopes
                .into_iter()
                .map(ScopeClaim::into_owned)
                .collect(),
            not_before: self.not_before,
            expires: self.expires,
            issued_at: self.issued_at,
            hard_expires: self.hard_expires,
            idle_timeout: self.idle_timeout,
            ips: self
                .ips
                .into_iter()
                .map(|c| Cow::Owned(c.into_owned()))
                .collect(),
            session_id: own(self.session_id),
            user_id: own(self.user_id),
            nonce: own(self.nonce),
        }
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    IpNet::from_str(s)
        .ok()
        .or_else(|| IpAddr::from_str(s).ok().map(IpNet::from))
}

/// Signs claims with `key`.
///
/// # Errors
/// [`Error::Malformed`] if the claims are not well-formed (see [`Claims::validate`]) or the
/// token would be longer than [`MAX_TOKEN_BYTES`].
pub fn sign(claims: &Claims<'_>, key: &TokenKey) -> Result<String, Error> {
    claims.validate(Mechanism::QueryToken)?;
    let json = serde_json::to_vec(claims).map_err(|_| Error::Malformed {
        mechanism: Mechanism::QueryToken,
        what: "claims do not serialize",
    })?;
    let mut token = String::with_capacity(json.len() * 4 / 3 + 64);
    token.push_str(VERSION_TAG);
    token.push('.');
    token.push_str(key.id());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&json, &mut token);
    let mut mac = key.mac();
    mac.update(token.as_bytes());
    let sig = mac.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut token);
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::Malformed {
            mechanism: Mechanism::QueryToken,
            what: "token too long",
        });
    }
    Ok(token)
}

/// A token split into its parts; its signature is not checked yet.
#[derive(Clone, Copy)]
pub struct UnverifiedToken<'t> {
    key_id: &'t str,
    signed: &'t str,
    payload: &'t str,
    sig: &'t str,
}

impl fmt::Debug for UnverifiedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedToken")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl<'t> UnverifiedToken<'t> {
    /// Splits a token; checks only its shape.
    ///
    /// # Errors
    /// [`Error::Malformed`] when it is too long, has the wrong version tag or number of parts,
    /// or a part with characters outside base64url.
    pub fn split(token: &'t str, mechanism: Mechanism) -> Result<Self, Error> {
        let bad = |what| Error::Malformed { mechanism, what };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(bad("token too long"));
        }
        let (signed, sig) = token.rsplit_once('.').ok_or(bad("not an Outpost token"))?;
        let mut parts = signed.splitn(3, '.');
        let (Some(tag), Some(key_id), Some(payload)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not an Outpost token"));
        };
        if tag != VERSION_TAG {
            return Err(bad("unknown token version"));
        }
        if !is_valid_key_id(key_id) {
            return Err(bad("invalid key id"));
        }
        let b64 = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !b64(payload) || !b64(sig) {
            return Err(bad("payload or signature is not base64url"));
        }
        Ok(UnverifiedToken {
            key_id,
            signed,
            payload,
            sig,
        })
    }

    /// The key id the token names.
    pub fn key_id(&self) -> &'t str {
        self.key_id
    }

    /// Length of the key id.
    pub(crate) fn key_id_len(&self) -> usize {
        self.key_id.len()
    }

    /// What [`UnverifiedToken::verify`] then [`VerifiedPayload::claims`] do, without keeping
    /// the payload: the claims come back owned, with their address ranges parsed.
    pub(crate) fn verify_owned(
        &self,
        key: &TokenKey,
        mechanism: Mechanism,
    ) -> Result<(Claims<'static>, Vec<IpNet>), Error> {
        self.check_mac(key, mechanism)?;
        let bad = || Error::Malformed {
            mechanism,
            what: "payload is not base64url",
        };
        // Typical payloads decode on the stack; longer ones the allocating way.
        let mut buf = [0u8; 512];
        let heap;
        let json = if self.payload.len() / 4 * 3 + 3 <= buf.len() {
            let len = URL_SAFE_NO_PAD
                .decode_slice(self.payload, &mut buf)
                .map_err(|_| bad())?;
            &buf[..len]
        } else {
            heap = URL_SAFE_NO_PAD.decode(self.payload).map_err(|_| bad())?;
            &heap[..]
        };
        let claims = parse_claims(json, mechanism)?;
        let nets = claims.validate_nets(mechanism)?;
        Ok((claims.into_owned(), nets))
    }

    fn check_mac(&self, key: &TokenKey, mechanism: Mechanism) -> Result<(), Error> {
        let mut sig = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(self.sig, &mut sig) {
            Ok(32) => {}
            _ => return Err(Error::BadSignature { mechanism }),
        }
        let mut mac = key.mac();
        mac.update(self.signed.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| Error::BadSignature { mechanism })
    }

    /// Checks the signature with `key` (constant time) and decodes the claims.
    ///
    /// # Errors
    /// [`Error::BadSignature`] or [`Error::Malformed`].
    pub fn verify(&self, key: &TokenKey, mechanism: Mechanism) -> Result<VerifiedPayload, Error> {
        self.check_mac(key, mechanism)?;
        let json = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| Error::Malformed {
                mechanism,
                what: "payload is not base64url",
            })?;
        Ok(VerifiedPayload { json })
    }
}

/// The JSON payload of a token whose signature checked out.
#[derive(Debug)]
pub struct VerifiedPayload {
    json: Vec<u8>,
}

impl VerifiedPayload {
    /// Decodes and validates the claims.
    ///
    /// # Errors
    /// [`Error::Malformed`] for JSON that is not valid claims.
    pub fn claims(&self, mechanism: Mechanism) -> Result<Claims<'_>, Error> {
        let claims = parse_claims(&self.json, mechanism)?;
        claims.validate(mechanism)?;
        Ok(claims)
    }
}

fn parse_claims(json: &[u8], mechanism: Mechanism) -> Result<Claims<'_>, Error> {
    serde_json::from_slice(json).map_err(|_| Error::Malformed {
        mechanism,
        what: "payload is not valid claims JSON",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Secret, TokenKeySpec};

    fn key() -> TokenKey {
        TokenKey::new(TokenKeySpec {
            id: "k1".into(),
            secret: Secret::new("0123456789abcdef0123456789abcdef"),
            not_before: None,
            not_after: None,
        })
        .unwrap()
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let mut c = Claims::new("test", TokenKind::Url, "/videos/**", 1_999_999_999);
        c.ips.push("10.0.0.0/8".into());
        c.session_id = Some("s1".into());
        let t = sign(&c, &key()).unwrap();
        assert!(t.starts_with("op1.k1."));
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        let u = UnverifiedToken::split(&t, Mechanism::QueryToken).unwrap();
        assert_eq!(u.key_id(), "k1");
        let p = u.verify(&key(), Mechanism::QueryToken).unwrap();
        assert_eq!(p.claims(Mechanism::QueryToken).unwrap(), c);
    }

    #[test]
    fn canonical_json_shape() {
        let c = Claims::new("test", TokenKind::Url, "/videos/**", 1_999_999_999);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"acc":"test","knd":"url","scp":[{"p":"/videos/**"}],"exp":1999999999}"#
        );
    }

    #[test]
    fn tampering_fails() {
        let c = Claims::new("test", TokenKind::Url, "/videos/**", 1_999_999_999);
        let t = sign(&c, &key()).unwrap();
        let forged = Claims::new("test", TokenKind::Url, "/**", 1_999_999_999);
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<&str> = t.split('.').collect();
        let swapped = format!("op1.k1.{forged_payload}.{}", parts[3]);
        let u = UnverifiedToken::split(&swapped, Mechanism::QueryToken).unwrap();
        assert!(matches!(
            u.verify(&key(), Mechanism::QueryToken),
            Err(Error::BadSignature { .. })
        ));
        for bad in [
            "",
            "op1",
            "op2.k1.AAAA.BBBB",
            "op1.k 1.AAAA.BBBB",
            "op1.k1.AA=A.BBBB",
            "op1.k1..BBBB",
        ] {
            assert!(
                UnverifiedToken::split(bad, Mechanism::QueryToken).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn claims_rules() {
        let mut c = Claims::new("test", TokenKind::Grant, "/a", 10);
        assert!(c.validate(Mechanism::Grant).is_err(), "grant needs jti");
        c.nonce = Some("n".into());
        assert!(c.validate(Mechanism::Grant).is_ok());
        c.scopes[0].methods = Some("GET,FETCH".into());
        assert!(c.validate(Mechanism::Grant).is_err());
        c.scopes[0].methods = Some("PUT".into());
        c.ips.push("not-an-ip".into());
        assert!(c.validate(Mechanism::Grant).is_err());
    }

    #[test]
    fn scope_methods() {
        let s = ScopeClaim {
            pattern: "/v".into(),
            methods: None,
        };
        assert!(s.allows("GET", "/v/x") && s.allows("HEAD", "/v/x") && !s.allows("PUT", "/v/x"));
        let s = ScopeClaim {
            pattern: "/v".into(),
            methods: Some("PUT".into()),
        };
        assert!(s.allows("PUT", "/v/x") && !s.allows("GET", "/v/x") && !s.allows("HEAD", "/v/x"));
    }
}
