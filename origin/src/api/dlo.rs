//! Dynamic Large Objects, as Swift's `dlo` middleware: an object with
//! `X-Object-Manifest: <container>/<prefix>` reads as the concatenation of the objects of
//! `<container>` whose names start with `<prefix>`, in name order, listed when it is read.
//!
//! - The manifest is an ordinary object that keeps the header (PUT stores it, POST replaces
//!   it like the other stored system headers); `?multipart-manifest=get` reads the manifest
//!   itself.
//! - `Content-Length` is the sum of the segments' sizes; `ETag` is the quoted MD5 of their
//!   ETags concatenated (`"<md5>"`), so conditionals compare against it.
//! - One range is served across segments; several ranges give the whole object (Swift
//!   ignores multi-range requests of a DLO).
//! - Listing the segments is a read of their container on the client's behalf: a client who
//!   may not list it gets the listing's denial (a tempurl lets the segments through, as in
//!   Swift); a missing segment container is `404`.
//!
//! Limits: every segment is listed (Swift stops at 10,000 and then sends no `ETag` or
//! length); not in cluster mode yet (a request carrying the header is `501` there).

use http::HeaderMap;

use super::body::Piece;
use super::{access_to, blocking, container_acl, deny, Req, Shared};
use crate::access::Target;
use crate::db::{Entry, ListParams, ObjectRow};
use crate::{Error, Refusal, Result};

/// The stored header naming a DLO's segments.
pub const MANIFEST: &str = "x-object-manifest";

/// Swift's check of a PUT's `X-Object-Manifest`: `<container>/<prefix>`, both non-empty, no
/// `?` or `&`, a prefix not starting with `/`.
///
/// # Errors
/// [`Refusal::BadObjectManifest`].
pub(super) fn validate_put(h: &HeaderMap) -> Result<()> {
    let Some(v) = h.get(MANIFEST) else {
        return Ok(());
    };
    let v = String::from_utf8_lossy(v.as_bytes());
    let ok = match v.split_once('/') {
        Some((c, p)) => !c.is_empty() && !p.is_empty() && !p.starts_with('/'),
        None => false,
    };
    if !ok || v.contains(['?', '&']) {
        return Err(Error::Refused(Refusal::BadObjectManifest));
    }
    Ok(())
}

/// The segment container and prefix of a DLO manifest (the stored value, percent-decoded).
pub(super) fn manifest_of(row: &ObjectRow) -> Option<(String, String)> {
    let v = row.meta.get(MANIFEST)?;
    let decoded = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
    let (c, p) = decoded.split_once('/')?;
    Some((c.to_owned(), p.to_owned()))
}

/// A DLO's segments, listed: the pieces to stream, their total length and the DLO's ETag
/// (unquoted).
pub(super) struct Segments {
    /// The data of each segment, in order.
    pub pieces: Vec<Piece>,
    /// Sum of the segments' sizes.
    pub len: u64,
    /// MD5 of the segments' ETags, hex.
    pub etag: String,
}

/// Lists the segments of a DLO of `account`. `authorized` skips the listing's access check
/// (a tempurl covers the segments).
///
/// # Errors
/// The listing's denial, [`Error::NotFound`] for a missing segment container, [`Error::Db`].
pub(super) async fn segments(
    st: &Shared,
    r: &Req,
    account: String,
    (container, prefix): (String, String),
    authorized: bool,
) -> Result<Segments> {
    let (a, c) = (account.clone(), container.clone());
    let crow = blocking(st, move |s| s.db.get_container(&a, &c)).await?;
    if !authorized {
        let get = http::Method::GET;
        let acl = container_acl(crow.as_ref(), &get);
        let may = access_to(st, r, &account, &get, Target::Container, acl).await?;
        if !may.allowed() {
            return Err(deny(&r.ident));
        }
    }
    if crow.is_none() {
        return Err(Error::NotFound { what: "container" });
    }
    let live_at = Some(st.store.clock.wall_secs());
    let rows = blocking(st, move |s| {
        let mut rows = Vec::new();
        let mut marker = None;
        loop {
            let params = ListParams {
                prefix: prefix.clone(),
                delimiter: None,
                marker: marker.take(),
                end_marker: None,
                limit: super::listing::MAX_LIMIT,
                reverse: false,
                live_at,
            };
            let page = s.db.list_objects(&account, &container, &params)?;
            let full = page.len() == params.limit;
            rows.extend(page.into_iter().filter_map(|e| match e {
                Entry::Item(row) => Some(row),
                Entry::Subdir(_) => None,
            }));
            match rows.last() {
                Some(last) if full => marker = Some(last.name.clone()),
                _ => return Ok(rows),
            }
        }
    })
    .await?;
    use md5::{Digest, Md5};
    let mut md5 = Md5::new();
    let mut pieces = Vec::with_capacity(rows.len());
    for row in &rows {
        md5.update(row.etag.as_bytes());
        pieces.push(Piece {
            path: st.store.data_path(row),
            file: None,
            offset: 0,
            len: row.size,
        });
    }
    Ok(Segments {
        len: rows.iter().map(|r| r.size).sum(),
        pieces,
        etag: hex::encode(md5.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_header_as_swift_checks_it() {
        let check = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(MANIFEST, v.parse().unwrap());
            validate_put(&h).is_ok()
        };
        assert!(check("segs/part-"));
        assert!(check("segs/a/b"));
        for bad in [
            "segs", "/segs/x", "segs/", "segs//x", "segs/x?y", "segs/x&y",
        ] {
            assert!(!check(bad), "{bad}");
        }
    }
}
