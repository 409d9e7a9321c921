//! Swift auth v1 (`GET /auth/v1.0`, tempauth style) and the issued-token table.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

use super::{blocking, set, Identity, Shared};
use crate::{Error, Result};

/// Most live tokens kept; the oldest are dropped past this.
const MAX_TOKENS: usize = 100_000;

/// Tokens issued by `/auth/v1.0`, valid until they expire. In memory: after a restart clients
/// re-authenticate on their first 401, as every Swift client does.
#[derive(Debug, Default)]
pub struct AuthTokens {
    map: Mutex<HashMap<String, (Identity, Instant)>>,
}

impl AuthTokens {
    /// Issues a token for `ident` valid for `ttl`.
    ///
    /// # Errors
    /// [`Error::Task`] if the random source fails.
    pub fn issue(&self, ident: Identity, ttl: Duration) -> Result<String> {
        let mut r = [0u8; 16];
        getrandom::fill(&mut r).map_err(|_| Error::Task)?;
        let token = format!("AUTH_tk{}", hex::encode(r));
        let now = Instant::now();
        let mut m = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= MAX_TOKENS {
            m.retain(|_, (_, exp)| *exp > now);
        }
        m.insert(token.clone(), (ident, now + ttl));
        Ok(token)
    }

    /// The identity behind a token, if it is known and unexpired.
    pub fn lookup(&self, token: &str) -> Option<Identity> {
        let mut m = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match m.get(token) {
            Some((ident, exp)) if *exp > Instant::now() => Some(ident.clone()),
            Some(_) => {
                m.remove(token);
                None
            }
            None => None,
        }
    }
}

/// Prefix of cluster-wide (signed) tokens.
const SIGNED_PREFIX: &str = "AUTH_tks";

fn token_mac(payload: &[u8], secret: &[u8]) -> Option<Vec<u8>> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).ok()?;
    m.update(b"outpost-swift-token-v1\n");
    m.update(payload);
    Some(m.finalize().into_bytes().to_vec())
}

/// Cluster mode: a token any node holding the cluster secret can check without a shared
/// table: `AUTH_tks<hex(expires \n rank \n account:user)>.<hex(HMAC-SHA256)>`, where rank is
/// `1` for a reseller admin, `0` for an account admin and `m` for a plain user (a node
/// older than plain users reads `m` as an admin: upgrade every node before configuring
/// `admin = false`).
pub fn issue_signed(ident: &Identity, expires: u64, secret: &[u8]) -> Option<String> {
    let (name, rank) = match ident {
        Identity::User { name, reseller, .. } => (name, if *reseller { "1" } else { "0" }),
        Identity::Member { name, .. } => (name, "m"),
        _ => return None,
    };
    let payload = format!("{expires}\n{rank}\n{name}");
    let mac = token_mac(payload.as_bytes(), secret)?;
    Some(format!(
        "{SIGNED_PREFIX}{}.{}",
        hex::encode(payload),
        hex::encode(mac)
    ))
}

/// Checks a token from [`issue_signed`]: MAC (constant time), then expiry.
pub fn verify_signed(token: &str, now: u64, secret: &[u8]) -> Option<Identity> {
    let (payload_hex, mac_hex) = token.strip_prefix(SIGNED_PREFIX)?.split_once('.')?;
    let payload = hex::decode(payload_hex).ok()?;
    let mac = hex::decode(mac_hex).ok()?;
    let want = token_mac(&payload, secret)?;
    if !bool::from(want.as_slice().ct_eq(&mac)) {
        return None;
    }
    let text = String::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let expires: u64 = parts.next()?.parse().ok()?;
    let rank = parts.next()?;
    let name = parts.next()?.to_owned();
    if expires <= now {
        return None;
    }
    let account = name.split_once(':')?.0.to_owned();
    Some(match rank {
        "m" => Identity::Member { account, name },
        _ => Identity::User {
            account,
            name,
            reseller: rank == "1",
        },
    })
}

/// `GET /auth/v1.0` with `X-Auth-User: account:user` and `X-Auth-Key`.
pub async fn auth_v1(State(st): State<Shared>, headers: HeaderMap) -> Response {
    match auth(&st, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn auth(st: &Shared, headers: &HeaderMap) -> Result<Response> {
    let get = |a: &str, b: &str| {
        headers
            .get(a)
            .or_else(|| headers.get(b))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(user), Some(key)) = (
        get("x-auth-user", "x-storage-user"),
        get("x-auth-key", "x-storage-pass"),
    ) else {
        return Err(Error::Unauthorized {
            reason: "X-Auth-User and X-Auth-Key are required",
        });
    };
    let Some((account, name)) = user.split_once(':') else {
        return Err(Error::Unauthorized {
            reason: "X-Auth-User must be account:user",
        });
    };
    // Compare every configured key so timing does not reveal which users exist.
    let mut found = None;
    for u in &st.store.cfg.users {
        let key_ok = bool::from(u.key.as_bytes().ct_eq(key.as_bytes()));
        if key_ok && u.account == account && u.user == name {
            found = Some(u.clone());
        }
    }
    let Some(u) = found else {
        tracing::warn!(target: "audit", user = %user, "auth failed");
        return Err(Error::Unauthorized {
            reason: "invalid user or key",
        });
    };
    let acct = u.account.clone();
    let ts = st.store.clock.now();
    let created = blocking(st, move |s| s.db.ensure_account(&acct, ts)).await?;
    if let Some(cl) = st.cluster.as_ref().filter(|_| created) {
        // Cluster mode: the account row is on every node before the client's next request.
        crate::cluster::broadcast::account(cl, &u.account, ts).await;
    }
    let ttl = st.store.cfg.token_ttl;
    let ident = if u.admin || u.reseller_admin {
        Identity::User {
            account: u.account.clone(),
            name: user.clone(),
            reseller: u.reseller_admin,
        }
    } else {
        Identity::Member {
            account: u.account.clone(),
            name: user.clone(),
        }
    };
    // In a cluster the client's next request may reach another node: tokens are signed with
    // the cluster secret so every node can check them.
    let token = if st.cluster.is_some() {
        let expires = st.store.clock.wall_secs() + ttl.as_secs();
        let key = st.store.cfg.credentials.peer_secret().ok_or(Error::Task)?;
        issue_signed(&ident, expires, key.as_bytes()).ok_or(Error::Task)?
    } else {
        st.tokens.issue(ident, ttl)?
    };
    let base = match &st.store.cfg.public_url {
        Some(b) => b.clone(),
        None => {
            let host = headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("127.0.0.1");
            format!("http://{host}")
        }
    };
    let storage_url = format!("{base}/v1/AUTH_{}", u.account);
    let body =
        serde_json::json!({"storage": {"default": "local", "local": storage_url}}).to_string();
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    set(h, "x-auth-token", &token);
    set(h, "x-storage-token", &token);
    set(h, "x-storage-url", &storage_url);
    set(h, "x-auth-token-expires", ttl.as_secs());
    set(h, "content-type", "application/json; charset=utf-8");
    tracing::info!(target: "audit", user = %user, "auth ok");
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_only_with_the_secret_and_before_expiry() {
        let ident = Identity::User {
            account: "demo".into(),
            name: "demo:alice".into(),
            reseller: false,
        };
        let t = issue_signed(&ident, 1000, b"cluster-secret-0123456789").unwrap();
        assert!(t.starts_with("AUTH_tks"));
        assert_eq!(
            verify_signed(&t, 999, b"cluster-secret-0123456789"),
            Some(ident)
        );
        assert_eq!(verify_signed(&t, 1000, b"cluster-secret-0123456789"), None);
        assert_eq!(verify_signed(&t, 999, b"another-secret-0123456789"), None);
        // Any change to the payload breaks the MAC.
        let (p, m) = t
            .strip_prefix(SIGNED_PREFIX)
            .unwrap()
            .split_once('.')
            .unwrap();
        let mut payload = hex::decode(p).unwrap();
        let last = payload.len() - 1;
        payload[last] ^= 1;
        let forged = format!("{SIGNED_PREFIX}{}.{m}", hex::encode(payload));
        assert_eq!(
            verify_signed(&forged, 999, b"cluster-secret-0123456789"),
            None
        );
        assert_eq!(verify_signed("AUTH_tks.zz", 1, b"x"), None);
        let member = Identity::Member {
            account: "demo".into(),
            name: "demo:bob".into(),
        };
        let t = issue_signed(&member, 1000, b"cluster-secret-0123456789").unwrap();
        assert_eq!(
            verify_signed(&t, 999, b"cluster-secret-0123456789"),
            Some(member)
        );
        assert!(issue_signed(&Identity::Service(crate::request::Role::Peer), 1, b"x").is_none());
    }
}
