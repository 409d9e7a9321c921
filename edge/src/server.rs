//! Starting an edge node: load the catalog, open the cache, follow the feed, serve.

use std::sync::Arc;
use std::time::Duration;

use pingora::cache::lock::CacheKeyLockImpl;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::access::EdgeRevocations;
use crate::acme::CertSync;
use crate::cache::{CacheConfig, FillAwareLock, TieredStorage};
use crate::catalog::{Catalog, CatalogHandle};
use crate::config::Config;
use crate::feed::{self, OriginClient};
use crate::head::LimitedApp;
use crate::metrics::EdgeMetrics;
use crate::proxy::Edge;
use crate::purgelog::PurgeLog;
use crate::reload::{ReloadSource, Reloader};
use crate::tls::CertStore;
use crate::Error;

/// Runs an edge until SIGTERM (graceful) or SIGINT. Prints its address once the catalog is
/// loaded and the listener is configured. With `reload`, `SIGHUP` re-reads its config file
/// ([`crate::reload`]); the handler is in place before the address is printed.
///
/// # Errors
/// [`Error::Origin`] when the origin never answers the initial snapshot, [`Error::Cache`] when
/// the disk tier cannot be opened.
pub fn run(cfg: Config, reload: Option<ReloadSource>) -> Result<(), Error> {
    let cfg = Arc::new(cfg);
    let client = OriginClient::new(cfg.origin, &cfg.internal_secret)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("outpost-feed")
        .build()?;
    let snapshot = if cfg.generic.is_some() {
        // A plain HTTP origin has no snapshot and no change feed.
        crate::catalog::Snapshot {
            format: outpost_proto::Format,
            seq: 0,
            accounts: Vec::new(),
        }
    } else {
        rt.block_on(feed::initial_snapshot(&client, Duration::from_secs(30)))?
    };
    let catalog = Arc::new(CatalogHandle::new(Catalog::from_snapshot(&snapshot)));
    let storage: &'static TieredStorage = Box::leak(Box::new(TieredStorage::open(CacheConfig {
        memory_bytes: cfg.memory_bytes,
        memory_object_max: cfg.memory_object_max,
        disk_dir: cfg.disk_dir.clone(),
        disk_bytes: cfg.disk_bytes,
    })?));
    // pingora's cache lock, re-checking our storage before it elects a writer: with streaming
    // fills the lock is released at header time, and a plain CacheLock let a request whose
    // lookup had just missed the new fill start a second origin fetch (see cache/fill_lock.rs).
    let lock: &'static CacheKeyLockImpl = Box::leak(Box::new(FillAwareLock::new(
        storage,
        Duration::from_secs(30),
    )));
    let metrics = Arc::new(EdgeMetrics::new());
    let logs = crate::logs::Logs::start(&cfg, metrics.registry())?;

    // The HTTPS listener's certificates: configured ones, and (origin mode) the automatic
    // certificates of custom domains stored at the origin, loaded now and kept current by the
    // feed.
    let mut certs = None;
    let mut cert_sync = None;
    if let Some(tls) = &cfg.tls {
        let store = Arc::new(CertStore::new(crate::tls::SniResolver::load(&tls.certs)?));
        if cfg.generic.is_none() {
            let renew_at = cfg.acme.as_ref().map_or(2.0 / 3.0, |a| a.renew_at);
            let sync = Arc::new(CertSync::new(Arc::clone(&store), client.clone(), renew_at));
            match rt.block_on(sync.load_all()) {
                Ok(n) => tracing::info!(certificates = n, "automatic certificates loaded"),
                Err(e) => tracing::warn!(error = %e, "automatic certificates not loaded"),
            }
            if let Some(acme) = &cfg.acme {
                rt.spawn(crate::acme::order::run(
                    Arc::clone(&sync),
                    acme.clone(),
                    Arc::clone(&catalog),
                    cfg.edge_id.clone(),
                ));
            }
            cert_sync = Some(sync);
        }
        certs = Some(store);
    }

    let position_file = cfg.disk_dir.join("feed-position");
    let purge_log = Arc::new(PurgeLog::default());
    let revocations = EdgeRevocations::default();
    feed::load_revocations(&revocations, &snapshot);
    {
        let targets = feed::FeedTargets {
            catalog: Arc::clone(&catalog),
            storage,
            purge_log: Arc::clone(&purge_log),
            revocations: revocations.clone(),
            metrics: Arc::clone(&metrics),
            edge_id: cfg.edge_id.clone(),
            position_file: Some(position_file.clone()),
            certs: cert_sync.clone(),
        };
        // Resume from where the previous run stopped, so changes made while this edge was
        // down purge what its disk tier still holds. Without a recorded position the disk tier
        // cannot be trusted and is emptied.
        let since = match feed::load_position(&position_file) {
            Some(p) if p <= snapshot.seq => p,
            _ => {
                let n = storage.purge_all();
                if n > 0 {
                    tracing::warn!(
                        purged = n,
                        "no feed position recorded: emptied the disk tier"
                    );
                }
                feed::save_position(&position_file, snapshot.seq);
                snapshot.seq
            }
        };
        metrics.feed_at(since);
        if cfg.generic.is_none() {
            std::thread::Builder::new()
                .name("outpost-feed".into())
                .spawn(move || rt.block_on(feed::follow(client, targets, since)))?;
        }
    }

    let conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        // One runtime per thread, as nginx has one event loop per worker: measured +5% on
        // cached 1 KiB hits (no cross-thread wake-ups), no change at 64 KiB (RESULTS.md).
        work_stealing: false,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut edge = Edge::new(
        Arc::clone(&cfg),
        catalog,
        storage,
        lock,
        Arc::clone(&metrics),
        revocations,
        purge_log,
    );
    edge.logs = Some(logs);
    edge.certs = cert_sync;
    let signer = Arc::clone(&edge.signer);
    if let Some(path) = &cfg.ring {
        let ring = crate::ring::RingView::open(path)?;
        ring.watch()?;
        edge.ring = Some(ring);
    }
    // Our HTTP/1 connection loop around pingora's, for the `[limits]` pingora has no knob
    // for (see head.rs).
    let front = edge.front();
    let proxy = pingora::proxy::http_proxy(&server.configuration, edge);
    let mut svc = Service::new(
        "Outpost edge".to_owned(),
        LimitedApp::new(proxy, cfg.limits).with_front(front),
    );
    svc.add_tcp(&cfg.listen.to_string());
    if let (Some(tls), Some(store)) = (&cfg.tls, &certs) {
        let store = Arc::clone(store);
        // The paths are ignored once a resolver is set.
        let mut settings = TlsSettings::intermediate("", "").map_err(|e| Error::Config {
            key: "tls".into(),
            reason: e.to_string(),
        })?;
        settings.set_cert_resolver(store);
        if tls.h2 {
            settings.enable_h2();
        }
        svc.add_tls_with_settings(&tls.listen.to_string(), None, settings);
    }
    server.add_service(svc);
    match reload {
        Some(src) => crate::reload::spawn_on_sighup(Reloader::new(src, certs, signer, metrics)?)?,
        None => metrics.config_loaded(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
    }
    println!("outpost edge listening on http://{}", cfg.listen);
    if let Some(tls) = &cfg.tls {
        println!("outpost edge listening on https://{}", tls.listen);
    }
    server.run_forever()
}
