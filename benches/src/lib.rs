//! # outpost-benches
//!
//! Home of Outpost's benchmarks: criterion micro-benchmarks under `benches/benches/` (run with
//! `cargo bench -p outpost-benches`) and, in later issues, the side-by-side load bench against
//! nginx and Varnish. The library holds what the load benches share: [`s3`], a SigV4-signing
//! S3 client.
//!
//! ```
//! assert!(outpost_benches::BENCHES.contains(&"auth_verify"));
//! ```

/// The criterion benchmark targets of this crate.
pub const BENCHES: &[&str] = &["auth_verify"];

pub mod s3;
