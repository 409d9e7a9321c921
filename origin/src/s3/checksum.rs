//! `x-amz-checksum-*` verification of PutObject and UploadPart bodies, where clients send one:
//! as a header before the body, or as a trailer after it (`aws-chunked` bodies with
//! `x-amz-trailer`, which s3s decodes; recent AWS SDKs send a CRC32 by default).
//!
//! Only the algorithms a request names are computed, in the same pass that stages the body;
//! a mismatch is `BadDigest` and the staged file is dropped before anything is committed.

use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::{s3_error, S3Result, TrailingHeaders};

/// The checksums a request announced: header values, the algorithms it names (for a value
/// that arrives as a trailer), and the trailers once the body has been read.
#[derive(Debug, Default)]
pub struct Expected {
    sent: Checksum,
    algorithms: Vec<String>,
    trailers: Option<TrailingHeaders>,
}

/// Trailer (and header) names, in [`Checksum`]'s field order.
const NAMES: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-checksum-crc64nvme",
];

fn fields(c: &Checksum) -> [&Option<String>; 5] {
    [
        &c.checksum_crc32,
        &c.checksum_crc32c,
        &c.checksum_sha1,
        &c.checksum_sha256,
        &c.checksum_crc64nvme,
    ]
}

fn fields_mut(c: &mut Checksum) -> [&mut Option<String>; 5] {
    [
        &mut c.checksum_crc32,
        &mut c.checksum_crc32c,
        &mut c.checksum_sha1,
        &mut c.checksum_sha256,
        &mut c.checksum_crc64nvme,
    ]
}

/// [`Expected::of`] an S3 input that carries `x-amz-checksum-*` (`PutObjectInput`,
/// `UploadPartInput`: the same fields on different types) and its request: moves the five
/// checksum fields out of `$input`.
macro_rules! expected_of {
    ($input:expr, $req:expr) => {
        $crate::s3::checksum::Expected::of(
            s3s::dto::Checksum {
                checksum_crc32: $input.checksum_crc32,
                checksum_crc32c: $input.checksum_crc32c,
                checksum_sha1: $input.checksum_sha1,
                checksum_sha256: $input.checksum_sha256,
                checksum_crc64nvme: $input.checksum_crc64nvme,
                ..Default::default()
            },
            $input.checksum_algorithm.as_ref(),
            &$req.headers,
            $req.trailing_headers,
        )
    };
}
pub(crate) use expected_of;

impl Expected {
    /// Nothing to verify (a copy: the source was verified when it was written).
    pub fn none() -> Expected {
        Expected::default()
    }

    /// What a request sent: the `x-amz-checksum-*` header values s3s parsed, the algorithm
    /// it names (`x-amz-sdk-checksum-algorithm`) and those its `x-amz-trailer` header names.
    pub fn of(
        sent: Checksum,
        algorithm: Option<&ChecksumAlgorithm>,
        headers: &http::HeaderMap,
        trailers: Option<TrailingHeaders>,
    ) -> Expected {
        let mut algorithms: Vec<String> = algorithm
            .map(|a| format!("x-amz-checksum-{}", a.as_str().to_ascii_lowercase()))
            .into_iter()
            .collect();
        for v in headers.get_all("x-amz-trailer") {
            if let Ok(v) = v.to_str() {
                algorithms.extend(v.split(',').map(|n| n.trim().to_ascii_lowercase()));
            }
        }
        Expected {
            sent,
            algorithms,
            trailers,
        }
    }

    /// A hasher computing every algorithm this request may be checked against.
    pub fn hasher(&self) -> ChecksumHasher {
        let wanted = |i: usize| {
            fields(&self.sent)[i].is_some() || self.algorithms.iter().any(|a| a == NAMES[i])
        };
        ChecksumHasher {
            crc32: wanted(0).then(Default::default),
            crc32c: wanted(1).then(Default::default),
            sha1: wanted(2).then(Default::default),
            sha256: wanted(3).then(Default::default),
            crc64nvme: wanted(4).then(Default::default),
        }
    }

    /// Compares what was received with what was sent (headers, then trailers, which are
    /// complete once the body has been read).
    ///
    /// # Errors
    /// `BadDigest` naming the first algorithm that differs; `InvalidArgument` for a trailer
    /// that is not text.
    pub fn verify(mut self, hasher: ChecksumHasher) -> S3Result<()> {
        if let Some(t) = self.trailers.take().and_then(|t| t.take()) {
            for (slot, name) in fields_mut(&mut self.sent).into_iter().zip(NAMES) {
                if let Some(v) = t.get(name) {
                    let v = v
                        .to_str()
                        .map_err(|_| s3_error!(InvalidArgument, "{name} is not text"))?;
                    *slot = Some(v.to_owned());
                }
            }
        }
        let got = hasher.finalize();
        for ((want, have), name) in fields(&self.sent).into_iter().zip(fields(&got)).zip(NAMES) {
            if let Some(w) = want {
                if have.as_deref() != Some(w.as_str()) {
                    return Err(s3_error!(
                        BadDigest,
                        "The {name} you specified did not match the calculated checksum."
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(crc32: Option<&str>) -> Checksum {
        Checksum {
            checksum_crc32: crc32.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn header_values_are_checked() {
        // CRC32 of "hello world" is 0x0d4a1185.
        let ok = Expected::of(sent(Some("DUoRhQ==")), None, &http::HeaderMap::new(), None);
        let mut h = ok.hasher();
        h.update(b"hello world");
        assert!(ok.verify(h).is_ok());
        let bad = Expected::of(sent(Some("AAAAAA==")), None, &http::HeaderMap::new(), None);
        let mut h = bad.hasher();
        h.update(b"hello world");
        assert_eq!(bad.verify(h).unwrap_err().code().as_str(), "BadDigest");
    }

    #[test]
    fn only_named_algorithms_are_computed() {
        let none = Expected::none();
        let h = none.hasher();
        assert!(h.crc32.is_none() && h.sha256.is_none());
        assert!(none.verify(h).is_ok());
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-sha256".parse().unwrap());
        let alg = ChecksumAlgorithm::from_static(ChecksumAlgorithm::CRC32C);
        let e = Expected::of(sent(None), Some(&alg), &headers, None);
        let h = e.hasher();
        assert!(h.sha256.is_some() && h.crc32c.is_some() && h.crc32.is_none());
        // Named but never sent (no trailer came): nothing to compare.
        assert!(e.verify(h).is_ok());
    }
}
