//! The access-log spool: a bounded queue to one writer thread, which appends to segment files.
//!
//! `<root>/open/<id>.jsonl` is the segment being written; closing it fsyncs it and renames it
//! to `<root>/closed/`, where the shipper finds it. A segment left in `open/` by a crash is
//! closed at the next start (its last line may be torn; the shipper skips lines that do not
//! parse). Segment ids are `<unix ms>-<n>`, so names sort by age.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, IntGauge, Registry};

use super::LogSettings;
use crate::Error;

/// Bytes buffered by the writer between flushes.
pub const WRITE_BUFFER: usize = 64 * 1024;
/// How often the writer drains the queue (at most; `log.flush_interval` if shorter).
pub const DRAIN_TICK: Duration = Duration::from_millis(10);

/// The request side of the spool.
#[derive(Debug)]
pub struct Spool {
    tx: SyncSender<Vec<u8>>,
    unflushed: IntGauge,
    dropped: IntCounter,
    closed: PathBuf,
}

fn metric<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    // A second edge in one process (tests) registers the same names: its series are then not
    // exported, which is all a duplicate registration can cost.
    let _ = r.register(Box::new(c.clone()));
    c
}

impl Spool {
    /// Creates the directories, closes segments a previous run left open, and starts the
    /// writer thread.
    ///
    /// # Errors
    /// [`Error::Io`] when the directories cannot be created or the thread cannot start.
    pub fn start(root: &Path, s: &LogSettings, registry: &Registry) -> Result<Spool, Error> {
        let open = root.join("open");
        let closed = root.join("closed");
        fs::create_dir_all(&open)?;
        fs::create_dir_all(&closed)?;
        for e in fs::read_dir(&open)? {
            let e = e?;
            fs::rename(e.path(), closed.join(e.file_name()))?;
        }
        let unflushed = metric(
            registry,
            IntGauge::new(
                "outpost_edge_access_log_unflushed_lines",
                "Access-log lines queued or buffered, not yet in the spool file",
            )
            .expect("static metric definition"),
        );
        let dropped = metric(
            registry,
            IntCounter::new(
                "outpost_edge_access_log_dropped_total",
                "Access-log lines dropped (queue full, spool write failure, spool over its bound)",
            )
            .expect("static metric definition"),
        );
        let (tx, rx) = sync_channel(s.queue);
        let mut w = Writer {
            open,
            closed: closed.clone(),
            seg: None,
            seq: 0,
            pending: 0,
            segment_max: s.segment_max,
            delivery_interval: s.delivery_interval,
            unflushed: unflushed.clone(),
            dropped: dropped.clone(),
        };
        let flush = s.flush_interval;
        std::thread::Builder::new()
            .name("outpost-accesslog".into())
            .spawn(move || w.run(&rx, flush))?;
        Ok(Spool {
            tx,
            unflushed,
            dropped,
            closed,
        })
    }

    /// Queues a line without blocking; a full queue drops it (counted).
    pub fn try_log(&self, line: Vec<u8>) {
        self.unflushed.inc();
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            self.unflushed.dec();
            self.dropped.inc();
        }
    }

    /// Queues a line, waiting for room (background threads only, never a request thread).
    pub fn log(&self, line: Vec<u8>) {
        self.unflushed.inc();
        if self.tx.send(line).is_err() {
            self.unflushed.dec();
            self.dropped.inc();
        }
    }

    /// Where closed segments wait for delivery.
    pub fn closed_dir(&self) -> &Path {
        &self.closed
    }

    /// Counts lines dropped after they were queued (spool over its bound).
    pub fn dropped(&self, n: u64) {
        self.dropped.inc_by(n);
    }
}

struct Segment {
    name: String,
    file: BufWriter<File>,
    bytes: u64,
    opened: Instant,
}

struct Writer {
    open: PathBuf,
    closed: PathBuf,
    seg: Option<Segment>,
    seq: u64,
    /// Lines written into the buffer since the last flush.
    pending: i64,
    segment_max: u64,
    delivery_interval: Duration,
    unflushed: IntGauge,
    dropped: IntCounter,
}

impl Writer {
    fn run(&mut self, rx: &Receiver<Vec<u8>>, flush_every: Duration) {
        // Drain in batches on a tick instead of blocking in `recv`: a blocked receiver is woken
        // by every request's `try_send` (a futex syscall on the request thread and a context
        // switch per line), which cost a third of the throughput of cached hits on a 2-core
        // machine. Sleeping between drains makes `try_send` a plain enqueue.
        let tick = flush_every.min(DRAIN_TICK);
        let mut last_flush = Instant::now();
        loop {
            std::thread::sleep(tick);
            loop {
                match rx.try_recv() {
                    Ok(line) => self.write(&line),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.close();
                        return;
                    }
                }
            }
            if last_flush.elapsed() >= flush_every {
                self.flush();
                last_flush = Instant::now();
            }
            if self
                .seg
                .as_ref()
                .is_some_and(|s| s.opened.elapsed() >= self.delivery_interval)
            {
                self.close();
            }
        }
    }

    fn new_segment(&mut self) -> std::io::Result<Segment> {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        loop {
            self.seq += 1;
            let name = format!("{ms:013}-{:06}.jsonl", self.seq);
            if self.open.join(&name).exists() || self.closed.join(&name).exists() {
                continue;
            }
            let file = File::create(self.open.join(&name))?;
            return Ok(Segment {
                name,
                file: BufWriter::with_capacity(WRITE_BUFFER, file),
                bytes: 0,
                opened: Instant::now(),
            });
        }
    }

    fn write(&mut self, line: &[u8]) {
        if self.seg.is_none() {
            match self.new_segment() {
                Ok(s) => self.seg = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open an access-log segment");
                    self.lost(1);
                    return;
                }
            }
        }
        let Some(seg) = self.seg.as_mut() else { return };
        match seg.file.write_all(line) {
            Ok(()) => {
                seg.bytes += line.len() as u64;
                self.pending += 1;
                if seg.bytes >= self.segment_max {
                    self.close();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "access-log write failed");
                self.lost(1);
            }
        }
    }

    fn lost(&mut self, n: i64) {
        self.unflushed.sub(n);
        self.dropped.inc_by(u64::try_from(n).unwrap_or(0));
    }

    fn flush(&mut self) {
        if let Some(seg) = self.seg.as_mut() {
            if let Err(e) = seg.file.flush() {
                tracing::warn!(error = %e, "access-log flush failed");
            }
        }
        self.unflushed.sub(self.pending);
        self.pending = 0;
    }

    fn close(&mut self) {
        self.flush();
        let Some(seg) = self.seg.take() else { return };
        let from = self.open.join(&seg.name);
        let to = self.closed.join(&seg.name);
        let done = seg
            .file
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .and_then(|f| f.sync_all())
            .and_then(|()| fs::rename(&from, &to))
            .and_then(|()| File::open(&self.closed)?.sync_all());
        if let Err(e) = done {
            tracing::warn!(error = %e, segment = %seg.name, "closing an access-log segment failed");
        }
    }
}
