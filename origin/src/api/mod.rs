//! The HTTP API: Swift v1 (`/auth/v1.0`, `/v1/...`, `/info`), internal endpoints for edges and
//! peers (`/internal/...`), `/healthz` and `/metrics`.

mod account;
mod auth;
mod billing;
mod body;
mod certs;
mod cluster;
mod container;
mod copy;
mod cors;
mod dlo;
mod internal;
mod listing;
mod object;
mod purge;
mod quota;
pub use crate::range;
mod slo;
mod staticweb;
mod xdc;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, HeaderValue, Method};

use crate::access::{Access, Target};
use crate::cluster::Cluster;
use crate::store::Store;
use crate::xdc::Xdc;
use crate::{Error, Result};

pub use crate::request::{
    meta_updates, set, status, Capability, Identity, Req, Role, INTERNAL_HEADER,
};
pub use auth::AuthTokens;
use outpost_proto::paths;
pub use purge::Subscribers;

/// Everything a request handler needs: the store, the cluster and cross-DC roles, and the
/// HTTP-only state (issued auth tokens, the edges following the change feed).
#[derive(Debug)]
pub struct AppState {
    /// The node's storage (config, metadata, data files, clock, metrics).
    pub store: Arc<Store>,
    /// Issued auth tokens.
    pub tokens: AuthTokens,
    /// Edges following the change feed, and how far.
    pub subscribers: Subscribers,
    /// Cluster mode (`[cluster]`); `None` on a single node.
    pub cluster: Option<Arc<Cluster>>,
    /// Cross-datacenter replication (`[sync]`); `None` without it.
    pub xdc: Option<Arc<Xdc>>,
}

/// Shared state handle.
pub type Shared = Arc<AppState>;

impl AppState {
    /// Works out who sent the request.
    pub fn identify(&self, headers: &HeaderMap) -> Identity {
        let cfg = &self.store.cfg;
        if let Some(role) = headers
            .get(INTERNAL_HEADER)
            .and_then(|v| cfg.credentials.role_of(v.as_bytes()))
        {
            return Identity::Service(role);
        }
        let token = headers
            .get("x-auth-token")
            .or_else(|| headers.get("x-storage-token"))
            .and_then(|v| v.to_str().ok());
        match token {
            Some(t) => self
                .tokens
                .lookup(t)
                .or_else(|| {
                    self.cluster.as_ref().and_then(|_| {
                        let now = self.store.clock.wall_secs();
                        cfg.credentials
                            .peer_secrets()
                            .iter()
                            .find_map(|k| auth::verify_signed(t, now, k.as_bytes()))
                    })
                })
                .unwrap_or(Identity::Anonymous),
            None => Identity::Anonymous,
        }
    }
}

/// Which listing format the client wants (`format=json`, `Accept: application/json`, ...).
fn wants(r: &Req) -> listing::Format {
    listing::Format::negotiate(
        r.query.get("format").map(String::as_str),
        r.header("accept"),
    )
}

/// Runs blocking database work off the async threads.
async fn blocking<T: Send + 'static>(
    st: &Shared,
    f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    st.store.blocking(f).await
}

/// Builds the router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/auth/v1.0", get(auth::auth_v1))
        .route("/auth/v1.0/", get(auth::auth_v1))
        .route("/info", get(info))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route(paths::CHANGES, get(internal::changes))
        .route(paths::SNAPSHOT, get(internal::snapshot))
        .route(paths::PURGE, axum::routing::post(purge::purge))
        .route(paths::CLUSTER_STATUS, get(cluster::status))
        .route(
            paths::CLUSTER_REPLICATE,
            axum::routing::post(cluster::replicate),
        )
        .route(paths::CLUSTER_AUDIT, axum::routing::post(cluster::audit))
        .route(paths::CLUSTER_PURGE_WAIT, get(cluster::purge_wait))
        .route(paths::REPLICATION_HASHES, get(cluster::hashes))
        .route(paths::REPLICATION_ROWS, get(cluster::rows))
        .route(paths::REPLICATION_META, get(cluster::meta))
        .route(paths::XDC_HAVE, axum::routing::post(xdc::have))
        .route(paths::XDC_STATUS, get(xdc::status))
        .route(paths::XDC_META, axum::routing::post(xdc::meta))
        .route(
            &format!("{}/{{*rest}}", paths::XDC_APPLY),
            axum::routing::any(xdc::apply),
        )
        .route(paths::BILLING, axum::routing::post(billing::ingest))
        .route(paths::LOGS, axum::routing::put(billing::put_log))
        .route(paths::ADMIN_BILLING, get(billing::report))
        .route(paths::CERTS, get(certs::index))
        .route(
            &format!("{}/{{domain}}", paths::CERTS),
            get(certs::get_cert).put(certs::put_cert),
        )
        .route(
            &format!("{}/{{domain}}/lease", paths::CERTS),
            axum::routing::post(certs::lease),
        )
        .route(
            &format!("{}/{{token}}", paths::ACME_CHALLENGES),
            get(certs::get_challenge).put(certs::put_challenge),
        )
        .fallback(swift)
        .with_state(state)
}

async fn metrics(State(st): State<Shared>) -> Response {
    let last = st.store.db.last_seq();
    for (edge, applied) in st.subscribers.positions() {
        st.store
            .metrics
            .edge_lag(&edge, last.saturating_sub(applied));
    }
    let mut body = st.store.metrics.render();
    body.push_str(&crate::metrics::disk_gauges(&st.store.cfg.data_dir));
    if let Some(x) = st.xdc.as_ref() {
        let x2 = Arc::clone(x);
        let peers = blocking(&st, move |s| crate::xdc::status(s, &x2))
            .await
            .unwrap_or_default();
        body.push_str(&crate::xdc::prometheus(
            &peers,
            x.received.load(std::sync::atomic::Ordering::Relaxed),
        ));
    }
    if let Some(cl) = st.cluster.as_ref() {
        let objects = blocking(&st, |s| s.db.object_row_count())
            .await
            .unwrap_or(0);
        body.push_str(&crate::cluster::status::prometheus(
            &crate::cluster::status::of(cl, objects),
        ));
    }
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

async fn info(State(st): State<Shared>) -> Response {
    let body = serde_json::json!({
        "swift": {
            "version": concat!("outpost-", env!("CARGO_PKG_VERSION")),
            "max_file_size": st.store.cfg.max_object_size,
            "max_object_name_length": crate::names::MAX_OBJECT,
            "max_container_name_length": crate::names::MAX_CONTAINER,
            "max_account_name_length": crate::names::MAX_ACCOUNT,
            "container_listing_limit": listing::MAX_LIMIT,
            "account_listing_limit": listing::MAX_LIMIT,
            "max_meta_count": crate::names::MAX_META_COUNT,
            "max_meta_name_length": crate::names::MAX_META_NAME,
            "max_meta_value_length": crate::names::MAX_META_VALUE,
            "max_meta_overall_size": crate::names::MAX_META_OVERALL,
            "policies": [{"name": "default", "default": true}],
            "strict_cors_mode": true,
        },
        "tempurl": {
            "methods": ["GET", "HEAD", "PUT", "POST", "DELETE"],
            "allowed_digests": ["sha256", "sha512"],
            "outgoing_remove_headers": [],
        },
        "staticweb": {},
        "tempauth": {"account_acls": true},
        "container_quotas": {},
        "account_quotas": {},
        "slo": {
            "max_manifest_segments": slo::MAX_SEGMENTS,
            "max_manifest_size": slo::MAX_MANIFEST_BYTES,
            "min_segment_size": 1,
        },
        "outpost": {
            "tokens": ["op1"],
            "change_feed": true,
        },
    });
    (
        [(
            http::header::CONTENT_TYPE,
            "application/json; charset=UTF-8",
        )],
        body.to_string(),
    )
        .into_response()
}

/// The Swift API entry point: parses the path, identifies the client, dispatches.
async fn swift(State(st): State<Shared>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let raw_path = req.uri().path().to_owned();
    let client_ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let purge_wait = match purge::requested_wait(req.headers()) {
        Ok(w) => w,
        Err(e) => return with_common_headers(e.into_response()),
    };
    let resp = match build_req(&st, req, client_ip) {
        Ok(r) => {
            let ident = r.ident.label().to_owned();
            let cors = cors::Pending::of(&r);
            // With X-Purge-Wait, the cluster writes the request makes are tracked so the
            // wait covers every node's edges.
            let (resp, landing) = match purge_wait {
                Some(_) => crate::cluster::purge_wait::tracking(dispatch(&st, r)).await,
                None => (dispatch(&st, r).await, Default::default()),
            };
            let mut resp = resp.unwrap_or_else(IntoResponse::into_response);
            if let Some(c) = cors {
                c.apply(&st, &mut resp).await;
            }
            if let Some(timeout) = purge_wait.filter(|_| resp.status().is_success()) {
                purge::wait_and_annotate(&st, timeout, &landing, &mut resp).await;
            }
            log_access(&st, &method, &raw_path, &ident, &resp, started);
            return with_common_headers(resp);
        }
        Err(e) => e.into_response(),
    };
    log_access(&st, &method, &raw_path, "-", &resp, started);
    with_common_headers(resp)
}

fn log_access(
    st: &AppState,
    method: &Method,
    path: &str,
    ident: &str,
    resp: &Response,
    started: Instant,
) {
    let status = resp.status().as_u16();
    let bytes = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let dur = started.elapsed();
    st.store
        .metrics
        .observe(method.as_str(), status, dur, bytes);
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status,
        bytes,
        user = ident,
        duration_ms = dur.as_secs_f64() * 1000.0,
    );
}

fn with_common_headers(mut resp: Response) -> Response {
    crate::error::swift_defaults(&mut resp);
    let h = resp.headers_mut();
    let mut id = [0u8; 10];
    let _ = getrandom::fill(&mut id);
    if let Ok(v) = HeaderValue::from_str(&format!("tx{}", hex::encode(id))) {
        h.insert("x-trans-id", v.clone());
        h.insert("x-openstack-request-id", v);
    }
    resp
}

fn build_req(st: &AppState, req: Request, client_ip: std::net::IpAddr) -> Result<Req> {
    let (parts, body) = req.into_parts();
    // hyper decodes `chunked` (and refuses a body whose last coding is another); Swift answers
    // 501 for any coding but `chunked`.
    let other_coding = parts
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .any(|c| !c.trim().eq_ignore_ascii_case("chunked"));
    if other_coding {
        return Err(Error::Refused(crate::Refusal::UnsupportedTransferCoding));
    }
    let path = crate::names::storage_path(parts.uri.path())?;
    let raw_query = parts.uri.query().map(str::to_owned);
    let mut query = HashMap::new();
    if let Some(q) = &raw_query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            query
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
    }
    // A peer DC's change (`xdc::apply`) arrives already authenticated by its realm key.
    let ident = match parts.extensions.get::<Identity>() {
        Some(i) => i.clone(),
        None => st.identify(&parts.headers),
    };
    let direct = match &ident {
        Identity::Service(role) => {
            let direct = parts
                .headers
                .get(crate::cluster::DIRECT_HEADER)
                .and_then(|v| crate::cluster::Direct::parse(v.as_bytes()));
            let read = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let need = Capability::of_swift_request(
                read,
                direct.is_some(),
                parts.headers.contains_key("x-timestamp"),
            );
            if !role.can(need) {
                return Err(Error::Forbidden {
                    reason: need.denial(),
                });
            }
            direct
        }
        _ => None,
    };
    Ok(Req {
        direct,
        ts: None,
        method: parts.method,
        path,
        raw_query,
        query,
        headers: parts.headers,
        ident,
        client_ip,
        body: std::sync::Mutex::new(body),
    })
}

async fn dispatch(st: &Shared, mut r: Req) -> Result<Response> {
    let account = r.path.account().to_owned();
    crate::names::check_account(&account)?;
    guard_owner_headers(st, &mut r).await?;
    // Cluster mode: account and container writes are applied here, then on every peer.
    let meta_write = st.cluster.is_some()
        && r.direct.is_none()
        && r.path.object().is_none()
        && matches!(r.method, Method::PUT | Method::POST | Method::DELETE);
    if meta_write {
        let ts = r.write_ts(&st.store)?;
        r.ts = Some(ts);
        let peer_view = Req {
            method: r.method.clone(),
            path: r.path.clone(),
            raw_query: None,
            query: HashMap::new(),
            headers: r.headers.clone(),
            ident: r.ident.clone(),
            client_ip: r.client_ip,
            body: std::sync::Mutex::new(Body::empty()),
            direct: None,
            ts: Some(ts),
        };
        let resp = dispatch_local(st, r).await?;
        if let Some(cl) = st.cluster.as_ref().filter(|_| resp.status().is_success()) {
            crate::cluster::broadcast::meta_write(cl, &peer_view, ts).await;
        }
        return Ok(resp);
    }
    dispatch_local(st, r).await
}

async fn dispatch_local(st: &Shared, r: Req) -> Result<Response> {
    if r.method == Method::OPTIONS {
        return cors::options(st, &r).await;
    }
    if let Some(c) = r.path.container().filter(|_| staticweb::applies(&r)) {
        crate::names::check_container(c)?;
        if let Some(o) = r.path.object() {
            crate::names::check_object(o)?;
        }
        let c = c.to_owned();
        return staticweb::handle(st, r, &c).await;
    }
    dispatch_plain(st, r).await
}

/// Dispatches to the account, container or object handler.
async fn dispatch_plain(st: &Shared, r: Req) -> Result<Response> {
    match (
        r.path.container().map(str::to_owned),
        r.path.object().map(str::to_owned),
    ) {
        (None, _) => account::handle(st, r).await,
        (Some(c), None) => {
            crate::names::check_container(&c)?;
            container::handle(st, r, &c).await
        }
        (Some(c), Some(o)) => {
            crate::names::check_container(&c)?;
            crate::names::check_object(&o)?;
            object::handle(st, r, &c, &o).await
        }
    }
}

/// Adds stored metadata to response headers.
pub fn put_meta(h: &mut HeaderMap, meta: &crate::db::Meta) {
    for (k, v) in meta {
        if let (Ok(name), Ok(val)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, val);
        }
    }
}

impl AppState {
    /// The one check of a service endpoint: the request's credential must have `need`.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] without a credential, [`Error::Forbidden`] for a user or a
    /// service whose role lacks `need`.
    pub fn require(&self, headers: &HeaderMap, need: Capability) -> Result<Role> {
        match self.identify(headers) {
            Identity::Service(role) if role.can(need) => Ok(role),
            Identity::Anonymous => Err(Error::Unauthorized {
                reason: "service endpoints need an X-Outpost-Internal credential",
            }),
            _ => Err(Error::Forbidden {
                reason: need.denial(),
            }),
        }
    }
}

/// tempauth's decision for this request ([`crate::access::decide`]); the account ACL is read
/// only when it can change the answer.
///
/// # Errors
/// [`Error::Db`] reading the account.
pub(crate) async fn access(
    st: &Shared,
    r: &Req,
    target: Target,
    container_acl: Option<&str>,
) -> Result<Access> {
    access_to(st, r, r.path.account(), &r.method, target, container_acl).await
}

/// [`access`] to another account, or with another method, than the request's own (the two
/// sides of a copy).
///
/// # Errors
/// [`Error::Db`] reading the account.
pub(crate) async fn access_to(
    st: &Shared,
    r: &Req,
    account: &str,
    method: &Method,
    target: Target,
    container_acl: Option<&str>,
) -> Result<Access> {
    let referer = outpost_auth::acl::referer(&r.headers);
    let q = crate::access::Query {
        ident: &r.ident,
        account,
        target,
        method,
        container_acl,
        referer: referer.as_deref(),
    };
    let first = crate::access::decide(&q, None);
    if !crate::access::needs_account_acl(&q, first) {
        return Ok(first);
    }
    let row = st.store.db.get_account(account)?;
    let acl = row.and_then(|row| crate::access::account_acl(&row.meta));
    Ok(crate::access::decide(&q, acl.as_ref()))
}

/// The container ACL a request on an object (or the container's listing) is checked
/// against: `X-Container-Read` for reads, `X-Container-Write` for writes.
pub(crate) fn container_acl<'a>(
    row: Option<&'a crate::db::ContainerRow>,
    method: &Method,
) -> Option<&'a str> {
    let key = match *method {
        Method::GET | Method::HEAD => "x-container-read",
        _ => "x-container-write",
    };
    row.and_then(|c| c.meta.get(key)).map(String::as_str)
}

/// Before anything else, as tempauth: an invalid `X-Account-Access-Control` is refused
/// (400, whoever sends it), and the owner-only headers ([`crate::access::OWNER_HEADERS`],
/// their `X-Remove-` forms too) of a client that does not own the account are dropped, so
/// neither this node nor the peers a write is broadcast to apply them.
async fn guard_owner_headers(st: &Shared, r: &mut Req) -> Result<()> {
    use crate::access::{ACCOUNT_ACL_META, OWNER_HEADERS};
    if let Some(v) = r.headers.get(ACCOUNT_ACL_META) {
        let input = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if let Err(error) = outpost_auth::acl::AccountAcl::parse(&input) {
            return Err(Error::Refused(crate::Refusal::AccountAcl { error, input }));
        }
    }
    if r.ident.owns(r.path.account()) {
        return Ok(());
    }
    let is_owner_header = |n: &str| {
        let bare = n.strip_prefix("x-remove-").map(|x| format!("x-{x}"));
        OWNER_HEADERS.contains(&bare.as_deref().unwrap_or(n))
    };
    let present: Vec<http::HeaderName> = r
        .headers
        .keys()
        .filter(|n| is_owner_header(n.as_str()))
        .cloned()
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    // An account ACL admin owns the account; nobody else may touch these.
    let target = match (r.path.container(), r.path.object()) {
        (None, _) => Target::Account,
        (Some(_), None) => Target::Container,
        _ => Target::Object,
    };
    if access(st, r, target, None).await? != Access::Owner {
        for n in present {
            r.headers.remove(n);
        }
    }
    Ok(())
}

/// Denies a request that has no access: 401 for anonymous clients, 403 for others.
pub fn deny(ident: &Identity) -> Error {
    match ident {
        Identity::Anonymous => Error::Unauthorized {
            reason: "a valid X-Auth-Token, tempurl or public ACL is required",
        },
        _ => Error::Forbidden {
            reason: "this user has no access to the account",
        },
    }
}
