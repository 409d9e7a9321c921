//! `outpost cluster status|replicate|audit`: asks every node of a ring (with the cluster
//! secret) for its replication and audit state, or triggers a pass on each.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use outpost_ring::Ring;

/// `outpost cluster ...`.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Replication progress, lag, handoffs and audit counts of every node in the ring.
    Status(Target),
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
/// the command fail at the end.
pub fn run(cmd: ClusterCommand, rt: tokio::runtime::Runtime) -> Result<()> {
    match cmd {
        ClusterCommand::Status(t) => {
            let ring =
                Ring::load(&t.ring).with_context(|| format!("loading {}", t.ring.display()))?;
            let secret = t.secret()?;
            let all = rt.block_on(outpost_origin::cluster::status::fetch_all(&ring, &secret));
            println!(
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
            for (addr, st) in all {
                match st {
                    Ok(s) => println!(
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
                    ),
                    Err(e) => {
                        down += 1;
                        println!("{addr:<22} DOWN: {e}");
                    }
                }
            }
            print_sync(&rt, &ring, &secret);
            if down > 0 {
                anyhow::bail!("{down} node(s) did not answer");
            }
        }
    }
    Ok(())
}

/// The cross-datacenter lag of each shipping node, under the node table.
fn print_sync(rt: &tokio::runtime::Runtime, ring: &Ring, secret: &str) {
    let nodes = ring
        .live_devices()
        .map(|d| (d.addr().to_string(), d.url().to_string()))
        .collect();
    let all = rt.block_on(outpost_origin::xdc::fetch_all(nodes, secret));
    let mut header = false;
    for (addr, peers) in &all {
        for p in peers.iter().flatten() {
            if !header {
                println!(
                    "\n{:<22} {:<12} {:>9} {:>8} {:>9} {:>9} {:>8} {:>6}",
                    "cross-dc shipper",
                    "peer",
                    "behind",
                    "lag(s)",
                    "shipped",
                    "skipped",
                    "errors",
                    "link"
                );
                header = true;
            }
            println!(
                "{:<22} {:<12} {:>9} {:>8} {:>9} {:>9} {:>8} {:>6}",
                addr,
                p.peer,
                p.lag_entries,
                p.lag_secs,
                p.shipped,
                p.skipped,
                p.errors,
                if p.failing { "DOWN" } else { "up" }
            );
        }
    }
}
