//! The order loop of an edge with `[acme]`: which mapped domains need a certificate, the
//! origin's lease, the ACME order itself (HTTP-01), storing the result at the origin.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use outpost_proto::certs::{CertRecord, ChallengeRecord, KeyPem, LeaseAnswer, LeaseRequest};
use outpost_proto::paths;

use super::{leaf_info, now_secs, AcmeConfig, CertSync};
use crate::catalog::CatalogHandle;
use crate::Error;

fn cert_err(domain: &str, reason: impl std::fmt::Display) -> Error {
    Error::Cert {
        domain: domain.to_owned(),
        reason: reason.to_string(),
    }
}

/// The ACME account of this edge: restored from `<state_dir>/account.json`, else created
/// (and saved, owner-only) on first use.
async fn account(cfg: &AcmeConfig, domain: &str) -> Result<Account, Error> {
    let builder = || match &cfg.ca_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let bad = |e: &dyn std::fmt::Display| cert_err(domain, format!("ACME account: {e}"));
    let path = cfg.state_dir.join("account.json");
    if let Ok(text) = std::fs::read(&path) {
        if let Ok(creds) = serde_json::from_slice::<AccountCredentials>(&text) {
            let b = builder().map_err(|e| bad(&e))?;
            return b.from_credentials(creds).await.map_err(|e| bad(&e));
        }
        tracing::warn!(path = %path.display(), "unreadable ACME account file; creating a new account");
    }
    let contact: Vec<&str> = cfg.contact.iter().map(String::as_str).collect();
    let (acct, creds) = builder()
        .map_err(|e| bad(&e))?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await
        .map_err(|e| bad(&e))?;
    std::fs::create_dir_all(&cfg.state_dir)?;
    let text = serde_json::to_vec(&creds).map_err(|e| bad(&e))?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        o.mode(0o600);
        let mut f = o.open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(acct)
}

/// Asks the origin for the domain's lease (`ttl` 0 releases it).
async fn lease(
    sync: &CertSync,
    domain: &str,
    holder: &str,
    ttl: Duration,
) -> Result<LeaseAnswer, Error> {
    let path = format!("{}/{domain}/lease", paths::CERTS);
    let req = LeaseRequest {
        format: outpost_proto::Format,
        holder: holder.to_owned(),
        ttl_secs: ttl.as_secs(),
    };
    let resp = sync.send_json(reqwest::Method::POST, &path, &req).await?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Error::Origin(format!("{path}: {e}")))?;
    if !status.is_success() && status != reqwest::StatusCode::CONFLICT {
        return Err(Error::Origin(format!("{path}: HTTP {status}")));
    }
    outpost_proto::from_json(&bytes).map_err(|e| Error::Origin(format!("{path}: {e}")))
}

/// Stores an issued record at the origin (the feed then tells every edge).
async fn store(sync: &CertSync, rec: &CertRecord) -> Result<(), Error> {
    let path = format!("{}/{}", paths::CERTS, rec.domain);
    let resp = sync.send_json(reqwest::Method::PUT, &path, rec).await?;
    if !resp.status().is_success() {
        return Err(Error::Origin(format!("{path}: HTTP {}", resp.status())));
    }
    Ok(())
}

/// One ACME order for `domain` answered by HTTP-01; the issued record.
async fn order(
    sync: &CertSync,
    acct: &Account,
    cfg: &AcmeConfig,
    domain: &str,
) -> Result<CertRecord, Error> {
    let e = |what: &str, err: &dyn std::fmt::Display| cert_err(domain, format!("{what}: {err}"));
    let ids = [Identifier::Dns(domain.to_owned())];
    let mut order = acct
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|x| e("new order", &x))?;
    let mut tokens = Vec::new();
    {
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let mut a = a.map_err(|x| e("authorization", &x))?;
            match a.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => return Err(cert_err(domain, format!("authorization is {other:?}"))),
            }
            let mut ch = a
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| cert_err(domain, "the CA offers no http-01 challenge"))?;
            let rec = ChallengeRecord {
                format: outpost_proto::Format,
                domain: domain.to_owned(),
                token: ch.token.clone(),
                key_authorization: ch.key_authorization().as_str().to_owned(),
                expires_at: now_secs() + cfg.order_timeout.as_secs() + 60,
            };
            sync.publish_challenge(&rec).await?;
            tokens.push(rec.token);
            ch.set_ready().await.map_err(|x| e("challenge", &x))?;
        }
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(cfg.order_timeout);
    let status = order.poll_ready(&retries).await;
    for t in &tokens {
        sync.forget_challenge(t);
    }
    match status.map_err(|x| e("validation", &x))? {
        OrderStatus::Ready => {}
        other => {
            return Err(cert_err(
                domain,
                format!("order is {other:?} after validation"),
            ))
        }
    }
    // A fresh key per certificate (rcgen, ECDSA P-256), never reused across renewals.
    let key_pem = order.finalize().await.map_err(|x| e("finalize", &x))?;
    let chain = order
        .poll_certificate(&retries)
        .await
        .map_err(|x| e("certificate", &x))?;
    let (not_before, not_after, issuer) = leaf_info(domain, &chain)?;
    Ok(CertRecord {
        format: outpost_proto::Format,
        domain: domain.to_owned(),
        cert_pem: chain,
        key_pem: KeyPem::new(key_pem),
        not_after,
        issued_at: not_before,
        issuer,
    })
}

/// Orders (or renews) `domain` under the lease; `Ok(false)` when another edge holds it or the
/// origin already has a current certificate.
async fn attempt(
    sync: &CertSync,
    acct: &mut Option<Account>,
    cfg: &AcmeConfig,
    edge_id: &str,
    domain: &str,
) -> Result<bool, Error> {
    let l = lease(sync, domain, edge_id, cfg.lease_ttl).await?;
    if !l.granted {
        sync.with_status(domain, |s| s.lease_holder = Some(l.holder.clone()));
        return Ok(false);
    }
    sync.with_status(domain, |s| s.lease_holder = None);
    // Another edge may have stored a certificate since the feed last said so.
    if let Some(rec) = sync.get_record(domain).await? {
        sync.install(&rec)?;
        if !sync.due(domain, now_secs()) {
            let _ = lease(sync, domain, edge_id, Duration::ZERO).await;
            return Ok(false);
        }
    }
    let result = async {
        if acct.is_none() {
            *acct = Some(account(cfg, domain).await?);
        }
        let a = acct
            .as_ref()
            .ok_or_else(|| cert_err(domain, "no ACME account"))?;
        let rec = order(sync, a, cfg, domain).await?;
        store(sync, &rec).await?;
        sync.install(&rec)?;
        Ok::<_, Error>(())
    }
    .await;
    // Released whatever happened: the next attempt (this edge's or another's) need not wait.
    if let Err(e) = lease(sync, domain, edge_id, Duration::ZERO).await {
        tracing::warn!(domain, error = %e, "releasing the certificate lease failed");
    }
    result.map(|()| true)
}

/// Checks every mapped, allowed domain each `check_interval` and orders what is missing or
/// due, forever. Runs on the feed runtime.
pub async fn run(
    sync: Arc<CertSync>,
    cfg: AcmeConfig,
    catalog: Arc<CatalogHandle>,
    edge_id: String,
) {
    let mut acct: Option<Account> = None;
    loop {
        let domains: Vec<String> = catalog
            .get()
            .domains()
            .filter(|d| cfg.allows(d) && !sync.store().manual_covers(d))
            .map(str::to_owned)
            .collect();
        for d in domains {
            let now = now_secs();
            let waiting = sync
                .status_of(&d)
                .and_then(|s| s.retry_at)
                .is_some_and(|t| now < t);
            if waiting || !sync.due(&d, now) {
                continue;
            }
            sync.with_status(&d, |s| s.last_attempt = Some(now));
            match attempt(&sync, &mut acct, &cfg, &edge_id, &d).await {
                Ok(true) => sync.with_status(&d, |s| {
                    s.orders += 1;
                    s.failures = 0;
                    s.retry_at = None;
                    s.last_error = None;
                }),
                Ok(false) => {}
                Err(e) => {
                    let (failures, wait) = sync.with_status(&d, |s| {
                        s.failures += 1;
                        let wait = cfg.backoff(s.failures);
                        s.retry_at = Some(now_secs() + wait.as_secs().max(1));
                        s.last_error = Some(e.to_string());
                        (s.failures, wait)
                    });
                    tracing::warn!(domain = %d, error = %e, failures, retry_in = ?wait, "certificate order failed");
                    // Restored from account.json next time (no new registration at the CA):
                    // a CA that restarted or lost the account is met afresh.
                    acct = None;
                    if e.to_string().contains("accountDoesNotExist") {
                        // The CA forgot the account (a test CA restarted): register anew.
                        let _ = std::fs::remove_file(cfg.state_dir.join("account.json"));
                    }
                }
            }
        }
        tokio::time::sleep(cfg.check_interval).await;
    }
}
