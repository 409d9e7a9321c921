//! Validation of a new object or a metadata change, on typed values the HTTP layer extracted
//! from the request ([`crate::request`] builds them from headers): size and length rules,
//! Swift's metadata limits, expiry resolution, content-type choice. One definition serves
//! the single-node handlers and the cluster proxy.

use std::sync::Arc;

use super::Store;
use crate::db::{ContainerRow, Meta};
use crate::names::{MAX_META_COUNT, MAX_META_NAME, MAX_META_OVERALL, MAX_META_VALUE};
use crate::{Error, Refusal, Result};

/// A requested expiry (`X-Delete-At` or `X-Delete-After`), not yet resolved against the
/// clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Epoch seconds.
    At(u64),
    /// Seconds from now.
    After(u64),
}

/// Resolves an expiry to epoch seconds.
///
/// # Errors
/// [`Error::Refused`] for a time in the past or a zero delay.
pub fn resolve_expiry(e: Option<Expiry>, now: u64) -> Result<Option<u64>> {
    match e {
        None => Ok(None),
        Some(Expiry::At(t)) if t <= now => Err(Error::Refused(Refusal::DeleteAtInPast)),
        Some(Expiry::At(t)) => Ok(Some(t)),
        Some(Expiry::After(0)) => Err(Error::Refused(Refusal::DeleteAfterInPast)),
        Some(Expiry::After(d)) => Ok(Some(now + d)),
    }
}

/// One metadata item of a request, in request order, with its raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaUpdate {
    /// Drop the stored item `name` (`X-Remove-...`).
    Remove(String),
    /// User metadata: `name` is `<prefix><key>`, `key_len` the length of `<key>`.
    User {
        /// Stored name.
        name: String,
        /// Length of the key after the prefix.
        key_len: usize,
        /// Raw value.
        value: Vec<u8>,
    },
    /// A stored system header (`Cache-Control`, `X-Container-Read`, ...).
    System {
        /// Stored name.
        name: String,
        /// Raw value.
        value: Vec<u8>,
    },
}

/// Checks metadata items against Swift's limits and returns them as (name, value or removal).
///
/// # Errors
/// [`Error::Refused`] naming the first limit broken, in request order, with Swift's words;
/// [`Error::BadHeader`] for a value that is not UTF-8.
pub fn check_meta(items: Vec<MetaUpdate>) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::with_capacity(items.len());
    let mut overall = 0usize;
    // Swift counts user metadata only, not system headers or removals.
    let mut count = 0usize;
    for item in items {
        let (name, key_len, value) = match item {
            MetaUpdate::Remove(name) => {
                out.push((name, None));
                continue;
            }
            MetaUpdate::User {
                name,
                key_len,
                value,
            } => (name, Some(key_len), value),
            MetaUpdate::System { name, value } => (name, None, value),
        };
        // Swift keeps metadata as UTF-8 and clients send it raw (`swift post -m Title:Фото`).
        let v = String::from_utf8(value).map_err(|_| Error::BadHeader {
            name: "metadata",
            reason: "values must be UTF-8",
        })?;
        if let Some(key_len) = key_len {
            if key_len == 0 {
                return Err(Error::Refused(Refusal::MetaNameEmpty));
            }
            if key_len > MAX_META_NAME {
                return Err(Error::Refused(Refusal::MetaNameTooLong {
                    header: swift_meta_header(&name, key_len),
                }));
            }
            if v.len() > MAX_META_VALUE {
                return Err(Error::Refused(Refusal::MetaValueTooLong {
                    header: swift_meta_header(&name, key_len),
                }));
            }
            overall += key_len + v.len();
            count += 1;
        }
        out.push((name, Some(v.trim().to_owned())));
    }
    if count > MAX_META_COUNT {
        return Err(Error::Refused(Refusal::MetaTooMany));
    }
    if overall > MAX_META_OVERALL {
        return Err(Error::Refused(Refusal::MetaTooLarge));
    }
    Ok(out)
}

/// A metadata header as Swift's refusals print it: the lower-case prefix, then the key
/// title-cased (`x-container-meta-Color`), as webob hands it to Swift's checks.
fn swift_meta_header(name: &str, key_len: usize) -> String {
    // Header names are ASCII, so any split is at a character boundary.
    let split = name.len().saturating_sub(key_len);
    let (prefix, key) = (
        name.get(..split).unwrap_or(""),
        name.get(split..).unwrap_or(name),
    );
    format!("{prefix}{}", crate::names::title_case(key))
}

/// The metadata a new version stores: the items set to a non-empty value.
pub fn version_meta(updates: Vec<(String, Option<String>)>) -> Meta {
    let mut meta = Meta::new();
    for (k, v) in updates {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            meta.insert(k, v);
        }
    }
    meta
}

/// The content type a new object gets: the given one, or one guessed from the name when none
/// was given or detection was asked for.
pub fn content_type(given: Option<&str>, detect: bool, name: &str) -> String {
    match given.map(str::trim) {
        Some(ct) if !ct.is_empty() && !detect => ct.to_owned(),
        _ => mime_guess::from_path(name)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_owned(),
    }
}

/// Cleans container ACL values (`X-Container-Read`/`-Write`) as Swift stores them
/// ([`outpost_auth::acl::clean`]); at most 4096 bytes, no control characters.
///
/// # Errors
/// [`Error::BadHeader`] for a long value or a control character, [`Refusal::ContainerAcl`]
/// with Swift's sentence for an ACL Swift refuses.
pub fn clean_acls(updates: &mut [(String, Option<String>)]) -> Result<()> {
    use outpost_auth::acl::{clean, AclHeader};
    for (k, v) in updates.iter_mut() {
        let header = match k.as_str() {
            "x-container-read" => AclHeader::Read,
            "x-container-write" => AclHeader::Write,
            _ => continue,
        };
        if let Some(v) = v {
            if v.len() > 4096 || v.chars().any(char::is_control) {
                return Err(Error::BadHeader {
                    name: "x-container-read",
                    reason: "ACL too long or contains control characters",
                });
            }
            *v = clean(header, v).map_err(|e| Error::Refused(Refusal::ContainerAcl(e)))?;
        }
    }
    Ok(())
}

/// What a PUT of a new object asks for, typed.
#[derive(Debug, Clone, Default)]
pub struct ObjectHeaders {
    /// Announced body length.
    pub content_length: Option<u64>,
    /// The body is chunked (length unknown until it ends).
    pub chunked: bool,
    /// Requested expiry.
    pub expiry: Option<Expiry>,
    /// Metadata items, in request order.
    pub meta: Vec<MetaUpdate>,
    /// Given content type.
    pub content_type: Option<String>,
    /// `X-Detect-Content-Type: true`.
    pub detect_content_type: bool,
    /// The client's MD5 of the body (unquoted, lower case).
    pub etag: Option<String>,
}

/// A validated new object, before its body is read.
#[derive(Debug, Clone)]
pub struct NewObject {
    /// Announced body length (`None`: chunked).
    pub expected: Option<u64>,
    /// Metadata to store.
    pub meta: Meta,
    /// Expiry, epoch seconds.
    pub delete_at: Option<u64>,
    /// Content type.
    pub content_type: String,
    /// The client's MD5, checked once the body is read.
    pub etag: Option<String>,
}

impl Store {
    /// Validates a new object `name` of `account`/`crow` before its body is read: a length is
    /// known or the body is chunked, the length is within `max_object_size`, the write fits
    /// the quotas (when `quota`; peers' copies are not checked again), the expiry is in the
    /// future, the metadata is within Swift's limits.
    ///
    /// # Errors
    /// [`Error::LengthRequired`], [`Error::TooLarge`], [`Error::QuotaExceeded`],
    /// [`Error::BadHeader`].
    pub async fn validate_put(
        self: &Arc<Self>,
        account: &str,
        crow: &ContainerRow,
        name: &str,
        h: ObjectHeaders,
        quota: bool,
    ) -> Result<NewObject> {
        let quotas = if quota {
            super::quota::Quotas::All
        } else {
            super::quota::Quotas::Skip
        };
        self.validate_put_quotas(account, crow, name, h, quotas)
            .await
    }

    /// [`Store::validate_put`] holding the write to `quotas` (a reseller admin's writes are
    /// not held to the account's quotas).
    ///
    /// # Errors
    /// As [`Store::validate_put`].
    pub async fn validate_put_quotas(
        self: &Arc<Self>,
        account: &str,
        crow: &ContainerRow,
        name: &str,
        h: ObjectHeaders,
        quotas: super::quota::Quotas,
    ) -> Result<NewObject> {
        let expected = h.content_length;
        if expected.is_none() && !h.chunked {
            return Err(Error::LengthRequired);
        }
        let max = self.cfg.max_object_size;
        if expected.is_some_and(|e| e > max) {
            return Err(Error::TooLarge { max });
        }
        self.check_quotas(account, crow, expected.unwrap_or(0), quotas)
            .await?;
        let now = self.clock.wall_secs();
        let delete_at = resolve_expiry(h.expiry, now)?;
        let meta = version_meta(check_meta(h.meta)?);
        let content_type = content_type(h.content_type.as_deref(), h.detect_content_type, name);
        Ok(NewObject {
            expected,
            meta,
            delete_at,
            content_type,
            etag: h.etag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        assert_eq!(resolve_expiry(None, 10).unwrap(), None);
        assert_eq!(resolve_expiry(Some(Expiry::At(11)), 10).unwrap(), Some(11));
        assert!(resolve_expiry(Some(Expiry::At(10)), 10).is_err());
        assert_eq!(
            resolve_expiry(Some(Expiry::After(5)), 10).unwrap(),
            Some(15)
        );
        assert!(resolve_expiry(Some(Expiry::After(0)), 10).is_err());
    }

    #[test]
    fn meta_limits_in_request_order() {
        let user = |k: &str, v: &[u8]| MetaUpdate::User {
            name: format!("x-object-meta-{k}"),
            key_len: k.len(),
            value: v.to_vec(),
        };
        let ok = check_meta(vec![
            user("a", b" 1 "),
            MetaUpdate::Remove("x-object-meta-b".into()),
        ])
        .unwrap();
        assert_eq!(
            ok,
            vec![
                ("x-object-meta-a".into(), Some("1".into())),
                ("x-object-meta-b".into(), None)
            ]
        );
        let long = "k".repeat(MAX_META_NAME + 1);
        let err = check_meta(vec![user(&long, b"v"), user("x", &[0xff])]).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
        let err = check_meta(vec![user("x", &[0xff]), user(&long, b"v")]).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        let many: Vec<_> = (0..=MAX_META_COUNT)
            .map(|i| user(&format!("k{i}"), b"v"))
            .collect();
        assert!(check_meta(many).is_err());
        let big: Vec<_> = (0..20)
            .map(|i| user(&format!("k{i}"), "v".repeat(250).as_bytes()))
            .collect();
        assert!(check_meta(big).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Some(" text/x "), false, "a.png"), "text/x");
        assert_eq!(content_type(Some("text/x"), true, "a.png"), "image/png");
        assert_eq!(content_type(None, false, "a"), "application/octet-stream");
    }
}
