//! Format versions of serialized forms.
//!
//! Every form carries its version in one field ([`Wire::FIELD`]). The field's type,
//! [`Format<N>`], serializes as the number `N` and refuses any other, so a form of an unknown
//! version never parses into a value; [`from_json`] then reports the version it found as
//! [`Error::UnknownFormat`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A format version field that is exactly `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Format<const N: u32>;

impl<const N: u32> Format<N> {
    /// The version number.
    pub const VERSION: u32 = N;
}

impl<const N: u32> Serialize for Format<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(N)
    }
}

impl<'de, const N: u32> Deserialize<'de> for Format<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if v == u64::from(N) {
            Ok(Format)
        } else {
            Err(serde::de::Error::custom(format_args!(
                "unknown format version {v} (this build reads {N})"
            )))
        }
    }
}

/// A versioned serialized form.
pub trait Wire: Serialize + DeserializeOwned {
    /// What it is, for errors.
    const WHAT: &'static str;
    /// The name of its version field.
    const FIELD: &'static str;
    /// The versions this build reads.
    const KNOWN: &'static [u32];
}

/// Parses a form, refusing versions this build does not know with
/// [`Error::UnknownFormat`].
///
/// # Errors
/// [`Error::UnknownFormat`] for an unknown version, [`Error::Json`] for anything else that
/// does not parse.
pub fn from_json<T: Wire>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|source| {
        // Only on failure: find out whether the version is what made it fail.
        let found = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
            .ok()
            .and_then(|m| m.get(T::FIELD).and_then(serde_json::Value::as_u64));
        match found {
            Some(v) if !T::KNOWN.iter().any(|k| u64::from(*k) == v) => Error::UnknownFormat {
                what: T::WHAT,
                found: v,
                known: T::KNOWN,
            },
            _ => Error::Json {
                what: T::WHAT,
                source,
            },
        }
    })
}

/// Serializes a form (compact JSON, fields in declared order).
///
/// # Errors
/// [`Error::Json`] (only for maps with non-string keys, which no form has).
pub fn to_json<T: Wire>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|source| Error::Json {
        what: T::WHAT,
        source,
    })
}
