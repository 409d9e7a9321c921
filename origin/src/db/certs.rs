//! Certificates of custom domains (automatic HTTPS), kept beside the metadata: one record per
//! domain, the lease that lets one edge at a time order a domain's certificate, and pending
//! HTTP-01 challenge answers. None of it is an object of an account: Swift listings, the
//! snapshot and replication never see these tables; only `/internal/certs` and
//! `/internal/acme-challenges` (certificate capability) read them.
//!
//! A stored certificate appends a `cert-put { domain }` change in the same transaction (the
//! domain in the `object` column; `account` empty), so every edge fetches it at once.

use outpost_proto::certs::{CertRecord, CertSummary, ChallengeRecord, KeyPem, LeaseAnswer};
use outpost_proto::feed::ChangeKind;
use rusqlite::{params, OptionalExtension};

use super::{record_change, to_i64, to_u64, Db};
use crate::hlc::Timestamp;
use crate::Result;

/// Schema of the tables this module owns (created with the rest at open).
pub(super) const CERTS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS certs (
    domain TEXT PRIMARY KEY,
    cert_pem TEXT NOT NULL,
    key_pem TEXT NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    issuer TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cert_leases (
    domain TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS acme_challenges (
    token TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    key_authorization TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// The lease rule, pure: `holder` gets the lease when nobody holds it, the current lease
/// expired (`expires_at <= now`), or `holder` already holds it (a renewal). `ttl == 0`
/// releases a lease `holder` holds. Returns the lease after the request and whether
/// `holder` has it.
pub fn lease_rule(
    current: Option<(&str, u64)>,
    holder: &str,
    ttl: u64,
    now: u64,
) -> (Option<(String, u64)>, bool) {
    match current {
        Some((h, exp)) if exp > now && h != holder => (Some((h.to_owned(), exp)), false),
        _ if ttl == 0 => (None, true),
        _ => (Some((holder.to_owned(), now.saturating_add(ttl))), true),
    }
}

impl Db {
    /// Stores (replaces) a domain's certificate and appends its `cert-put` change; returns the
    /// change's sequence number.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn put_cert(&self, ts: Timestamp, r: &CertRecord) -> Result<u64> {
        let kind = ChangeKind::CertPut {
            domain: r.domain.clone(),
        };
        self.write(|tx| {
            tx.prepare_cached("INSERT OR REPLACE INTO certs (domain, cert_pem, key_pem, not_after, issued_at, issuer) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![
                    r.domain,
                    r.cert_pem,
                    r.key_pem.expose(),
                    to_i64(r.not_after),
                    to_i64(r.issued_at),
                    r.issuer
                ],
            )?;
            let seq = record_change(tx, ts, "", &kind)?;
            Ok((seq, Some(seq)))
        })
    }

    /// A domain's certificate, key included.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn get_cert(&self, domain: &str) -> Result<Option<CertRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT cert_pem, key_pem, not_after, issued_at, issuer FROM certs WHERE domain = ?1",
            )?
            .query_row([domain], |r| {
                Ok(CertRecord {
                    format: outpost_proto::Format,
                    domain: domain.to_owned(),
                    cert_pem: r.get(0)?,
                    key_pem: KeyPem::new(r.get(1)?),
                    not_after: to_u64(r.get(2)?),
                    issued_at: to_u64(r.get(3)?),
                    issuer: r.get(4)?,
                })
            })
            .optional()?)
        })
    }

    /// Every stored certificate without its PEM or key, by domain.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn cert_summaries(&self) -> Result<Vec<CertSummary>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT domain, not_after, issued_at, issuer FROM certs ORDER BY domain",
            )?;
            let rows = st.query_map([], |r| {
                Ok(CertSummary {
                    domain: r.get(0)?,
                    not_after: to_u64(r.get(1)?),
                    issued_at: to_u64(r.get(2)?),
                    issuer: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Applies [`lease_rule`] to a domain's lease in one transaction.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn lease_cert(
        &self,
        domain: &str,
        holder: &str,
        ttl: u64,
        now: u64,
    ) -> Result<LeaseAnswer> {
        self.write(|tx| {
            let current: Option<(String, i64)> = tx
                .prepare_cached("SELECT holder, expires_at FROM cert_leases WHERE domain = ?1")?
                .query_row([domain], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (after, granted) = lease_rule(
                current.as_ref().map(|(h, e)| (h.as_str(), to_u64(*e))),
                holder,
                ttl,
                now,
            );
            if granted {
                match &after {
                    Some((h, exp)) => tx.prepare_cached("INSERT OR REPLACE INTO cert_leases (domain, holder, expires_at) VALUES (?1, ?2, ?3)")?.execute(params![domain, h, to_i64(*exp)],
                    )?,
                    None => tx.prepare_cached("DELETE FROM cert_leases WHERE domain = ?1")?.execute([domain])?,
                };
            }
            let (h, exp) = after.unwrap_or_else(|| (String::new(), now));
            Ok((
                LeaseAnswer {
                    format: outpost_proto::Format,
                    domain: domain.to_owned(),
                    holder: h,
                    expires_at: exp,
                    granted,
                },
                None,
            ))
        })
    }

    /// Publishes a pending HTTP-01 answer; drops answers that expired by `now`.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn put_challenge(&self, c: &ChallengeRecord, now: u64) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM acme_challenges WHERE expires_at <= ?1")?.execute([to_i64(now)],
            )?;
            tx.prepare_cached("INSERT OR REPLACE INTO acme_challenges (token, domain, key_authorization, expires_at) VALUES (?1, ?2, ?3, ?4)")?.execute(params![c.token, c.domain, c.key_authorization, to_i64(c.expires_at)],
            )?;
            Ok(((), None))
        })
    }

    /// A pending HTTP-01 answer that has not expired by `now`.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn get_challenge(&self, token: &str, now: u64) -> Result<Option<ChallengeRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT domain, key_authorization, expires_at FROM acme_challenges WHERE token = ?1 AND expires_at > ?2",
            )?
            .query_row(params![token, to_i64(now)], |r| {
                Ok(ChallengeRecord {
                    format: outpost_proto::Format,
                    domain: r.get(0)?,
                    token: token.to_owned(),
                    key_authorization: r.get(1)?,
                    expires_at: to_u64(r.get(2)?),
                })
            })
            .optional()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_is_exclusive_until_it_expires() {
        assert_eq!(
            lease_rule(None, "a", 60, 100),
            (Some(("a".into(), 160)), true)
        );
        // Someone else holds it: refused, the holder is named.
        assert_eq!(
            lease_rule(Some(("a", 160)), "b", 60, 120),
            (Some(("a".into(), 160)), false)
        );
        // The holder renews.
        assert_eq!(
            lease_rule(Some(("a", 160)), "a", 60, 120),
            (Some(("a".into(), 180)), true)
        );
        // Expired: anyone gets it.
        assert_eq!(
            lease_rule(Some(("a", 160)), "b", 60, 160),
            (Some(("b".into(), 220)), true)
        );
        // Release by the holder; a release by someone else is refused.
        assert_eq!(lease_rule(Some(("a", 160)), "a", 0, 120), (None, true));
        assert!(!lease_rule(Some(("a", 160)), "b", 0, 120).1);
    }

    #[test]
    fn certs_leases_and_challenges_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let r = CertRecord {
            format: outpost_proto::Format,
            domain: "img.example.com".into(),
            cert_pem: "CERT".into(),
            key_pem: KeyPem::new("KEY".into()),
            not_after: 2_000,
            issued_at: 1_000,
            issuer: "Pebble".into(),
        };
        let seq = db.put_cert(Timestamp(1), &r).unwrap();
        assert_eq!(db.get_cert("img.example.com").unwrap(), Some(r));
        let page = db.changes_since(seq - 1, 10).unwrap();
        assert_eq!(
            page[0].kind,
            ChangeKind::CertPut {
                domain: "img.example.com".into()
            }
        );
        assert_eq!(page[0].account, "");
        assert_eq!(db.cert_summaries().unwrap()[0].issuer, "Pebble");

        assert!(db.lease_cert("d", "a", 60, 100).unwrap().granted);
        let no = db.lease_cert("d", "b", 60, 110).unwrap();
        assert!(!no.granted);
        assert_eq!(no.holder, "a");
        assert!(db.lease_cert("d", "b", 60, 161).unwrap().granted);

        let c = ChallengeRecord {
            format: outpost_proto::Format,
            domain: "d".into(),
            token: "tok".into(),
            key_authorization: "tok.thumb".into(),
            expires_at: 200,
        };
        db.put_challenge(&c, 100).unwrap();
        assert_eq!(db.get_challenge("tok", 150).unwrap(), Some(c));
        assert_eq!(db.get_challenge("tok", 200).unwrap(), None);
    }
}
