//! Progress of long background operations (a replication pass, a cross-DC catch-up): the
//! rate of a growing counter over a sliding window and the ETA that follows from it.
//!
//! Pure and clock-free: callers pass the [`Instant`]s, so tests drive time by hand. The
//! operator-facing text (`3.1k rows/s`, `ETA 2m10s`) is the CLI's business; this module only
//! computes the figures that `/internal/cluster/status`, `/internal/xdc/status` and
//! `/metrics` expose.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use outpost_origin::progress::{eta_secs, RateWindow};
//!
//! let t0 = Instant::now();
//! let mut w = RateWindow::new(Duration::from_secs(60));
//! w.record(t0, 100);
//! w.record(t0 + Duration::from_secs(10), 600);
//! let rate = w.per_sec(t0 + Duration::from_secs(10)).unwrap();
//! assert_eq!(rate, 50.0);
//! assert_eq!(eta_secs(1_000, rate), Some(20));
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples closer together than this are merged (the later replaces the earlier), which
/// bounds a window to about `window / MERGE` samples however often the counter moves.
const MERGE: Duration = Duration::from_secs(1);

/// The rate of a monotonically growing counter (a feed position, rows examined) over the last
/// `window`, from samples `(when, value)`.
#[derive(Debug, Clone)]
pub struct RateWindow {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

/// The window "rate over the last minute" means.
pub const LAST_MINUTE: Duration = Duration::from_secs(60);

impl Default for RateWindow {
    /// An empty window over [`LAST_MINUTE`].
    fn default() -> Self {
        RateWindow::new(LAST_MINUTE)
    }
}

impl RateWindow {
    /// An empty window of length `window` (the "rate over the last minute" is 60 s).
    pub fn new(window: Duration) -> RateWindow {
        RateWindow {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records the counter's value at `at`. Samples older than the window are dropped, except
    /// the newest of them: it is the counter's value when the window opened.
    pub fn record(&mut self, at: Instant, value: u64) {
        if let Some(&(prev_at, _)) = self.samples.back() {
            let before_prev = self.samples.len().checked_sub(2).map(|i| self.samples[i].0);
            // Merge only when the previous sample is itself close to its predecessor, so the
            // first sample of a burst keeps its time and the span stays exact.
            if at.saturating_duration_since(prev_at) < MERGE
                && before_prev.is_some_and(|b| prev_at.saturating_duration_since(b) < MERGE)
            {
                self.samples.pop_back();
            }
        }
        self.samples.push_back((at, value));
        if let Some(start) = at.checked_sub(self.window) {
            while self.samples.len() > 1 && self.samples[1].0 <= start {
                self.samples.pop_front();
            }
        }
    }

    /// Units per second over the last window as of `now`: the growth since the window opened
    /// (or since the first sample, when the window is not full yet), divided by that span.
    /// `None` before the counter has been seen over any span of time.
    pub fn per_sec(&self, now: Instant) -> Option<f64> {
        let &(_, latest) = self.samples.back()?;
        let start = now.checked_sub(self.window);
        // The value when the window opened: the newest sample at or before its start.
        let (base_at, base) = match start {
            Some(s) => self
                .samples
                .iter()
                .rev()
                .find(|(t, _)| *t <= s)
                .map(|&(_, v)| (s, v))
                .unwrap_or(*self.samples.front()?),
            None => *self.samples.front()?,
        };
        let span = now.saturating_duration_since(base_at).as_secs_f64();
        if span <= 0.0 {
            return None;
        }
        Some(latest.saturating_sub(base) as f64 / span)
    }
}

/// Seconds left to do `remaining` units at `rate` per second; `None` when the rate is zero
/// (stalled, or nothing measured yet) and `Some(0)` when nothing remains.
pub fn eta_secs(remaining: u64, rate: f64) -> Option<u64> {
    if remaining == 0 {
        return Some(0);
    }
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    let secs = (remaining as f64 / rate).ceil();
    // A float beyond u64 only comes from absurd rates; saturate.
    Some(if secs >= u64::MAX as f64 {
        u64::MAX
    } else {
        secs as u64
    })
}

/// Seconds left for a job of `total` units with `done` of them done in `elapsed`, assuming the
/// same pace; `None` before anything is done.
pub fn eta_from_pace(done: u64, total: u64, elapsed: Duration) -> Option<u64> {
    if done == 0 {
        return if total == 0 { Some(0) } else { None };
    }
    eta_secs(
        total.saturating_sub(done),
        done as f64 / elapsed.as_secs_f64().max(0.001),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn rate_over_a_partial_window_uses_the_first_sample() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(s(60));
        assert_eq!(w.per_sec(t0), None);
        w.record(t0, 1_000);
        assert_eq!(w.per_sec(t0), None, "no span yet");
        w.record(t0 + s(4), 1_400);
        assert_eq!(w.per_sec(t0 + s(4)), Some(100.0));
        // Nothing moved for 4 more seconds: the rate falls, it does not stay at its peak.
        assert_eq!(w.per_sec(t0 + s(8)), Some(50.0));
    }

    #[test]
    fn rate_over_a_full_window_forgets_older_progress() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(s(60));
        w.record(t0, 0);
        // Fast at first (10 000 in 10 s), then 10 a second for two minutes.
        w.record(t0 + s(10), 10_000);
        for i in 1..=120 {
            w.record(t0 + s(10 + i), 10_000 + 10 * i);
        }
        let now = t0 + s(130);
        let r = w.per_sec(now).unwrap();
        assert!((r - 10.0).abs() < 1e-9, "{r}");
        assert!(w.samples.len() <= 62, "{} samples kept", w.samples.len());
        // Stalled for a whole window: zero, and no ETA.
        let later = now + s(61);
        assert_eq!(w.per_sec(later), Some(0.0));
        assert_eq!(eta_secs(5, w.per_sec(later).unwrap()), None);
    }

    #[test]
    fn bursts_are_merged_without_losing_the_span() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(s(60));
        for i in 0..1_000u64 {
            w.record(t0 + Duration::from_millis(i), i);
        }
        assert!(w.samples.len() <= 3, "{} samples", w.samples.len());
        let r = w.per_sec(t0 + Duration::from_millis(999)).unwrap();
        assert!((r - 1_000.0).abs() < 1e-6, "{r}");
    }

    #[test]
    fn eta_rounds_up_and_knows_when_it_cannot_tell() {
        assert_eq!(eta_secs(0, 0.0), Some(0));
        assert_eq!(eta_secs(10, 3.0), Some(4));
        assert_eq!(eta_secs(10, 0.0), None);
        assert_eq!(eta_secs(10, f64::NAN), None);
        assert_eq!(eta_from_pace(0, 100, s(5)), None);
        assert_eq!(eta_from_pace(0, 0, s(5)), Some(0));
        assert_eq!(eta_from_pace(25, 100, s(10)), Some(30));
        assert_eq!(eta_from_pace(100, 100, s(10)), Some(0));
    }
}
