//! Server-side copies, as Swift's copy middleware: `COPY` with `Destination` (and
//! `Destination-Account`), and `PUT` with `X-Copy-From` (and `X-Copy-From-Account`).
//!
//! A copy is a read of the source and a write of the destination, each authorized on its
//! own ([`super::access_to`]): the source container's read ACL, the destination
//! container's write ACL, or the accounts' ACLs. As in Swift the source is read first, so a
//! missing source is `404` before the destination is looked at; a missing destination
//! container is `404` to those allowed to write it, a denial to others. Account headers
//! name account ids (`AUTH_<account>`); empty ones or ones with a `/` are Swift's `412`.

use axum::response::Response;
use http::Method;

use super::object::{created, new_meta, open_live};
use super::{access_to, body, container_acl, deny, set, slo, Req, Shared};
use crate::access::Target;
use crate::db::{ContainerRow, Meta};
use crate::request::{
    copy_destination, copy_destination_account, copy_source_account, split_copy_path,
};
use crate::store::validate::resolve_expiry;
use crate::store::NewVersion;
use crate::{Error, Result};

/// Where a copy writes.
struct Dest {
    account: String,
    container: ContainerRow,
    object: String,
}

/// `COPY`: the request's object (its read already authorized) to `Destination`.
pub(super) async fn copy_method(
    st: &Shared,
    r: Req,
    crow: ContainerRow,
    object: String,
) -> Result<Response> {
    let dest_account = copy_destination_account(&r)?;
    let (dc, dobj) = copy_destination(&r)?;
    let src_account = r.path.account().to_owned();
    let source = Source::open(st, &r, src_account, crow.name, object).await?;
    let container = writable_container(st, &r, &dest_account, dc).await?;
    let dest = Dest {
        account: dest_account,
        container,
        object: dobj,
    };
    write(st, r, dest, source).await
}

/// `PUT` with `X-Copy-From`: the destination's write is already authorized; the source's
/// read is checked here.
pub(super) async fn put_copy(
    st: &Shared,
    r: Req,
    crow: ContainerRow,
    object: String,
    copy_from: &str,
) -> Result<Response> {
    // Swift's copy takes an empty `X-Copy-From-Account` for none (an empty
    // `Destination-Account` is its 412).
    let src_account = copy_source_account(&r)?;
    let (sc, so) = split_copy_path(copy_from)?;
    check_readable(st, &r, &src_account, &sc).await?;
    let source = Source::open(st, &r, src_account, sc, so).await?;
    let dest = Dest {
        account: r.path.account().to_owned(),
        container: crow,
        object,
    };
    write(st, r, dest, source).await
}

/// The source container's read, for a client that does not own the source account.
async fn check_readable(st: &Shared, r: &Req, account: &str, container: &str) -> Result<()> {
    if r.ident.owns(account) {
        return Ok(());
    }
    let row = st.store.db.get_container(account, container)?;
    let acl = container_acl(row.as_ref(), &Method::GET);
    let may = access_to(st, r, account, &Method::GET, Target::Object, acl).await?;
    if !may.allowed() {
        return Err(deny(&r.ident));
    }
    Ok(())
}

/// The destination container of a COPY, if the client may write objects into it: a denial
/// before a missing container's `404`.
async fn writable_container(
    st: &Shared,
    r: &Req,
    account: &str,
    container: String,
) -> Result<ContainerRow> {
    let row = st.store.db.get_container(account, &container)?;
    let acl = container_acl(row.as_ref(), &Method::PUT);
    let may = access_to(st, r, account, &Method::PUT, Target::Object, acl).await?;
    if !may.allowed() {
        return Err(deny(&r.ident));
    }
    row.ok_or(Error::NotFound { what: "container" })
}

/// Cluster mode, where the cluster proxy performs the copy: the other side of a copy is
/// authorized here first (the destination of a `COPY`, in `Destination-Account` if given;
/// the source of an `X-Copy-From`, in `X-Copy-From-Account` if given).
///
/// # Errors
/// A denial, Swift's `412`s.
pub(super) async fn authorize_in_cluster(st: &Shared, r: &Req) -> Result<()> {
    if r.method.as_str() == "COPY" {
        let account = copy_destination_account(r)?;
        let (dc, _) = copy_destination(r)?;
        writable_container(st, r, &account, dc).await?;
    } else if let Some(src) = r.header("x-copy-from").filter(|_| r.method == Method::PUT) {
        let account = copy_source_account(r)?;
        let (sc, _) = split_copy_path(src)?;
        check_readable(st, r, &account, &sc).await?;
    }
    Ok(())
}

/// The source of a copy, opened.
struct Source {
    account: String,
    container: String,
    row: crate::db::ObjectRow,
    pieces: Vec<body::Piece>,
}

impl Source {
    async fn open(
        st: &Shared,
        r: &Req,
        account: String,
        container: String,
        object: String,
    ) -> Result<Source> {
        let (row, data) = open_live(st, &account, &container, &object).await?;
        let manifest_get = r
            .query
            .get("multipart-manifest")
            .is_some_and(|v| v == "get");
        let dlo = super::dlo::manifest_of(&row).filter(|_| !manifest_get);
        let pieces = if let Some(manifest) = dlo {
            super::dlo::segments(st, r, account.clone(), manifest, false)
                .await?
                .pieces
        } else if row.slo && !manifest_get {
            slo::pieces(st, &row).await?
        } else {
            vec![data]
        };
        Ok(Source {
            account,
            container,
            row,
            pieces,
        })
    }
}

async fn write(st: &Shared, r: Req, dest: Dest, src: Source) -> Result<Response> {
    let total: u64 = src.pieces.iter().map(|p| p.len).sum();
    let max = st.store.cfg.max_object_size;
    if total > max {
        return Err(Error::TooLarge { max });
    }
    st.store
        .check_quotas(&dest.account, &dest.container, total, r.quotas())
        .await?;
    let stream = body::whole(src.pieces).into_data_stream();
    let staged = st
        .store
        .files
        .stage(stream, max, Some(total), st.store.cfg.client_timeout)
        .await?;
    let fresh = r
        .header("x-fresh-metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut meta = if fresh {
        Meta::new()
    } else {
        src.row.meta.clone()
    };
    // A DLO copies as its content, a plain object; `?multipart-manifest=get` copies the
    // manifest, header and all.
    let manifest_get = r
        .query
        .get("multipart-manifest")
        .is_some_and(|v| v == "get");
    if !manifest_get {
        meta.remove(super::dlo::MANIFEST);
    }
    meta.extend(new_meta(&r.headers)?);
    let ct = match r.header("content-type") {
        Some(ct) if !ct.trim().is_empty() => ct.trim().to_owned(),
        _ => src.row.content_type.clone(),
    };
    let now = st.store.clock.wall_secs();
    let ts = r.write_ts(&st.store)?;
    let etag = staged.md5.clone();
    let size = staged.size;
    let delete_at = resolve_expiry(crate::request::expiry(&r.headers)?, now)?;
    st.store
        .put_version(
            staged,
            NewVersion {
                account: dest.account,
                container: dest.container.name,
                name: dest.object,
                ts,
                etag: etag.clone(),
                size,
                content_type: ct,
                meta,
                delete_at,
                slo: false,
            },
        )
        .await?;
    let mut resp = created(&etag, ts);
    let h = resp.headers_mut();
    set(h, "x-copied-from-account", format!("AUTH_{}", src.account));
    set(
        h,
        "x-copied-from",
        format!("{}/{}", src.container, src.row.name),
    );
    set(h, "x-copied-from-last-modified", src.row.ts.http_date());
    Ok(resp)
}
