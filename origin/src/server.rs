//! Starting and stopping an origin node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::task::JoinHandle;

use crate::api::{self, AppState, AuthTokens, Shared};
use crate::config::Config;
use crate::db::Db;
use crate::files::Files;
use crate::hlc::{Clock, Timestamp};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::{Error, Result};

/// A running origin node. Dropping it stops the node.
#[derive(Debug)]
pub struct RunningOrigin {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Shared state (tests inspect it).
    pub state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
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
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
        }
        for b in self.background.drain(..) {
            b.abort();
        }
    }
}

impl Drop for RunningOrigin {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
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
    let cluster = match cfg.cluster.clone() {
        Some(c) => Some(Arc::new(crate::cluster::Cluster::open(
            c,
            &cfg.internal_secret,
        )?)),
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
    let app = api::router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
    // Without TCP_NODELAY a response whose body follows its headers in a second small write
    // waits for the client's delayed ACK: ~40 ms per GET on Linux.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "origin server failed");
        }
    });
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
    Ok(RunningOrigin {
        addr,
        state,
        shutdown: Some(tx),
        server: Some(server),
        background,
    })
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

/// Runs a node until SIGTERM or Ctrl-C, printing its address first.
///
/// # Errors
/// As [`start`].
pub async fn run(cfg: Config) -> Result<()> {
    let node = start(cfg).await?;
    println!("outpost origin listening on {}", node.url());
    wait_for_signal().await;
    tracing::info!("shutting down");
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
