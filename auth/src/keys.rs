//! Secrets, token signing keys with ids and validity windows, and the lookups `verify` needs.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Longest key id, in bytes. Ids are `[A-Za-z0-9_-]+`.
pub const MAX_KEY_ID_BYTES: usize = 64;

/// Shortest secret accepted for Outpost token keys, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Secret key material. Never printed: `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string (used as its UTF-8 bytes, like Swift's tempurl keys).
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// Checks a key id: 1..=64 bytes of `[A-Za-z0-9_-]`.
pub fn is_valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The on-disk / on-wire form of a token key (TOML or JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKeySpec {
    /// Key id, carried in every token signed with the key.
    pub id: String,
    /// The secret.
    pub secret: Secret,
    /// Tokens signed with this key verify from this time on (epoch seconds), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// Tokens signed with this key stop verifying after this time (epoch seconds), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
}

/// A token signing key, ready to use: the HMAC state after absorbing the key is kept, so each
/// signature costs only the message's compression rounds.
#[derive(Clone)]
pub struct TokenKey {
    spec: TokenKeySpec,
    mac: Hmac<Sha256>,
    /// A MAC of a fixed string under this key: names the secret without revealing it, so a
    /// cached verification is reused only while the same secret is still behind the key id.
    tag: [u8; 32],
}

impl TokenKey {
    /// Builds a key.
    ///
    /// # Errors
    /// [`crate::Error::BadKey`] for an invalid id or a secret shorter than
    /// [`MIN_SECRET_BYTES`].
    pub fn new(spec: TokenKeySpec) -> Result<Self, crate::Error> {
        if !is_valid_key_id(&spec.id) {
            return Err(crate::Error::BadKey {
                reason: "key id must be 1-64 characters of A-Z a-z 0-9 _ -",
            });
        }
        if spec.secret.expose().len() < MIN_SECRET_BYTES {
            return Err(crate::Error::BadKey {
                reason: "secret must be at least 16 bytes",
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(spec.secret.expose())
            .expect("HMAC accepts keys of any length");
        let mut tagger = mac.clone();
        tagger.update(b"outpost-auth token key tag v1");
        let tag = tagger.finalize().into_bytes().into();
        Ok(TokenKey { spec, mac, tag })
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The spec this key was built from.
    pub fn spec(&self) -> &TokenKeySpec {
        &self.spec
    }

    /// True if tokens signed with this key are accepted at `now` (with `leeway` seconds).
    pub fn is_usable(&self, now: u64, leeway: u64) -> bool {
        self.spec.not_before.is_none_or(|nb| now + leeway >= nb)
            && self
                .spec
                .not_after
                .is_none_or(|na| now <= na.saturating_add(leeway))
    }

    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    pub(crate) fn tag(&self) -> &[u8; 32] {
        &self.tag
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("id", &self.spec.id)
            .field("not_before", &self.spec.not_before)
            .field("not_after", &self.spec.not_after)
            .finish_non_exhaustive()
    }
}

/// Several keys of one account, looked up by id, so keys can rotate with overlap.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<TokenKey>,
}

impl KeySet {
    /// Builds a key set from specs.
    ///
    /// # Errors
    /// [`crate::Error::BadKey`] for an invalid key or a repeated id.
    pub fn new(specs: impl IntoIterator<Item = TokenKeySpec>) -> Result<Self, crate::Error> {
        let mut keys: Vec<TokenKey> = Vec::new();
        for spec in specs {
            if keys.iter().any(|k| k.id() == spec.id) {
                return Err(crate::Error::BadKey {
                    reason: "duplicate key id",
                });
            }
            keys.push(TokenKey::new(spec)?);
        }
        Ok(KeySet { keys })
    }

    /// The key with this id if it is usable at `now`.
    pub fn get(&self, id: &str, now: u64, leeway: u64) -> Option<&TokenKey> {
        self.keys
            .iter()
            .find(|k| k.id() == id && k.is_usable(now, leeway))
    }

    /// The key to sign new tokens with at `now`: the usable key with the latest `not_before`
    /// (keys without one count as oldest), so a freshly added key takes over once it starts.
    pub fn signing_key(&self, now: u64) -> Option<&TokenKey> {
        self.keys
            .iter()
            .filter(|k| k.is_usable(now, 0))
            .max_by_key(|k| k.spec.not_before.unwrap_or(0))
    }

    /// All keys.
    pub fn keys(&self) -> &[TokenKey] {
        &self.keys
    }

    /// True if the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Up to four Swift tempurl keys: two of the account, two of the container.
#[derive(Debug, Clone, Copy, Default)]
pub struct TempUrlKeys<'a> {
    /// `X-Account-Meta-Temp-URL-Key` and `-Key-2`, then `X-Container-Meta-Temp-URL-Key` and
    /// `-Key-2`; unset slots are `None`.
    pub keys: [Option<&'a [u8]>; 4],
}

impl<'a> TempUrlKeys<'a> {
    /// Builds from up to four keys; more are ignored.
    pub fn from_slice(keys: &[&'a [u8]]) -> Self {
        let mut out = TempUrlKeys::default();
        for (slot, k) in out.keys.iter_mut().zip(keys) {
            *slot = Some(k);
        }
        out
    }

    /// The keys that are set.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.keys.iter().flatten().copied()
    }
}

/// Where `verify` finds keys. Implemented by the edge and origin over what they loaded.
pub trait KeyStore {
    /// The Outpost token key set of an account.
    fn token_keys(&self, account: &str) -> Option<&KeySet>;
    /// The tempurl keys that may have signed a URL into this container.
    fn tempurl_keys(&self, account: &str, container: &str) -> TempUrlKeys<'_>;
}

/// Where `verify` learns about revoked sessions and users.
pub trait Revocations {
    /// True if the session (or every session of the user) issued at `issued_at` is revoked.
    fn is_revoked(
        &self,
        account: &str,
        session_id: Option<&str>,
        user_id: Option<&str>,
        issued_at: u64,
    ) -> bool;
}

/// A [`Revocations`] that revokes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRevocations;

impl Revocations for NoRevocations {
    fn is_revoked(&self, _: &str, _: Option<&str>, _: Option<&str>, _: u64) -> bool {
        false
    }
}

/// The "seen" set of single-use grants, shared by all workers of an edge.
pub trait SeenGrants {
    /// Records the grant `nonce` of `account` until `expires`; returns `false` if it was
    /// already recorded (a replay).
    fn insert_if_new(&self, account: &str, nonce: &str, expires: u64) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, nb: Option<u64>, na: Option<u64>) -> TokenKeySpec {
        TokenKeySpec {
            id: id.into(),
            secret: Secret::new("0123456789abcdef-secret"),
            not_before: nb,
            not_after: na,
        }
    }

    #[test]
    fn rotation_overlaps() {
        let ks =
            KeySet::new([spec("old", None, Some(2000)), spec("new", Some(1500), None)]).unwrap();
        assert_eq!(ks.signing_key(1000).unwrap().id(), "old");
        assert_eq!(ks.signing_key(1600).unwrap().id(), "new");
        assert!(
            ks.get("old", 1600, 5).is_some(),
            "both verify during the overlap"
        );
        assert!(ks.get("new", 1600, 5).is_some());
        assert!(
            ks.get("old", 2006, 5).is_none(),
            "retired after not_after + leeway"
        );
        assert!(ks.get("new", 1494, 5).is_none());
        assert!(ks.get("nope", 1600, 5).is_none());
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(KeySet::new([spec("a b", None, None)]).is_err());
        assert!(KeySet::new([spec("a", None, None), spec("a", None, None)]).is_err());
        let mut s = spec("a", None, None);
        s.secret = Secret::new("short");
        assert!(TokenKey::new(s).is_err());
    }

    #[test]
    fn secrets_never_print() {
        let k = TokenKey::new(spec("k1", None, None)).unwrap();
        let dbg = format!("{k:?} {:?}", k.spec());
        assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
    }
}
