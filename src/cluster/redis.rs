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
//!
//! With `redis+sentinel://` the primary is asked of the sentinels (the
//! crate checks its `ROLE`), and asked again whenever a request fails on the
//! connection or is refused `READONLY` (a failover demoted the node): the
//! next request goes to the primary the sentinels promoted.

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, TlsCertificates, TlsMode};
use tokio::sync::Mutex;

use crate::auth::Secret;
use crate::config::{RedisUrl, SentinelUrl};

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
    /// The connection in use; `None` until the first request, and again
    /// after a Sentinel primary failed us.
    manager: Mutex<Option<ConnectionManager>>,
    /// `redis+sentinel://`: asks the sentinels for the primary (built at
    /// the first request).
    sentinel: Mutex<Option<SentinelClient>>,
}

impl Redis {
    /// Nothing is connected until the first request.
    pub fn new(target: RedisTarget) -> Self {
        Self {
            target,
            manager: Mutex::new(None),
            sentinel: Mutex::new(None),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.target.timeout
    }

    /// The shared connection (a cheap clone of the multiplexed one).
    pub async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let mut manager = self.manager.lock().await;
        if let Some(manager) = manager.as_ref() {
            return Ok(manager.clone());
        }
        let client = match &self.target.url.sentinel {
            Some(sentinel) => {
                let mut asker = self.sentinel.lock().await;
                let asker = match asker.as_mut() {
                    Some(asker) => asker,
                    None => asker.insert(sentinel_client(&self.target, sentinel)?),
                };
                asker.async_get_client().await.map_err(|e| {
                    RedisError(format!(
                        "sentinel: no primary for {:?}: {}",
                        sentinel.master,
                        describe(&e)
                    ))
                })?
            }
            None => client(&self.target)?,
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.target.timeout))
            .set_response_timeout(Some(self.target.timeout))
            .set_number_of_retries(1);
        let opened = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisError(format!("redis client: {e}")))?;
        *manager = Some(opened.clone());
        Ok(opened)
    }

    /// Sentinel: forget the primary after `error`, when it means the node
    /// is gone or no longer primary; the next request asks the sentinels.
    async fn forget_primary(&self, error: &redis::RedisError) {
        let gone = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
            || error.is_timeout()
            || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if self.target.url.sentinel.is_some() && gone {
            *self.manager.lock().await = None;
        }
    }

    /// Runs `request` on the connection, bounded by the timeout. A request
    /// that failed because the connection broke (Redis restarted, an idle
    /// connection closed, a Sentinel failover) is tried once more, on the
    /// connection the manager reopens (or on the new primary).
    pub async fn run<T, F>(&self, request: impl Fn(ConnectionManager) -> F) -> Result<T, RedisError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let timeout = self.target.timeout;
        let work = async {
            let connection = self.connection().await?;
            let retry = |e: &redis::RedisError| {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error()
                    || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
            };
            match request(connection.clone()).await {
                Err(e) if retry(&e) => {
                    self.forget_primary(&e).await;
                    let connection = self.connection().await?;
                    let result = request(connection).await;
                    if let Err(e) = &result {
                        self.forget_primary(e).await;
                    }
                    result.map_err(|e| RedisError(describe(&e)))
                }
                Err(e) => {
                    self.forget_primary(&e).await;
                    Err(RedisError(describe(&e)))
                }
                Ok(value) => Ok(value),
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                // A primary that hangs: with Sentinel, ask again next time.
                if self.target.url.sentinel.is_some() {
                    *self.manager.lock().await = None;
                }
                Err(RedisError(format!("no answer within {} ms", timeout.as_millis())))
            }
        }
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

/// The sentinels of `sentinel`, asked for its master; the primary is then
/// reached with the target's database, ACL user, password and TLS settings.
/// The sentinels themselves are asked without credentials (and over TLS
/// when the URL is `rediss+sentinel://`).
fn sentinel_client(target: &RedisTarget, sentinel: &SentinelUrl) -> Result<SentinelClient, RedisError> {
    let tls = target.url.tls;
    let nodes = sentinel.nodes.iter().map(|(host, port)| {
        if tls {
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let error = |e: redis::RedisError| RedisError(format!("sentinel client: {e}"));
    let mut builder = SentinelClientBuilder::new(nodes, &sentinel.master, SentinelServerType::Master).map_err(error)?;
    if let Some(db) = target.url.db {
        builder = builder.set_client_to_redis_db(i64::from(db));
    }
    if let Some(user) = &target.username {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = &target.password {
        let text = password
            .expose_str()
            .ok_or_else(|| RedisError("the redis password is not UTF-8".into()))?;
        builder = builder.set_client_to_redis_password(text);
    }
    if tls {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        if let Some(ca) = &target.tls_ca_file {
            let pem = std::fs::read(ca).map_err(|e| RedisError(format!("reading {}: {e}", ca.display())))?;
            let certificates = || TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            };
            builder = builder
                .set_client_to_redis_certificates(certificates())
                .set_client_to_sentinel_certificates(certificates());
        }
    }
    builder.build().map_err(error)
}
