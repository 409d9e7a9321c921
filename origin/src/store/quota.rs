//! Container and account quotas (Swift's `container_quotas` and `account_quotas`
//! middleware): refused writes answer 413.
//!
//! As in Swift, a write is checked before its body is stored, against the counts as they
//! are: an overwrite counts as an addition, and the new size is the stored bytes plus the
//! body's length (a chunked body is checked again with its real size once it is read, where
//! Swift lets it through). A reseller admin's writes are held to the container's quotas
//! only ([`Quotas::Container`]): account quotas are the reseller's to set and exceed.

use std::sync::Arc;

use super::Store;
use crate::db::{ContainerRow, Meta};
use crate::{Error, Result};

/// Container byte quota.
pub const CONTAINER_QUOTA_BYTES: &str = "x-container-meta-quota-bytes";
/// Container object-count quota.
pub const CONTAINER_QUOTA_COUNT: &str = "x-container-meta-quota-count";
/// The legacy account byte quota, user metadata a reseller admin sets (Swift still honours
/// it when [`ACCOUNT_QUOTA_BYTES`] is not set).
pub const ACCOUNT_META_QUOTA_BYTES: &str = "x-account-meta-quota-bytes";
/// Account byte quota (Swift's `X-Account-Sysmeta-Quota-Bytes`, shown as
/// `X-Account-Quota-Bytes`); set only by a reseller admin.
pub const ACCOUNT_QUOTA_BYTES: &str = "x-account-quota-bytes";
/// Account object-count quota (`X-Account-Quota-Count`); set only by a reseller admin.
pub const ACCOUNT_QUOTA_COUNT: &str = "x-account-quota-count";

/// Which quotas a write is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quotas {
    /// None: a peer's copy of a write that was checked where it was accepted.
    Skip,
    /// The container's only: a reseller admin's (or a service's) write.
    Container,
    /// The container's and the account's.
    All,
}

/// A container quota: Swift takes only a value of digits (`isdigit`), anything else is no
/// quota (and refused when set).
fn container_quota(meta: &Meta, key: &str) -> Option<u64> {
    meta.get(key)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
}

/// An account quota as Python's `int()` reads it; negative or unreadable is none.
fn account_quota(v: &str) -> Option<u64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .and_then(|q| u64::try_from(q).ok())
}

/// The account's byte quota: the reseller's `X-Account-Quota-Bytes`, else the legacy
/// metadata (a stored but unreadable first value is no quota, as in Swift).
fn account_bytes_quota(meta: &Meta) -> Option<u64> {
    meta.get(ACCOUNT_QUOTA_BYTES)
        .or_else(|| meta.get(ACCOUNT_META_QUOTA_BYTES))
        .and_then(|v| account_quota(v))
}

impl Store {
    /// Refuses a write of `size` bytes that would take the container or the account past its
    /// quota ([`Quotas::All`]).
    ///
    /// # Errors
    /// [`Error::QuotaExceeded`]; [`Error::Db`].
    pub async fn check_quota(
        self: &Arc<Self>,
        account: &str,
        crow: &ContainerRow,
        size: u64,
    ) -> Result<()> {
        self.check_quotas(account, crow, size, Quotas::All).await
    }

    /// Refuses a write of `size` bytes that would take the container, or with
    /// [`Quotas::All`] the account, past its quota.
    ///
    /// # Errors
    /// [`Error::QuotaExceeded`]; [`Error::Db`].
    pub async fn check_quotas(
        self: &Arc<Self>,
        account: &str,
        crow: &ContainerRow,
        size: u64,
        quotas: Quotas,
    ) -> Result<()> {
        if quotas == Quotas::Skip {
            return Ok(());
        }
        if container_quota(&crow.meta, CONTAINER_QUOTA_BYTES)
            .is_some_and(|q| crow.bytes_used + size > q)
        {
            return Err(Error::QuotaExceeded {
                what: "container bytes",
            });
        }
        if container_quota(&crow.meta, CONTAINER_QUOTA_COUNT)
            .is_some_and(|q| crow.object_count + 1 > q)
        {
            return Err(Error::QuotaExceeded {
                what: "container object count",
            });
        }
        if quotas == Quotas::Container {
            return Ok(());
        }
        let a = account.to_owned();
        let acct = self.blocking(move |s| s.db.get_account(&a)).await?;
        if let Some(acct) = acct {
            if account_bytes_quota(&acct.meta).is_some_and(|q| acct.bytes_used + size > q) {
                return Err(Error::QuotaExceeded {
                    what: "account bytes",
                });
            }
            let count = acct.meta.get(ACCOUNT_QUOTA_COUNT);
            if count
                .and_then(|v| account_quota(v))
                .is_some_and(|q| acct.object_count + 1 > q)
            {
                return Err(Error::QuotaExceeded {
                    what: "account object count",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_values_read_as_swift_reads_them() {
        let meta = |pairs: &[(&str, &str)]| -> Meta {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let m = meta(&[(CONTAINER_QUOTA_BYTES, "10"), (CONTAINER_QUOTA_COUNT, " 3")]);
        assert_eq!(container_quota(&m, CONTAINER_QUOTA_BYTES), Some(10));
        assert_eq!(container_quota(&m, CONTAINER_QUOTA_COUNT), None);
        assert_eq!(account_quota(" 7 "), Some(7));
        assert_eq!(account_quota("-1"), None);
        assert_eq!(account_quota("x"), None);
        let legacy = meta(&[(ACCOUNT_META_QUOTA_BYTES, "5")]);
        assert_eq!(account_bytes_quota(&legacy), Some(5));
        let both = meta(&[(ACCOUNT_META_QUOTA_BYTES, "5"), (ACCOUNT_QUOTA_BYTES, "9")]);
        assert_eq!(account_bytes_quota(&both), Some(9));
        let bad = meta(&[(ACCOUNT_META_QUOTA_BYTES, "5"), (ACCOUNT_QUOTA_BYTES, "x")]);
        assert_eq!(account_bytes_quota(&bad), None);
    }
}
