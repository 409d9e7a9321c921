//! The randomized fault test of a ring (the Jepsen habit): seeded and bounded in time.
//!
//! Four nodes, three replicas, a forwarder in front of every node, one node's clock 30 s
//! behind (`OUTPOST_CLOCK_SKEW_SECS`), and an edge following node 0. Several clients write,
//! overwrite and delete keys of a public container through random nodes while a nemesis, one
//! fault at a time, kills a node (SIGKILL) and starts it again, pauses one (SIGSTOP) and
//! resumes it, or cuts the link between two nodes and heals it. Then everything heals, the
//! replicator runs until a round pushes nothing, and the checker compares the history with
//! what every node and the edge serve:
//!
//! - each key has one client, so its operations are totally ordered in real time. The final
//!   state may be the result of the last acknowledged operation, or of a later one whose
//!   outcome the client could not know (an error or a timeout). Anything else is **lost**
//!   (the last acknowledged operation was a write) or **resurrected** (it was a delete);
//! - every node answers the same for every key, and the primaries of every partition hold the
//!   same files, nothing else holding any (**diverged** counts what differs);
//! - the edge serves the final state of every key.
//!
//! [`run`] returns a [`Record`]; the test asserts it is clean, and `scripts/fault_runs.sh`
//! collects the records of several seeds into `docs/fault-runs.md`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::{must_become, EdgeProc};
use crate::ring_cluster::{Options, RingCluster};

/// The seeded generator (splitmix64): the same seed gives the same choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A duration between `lo` and `hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// What one operation was.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Put(Vec<u8>),
    Delete,
}

/// What the client learnt of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Acknowledged (201, 204, or a delete's 404).
    Acked,
    /// Unknown: an error status or no answer; it may or may not have taken effect.
    Unknown,
}

/// One entry of the history.
#[derive(Debug, Clone)]
struct Entry {
    op: Op,
    outcome: Outcome,
    node: usize,
}

/// What a key holds: absent, or a body.
type State = Option<Vec<u8>>;

impl Op {
    fn state(&self) -> State {
        match self {
            Op::Put(b) => Some(b.clone()),
            Op::Delete => None,
        }
    }
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The seed of every random choice.
    pub seed: u64,
    /// How long clients and nemesis run.
    pub duration: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys (each owned by one client).
    pub keys: usize,
    /// Seconds node 3's clock is shifted by (0: every clock the machine's).
    pub skew_secs: i64,
}

/// The record of one run (one line of `docs/fault-runs.md`).
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The seed.
    pub seed: u64,
    /// Operations sent.
    pub ops: u64,
    /// Operations acknowledged.
    pub acked: u64,
    /// Operations with an unknown outcome.
    pub unknown: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Keys whose last acknowledged write is not what they hold.
    pub lost: u64,
    /// Keys that hold a value although their last acknowledged operation deleted them.
    pub resurrected: u64,
    /// Keys or partitions on which nodes (or the edge) disagree.
    pub diverged: u64,
    /// Replication rounds until a round pushed nothing.
    pub rounds: usize,
    /// Seconds from the heal to a clean check.
    pub heal_secs: f64,
    /// Seconds of the whole run.
    pub total_secs: f64,
    /// What the checker found, one line per problem.
    pub problems: Vec<String>,
}

impl Record {
    /// No acknowledged write lost, no acknowledged delete resurrected, nothing diverged.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.resurrected == 0 && self.diverged == 0
    }

    /// One Markdown table row.
    pub fn markdown_row(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            self.seed,
            self.ops,
            self.acked,
            self.unknown,
            faults.join(", "),
            self.lost,
            self.resurrected,
            self.diverged,
            self.rounds,
            self.heal_secs,
            self.total_secs
        )
    }
}

const HOST: &str = "public.demo.cdn.test";
const SKEWED: usize = 3;
const NODES: usize = 4;
const PART_POWER: u32 = 4;

fn key_name(k: usize) -> String {
    format!("key-{k:03}")
}

/// Runs one seeded fault run and checks it.
///
/// # Panics
/// When the cluster cannot be started or healed (not when the checker finds anomalies: they
/// are in the record).
pub fn run(s: &Settings) -> Record {
    let started = Instant::now();
    let mut rec = Record {
        seed: s.seed,
        ..Record::default()
    };
    let mut rng = Rng::new(s.seed);
    let mut c = RingCluster::start_with(
        NODES,
        PART_POWER,
        3,
        "orphan_grace = \"1s\"\n",
        &Options {
            forwarders: true,
            ..Options::default()
        },
    );
    if s.skew_secs != 0 {
        c.set_env(
            SKEWED,
            &[("OUTPOST_CLOCK_SKEW_SECS", s.skew_secs.to_string().as_str())],
        );
        c.restart(SKEWED);
    }
    let token = c.must_login(0);
    let r = c
        .http()
        .put(format!("{}/public", c.account_url(0)))
        .header("x-auth-token", &token)
        .header("x-container-read", ".r:*,.rlistings")
        .send()
        .expect("container PUT");
    assert_eq!(r.status(), 201);
    let edge_origin = format!("127.0.0.1:{}", c.nodes[0].listen_port)
        .parse()
        .expect("addr");
    let edge = EdgeProc::start(c.dir.path(), "e0", edge_origin, "");
    let urls: Vec<String> = (0..NODES).map(|i| c.account_url(i)).collect();
    let tokens: Vec<String> = (0..NODES).map(|i| c.must_login(i)).collect();

    // Clients: each owns the keys k with k % clients == its index, one operation at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let history: Arc<Mutex<BTreeMap<usize, Vec<Entry>>>> = Arc::default();
    let clients: Vec<_> = (0..s.clients)
        .map(|ci| {
            let (urls, tokens, stop, history) = (
                urls.clone(),
                tokens.clone(),
                Arc::clone(&stop),
                Arc::clone(&history),
            );
            let mut rng = Rng::new(s.seed ^ (0xc1_1e47 * (ci as u64 + 1)));
            let keys: Vec<usize> = (0..s.keys).filter(|k| k % s.clients == ci).collect();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(8))
                    .build()
                    .expect("client");
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let k = keys[rng.below(keys.len() as u64) as usize];
                    let node = rng.below(NODES as u64) as usize;
                    let url = format!("{}/public/{}", urls[node], key_name(k));
                    seq += 1;
                    let op = if rng.below(10) < 7 {
                        let len = 16 + rng.below(2000) as usize;
                        let mut body = format!("c{ci} k{k} n{seq} ").into_bytes();
                        body.resize(len, b'a' + (seq % 26) as u8);
                        Op::Put(body)
                    } else {
                        Op::Delete
                    };
                    let req = match &op {
                        Op::Put(b) => http.put(&url).body(b.clone()),
                        Op::Delete => http.delete(&url),
                    };
                    let outcome = match req.header("x-auth-token", &tokens[node]).send() {
                        Ok(r) => match (&op, r.status().as_u16()) {
                            (Op::Put(_), 201) | (Op::Delete, 204 | 404) => Outcome::Acked,
                            _ => Outcome::Unknown,
                        },
                        Err(_) => Outcome::Unknown,
                    };
                    history
                        .lock()
                        .expect("history")
                        .entry(k)
                        .or_default()
                        .push(Entry { op, outcome, node });
                }
            })
        })
        .collect();

    // The nemesis: one fault at a time.
    let end = Instant::now() + s.duration;
    while Instant::now() < end {
        std::thread::sleep(rng.millis(200, 800));
        let n = rng.below(NODES as u64) as usize;
        let hold = rng.millis(500, 2500);
        match rng.below(3) {
            0 => {
                *rec.faults.entry("kill").or_default() += 1;
                c.kill(n);
                std::thread::sleep(hold);
                c.start_again(n);
            }
            1 => {
                *rec.faults.entry("pause").or_default() += 1;
                c.pause(n);
                std::thread::sleep(hold);
                c.resume(n);
            }
            _ => {
                let m = (n + 1 + rng.below(NODES as u64 - 1) as usize) % NODES;
                *rec.faults.entry("cut").or_default() += 1;
                c.links().cut(n, m);
                std::thread::sleep(hold);
                c.links().heal(n, m);
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    for t in clients {
        t.join().expect("client thread");
    }
    c.links().heal_all();
    let healed = Instant::now();
    let history = Arc::try_unwrap(history)
        .expect("clients ended")
        .into_inner()
        .expect("history");
    for entries in history.values() {
        for e in entries {
            rec.ops += 1;
            match e.outcome {
                Outcome::Acked => rec.acked += 1,
                Outcome::Unknown => rec.unknown += 1,
            }
        }
    }

    rec.rounds = c.must_converge(12);
    check(&c, &edge, &history, s.keys, &mut rec);
    rec.heal_secs = healed.elapsed().as_secs_f64();
    rec.total_secs = started.elapsed().as_secs_f64();
    drop(edge);
    rec
}

/// The checker's verdict on one key's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The last acknowledged operation's result, or a later unknown one's.
    Allowed,
    /// Something else, and the last acknowledged operation was a write.
    Lost,
    /// Something else, and the last acknowledged operation was a delete (or there was none:
    /// the key never existed as far as the clients know).
    Resurrected,
}

/// Judges a key's final state against its history (one client, so in real-time order):
/// allowed are the result of the last acknowledged operation and of every later operation
/// whose outcome is unknown; before any acknowledged operation the key is absent.
fn judge(entries: &[Entry], state: &State) -> Verdict {
    let last = entries.iter().rposition(|e| e.outcome == Outcome::Acked);
    let base = last.and_then(|i| entries[i].op.state());
    let after = last.map_or(0, |i| i + 1);
    if base == *state || entries[after..].iter().any(|e| e.op.state() == *state) {
        return Verdict::Allowed;
    }
    match last.map(|i| &entries[i].op) {
        Some(Op::Put(_)) => Verdict::Lost,
        _ => Verdict::Resurrected,
    }
}

/// What node `i` serves for key `k`, or `Err` with its status.
fn read(c: &RingCluster, i: usize, token: &str, k: usize) -> Result<State, u16> {
    let r = c
        .http()
        .get(format!("{}/public/{}", c.account_url(i), key_name(k)))
        .header("x-auth-token", token)
        .send()
        .map_err(|_| 0u16)?;
    match r.status().as_u16() {
        200 => Ok(Some(r.bytes().map_err(|_| 0u16)?.to_vec())),
        404 => Ok(None),
        s => Err(s),
    }
}

fn show(s: &State) -> String {
    match s {
        None => "absent".into(),
        Some(b) => String::from_utf8_lossy(&b[..b.len().min(24)]).into_owned(),
    }
}

fn check(
    c: &RingCluster,
    edge: &EdgeProc,
    history: &BTreeMap<usize, Vec<Entry>>,
    keys: usize,
    rec: &mut Record,
) {
    let tokens: Vec<String> = (0..NODES).map(|i| c.must_login(i)).collect();
    // Orphan files (crashed writes) go once older than the grace: replicate until the file
    // sets settle before comparing them.
    let start = Instant::now();
    loop {
        c.must_converge(4);
        let Some(why) = c.copies_differ() else {
            break;
        };
        if start.elapsed() > Duration::from_secs(20) {
            rec.diverged += 1;
            rec.problems
                .push(format!("the primaries' files never settled: {why}"));
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let client = edge.client(&[HOST]);
    let mut finals: BTreeMap<usize, State> = BTreeMap::new();
    for k in 0..keys {
        let seen: Vec<Result<State, u16>> = (0..NODES).map(|i| read(c, i, &tokens[i], k)).collect();
        let first = seen[0].clone();
        if seen.iter().any(|s| *s != first) {
            rec.diverged += 1;
            let all: Vec<String> = seen
                .iter()
                .map(|s| s.as_ref().map_or_else(|e| format!("status {e}"), show))
                .collect();
            rec.problems
                .push(format!("{}: nodes disagree: {all:?}", key_name(k)));
        }
        let Ok(state) = first else {
            rec.diverged += 1;
            rec.problems.push(format!("{}: node 0 failed", key_name(k)));
            continue;
        };
        finals.insert(k, state.clone());
        let entries = history.get(&k).map(Vec::as_slice).unwrap_or_default();
        let verdict = judge(entries, &state);
        if verdict != Verdict::Allowed {
            match verdict {
                Verdict::Lost => rec.lost += 1,
                _ => rec.resurrected += 1,
            }
            let last = entries.iter().rposition(|e| e.outcome == Outcome::Acked);
            rec.problems.push(format!(
                "{}: holds {} after {} ops; the last acknowledged one ({:?}, via node {:?}) left {}",
                key_name(k),
                show(&state),
                entries.len(),
                last,
                last.map(|i| entries[i].node),
                show(&last.and_then(|i| entries[i].op.state()))
            ));
        }
    }
    // The edge serves the final state (its purges follow node 0's feed).
    for (k, want) in &finals {
        let url = format!("http://{HOST}:{}/{}", edge.addr.port(), key_name(*k));
        let serves = |r: reqwest::blocking::Response| match r.status().as_u16() {
            200 => r.bytes().ok().map(|b| Some(b.to_vec())),
            404 => Some(None),
            _ => None,
        };
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            must_become(
                &format!("the edge serves the final {}", key_name(*k)),
                Duration::from_secs(10),
                || {
                    client
                        .get(&url)
                        .send()
                        .ok()
                        .and_then(serves)
                        .is_some_and(|s| s == *want)
                },
            );
        }));
        if ok.is_err() {
            rec.diverged += 1;
            rec.problems.push(format!(
                "{}: the edge does not serve the final state",
                key_name(*k)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(b: &str, outcome: Outcome) -> Entry {
        Entry {
            op: Op::Put(b.as_bytes().to_vec()),
            outcome,
            node: 0,
        }
    }

    fn del(outcome: Outcome) -> Entry {
        Entry {
            op: Op::Delete,
            outcome,
            node: 0,
        }
    }

    fn some(b: &str) -> State {
        Some(b.as_bytes().to_vec())
    }

    #[test]
    fn the_checker_allows_the_last_acknowledged_or_a_later_unknown_state() {
        use Outcome::{Acked, Unknown};
        let h = [
            put("a", Acked),
            put("b", Unknown),
            put("c", Acked),
            put("d", Unknown),
        ];
        assert_eq!(judge(&h, &some("c")), Verdict::Allowed);
        assert_eq!(judge(&h, &some("d")), Verdict::Allowed);
        // An older acknowledged write, or an unknown one before the last acknowledged one.
        assert_eq!(judge(&h, &some("a")), Verdict::Lost);
        assert_eq!(judge(&h, &some("b")), Verdict::Lost);
        assert_eq!(judge(&h, &None), Verdict::Lost);
        let h = [put("a", Acked), del(Acked), put("b", Unknown)];
        assert_eq!(judge(&h, &None), Verdict::Allowed);
        assert_eq!(judge(&h, &some("b")), Verdict::Allowed);
        assert_eq!(judge(&h, &some("a")), Verdict::Resurrected);
        // Nothing acknowledged: absent, or any unknown write.
        let h = [put("a", Unknown)];
        assert_eq!(judge(&h, &None), Verdict::Allowed);
        assert_eq!(judge(&h, &some("a")), Verdict::Allowed);
        assert_eq!(judge(&[], &some("x")), Verdict::Resurrected);
    }

    #[test]
    fn the_generator_is_seeded() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(
            xs,
            (0..5).map(|_| Rng::new(8).next_u64()).collect::<Vec<_>>()
        );
    }
}
