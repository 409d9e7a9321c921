//! Container requests: HEAD/GET (listing), PUT, POST, DELETE, and read ACLs.

use axum::body::Body;
use axum::response::Response;
use http::{Method, StatusCode};

use super::{
    access, blocking, container_acl, deny, listing, meta_updates, put_meta, set, status, Req,
    Shared,
};
use crate::access::{Access, Target, OWNER_HEADERS};
use crate::db::Meta;
use crate::store::validate::clean_acls;
use crate::{Error, Result};

/// System headers stored with a container besides `X-Container-Meta-*`.
const CONTAINER_SYS: &[&str] = &["x-container-read", "x-container-write"];

pub(super) async fn handle(st: &Shared, r: Req, container: &str) -> Result<Response> {
    let account = r.path.account().to_owned();
    let c = container.to_owned();
    if matches!(r.method, Method::HEAD | Method::GET) {
        return get(st, r, account, c).await;
    }
    if matches!(r.method, Method::PUT | Method::POST) {
        // Swift's container_quotas refuses these before anyone is authorized.
        super::quota::check_container(&r.headers)?;
    }
    // A container's own writes consult no container ACL: owners, and account ACLs.
    // (A non-owner's ACL headers were dropped before dispatch.)
    if !access(st, &r, Target::Container, None).await?.allowed() {
        return Err(deny(&r.ident));
    }
    match r.method {
        Method::PUT => {
            let mut updates = meta_updates(&r.headers, "x-container-meta-", CONTAINER_SYS)?;
            clean_acls(&mut updates)?;
            let ts = r.write_ts(&st.store)?;
            let created = st.store.put_container(&account, &c, ts, updates).await?;
            tracing::info!(target: "audit", user = r.ident.label(), account, container = c, action = "container-put");
            Ok(status(if created {
                StatusCode::CREATED
            } else {
                StatusCode::ACCEPTED
            }))
        }
        Method::POST => {
            let mut updates = meta_updates(&r.headers, "x-container-meta-", CONTAINER_SYS)?;
            clean_acls(&mut updates)?;
            let ts = r.write_ts(&st.store)?;
            st.store.post_container(&account, &c, ts, updates).await?;
            tracing::info!(target: "audit", user = r.ident.label(), account, container = c, action = "container-post");
            Ok(status(StatusCode::NO_CONTENT))
        }
        Method::DELETE => {
            let ts = r.write_ts(&st.store)?;
            st.store.delete_container(&account, &c, ts).await?;
            tracing::info!(target: "audit", user = r.ident.label(), account, container = c, action = "container-delete");
            Ok(status(StatusCode::NO_CONTENT))
        }
        _ => Err(Error::MethodNotAllowed),
    }
}

async fn get(st: &Shared, r: Req, account: String, container: String) -> Result<Response> {
    let mut params = listing::params(&r.query)?;
    params.live_at = Some(st.store.clock.wall_secs());
    let fmt = super::wants(&r);
    let list = r.method == Method::GET;
    let (a, c) = (account.clone(), container.clone());
    let row = blocking(st, move |s| s.db.get_container(&a, &c)).await?;
    let acl = container_acl(row.as_ref(), &r.method);
    let granted = access(st, &r, Target::Container, acl).await?;
    if !granted.allowed() {
        return Err(deny(&r.ident));
    }
    let Some(row) = row else {
        return Err(Error::NotFound { what: "container" });
    };
    let entries = if list {
        let (a, c) = (account.clone(), container.clone());
        blocking(st, move |s| s.db.list_objects(&a, &c, &params)).await?
    } else {
        Vec::new()
    };
    let no_content =
        r.method == Method::HEAD || (entries.is_empty() && fmt == listing::Format::Plain);
    let mut resp = if no_content {
        status(StatusCode::NO_CONTENT)
    } else {
        Response::new(Body::from(listing::objects(&entries, fmt, &container)))
    };
    let h = resp.headers_mut();
    set(h, "x-container-object-count", row.object_count);
    set(h, "x-container-bytes-used", row.bytes_used);
    set(h, "x-timestamp", row.ts);
    // Swift: the container's last PUT/POST, rounded up to the second.
    set(h, "last-modified", row.ts.http_date());
    set(h, "accept-ranges", "bytes");
    // One policy for now; `swift list --lh` shows it per container.
    set(h, "x-storage-policy", "default");
    set(h, "content-type", fmt.content_type());
    if !r.query.contains_key("format") {
        // The format follows `Accept` (Swift's listing_formats says so too).
        set(h, "vary", "Accept");
    }
    put_meta(h, &visible_meta(&row.meta, granted));
    Ok(resp)
}

/// The metadata a client sees: everything for owners, all but [`OWNER_HEADERS`] for others.
pub(super) fn visible_meta(meta: &Meta, granted: Access) -> Meta {
    if granted == Access::Owner {
        return meta.clone();
    }
    meta.iter()
        .filter(|(k, _)| !OWNER_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
