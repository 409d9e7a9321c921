//! Outpost-token helpers shared by the integration tests: the wall clock in epoch seconds and
//! a token key with id `k1`.

use std::time::{SystemTime, UNIX_EPOCH};

use outpost_auth::{Secret, TokenKey, TokenKeySpec};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after the epoch")
        .as_secs()
}

/// The token key `k1` with this secret (register it on the account as
/// `X-Account-Outpost-Key-k1`).
pub fn key_k1(secret: &str) -> TokenKey {
    TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(secret),
        not_before: None,
        not_after: None,
    })
    .expect("a valid token key")
}
