//! Cross-DC replication bench: two DCs on this machine (single nodes by default, or rings of
//! `--nodes N`), replicating the `demo` account both ways.
//!
//! 1. **Throughput**: with the link cut, write `count` objects of `size` bytes in DC1; restore
//!    the link and time until DC2 lists them all: objects/s and MB/s of replication.
//! 2. **Steady-state lag**: with the link up, write to DC1 at `rate` objects/s for `secs`
//!    seconds; sample DC1's shipper lag (feed entries and seconds behind) every 100 ms, and
//!    time each of a few marker objects from its PUT in DC1 to its appearance in DC2.
//!
//! Run: `cargo run --release -p outpost-benches --bin xdc_bench -- [count] [size] [rate] [secs] [nodes]`
//! (defaults 2000 16384 200 10 0). It starts the `outpost` binary of the same profile.

use std::time::{Duration, Instant};

use outpost_tests::xdc::{DcSpec, TwoDcs};

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let count = arg(1, 2000) as usize;
    let size = arg(2, 16 * 1024) as usize;
    let rate = arg(3, 200).max(1);
    let secs = arg(4, 10);
    let nodes = arg(5, 0) as usize;
    let spec = DcSpec {
        ship_all: false,
        nodes,
        account_policy: true,
        skew_secs: 0,
        extra: String::new(),
    };
    let dcs = TwoDcs::start(&spec, &spec);
    for dc in [&dcs.dc1, &dcs.dc2] {
        dc.must_create_container("bench", &[]);
    }
    let payload = vec![b'x'; size];

    // 1. Throughput of catching up after a cut.
    dcs.cut();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (dc, payload) = (&dcs.dc1, &payload);
            s.spawn(move || {
                for i in (t..count).step_by(8) {
                    dc.must_put(
                        i % dc.nodes.len(),
                        "bench",
                        &format!("t/{i:07}"),
                        payload.clone(),
                    );
                }
            });
        }
    });
    let t0 = Instant::now();
    dcs.restore();
    loop {
        if dcs.dc2.listing("bench").len() >= count {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(1800), "no convergence");
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = t0.elapsed().as_secs_f64();
    println!(
        "catch-up: {count} objects of {size} B in {took:.2} s: {:.0} objects/s, {:.2} MB/s",
        count as f64 / took,
        (count * size) as f64 / took / 1e6
    );

    // 2. Steady-state lag under a write load.
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut entries = Vec::new();
    let mut lag_secs = Vec::new();
    let mut delays = Vec::new();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let start = Instant::now();
            for i in 0..total {
                let due = start + interval * i as u32;
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                dcs.dc1
                    .must_put(0, "bench", &format!("s/{i:07}"), payload.clone());
            }
        });
        let mut marker = 0;
        while !writer.is_finished() {
            let st = dcs.dc1.sync_status();
            entries.push(st[0]["lag_entries"].as_u64().unwrap_or(0));
            lag_secs.push(st[0]["lag_secs"].as_u64().unwrap_or(0));
            if entries.len() % 20 == 0 {
                // Marker: PUT in DC1, poll DC2 for it.
                let name = format!("m/{marker}");
                marker += 1;
                let t = Instant::now();
                dcs.dc1.must_put(0, "bench", &name, b"marker".to_vec());
                loop {
                    let r = dcs
                        .dc2
                        .http()
                        .head(format!("{}/bench/{name}", dcs.dc2.account_url(0)))
                        .header("x-auth-token", dcs.dc2.token())
                        .send();
                    if r.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                    assert!(
                        t.elapsed() < Duration::from_secs(120),
                        "marker never arrived"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                delays.push(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    entries.sort_unstable();
    lag_secs.sort_unstable();
    delays.sort_unstable();
    let pct = |v: &[u64], p: f64| {
        v.get(((v.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "steady state at {rate} objects/s of {size} B for {secs} s: lag entries p50={} max={}, lag seconds max={}",
        pct(&entries, 0.5),
        entries.last().copied().unwrap_or(0),
        lag_secs.last().copied().unwrap_or(0)
    );
    if !delays.is_empty() {
        println!(
            "PUT in dc1 → visible in dc2: n={} p50={:.0} ms max={:.0} ms",
            delays.len(),
            delays[delays.len() / 2].as_secs_f64() * 1e3,
            delays[delays.len() - 1].as_secs_f64() * 1e3
        );
    }
}
