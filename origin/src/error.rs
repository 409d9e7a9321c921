//! The origin's one error type, and the one place that turns it into an HTTP response.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

/// Everything the origin can answer with other than success.
///
/// Each variant knows its status, a stable code (sent as `X-Outpost-Error`), whether a retry
/// may help, and whose fault it is ([`Blame`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A config file problem, naming the key.
    #[error("config: {key}: {reason}")]
    Config {
        /// Dotted key path, e.g. `auth.users[0].key`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request path is malformed (`..`, `%2F`, bad UTF-8, ...).
    #[error("bad path: {0}")]
    BadPath(#[from] outpost_auth::Error),
    /// A header has a bad value.
    #[error("bad header {name}: {reason}")]
    BadHeader {
        /// Header name.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A query parameter has a bad value.
    #[error("bad query parameter {name}: {reason}")]
    BadQuery {
        /// Parameter name.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A name is invalid (empty, too long, contains NUL, ...).
    #[error("invalid {what} name: {reason}")]
    BadName {
        /// `account`, `container` or `object`.
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// An SLO manifest is invalid.
    #[error("bad manifest: {reason}")]
    BadManifest {
        /// Why (may name a segment).
        reason: String,
    },
    /// A cross-datacenter sync message is malformed.
    #[error("bad sync message: {reason}")]
    BadSyncMessage {
        /// Why.
        reason: String,
    },
    /// No credential, or a bad tempurl.
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// Why.
        reason: &'static str,
    },
    /// Authenticated, but not allowed.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why.
        reason: &'static str,
    },
    /// Not there.
    #[error("{what} not found")]
    NotFound {
        /// `account`, `container` or `object`.
        what: &'static str,
    },
    /// Method not supported on this resource.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the current state.
    #[error("conflict: {reason}")]
    Conflict {
        /// Why.
        reason: &'static str,
    },
    /// PUT without `Content-Length` or chunked encoding.
    #[error("length required")]
    LengthRequired,
    /// A precondition (`If-Match`, `If-Unmodified-Since`) failed, or a listing limit is too big.
    #[error("precondition failed: {reason}")]
    PreconditionFailed {
        /// Why.
        reason: &'static str,
    },
    /// Body larger than allowed.
    #[error("request entity too large: limit is {max} bytes")]
    TooLarge {
        /// The limit in bytes.
        max: u64,
    },
    /// The write would take a container or account past its quota
    /// (`X-Container-Meta-Quota-Bytes`/`-Count`, `X-Account-Meta-Quota-Bytes`).
    #[error("upload exceeds the {what} quota")]
    QuotaExceeded {
        /// `container bytes`, `container object count` or `account bytes`.
        what: &'static str,
    },
    /// No requested range overlaps the object.
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable {
        /// Object length, for `Content-Range: bytes */len`.
        len: u64,
    },
    /// The body's MD5 differs from the client's `ETag`.
    #[error("body MD5 does not match the ETag header")]
    EtagMismatch,
    /// The client stopped sending the body for longer than `client_timeout`.
    #[error("request timeout: no body bytes for {secs} s")]
    RequestTimeout {
        /// The timeout, in seconds.
        secs: u64,
    },
    /// The client went away or sent less than it announced.
    #[error("client disconnected before the body was complete")]
    ClientDisconnect,
    /// The disk is full.
    #[error("insufficient storage")]
    InsufficientStorage,
    /// Metadata database failure.
    #[error("database: {0}")]
    Db(rusqlite::Error),
    /// File system failure.
    #[error("i/o: {0}")]
    Io(std::io::Error),
    /// A background task died.
    #[error("internal task failed")]
    Task,
    /// Cluster mode: too few replicas answered for a quorum.
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// What was missing.
        reason: &'static str,
    },
    /// Cluster mode: a feature that needs data from several nodes at once is not implemented
    /// for clusters yet.
    #[error("not implemented in cluster mode: {what}")]
    NotInCluster {
        /// The feature.
        what: &'static str,
    },
    /// A request line or header line over its `[limits]` bound.
    #[error("{part} longer than {limit} bytes (limits.{})", part.key())]
    HeadTooLarge {
        /// The part over its limit.
        part: crate::limits::HeadPart,
        /// The limit in bytes.
        limit: usize,
    },
    /// `limits.max_connections` connections are open.
    #[error("too many connections: {max} are open (limits.max_connections)")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
}

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The client's request (4xx).
    Downstream,
    /// Something this node depends on (disk, database).
    Internal,
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // A full disk is the operator's to fix, not a corruption: 507 like a data write.
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return Error::InsufficientStorage;
        }
        Error::Db(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        // ENOSPC / EDQUOT
        if matches!(e.raw_os_error(), Some(28) | Some(122)) {
            return Error::InsufficientStorage;
        }
        Error::Io(e)
    }
}

impl Error {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Config { .. } | Error::Db(_) | Error::Io(_) | Error::Task => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::BadPath(_)
            | Error::BadHeader { .. }
            | Error::BadQuery { .. }
            | Error::BadName { .. }
            | Error::BadManifest { .. }
            | Error::BadSyncMessage { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Error::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Error::TooLarge { .. } | Error::QuotaExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::EtagMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Error::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::ClientDisconnect => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Error::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotInCluster { .. } => StatusCode::NOT_IMPLEMENTED,
            Error::HeadTooLarge {
                part: crate::limits::HeadPart::RequestLine,
                ..
            } => StatusCode::URI_TOO_LONG,
            Error::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::TooManyConnections { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::BadPath(_) => "bad-path",
            Error::BadHeader { .. } => "bad-header",
            Error::BadQuery { .. } => "bad-query",
            Error::BadName { .. } => "bad-name",
            Error::BadManifest { .. } => "bad-manifest",
            Error::BadSyncMessage { .. } => "bad-sync-message",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::NotFound { .. } => "not-found",
            Error::MethodNotAllowed => "method-not-allowed",
            Error::Conflict { .. } => "conflict",
            Error::LengthRequired => "length-required",
            Error::PreconditionFailed { .. } => "precondition-failed",
            Error::TooLarge { .. } => "too-large",
            Error::QuotaExceeded { .. } => "over-quota",
            Error::RangeNotSatisfiable { .. } => "range-not-satisfiable",
            Error::EtagMismatch => "etag-mismatch",
            Error::RequestTimeout { .. } => "client-timeout",
            Error::ClientDisconnect => "client-disconnect",
            Error::InsufficientStorage => "insufficient-storage",
            Error::Db(_) => "database",
            Error::Io(_) => "io",
            Error::Task => "task",
            Error::Unavailable { .. } => "unavailable",
            Error::NotInCluster { .. } => "not-in-cluster",
            Error::HeadTooLarge { .. } => "head-too-large",
            Error::TooManyConnections { .. } => "too-many-connections",
        }
    }

    /// True if the same request may succeed later.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Error::Db(_)
                | Error::Io(_)
                | Error::Task
                | Error::Unavailable { .. }
                | Error::TooManyConnections { .. }
                | Error::InsufficientStorage
                | Error::RequestTimeout { .. }
                | Error::ClientDisconnect
        )
    }

    /// Whose fault it is.
    pub fn blame(&self) -> Blame {
        if self.status().is_server_error() {
            Blame::Internal
        } else {
            Blame::Downstream
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if self.blame() == Blame::Internal {
            tracing::error!(error = %self, code = self.code(), "internal error");
        }
        // Internal details stay in the log; clients get the code.
        let body = match self.blame() {
            Blame::Internal if !matches!(self, Error::NotInCluster { .. }) => {
                format!("{}\n", self.code())
            }
            Blame::Internal => format!("{self}\n"),
            Blame::Downstream => format!("{self}\n"),
        };
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            outpost_proto::headers::ERROR,
            HeaderValue::from_static(self.code()),
        );
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Error::RangeNotSatisfiable { len } = self {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                h.insert(http::header::CONTENT_RANGE, v);
            }
        }
        if self.retryable() {
            h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
