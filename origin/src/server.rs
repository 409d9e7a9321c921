//! Starting and stopping an origin node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::api::{self, AppState, AuthTokens, Shared};
use crate::config::Config;
use crate::db::Db;
use crate::files::Files;
use crate::hlc::{Clock, Timestamp};
use crate::limits::{Limits, RefusalLog};
use crate::metrics::Metrics;
use crate::reload::{ReloadSource, Reloader};
use crate::store::Store;
use crate::{Error, Result};

/// A running origin node. Dropping it stops the node.
#[derive(Debug)]
pub struct RunningOrigin {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The address of the S3 API (`[s3] listen`), when enabled.
    pub s3_addr: Option<SocketAddr>,
    /// Shared state (tests inspect it).
    pub state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    s3_shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    s3_server: Option<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningOrigin {
    /// Base URL, `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, stops background tasks.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        for tx in [self.shutdown.take(), self.s3_shutdown.take()]
            .into_iter()
            .flatten()
        {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
        }
        if let Some(s) = self.s3_server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
        }
        for b in self.background.drain(..) {
            b.abort();
        }
    }
}

impl Drop for RunningOrigin {
    fn drop(&mut self) {
        for tx in [self.shutdown.take(), self.s3_shutdown.take()]
            .into_iter()
            .flatten()
        {
            let _ = tx.send(());
        }
        for b in self.background.drain(..) {
            b.abort();
        }
    }
}

/// Opens the data directory and starts serving.
///
/// # Errors
/// [`Error::Io`] / [`Error::Db`] when the data directory cannot be opened, [`Error::Config`]
/// when the address cannot be bound.
pub async fn start(cfg: Config) -> Result<RunningOrigin> {
    crate::failpoints::setup()?;
    std::fs::create_dir_all(&cfg.data_dir)?;
    let db = Db::open(&cfg.data_dir)?;
    let files = Files::open(&cfg.data_dir)?;
    let clock = Clock::with_skew(crate::xdc::clock_skew_from_env()?);
    // Never issue a timestamp older than what is stored, whatever the wall clock says.
    clock.observe(Timestamp(db.max_ts()?));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Error::Config {
            key: "listen".into(),
            reason: format!("cannot bind {}: {e}", cfg.listen),
        })?;
    let addr = listener.local_addr()?;
    let s3_listener = match &cfg.s3 {
        Some(s3) => Some(
            tokio::net::TcpListener::bind(s3.listen)
                .await
                .map_err(|e| Error::Config {
                    key: "s3.listen".into(),
                    reason: format!("cannot bind {}: {e}", s3.listen),
                })?,
        ),
        None => None,
    };
    let s3_addr = s3_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let cluster = match cfg.cluster.clone() {
        Some(c) => {
            let secret = cfg.credentials.peer_secret().ok_or(Error::Config {
                key: "credentials.peer".into(),
                reason: "is required with [cluster]".into(),
            })?;
            Some(Arc::new(crate::cluster::Cluster::open(c, secret)?))
        }
        None => None,
    };
    let xdc = cfg.sync.clone().map(|c| Arc::new(crate::xdc::Xdc::new(c)));
    let part_power = cluster
        .as_ref()
        .map_or(crate::files::DEFAULT_PART_POWER, |c| c.ring().part_power);
    let store = Arc::new(Store::new(
        cfg,
        db,
        files,
        clock,
        Metrics::new(),
        part_power,
    ));
    let state: Shared = Arc::new(AppState {
        store: Arc::clone(&store),
        xdc,
        cluster,
        tokens: AuthTokens::default(),
        subscribers: api::Subscribers::default(),
    });
    let app = api::router(Arc::clone(&state));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        app,
        state.store.cfg.limits,
        Wire::Swift,
        rx,
    ));
    // The S3 API: its own address, the same accept loop and `[limits]`.
    let (s3_shutdown, s3_server) = match (s3_listener, &store.cfg.s3) {
        (Some(l), Some(s3)) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let backend = match &state.cluster {
                Some(cl) => crate::s3::Backend::Cluster(Arc::clone(&store), Arc::clone(cl)),
                None => crate::s3::Backend::Local(Arc::clone(&store)),
            };
            let app = crate::s3::router(backend, s3);
            let task = tokio::spawn(serve(l, app, store.cfg.limits, Wire::S3, rx));
            (Some(tx), Some(task))
        }
        _ => (None, None),
    };
    let mut background = vec![
        tokio::spawn(crate::store::expirer(
            Arc::clone(&store),
            store.cfg.expirer_interval,
        )),
        tokio::spawn(trim_feed(Arc::clone(&store))),
    ];
    if let Some(cl) = &state.cluster {
        background.push(tokio::spawn(crate::cluster::watch_ring(
            Arc::clone(&store),
            Arc::clone(cl),
        )));
        background.push(tokio::spawn(crate::cluster::replicator::run(
            Arc::clone(&store),
            Arc::clone(cl),
        )));
        background.push(tokio::spawn(crate::cluster::auditor::run(
            Arc::clone(&store),
            Arc::clone(cl),
        )));
    }
    if let Some(x) = &state.xdc {
        background.extend(crate::xdc::spawn(&store, x, state.cluster.as_ref()));
    }
    tracing::info!(%addr, "origin listening");
    if let Some(a) = s3_addr {
        tracing::info!(addr = %a, "S3 API listening");
    }
    Ok(RunningOrigin {
        addr,
        s3_addr,
        state,
        shutdown: Some(tx),
        s3_shutdown,
        server: Some(server),
        s3_server,
        background,
    })
}

/// How an API spells header names on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Title-cased, as Swift (webob) writes them (`Etag`, `X-Object-Meta-Color`); some Swift
    /// clients compare them case-sensitively.
    Swift,
    /// Lower case, as S3 does: SDKs take user metadata names from `x-amz-meta-*` as sent.
    S3,
}

/// The accept loop: hyper's HTTP/1 server per connection under `[limits]` (axum::serve has no
/// head limits, no header timeout and no connection cap), until `stop` fires; then every
/// connection finishes its request in flight and closes, and the loop returns when all have.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    wire: Wire,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let max = limits.max_connections;
    // Validation bounds max_connections to 1,000,000, well within a semaphore's permits.
    let permits = u32::try_from(max).unwrap_or(u32::MAX);
    let gate = Arc::new(Semaphore::new(max));
    let refusals = Arc::new(RefusalLog::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .title_case_headers(wire == Wire::Swift)
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_total);
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on accept.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Ok(permit) = Arc::clone(&gate).try_acquire_owned() else {
            refusals.refused(max);
            tokio::spawn(refuse(tcp, Error::TooManyConnections { max }));
            continue;
        };
        // Without TCP_NODELAY a response whose body follows its headers in a second small
        // write waits for the client's delayed ACK: ~40 ms per GET on Linux.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let app = app.clone();
            async move {
                if let Err(e) = limits.check_head(&req) {
                    let mut resp = e.into_response();
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    return Ok(resp);
                }
                req.extensions_mut().insert(ConnectInfo(peer));
                app.oneshot(req).await
            }
        });
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc);
        let mut closing = closing.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = async { drop(closing.wait_for(|c| *c).await) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
    let _ = closing_tx.send(true);
    // Every connection holds a permit until it is closed.
    let _ = gate.acquire_many(permits).await;
}

/// Answers a connection over `limits.max_connections` with a short 503, then closes it after
/// reading what the client sent for a moment (an immediate close over unread bytes would
/// reset the connection and lose the answer).
async fn refuse(mut tcp: tokio::net::TcpStream, e: Error) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let status = e.status();
    let body = format!("{e}\n");
    let answer = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\nRetry-After: 1\r\nX-Outpost-Error: {}\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        e.code(),
    );
    let write = async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(2), write).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

async fn trim_feed(st: Arc<Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let retain = st.cfg.feed_retain;
        if let Err(e) = st.blocking(move |s| s.db.trim_changes(retain)).await {
            tracing::warn!(error = %e, "trimming the change feed failed");
        }
    }
}

/// Runs a node until SIGTERM or Ctrl-C, printing its address first. With `reload`, `SIGHUP`
/// re-reads its config file ([`crate::reload`]); the handler is in place before the address
/// is printed.
///
/// # Errors
/// As [`start`]; [`Error::Io`] when the `SIGHUP` handler cannot be installed.
pub async fn run(cfg: Config, reload: Option<ReloadSource>) -> Result<()> {
    if cfg.legacy_secret {
        tracing::warn!(
            "internal_secret gives every edge, peer and operator tool every right (writes with any \
             timestamp included); give each role its own secret in [credentials] (deploy/README.md)"
        );
    }
    let node = start(cfg).await?;
    let reloader = match reload {
        Some(src) => Some(Reloader::new(src, node.state.store.metrics.clone())?),
        None => None,
    };
    #[cfg(unix)]
    let reloads = match reloader {
        Some(r) => {
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            let r = Arc::new(r);
            Some(tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let r = Arc::clone(&r);
                    // Reading and validating the file is blocking work.
                    let _ = tokio::task::spawn_blocking(move || r.reload_and_log()).await;
                }
            }))
        }
        None => None,
    };
    #[cfg(not(unix))]
    drop(reloader);
    // The S3 line comes first: harnesses read up to the Swift line, which stays last.
    if let Some(a) = node.s3_addr {
        println!("outpost origin S3 API listening on http://{a}");
    }
    println!("outpost origin listening on {}", node.url());
    wait_for_signal().await;
    tracing::info!("shutting down");
    #[cfg(unix)]
    if let Some(t) = reloads {
        t.abort();
    }
    node.stop().await;
    Ok(())
}

/// Waits for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
