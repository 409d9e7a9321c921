//! Swift's quota headers on account and container writes (`account_quotas`,
//! `container_quotas`), checked before anything else about the request, as Swift's
//! middleware does: who may set them and which values are refused. Enforcement on object
//! writes is the store's (`crate::store::quota`).
//!
//! - Containers: `X-Container-Meta-Quota-Bytes` and `-Quota-Count` are ordinary metadata
//!   the owner sets; a value that is not digits is `400 Invalid bytes quota.` /
//!   `400 Invalid count quota.`.
//! - Accounts: `X-Account-Quota-Bytes` and `X-Account-Quota-Count` (and the legacy
//!   `X-Account-Meta-Quota-Bytes`, which is also kept as metadata), with their `X-Remove-`
//!   forms, are a reseller admin's: anyone else sending one gets `403` (the owner and
//!   anonymous clients too), a reseller's value that is not digits gets Swift's bare `400`.

use http::HeaderMap;

use crate::error::Refusal;
use crate::store::quota::{
    ACCOUNT_META_QUOTA_BYTES, ACCOUNT_QUOTA_BYTES, ACCOUNT_QUOTA_COUNT, CONTAINER_QUOTA_BYTES,
    CONTAINER_QUOTA_COUNT,
};
use crate::{Error, Result};

/// Python's `str.isdigit` on a header value (ASCII digits; Swift's values are ASCII).
fn is_digits(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(u8::is_ascii_digit)
}

/// Refuses a container PUT/POST whose quota metadata Swift refuses (an empty value, a
/// removal, is fine).
///
/// # Errors
/// [`Refusal::InvalidBytesQuota`], [`Refusal::InvalidCountQuota`].
pub(super) fn check_container(h: &HeaderMap) -> Result<()> {
    for (name, refusal) in [
        (CONTAINER_QUOTA_BYTES, Refusal::InvalidBytesQuota),
        (CONTAINER_QUOTA_COUNT, Refusal::InvalidCountQuota),
    ] {
        if let Some(v) = h.get(name) {
            if !v.is_empty() && !is_digits(v.as_bytes()) {
                return Err(Error::Refused(refusal));
            }
        }
    }
    Ok(())
}

/// A non-empty header value.
fn given<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    h.get(name).map(http::HeaderValue::as_bytes)
}

/// The account quota updates of an account PUT/POST (stored under
/// [`ACCOUNT_QUOTA_BYTES`] and [`ACCOUNT_QUOTA_COUNT`]; `None` removes one), as Swift's
/// `account_quotas` translates them: the legacy `X-Account-Meta-Quota-Bytes` (and its
/// removal) stands for `X-Account-Quota-Bytes` unless that one is given, and a removal wins
/// over a value.
///
/// # Errors
/// [`Error::Forbidden`] for anyone but a reseller admin (`reseller`) who sends one of them;
/// [`Refusal::InvalidAccountQuota`] for a value that is not digits.
pub(super) fn account_updates(
    h: &HeaderMap,
    reseller: bool,
) -> Result<Vec<(String, Option<String>)>> {
    let mut wanted: Vec<(&str, Option<&[u8]>)> = Vec::new();
    for (key, legacy) in [
        (ACCOUNT_QUOTA_BYTES, Some(ACCOUNT_META_QUOTA_BYTES)),
        (ACCOUNT_QUOTA_COUNT, None),
    ] {
        let remove_key = format!("x-remove-{}", &key["x-".len()..]);
        let legacy_remove = legacy.map(|l| format!("x-remove-{}", &l["x-".len()..]));
        // `headers.get(new) or legacy`: an empty new header yields to the legacy one.
        let pick = |new: &str, old: Option<&str>| {
            let n = given(h, new);
            match (n, old.and_then(|o| given(h, o))) {
                (Some(v), _) if !v.is_empty() => Some(v),
                (_, Some(l)) => Some(l),
                (n, None) => n,
            }
        };
        let value = pick(key, legacy);
        let remove = pick(&remove_key, legacy_remove.as_deref()).is_some_and(|v| !v.is_empty());
        wanted.push((key, if remove { Some(&b""[..]) } else { value }));
    }
    if !reseller {
        if wanted.iter().any(|(_, v)| v.is_some()) {
            return Err(Error::Forbidden {
                reason: "only a reseller admin may set account quotas",
            });
        }
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (key, v) in wanted {
        let Some(v) = v else { continue };
        if v.is_empty() {
            out.push((key.to_owned(), None));
        } else if is_digits(v) {
            out.push((
                key.to_owned(),
                Some(String::from_utf8_lossy(v).into_owned()),
            ));
        } else {
            return Err(Error::Refused(Refusal::InvalidAccountQuota));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn container_quotas_must_be_digits() {
        assert!(check_container(&headers(&[(CONTAINER_QUOTA_BYTES, "10")])).is_ok());
        assert!(check_container(&headers(&[(CONTAINER_QUOTA_BYTES, "")])).is_ok());
        for bad in ["-1", "1.5", "abc", "1e3"] {
            assert!(matches!(
                check_container(&headers(&[(CONTAINER_QUOTA_COUNT, bad)])),
                Err(Error::Refused(Refusal::InvalidCountQuota))
            ));
        }
    }

    #[test]
    fn account_quotas_are_the_resellers() {
        let legacy = headers(&[(ACCOUNT_META_QUOTA_BYTES, "10")]);
        assert!(matches!(
            account_updates(&legacy, false),
            Err(Error::Forbidden { .. })
        ));
        assert!(
            account_updates(&headers(&[("x-account-meta-color", "red")]), false)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            account_updates(&legacy, true).unwrap(),
            [(ACCOUNT_QUOTA_BYTES.to_owned(), Some("10".to_owned()))]
        );
        let both = headers(&[(ACCOUNT_META_QUOTA_BYTES, "10"), (ACCOUNT_QUOTA_BYTES, "7")]);
        assert_eq!(
            account_updates(&both, true).unwrap(),
            [(ACCOUNT_QUOTA_BYTES.to_owned(), Some("7".to_owned()))]
        );
        let remove = headers(&[
            ("x-remove-account-quota-count", "x"),
            (ACCOUNT_QUOTA_COUNT, "5"),
        ]);
        assert_eq!(
            account_updates(&remove, true).unwrap(),
            [(ACCOUNT_QUOTA_COUNT.to_owned(), None)]
        );
        assert!(matches!(
            account_updates(&headers(&[(ACCOUNT_QUOTA_COUNT, "")]), false),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(
            account_updates(&headers(&[(ACCOUNT_QUOTA_BYTES, "-5")]), true),
            Err(Error::Refused(Refusal::InvalidAccountQuota))
        ));
    }
}
