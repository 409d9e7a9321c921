//! TCP forwarders the fault tests own: with them every connection from one node to another
//! passes through the destination's forwarder, which knows the source node by the local
//! address it connects from (`cluster.source_address`, `127.0.0.<10 + i>`), so a test can cut
//! and heal the link between any two nodes, both ways, while clients and edges (connecting
//! from `127.0.0.1`) still reach every node.
//!
//! A cut link drops its open connections at once and closes new ones as they arrive (what a
//! node sees of a peer whose host is unreachable with a firewall that rejects).

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The source address node `i` connects to its peers from.
pub fn source_address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        10 + u8::try_from(i).expect("few nodes"),
    ))
}

fn node_of(ip: IpAddr) -> Option<usize> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] && v4.octets()[3] >= 10 => {
            Some(usize::from(v4.octets()[3] - 10))
        }
        _ => None,
    }
}

/// Which links are cut, and the open connections of every link.
#[derive(Default)]
pub struct Links {
    cut: Mutex<BTreeSet<(usize, usize)>>,
    /// Connection id → (source, destination, the client-side socket).
    open: Mutex<HashMap<u64, (usize, usize, TcpStream)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Links {
    /// Cuts the link between nodes `a` and `b` (both directions) and drops its connections.
    pub fn cut(&self, a: usize, b: usize) {
        {
            let mut cut = self.cut.lock().expect("links lock");
            cut.insert((a, b));
            cut.insert((b, a));
        }
        let mut open = self.open.lock().expect("links lock");
        open.retain(|_, (s, d, conn)| {
            let hit = (*s == a && *d == b) || (*s == b && *d == a);
            if hit {
                let _ = conn.shutdown(Shutdown::Both);
            }
            !hit
        });
    }

    /// Heals the link between `a` and `b`.
    pub fn heal(&self, a: usize, b: usize) {
        let mut cut = self.cut.lock().expect("links lock");
        cut.remove(&(a, b));
        cut.remove(&(b, a));
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        self.cut.lock().expect("links lock").clear();
    }

    /// The cut links, each once (`a < b`).
    pub fn cut_links(&self) -> Vec<(usize, usize)> {
        let cut = self.cut.lock().expect("links lock");
        cut.iter().copied().filter(|(a, b)| a < b).collect()
    }

    fn is_cut(&self, src: usize, dst: usize) -> bool {
        self.cut.lock().expect("links lock").contains(&(src, dst))
    }

    fn register(&self, src: usize, dst: usize, conn: &TcpStream) -> Option<u64> {
        let c = conn.try_clone().ok()?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .expect("links lock")
            .insert(id, (src, dst, c));
        Some(id)
    }

    fn forget(&self, id: u64) {
        self.open.lock().expect("links lock").remove(&id);
    }
}

/// One node's forwarder: listens on `port` (the node's address in the ring) and forwards to
/// the node's real port.
pub struct Forwarder {
    /// The port the ring names.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Forwarder {
    /// Starts forwarding `listener`'s connections to `127.0.0.1:target` for node `dst`.
    pub fn start(listener: TcpListener, target: u16, dst: usize, links: Arc<Links>) -> Forwarder {
        let port = listener.local_addr().expect("forwarder address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let src = conn.peer_addr().ok().and_then(|a| node_of(a.ip()));
                if src.is_some_and(|s| links.is_cut(s, dst)) {
                    let _ = conn.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = conn.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = conn.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let id = src.and_then(|s| links.register(s, dst, &conn));
                pipe(conn, up, id.map(|id| (Arc::clone(&links), id)));
            }
        });
        Forwarder { port, stop }
    }
}

/// Copies both ways between two sockets on two threads; either side ending ends both (and
/// forgets the registered connection).
fn pipe(a: TcpStream, b: TcpStream, registered: Option<(Arc<Links>, u64)>) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    std::thread::spawn(move || copy(a, b));
    std::thread::spawn(move || {
        copy(b2, a2);
        if let Some((links, id)) = registered {
            links.forget(id);
        }
    });
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
