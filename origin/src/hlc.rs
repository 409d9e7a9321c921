//! Hybrid logical clock timestamps in Swift's `X-Timestamp` format.
//!
//! A [`Timestamp`] counts 10 µs ticks since the epoch (Swift's precision: five decimals). The
//! [`Clock`] hands out strictly increasing timestamps: `max(wall clock, last + 1 tick)`, and
//! moves forward past any timestamp it observes from elsewhere, so causally later writes always
//! carry larger timestamps even across nodes with skewed clocks.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// Ticks per second (10 µs resolution).
pub const TICKS_PER_SEC: u64 = 100_000;

/// A point in hybrid-logical time; larger wins everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Seconds since the epoch (floor).
    pub fn secs(self) -> u64 {
        self.0 / TICKS_PER_SEC
    }

    /// Seconds since the epoch rounded up, as Swift's `Last-Modified` does.
    pub fn ceil_secs(self) -> u64 {
        self.0.div_ceil(TICKS_PER_SEC)
    }

    /// Builds from epoch seconds.
    pub fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(TICKS_PER_SEC))
    }

    /// `Last-Modified` value (HTTP date).
    pub fn http_date(self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(self.ceil_secs()))
    }

    /// The ISO form used in listings: `2024-01-31T12:34:56.123450`.
    pub fn iso(self) -> String {
        let secs = i64::try_from(self.secs()).unwrap_or(i64::MAX);
        let micros = (self.0 % TICKS_PER_SEC) * 10;
        match time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            Err(_) => "1970-01-01T00:00:00.000000".to_owned(),
        }
    }
}

impl fmt::Display for Timestamp {
    /// Swift's normal form: `1700000000.12345`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:010}.{:05}",
            self.0 / TICKS_PER_SEC,
            self.0 % TICKS_PER_SEC
        )
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    /// Parses `1700000000`, `1700000000.1`, `1700000000.12345` (more digits are truncated) and
    /// Swift's internal form with an `_offset` suffix (the offset is ignored).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadHeader {
            name: "x-timestamp",
            reason: "must be epoch seconds with up to 5 decimals",
        };
        let s = s.split('_').next().unwrap_or("");
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() || int.len() > 12 || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let secs: u64 = int.parse().map_err(|_| bad())?;
        let mut ticks = 0u64;
        for (i, d) in frac.bytes().take(5).enumerate() {
            ticks += u64::from(d - b'0') * 10u64.pow(4 - u32::try_from(i).unwrap_or(4));
        }
        Ok(Timestamp(secs * TICKS_PER_SEC + ticks))
    }
}

/// The node's hybrid logical clock. Cheap to share (`&Clock` from many tasks).
#[derive(Debug, Default)]
pub struct Clock {
    last: AtomicU64,
    /// Added to the wall clock; tests inject skew with it.
    skew_ticks: i64,
}

impl Clock {
    /// A clock that follows the system time.
    pub fn new() -> Self {
        Clock::default()
    }

    /// A clock whose wall time is shifted by `skew_secs` (tests of cross-DC convergence).
    pub fn with_skew(skew_secs: i64) -> Self {
        Clock {
            last: AtomicU64::new(0),
            skew_ticks: skew_secs.saturating_mul(TICKS_PER_SEC as i64),
        }
    }

    fn wall(&self) -> u64 {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ticks = d.as_secs() * TICKS_PER_SEC + u64::from(d.subsec_micros() / 10);
        ticks.saturating_add_signed(self.skew_ticks)
    }

    /// A new timestamp, strictly greater than every one this clock issued or observed.
    pub fn now(&self) -> Timestamp {
        let wall = self.wall();
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = wall.max(prev + 1);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Timestamp(next),
                Err(p) => prev = p,
            }
        }
    }

    /// Moves the clock past a timestamp seen elsewhere (a replicated write, a peer's reply).
    pub fn observe(&self, ts: Timestamp) {
        self.last.fetch_max(ts.0, Ordering::AcqRel);
    }

    /// Wall-clock seconds (for expiry checks, not for ordering).
    pub fn wall_secs(&self) -> u64 {
        self.wall() / TICKS_PER_SEC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swift_format_round_trips() {
        let t: Timestamp = "1700000000.12345".parse().unwrap();
        assert_eq!(t.to_string(), "1700000000.12345");
        assert_eq!(
            "1700000000".parse::<Timestamp>().unwrap().to_string(),
            "1700000000.00000"
        );
        assert_eq!(
            "1700000000.1".parse::<Timestamp>().unwrap().to_string(),
            "1700000000.10000"
        );
        assert_eq!(
            "1700000000.12345_0000000000000001"
                .parse::<Timestamp>()
                .unwrap(),
            t
        );
        for bad in ["", "x", "1.2.3", "-1", "1e5", "17000000000000000"] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        assert_eq!(t.ceil_secs(), 1_700_000_001);
        assert_eq!(t.iso(), "2023-11-14T22:13:20.123450");
    }

    #[test]
    fn clock_is_strictly_monotonic_and_observes() {
        let c = Clock::new();
        let a = c.now();
        let b = c.now();
        assert!(b > a);
        let future = Timestamp(b.0 + 3600 * TICKS_PER_SEC);
        c.observe(future);
        assert!(c.now() > future);
    }
}
