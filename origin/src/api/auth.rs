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
    for u in &st.cfg.users {
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
    let ts = st.clock.now();
    blocking(st, move |s| s.db.ensure_account(&acct, ts)).await?;
    let ttl = st.cfg.token_ttl;
    let token = st.tokens.issue(
        Identity::User {
            account: u.account.clone(),
            name: user.clone(),
            reseller: u.reseller_admin,
        },
        ttl,
    )?;
    let base = match &st.cfg.public_url {
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
