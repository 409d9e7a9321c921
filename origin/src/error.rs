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
    /// A certificate-store request (record, lease, challenge) is malformed.
    #[error("bad certificate store request: {reason}")]
    BadCert {
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
    /// (`X-Container-Meta-Quota-Bytes`/`-Count`, `X-Account-Quota-Bytes`/`-Count`).
    #[error("upload exceeds the {what} quota")]
    QuotaExceeded {
        /// `container bytes`, `container object count`, `account bytes` or `account object
        /// count`.
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
    /// A request Swift refuses with a sentence of its own; the body is that sentence.
    #[error("{0}")]
    Refused(Refusal),
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

/// Requests Swift refuses with its own words, which clients and their tests match: the
/// status and body are Swift 2.38's (`tests/fixtures/swift/` holds the recorded answers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// `X-Delete-At` is not an integer.
    NonIntegerDeleteAt,
    /// `X-Delete-At` is not in the future.
    DeleteAtInPast,
    /// `X-Delete-After` is not an integer.
    NonIntegerDeleteAfter,
    /// `X-Delete-After` is not positive.
    DeleteAfterInPast,
    /// A metadata header with an empty name (`X-Container-Meta-`).
    MetaNameEmpty,
    /// A metadata name over 128 bytes; `header` as Swift prints it.
    MetaNameTooLong {
        /// `x-<type>-meta-` and the title-cased key.
        header: String,
    },
    /// A metadata value over 256 bytes.
    MetaValueTooLong {
        /// `x-<type>-meta-` and the title-cased key.
        header: String,
    },
    /// More than 90 metadata items.
    MetaTooMany,
    /// More than 4096 bytes of metadata names and values.
    MetaTooLarge,
    /// An object name over 1024 bytes.
    ObjectNameTooLong {
        /// Its length.
        len: usize,
    },
    /// A container name over 256 bytes.
    ContainerNameTooLong {
        /// Its length.
        len: usize,
    },
    /// The decoded path is not UTF-8 or holds a NUL.
    InvalidUtf8OrNul,
    /// The path names no account (`/v1`, `/v1/`).
    BadUrl,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferCoding,
    /// A PUT with neither `Content-Length` nor chunked encoding.
    MissingContentLength,
    /// A PUT's `X-Object-Manifest` is not `<container>/<prefix>`.
    BadObjectManifest,
    /// `Destination-Account` or `X-Copy-From-Account` is empty.
    AccountNameEmpty,
    /// `Destination-Account` or `X-Copy-From-Account` holds a `/`.
    AccountNameSlash,
    /// A container ACL Swift refuses (`X-Container-Read`/`-Write`): Swift's sentence.
    ContainerAcl(outpost_auth::Error),
    /// A container's `X-Container-Meta-Quota-Bytes` that is not a whole number.
    InvalidBytesQuota,
    /// A container's `X-Container-Meta-Quota-Count` that is not a whole number.
    InvalidCountQuota,
    /// A reseller admin's account quota (`X-Account-Quota-Bytes`, `-Count`, the legacy
    /// `X-Account-Meta-Quota-Bytes`) that is not a whole number: Swift's bare `400` page.
    InvalidAccountQuota,
    /// An `X-Account-Access-Control` tempauth refuses.
    AccountAcl {
        /// Why (Swift's sentence).
        error: outpost_auth::Error,
        /// The header as sent.
        input: String,
    },
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::InvalidUtf8OrNul
            | Refusal::BadUrl
            | Refusal::AccountNameEmpty
            | Refusal::AccountNameSlash => StatusCode::PRECONDITION_FAILED,
            Refusal::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Refusal::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Swift answers some of these from the proxy's WSGI layer (HTML content type) and the
    /// rest from its constraint checks (`text/plain`).
    fn content_type(&self) -> &'static str {
        match self {
            Refusal::InvalidUtf8OrNul
            | Refusal::BadUrl
            | Refusal::ContainerNameTooLong { .. }
            | Refusal::ContainerAcl(_)
            | Refusal::AccountNameEmpty
            | Refusal::AccountNameSlash
            | Refusal::BadObjectManifest
            | Refusal::InvalidBytesQuota
            | Refusal::InvalidCountQuota
            | Refusal::InvalidAccountQuota => SWIFT_HTML,
            Refusal::AccountAcl { .. } => "text/plain; charset=UTF-8",
            _ => "text/plain",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NonIntegerDeleteAt => f.write_str("Non-integer X-Delete-At"),
            Refusal::DeleteAtInPast => f.write_str("X-Delete-At in past"),
            Refusal::NonIntegerDeleteAfter => f.write_str("Non-integer X-Delete-After"),
            Refusal::DeleteAfterInPast => f.write_str("X-Delete-After in past"),
            Refusal::MetaNameEmpty => f.write_str("Metadata name cannot be empty"),
            Refusal::MetaNameTooLong { header } => write!(f, "Metadata name too long: {header}"),
            Refusal::MetaValueTooLong { header } => {
                write!(f, "Metadata value longer than 256: {header}")
            }
            Refusal::MetaTooMany => f.write_str("Too many metadata items; max 90"),
            Refusal::MetaTooLarge => f.write_str("Total metadata too large; max 4096"),
            Refusal::ObjectNameTooLong { len } => {
                write!(f, "Object name length of {len} longer than 1024")
            }
            Refusal::ContainerNameTooLong { len } => {
                write!(f, "Container name length of {len} longer than 256")
            }
            Refusal::InvalidUtf8OrNul => f.write_str("Invalid UTF8 or contains NULL"),
            Refusal::BadUrl => f.write_str("Bad URL"),
            Refusal::UnsupportedTransferCoding => f.write_str(
                "Unsupported Transfer-Coding header value specified in Transfer-Encoding header",
            ),
            Refusal::MissingContentLength => f.write_str("Missing Content-Length header."),
            Refusal::ContainerAcl(e) => write!(f, "{e}"),
            Refusal::AccountNameEmpty => f.write_str("Account name cannot be empty"),
            Refusal::BadObjectManifest => {
                f.write_str("X-Object-Manifest must be in the format container/prefix")
            }
            Refusal::AccountNameSlash => f.write_str("Account name cannot contain slashes"),
            Refusal::InvalidBytesQuota => f.write_str("Invalid bytes quota."),
            Refusal::InvalidCountQuota => f.write_str("Invalid count quota."),
            Refusal::InvalidAccountQuota => f.write_str(
                "<html><h1>Bad Request</h1><p>The server could not comply with the request \
                 since it is either malformed or otherwise incorrect.</p></html>",
            ),
            Refusal::AccountAcl { error, input } => {
                write!(
                    f,
                    "X-Account-Access-Control invalid: {error}\n\nInput: {input}\n"
                )
            }
        }
    }
}

/// The content type of Swift's empty and standard answers.
pub const SWIFT_HTML: &str = "text/html; charset=UTF-8";

/// Swift's standard body for a status it answers without a sentence of its own (webob's
/// title and explanation), or `None` where ours says more.
fn swift_standard_body(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        301 => "<html><h1>Moved Permanently</h1><p>The resource has moved permanently.</p></html>",
        202 => "<html><h1>Accepted</h1><p>The request is accepted for processing.</p></html>",
        401 => "<html><h1>Unauthorized</h1><p>This server could not verify that you are authorized to access the document you requested.</p></html>",
        403 => "<html><h1>Forbidden</h1><p>Access was denied to this resource.</p></html>",
        404 => "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>",
        405 => "<html><h1>Method Not Allowed</h1><p>The method is not allowed for the requested URL.</p></html>",
        408 => "<html><h1>Request Timeout</h1><p>The server has waited too long for the request to be sent by the client.</p></html>",
        409 => "<html><h1>Conflict</h1><p>There was a conflict when trying to complete your request.</p></html>",
        412 => "<html><h1>Precondition Failed</h1><p>A precondition for this request was not met.</p></html>",
        413 => "<html><h1>Request Entity Too Large</h1><p>The body of your request was too large for this server.</p></html>",
        416 => "<html><h1>Requested Range Not Satisfiable</h1><p>The Range requested is not available.</p></html>",
        422 => "<html><h1>Unprocessable Entity</h1><p>Unable to process the contained instructions</p></html>",
        499 => "<html><h1>Client Disconnect</h1><p>The client was disconnected during request.</p></html>",
        500 => "<html><h1>Internal Error</h1><p>The server has either erred or is incapable of performing the requested operation.</p></html>",
        503 => "<html><h1>Service Unavailable</h1><p>The server is currently unavailable. Please try again at a later time.</p></html>",
        507 => "<html><h1>Insufficient Storage</h1><p>There was not enough space to save the resource.</p></html>",
        _ => return None,
    })
}

/// Gives an answer Swift's body and content type when it has none: the standard body of its
/// status, or an empty `text/html; charset=UTF-8` one (Swift's 201, 204, ...).
pub fn swift_defaults(resp: &mut Response) {
    use axum::body::HttpBody as _;
    if resp.headers().contains_key(http::header::CONTENT_TYPE)
        || resp.extensions().get::<NoContentType>().is_some()
    {
        return;
    }
    let empty = resp.body().size_hint().exact() == Some(0);
    if empty {
        if let Some(b) = swift_standard_body(resp.status()) {
            *resp.body_mut() = axum::body::Body::from(b);
            resp.headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(b.len()));
        }
    }
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(SWIFT_HTML),
    );
}

/// Marks a response Swift sends without any `Content-Type` (a successful CORS preflight,
/// whose headers Swift replaces wholesale): [`swift_defaults`] leaves it so.
#[derive(Debug, Clone, Copy)]
pub struct NoContentType;

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
            | Error::BadSyncMessage { .. }
            | Error::BadCert { .. } => StatusCode::BAD_REQUEST,
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
            Error::Refused(r) => r.status(),
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
            Error::BadCert { .. } => "bad-cert",
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
            Error::Refused(_) => "refused",
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
        // Swift's words where Swift has them (its own sentence, or the standard body of the
        // status); otherwise ours. Internal details stay in the log; clients get the code.
        let (body, content_type) = match (&self, swift_standard_body(status)) {
            (Error::Refused(r), _) => (r.to_string(), r.content_type()),
            (Error::LengthRequired, _) => {
                let r = Refusal::MissingContentLength;
                (r.to_string(), r.content_type())
            }
            // Swift's container_quotas and account_quotas say so, whatever was exceeded
            // (`X-Outpost-Reason` names it).
            (Error::QuotaExceeded { .. }, _) => ("Upload exceeds quota.".to_owned(), SWIFT_HTML),
            (Error::NotInCluster { .. }, _) => (format!("{self}\n"), "text/plain; charset=utf-8"),
            (_, Some(b)) => (b.to_owned(), SWIFT_HTML),
            _ if self.blame() == Blame::Internal => {
                (format!("{}\n", self.code()), "text/plain; charset=utf-8")
            }
            _ => (format!("{self}\n"), "text/plain; charset=utf-8"),
        };
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            outpost_proto::headers::ERROR,
            HeaderValue::from_static(self.code()),
        );
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        // Ours says why in a header where Swift's body does not.
        if !matches!(self, Error::Refused(_) | Error::LengthRequired)
            && self.blame() == Blame::Downstream
        {
            if let Ok(v) = HeaderValue::from_str(&self.to_string()) {
                h.insert(outpost_proto::headers::REASON, v);
            }
        }
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
