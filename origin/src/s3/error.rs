//! The one place the S3 front-end turns the crate's [`Error`] into an S3 error (code, status,
//! message; s3s writes the XML). The Swift front-end's counterpart is `crate::error`.
//!
//! Client faults keep their 4xx meaning under S3's names; storage faults are
//! `InternalError` / `ServiceUnavailable` and are logged here, once.

use s3s::{S3Error, S3ErrorCode};

use crate::Error;

/// What a `NotFound` from the store means for the operation at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// `NoSuchBucket`.
    Bucket,
    /// `NoSuchKey`.
    Key,
}

/// The S3 form of a store error; `missing` names what a `NotFound` means here.
pub fn to_s3(e: Error, missing: Missing) -> S3Error {
    use S3ErrorCode as C;
    let (code, msg): (C, String) = match &e {
        Error::NotFound { what } => match (*what, missing) {
            ("container", _) | (_, Missing::Bucket) => (
                C::NoSuchBucket,
                "The specified bucket does not exist".into(),
            ),
            _ => (C::NoSuchKey, "The specified key does not exist.".into()),
        },
        Error::BadHeader { .. } | Error::BadQuery { .. } | Error::BadName { .. } => {
            (C::InvalidArgument, e.to_string())
        }
        Error::BadManifest { .. } => (C::InvalidPart, e.to_string()),
        Error::LengthRequired => (C::MissingContentLength, e.to_string()),
        Error::TooLarge { .. } => (C::EntityTooLarge, e.to_string()),
        Error::QuotaExceeded { .. } => (C::Custom("QuotaExceeded".into()), e.to_string()),
        Error::PreconditionFailed { .. } => (C::PreconditionFailed, e.to_string()),
        Error::RangeNotSatisfiable { .. } => (C::InvalidRange, e.to_string()),
        Error::EtagMismatch => (C::BadDigest, e.to_string()),
        Error::RequestTimeout { .. } => (C::RequestTimeout, e.to_string()),
        Error::ClientDisconnect => (C::IncompleteBody, e.to_string()),
        Error::Conflict { .. } => (C::OperationAborted, e.to_string()),
        Error::Unauthorized { .. } | Error::Forbidden { .. } => (C::AccessDenied, e.to_string()),
        Error::MethodNotAllowed => (C::MethodNotAllowed, e.to_string()),
        Error::InsufficientStorage | Error::Unavailable { .. } => {
            tracing::warn!(error = %e, "S3 request failed");
            (C::ServiceUnavailable, e.to_string())
        }
        Error::NotInCluster { .. } => (C::NotImplemented, e.to_string()),
        _ => {
            tracing::error!(error = %e, "S3 request failed");
            (C::InternalError, "We encountered an internal error.".into())
        }
    };
    let mut err = S3Error::with_message(code, msg);
    if let Error::QuotaExceeded { .. } = e {
        err.set_status_code(http::StatusCode::FORBIDDEN);
    }
    err
}

/// [`to_s3`] for operations on a bucket.
pub fn bucket(e: Error) -> S3Error {
    to_s3(e, Missing::Bucket)
}

/// [`to_s3`] for operations on a key.
pub fn key(e: Error) -> S3Error {
    to_s3(e, Missing::Key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let c = |e: Error, m| to_s3(e, m).code().as_str().to_owned();
        assert_eq!(
            c(Error::NotFound { what: "object" }, Missing::Key),
            "NoSuchKey"
        );
        assert_eq!(
            c(Error::NotFound { what: "container" }, Missing::Key),
            "NoSuchBucket"
        );
        assert_eq!(c(Error::EtagMismatch, Missing::Key), "BadDigest");
        assert_eq!(c(Error::Task, Missing::Key), "InternalError");
        let q = to_s3(
            Error::QuotaExceeded {
                what: "account bytes",
            },
            Missing::Key,
        );
        assert_eq!(q.status_code(), Some(http::StatusCode::FORBIDDEN));
    }
}
