//! `outpost cluster status`: asks every node of a ring (with the cluster secret) for its
//! replication and audit state: a table of counters, then each node's replication pass
//! progress and handoff backlog, then each cross-DC shipper's catch-up.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use outpost_origin::cluster::status::NodeStatus;
use outpost_origin::xdc::PeerStatus;
use outpost_ring::Ring;

use crate::progress;

/// How often `--watch` refreshes.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// `outpost cluster ...`.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Replication progress, lag, handoffs and audit counts of every node in the ring.
    Status(StatusArgs),
}

/// `outpost cluster status`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Refresh every 2 s until interrupted (the screen is redrawn on a terminal).
    #[arg(long)]
    watch: bool,
}

/// Which cluster, and the secret to ask it with.
#[derive(Args)]
pub struct Target {
    /// Ring file.
    #[arg(long)]
    ring: PathBuf,
    /// File holding the cluster's `internal_secret`.
    #[arg(long, conflicts_with = "secret")]
    secret_file: Option<PathBuf>,
    /// The cluster's `internal_secret` (prefer --secret-file or OUTPOST_INTERNAL_SECRET).
    #[arg(long, env = "OUTPOST_INTERNAL_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

impl Target {
    fn secret(&self) -> Result<String> {
        match (&self.secret_file, &self.secret) {
            (Some(f), _) => Ok(std::fs::read_to_string(f)
                .with_context(|| format!("--secret-file {}", f.display()))?
                .trim()
                .to_owned()),
            (None, Some(s)) => Ok(s.clone()),
            (None, None) => anyhow::bail!("--secret-file or --secret is required"),
        }
    }
}

/// Runs one cluster command.
///
/// # Errors
/// Unreadable ring or secret; a node that cannot be asked is reported in the table, and makes
/// the command fail at the end (without `--watch`).
pub fn run(cmd: ClusterCommand, rt: tokio::runtime::Runtime) -> Result<()> {
    let ClusterCommand::Status(a) = cmd;
    let t = &a.target;
    let secret = t.secret()?;
    loop {
        // The ring is read each round: `--watch` follows a rebalance.
        let ring = Ring::load(&t.ring).with_context(|| format!("loading {}", t.ring.display()))?;
        let (text, down) = status(&rt, &ring, &secret);
        if !a.watch {
            print!("{text}");
            if down > 0 {
                anyhow::bail!("{down} node(s) did not answer");
            }
            return Ok(());
        }
        if std::io::stdout().is_terminal() {
            // Clear the screen and go home: only ever on a terminal.
            print!("\x1b[2J\x1b[H{text}");
        } else {
            println!("{text}");
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

/// Asks every node and renders the report; returns it and how many nodes did not answer.
fn status(rt: &tokio::runtime::Runtime, ring: &Ring, secret: &str) -> (String, usize) {
    let nodes: Vec<(String, String)> = ring
        .live_devices()
        .map(|d| (d.addr().to_string(), d.url().to_string()))
        .collect();
    let asking = progress::spinner(format!("asking {} node(s)", nodes.len()));
    // The node table and the cross-DC table ask the same nodes: both at once.
    let (all, sync) = rt.block_on(async {
        tokio::join!(
            outpost_origin::cluster::status::fetch_all(ring, secret),
            outpost_origin::xdc::fetch_all(nodes, secret),
        )
    });
    asking.finish();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>5} {:>7} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "node",
        "ring",
        "passes",
        "lag(s)",
        "progress",
        "pushed",
        "errors",
        "handoff",
        "audited",
        "quarant",
        "rows"
    );
    let mut down = 0;
    for (addr, st) in &all {
        match st {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "{:<22} {:>5} {:>7} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    addr,
                    s.ring_version,
                    s.passes,
                    s.lag_secs,
                    format!("{}/{}", s.progress.0, s.progress.1),
                    s.pushed,
                    s.errors,
                    s.handoff_partitions,
                    s.audited,
                    s.quarantined,
                    s.objects
                );
            }
            Err(e) => {
                down += 1;
                let _ = writeln!(out, "{addr:<22} DOWN: {e}");
            }
        }
    }
    let _ = writeln!(out, "\n{:<22} {:<9} replication", "node", "backlog");
    for (addr, s) in all.iter().filter_map(|(a, s)| Some((a, s.as_ref().ok()?))) {
        let _ = writeln!(
            out,
            "{addr:<22} {:<9} {}",
            s.handoff_partitions,
            replication_line(s)
        );
    }
    print_sync(&mut out, &sync);
    (out, down)
}

/// One node's replication pass, as an operator reads it:
/// `pass 412/1024 partitions, 3.1k rows/s, 120 pushed (1.2 MB), ETA 2m10s` while it runs,
/// `last pass 41s ago, took 12s (1024 partitions, 9.1k rows, 0 pushed)` after.
pub fn replication_line(s: &NodeStatus) -> String {
    if s.pass_running {
        let (done, total) = s.progress;
        return format!(
            "pass {done}/{total} partitions, {} rows/s, {} pushed ({}), {}",
            progress::count(s.pass_rows_per_sec()),
            s.pass_pushed,
            progress::bytes(s.pass_bytes),
            progress::eta(s.pass_eta_secs)
        );
    }
    if s.passes == 0 {
        return format!("no pass yet (up {})", progress::duration(s.lag_secs));
    }
    format!(
        "last pass {} ago, took {} ({} partitions, {} rows, {} pushed, {})",
        progress::duration(s.lag_secs),
        progress::millis(s.last_pass_ms),
        s.last_pass_partitions,
        progress::count(s.last_pass_rows as f64),
        s.last_pass_pushed,
        progress::bytes(s.last_pass_bytes)
    )
}

/// One shipper's catch-up: `412/1024` (feed entries), `resync 3/64` (partitions of a full
/// comparison) or `-` when caught up.
pub fn catchup_cell(p: &PeerStatus) -> String {
    if p.resync_total > 0 {
        format!("resync {}/{}", p.resync_done, p.resync_total)
    } else if p.catchup_total > 0 {
        format!("{}/{}", p.catchup_done, p.catchup_total)
    } else {
        "-".into()
    }
}

type SyncAnswers = [(String, std::result::Result<Vec<PeerStatus>, String>)];

/// The cross-datacenter lag and catch-up of each shipping node, under the node tables.
fn print_sync(out: &mut String, all: &SyncAnswers) {
    let mut header = false;
    for (addr, peers) in all {
        for p in peers.iter().flatten() {
            if !header {
                let _ = writeln!(
                    out,
                    "\n{:<22} {:<12} {:>9} {:>8} {:>9} {:>9} {:>8} {:>6} {:>17} {:>7} {:>10}",
                    "cross-dc shipper",
                    "peer",
                    "behind",
                    "lag(s)",
                    "shipped",
                    "skipped",
                    "errors",
                    "link",
                    "catch-up",
                    "rate/s",
                    "ETA"
                );
                header = true;
            }
            let eta = if p.lag_entries == 0 {
                "-".to_owned()
            } else {
                p.eta_secs.map_or("?".into(), progress::duration)
            };
            let _ = writeln!(
                out,
                "{:<22} {:<12} {:>9} {:>8} {:>9} {:>9} {:>8} {:>6} {:>17} {:>7} {:>10}",
                addr,
                p.peer,
                p.lag_entries,
                p.lag_secs,
                p.shipped,
                p.skipped,
                p.errors,
                if p.failing { "DOWN" } else { "up" },
                catchup_cell(p),
                progress::count(p.rate_per_sec),
                eta
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> NodeStatus {
        serde_json::from_str(
            r#"{"format":1,"node":"n","ring_version":1,"passes":3,"last_pass_end":1,
            "lag_secs":41,"last_pass_ms":11200,"last_pass_partitions":1024,"progress":[1024,1024],
            "pushed":0,"errors":0,"handoff_partitions":0,"reverted":0,"reclaimed":0,"audited":0,
            "quarantined":0,"handoff_writes":0,"objects":0,"last_pass_rows":9100,
            "last_pass_pushed":12,"last_pass_bytes":1200000}"#,
        )
        .expect("status fixture")
    }

    #[test]
    fn a_running_pass_shows_progress_rate_and_eta() {
        let mut s = idle();
        s.pass_running = true;
        s.progress = (412, 1024);
        s.pass_elapsed_ms = 4_000;
        s.pass_rows = 12_400;
        s.pass_pushed = 120;
        s.pass_bytes = 1_200_000;
        s.pass_eta_secs = Some(130);
        assert_eq!(
            replication_line(&s),
            "pass 412/1024 partitions, 3.1k rows/s, 120 pushed (1.2 MB), ETA 2m10s"
        );
        s.pass_eta_secs = None;
        assert!(replication_line(&s).ends_with("ETA ?"));
    }

    #[test]
    fn a_finished_pass_shows_when_and_how_long() {
        assert_eq!(
            replication_line(&idle()),
            "last pass 41s ago, took 11s (1024 partitions, 9.1k rows, 12 pushed, 1.2 MB)"
        );
        let mut s = idle();
        s.passes = 0;
        assert_eq!(replication_line(&s), "no pass yet (up 41s)");
    }

    #[test]
    fn catchup_cells() {
        let mut p = PeerStatus::default();
        assert_eq!(catchup_cell(&p), "-");
        p.catchup_done = 412;
        p.catchup_total = 1024;
        assert_eq!(catchup_cell(&p), "412/1024");
        p.resync_total = 64;
        p.resync_done = 3;
        assert_eq!(catchup_cell(&p), "resync 3/64");
    }
}
