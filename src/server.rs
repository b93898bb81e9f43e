//! `sealcast serve`: builds the registry, the KMS and the HTTP state from the
//! configuration, runs RTMP ingest and HTTP side by side, and shuts down
//! gracefully: stop accepting, let every publish flush its last segment and
//! end its playlist, then return.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::auth::Secret;
use crate::config::{Config, ConfigError, ResolvedStream, StorageBackend};
use crate::http::admin_gate::FailedAuthGate;
use crate::http::serve::ServeLimits;
use crate::http::web::{self, WebState};
use crate::http::{self, CorsPolicy, HttpState};
use crate::ingest::{self, IngestLimits};
use crate::keyservice::{Clock, KeyService, KeySettings, replay_store_from_config};
use crate::kms::{self, Kms, KmsError};
use crate::live::{LiveSettings, Registry, StreamSpec};
use crate::metrics::{Exporter, MeteredKms, Metrics};
use crate::names::{NameError, StreamName};
use crate::readiness::{self, Readiness};
use crate::reload::Reloader;
use crate::storage::Storage;
use crate::storage::s3::S3Store;
use crate::webhooks::{Delivery, Notifier};

/// How long shutdown waits for queued webhook events to be delivered.
const WEBHOOK_DRAIN: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or a secret it names is unusable.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The key provider could not be opened.
    #[error("{0}")]
    Kms(#[from] KmsError),
    /// A configured stream name is invalid.
    #[error("{0}")]
    Name(#[from] NameError),
    /// A TLS certificate or key file is unusable (the message names its setting).
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The storage backend cannot be used (the message names its setting).
    #[error("{0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// The configured storage: the data directory, or the `[storage.s3]` bucket
/// (its client set up; [`Server::check_storage`] makes the first request).
pub(crate) fn storage_from_config(config: &Config, metrics: Option<Arc<Metrics>>) -> Result<Storage, StartError> {
    match (config.storage.backend, &config.storage.s3) {
        (StorageBackend::S3, Some(s3)) => Ok(Storage::S3(Arc::new(S3Store::open(s3, metrics)?))),
        _ => Ok(Storage::Local(config.storage.data_dir.clone())),
    }
}

/// A configured server, ready to run on listeners the caller bound.
pub struct Server {
    registry: Arc<Registry>,
    http_state: Arc<HttpState>,
    web_state: Arc<WebState>,
    limits: IngestLimits,
    http_limits: ServeLimits,
    streams: Vec<ResolvedStream>,
    reloader: Reloader,
    readiness: Arc<Readiness>,
    access_log: bool,
    /// `None` when `metrics.enabled` is false.
    metrics: Option<Arc<Metrics>>,
    /// The webhook queue and where it is delivered; `None` without `[webhooks] url`.
    webhooks: Option<(Notifier, Delivery)>,
    /// HTTPS on `[http] listen`, when `[http]` names a certificate.
    http_tls: Option<crate::tls::TlsAcceptor>,
    /// RTMPS on `[rtmp] tls_listen`, when set.
    rtmps: Option<crate::tls::TlsAcceptor>,
    /// `metrics.tls`: `/metrics` over HTTPS with `[http]`'s certificate.
    metrics_tls: bool,
}

impl Server {
    /// Resolves secrets (creating generated ones on first start), opens the KMS
    /// and builds the stream registry.
    pub fn from_config(config: &Config) -> Result<Self, StartError> {
        // Secrets first: a configuration that names a missing one creates no
        // keyring before it is refused. (Configured streams are only read;
        // the default stream's generated key is left to the build below.)
        config.resolve_token_secret()?;
        if !config.streams.is_empty() {
            config.resolve_streams()?;
        }
        // Certificates before the KMS: a bad one is refused before a keyring is created.
        let tls = tls_from_config(config)?;
        Self::build(config, kms::open(&config.kms)?, crate::clock::system(), Some(tls))
    }

    /// As [`Server::from_config`], with the key provider given: the one
    /// [`kms::open`] opened behind a wrapper (such as [`crate::kms::Delayed`]),
    /// or another implementation of [`Kms`].
    pub fn with_kms(config: &Config, kms: Arc<dyn Kms>) -> Result<Self, StartError> {
        Self::with_kms_and_clock(config, kms, crate::clock::system())
    }

    /// [`Server::from_config`] with the key service's clock (token and
    /// ticket expiry) injected, for tests.
    pub fn from_config_with_clock(config: &Config, clock: Clock) -> Result<Self, StartError> {
        Self::with_kms_and_clock(config, kms::open(&config.kms)?, clock)
    }

    pub fn with_kms_and_clock(config: &Config, kms: Arc<dyn Kms>, clock: Clock) -> Result<Self, StartError> {
        Self::build(config, kms, clock, None)
    }

    /// The server, with the TLS parts already loaded (`Some`) or loaded here.
    fn build(config: &Config, kms: Arc<dyn Kms>, clock: Clock, tls: Option<Tls>) -> Result<Self, StartError> {
        let token_secret = config.resolve_token_secret()?;
        let streams = config.resolve_streams()?;
        let metrics = config.metrics.enabled.then(|| Arc::new(Metrics::new()));
        let storage = storage_from_config(config, metrics.clone())?;
        let settings = live_settings(config, storage);
        let specs = stream_specs(config, &streams)?;
        let kms: Arc<dyn Kms> = match &metrics {
            Some(metrics) => Arc::new(MeteredKms::new(kms, Arc::clone(metrics))),
            None => kms,
        };
        let replay = replay_store_from_config(&config.auth)?;
        let keys = Arc::new(KeyService::new(
            KeySettings::from_config(&config.auth, token_secret),
            Arc::clone(&kms),
            Arc::clone(&replay),
            clock,
        ));
        keys.set_protected_streams(crate::keyservice::license::protected_streams(config));
        let mut readiness = Readiness::new(Arc::clone(&kms), replay, Some(config.storage.data_dir.clone()));
        if let Storage::S3(store) = &settings.storage {
            readiness = readiness.with_object_storage(Arc::clone(store));
        }
        let readiness = Arc::new(readiness);
        let admin_token = config.auth.resolve_admin_token()?;
        let webhooks = Delivery::from_config(&config.webhooks, config.webhooks.resolve_secret()?)
            .map_err(ConfigError::one)?
            .map(|delivery| (Notifier::new(config.webhooks.queue_capacity), delivery));
        let registry = Arc::new(registry_from_config(
            config,
            Registry::new(settings, Arc::clone(&kms), specs),
            metrics.as_ref(),
            webhooks.as_ref().map(|(notifier, _)| notifier),
        )?);
        let (http_tls, rtmps, certificates) = match tls {
            Some(tls) => tls,
            None => tls_from_config(config)?,
        };
        let reloader = Reloader::for_server(config, Arc::clone(&registry), kms).with_certificates(certificates);
        let limits = ingest_limits(&config.rtmp);
        // Without an admin token the operator page is served on loopback only.
        let failed_admin_auth = Arc::new(FailedAuthGate::default());
        let web_state = Arc::new(
            WebState::new(
                Arc::clone(&registry),
                keys.token_secret().clone(),
                admin_token.clone(),
                &config.http,
            )
            .with_audience(keys.audience().map(str::to_owned))
            .with_key_service(Arc::clone(&keys))
            .with_failed_auth_gate(Arc::clone(&failed_admin_auth)),
        );
        let http_state = Arc::new(HttpState {
            registry: Arc::clone(&registry),
            keys,
            cors: CorsPolicy::from_origins(&config.http.cors_allowed_origins),
            admin_token,
            failed_admin_auth,
            public_base: config.http.public_base().to_owned(),
        });
        Ok(Self {
            registry,
            http_state,
            web_state,
            limits,
            http_limits: ServeLimits::from_config(&config.http.limits, crate::fd_limit::current()),
            streams,
            reloader,
            readiness,
            access_log: config.http.access_log,
            metrics,
            webhooks,
            http_tls,
            rtmps,
            metrics_tls: config.metrics.tls,
        })
    }

    /// What `/metrics` serves, or `None` when metrics are off.
    pub fn metrics_exporter(&self) -> Option<Arc<Exporter>> {
        self.metrics.as_ref().map(|metrics| {
            Arc::new(
                Exporter::new(
                    Arc::clone(metrics),
                    Arc::clone(&self.http_state.keys),
                    Some(Arc::clone(&self.registry)),
                )
                .with_webhooks(self.webhooks.as_ref().map(|(notifier, _)| notifier.clone())),
            )
        })
    }

    /// What SIGHUP reloads in this server (see [`crate::reload`]).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The streams with their publish keys, for the start banner.
    pub fn streams(&self) -> &[ResolvedStream] {
        &self.streams
    }

    /// The secret playback tokens are signed with.
    pub fn token_secret(&self) -> &Secret {
        self.http_state.keys.token_secret()
    }

    /// The key service behind `/keys/...`: token checks, tickets, the key
    /// cache and its counters.
    pub fn key_service(&self) -> &Arc<KeyService> {
        &self.http_state.keys
    }

    /// Counts and slows down wrong admin credentials (operator page and admin API).
    pub fn failed_admin_auth(&self) -> &Arc<FailedAuthGate> {
        &self.http_state.failed_admin_auth
    }

    /// Makes sure the storage answers (object storage: the bucket is listed
    /// once), so a wrong bucket, endpoint or credential stops the start with
    /// an error naming the setting.
    pub async fn check_storage(&self) -> Result<(), StartError> {
        if let Storage::S3(store) = self.registry.storage() {
            store.check().await?;
        }
        Ok(())
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Serves RTMP and HTTP until `shutdown` resolves, then drains: every
    /// publish flushes its last segment and ends its playlist before this
    /// returns. If the RTMP or the HTTP side stops on its own (it should
    /// not), the other is drained the same way and the cause is returned, so
    /// the process exits non-zero instead of running half a server.
    pub async fn run(
        self,
        rtmp: TcpListener,
        http: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.run_with_metrics(rtmp, http, None, shutdown).await
    }

    /// [`Server::run`], serving `/metrics` on `metrics` too when given
    /// (and metrics are enabled). The metrics listener failing is logged; it
    /// does not stop ingest or playback.
    pub async fn run_with_metrics(
        self,
        rtmp: TcpListener,
        http: TcpListener,
        metrics: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.run_with_listeners(rtmp, None, http, metrics, shutdown).await
    }

    /// Every HTTP route of `serve`: media, keys, admin API, pages, health
    /// and readiness, with the access log when it is on.
    fn http_app(&self) -> axum::Router {
        let app = http::router(Arc::clone(&self.http_state))
            .merge(web::router(Arc::clone(&self.web_state)))
            .merge(readiness::router(Arc::clone(&self.readiness)));
        if self.access_log {
            app.layer(axum::middleware::from_fn(http::access_log::log))
        } else {
            app
        }
    }

    /// [`Server::run_with_metrics`], with RTMPS on `rtmps` (bound at
    /// `[rtmp] tls_listen`; ignored unless the configuration set it).
    pub async fn run_with_listeners(
        self,
        rtmp: TcpListener,
        rtmps: Option<TcpListener>,
        http: TcpListener,
        metrics: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        info!(rtmp = %rtmp.local_addr()?, http = %http.local_addr()?, "sealcast listening");
        self.registry.resume();
        let authorizer: Arc<dyn ingest::PublishAuthorizer> = Arc::new(Arc::clone(&self.registry));
        let app = self.http_app();
        let exporter = self.metrics_exporter();
        let (notifier, webhook_task) = start_webhooks(self.webhooks).unzip();
        let metrics_tls = self.http_tls.clone().filter(|_| self.metrics_tls);
        let metrics_task = spawn_metrics(metrics, exporter, metrics_tls, stopped(stop_rx.clone()));
        let open_connections = self.metrics.as_ref().map_or_else(::metrics::Gauge::noop, |metrics| {
            metrics.gauge(crate::metrics::RTMP_CONNECTIONS, &[])
        });
        let rtmps = rtmps.zip(self.rtmps.clone());
        let mut ingest = tokio::spawn(ingest::serve_with_tls(
            rtmp,
            rtmps,
            authorizer,
            self.limits,
            open_connections,
            stopped(stop_rx.clone()),
        ));
        // Each dependency checked once at start, without delaying it.
        let readiness = Arc::clone(&self.readiness);
        tokio::spawn(async move { readiness.log_at_start().await });
        // Handlers get the peer (ConnectInfo): wrong admin tokens are slowed
        // down per address.
        let mut web = tokio::spawn(http::serve::serve_tls(
            http,
            app,
            self.http_limits,
            self.http_tls.clone(),
            stopped(stop_rx),
        ));

        // Whichever comes first: the signal, or one side ending early.
        let (ingest_early, web_early) = tokio::select! {
            () = shutdown => (None, None),
            ended = &mut ingest => (Some(task_result("rtmp ingest", ended)), None),
            ended = &mut web => (None, Some(task_result("http", ended))),
        };
        let ended_early = match (&ingest_early, &web_early) {
            (Some(_), _) => Some("rtmp ingest"),
            (_, Some(_)) => Some("http"),
            (None, None) => None,
        };
        if let Some(side) = ended_early {
            error!("{side} stopped unexpectedly; shutting down");
        } else {
            info!("shutting down: no new connections, flushing live streams");
        }
        let _ = stop_tx.send(true);
        let ingest_result = match ingest_early {
            Some(result) => result,
            None => task_result("rtmp ingest", ingest.await),
        };
        self.registry.wait_idle().await;
        self.registry.stop_timers().await;
        if let (Some(notifier), Some(task)) = (notifier, webhook_task) {
            drain_webhooks(notifier, task).await;
        }
        let web_result = match web_early {
            Some(result) => result,
            None => task_result("http", web.await),
        };
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        ingest_result.and(web_result)?;
        // An early end is an error even when the task itself returned Ok.
        if let Some(side) = ended_early {
            return Err(std::io::Error::other(format!(
                "{side} stopped before shutdown was requested"
            )));
        }
        info!("shut down");
        Ok(())
    }
}

/// HTTPS's acceptor, RTMPS's acceptor, and the certificate stores behind them.
pub type Tls = (
    Option<crate::tls::TlsAcceptor>,
    Option<crate::tls::TlsAcceptor>,
    Vec<Arc<crate::tls::CertStore>>,
);

/// The TLS acceptors for `[http]` (HTTPS) and `[rtmp] tls_listen` (RTMPS),
/// and their certificate stores for SIGHUP (one store when both name the
/// same files). An unusable file is an error naming its setting.
pub fn tls_from_config(config: &Config) -> Result<Tls, crate::tls::TlsError> {
    use crate::tls::{ALPN_HTTP, CertStore};
    let mut stores: Vec<Arc<CertStore>> = Vec::new();
    let mut store_for = |files: &crate::config::TlsFiles| -> Result<Arc<CertStore>, crate::tls::TlsError> {
        let same = |s: &&Arc<CertStore>| s.files().cert_file == files.cert_file && s.files().key_file == files.key_file;
        if let Some(store) = stores.iter().find(same) {
            return Ok(Arc::clone(store));
        }
        let store = CertStore::load(files)?;
        info!(file = %files.cert_file.display(), sha256 = %store.fingerprint(), "tls certificate loaded");
        stores.push(Arc::clone(&store));
        Ok(store)
    };
    let http = match config.http.tls_files() {
        Some(files) => Some(store_for(&files)?.acceptor(ALPN_HTTP)?),
        None => None,
    };
    let rtmps = match &config.rtmp.tls {
        Some(files) if config.rtmp.tls_listen.is_some() => Some(store_for(files)?.acceptor(&[])?),
        _ => None,
    };
    Ok((http, rtmps, stores))
}

/// When metrics are on: serves `/metrics` on its own listener (if there is
/// one) and keeps the histograms folded ([`Exporter::keep_up`]), until `stop`.
pub(crate) fn spawn_metrics(
    listener: Option<TcpListener>,
    exporter: Option<Arc<Exporter>>,
    tls: Option<crate::tls::TlsAcceptor>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    use futures_util::FutureExt as _;

    let exporter = exporter?;
    let stop = stop.boxed().shared();
    Some(tokio::spawn(async move {
        let serve = async {
            if let Some(listener) = listener
                && let Err(error) = crate::metrics::serve(listener, Arc::clone(&exporter), tls, stop.clone()).await
            {
                error!(%error, "metrics listener failed");
            }
            // Without a listener the histograms are still kept folded.
            stop.await;
        };
        tokio::select! {
            () = serve => {}
            () = exporter.keep_up() => {}
        }
    }))
}

/// Gives the last events (unpublishes) a short chance to go out, then stops
/// the delivery task.
async fn drain_webhooks(notifier: Notifier, task: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(WEBHOOK_DRAIN, notifier.drained()).await.is_err() {
        warn!(
            pending = notifier.pending(),
            "shutting down with undelivered webhook events"
        );
    }
    task.abort();
}

/// A listener task's outcome as one result, logged when it failed.
fn task_result(side: &str, joined: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    let result = joined.map_err(std::io::Error::other).and_then(|r| r);
    if let Err(error) = &result {
        error!(%error, "{side} failed");
    }
    result
}

/// Installs SIGINT and SIGTERM handlers now, and returns a future that
/// resolves on either. Installing before the server announces itself matters:
/// a supervisor may send SIGTERM as soon as it sees the banner.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Starts webhook delivery, when configured: the notifier events go to, and
/// the task that delivers them.
fn start_webhooks(webhooks: Option<(Notifier, Delivery)>) -> Option<(Notifier, tokio::task::JoinHandle<()>)> {
    let (notifier, delivery) = webhooks?;
    info!(url = %delivery.url, "webhooks on");
    Some((notifier.clone(), crate::webhooks::spawn(notifier, delivery)))
}

/// The live side's settings: storage, playlist shape, reconnects, recordings.
fn live_settings(config: &Config, storage: Storage) -> LiveSettings {
    let recordings = Arc::new(crate::live::Recordings::new(
        storage.clone(),
        crate::live::RecordSettings {
            enabled: config.record.enabled,
            retention: (config.record.retention_days > 0)
                .then(|| Duration::from_secs(config.record.retention_days * 86_400)),
            public_base: config.http.public_base().to_owned(),
        },
    ));
    LiveSettings {
        data_dir: config.storage.data_dir.clone(),
        key_uri_base: config.http.key_base().to_owned(),
        segment_duration_secs: config.hls.segment_duration_secs,
        playlist_window: config.hls.playlist_window as usize,
        dvr_window_secs: config.hls.dvr_window_secs,
        segments_per_key: config.encryption.segments_per_key,
        reconnect_grace: Duration::from_secs(config.hls.reconnect_grace_secs),
        storage,
        takeover_idle: (config.rtmp.takeover_idle_secs > 0)
            .then(|| Duration::from_secs(config.rtmp.takeover_idle_secs)),
        recordings,
        segment_memory: crate::live::SegmentMemory::new(config.http.limits.segment_memory_bytes()),
    }
}

/// The configured streams as the registry takes them.
fn stream_specs(config: &Config, streams: &[ResolvedStream]) -> Result<Vec<StreamSpec>, NameError> {
    streams
        .iter()
        .map(|s| {
            Ok(StreamSpec {
                name: StreamName::new(&s.app, &s.name)?,
                publish_key: s.publish_key.clone(),
                record: config.record_override(&s.app, &s.name),
            })
        })
        .collect()
}

/// `registry` with what the config turns on: metrics, webhooks, the publish
/// hook, cluster leases.
fn registry_from_config(
    config: &Config,
    mut registry: Registry,
    metrics: Option<&Arc<Metrics>>,
    notifier: Option<&Notifier>,
) -> Result<Registry, StartError> {
    if let Some(metrics) = metrics {
        registry = registry.with_metrics(Arc::clone(metrics));
    }
    if let Some(notifier) = notifier {
        registry = registry.with_webhooks(notifier.clone());
    }
    if let Some(hook) = &config.auth.publish_hook {
        let secret = hook.resolve_secret()?;
        let hook = crate::webhooks::PublishHook::new(hook, secret).map_err(ConfigError::one)?;
        info!(url = %hook.url(), "publish hook on: it decides every publish; [[streams]] keys admit none");
        registry = registry.with_publish_hook(hook);
    }
    if let Some(cluster) = &config.cluster {
        registry = registry.with_cluster(crate::live::leases_from_config(cluster, &config.rtmp)?);
        info!(node_id = %cluster.node_id, "cluster mode: publishes hold leases in redis");
    }
    Ok(registry)
}

/// The RTMP listener's limits, from `[rtmp]`.
fn ingest_limits(rtmp: &crate::config::RtmpConfig) -> IngestLimits {
    IngestLimits {
        max_connections: rtmp.max_connections.get() as usize,
        max_connections_per_ip: rtmp.max_connections_per_ip.get() as usize,
        handshake_timeout: Duration::from_secs(rtmp.handshake_timeout_secs.get()),
        idle_timeout: Duration::from_secs(rtmp.idle_timeout_secs.get()),
        max_message_bytes: rtmp.max_message_bytes,
        max_chunk_size_bytes: rtmp.max_chunk_size_bytes,
    }
}
