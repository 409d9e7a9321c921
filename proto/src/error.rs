//! The crate's one error type.

/// Why a serialized form could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The form carries a format version this build does not know (it is newer, or not an
    /// Outpost form at all). Refused rather than half-read.
    #[error("{what}: unknown format version {found} (this build reads {known:?})")]
    UnknownFormat {
        /// Which form (`feed page`, `snapshot`, `billing batch`, ...).
        what: &'static str,
        /// The version found.
        found: u64,
        /// The versions this build reads.
        known: &'static [u32],
    },
    /// Not valid JSON of the form (a missing or mistyped field, an unknown change kind, ...).
    #[error("{what}: {source}")]
    Json {
        /// Which form.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}
