//! The direct-storage request a cluster peer (or a ring-aware edge) sends: a Swift request
//! to `/v1/AUTH_a/c/o` carrying the internal secret and [`crate::headers::DIRECT`], which
//! the receiving node applies to its own store only.

/// What a direct request asks the node to do with the version (the
/// [`crate::headers::DIRECT`] value). Honoured only with the internal secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direct {
    /// The version with its data (the node is a primary or a handoff); on GET/HEAD, read
    /// from this node's own store.
    Data,
    /// Only the listing row (size in [`crate::headers::SIZE`]).
    Row,
}

impl Direct {
    /// Parses the header value; `None` for anything else.
    pub fn parse(v: &[u8]) -> Option<Direct> {
        match v {
            b"data" => Some(Direct::Data),
            b"row" => Some(Direct::Row),
            _ => None,
        }
    }

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direct::Data => "data",
            Direct::Row => "row",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_round_trip() {
        for d in [Direct::Data, Direct::Row] {
            assert_eq!(Direct::parse(d.as_str().as_bytes()), Some(d));
        }
        assert_eq!(Direct::parse(b"DATA"), None);
    }
}
