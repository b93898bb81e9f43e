//! `sealcast serve`: builds the registry, the KMS and the HTTP state from the
//! configuration, runs RTMP ingest and HTTP side by side, and shuts down
//! gracefully: stop accepting, let every publish flush its last segment and
//! end its playlist, then return.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::info;

use crate::auth::Secret;
use crate::config::{Config, ConfigError, KmsProvider, ResolvedStream};
use crate::http::{self, CorsPolicy, HttpState};
use crate::kms::aws::{AwsKms, AwsSettings};
use crate::kms::local::LocalKms;
use crate::kms::{Kms, KmsError};
use crate::live::{LiveSettings, Registry, StreamSpec};
use crate::names::{NameError, StreamName};
use crate::rtmp::{self, IngestLimits};

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
}

/// A configured server, ready to run on listeners the caller bound.
pub struct Server {
    registry: Arc<Registry>,
    http_state: Arc<HttpState>,
    limits: IngestLimits,
    streams: Vec<ResolvedStream>,
}

impl Server {
    /// Resolves secrets (creating generated ones on first start), opens the KMS
    /// and builds the stream registry.
    pub fn from_config(config: &Config) -> Result<Self, StartError> {
        let kms = open_kms(config)?;
        Self::with_kms(config, kms)
    }

    /// As [`Server::from_config`], with the key provider given: the one
    /// [`open_kms`] opened behind a wrapper (such as [`crate::kms::Delayed`]),
    /// or another implementation of [`Kms`].
    pub fn with_kms(config: &Config, kms: Arc<dyn Kms>) -> Result<Self, StartError> {
        let token_secret = config.resolve_token_secret()?;
        let streams = config.resolve_streams()?;
        let settings = LiveSettings {
            data_dir: config.storage.data_dir.clone(),
            key_uri_base: config.http.public_base().to_owned(),
            segment_duration_secs: config.hls.segment_duration_secs,
            playlist_window: config.hls.playlist_window as usize,
            // validate() guarantees at least 1.
            segments_per_key: NonZeroU32::new(config.encryption.segments_per_key).unwrap_or(NonZeroU32::MIN),
            reconnect_grace: Duration::from_secs(config.hls.reconnect_grace_secs),
        };
        let specs = streams
            .iter()
            .map(|s| {
                Ok(StreamSpec {
                    name: StreamName::new(&s.app, &s.name)?,
                    publish_key: s.publish_key.clone(),
                })
            })
            .collect::<Result<Vec<_>, NameError>>()?;
        let registry = Arc::new(Registry::new(settings, kms, specs));
        let limits = IngestLimits {
            max_connections: config.rtmp.max_connections as usize,
            idle_timeout: Duration::from_secs(config.rtmp.idle_timeout_secs),
            ..IngestLimits::default()
        };
        let http_state = Arc::new(HttpState {
            registry: Arc::clone(&registry),
            token_secret,
            cors: CorsPolicy::from_origins(&config.http.cors_allowed_origins),
        });
        Ok(Self {
            registry,
            http_state,
            limits,
            streams,
        })
    }

    /// The streams with their publish keys, for the start banner.
    pub fn streams(&self) -> &[ResolvedStream] {
        &self.streams
    }

    /// The secret playback tokens are signed with.
    pub fn token_secret(&self) -> &Secret {
        &self.http_state.token_secret
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Serves RTMP and HTTP until `shutdown` resolves, then drains: every
    /// publish flushes its last segment and ends its playlist before this
    /// returns.
    pub async fn run(
        self,
        rtmp: TcpListener,
        http: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        info!(rtmp = %rtmp.local_addr()?, http = %http.local_addr()?, "sealcast listening");
        self.registry.resume();
        let authorizer: Arc<dyn rtmp::PublishAuthorizer> = Arc::new(Arc::clone(&self.registry));
        let ingest = tokio::spawn(rtmp::serve(rtmp, authorizer, self.limits, stopped(stop_rx.clone())));
        let app = http::router(Arc::clone(&self.http_state));
        let web = tokio::spawn(async move { axum::serve(http, app).with_graceful_shutdown(stopped(stop_rx)).await });

        shutdown.await;
        info!("shutting down: no new connections, flushing live streams");
        let _ = stop_tx.send(true);
        ingest.await.map_err(std::io::Error::other)??;
        self.registry.wait_idle().await;
        web.await.map_err(std::io::Error::other)??;
        info!("shut down");
        Ok(())
    }
}

/// Opens the key provider `[kms]` names: the local keyring (created on first
/// start, refused when group or others may read it), or AWS KMS with region
/// and credentials from the environment. Makes no KMS request.
pub fn open_kms(config: &Config) -> Result<Arc<dyn Kms>, KmsError> {
    match config.kms.provider {
        KmsProvider::Local => {
            let local = LocalKms::open_or_create(&config.keyring_path())?;
            info!(
                keyring = %local.path().display(),
                version = local.current_version(),
                "key provider: local keyring"
            );
            Ok(Arc::new(local))
        }
        KmsProvider::Aws => {
            let settings = AwsSettings {
                // validate() requires it for this provider.
                key_id: config.kms.key_id.clone().unwrap_or_default(),
                region: config.kms.region.clone(),
                endpoint: config.kms.endpoint.clone(),
                profile: config.kms.profile.clone(),
                request_timeout: Duration::from_millis(config.kms.request_timeout_ms),
            };
            let aws = AwsKms::new(&settings)?;
            info!(
                "key provider: AWS KMS key {} in {} at {}",
                aws.key_id(),
                aws.region(),
                aws.endpoint()
            );
            Ok(Arc::new(aws))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
