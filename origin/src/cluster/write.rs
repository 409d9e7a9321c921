//! The write path of the proxy role: one version (or a delete, a metadata update) sent to
//! every copy the ring names. Data goes to the primaries (a handoff replaces one that cannot
//! be reached), listing rows to every other node. The caller gets an answer as soon as a
//! quorum of data holders acknowledged and this node applied its own copy; a background task
//! finishes the rest, so a slow replica costs the client nothing and still gets its copy.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderMap, Method, StatusCode};
use outpost_ring::Device;

use super::proxy::{quorum, set};
use super::{object_url, Cluster, Direct, DIRECT_HEADER};
use crate::hlc::Timestamp;
use crate::{Error, Result};

/// A body that can be sent to several replicas.
#[derive(Clone)]
pub(super) enum Payload {
    Empty,
    Memory(Bytes),
    /// A staged temp file, kept until the last replica has read it.
    File(Arc<crate::files::Staged>),
}

impl Payload {
    async fn body(&self) -> Result<Option<reqwest::Body>> {
        Ok(match self {
            Payload::Empty => None,
            Payload::Memory(b) => Some(reqwest::Body::from(b.clone())),
            Payload::File(p) => {
                let f = tokio::fs::File::open(p.path().ok_or(Error::Task)?).await?;
                Some(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::new(f),
                ))
            }
        })
    }
}

/// Reads a body of exactly `len` bytes into memory with its MD5; a pause longer than `idle`
/// is a 408, a short body a client disconnect.
pub(super) async fn collect<S, E>(
    mut stream: S,
    len: u64,
    idle: std::time::Duration,
) -> Result<(Bytes, String)>
where
    S: futures_util::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    use futures_util::StreamExt;
    use md5::{Digest, Md5};
    let mut buf = bytes::BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut h = Md5::new();
    loop {
        let next = tokio::time::timeout(idle, stream.next())
            .await
            .map_err(|_| Error::RequestTimeout {
                secs: idle.as_secs(),
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|_| Error::ClientDisconnect)?;
        if (buf.len() + chunk.len()) as u64 > len {
            return Err(Error::TooLarge { max: len });
        }
        h.update(&chunk);
        buf.extend_from_slice(&chunk);
    }
    if buf.len() as u64 != len {
        return Err(Error::ClientDisconnect);
    }
    Ok((buf.freeze(), hex::encode(h.finalize())))
}

/// One replica's answer to a write.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ack {
    /// Applied (or a 404 of a delete): the status it answered.
    Done(StatusCode),
    /// Not applied: the replica holds a newer version, of this timestamp (a 202 naming it).
    Superseded(Timestamp),
    /// Refused with a client error: passed back if no quorum forms.
    Refused(StatusCode),
    /// Unreachable or failed.
    Failed,
}

async fn send_write(
    cl: &Cluster,
    method: &Method,
    dev: &Device,
    path: &(String, String, String),
    headers: &HeaderMap,
    payload: &Payload,
) -> Ack {
    let url = object_url(&dev.url(), &path.0, &path.1, &path.2);
    let body = match payload.body().await {
        Ok(b) => b,
        Err(_) => return Ack::Failed,
    };
    match cl.send(method.clone(), url, headers.clone(), body).await {
        Ok(resp) => {
            let s = resp.status();
            let newer = (s == StatusCode::ACCEPTED)
                .then(|| resp.headers().get(super::BACKEND_TS_HEADER))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Timestamp>().ok());
            // Drain so the connection goes back to the pool.
            let _ = resp.bytes().await;
            if let Some(t) = newer {
                Ack::Superseded(t)
            } else if s.is_success() || s == StatusCode::NOT_FOUND {
                Ack::Done(s)
            } else if s.is_client_error() && s != StatusCode::REQUEST_TIMEOUT {
                Ack::Refused(s)
            } else {
                Ack::Failed
            }
        }
        Err(_) => Ack::Failed,
    }
}

impl Ack {
    /// The replica holds this write or a newer one (a success towards the quorum).
    pub(super) fn is_success(&self) -> bool {
        match self {
            Ack::Done(s) => s.is_success(),
            Ack::Superseded(_) => true,
            _ => false,
        }
    }

    /// The replica answered (applied, superseded, or a delete's 404).
    fn answered(&self) -> bool {
        matches!(self, Ack::Done(_) | Ack::Superseded(_))
    }
}

/// Which copy an answer was for.
#[derive(Debug, Clone, Copy)]
struct Answer {
    /// A data holder's (else a listing row's).
    data: bool,
    /// This node's own copy.
    mine: bool,
    ack: Ack,
}

/// Sends a write to every primary (replacing failed ones with handoffs from a shared queue)
/// and its listing row to every other node, and returns the data holders' acks as soon as a
/// quorum of them succeeded and this node applied its own copy (so its change feed already
/// holds the write: `X-Purge-Wait` waits for it, and listings here show it); without a quorum,
/// once every data holder answered. The rest finishes in the background: a slow or failed
/// replica still gets its copy, or a handoff does.
///
/// # Cancel safety
/// The write runs in its own task: dropping the future does not abandon it.
pub(super) async fn replicate_write(
    cl: &Arc<Cluster>,
    method: Method,
    path: (String, String, String),
    data_headers: HeaderMap,
    row_headers: HeaderMap,
    payload: Payload,
) -> Vec<Ack> {
    let ring = cl.ring();
    let me = cl.me(&ring);
    let need = quorum(ring.replicas as usize);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Answer>();
    let report = super::purge_wait::note_write();
    let cl = Arc::clone(cl);
    tokio::spawn(async move {
        let cl = &cl;
        // Which nodes' feeds hold the write (for `X-Purge-Wait`): a node that took neither
        // its data (a failed primary or handoff) nor its listing row missed it.
        let reached = std::sync::Mutex::new((BTreeSet::new(), BTreeSet::new()));
        let note = |id: u32, ok: bool| {
            let mut r = reached
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if ok {
                r.0.insert(id)
            } else {
                r.1.insert(id)
            };
        };
        let part = ring.partition(&path.0, &path.1, &path.2);
        let primaries: Vec<Device> = ring.primaries(part).into_iter().cloned().collect();
        let handoffs: VecDeque<Device> = ring.handoffs(part).cloned().collect();
        let others: Vec<Device> = handoffs.iter().cloned().collect();
        let queue = tokio::sync::Mutex::new(handoffs);
        let data = primaries.iter().map(|p| {
            let (method, path, headers, payload, queue, tx, note) =
                (&method, &path, &data_headers, &payload, &queue, &tx, &note);
            async move {
                let mut dev = p.clone();
                let ack = loop {
                    let ack = send_write(cl, method, &dev, path, headers, payload).await;
                    note(dev.id, ack.answered());
                    if !matches!(ack, Ack::Failed) {
                        if dev.id != p.id {
                            cl.count(&cl.stats.handoff_writes, 1);
                        }
                        break ack;
                    }
                    match queue.lock().await.pop_front() {
                        Some(next) => dev = next,
                        None => break Ack::Failed,
                    }
                };
                let mine = Some(p.id) == me;
                let _ = tx.send(Answer {
                    data: true,
                    mine,
                    ack,
                });
            }
        });
        let rows = others.iter().map(|d| {
            let (method, path, headers, tx, note) = (&method, &path, &row_headers, &tx, &note);
            async move {
                let ack = send_write(cl, method, d, path, headers, &Payload::Empty).await;
                note(d.id, ack.answered());
                let mine = Some(d.id) == me;
                let _ = tx.send(Answer {
                    data: false,
                    mine,
                    ack,
                });
            }
        });
        futures_util::join!(join_all(data), join_all(rows));
        if let Some(report) = report {
            let (ok, failed) = reached
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = report.send(failed.difference(&ok).copied().collect());
        }
    });
    let mut acks = Vec::new();
    let (mut ok, mut mine_done) = (0, me.is_none());
    while let Some(a) = rx.recv().await {
        mine_done |= a.mine;
        if a.data {
            ok += usize::from(a.ack.is_success());
            acks.push(a.ack);
        }
        if ok >= need && mine_done {
            break;
        }
    }
    acks
}

/// What a quorum of replicas answered to a small write.
pub(super) enum Small {
    /// At least one replica applied it.
    Applied,
    /// No replica had the object.
    NotFound,
    /// A replica refused it (no quorum formed).
    Refused(StatusCode),
}

/// Sends a body-less write (`common` carries its `X-Timestamp`) to every node: data holders
/// first, listing rows elsewhere. Also returns the newest version a replica said it holds
/// instead (a 202 naming it).
///
/// # Errors
/// [`Error::Unavailable`] without a quorum.
pub(super) async fn small_write(
    cl: &Arc<Cluster>,
    method: Method,
    path: (String, String, String),
    mut common: HeaderMap,
) -> Result<(Small, Option<Timestamp>)> {
    set(&mut common, "content-length", 0);
    let mut data_headers = common.clone();
    set(&mut data_headers, DIRECT_HEADER, Direct::Data.as_str());
    let mut row_headers = common;
    set(&mut row_headers, DIRECT_HEADER, Direct::Row.as_str());
    let acks = replicate_write(cl, method, path, data_headers, row_headers, Payload::Empty).await;
    let replicas = cl.ring().replicas as usize;
    let newer = acks
        .iter()
        .filter_map(|a| match a {
            Ack::Superseded(t) => Some(*t),
            _ => None,
        })
        .max();
    let done: Vec<StatusCode> = acks
        .iter()
        .filter_map(|a| match a {
            Ack::Done(s) => Some(*s),
            Ack::Superseded(_) => Some(StatusCode::ACCEPTED),
            _ => None,
        })
        .collect();
    if done.len() >= quorum(replicas) {
        if done.iter().any(StatusCode::is_success) {
            return Ok((Small::Applied, newer));
        }
        return Ok((Small::NotFound, newer));
    }
    if let Some(Ack::Refused(s)) = acks.iter().find(|a| matches!(a, Ack::Refused(_))) {
        return Ok((Small::Refused(*s), newer));
    }
    Err(Error::Unavailable {
        reason: "too few replicas acknowledged the write",
    })
}
