//! The parsed Swift request, shared by the two HTTP front-ends (the handlers in `api/` and the
//! cluster proxy in `cluster/proxy.rs`), and the one place that turns its headers into the
//! typed values the store validates ([`ObjectHeaders`], [`MetaUpdate`], [`Expiry`]).
//!
//! Layering: `api/` and `cluster/` import this module; it imports only the store and the
//! crate's plain types, never a handler.

use std::collections::HashMap;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use outpost_auth::StoragePath;

pub use crate::credentials::{Capability, Role};
use crate::hlc::Timestamp;
use crate::store::validate::check_meta;
use crate::store::{Expiry, MetaUpdate, ObjectHeaders, Store};
use crate::{Error, Refusal, Result};

/// Header carrying the internal (cluster/edge) secret.
pub use outpost_proto::headers::INTERNAL as INTERNAL_HEADER;

/// System headers stored with an object besides `X-Object-Meta-*` (Swift's
/// `allowed_headers`): the edge serves `Cache-Control` and `Expires` downstream and caches by
/// them (RFC 9111).
pub const OBJECT_SYS: &[&str] = &[
    "content-disposition",
    "content-encoding",
    "content-language",
    "cache-control",
    "expires",
    "x-robots-tag",
    "x-object-manifest",
];

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No valid credential (may still pass an ACL or a tempurl).
    Anonymous,
    /// An admin user of `account` (tempauth's `.admin`); reseller admins may use every
    /// account.
    User {
        /// The user's account.
        account: String,
        /// `account:user`.
        name: String,
        /// Reseller admin.
        reseller: bool,
    },
    /// A plain user of `account` (`admin = false`): only what container and account ACLs
    /// grant it.
    Member {
        /// The user's account.
        account: String,
        /// `account:user`.
        name: String,
    },
    /// A service holding one of the `[credentials]` secrets: an edge, a peer node, an
    /// operator's tool. What it may do is [`Role::can`].
    Service(Role),
}

impl Identity {
    /// True if this identity has full control of `account`.
    pub fn owns(&self, account: &str) -> bool {
        match self {
            Identity::Anonymous | Identity::Member { .. } => false,
            Identity::User {
                account: a,
                reseller,
                ..
            } => *reseller || a == account,
            Identity::Service(_) => true,
        }
    }

    /// True for a service whose role has capability `c` ([`Role::can`], the one table).
    pub fn can(&self, c: Capability) -> bool {
        matches!(self, Identity::Service(r) if r.can(c))
    }

    /// The groups tempauth gives this identity, which ACLs name: its account, `account:user`,
    /// and for an admin the account id `AUTH_<account>`. Anonymous clients and services have
    /// none (services own every account anyway).
    pub fn groups(&self) -> Vec<String> {
        match self {
            Identity::Anonymous | Identity::Service(_) => Vec::new(),
            Identity::Member { account, name } => vec![account.clone(), name.clone()],
            Identity::User { account, name, .. } => {
                vec![account.clone(), name.clone(), format!("AUTH_{account}")]
            }
        }
    }

    /// True for a client that authenticated (a denial is 403 rather than 401).
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Identity::Anonymous)
    }

    /// A reseller admin or a service (Swift's `reseller_request`): may create accounts and
    /// set their quotas, and is not held to them.
    pub fn is_reseller(&self) -> bool {
        matches!(
            self,
            Identity::User { reseller: true, .. } | Identity::Service(_)
        )
    }

    /// Name for logs.
    pub fn label(&self) -> &str {
        match self {
            Identity::Anonymous => "-",
            Identity::User { name, .. } | Identity::Member { name, .. } => name,
            Identity::Service(Role::Edge) => ".edge",
            Identity::Service(Role::Peer) => ".peer",
            Identity::Service(Role::Admin) => ".admin",
        }
    }
}

/// What a direct (storage-role) request asks the node to store (see [`crate::cluster`]).
pub use outpost_proto::direct::Direct;

/// The parsed parts of a `/v1/...` request.
pub struct Req {
    /// Method.
    pub method: Method,
    /// Storage path.
    pub path: StoragePath,
    /// Raw query string.
    pub raw_query: Option<String>,
    /// Query parameters (first value wins).
    pub query: HashMap<String, String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Who asks.
    pub ident: Identity,
    /// Client address.
    pub client_ip: std::net::IpAddr,
    /// Body (in a mutex only to make `Req` `Sync`; take it with [`Req::take_body`]).
    pub body: std::sync::Mutex<Body>,
    /// Cluster mode: a peer asks this node to apply the request to its own store only.
    pub direct: Option<Direct>,
    /// The write timestamp, when the proxy chose it before calling a local handler.
    pub ts: Option<Timestamp>,
}

impl Req {
    /// Takes the request body (once).
    pub fn take_body(&mut self) -> Body {
        std::mem::take(
            self.body
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The quotas a write of this request is held to: none for a peer's copy (checked
    /// where it was accepted), the container's only for a reseller admin.
    pub fn quotas(&self) -> crate::store::quota::Quotas {
        use crate::store::quota::Quotas;
        if self.direct.is_some() {
            Quotas::Skip
        } else if self.ident.is_reseller() {
            Quotas::Container
        } else {
            Quotas::All
        }
    }

    /// A header as a string, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The timestamp of a write: the one the proxy chose, the authenticated peer's
    /// `X-Timestamp` (replication, cross-datacenter sync), or now.
    ///
    /// # Errors
    /// [`Error::BadHeader`] for a malformed `X-Timestamp` from a peer.
    pub fn write_ts(&self, st: &Store) -> Result<Timestamp> {
        if let Some(ts) = self.ts {
            return Ok(ts);
        }
        let given = match self.header("x-timestamp") {
            Some(v) if self.ident.can(Capability::Storage) => Some(v.parse::<Timestamp>()?),
            _ => None,
        };
        Ok(st.write_ts(given))
    }

    /// The typed values of a new object's PUT.
    ///
    /// # Errors
    /// [`Error::BadHeader`] for a malformed header.
    pub fn object_headers(&self) -> Result<ObjectHeaders> {
        let mut h = object_headers(&self.headers)?;
        // Peers' copies keep the system metadata the writing node stored (never a client's).
        if self.direct.is_some() {
            h.meta.extend(sysmeta_items(&self.headers));
        }
        Ok(h)
    }
}

/// A header as trimmed text.
fn text<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `X-Delete-At` / `X-Delete-After`, parsed (not yet resolved against the clock).
///
/// # Errors
/// [`Error::BadHeader`] for a value that is not a number.
pub fn expiry(h: &HeaderMap) -> Result<Option<Expiry>> {
    if let Some(v) = text(h, "x-delete-at") {
        // Swift takes any integer; a negative one is simply in the past.
        let t: i64 = v
            .parse()
            .map_err(|_| Error::Refused(Refusal::NonIntegerDeleteAt))?;
        let t = u64::try_from(t).map_err(|_| Error::Refused(Refusal::DeleteAtInPast))?;
        return Ok(Some(Expiry::At(t)));
    }
    if let Some(v) = text(h, "x-delete-after") {
        let d: i64 = v
            .parse()
            .map_err(|_| Error::Refused(Refusal::NonIntegerDeleteAfter))?;
        let d = u64::try_from(d).map_err(|_| Error::Refused(Refusal::DeleteAfterInPast))?;
        return Ok(Some(Expiry::After(d)));
    }
    Ok(None)
}

/// Metadata items from headers with `prefix` (e.g. `x-container-meta-`), plus the extra
/// system headers listed, and the `X-Remove-<...>` headers, in request order.
pub fn meta_items(headers: &HeaderMap, prefix: &str, extra: &[&str]) -> Vec<MetaUpdate> {
    let mut out = Vec::new();
    let remove_prefix = format!("x-remove-{}", prefix.trim_start_matches("x-"));
    for (name, value) in headers {
        let n = name.as_str();
        if let Some(key) = n.strip_prefix(&remove_prefix) {
            out.push(MetaUpdate::Remove(format!("{prefix}{key}")));
            continue;
        }
        let is_extra = extra.contains(&n);
        let Some(key) = n.strip_prefix(prefix).or(is_extra.then_some(n)) else {
            if let Some(x) = n.strip_prefix("x-remove-") {
                if extra.iter().any(|e| e.strip_prefix("x-") == Some(x)) {
                    out.push(MetaUpdate::Remove(format!("x-{x}")));
                }
            }
            continue;
        };
        let value = value.as_bytes().to_vec();
        out.push(if is_extra {
            MetaUpdate::System {
                name: n.to_owned(),
                value,
            }
        } else {
            MetaUpdate::User {
                name: n.to_owned(),
                key_len: key.len(),
                value,
            }
        });
    }
    out
}

/// `x-object-sysmeta-*` headers as stored system metadata (the S3 multipart ETag): kept only
/// from direct writes between nodes, which carry the cluster secret.
pub fn sysmeta_items(headers: &HeaderMap) -> Vec<MetaUpdate> {
    headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-object-sysmeta-"))
        .map(|(n, v)| MetaUpdate::System {
            name: n.as_str().to_owned(),
            value: v.as_bytes().to_vec(),
        })
        .collect()
}

/// [`meta_items`] checked against Swift's limits.
///
/// # Errors
/// [`Error::BadHeader`].
pub fn meta_updates(
    headers: &HeaderMap,
    prefix: &str,
    extra: &[&str],
) -> Result<Vec<(String, Option<String>)>> {
    check_meta(meta_items(headers, prefix, extra))
}

/// The metadata updates of an object write (`X-Object-Meta-*` and [`OBJECT_SYS`]).
///
/// # Errors
/// [`Error::BadHeader`].
pub fn object_meta_updates(headers: &HeaderMap) -> Result<Vec<(String, Option<String>)>> {
    meta_updates(headers, "x-object-meta-", OBJECT_SYS)
}

/// The metadata of a peer's listing-row write: [`object_meta_updates`] and the system
/// metadata of [`sysmeta_items`].
///
/// # Errors
/// [`Error::BadHeader`].
pub fn direct_meta_updates(headers: &HeaderMap) -> Result<Vec<(String, Option<String>)>> {
    let mut items = meta_items(headers, "x-object-meta-", OBJECT_SYS);
    items.extend(sysmeta_items(headers));
    check_meta(items)
}

/// Strips `W/` and quotes from an entity tag.
pub fn strip_quotes(s: &str) -> &str {
    s.trim().trim_start_matches("W/").trim_matches('"')
}

/// The typed values of a new object's PUT.
///
/// # Errors
/// [`Error::BadHeader`] for a malformed `Content-Length` or expiry.
pub fn object_headers(h: &HeaderMap) -> Result<ObjectHeaders> {
    let content_length = match text(h, "content-length") {
        Some(v) => Some(v.parse::<u64>().map_err(|_| Error::BadHeader {
            name: "content-length",
            reason: "must be a number",
        })?),
        None => None,
    };
    let chunked =
        text(h, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    Ok(ObjectHeaders {
        content_length,
        chunked,
        expiry: expiry(h)?,
        meta: meta_items(h, "x-object-meta-", OBJECT_SYS),
        content_type: text(h, "content-type").map(str::to_owned),
        detect_content_type: h
            .get("x-detect-content-type")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true")),
        etag: text(h, "etag").map(|e| strip_quotes(e).to_ascii_lowercase()),
    })
}

/// Splits an `X-Copy-From` / `Destination` value into container and object.
///
/// # Errors
/// [`Error::BadHeader`].
pub fn split_copy_path(v: &str) -> Result<(String, String)> {
    let decoded = percent_encoding::percent_decode_str(v)
        .decode_utf8()
        .map_err(|_| Error::BadHeader {
            name: "x-copy-from",
            reason: "not valid UTF-8",
        })?;
    let t = decoded.trim_start_matches('/');
    match t.split_once('/') {
        Some((c, o)) if !c.is_empty() && !o.is_empty() => Ok((c.to_owned(), o.to_owned())),
        _ => Err(Error::BadHeader {
            name: "x-copy-from",
            reason: "must be /<container>/<object>",
        }),
    }
}

/// The account a copy header names (`Destination-Account`, `X-Copy-From-Account`): an
/// account id `AUTH_<account>`, percent-decoded as Swift's `wsgi_unquote`.
///
/// # Errors
/// Swift's `412`s ([`Refusal::AccountNameEmpty`], [`Refusal::AccountNameSlash`]);
/// [`Error::Forbidden`] for an id without our `AUTH_` prefix (tempauth is not
/// authoritative for it and denies).
pub fn copy_account(h: &HeaderMap, header: &'static str) -> Result<Option<String>> {
    let Some(v) = h.get(header) else {
        return Ok(None);
    };
    let name = percent_encoding::percent_decode(v.as_bytes())
        .decode_utf8_lossy()
        .into_owned();
    if name.is_empty() {
        return Err(Error::Refused(Refusal::AccountNameEmpty));
    }
    if name.contains('/') {
        return Err(Error::Refused(Refusal::AccountNameSlash));
    }
    match name.strip_prefix("AUTH_") {
        Some(a) if !a.is_empty() => {
            crate::names::check_account(a)?;
            Ok(Some(a.to_owned()))
        }
        _ => Err(Error::Forbidden {
            reason: "account ids are AUTH_<account>",
        }),
    }
}

/// The source account of a `PUT` with `X-Copy-From`: `X-Copy-From-Account` (an empty one
/// is none, as in Swift's copy), else the request's own.
///
/// # Errors
/// As [`copy_account`].
pub fn copy_source_account(r: &Req) -> Result<String> {
    let named = r
        .headers
        .get("x-copy-from-account")
        .is_some_and(|v| !v.is_empty());
    let named = match named {
        true => copy_account(&r.headers, "x-copy-from-account")?,
        false => None,
    };
    Ok(named.unwrap_or_else(|| r.path.account().to_owned()))
}

/// The destination account of a `COPY`: `Destination-Account`, else the request's own.
///
/// # Errors
/// As [`copy_account`] (an empty one is Swift's `412`).
pub fn copy_destination_account(r: &Req) -> Result<String> {
    Ok(copy_account(&r.headers, "destination-account")?
        .unwrap_or_else(|| r.path.account().to_owned()))
}

/// A COPY's `Destination`, split and its names checked.
///
/// # Errors
/// [`Error::BadHeader`], [`Error::BadName`].
pub fn copy_destination(r: &Req) -> Result<(String, String)> {
    let dest = r.header("destination").ok_or(Error::BadHeader {
        name: "destination",
        reason: "COPY needs a Destination header: <container>/<object>",
    })?;
    let (dc, dobj) = split_copy_path(dest).map_err(|_| Error::BadHeader {
        name: "destination",
        reason: "must be <container>/<object>",
    })?;
    crate::names::check_container(&dc)?;
    crate::names::check_object(&dobj)?;
    Ok((dc, dobj))
}

/// Inserts a header whose value we built (always valid).
pub fn set(h: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        h.insert(name, v);
    }
}

/// An empty response with a status.
pub fn status(code: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_paths() {
        assert_eq!(
            split_copy_path("/c/a%20b/c").unwrap(),
            ("c".into(), "a b/c".into())
        );
        assert_eq!(split_copy_path("c/o").unwrap(), ("c".into(), "o".into()));
        assert!(split_copy_path("/c").is_err());
        assert!(split_copy_path("/c/").is_err());
    }

    #[test]
    fn sysmeta_only_from_direct_writes() {
        let mut h = HeaderMap::new();
        h.insert("x-object-meta-color", "blue".parse().unwrap());
        h.insert("x-object-sysmeta-s3api-etag", "abc-2".parse().unwrap());
        let client = object_meta_updates(&h).unwrap();
        assert_eq!(client.len(), 1, "{client:?}");
        let direct = version_meta_of(direct_meta_updates(&h).unwrap());
        assert_eq!(direct["x-object-sysmeta-s3api-etag"], "abc-2");
        assert_eq!(direct["x-object-meta-color"], "blue");
        let o = object_headers(&h).unwrap();
        assert_eq!(o.meta.len(), 1, "a client's PUT keeps no sysmeta");
    }

    fn version_meta_of(u: Vec<(String, Option<String>)>) -> crate::db::Meta {
        crate::store::validate::version_meta(u)
    }

    #[test]
    fn object_headers_typed() {
        let mut h = HeaderMap::new();
        h.insert("content-length", " 12 ".parse().unwrap());
        h.insert("x-delete-after", "60".parse().unwrap());
        h.insert("etag", "\"ABC\"".parse().unwrap());
        h.insert("x-object-meta-color", "blue".parse().unwrap());
        h.insert("x-remove-object-meta-size", "x".parse().unwrap());
        h.insert("cache-control", "max-age=1".parse().unwrap());
        let o = object_headers(&h).unwrap();
        assert_eq!(o.content_length, Some(12));
        assert_eq!(o.expiry, Some(Expiry::After(60)));
        assert_eq!(o.etag.as_deref(), Some("abc"));
        assert_eq!(o.meta.len(), 3);
        h.insert("content-length", "x".parse().unwrap());
        assert!(object_headers(&h).is_err());
    }
}
