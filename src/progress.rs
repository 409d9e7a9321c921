//! Progress for the CLI's slow commands, and the text of progress figures.
//!
//! **The rule, in one place** ([`spinner`]): a spinner is drawn only when stderr is a
//! terminal *and* the operation has already run for [`SHOW_AFTER`]; it is drawn on stderr,
//! so stdout (tables, JSON) stays clean, and it is erased when the operation ends. Piped into
//! a file, a log shipper or another program, a command prints exactly what it printed before:
//! no escape codes, no carriage returns.
//!
//! The formatters ([`count`], [`bytes`], [`duration`], [`millis`], [`eta`]) turn the figures of
//! `/internal/cluster/status` and `/internal/xdc/status` into the short forms of
//! `outpost cluster status` (`3.1k rows/s`, `1.2 MB`, `ETA 2m10s`).

use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long an operation runs before its spinner appears: quick commands never flicker.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A running operation that may be showing a spinner; dropping it (or [`Activity::finish`])
/// erases the spinner.
pub struct Activity {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Activity {
    /// Ends the operation's spinner (same as dropping it).
    pub fn finish(self) {}
}

impl Drop for Activity {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which clears what it drew.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// True when progress may be drawn: stderr is a terminal.
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Starts an operation described by `msg` (`asking 12 nodes`): after [`SHOW_AFTER`], and only
/// on a terminal, a spinner with `msg` and the elapsed time turns on stderr until the returned
/// [`Activity`] is dropped. Elsewhere this does nothing at all.
pub fn spinner(msg: impl Into<String>) -> Activity {
    if !on_terminal() {
        return Activity {
            stop: None,
            thread: None,
        };
    }
    let msg = msg.into();
    let (stop, rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        if rx.recv_timeout(SHOW_AFTER) != Err(RecvTimeoutError::Timeout) {
            return;
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(100));
        // Waits for the end of the operation (the sender is dropped).
        let _ = rx.recv();
        pb.finish_and_clear();
    });
    Activity {
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// A quantity in at most four characters: `7`, `2.5`, `812`, `3.1k`, `12k`, `4.0M`.
pub fn count(v: f64) -> String {
    if !v.is_finite() || v < 0.0 {
        return "?".into();
    }
    let (scaled, unit) = scale(v);
    if unit.is_empty() {
        if v < 10.0 && v.fract() != 0.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        }
    } else if scaled < 10.0 {
        format!("{scaled:.1}{unit}")
    } else {
        format!("{scaled:.0}{unit}")
    }
}

fn scale(v: f64) -> (f64, &'static str) {
    let mut scaled = v;
    for unit in ["", "k", "M", "G", "T"] {
        // Rounded to what is printed, so 999.7 becomes 1.0k, not "1000".
        if scaled.round() < 1000.0 || unit == "T" {
            return (scaled, unit);
        }
        scaled /= 1000.0;
    }
    (scaled, "T")
}

/// Bytes in decimal units: `0 B`, `512 B`, `1.2 MB`, `34 GB`.
pub fn bytes(n: u64) -> String {
    let (scaled, unit) = scale(n as f64);
    if unit.is_empty() {
        format!("{n} B")
    } else if scaled < 10.0 {
        format!("{scaled:.1} {unit}B")
    } else {
        format!("{scaled:.0} {unit}B")
    }
}

/// A duration in its two largest units: `41s`, `2m10s`, `1h05m`, `3d04h`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3_599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3_600..=86_399 => format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// A duration given in milliseconds: `340ms` and `2.5s` below ten seconds, then as
/// [`duration`] (`12s`, `2m10s`).
pub fn millis(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=9_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => duration((ms + 500) / 1000),
    }
}

/// `ETA 2m10s`, or `ETA ?` when the rate is zero (stalled or not measured yet).
pub fn eta(secs: Option<u64>) -> String {
    match secs {
        Some(s) => format!("ETA {}", duration(s)),
        None => "ETA ?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_short() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(2.5), "2.5");
        assert_eq!(count(7.0), "7");
        assert_eq!(count(812.4), "812");
        assert_eq!(count(999.7), "1.0k");
        assert_eq!(count(3_100.0), "3.1k");
        assert_eq!(count(12_400.0), "12k");
        assert_eq!(count(4_000_000.0), "4.0M");
        assert_eq!(count(f64::NAN), "?");
    }

    #[test]
    fn bytes_use_decimal_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_200_000), "1.2 MB");
        assert_eq!(bytes(34_000_000_000), "34 GB");
    }

    #[test]
    fn durations_and_etas() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(41), "41s");
        assert_eq!(duration(130), "2m10s");
        assert_eq!(duration(3_900), "1h05m");
        assert_eq!(duration(3 * 86_400 + 4 * 3_600 + 5), "3d04h");
        assert_eq!(millis(340), "340ms");
        assert_eq!(millis(2_540), "2.5s");
        assert_eq!(millis(11_600), "12s");
        assert_eq!(millis(130_000), "2m10s");
        assert_eq!(eta(Some(130)), "ETA 2m10s");
        assert_eq!(eta(None), "ETA ?");
    }

    #[test]
    fn a_quick_operation_draws_nothing() {
        // Whether or not the test's stderr is a terminal, an operation shorter than
        // SHOW_AFTER ends before anything is drawn, and ending it does not block.
        let t = std::time::Instant::now();
        spinner("quick").finish();
        assert!(t.elapsed() < SHOW_AFTER);
    }
}
