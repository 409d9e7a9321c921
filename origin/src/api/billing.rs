//! Billing and log delivery endpoints.
//!
//! - `POST /internal/billing` (internal secret): an edge's batch of final per-minute records,
//!   stored by replacing (see [`crate::billing`]).
//! - `PUT /internal/logs?account=A&object=O` (internal secret): a gzip-compressed log object an
//!   edge delivers; written into the account's `.outpost_logs` container (created if missing)
//!   through the same object write path as a client PUT. `404` when the account does not exist.
//! - `GET /admin/billing?account=A&from=T&to=T` (internal secret or a reseller admin's token):
//!   per-minute sums over every edge for minutes starting in `[from, to)`; `T` is RFC 3339 or
//!   unix seconds.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Capability, Identity, Shared};
use outpost_proto::billing::{BillingBatch, BillingReport, ReportMinute};
use outpost_proto::{logs, meta::LOGS_CONTAINER};

use crate::billing::{self, MinuteTotal};
use crate::{Error, Result};

/// Largest billing batch accepted.
const MAX_BATCH_BYTES: usize = 32 << 20;
/// Largest log object accepted.
const MAX_LOG_OBJECT_BYTES: usize = 256 << 20;
/// Most records in one batch.
const MAX_RECORDS: usize = 200_000;

fn internal_only(st: &Shared, headers: &http::HeaderMap) -> Result<()> {
    st.require(headers, Capability::Usage).map(drop)
}

fn bad(code: &'static str, msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(outpost_proto::headers::ERROR, code)],
        format!("{msg}\n"),
    )
        .into_response()
}

async fn read_body(req: Request, max: usize) -> Result<bytes::Bytes> {
    axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| Error::TooLarge { max: max as u64 })
}

fn store(st: &Shared) -> Result<std::sync::Arc<billing::BillingStore>> {
    billing::store(&st.store.cfg.data_dir, st.store.metrics.registry())
}

/// `POST /internal/billing`.
pub async fn ingest(State(st): State<Shared>, req: Request) -> Response {
    match ingest_inner(st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn ingest_inner(st: Shared, req: Request) -> Result<Response> {
    internal_only(&st, req.headers())?;
    let body = read_body(req, MAX_BATCH_BYTES).await?;
    // An unknown version is refused by number (`outpost_proto::Error::UnknownFormat`).
    let batch: BillingBatch = match outpost_proto::from_json(&body) {
        Ok(b) => b,
        Err(e) => return Ok(bad("bad-billing-batch", format!("bad billing batch: {e}"))),
    };
    if batch.records.len() > MAX_RECORDS {
        return Ok(bad(
            "bad-billing-batch",
            format!("at most {MAX_RECORDS} records per batch"),
        ));
    }
    for r in &batch.records {
        crate::names::check_account(&r.account)?;
        if r.edge.is_empty() || r.edge.len() > 255 {
            return Ok(bad(
                "bad-billing-batch",
                "edge ids are 1-255 bytes".to_owned(),
            ));
        }
        if r.minute > u64::from(u32::MAX) {
            return Ok(bad(
                "bad-billing-batch",
                format!("minute {} out of range", r.minute),
            ));
        }
    }
    let n = batch.records.len();
    let s = store(&st)?;
    tokio::task::spawn_blocking(move || s.upsert(&batch.records))
        .await
        .map_err(|_| Error::Task)??;
    Ok((
        [(http::header::CONTENT_TYPE, "application/json")],
        format!("{{\"stored\":{n}}}\n"),
    )
        .into_response())
}

/// `PUT /internal/logs`.
pub async fn put_log(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    match put_log_inner(st, q, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn put_log_inner(st: Shared, q: HashMap<String, String>, req: Request) -> Result<Response> {
    internal_only(&st, req.headers())?;
    let account = q.get(logs::PARAM_ACCOUNT).cloned().ok_or(Error::BadQuery {
        name: logs::PARAM_ACCOUNT,
        reason: "is required",
    })?;
    let object = q.get(logs::PARAM_OBJECT).cloned().ok_or(Error::BadQuery {
        name: logs::PARAM_OBJECT,
        reason: "is required",
    })?;
    crate::names::check_account(&account)?;
    crate::names::check_object(&object)?;
    if logs::LogKind::of_object(&object).is_none() {
        return Err(Error::BadQuery {
            name: "object",
            reason: "must start with access/ or billing/",
        });
    }
    let a = account.clone();
    let ts = st.store.clock.now();
    super::blocking(&st, move |st| {
        if st.db.get_account(&a)?.is_none() {
            return Err(Error::NotFound { what: "account" });
        }
        if st.db.get_container(&a, LOGS_CONTAINER)?.is_none() {
            st.db.put_container(&a, LOGS_CONTAINER, ts, &[])?;
        }
        Ok(())
    })
    .await?;
    let body = read_body(req, MAX_LOG_OBJECT_BYTES).await?;
    st.store
        .put_bytes(&account, LOGS_CONTAINER, &object, logs::CONTENT_TYPE, body)
        .await?;
    Ok(super::status(StatusCode::CREATED))
}

fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses RFC 3339 or unix seconds.
fn parse_time(name: &'static str, v: &str) -> Result<u64> {
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(secs);
    }
    OffsetDateTime::parse(v, &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .ok_or(Error::BadQuery {
            name,
            reason: "must be RFC 3339 (2026-01-31T12:00:00Z) or unix seconds",
        })
}

/// `GET /admin/billing`.
pub async fn report(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> Response {
    match report_inner(st, q, headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn report_inner(
    st: Shared,
    q: HashMap<String, String>,
    headers: http::HeaderMap,
) -> Result<Response> {
    match st.identify(&headers) {
        Identity::User { reseller: true, .. } => {}
        ref i if i.can(Capability::Operate) => {}
        Identity::Service(_) => {
            return Err(Error::Forbidden {
                reason: Capability::Operate.denial(),
            })
        }
        Identity::Anonymous => {
            return Err(Error::Unauthorized {
                reason: "billing reports need the admin credential or a reseller admin token",
            })
        }
        Identity::User { .. } | Identity::Member { .. } => {
            return Err(Error::Forbidden {
                reason: "billing reports are for reseller admins",
            })
        }
    }
    let account = q.get("account").cloned().ok_or(Error::BadQuery {
        name: "account",
        reason: "is required",
    })?;
    crate::names::check_account(&account)?;
    let from = parse_time(
        "from",
        q.get("from").ok_or(Error::BadQuery {
            name: "from",
            reason: "is required",
        })?,
    )?;
    let to = parse_time(
        "to",
        q.get("to").ok_or(Error::BadQuery {
            name: "to",
            reason: "is required",
        })?,
    )?;
    if to <= from {
        return Err(Error::BadQuery {
            name: "to",
            reason: "must be after from",
        });
    }
    let s = store(&st)?;
    let a = account.clone();
    // Minutes that start in [from, to).
    let rows: Vec<MinuteTotal> =
        tokio::task::spawn_blocking(move || s.report(&a, from.div_ceil(60), to.div_ceil(60)))
            .await
            .map_err(|_| Error::Task)??;
    let report = BillingReport {
        format: outpost_proto::Format,
        account,
        from: rfc3339(from),
        to: rfc3339(to),
        bytes: rows.iter().map(|r| r.bytes).sum(),
        requests: rows.iter().map(|r| r.requests).sum(),
        minutes: rows
            .iter()
            .map(|r| ReportMinute {
                minute: rfc3339(r.minute * 60),
                bytes: r.bytes,
                requests: r.requests,
            })
            .collect(),
    };
    let body = serde_json::to_string(&report).map_err(|_| Error::Task)?;
    Ok((
        [(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
