//! # outpost-ring
//!
//! The placement ring of an Outpost origin cluster: which devices hold which objects.
//!
//! ## What it is
//! - The object space is cut into `2^part_power` **partitions**: the partition of an object is
//!   the top `part_power` bits of the MD5 of `/<account>/<container>/<object>` (the same hash
//!   the origin names its data directories by, so a partition is a directory on disk).
//! - Each partition has `replicas` **primary** devices, at most one per device, and never two in
//!   one zone while another zone has room. When a primary is down, writes go to **handoff**
//!   devices ([`Ring::handoffs`]): the other devices in a fixed per-partition order, devices in
//!   unused zones first.
//! - A [`Ring`] is a versioned JSON file (`format` 1) that every origin node (and later every
//!   edge) loads with [`Ring::load`]. Nodes poll it and pick up a newer `version` without a
//!   restart. It is built by `outpost ring create|add|remove|rebalance|show`, which call
//!   [`Ring::new`], [`Ring::add_device`], [`Ring::remove_device`], [`Ring::rebalance`] and
//!   [`Ring::report`].
//! - [`Ring::rebalance`] moves the fewest partition replicas it can: only replicas on removed
//!   devices, replicas on devices holding more than their weight's share, and replicas that
//!   share a zone while another zone has room are reassigned. It reports how many moved.
//!
//! ## What it is not
//! No I/O besides [`Ring::load`] / [`Ring::save`] and [`RingFile`] (a loaded ring that
//! re-reads its file when it changes, for the processes that follow it), no network, no clock. It does not know
//! whether a device is up: callers skip devices they cannot reach and walk the handoffs.
//! One device is one origin node (one data directory).
//!
//! ## Example
//! ```
//! use outpost_ring::{DeviceSpec, Ring};
//! let mut ring = Ring::new(8, 3).unwrap();
//! for (i, zone) in [1, 2, 3].into_iter().enumerate() {
//!     ring.add_device(DeviceSpec {
//!         region: 1,
//!         zone,
//!         host: "127.0.0.1".into(),
//!         port: 6000 + i as u16,
//!         device: format!("d{i}"),
//!         weight: 100.0,
//!     })
//!     .unwrap();
//! }
//! let report = ring.rebalance().unwrap();
//! assert_eq!(report.moved, 256 * 3); // every replica was unassigned before
//! let part = ring.partition("AUTH_demo", "photos", "cat.jpg");
//! let primaries = ring.primaries(part);
//! assert_eq!(primaries.len(), 3);
//! assert_eq!(ring.handoffs(part).count(), 0); // three devices, all primaries
//! ```

mod file;
mod rebalance;

use std::path::Path;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

pub use file::{Reload, RingFile};
pub use rebalance::{DeviceReport, RebalanceReport, Report};

/// Version of the ring file format this crate reads and writes.
pub const FORMAT: u32 = 1;

/// Largest supported partition power (2^20 partitions).
pub const MAX_PART_POWER: u32 = 20;

/// Everything that can go wrong with a ring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ring file cannot be read or written.
    #[error("ring file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The ring file is not valid JSON of the expected shape.
    #[error("ring file {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The ring file has a format this build does not understand.
    #[error("ring file format {found} is not supported (this build reads format {FORMAT})")]
    Format {
        /// The format found.
        found: u32,
    },
    /// A parameter is out of range; names the parameter.
    #[error("{name}: {reason}")]
    Invalid {
        /// Parameter (`part_power`, `replicas`, `weight`, `port`, ...).
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// No device with that id (or it was removed).
    #[error("no device with id {id}")]
    NoSuchDevice {
        /// The id asked for.
        id: u32,
    },
    /// A device with the same host, port and device name exists.
    #[error("a device {host}:{port}/{device} already exists")]
    Duplicate {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Device name.
        device: String,
    },
    /// Rebalancing needs at least one device with weight.
    #[error("the ring has no device with a positive weight")]
    NoDevices,
}

/// What `outpost ring add` takes.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    /// Region (datacenter) number.
    pub region: u32,
    /// Zone (failure domain) number within the region.
    pub zone: u32,
    /// Host (IP or name) the node listens on.
    pub host: String,
    /// Port the node listens on.
    pub port: u16,
    /// Device name, unique per host:port (informational: one device is one node).
    pub device: String,
    /// Relative capacity; partitions are spread in proportion to it.
    pub weight: f64,
}

/// A device in the ring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Stable id (never reused).
    pub id: u32,
    /// Region.
    pub region: u32,
    /// Zone.
    pub zone: u32,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Device name.
    pub device: String,
    /// Weight.
    pub weight: f64,
    /// Removed devices keep their id; the next rebalance moves their partitions away.
    #[serde(default)]
    pub removed: bool,
}

impl Device {
    /// `host:port`, the address other nodes reach it at.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// True if the device may hold partitions.
    pub fn active(&self) -> bool {
        !self.removed && self.weight > 0.0
    }
}

/// Marks an unassigned replica slot in [`Ring::assignments`].
pub const NONE: u32 = u32::MAX;

/// The ring: devices and the replica → partition → device table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ring {
    /// File format, [`FORMAT`].
    pub format: u32,
    /// Bumped by every change; nodes reload when it grows.
    pub version: u64,
    /// `2^part_power` partitions.
    pub part_power: u32,
    /// Replicas per partition.
    pub replicas: u32,
    /// Every device ever added, indexed by id.
    pub devices: Vec<Device>,
    /// `assignments[replica][partition]` = device id, or [`NONE`].
    pub assignments: Vec<Vec<u32>>,
    /// Partition replicas moved by the last rebalance.
    #[serde(default)]
    pub last_moved: u64,
}

/// The placement hash: MD5 of `/<account>/<container>/<object>`. Every process that places
/// or names an object's data (origin data directories, edges reading replicas, the test
/// harness) uses this one definition.
pub fn object_hash(account: &str, container: &str, object: &str) -> [u8; 16] {
    let mut h = Md5::new();
    for s in [account, container, object] {
        h.update(b"/");
        h.update(s.as_bytes());
    }
    h.finalize().into()
}

/// [`object_hash`] as lower-case hex: the name of the object's data directory.
pub fn object_hash_hex(account: &str, container: &str, object: &str) -> String {
    hex::encode(object_hash(account, container, object))
}

/// The top `part_power` bits of the MD5 of `/<account>/<container>/<object>`.
pub fn partition_of(part_power: u32, account: &str, container: &str, object: &str) -> u32 {
    partition_of_hash(part_power, &object_hash(account, container, object))
}

/// The partition of a hex placement hash (as [`object_hash_hex`] gives); a string that is not
/// hex counts as the digest `0`.
pub fn partition_of_hex(part_power: u32, hash_hex: &str) -> u32 {
    let mut top = [0u8; 4];
    if let Some(h) = hash_hex.get(..8) {
        // Fewer than 8 hex digits or non-hex leave the digest at 0 (partition 0).
        if hex::decode_to_slice(h, &mut top).is_err() {
            top = [0; 4];
        }
    }
    partition_of_hash(part_power, &top)
}

/// The partition of an MD5 digest (its top `part_power` bits).
pub fn partition_of_hash(part_power: u32, digest: &[u8]) -> u32 {
    let mut top = [0u8; 4];
    for (t, d) in top.iter_mut().zip(digest) {
        *t = *d;
    }
    let top = u32::from_be_bytes(top);
    if part_power == 0 {
        0
    } else {
        top >> (32 - part_power.min(32))
    }
}

/// A small, fixed mixing function (splitmix64), so handoff orders are the same on every node
/// and every build.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Ring {
    /// An empty ring.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a part power above [`MAX_PART_POWER`] or zero replicas.
    pub fn new(part_power: u32, replicas: u32) -> Result<Ring, Error> {
        if part_power > MAX_PART_POWER {
            return Err(Error::Invalid {
                name: "part_power",
                reason: "must be at most 20",
            });
        }
        if replicas == 0 || replicas > 16 {
            return Err(Error::Invalid {
                name: "replicas",
                reason: "must be between 1 and 16",
            });
        }
        let parts = 1usize << part_power;
        Ok(Ring {
            format: FORMAT,
            version: 1,
            part_power,
            replicas,
            devices: Vec::new(),
            assignments: vec![vec![NONE; parts]; replicas as usize],
            last_moved: 0,
        })
    }

    /// Reads a ring file and checks it.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Parse`], [`Error::Format`].
    pub fn load(path: &Path) -> Result<Ring, Error> {
        let text = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ring::from_json(&text).map_err(|e| match e {
            Error::Parse { reason, .. } => Error::Parse {
                path: path.display().to_string(),
                reason,
            },
            e => e,
        })
    }

    /// Parses and checks a ring from JSON bytes.
    ///
    /// # Errors
    /// [`Error::Parse`], [`Error::Format`].
    pub fn from_json(bytes: &[u8]) -> Result<Ring, Error> {
        let parse = |reason: String| Error::Parse {
            path: "-".into(),
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| parse(e.to_string()))?;
        let format = v.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(FORMAT)) {
            return Err(Error::Format {
                found: format.and_then(|f| u32::try_from(f).ok()).unwrap_or(0),
            });
        }
        let ring: Ring = serde_json::from_value(v).map_err(|e| parse(e.to_string()))?;
        ring.check().map_err(|r| parse(r.into()))?;
        Ok(ring)
    }

    fn check(&self) -> Result<(), &'static str> {
        if self.part_power > MAX_PART_POWER {
            return Err("part_power above 20");
        }
        if self.assignments.len() != self.replicas as usize {
            return Err("assignments do not have one row per replica");
        }
        let parts = self.partition_count() as usize;
        for row in &self.assignments {
            if row.len() != parts {
                return Err("an assignment row does not have one entry per partition");
            }
            if row
                .iter()
                .any(|&d| d != NONE && d as usize >= self.devices.len())
            {
                return Err("an assignment names an unknown device");
            }
        }
        if self
            .devices
            .iter()
            .enumerate()
            .any(|(i, d)| d.id as usize != i)
        {
            return Err("device ids must equal their position");
        }
        Ok(())
    }

    /// Writes the ring atomically (temp file, fsync, rename), so a node polling the file never
    /// reads half of it.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        use std::io::Write;
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Number of partitions, `2^part_power`.
    pub fn partition_count(&self) -> u32 {
        1 << self.part_power
    }

    /// The partition of an object.
    pub fn partition(&self, account: &str, container: &str, object: &str) -> u32 {
        partition_of(self.part_power, account, container, object)
    }

    /// The device with this id, if it exists (removed devices included).
    pub fn device(&self, id: u32) -> Option<&Device> {
        self.devices.get(id as usize)
    }

    /// Devices that are not removed.
    pub fn live_devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(|d| !d.removed)
    }

    /// The device listening at `host:port`, if any (not removed).
    pub fn device_at(&self, addr: &str) -> Option<&Device> {
        self.live_devices().find(|d| d.addr() == addr)
    }

    /// The primary devices of a partition, replica 0 first. Fewer than `replicas` only if
    /// the ring has fewer devices than replicas. A partition out of range has none.
    pub fn primaries(&self, part: u32) -> Vec<&Device> {
        self.assignments
            .iter()
            .filter_map(|row| row.get(part as usize))
            .filter(|&&d| d != NONE)
            .filter_map(|&d| self.device(d))
            .collect()
    }

    /// True if `device` is a primary of `part`.
    pub fn is_primary(&self, part: u32, device: u32) -> bool {
        self.assignments
            .iter()
            .any(|row| row.get(part as usize) == Some(&device))
    }

    /// The other live devices of a partition in the order writes should fall back to them:
    /// devices in zones the primaries do not use first, then the rest; within each group a
    /// fixed pseudo-random order per partition (so one dead node's load spreads out).
    pub fn handoffs(&self, part: u32) -> impl Iterator<Item = &Device> + '_ {
        let primaries = self.primaries(part);
        let used_zones: Vec<(u32, u32)> = primaries.iter().map(|d| (d.region, d.zone)).collect();
        let mut rest: Vec<&Device> = self
            .devices
            .iter()
            .filter(|d| d.active() && !primaries.iter().any(|p| p.id == d.id))
            .collect();
        rest.sort_by_key(|d| {
            (
                used_zones.contains(&(d.region, d.zone)),
                mix((u64::from(part) << 32) | u64::from(d.id)),
            )
        });
        rest.into_iter()
    }

    /// Partitions for which `device` is a primary.
    pub fn partitions_of(&self, device: u32) -> Vec<u32> {
        (0..self.partition_count())
            .filter(|&p| self.is_primary(p, device))
            .collect()
    }

    /// Adds a device (placement changes only at the next [`Ring::rebalance`]). Returns its id.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad weight, port or name, [`Error::Duplicate`].
    pub fn add_device(&mut self, spec: DeviceSpec) -> Result<u32, Error> {
        if !spec.weight.is_finite() || spec.weight < 0.0 {
            return Err(Error::Invalid {
                name: "weight",
                reason: "must be a finite number >= 0",
            });
        }
        if spec.port == 0 {
            return Err(Error::Invalid {
                name: "port",
                reason: "must not be 0",
            });
        }
        if spec.host.is_empty() || spec.host.contains(['/', ' ']) {
            return Err(Error::Invalid {
                name: "host",
                reason: "must be a non-empty host name or IP without '/' or spaces",
            });
        }
        if spec.device.is_empty() || spec.device.contains(['/', ' ']) {
            return Err(Error::Invalid {
                name: "device",
                reason: "must be a non-empty name without '/' or spaces",
            });
        }
        if self
            .live_devices()
            .any(|d| d.host == spec.host && d.port == spec.port && d.device == spec.device)
        {
            return Err(Error::Duplicate {
                host: spec.host,
                port: spec.port,
                device: spec.device,
            });
        }
        let id = u32::try_from(self.devices.len()).map_err(|_| Error::Invalid {
            name: "device",
            reason: "too many devices",
        })?;
        self.devices.push(Device {
            id,
            region: spec.region,
            zone: spec.zone,
            host: spec.host,
            port: spec.port,
            device: spec.device,
            weight: spec.weight,
            removed: false,
        });
        self.version += 1;
        Ok(id)
    }

    /// Marks a device removed; the next [`Ring::rebalance`] moves its partitions away.
    ///
    /// # Errors
    /// [`Error::NoSuchDevice`].
    pub fn remove_device(&mut self, id: u32) -> Result<(), Error> {
        match self.devices.get_mut(id as usize) {
            Some(d) if !d.removed => {
                d.removed = true;
                self.version += 1;
                Ok(())
            }
            _ => Err(Error::NoSuchDevice { id }),
        }
    }

    /// Changes a device's weight (takes effect at the next rebalance).
    ///
    /// # Errors
    /// [`Error::NoSuchDevice`], [`Error::Invalid`].
    pub fn set_weight(&mut self, id: u32, weight: f64) -> Result<(), Error> {
        if !weight.is_finite() || weight < 0.0 {
            return Err(Error::Invalid {
                name: "weight",
                reason: "must be a finite number >= 0",
            });
        }
        match self.devices.get_mut(id as usize) {
            Some(d) if !d.removed => {
                d.weight = weight;
                self.version += 1;
                Ok(())
            }
            _ => Err(Error::NoSuchDevice { id }),
        }
    }
}

#[cfg(test)]
mod tests;
