//! The real server, in process, on 127.0.0.1:0 ports, with its data dir and
//! secrets in a temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sealcast::auth::{self, Claims, Secret};
use sealcast::config::Config;
use sealcast::keyservice::{Clock, KeyService};
use sealcast::kms::Kms;
use sealcast::live::{Registry, StreamInfo};
use sealcast::names::StreamName;
use sealcast::reload::Reloader;
use sealcast::server::Server;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Publish keys of the streams every test server has.
pub const DEMO_KEY: &str = "sk_demo_0123456789abcdef";
pub const OTHER_KEY: &str = "sk_other_0123456789abcdef";

/// The `[[streams]]` tables of every test config: `live/demo` (DEMO_KEY) and
/// `live/other` (OTHER_KEY).
pub fn streams_toml() -> String {
    format!(
        r#"[[streams]]
app = "live"
name = "demo"
key = "{DEMO_KEY}"
[[streams]]
app = "live"
name = "other"
key = "{OTHER_KEY}"
"#
    )
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    /// `/metrics` (served when `[metrics] enabled`, the default).
    pub metrics: SocketAddr,
    pub secret: Secret,
    /// The key service behind `/keys/...`, for its counters.
    pub keys: Arc<KeyService>,
    pub registry: Arc<Registry>,
    /// The configuration it runs, and what SIGHUP would do to it.
    pub config: Config,
    pub reloader: Reloader,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with streams `live/demo` (DEMO_KEY) and `live/other`
    /// (OTHER_KEY); `extra_toml` is appended to the config (e.g. an `[hls]` table).
    /// The reconnect grace period is 0 unless `extra_toml` sets it.
    pub async fn start(extra_toml: &str) -> Self {
        Self::start_full(extra_toml, |_| {}, None, |kms| kms).await
    }

    /// [`TestServer::start`], then `edit` changes the parsed config (for keys
    /// in tables the base config already has, such as `[auth]`).
    pub async fn start_with_config(extra_toml: &str, edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(extra_toml, edit, None, |kms| kms).await
    }

    /// [`TestServer::start_with_config`] with the key service's clock
    /// (token and ticket expiry) injected when `clock` is given.
    pub async fn start_custom(extra_toml: &str, edit: impl FnOnce(&mut Config), clock: Option<Clock>) -> Self {
        Self::start_full(extra_toml, edit, clock, |kms| kms).await
    }

    /// As [`TestServer::start`], with the configured key provider passed
    /// through `wrap` (e.g. `sealcast::kms::Delayed`, or replaced outright).
    pub async fn start_wrapping_kms(extra_toml: &str, wrap: impl FnOnce(Arc<dyn Kms>) -> Arc<dyn Kms>) -> Self {
        Self::start_full(extra_toml, |_| {}, None, wrap).await
    }

    async fn start_full(
        extra_toml: &str,
        edit: impl FnOnce(&mut Config),
        clock: Option<Clock>,
        wrap: impl FnOnce(Arc<dyn Kms>) -> Arc<dyn Kms>,
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("sealcast=debug")
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let secret_path = dir.path().join("token_secret");
        std::fs::write(&secret_path, "test-secret-0123456789-0123456789-abcdef").unwrap();
        crate::support::process::make_private(&secret_path);
        let text = format!(
            r#"
[storage]
data_dir = "{data}"
[auth]
token_secret_file = "{secret}"
{streams}{extra_toml}
"#,
            data = dir.path().join("data").display(),
            secret = secret_path.display(),
            streams = streams_toml(),
        );
        let mut config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("test config: {e}"));
        if !extra_toml.contains("reconnect_grace_secs") {
            // Tests wait for #EXT-X-ENDLIST right after a publisher leaves.
            config.hls.reconnect_grace_secs = 0;
        }
        edit(&mut config);
        let kms = wrap(sealcast::kms::open(&config.kms).unwrap_or_else(|e| panic!("test KMS: {e}")));
        let server = match clock {
            Some(clock) => Server::with_kms_and_clock(&config, kms, clock),
            None => Server::with_kms(&config, kms),
        }
        .unwrap_or_else(|e| panic!("test server: {e}"));
        let secret = server.token_secret().clone();
        let keys = Arc::clone(server.key_service());
        let registry = Arc::clone(server.registry());
        let reloader = server.reloader();
        let rtmp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rtmp = rtmp_listener.local_addr().unwrap();
        let http = http_listener.local_addr().unwrap();
        let metrics = metrics_listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task =
            tokio::spawn(
                server.run_with_metrics(rtmp_listener, http_listener, Some(metrics_listener), async move {
                    let _ = rx.await;
                }),
            );
        Self {
            dir,
            rtmp,
            http,
            metrics,
            secret,
            keys,
            registry,
            config,
            reloader,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// False once the server task has returned; it must run until `stop`.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|task| !task.is_finished())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// What the registry shows about `app/name` (counters, latency).
    pub fn stream_info(&self, stream: &str) -> StreamInfo {
        let name = StreamName::parse(stream).unwrap();
        self.registry.get(&name).expect("a configured stream").info()
    }

    /// A playback token for `stream` (an `app/name` or pattern) valid for an hour,
    /// or already expired when `ttl_secs` is negative.
    pub fn token(&self, stream: &str, ttl_secs: i64) -> String {
        mint_token(&self.secret, stream, ttl_secs)
    }

    /// Graceful shutdown: every live publish flushes and ends its playlist.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A playback token for `stream` (an `app/name` or pattern) under `secret`,
/// valid for `ttl_secs`, or already expired when it is negative.
pub fn mint_token(secret: &Secret, stream: &str, ttl_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Claims {
        exp: (now + ttl_secs).max(0) as u64,
        stream: stream.to_owned(),
        sub: None,
        jti: None,
        recording: None,
    };
    auth::mint(secret, &claims)
}
