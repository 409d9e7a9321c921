//! Rebalancing and the balance report.
//!
//! The algorithm keeps every assignment it can and moves only:
//! 1. replicas on removed or zero-weight devices;
//! 2. a replica that shares a zone with another replica of its partition while some active
//!    zone holds none of them (zone dispersion beats balance);
//! 3. replicas on devices holding more than `ceil(wanted)`, where `wanted` is the device's
//!    weight share of `partitions × replicas` (capped at one replica per partition).
//!
//! Freed slots go to the device (not already holding the partition) in an unused zone if
//! there is one, with the largest deficit `wanted - assigned`; ties break by id. The moved
//! count is the number of `(replica, partition)` slots whose device differs from before.

use std::collections::HashSet;

use crate::{mix, Error, Ring, NONE};

/// What a rebalance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceReport {
    /// Partition replicas that changed device.
    pub moved: u64,
    /// Replica slots left without a device (fewer active devices than replicas).
    pub unassigned: u64,
}

/// One device's line in the balance report.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReport {
    /// Device id.
    pub id: u32,
    /// `host:port/device`.
    pub name: String,
    /// Region.
    pub region: u32,
    /// Zone.
    pub zone: u32,
    /// Weight.
    pub weight: f64,
    /// Removed, waiting for a rebalance to drain it.
    pub removed: bool,
    /// Partition replicas assigned.
    pub partitions: u64,
    /// Partition replicas its weight asks for.
    pub wanted: f64,
    /// `100 × (partitions - wanted) / wanted`; 0 for a device that wants none.
    pub balance_pct: f64,
}

/// The balance report `outpost ring show` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Ring version.
    pub version: u64,
    /// Partition power.
    pub part_power: u32,
    /// Replicas.
    pub replicas: u32,
    /// Per device.
    pub devices: Vec<DeviceReport>,
    /// Largest absolute balance, percent.
    pub max_balance_pct: f64,
    /// Partition replicas moved by the last rebalance.
    pub last_moved: u64,
    /// Partitions with two replicas in one zone while an active zone holds none of them.
    pub zone_conflicts: u64,
    /// Unassigned replica slots.
    pub unassigned: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "ring version {}: {} partitions (part power {}), {} replicas",
            self.version,
            1u64 << self.part_power,
            self.part_power,
            self.replicas
        )?;
        writeln!(
            f,
            "last rebalance moved {} partition replicas; balance {:.2}%; {} zone conflicts; {} unassigned",
            self.last_moved, self.max_balance_pct, self.zone_conflicts, self.unassigned
        )?;
        writeln!(
            f,
            "{:>4} {:>6} {:>4} {:<32} {:>8} {:>10} {:>10} {:>9}",
            "id", "region", "zone", "address/device", "weight", "partitions", "wanted", "balance%"
        )?;
        for d in &self.devices {
            writeln!(
                f,
                "{:>4} {:>6} {:>4} {:<32} {:>8.2} {:>10} {:>10.2} {:>9.2}{}",
                d.id,
                d.region,
                d.zone,
                d.name,
                d.weight,
                d.partitions,
                d.wanted,
                d.balance_pct,
                if d.removed { " (removed)" } else { "" }
            )?;
        }
        Ok(())
    }
}

impl Ring {
    /// How many replica slots each device should hold, by weight, capped at one replica per
    /// partition (the surplus of a capped device is shared out again).
    pub(crate) fn wanted(&self) -> Vec<f64> {
        let parts = f64::from(self.partition_count());
        let mut wanted = vec![0.0; self.devices.len()];
        let mut capped: HashSet<usize> = HashSet::new();
        let mut slots = parts * f64::from(self.replicas);
        loop {
            let total: f64 = self
                .devices
                .iter()
                .enumerate()
                .filter(|(i, d)| d.active() && !capped.contains(i))
                .map(|(_, d)| d.weight)
                .sum();
            if total <= 0.0 {
                break;
            }
            let mut newly = false;
            for (i, d) in self.devices.iter().enumerate() {
                if d.active() && !capped.contains(&i) {
                    wanted[i] = slots * d.weight / total;
                    if wanted[i] > parts {
                        wanted[i] = parts;
                        capped.insert(i);
                        newly = true;
                    }
                }
            }
            if !newly {
                break;
            }
            slots = parts * f64::from(self.replicas) - parts * capped.len() as f64;
        }
        wanted
    }

    fn counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.devices.len()];
        for row in &self.assignments {
            for &d in row {
                if d != NONE {
                    c[d as usize] += 1;
                }
            }
        }
        c
    }

    pub(crate) fn zone_of(&self, d: u32) -> (u32, u32) {
        let dev = &self.devices[d as usize];
        (dev.region, dev.zone)
    }

    fn active_zones(&self) -> HashSet<(u32, u32)> {
        self.devices
            .iter()
            .filter(|d| d.active())
            .map(|d| (d.region, d.zone))
            .collect()
    }

    /// Partitions where two replicas share a zone while some active zone holds none.
    pub(crate) fn zone_conflicts(&self) -> u64 {
        let zones = self.active_zones();
        let mut n = 0;
        for p in 0..self.partition_count() as usize {
            let used: Vec<(u32, u32)> = self
                .assignments
                .iter()
                .map(|row| row[p])
                .filter(|&d| d != NONE)
                .map(|d| self.zone_of(d))
                .collect();
            let distinct: HashSet<_> = used.iter().copied().collect();
            if distinct.len() < used.len() && zones.iter().any(|z| !distinct.contains(z)) {
                n += 1;
            }
        }
        n
    }

    /// Reassigns partition replicas so that every partition has `replicas` distinct devices,
    /// zones are distinct while zones have room, and devices hold their weight's share, moving
    /// as few replicas as it can. Bumps the version.
    ///
    /// # Errors
    /// [`Error::NoDevices`] when no device is active.
    pub fn rebalance(&mut self) -> Result<RebalanceReport, Error> {
        if !self.devices.iter().any(|d| d.active()) {
            return Err(Error::NoDevices);
        }
        let before = self.assignments.clone();
        let parts = self.partition_count() as usize;
        let replicas = self.replicas as usize;
        let wanted = self.wanted();
        let zones = self.active_zones();

        // 1. Replicas on inactive devices, and duplicate devices within a partition.
        for p in 0..parts {
            let mut seen = HashSet::new();
            for r in 0..replicas {
                let d = self.assignments[r][p];
                if d != NONE && (!self.devices[d as usize].active() || !seen.insert(d)) {
                    self.assignments[r][p] = NONE;
                }
            }
        }
        let mut counts = self.counts();

        // 2. Zone dispersion: free one replica of a doubled zone while a zone has room.
        for p in 0..parts {
            loop {
                let held: Vec<(usize, u32)> = (0..replicas)
                    .map(|r| (r, self.assignments[r][p]))
                    .filter(|&(_, d)| d != NONE)
                    .collect();
                let used: HashSet<(u32, u32)> =
                    held.iter().map(|&(_, d)| self.zone_of(d)).collect();
                if used.len() == held.len() || zones.iter().all(|z| used.contains(z)) {
                    break;
                }
                // Among replicas sharing a zone, free the one on the most loaded device.
                let victim = held
                    .iter()
                    .filter(|&&(_, d)| {
                        held.iter()
                            .filter(|&&(_, o)| self.zone_of(o) == self.zone_of(d))
                            .count()
                            > 1
                    })
                    .max_by(|a, b| {
                        let la = counts[a.1 as usize] as f64 - wanted[a.1 as usize];
                        let lb = counts[b.1 as usize] as f64 - wanted[b.1 as usize];
                        la.total_cmp(&lb).then(b.1.cmp(&a.1))
                    })
                    .copied();
                match victim {
                    Some((r, d)) => {
                        self.assignments[r][p] = NONE;
                        counts[d as usize] -= 1;
                    }
                    None => break,
                }
            }
        }

        // 3. Overloaded devices give back their surplus, spread over the partition space.
        for (d, dev) in self.devices.iter().enumerate() {
            if !dev.active() {
                continue;
            }
            let cap = wanted[d].ceil() as u64;
            if counts[d] <= cap {
                continue;
            }
            let mut mine: Vec<(usize, usize)> = (0..parts)
                .flat_map(|p| (0..replicas).map(move |r| (r, p)))
                .filter(|&(r, p)| self.assignments[r][p] == d as u32)
                .collect();
            mine.sort_by_key(|&(r, p)| mix(((d as u64) << 40) | ((p as u64) << 8) | r as u64));
            for (r, p) in mine {
                if counts[d] <= cap {
                    break;
                }
                // One free slot per partition: a second one could only go back to a device
                // that already holds the partition, i.e. nowhere useful.
                if (0..replicas).any(|rr| self.assignments[rr][p] == NONE) {
                    continue;
                }
                self.assignments[r][p] = NONE;
                counts[d] -= 1;
            }
        }

        // 4. Fill every free slot.
        let mut unassigned = 0;
        for p in 0..parts {
            for r in 0..replicas {
                if self.assignments[r][p] != NONE {
                    continue;
                }
                let holding: Vec<u32> = (0..replicas)
                    .map(|rr| self.assignments[rr][p])
                    .filter(|&d| d != NONE)
                    .collect();
                let used: HashSet<(u32, u32)> = holding.iter().map(|&d| self.zone_of(d)).collect();
                let best = self
                    .devices
                    .iter()
                    .filter(|dev| dev.active() && !holding.contains(&dev.id))
                    .max_by(|a, b| {
                        let fa = !used.contains(&(a.region, a.zone));
                        let fb = !used.contains(&(b.region, b.zone));
                        let da = wanted[a.id as usize] - counts[a.id as usize] as f64;
                        let db = wanted[b.id as usize] - counts[b.id as usize] as f64;
                        fa.cmp(&fb).then(da.total_cmp(&db)).then(b.id.cmp(&a.id))
                    })
                    .map(|dev| dev.id);
                match best {
                    Some(d) => {
                        self.assignments[r][p] = d;
                        counts[d as usize] += 1;
                    }
                    None => unassigned += 1,
                }
            }
        }

        let moved = before
            .iter()
            .zip(&self.assignments)
            .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x != y).count() as u64)
            .sum();
        self.last_moved = moved;
        self.version += 1;
        Ok(RebalanceReport { moved, unassigned })
    }

    /// The balance report.
    pub fn report(&self) -> Report {
        let wanted = self.wanted();
        let counts = self.counts();
        let devices: Vec<DeviceReport> = self
            .devices
            .iter()
            .filter(|d| !d.removed || counts[d.id as usize] > 0)
            .map(|d| {
                let w = wanted[d.id as usize];
                let c = counts[d.id as usize];
                DeviceReport {
                    id: d.id,
                    name: format!("{}/{}", d.addr(), d.device),
                    region: d.region,
                    zone: d.zone,
                    weight: d.weight,
                    removed: d.removed,
                    partitions: c,
                    wanted: w,
                    balance_pct: if w > 0.0 {
                        100.0 * (c as f64 - w) / w
                    } else {
                        0.0
                    },
                }
            })
            .collect();
        let max_balance_pct = devices
            .iter()
            .map(|d| d.balance_pct.abs())
            .fold(0.0, f64::max);
        let unassigned = self
            .assignments
            .iter()
            .map(|row| row.iter().filter(|&&d| d == NONE).count() as u64)
            .sum();
        Report {
            version: self.version,
            part_power: self.part_power,
            replicas: self.replicas,
            devices,
            max_balance_pct,
            last_moved: self.last_moved,
            zone_conflicts: self.zone_conflicts(),
            unassigned,
        }
    }
}
