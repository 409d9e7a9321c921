//! The edge's one error type and its mapping to downstream responses.

use http::StatusCode;

/// What can go wrong at the edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A config file problem, naming the key.
    #[error("config: {key}: {reason}")]
    Config {
        /// Dotted key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The host is neither the base domain, a container subdomain nor a mapped custom domain.
    #[error("unknown host {host:?}: no account or container is mapped to it")]
    UnknownHost {
        /// The host.
        host: String,
    },
    /// The request path is malformed.
    #[error("bad path: {0}")]
    BadPath(#[from] outpost_auth::Error),
    /// Nothing is mapped at this path.
    #[error("{what} not found")]
    NotFound {
        /// What.
        what: &'static str,
    },
    /// Access denied.
    #[error("access denied ({})", reason.as_str())]
    Denied {
        /// The machine-readable reason.
        reason: outpost_auth::DenyReason,
    },
    /// Method not served by the edge.
    #[error("method not allowed at the edge")]
    MethodNotAllowed,
    /// A bad login request.
    #[error("bad login request: {reason}")]
    BadLogin {
        /// Why.
        reason: &'static str,
    },
    /// The origin could not be reached or answered badly.
    #[error("origin: {0}")]
    Origin(String),
    /// Signing a generic-mode upstream request with SigV4 (`[generic.sigv4]`) failed: an
    /// internal error, never the client's.
    #[error("sigv4 signing of the upstream request: {0}")]
    UpstreamSigning(#[from] aws_sigv4::http_request::SigningError),
    /// The cache storage failed.
    #[error("cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
    /// I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A request head over a `[limits]` bound, seen before pingora parsed it.
    #[error("{part} longer than {limit} bytes (limits.{})", part.key())]
    HeadTooLarge {
        /// The part over its limit.
        part: crate::head::HeadPart,
        /// The limit in bytes.
        limit: usize,
    },
    /// The client did not send a whole request head within `limits.header_timeout`.
    #[error("request head not received within {timeout:?} (limits.header_timeout)")]
    HeadTimeout {
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// Obtaining, storing or loading a domain's certificate (ACME) failed.
    #[error("certificate for {domain}: {reason}")]
    Cert {
        /// The domain.
        domain: String,
        /// Why (the CA's problem document, the origin's answer, a bad PEM...).
        reason: String,
    },
    /// `limits.max_connections` connections are open.
    #[error("too many connections: {max} are open (limits.max_connections)")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
}

impl Error {
    /// Downstream status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Config { .. }
            | Error::UpstreamSigning(_)
            | Error::Cache(_)
            | Error::Io(_)
            | Error::Cert { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Error::UnknownHost { .. } | Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::BadPath(_) | Error::BadLogin { .. } => StatusCode::BAD_REQUEST,
            Error::Denied { .. } => StatusCode::FORBIDDEN,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Origin(_) => StatusCode::BAD_GATEWAY,
            Error::HeadTooLarge {
                part: crate::head::HeadPart::RequestLine,
                ..
            } => StatusCode::URI_TOO_LONG,
            Error::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::HeadTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::TooManyConnections { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable code for the `X-Outpost-Error` header.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::UnknownHost { .. } => "unknown-host",
            Error::BadPath(_) => "bad-path",
            Error::NotFound { .. } => "not-found",
            Error::Denied { .. } => "denied",
            Error::MethodNotAllowed => "method-not-allowed",
            Error::BadLogin { .. } => "bad-login",
            Error::Origin(_) => "origin",
            Error::UpstreamSigning(_) => "upstream-signing",
            Error::Cache(_) => "cache",
            Error::Io(_) => "io",
            Error::HeadTooLarge { .. } => "head-too-large",
            Error::HeadTimeout { .. } => "head-timeout",
            Error::TooManyConnections { .. } => "too-many-connections",
            Error::Cert { .. } => "cert",
        }
    }
}
