//! # outpost-benches
//!
//! Home of Outpost's benchmarks: criterion micro-benchmarks under `benches/benches/` (run with
//! `cargo bench -p outpost-benches`) and, in later issues, the side-by-side load bench against
//! nginx and Varnish. The library itself is empty; it exists so the crate is a workspace member.
//!
//! ```
//! assert!(outpost_benches::BENCHES.contains(&"auth_verify"));
//! ```

/// The criterion benchmark targets of this crate.
pub const BENCHES: &[&str] = &["auth_verify"];
