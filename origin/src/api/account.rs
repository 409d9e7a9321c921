//! Account requests: HEAD/GET (listing), POST (metadata, token keys), PUT/DELETE (reseller).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use outpost_auth::{Secret, TokenKeySpec};
use outpost_proto::feed::RevocationKind;
use outpost_proto::headers;

use super::{
    access, blocking, deny, listing, meta_updates, put_meta, set, status, Identity, Req, Shared,
};
use crate::access::{Access, Target, ACCOUNT_ACL_META};
use crate::db::AccountRow;
use crate::{Error, Result};
use outpost_auth::acl::AccountAcl;

/// Prefix of headers that set Outpost token keys: `X-Account-Outpost-Key-<id>: <secret>`
/// (optionally `; not_before=<epoch>; not_after=<epoch>`). Never returned by HEAD/GET.
const KEY_PREFIX: &str = "x-account-outpost-key-";
const REMOVE_KEY_PREFIX: &str = "x-remove-account-outpost-key-";

pub(super) async fn handle(st: &Shared, r: Req) -> Result<Response> {
    let account = r.path.account().to_owned();
    let reseller = r.ident.is_reseller();
    // Swift's account_quotas answers before anyone is authorized.
    let quotas = match r.method {
        Method::PUT | Method::POST => super::quota::account_updates(&r.headers, reseller)?,
        _ => Vec::new(),
    };
    match r.method {
        Method::PUT | Method::DELETE if !reseller => Err(match r.ident {
            Identity::Anonymous => deny(&r.ident),
            _ => Error::Forbidden {
                reason: "only a reseller admin may create or delete accounts",
            },
        }),
        Method::HEAD | Method::GET => {
            let granted = access(st, &r, Target::Account, None).await?;
            if !granted.allowed() {
                return Err(deny(&r.ident));
            }
            get(st, r, account, granted).await
        }
        _ if access(st, &r, Target::Account, None).await? != Access::Owner => Err(deny(&r.ident)),
        Method::POST => post(st, r, account, quotas).await,
        Method::PUT => {
            let ts = r.write_ts(&st.store)?;
            let mut updates = meta_updates(&r.headers, "x-account-meta-", &[])?;
            updates.extend(acl_update(&r.headers));
            updates.extend(quotas);
            let created = st.store.put_account(&account, ts, updates).await?;
            tracing::info!(target: "audit", user = r.ident.label(), account, action = "account-put");
            Ok(status(if created {
                StatusCode::CREATED
            } else {
                StatusCode::ACCEPTED
            }))
        }
        Method::DELETE => {
            let ts = r.write_ts(&st.store)?;
            st.store.delete_account(&account, ts).await?;
            tracing::info!(target: "audit", user = r.ident.label(), account, action = "account-delete");
            Ok(status(StatusCode::NO_CONTENT))
        }
        _ => Err(Error::MethodNotAllowed),
    }
}

/// The stored form of a (validated: see `guard_owner_headers`) `X-Account-Access-Control`:
/// its canonical JSON, or a removal for the empty ACL.
fn acl_update(h: &HeaderMap) -> Option<(String, Option<String>)> {
    let v = h.get(ACCOUNT_ACL_META)?;
    let acl = AccountAcl::parse(&String::from_utf8_lossy(v.as_bytes())).ok()?;
    let stored = (!acl.is_empty()).then(|| acl.to_header());
    Some((ACCOUNT_ACL_META.to_owned(), stored))
}

fn account_headers(h: &mut HeaderMap, a: &AccountRow, granted: Access) {
    set(h, "x-account-container-count", a.container_count);
    set(h, "x-account-object-count", a.object_count);
    set(h, "x-account-bytes-used", a.bytes_used);
    set(h, "x-timestamp", a.ts);
    put_meta(h, &super::container::visible_meta(&a.meta, granted));
    if !a.token_keys.is_empty() && granted == Access::Owner {
        let ids: Vec<&str> = a.token_keys.iter().map(|k| k.id.as_str()).collect();
        set(h, "x-account-outpost-key-ids", ids.join(", "));
    }
}

async fn get(st: &Shared, r: Req, account: String, granted: Access) -> Result<Response> {
    let params = listing::params(&r.query)?;
    let fmt = super::wants(&r);
    let acct = account.clone();
    let list = r.method == Method::GET;
    let (row, entries) = blocking(st, move |s| {
        let Some(row) = s.db.get_account(&acct)? else {
            return Err(Error::NotFound { what: "account" });
        };
        let entries = if list {
            s.db.list_containers(&acct, &params)?
        } else {
            Vec::new()
        };
        Ok((row, entries))
    })
    .await?;
    let body = listing::containers(&entries, fmt, &account);
    let code = if r.method == Method::HEAD || (entries.is_empty() && fmt == listing::Format::Plain)
    {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = if code == StatusCode::NO_CONTENT {
        status(code)
    } else {
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = code;
        resp
    };
    let h = resp.headers_mut();
    account_headers(h, &row, granted);
    // Swift's account answers carry no Last-Modified (the recorded fixtures show it).
    set(h, "accept-ranges", "bytes");
    set(h, "content-type", fmt.content_type());
    if !r.query.contains_key("format") {
        // The format follows `Accept` (Swift's listing_formats says so too).
        set(h, "vary", "Accept");
    }
    Ok(resp)
}

/// Parses `secret[; not_before=N][; not_after=N]`.
fn parse_key(id: &str, value: &str) -> Result<TokenKeySpec> {
    let bad = |reason| Error::BadHeader {
        name: "x-account-outpost-key-*",
        reason,
    };
    let mut parts = value.split(';').map(str::trim);
    let secret = parts.next().unwrap_or("");
    let mut spec = TokenKeySpec {
        id: id.to_owned(),
        secret: Secret::new(secret),
        not_before: None,
        not_after: None,
    };
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or(bad("attributes are not_before=N or not_after=N"))?;
        let n: u64 = v
            .trim()
            .parse()
            .map_err(|_| bad("times are epoch seconds"))?;
        match k.trim() {
            "not_before" => spec.not_before = Some(n),
            "not_after" => spec.not_after = Some(n),
            _ => return Err(bad("attributes are not_before=N or not_after=N")),
        }
    }
    outpost_auth::TokenKey::new(spec.clone())
        .map_err(|_| bad("key ids are [A-Za-z0-9_-]{1,64} and secrets at least 16 bytes"))?;
    Ok(spec)
}

/// Session and user revocations: `X-Outpost-Revoke-Session: <sid>[, <sid>...]` and
/// `X-Outpost-Revoke-User: <uid>[, ...]` (every session of the user started up to now).
fn revocations(h: &http::HeaderMap) -> Result<Vec<(RevocationKind, String)>> {
    let mut out = Vec::new();
    for (header, kind) in [
        (headers::REVOKE_SESSION, RevocationKind::Session),
        (headers::REVOKE_USER, RevocationKind::User),
    ] {
        for v in h.get_all(header) {
            let v = v.to_str().map_err(|_| Error::BadHeader {
                name: headers::REVOKE_ANY,
                reason: "must be visible ASCII",
            })?;
            for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if id.len() > 256 {
                    return Err(Error::BadHeader {
                        name: headers::REVOKE_ANY,
                        reason: "ids are at most 256 bytes",
                    });
                }
                out.push((kind, id.to_owned()));
            }
        }
    }
    Ok(out)
}

async fn post(
    st: &Shared,
    r: Req,
    account: String,
    quotas: Vec<(String, Option<String>)>,
) -> Result<Response> {
    let ts = r.write_ts(&st.store)?;
    let mut updates = meta_updates(&r.headers, "x-account-meta-", &[])?;
    updates.extend(acl_update(&r.headers));
    updates.extend(quotas);
    let revoke = revocations(&r.headers)?;
    if !revoke.is_empty() {
        let now = st.store.clock.wall_secs();
        let acct = account.clone();
        let ids: Vec<String> = revoke
            .iter()
            .map(|(k, id)| format!("{}:{id}", k.as_str()))
            .collect();
        blocking(st, move |s| {
            for (kind, id) in &revoke {
                s.db.revoke(ts, &acct, *kind, id, now)?;
            }
            Ok(())
        })
        .await?;
        tracing::info!(target: "audit", user = r.ident.label(), account, revoked = ?ids, action = "revoke");
    }
    let mut key_changes: Vec<(String, Option<TokenKeySpec>)> = Vec::new();
    for (name, value) in &r.headers {
        let n = name.as_str();
        if let Some(id) = n.strip_prefix(REMOVE_KEY_PREFIX) {
            key_changes.push((id.to_owned(), None));
        } else if let Some(id) = n.strip_prefix(KEY_PREFIX) {
            let v = value.to_str().map_err(|_| Error::BadHeader {
                name: "x-account-outpost-key-*",
                reason: "must be visible ASCII",
            })?;
            if v.trim().is_empty() {
                key_changes.push((id.to_owned(), None));
            } else {
                key_changes.push((id.to_owned(), Some(parse_key(id, v)?)));
            }
        }
    }
    st.store
        .post_account(&account, ts, updates, key_changes)
        .await?;
    tracing::info!(target: "audit", user = r.ident.label(), account, action = "account-post");
    Ok(status(StatusCode::NO_CONTENT))
}
