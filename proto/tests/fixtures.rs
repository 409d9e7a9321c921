//! Every serialized form, per version: the fixture parses into the typed value and
//! re-serializes byte for byte (pretty JSON), and the same form with a version this build
//! does not know is refused.

// Test helpers panic on bad fixtures by design (clippy allows unwrap only inside #[test] fns).
#![allow(clippy::unwrap_used)]

use outpost_proto::billing::{BillingBatch, BillingReport};
use outpost_proto::certs::{CertIndex, CertRecord, ChallengeRecord, LeaseAnswer, LeaseRequest};
use outpost_proto::feed::{ChangeKind, FeedPage};
use outpost_proto::snapshot::Snapshot;
use outpost_proto::{from_json, Error, Wire};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses `name`, checks it re-serializes identically, returns the value.
fn round_trip<T: Wire + std::fmt::Debug>(name: &str) -> T {
    let text = fixture(name);
    let value: T = from_json(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = serde_json::to_string_pretty(&value).unwrap();
    assert_eq!(
        again.trim_end(),
        text.trim_end(),
        "{name} re-serialized differently"
    );
    value
}

/// The fixture with its version field set to 99 must be refused as an unknown version.
fn refuses_unknown_version<T: Wire + std::fmt::Debug>(name: &str) {
    let mut v: serde_json::Value = serde_json::from_str(&fixture(name)).unwrap();
    v[T::FIELD] = 99.into();
    let e = from_json::<T>(v.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(e, Error::UnknownFormat { found: 99, .. }),
        "{name}: {e}"
    );
    v.as_object_mut().unwrap().remove(T::FIELD);
    let e = from_json::<T>(v.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(e, Error::Json { .. }),
        "{name} without a version: {e}"
    );
}

#[test]
fn feed_page_v1() {
    let page: FeedPage = round_trip("feed_page.v1.json");
    assert_eq!(page.changes.len(), 16, "one change of every kind");
    let mut tags: Vec<&str> = page.changes.iter().map(|c| c.kind.as_str()).collect();
    tags.dedup();
    assert_eq!(tags.len(), 16);
    assert_eq!(
        page.changes[13].kind,
        ChangeKind::RevokeSession {
            id: "sess-1".into(),
            at: 1_700_000_013
        }
    );
    refuses_unknown_version::<FeedPage>("feed_page.v1.json");
}

#[test]
fn snapshot_v1() {
    let s: Snapshot = round_trip("snapshot.v1.json");
    assert_eq!(s.accounts[0].token_keys[1].not_after, Some(1_710_000_000));
    refuses_unknown_version::<Snapshot>("snapshot.v1.json");
}

#[test]
fn billing_batch_v1() {
    let b: BillingBatch = round_trip("billing_batch.v1.json");
    assert_eq!(b.records[0].bytes, 1_048_576);
    refuses_unknown_version::<BillingBatch>("billing_batch.v1.json");
}

#[test]
fn billing_report_v1() {
    let r: BillingReport = round_trip("billing_report.v1.json");
    assert_eq!(r.minutes.len(), 2);
    refuses_unknown_version::<BillingReport>("billing_report.v1.json");
}

#[test]
fn a_change_with_a_field_its_kind_does_not_have_is_refused() {
    // The overloaded shape of old: a revoked id in `object`.
    let page = br#"{"format":1,"first":1,"last":1,"truncated":false,"changes":[
        {"seq":1,"ts":"1.00000","account":"a","kind":"revoke-user","id":"u","at":1,"object":"u"}]}"#;
    assert!(matches!(
        from_json::<FeedPage>(page),
        Err(Error::Json { .. })
    ));
}

#[test]
fn cert_record_v1() {
    let r: CertRecord = round_trip("cert_record.v1.json");
    assert!(r
        .key_pem
        .expose()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(
        !format!("{r:?}").contains("PRIVATE KEY"),
        "Debug shows the key"
    );
    refuses_unknown_version::<CertRecord>("cert_record.v1.json");
}

#[test]
fn cert_index_v1() {
    let i: CertIndex = round_trip("cert_index.v1.json");
    assert_eq!(i.certs[1].domain, "tv.example.com");
    refuses_unknown_version::<CertIndex>("cert_index.v1.json");
}

#[test]
fn lease_v1() {
    let q: LeaseRequest = round_trip("lease_request.v1.json");
    assert_eq!(q.ttl_secs, 300);
    refuses_unknown_version::<LeaseRequest>("lease_request.v1.json");
    let a: LeaseAnswer = round_trip("lease_answer.v1.json");
    assert!(!a.granted);
    refuses_unknown_version::<LeaseAnswer>("lease_answer.v1.json");
}

#[test]
fn challenge_record_v1() {
    let c: ChallengeRecord = round_trip("challenge_record.v1.json");
    assert!(c.key_authorization.starts_with(&c.token));
    refuses_unknown_version::<ChallengeRecord>("challenge_record.v1.json");
}
