//! Container requests: HEAD/GET (listing), PUT, POST, DELETE, and read ACLs.

use axum::body::Body;
use axum::response::Response;
use http::{Method, StatusCode};

use super::{blocking, deny, listing, meta_updates, put_meta, set, status, Req, Shared};
use crate::db::ContainerRow;
use crate::store::validate::check_acl;
use crate::{Error, Result};

/// System headers stored with a container besides `X-Container-Meta-*`.
const CONTAINER_SYS: &[&str] = &["x-container-read", "x-container-write"];

/// The referrer/listing grants of an `X-Container-Read` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadAcl {
    /// `.r:*`: anyone may read objects.
    pub public: bool,
    /// `.rlistings`: anyone allowed to read may list.
    pub listings: bool,
}

impl ReadAcl {
    /// Parses a comma-separated ACL. Unknown elements (user grants, referrer lists other than
    /// `*`) grant nothing here.
    pub fn parse(acl: Option<&str>) -> ReadAcl {
        let mut out = ReadAcl::default();
        for item in acl.unwrap_or("").split(',').map(str::trim) {
            match item {
                ".r:*" | ".referrer:*" => out.public = true,
                ".rlistings" => out.listings = true,
                _ => {}
            }
        }
        out
    }

    /// The ACL of a container row.
    pub fn of(c: &ContainerRow) -> ReadAcl {
        ReadAcl::parse(c.meta.get("x-container-read").map(String::as_str))
    }
}

pub(super) async fn handle(st: &Shared, r: Req, container: &str) -> Result<Response> {
    let account = r.path.account().to_owned();
    let owner = r.ident.owns(&account);
    let c = container.to_owned();
    match r.method {
        Method::HEAD | Method::GET => get(st, r, account, c, owner).await,
        _ if !owner => Err(deny(&r.ident)),
        Method::PUT => {
            let updates = meta_updates(&r.headers, "x-container-meta-", CONTAINER_SYS)?;
            check_acl(&updates)?;
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
            let updates = meta_updates(&r.headers, "x-container-meta-", CONTAINER_SYS)?;
            check_acl(&updates)?;
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

async fn get(
    st: &Shared,
    r: Req,
    account: String,
    container: String,
    owner: bool,
) -> Result<Response> {
    let mut params = listing::params(&r.query)?;
    params.live_at = Some(st.store.clock.wall_secs());
    let fmt = super::wants(&r);
    let list = r.method == Method::GET;
    let (a, c) = (account.clone(), container.clone());
    let row = blocking(st, move |s| s.db.get_container(&a, &c)).await?;
    let Some(row) = row else {
        return Err(if owner {
            Error::NotFound { what: "container" }
        } else {
            deny(&r.ident)
        });
    };
    let acl = ReadAcl::of(&row);
    if !(owner || acl.public && acl.listings) {
        return Err(deny(&r.ident));
    }
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
    if owner {
        put_meta(h, &row.meta);
    } else {
        // Non-owners see user metadata but not ACLs.
        let visible = row
            .meta
            .iter()
            .filter(|(k, _)| k.starts_with("x-container-meta-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        put_meta(h, &visible);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_parsing() {
        assert_eq!(
            ReadAcl::parse(Some(".r:*,.rlistings")),
            ReadAcl {
                public: true,
                listings: true
            }
        );
        assert_eq!(
            ReadAcl::parse(Some(" .r:* ")),
            ReadAcl {
                public: true,
                listings: false
            }
        );
        assert_eq!(ReadAcl::parse(Some("acct:user")), ReadAcl::default());
        assert_eq!(ReadAcl::parse(None), ReadAcl::default());
    }
}
