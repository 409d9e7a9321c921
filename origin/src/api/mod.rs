//! The HTTP API: Swift v1 (`/auth/v1.0`, `/v1/...`, `/info`), internal endpoints for edges and
//! peers (`/internal/...`), `/healthz` and `/metrics`.

mod account;
mod auth;
mod billing;
mod body;
mod cluster;
mod container;
mod internal;
mod listing;
mod object;
mod purge;
pub mod range;
mod slo;
mod xdc;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use outpost_auth::StoragePath;
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::db::Db;
use crate::files::Files;
use crate::hlc::Clock;
use crate::metrics::Metrics;
use crate::{Error, Result};

pub use auth::AuthTokens;
pub use purge::Subscribers;

/// Header carrying the internal (cluster/edge) secret.
pub const INTERNAL_HEADER: &str = "x-outpost-internal";

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    /// Validated config.
    pub cfg: Config,
    /// Metadata.
    pub db: Db,
    /// Data files.
    pub files: Files,
    /// Hybrid logical clock.
    pub clock: Clock,
    /// Issued auth tokens.
    pub tokens: AuthTokens,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Edges following the change feed, and how far.
    pub subscribers: Subscribers,
    /// Cluster mode (`[cluster]`); `None` on a single node.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Cross-datacenter replication (`[sync]`); `None` without it.
    pub xdc: Option<crate::xdc::Xdc>,
}

impl AppState {
    /// The partition power objects are placed by: the ring's in cluster mode, else
    /// [`crate::files::DEFAULT_PART_POWER`].
    pub fn part_power(&self) -> u32 {
        self.cluster
            .as_ref()
            .map_or(crate::files::DEFAULT_PART_POWER, |c| c.ring().part_power)
    }
}

/// Shared state handle.
pub type Shared = Arc<AppState>;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No valid credential (may still pass an ACL or a tempurl).
    Anonymous,
    /// A user of `account`; reseller admins may use every account.
    User {
        /// The user's account.
        account: String,
        /// `account:user`.
        name: String,
        /// Reseller admin.
        reseller: bool,
    },
    /// An edge or another origin node holding the internal secret.
    Internal,
}

impl Identity {
    /// True if this identity has full control of `account`.
    pub fn owns(&self, account: &str) -> bool {
        match self {
            Identity::Anonymous => false,
            Identity::User {
                account: a,
                reseller,
                ..
            } => *reseller || a == account,
            Identity::Internal => true,
        }
    }

    /// Name for logs.
    pub fn label(&self) -> &str {
        match self {
            Identity::Anonymous => "-",
            Identity::User { name, .. } => name,
            Identity::Internal => ".internal",
        }
    }
}

impl AppState {
    /// Works out who sent the request.
    pub fn identify(&self, headers: &HeaderMap) -> Identity {
        if let Some(v) = headers.get(INTERNAL_HEADER) {
            if bool::from(v.as_bytes().ct_eq(self.cfg.internal_secret.as_bytes())) {
                return Identity::Internal;
            }
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
                        auth::verify_signed(
                            t,
                            self.clock.wall_secs(),
                            self.cfg.internal_secret.as_bytes(),
                        )
                    })
                })
                .unwrap_or(Identity::Anonymous),
            None => Identity::Anonymous,
        }
    }
}

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
    pub direct: Option<crate::cluster::Direct>,
    /// The write timestamp, when the proxy chose it before calling a local handler.
    pub ts: Option<crate::hlc::Timestamp>,
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

    /// A header as a string, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// True if the client wants JSON (`format=json` or `Accept: application/json`).
    pub fn wants(&self) -> listing::Format {
        listing::Format::negotiate(
            self.query.get("format").map(String::as_str),
            self.header("accept"),
        )
    }
}

/// Builds the router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/auth/v1.0", get(auth::auth_v1))
        .route("/auth/v1.0/", get(auth::auth_v1))
        .route("/info", get(info))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/internal/changes", get(internal::changes))
        .route("/internal/snapshot", get(internal::snapshot))
        .route("/internal/purge", axum::routing::post(purge::purge))
        .route("/internal/cluster/status", get(cluster::status))
        .route(
            "/internal/cluster/replicate",
            axum::routing::post(cluster::replicate),
        )
        .route(
            "/internal/cluster/audit",
            axum::routing::post(cluster::audit),
        )
        .route("/internal/replication/hashes", get(cluster::hashes))
        .route("/internal/replication/rows", get(cluster::rows))
        .route("/internal/replication/meta", get(cluster::meta))
        .route("/internal/xdc/have", axum::routing::post(xdc::have))
        .route("/internal/xdc/status", get(xdc::status))
        .route("/internal/xdc/v1/{*rest}", axum::routing::any(xdc::apply))
        .route("/internal/billing", axum::routing::post(billing::ingest))
        .route("/internal/logs", axum::routing::put(billing::put_log))
        .route("/admin/billing", get(billing::report))
        .fallback(swift)
        .with_state(state)
}

async fn metrics(State(st): State<Shared>) -> Response {
    let last = st.db.last_seq();
    for (edge, applied) in st.subscribers.positions() {
        st.metrics.edge_lag(&edge, last.saturating_sub(applied));
    }
    let mut body = st.metrics.render();
    body.push_str(&crate::metrics::disk_gauges(&st.cfg.data_dir));
    if let Some(x) = st.xdc.as_ref() {
        let peers = blocking(&st, crate::xdc::status).await.unwrap_or_default();
        body.push_str(&crate::xdc::prometheus(
            &peers,
            x.received.load(std::sync::atomic::Ordering::Relaxed),
        ));
    }
    if let Some(cl) = st.cluster.as_ref() {
        let st2 = Arc::clone(&st);
        let objects = blocking(&st2, |s| s.db.object_row_count())
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
            "max_file_size": st.cfg.max_object_size,
            "max_object_name_length": crate::names::MAX_OBJECT,
            "max_container_name_length": crate::names::MAX_CONTAINER,
            "max_account_name_length": crate::names::MAX_ACCOUNT,
            "container_listing_limit": listing::MAX_LIMIT,
            "account_listing_limit": listing::MAX_LIMIT,
            "max_meta_count": crate::names::MAX_META_COUNT,
            "max_meta_name_length": crate::names::MAX_META_NAME,
            "max_meta_value_length": crate::names::MAX_META_VALUE,
            "max_meta_overall_size": crate::names::MAX_META_OVERALL,
            "strict_cors_mode": true,
            "policies": [{"name": "default", "default": true}],
        },
        "tempurl": {
            "methods": ["GET", "HEAD", "PUT", "POST", "DELETE"],
            "allowed_digests": ["sha256", "sha512"],
            "outgoing_remove_headers": [],
        },
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
            "application/json; charset=utf-8",
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
            let mut resp = dispatch(&st, r)
                .await
                .unwrap_or_else(IntoResponse::into_response);
            if let Some(timeout) = purge_wait.filter(|_| resp.status().is_success()) {
                purge::wait_and_annotate(&st, timeout, &mut resp).await;
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
    st.metrics.observe(method.as_str(), status, dur, bytes);
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
    let path = StoragePath::parse(parts.uri.path())?;
    let raw_query = parts.uri.query().map(str::to_owned);
    let mut query = HashMap::new();
    if let Some(q) = &raw_query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            query
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
    }
    let ident = st.identify(&parts.headers);
    let direct = if ident == Identity::Internal {
        parts
            .headers
            .get(crate::cluster::DIRECT_HEADER)
            .and_then(|v| crate::cluster::Direct::parse(v.as_bytes()))
    } else {
        None
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
    // Cluster mode: account and container writes are applied here, then on every peer.
    let meta_write = st.cluster.is_some()
        && r.direct.is_none()
        && r.path.object().is_none()
        && matches!(r.method, Method::PUT | Method::POST | Method::DELETE);
    if meta_write {
        let ts = req_ts(st, &r)?;
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
        if resp.status().is_success() {
            crate::cluster::proxy::broadcast_meta_write(st, &peer_view, ts).await;
        }
        return Ok(resp);
    }
    dispatch_local(st, r).await
}

async fn dispatch_local(st: &Shared, r: Req) -> Result<Response> {
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

/// The timestamp of a write: the one the proxy chose, the authenticated peer's
/// `X-Timestamp` (replication, cross-datacenter sync), or now.
///
/// # Errors
/// [`Error::BadHeader`] for a malformed `X-Timestamp` from a peer.
pub fn req_ts(st: &AppState, r: &Req) -> Result<crate::hlc::Timestamp> {
    if let Some(ts) = r.ts {
        return Ok(ts);
    }
    object::write_ts(st, r)
}

/// System headers stored with an object besides `X-Object-Meta-*`.
pub const OBJECT_SYS_HEADERS: &[&str] = object::OBJECT_SYS;

/// Quota check for a write of `size` bytes (the proxy checks before it stages a body).
///
/// # Errors
/// [`Error::QuotaExceeded`].
pub async fn check_quota_pub(
    st: &Shared,
    account: &str,
    crow: &crate::db::ContainerRow,
    size: u64,
) -> Result<()> {
    object::check_quota(st, account, crow, size).await
}

/// `X-Delete-At` / `X-Delete-After` resolved to epoch seconds.
///
/// # Errors
/// [`Error::BadHeader`].
pub fn delete_at_pub(h: &HeaderMap, now: u64) -> Result<Option<u64>> {
    object::delete_at(h, now)
}

/// Where a row's data file lives.
pub fn data_path_pub(st: &Shared, row: &crate::db::ObjectRow) -> std::path::PathBuf {
    object::data_path(st, row)
}

/// Splits an `X-Copy-From` / `Destination` value into container and object.
///
/// # Errors
/// [`Error::BadHeader`].
pub fn split_copy_path_pub(v: &str) -> Result<(String, String)> {
    object::split_copy_path(v)
}

/// The content type a new object gets.
pub fn content_type_pub(h: &HeaderMap, name: &str) -> String {
    object::content_type(h, name)
}

/// Runs blocking database work off the async threads.
pub async fn blocking<T: Send + 'static>(
    st: &Shared,
    f: impl FnOnce(&AppState) -> Result<T> + Send + 'static,
) -> Result<T> {
    let st = Arc::clone(st);
    tokio::task::spawn_blocking(move || f(&st))
        .await
        .map_err(|_| Error::Task)?
}

/// [`blocking`] for callers outside the API module.
pub async fn blocking_pub<T: Send + 'static>(
    st: &Shared,
    f: impl FnOnce(&AppState) -> Result<T> + Send + 'static,
) -> Result<T> {
    blocking(st, f).await
}

pub use object::expirer;

/// Stores a small object from memory (demo content, internal writes).
///
/// # Errors
/// Any storage error; [`Error::NotFound`] for a missing container.
pub async fn put_bytes(
    st: &Shared,
    account: &str,
    container: &str,
    name: &str,
    content_type: &str,
    data: bytes::Bytes,
) -> Result<()> {
    let staged = st.files.stage_bytes(data).await?;
    let ts = st.clock.now();
    let etag = staged.md5.clone();
    let size = staged.size;
    object::store(
        st,
        staged,
        object::NewVersion {
            account: account.to_owned(),
            container: container.to_owned(),
            name: name.to_owned(),
            ts,
            etag,
            size,
            content_type: content_type.to_owned(),
            meta: crate::db::Meta::new(),
            delete_at: None,
            slo: false,
        },
    )
    .await
    .map(|_| ())
}

/// Collects metadata updates from headers with `prefix` (e.g. `x-container-meta-`), plus the
/// extra system headers listed, honouring `X-Remove-<...>` headers. Enforces Swift's limits.
pub fn meta_updates(
    headers: &HeaderMap,
    prefix: &str,
    extra: &[&str],
) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let remove_prefix = format!("x-remove-{}", prefix.trim_start_matches("x-"));
    let mut overall = 0usize;
    for (name, value) in headers {
        let n = name.as_str();
        if let Some(key) = n.strip_prefix(&remove_prefix) {
            out.push((format!("{prefix}{key}"), None));
            continue;
        }
        let is_extra = extra.contains(&n);
        let Some(key) = n.strip_prefix(prefix).or(is_extra.then_some(n)) else {
            if let Some(x) = n.strip_prefix("x-remove-") {
                if extra.iter().any(|e| e.strip_prefix("x-") == Some(x)) {
                    out.push((format!("x-{x}"), None));
                }
            }
            continue;
        };
        // Swift keeps metadata as UTF-8 and clients send it raw (`swift post -m Title:Фото`).
        let v = std::str::from_utf8(value.as_bytes()).map_err(|_| Error::BadHeader {
            name: "metadata",
            reason: "values must be UTF-8",
        })?;
        if !is_extra {
            if key.is_empty() {
                return Err(Error::BadHeader {
                    name: "metadata",
                    reason: "metadata name is empty",
                });
            }
            if key.len() > crate::names::MAX_META_NAME {
                return Err(Error::BadHeader {
                    name: "metadata",
                    reason: "metadata name too long (max 128)",
                });
            }
            if v.len() > crate::names::MAX_META_VALUE {
                return Err(Error::BadHeader {
                    name: "metadata",
                    reason: "metadata value too long (max 256)",
                });
            }
            overall += key.len() + v.len();
        }
        out.push((n.to_owned(), Some(v.trim().to_owned())));
    }
    if out.len() > crate::names::MAX_META_COUNT {
        return Err(Error::BadHeader {
            name: "metadata",
            reason: "too many metadata items (max 90)",
        });
    }
    if overall > crate::names::MAX_META_OVERALL {
        return Err(Error::BadHeader {
            name: "metadata",
            reason: "metadata too large (max 4096 bytes)",
        });
    }
    Ok(out)
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
