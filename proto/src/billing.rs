//! Billing: the per-minute records an edge ships (`POST /internal/billing`) and the report
//! the origin's admin API answers (`GET /admin/billing`).
//!
//! The batch keeps the shape it has had since billing shipped (`{"version":1,...}`), so a
//! batch an edge of the previous release spooled still reads.

use serde::{Deserialize, Serialize};

use crate::version::{Format, Wire};

/// Version of [`BillingBatch`].
pub const BATCH_VERSION: u32 = 1;
/// Format version of [`BillingReport`].
pub const REPORT_FORMAT: u32 = 1;

/// One (edge, account, minute) record: bytes sent and requests of successful responses.
/// Final once shipped: the origin replaces the row keyed by `(account, minute, edge)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingRecord {
    /// Edge id.
    pub edge: String,
    /// Account.
    pub account: String,
    /// Minute: unix seconds / 60.
    pub minute: u64,
    /// Bytes sent (response header + body).
    pub bytes: u64,
    /// Successful requests.
    pub requests: u64,
}

/// `POST /internal/billing` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingBatch {
    /// [`BATCH_VERSION`].
    pub version: Format<BATCH_VERSION>,
    /// Records.
    pub records: Vec<BillingRecord>,
}

impl Wire for BillingBatch {
    const WHAT: &'static str = "billing batch";
    const FIELD: &'static str = "version";
    const KNOWN: &'static [u32] = &[BATCH_VERSION];
}

/// `GET /admin/billing` answer: an account's per-minute sums over every edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingReport {
    /// [`REPORT_FORMAT`].
    pub format: Format<REPORT_FORMAT>,
    /// Account.
    pub account: String,
    /// Start (RFC 3339), inclusive.
    pub from: String,
    /// End (RFC 3339), exclusive.
    pub to: String,
    /// Total bytes.
    pub bytes: u64,
    /// Total requests.
    pub requests: u64,
    /// Per minute, in order.
    pub minutes: Vec<ReportMinute>,
}

impl Wire for BillingReport {
    const WHAT: &'static str = "billing report";
    const FIELD: &'static str = "format";
    const KNOWN: &'static [u32] = &[REPORT_FORMAT];
}

/// One minute of a [`BillingReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportMinute {
    /// Start of the minute (RFC 3339).
    pub minute: String,
    /// Bytes.
    pub bytes: u64,
    /// Requests.
    pub requests: u64,
}
