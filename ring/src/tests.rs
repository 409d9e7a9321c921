//! Placement checked against a naive reference model, stability across rebalances, and the
//! file format.

use std::collections::{HashMap, HashSet};

use md5::{Digest, Md5};
use proptest::prelude::*;

use super::*;

fn spec(i: u16, zone: u32, weight: f64) -> DeviceSpec {
    DeviceSpec {
        region: 1,
        zone,
        host: "127.0.0.1".into(),
        port: 7000 + i,
        device: format!("d{i}"),
        weight,
    }
}

fn ring_with(part_power: u32, replicas: u32, zones: &[u32]) -> Ring {
    let mut r = Ring::new(part_power, replicas).unwrap();
    for (i, z) in zones.iter().enumerate() {
        r.add_device(spec(i as u16, *z, 100.0)).unwrap();
    }
    r.rebalance().unwrap();
    r
}

/// Reference partition: the whole digest as a 128-bit number, shifted.
fn naive_partition(part_power: u32, a: &str, c: &str, o: &str) -> u32 {
    let d = Md5::digest(format!("/{a}/{c}/{o}").as_bytes());
    let n = u128::from_be_bytes(d.into());
    if part_power == 0 {
        0
    } else {
        (n >> (128 - part_power)) as u32
    }
}

/// Reference primaries: scan the table for every device that appears in the partition's column.
fn naive_primaries(r: &Ring, part: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for replica in 0..r.replicas as usize {
        let d = r.assignments[replica][part as usize];
        if d != NONE {
            out.push(d);
        }
    }
    out
}

/// The invariants every rebalanced ring must satisfy.
fn must_be_valid(r: &Ring) {
    must_be_valid_with(r, true);
}

/// As [`must_be_valid`]; `balance` also checks every device is within one replica of its
/// weight's share (only meaningful when zones do not force an imbalance).
fn must_be_valid_with(r: &Ring, balance: bool) {
    let zones: HashSet<(u32, u32)> = r
        .devices
        .iter()
        .filter(|d| d.active())
        .map(|d| (d.region, d.zone))
        .collect();
    let active = r.devices.iter().filter(|d| d.active()).count();
    let mut counts: HashMap<u32, u64> = HashMap::new();
    for p in 0..r.partition_count() {
        let prim = naive_primaries(r, p);
        assert_eq!(prim.len(), active.min(r.replicas as usize), "partition {p}");
        let distinct: HashSet<u32> = prim.iter().copied().collect();
        assert_eq!(distinct.len(), prim.len(), "partition {p} repeats a device");
        let pz: HashSet<(u32, u32)> = prim.iter().map(|&d| r.zone_of(d)).collect();
        assert_eq!(
            pz.len(),
            prim.len().min(zones.len()),
            "partition {p}: two replicas in one zone while a zone has room"
        );
        for d in prim {
            assert!(r.devices[d as usize].active());
            *counts.entry(d).or_default() += 1;
        }
    }
    if !balance {
        return;
    }
    let wanted = r.wanted();
    for d in r.devices.iter().filter(|d| d.active()) {
        let c = counts.get(&d.id).copied().unwrap_or(0) as f64;
        assert!(
            c <= wanted[d.id as usize].ceil() + 1.0 && c >= wanted[d.id as usize].floor() - 1.0,
            "device {} holds {c}, wants {}",
            d.id,
            wanted[d.id as usize]
        );
    }
}

fn moved_between(a: &Ring, b: &Ring) -> u64 {
    a.assignments
        .iter()
        .zip(&b.assignments)
        .map(|(x, y)| x.iter().zip(y).filter(|(p, q)| p != q).count() as u64)
        .sum()
}

#[test]
fn partition_matches_reference() {
    for pp in [0, 1, 8, 10, 16, 20] {
        for i in 0..200 {
            let o = format!("obj-{i}");
            assert_eq!(
                partition_of(pp, "AUTH_a", "c", &o),
                naive_partition(pp, "AUTH_a", "c", &o)
            );
        }
    }
}

#[test]
fn primaries_match_reference_and_are_valid() {
    let r = ring_with(8, 3, &[1, 2, 3, 4, 5]);
    must_be_valid(&r);
    for p in 0..r.partition_count() {
        let ours: Vec<u32> = r.primaries(p).iter().map(|d| d.id).collect();
        assert_eq!(ours, naive_primaries(&r, p));
        let hand: Vec<u32> = r.handoffs(p).map(|d| d.id).collect();
        assert_eq!(hand.len(), 2);
        assert!(hand.iter().all(|h| !ours.contains(h)));
    }
}

#[test]
fn handoffs_prefer_unused_zones() {
    // Zones 1,1,2,2,3,3: primaries use three zones; with 4 zones the 4th comes first.
    let r = ring_with(6, 3, &[1, 1, 2, 2, 3, 4]);
    must_be_valid_with(&r, false);
    for p in 0..r.partition_count() {
        let used: HashSet<u32> = r.primaries(p).iter().map(|d| d.zone).collect();
        let hand: Vec<&Device> = r.handoffs(p).collect();
        let first_reused = hand.iter().position(|d| used.contains(&d.zone));
        if let Some(i) = first_reused {
            assert!(hand[i..].iter().all(|d| used.contains(&d.zone)));
        }
    }
}

#[test]
fn adding_a_device_moves_only_its_share() {
    let before = ring_with(10, 3, &[1, 2, 3]);
    must_be_valid(&before);
    let mut after = before.clone();
    let new = after.add_device(spec(9, 4, 100.0)).unwrap();
    let rep = after.rebalance().unwrap();
    must_be_valid(&after);
    assert_eq!(rep.moved, moved_between(&before, &after));
    assert_eq!(after.report().last_moved, rep.moved);
    // The new device wants 3/4 of 1024 partitions; exactly that many replicas move, all to it.
    let wanted = after.wanted()[new as usize];
    assert!(
        (rep.moved as f64 - wanted).abs() <= 1.0,
        "moved {}",
        rep.moved
    );
    for (a, b) in before.assignments.iter().zip(&after.assignments) {
        for (x, y) in a.iter().zip(b) {
            if x != y {
                assert_eq!(
                    *y, new,
                    "a replica moved somewhere other than the new device"
                );
            }
        }
    }
    // Rebalancing a balanced ring moves nothing.
    let mut again = after.clone();
    assert_eq!(again.rebalance().unwrap().moved, 0);
}

#[test]
fn removing_a_device_moves_only_its_partitions() {
    let before = ring_with(9, 3, &[1, 2, 3, 4]);
    let victim = 2;
    let held = before.partitions_of(victim).len() as u64;
    let mut after = before.clone();
    after.remove_device(victim).unwrap();
    let rep = after.rebalance().unwrap();
    must_be_valid(&after);
    assert_eq!(rep.moved, held);
    assert!(after.partitions_of(victim).is_empty());
}

#[test]
fn zones_are_spread_when_a_zone_is_added() {
    // Two zones for three replicas: one zone must hold two. A third zone fixes it.
    let mut r = ring_with(6, 3, &[1, 1, 2, 2]);
    must_be_valid_with(&r, false);
    r.add_device(spec(20, 3, 100.0)).unwrap();
    r.rebalance().unwrap();
    // Zone 3's one device must hold every partition: dispersion beats weight.
    must_be_valid_with(&r, false);
    assert_eq!(r.partitions_of(4).len(), 64);
    assert_eq!(r.zone_conflicts(), 0);
}

#[test]
fn fewer_devices_than_replicas_leaves_slots_unassigned() {
    let mut r = Ring::new(4, 3).unwrap();
    r.add_device(spec(0, 1, 1.0)).unwrap();
    r.add_device(spec(1, 2, 1.0)).unwrap();
    let rep = r.rebalance().unwrap();
    assert_eq!(rep.unassigned, 16);
    must_be_valid(&r);
}

#[test]
fn file_roundtrip_and_format_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let r = ring_with(5, 2, &[1, 2, 3]);
    r.save(&path).unwrap();
    assert_eq!(Ring::load(&path).unwrap(), r);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["format"] = 2.into();
    std::fs::write(&path, v.to_string()).unwrap();
    assert!(matches!(Ring::load(&path), Err(Error::Format { found: 2 })));
    v["format"] = 1.into();
    v["assignments"][0] = serde_json::json!([0, 1]);
    std::fs::write(&path, v.to_string()).unwrap();
    let e = Ring::load(&path).unwrap_err().to_string();
    assert!(e.contains("one entry per partition"), "{e}");
    std::fs::write(&path, b"{\"format\":1,").unwrap();
    assert!(matches!(Ring::load(&path), Err(Error::Parse { .. })));
}

/// The format-1 fixture still loads (and places objects where it always did).
#[test]
fn format_1_fixture_loads() {
    let r = Ring::from_json(include_bytes!("../fixtures/ring-v1.json")).unwrap();
    assert_eq!(r.part_power, 2);
    assert_eq!(
        r.primaries(3).iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![2, 0]
    );
    assert_eq!(
        r.partition("AUTH_a", "c", "o"),
        naive_partition(2, "AUTH_a", "c", "o")
    );
}

#[test]
fn bad_parameters_are_named() {
    assert!(Ring::new(21, 3)
        .unwrap_err()
        .to_string()
        .contains("part_power"));
    assert!(Ring::new(8, 0)
        .unwrap_err()
        .to_string()
        .contains("replicas"));
    let mut r = Ring::new(4, 1).unwrap();
    assert!(r
        .add_device(spec(0, 1, -1.0))
        .unwrap_err()
        .to_string()
        .contains("weight"));
    r.add_device(spec(0, 1, 1.0)).unwrap();
    assert!(matches!(
        r.add_device(spec(0, 1, 1.0)),
        Err(Error::Duplicate { .. })
    ));
    assert!(matches!(
        r.remove_device(7),
        Err(Error::NoSuchDevice { id: 7 })
    ));
    let mut empty = Ring::new(4, 1).unwrap();
    assert!(matches!(empty.rebalance(), Err(Error::NoDevices)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any sequence of adds, removes and weight changes keeps the ring valid, and the moved
    /// count is the true difference.
    #[test]
    fn random_histories_stay_valid(ops in proptest::collection::vec((0u8..3, 0u16..12, 1u32..5, 1u32..4), 1..10)) {
        let mut r = ring_with(6, 3, &[1, 2, 3]);
        for (op, i, zone, w) in ops {
            let live: Vec<u32> = r.live_devices().map(|d| d.id).collect();
            match op {
                0 => { let _ = r.add_device(spec(100 + i, zone, f64::from(w) * 50.0)); }
                1 if live.len() > 3 => { r.remove_device(live[i as usize % live.len()]).unwrap(); }
                _ => { r.set_weight(live[i as usize % live.len()], f64::from(w) * 50.0).unwrap(); }
            }
            let before = r.clone();
            let rep = r.rebalance().unwrap();
            prop_assert_eq!(rep.moved, moved_between(&before, &r));
            must_be_valid_with(&r, false);
        }
    }
}

#[test]
fn placement_hash_names_and_places_alike() {
    // MD5("/a/c/o"), as origin data directories have always been named.
    let hex = object_hash_hex("a", "c", "o");
    assert_eq!(hex.len(), 32);
    assert_eq!(hex, ::hex::encode(object_hash("a", "c", "o")));
    for pp in [0, 1, 10, 18, 32] {
        assert_eq!(partition_of_hex(pp, &hex), partition_of(pp, "a", "c", "o"));
    }
    assert_eq!(partition_of_hex(10, "ffffffff00"), 1023);
    assert_eq!(partition_of_hex(10, "00000000ff"), 0);
    assert_eq!(partition_of_hex(1, "80000000"), 1);
    assert_eq!(partition_of_hex(10, "not hex!"), 0);
    assert_eq!(partition_of_hex(10, "ff"), 0);
}
