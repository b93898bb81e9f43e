//! One way to reach Redis for everything sealcast keeps there (the
//! one-time-ticket replay set, publish leases): the `redis` crate's
//! [`ConnectionManager`], a multiplexed connection that reconnects by itself
//! after Redis restarts or a connection drops. `redis://` or `rediss://`
//! (TLS, rustls with the Mozilla roots, or the CA in `tls_ca_file`), an ACL
//! user name and a password from the environment or a file.
//!
//! Every request is bounded by `timeout` (connecting included): the caller
//! decides what "Redis did not answer" means (the key endpoint fails closed,
//! a lease holder keeps its write deadline).

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, TlsCertificates};
use tokio::sync::OnceCell;

use crate::auth::Secret;
use crate::config::RedisUrl;

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub url: RedisUrl,
    /// ACL user name (`AUTH user password`); `None`: the default user.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM CA certificate(s) trusted for `rediss://` instead of the Mozilla roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Bound on one request, connecting included.
    pub timeout: Duration,
}

/// Why Redis could not be used: the text is for logs and never holds the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RedisError(pub String);

/// A lazily connected, self-reconnecting Redis connection.
pub struct Redis {
    target: RedisTarget,
    manager: OnceCell<ConnectionManager>,
}

impl Redis {
    /// Nothing is connected until the first request.
    pub fn new(target: RedisTarget) -> Self {
        Self {
            target,
            manager: OnceCell::new(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.target.timeout
    }

    /// The shared connection (a cheap clone of the multiplexed one).
    pub async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        self.manager
            .get_or_try_init(|| async {
                let client = client(&self.target)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.target.timeout))
                    .set_response_timeout(Some(self.target.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| RedisError(format!("redis client: {e}")))
            })
            .await
            .cloned()
    }

    /// Runs `request` on the connection, bounded by the timeout. A request
    /// that failed because the connection broke (Redis restarted, an idle
    /// connection closed) is tried once more, on the connection the manager
    /// reopens.
    pub async fn run<T, F>(&self, request: impl Fn(ConnectionManager) -> F) -> Result<T, RedisError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let timeout = self.target.timeout;
        let work = async {
            let connection = self.connection().await?;
            match request(connection.clone()).await {
                Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() => {
                    request(connection).await.map_err(|e| RedisError(describe(&e)))
                }
                other => other.map_err(|e| RedisError(describe(&e))),
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(RedisError(format!("no answer within {} ms", timeout.as_millis()))))
    }

    /// `PING`: whether Redis answers now (for `/readyz` and start-up checks).
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(drop)
    }
}

/// The error's kind and message, as the crate words them (never the
/// password: the crate does not echo credentials).
fn describe(error: &redis::RedisError) -> String {
    if error.is_connection_refusal() {
        format!("connection refused: {error}")
    } else {
        format!("redis: {error}")
    }
}

fn client(target: &RedisTarget) -> Result<Client, RedisError> {
    let url = &target.url;
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let scheme = if url.tls { "rediss" } else { "redis" };
    let address = format!("{scheme}://{host}:{}/{}", url.port, url.db.unwrap_or(0));
    let info = address
        .into_connection_info()
        .map_err(|e| RedisError(format!("redis url: {e}")))?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &target.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &target.password {
        let text = password
            .expose_str()
            .ok_or_else(|| RedisError("the redis password is not UTF-8".into()))?;
        settings = settings.set_password(text);
    }
    let info = info.set_redis_settings(settings);
    match (&target.tls_ca_file, url.tls) {
        (Some(ca), true) => {
            let pem = std::fs::read(ca).map_err(|e| RedisError(format!("reading {}: {e}", ca.display())))?;
            let certificates = TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            Client::build_with_tls(info, certificates).map_err(|e| RedisError(format!("redis tls: {e}")))
        }
        _ => Client::open(info).map_err(|e| RedisError(format!("redis client: {e}"))),
    }
}
