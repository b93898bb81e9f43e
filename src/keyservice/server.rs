//! `sealcast keyserver`: only the key endpoint and `/healthz`, for
//! deployments that scale key delivery apart from ingest.
//!
//! It needs the KMS, the token secret the ingest servers sign with, and the
//! replay store; nothing else. It writes nothing: no data directory, no
//! generated secret, no keyring (the keyring must exist already).

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

use super::{Clock, KeyService, KeySettings, replay_store_from_config};
use crate::config::{Config, ConfigError, KmsConfig};
use crate::http::serve::ServeLimits;
use crate::http::{self, CorsPolicy};
use crate::kms::local::LocalKms;
use crate::kms::{Kms, KmsError};
use crate::metrics::{Exporter, MeteredKms, Metrics};
use crate::readiness::Readiness;

/// Why the key server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or a secret it names is unusable.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The key provider could not be opened.
    #[error("{0}")]
    Kms(#[from] KmsError),
    /// The HTTPS certificate or key file is unusable.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// A configured key server, ready to run on a listener the caller bound.
pub struct KeyServer {
    keys: Arc<KeyService>,
    cors: CorsPolicy,
    reloader: crate::reload::Reloader,
    readiness: Arc<Readiness>,
    access_log: bool,
    limits: ServeLimits,
    /// `None` when `metrics.enabled` is false.
    metrics: Option<Arc<Metrics>>,
    /// HTTPS, when `[http]` names a certificate.
    tls: Option<crate::tls::TlsAcceptor>,
    /// `metrics.tls`: `/metrics` over HTTPS with `[http]`'s certificate.
    metrics_tls: bool,
    /// `sealcast edge`: playlists and segments from storage besides keys.
    edge: Option<Arc<crate::http::edge::EdgeState>>,
}

impl KeyServer {
    /// Reads the token secret (which must be named by `auth.token_secret_env`
    /// or `auth.token_secret_file`), opens the KMS without creating anything,
    /// and builds the replay store.
    pub fn from_config(config: &Config) -> Result<Self, StartError> {
        Self::from_config_with_clock(config, crate::clock::system())
    }

    /// [`KeyServer::from_config`] with the key service's clock injected.
    pub fn from_config_with_clock(config: &Config, clock: Clock) -> Result<Self, StartError> {
        if !config.auth.token_secret_is_configured() {
            let problem = "keyserver: set auth.token_secret_env or auth.token_secret_file to the secret \
                           the ingest servers use; a key server generates no secret";
            return Err(ConfigError {
                problems: vec![problem.to_string()],
            }
            .into());
        }
        let token_secret = config.resolve_token_secret()?;
        let kms: Arc<dyn Kms> = match &config.kms {
            // A key server writes nothing: the keyring must exist already.
            KmsConfig::Local { keyring } => Arc::new(LocalKms::open(keyring)?),
            KmsConfig::Aws(_) => crate::kms::open(&config.kms)?,
        };
        let metrics = config.metrics.enabled.then(|| Arc::new(Metrics::new()));
        let kms: Arc<dyn Kms> = match &metrics {
            Some(metrics) => Arc::new(MeteredKms::new(kms, Arc::clone(metrics))),
            None => kms,
        };
        let replay = replay_store_from_config(&config.auth)?;
        let (tls, certificates) = match config.http.tls_files() {
            Some(files) => {
                let store = crate::tls::CertStore::load(&files)?;
                (Some(store.acceptor(crate::tls::ALPN_HTTP)?), vec![store])
            }
            None => (None, Vec::new()),
        };
        let reloader = crate::reload::Reloader::for_keyserver(config, Arc::clone(&kms)).with_certificates(certificates);
        let readiness = Arc::new(Readiness::new(Arc::clone(&kms), Arc::clone(&replay), None));
        let keys = KeyService::new(KeySettings::from_config(&config.auth, token_secret), kms, replay, clock);
        keys.set_protected_streams(super::license::protected_streams(config));
        Ok(Self {
            keys: Arc::new(keys),
            cors: CorsPolicy::from_origins(&config.http.cors_allowed_origins),
            reloader,
            readiness,
            access_log: config.http.access_log,
            limits: ServeLimits::from_config(&config.http.limits, crate::fd_limit::current()),
            metrics,
            tls,
            metrics_tls: config.metrics.tls,
            edge: None,
        })
    }

    /// `sealcast edge`: a key server that also serves playlists (personalized
    /// per viewer) and segments from the configured storage, read with the
    /// same `[storage]` section as the ingest nodes'.
    pub fn edge_from_config(config: &Config) -> Result<Self, StartError> {
        let mut server = Self::from_config(config)?;
        let storage = crate::server::storage_from_config(config, server.metrics.clone())
            .map_err(|e| ConfigError::one(e.to_string()))?;
        let keys = &server.keys;
        let web = crate::http::web::WebState::new(None, keys.token_secret().clone(), None, &config.http)
            .with_audience(keys.audience().map(str::to_owned))
            .with_key_service(Arc::clone(keys));
        let state = crate::http::edge::EdgeState::new(storage, Arc::clone(&server.keys)).with_watch_page(web);
        server.edge = Some(Arc::new(state));
        Ok(server)
    }

    /// An edge's storage answers (object storage: the bucket is listed once),
    /// so a wrong bucket, endpoint or credential stops the start with an
    /// error naming the setting. Nothing to check for a key server.
    pub async fn check_storage(&self) -> Result<(), crate::storage::StorageError> {
        match self.edge.as_ref().map(|edge| &edge.storage) {
            Some(crate::storage::Storage::S3(store)) => store.check().await,
            _ => Ok(()),
        }
    }

    /// What SIGHUP reloads in this key server: the KMS's master key versions.
    pub fn reloader(&self) -> crate::reload::Reloader {
        self.reloader.clone()
    }

    /// What `/metrics` serves, or `None` when metrics are off.
    pub fn metrics_exporter(&self) -> Option<Arc<Exporter>> {
        (self.metrics.as_ref())
            .map(|metrics| Arc::new(Exporter::new(Arc::clone(metrics), Arc::clone(&self.keys), None)))
    }

    /// The key service, for its counters.
    pub fn keys(&self) -> &Arc<KeyService> {
        &self.keys
    }

    /// Serves until `shutdown` resolves, then lets open requests finish.
    pub async fn run(
        self,
        http: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.run_with_metrics(http, None, shutdown).await
    }

    /// [`KeyServer::run`], serving `/metrics` on `metrics` too when given
    /// (and metrics are enabled); a failing metrics listener is logged only.
    pub async fn run_with_metrics(
        self,
        http: TcpListener,
        metrics: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        info!(http = %http.local_addr()?, "sealcast keyserver listening");
        // Each dependency checked once at start, without delaying it.
        let readiness = Arc::clone(&self.readiness);
        tokio::spawn(async move { readiness.log_at_start().await });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stop = stop_rx;
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let metrics_tls = self.tls.clone().filter(|_| self.metrics_tls);
        let metrics_task = crate::server::spawn_metrics(metrics, self.metrics_exporter(), metrics_tls, stopped);
        let app = match self.edge {
            Some(edge) => http::edge_router(self.keys, edge, self.cors),
            None => http::key_server_router(self.keys, self.cors),
        }
        .merge(crate::readiness::router(self.readiness));
        let app = if self.access_log {
            app.layer(axum::middleware::from_fn(http::access_log::log))
        } else {
            app
        };
        let served = http::serve::serve_tls(http, app, self.limits, self.tls, shutdown).await;
        let _ = stop_tx.send(true);
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        served?;
        info!("keyserver shut down");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_generate_or_create_anything() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "test-secret-0123456789-0123456789-abcdef").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let config = |auth: &str| {
            Config::from_toml_str(&format!(
                "[storage]\ndata_dir = {:?}\n[auth]\n{auth}\n",
                data_dir.display().to_string()
            ))
            .unwrap()
        };
        let error = KeyServer::from_config(&config("")).err().unwrap().to_string();
        assert!(error.starts_with("keyserver: set auth.token_secret_env"), "{error}");
        let with_secret = config(&format!("token_secret_file = {:?}", secret.display().to_string()));
        let error = KeyServer::from_config(&with_secret).err().unwrap().to_string();
        assert!(error.contains("keyring.json: open: "), "{error}");
        assert!(!data_dir.exists(), "a key server must not create its data dir");

        LocalKms::open_or_create(&data_dir.join("keyring.json")).unwrap();
        let server = KeyServer::from_config(&with_secret).unwrap();
        assert_eq!(server.keys().stats(), super::super::KeyServiceStats::default());
        let names: Vec<_> = std::fs::read_dir(&data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keyring.json"]);
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_metrics_on_its_own_listener() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "test-secret-0123456789-0123456789-abcdef").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        LocalKms::open_or_create(&dir.path().join("keyring.json")).unwrap();
        let config = Config::from_toml_str(&format!(
            "[storage]\ndata_dir = {:?}\n[auth]\ntoken_secret_file = {:?}\n",
            dir.path().display().to_string(),
            secret.display().to_string()
        ))
        .unwrap();
        let server = KeyServer::from_config(&config).unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, metrics_addr) = (http.local_addr().unwrap(), metrics.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run_with_metrics(http, Some(metrics), async move {
            let _ = stopped.await;
        }));
        assert!(
            get(http_addr, "/keys/live/demo/k1?edk=AAAA")
                .await
                .starts_with("HTTP/1.1 401")
        );
        let text = get(metrics_addr, "/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.contains("sealcast_key_requests_total{result=\"unauthorized\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("sealcast_key_cache_misses_total 0\n"), "{text}");
        // No streams are published here.
        assert!(!text.contains("sealcast_streams_live"), "{text}");
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    /// A key server reads `protection` from the same `[[streams]]` table:
    /// a protected stream's raw keys are refused whatever the token.
    #[tokio::test]
    async fn a_key_server_refuses_raw_keys_of_protected_streams() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "test-secret-0123456789-0123456789-abcdef").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        LocalKms::open_or_create(&dir.path().join("keyring.json")).unwrap();
        let config = Config::from_toml_str(&format!(
            "[storage]\ndata_dir = {:?}\n[auth]\ntoken_secret_file = {:?}\n\
             [[streams]]\napp = \"live\"\nname = \"vip\"\nkey_env = \"X\"\nprotection = \"web\"\n",
            dir.path().display().to_string(),
            secret.display().to_string()
        ))
        .unwrap();
        let server = KeyServer::from_config(&config).unwrap();
        let claims = crate::auth::Claims {
            exp: crate::clock::now_unix_secs() + 3600,
            stream: "*".into(),
            sub: None,
            jti: None,
            recording: None,
        };
        let token = server.keys().mint_token(&claims);
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = http.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(http, async move {
            let _ = stopped.await;
        }));
        let vip = get(addr, &format!("/keys/live/vip/k1?edk=AAAA&token={token}")).await;
        assert!(vip.starts_with("HTTP/1.1 403"), "{vip}");
        assert!(vip.contains("POST /license/"), "{vip}");
        // Another stream is standard: its (bogus) wrapped key is refused as before.
        let other = get(addr, &format!("/keys/live/other/k1?edk=AAAA&token={token}")).await;
        assert!(
            other.starts_with("HTTP/1.1 403") && !other.contains("license"),
            "{other}"
        );
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }
}
