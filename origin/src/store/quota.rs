//! Container and account quotas (Swift's `container_quotas` and `account_quotas`
//! middleware): refused writes answer 413.

use std::sync::Arc;

use super::Store;
use crate::db::{ContainerRow, Meta};
use crate::{Error, Result};

/// Container byte quota.
const CONTAINER_QUOTA_BYTES: &str = "x-container-meta-quota-bytes";
/// Container object-count quota.
const CONTAINER_QUOTA_COUNT: &str = "x-container-meta-quota-count";
/// Account byte quota; set only by a reseller admin.
pub const ACCOUNT_QUOTA_BYTES: &str = "x-account-meta-quota-bytes";

fn quota(meta: &Meta, key: &str) -> Option<u64> {
    meta.get(key).and_then(|v| v.trim().parse().ok())
}

impl Store {
    /// Refuses a write of `size` bytes that would take the container or the account past its
    /// quota. Like Swift, an overwrite is counted as an addition (quotas are approximate).
    ///
    /// # Errors
    /// [`Error::QuotaExceeded`]; [`Error::Db`].
    pub async fn check_quota(
        self: &Arc<Self>,
        account: &str,
        crow: &ContainerRow,
        size: u64,
    ) -> Result<()> {
        if quota(&crow.meta, CONTAINER_QUOTA_BYTES).is_some_and(|q| crow.bytes_used + size > q) {
            return Err(Error::QuotaExceeded {
                what: "container bytes",
            });
        }
        if quota(&crow.meta, CONTAINER_QUOTA_COUNT).is_some_and(|q| crow.object_count + 1 > q) {
            return Err(Error::QuotaExceeded {
                what: "container object count",
            });
        }
        let a = account.to_owned();
        let acct = self.blocking(move |s| s.db.get_account(&a)).await?;
        if let Some(acct) = acct {
            if quota(&acct.meta, ACCOUNT_QUOTA_BYTES).is_some_and(|q| acct.bytes_used + size > q) {
                return Err(Error::QuotaExceeded {
                    what: "account bytes",
                });
            }
        }
        Ok(())
    }
}
