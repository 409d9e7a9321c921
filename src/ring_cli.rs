//! `outpost ring create|add|remove|set-weight|rebalance|show`: builds the ring file every
//! origin node (and edge) loads. Each command reads the file, changes it and writes it back
//! atomically; nodes notice the new version without a restart.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use outpost_ring::{DeviceSpec, Ring};

/// `outpost ring ...`.
#[derive(Subcommand)]
pub enum RingCommand {
    /// Create an empty ring file.
    Create {
        /// Ring file to write (refuses to overwrite).
        ring: PathBuf,
        /// 2^P partitions (at most 20). Pick ~100 partitions per device at full size.
        #[arg(long)]
        part_power: u32,
        /// Replicas per partition.
        #[arg(long, default_value_t = 3)]
        replicas: u32,
    },
    /// Add a device (one origin node); placement changes at the next `rebalance`.
    Add(AddDevice),
    /// Mark a device removed; the next `rebalance` moves its partitions away.
    Remove {
        /// Ring file.
        ring: PathBuf,
        /// Device id (see `show`).
        #[arg(long)]
        id: u32,
    },
    /// Change a device's weight (takes effect at the next `rebalance`).
    SetWeight {
        /// Ring file.
        ring: PathBuf,
        /// Device id (see `show`).
        #[arg(long)]
        id: u32,
        /// New weight.
        #[arg(long)]
        weight: f64,
    },
    /// Reassign partitions, moving as few as possible; prints how many moved.
    Rebalance {
        /// Ring file.
        ring: PathBuf,
    },
    /// Print devices, partitions per device, balance and the last rebalance's moves.
    Show {
        /// Ring file.
        ring: PathBuf,
    },
}

/// `outpost ring add`.
#[derive(Args)]
pub struct AddDevice {
    /// Ring file.
    ring: PathBuf,
    /// Region (datacenter) number.
    #[arg(long, default_value_t = 1)]
    region: u32,
    /// Zone (failure domain) number.
    #[arg(long)]
    zone: u32,
    /// Host the node listens on.
    #[arg(long)]
    host: String,
    /// Port the node listens on.
    #[arg(long)]
    port: u16,
    /// Device name (unique per host:port).
    #[arg(long, default_value = "d0")]
    device: String,
    /// Relative capacity.
    #[arg(long, default_value_t = 100.0)]
    weight: f64,
}

fn load(path: &Path) -> Result<Ring> {
    Ring::load(path).with_context(|| format!("loading {}", path.display()))
}

/// Runs one ring command.
///
/// # Errors
/// Bad parameters (naming the parameter) and unreadable or unwritable ring files.
pub fn run(cmd: RingCommand) -> Result<()> {
    match cmd {
        RingCommand::Create {
            ring,
            part_power,
            replicas,
        } => {
            if ring.exists() {
                anyhow::bail!("{} exists; remove it first", ring.display());
            }
            let r = Ring::new(part_power, replicas)?;
            r.save(&ring)?;
            println!(
                "created {}: {} partitions, {replicas} replicas",
                ring.display(),
                r.partition_count()
            );
        }
        RingCommand::Add(a) => {
            let mut r = load(&a.ring)?;
            let id = r.add_device(DeviceSpec {
                region: a.region,
                zone: a.zone,
                host: a.host.clone(),
                port: a.port,
                device: a.device.clone(),
                weight: a.weight,
            })?;
            r.save(&a.ring)?;
            println!(
                "added device {id}: r{} z{} {}:{}/{} weight {}",
                a.region, a.zone, a.host, a.port, a.device, a.weight
            );
        }
        RingCommand::Remove { ring, id } => {
            let mut r = load(&ring)?;
            r.remove_device(id)?;
            r.save(&ring)?;
            println!(
                "device {id} marked removed; run `outpost ring rebalance` to move its partitions"
            );
        }
        RingCommand::SetWeight { ring, id, weight } => {
            let mut r = load(&ring)?;
            r.set_weight(id, weight)?;
            r.save(&ring)?;
            println!("device {id} weight {weight}");
        }
        RingCommand::Rebalance { ring } => {
            // Large rings (2^20 partitions) take seconds to place.
            let placing = crate::progress::spinner(format!("rebalancing {}", ring.display()));
            let mut r = load(&ring)?;
            let rep = r.rebalance()?;
            r.save(&ring)?;
            placing.finish();
            println!(
                "rebalanced {} to version {}: moved {} partition replicas, {} unassigned",
                ring.display(),
                r.version,
                rep.moved,
                rep.unassigned
            );
        }
        RingCommand::Show { ring } => {
            let r = load(&ring)?;
            print!("{}", r.report());
        }
    }
    Ok(())
}
