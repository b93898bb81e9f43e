//! The shared replay store: Redis, through the `redis` crate (see
//! [`crate::cluster::redis`]: one multiplexed, self-reconnecting connection,
//! TLS with `rediss://`, ACL user and password), so several key servers
//! refuse each other's used tickets.
//!
//! `SET key 1 NX PX ms` is atomic in Redis: of two key servers presenting
//! the same ticket at once, exactly one gets `OK`; the other gets a null
//! reply. The entry expires with the ticket, so Redis holds only live
//! tickets. Every request is bounded by a timeout; when Redis cannot answer
//! (down, timed out, an error reply), the caller fails closed (HTTP 503).

use std::fmt::Write as _;

use async_trait::async_trait;

use super::replay::{ReplayError, ReplayStore};
use crate::auth::ticket::NONCE_LEN;
use crate::cluster::redis::{Redis, RedisTarget};

/// See the module docs.
pub struct RedisReplayStore {
    redis: Redis,
    /// Prefix of the keys written, e.g. `sealcast:ticket:`; the nonce in hex follows.
    key_prefix: String,
}

impl RedisReplayStore {
    /// Nothing connects until the first request (or `check`).
    pub fn new(target: RedisTarget, key_prefix: String) -> Self {
        Self {
            redis: Redis::new(target),
            key_prefix,
        }
    }
}

#[async_trait]
impl ReplayStore for RedisReplayStore {
    async fn check(&self) -> Result<(), ReplayError> {
        self.redis.ping().await.map_err(|e| ReplayError::Unavailable(e.0))
    }

    async fn first_use(
        &self,
        nonce: &[u8; NONCE_LEN],
        expires_unix_secs: u64,
        now_unix_secs: u64,
    ) -> Result<bool, ReplayError> {
        let mut key = String::with_capacity(self.key_prefix.len() + 2 * NONCE_LEN);
        key.push_str(&self.key_prefix);
        for b in nonce {
            let _ = write!(key, "{b:02x}");
        }
        // Never PX 0 (an error): an expiry already reached still sets 1 ms.
        let px = expires_unix_secs
            .saturating_sub(now_unix_secs)
            .saturating_mul(1000)
            .max(1);
        let key = key.as_str();
        let set = self
            .redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(px)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await
            .map_err(|e| ReplayError::Unavailable(e.0))?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;
    use crate::config::RedisUrl;

    fn target(port: u16, timeout: Duration) -> RedisTarget {
        RedisTarget {
            url: RedisUrl {
                host: "127.0.0.1".into(),
                port,
                db: None,
                tls: false,
                sentinel: None,
            },
            username: None,
            password: None,
            tls_ca_file: None,
            timeout,
        }
    }

    #[tokio::test]
    async fn unreachable_redis_is_unavailable() {
        // Bind then drop: nothing listens on this port.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = RedisReplayStore::new(target(port, Duration::from_secs(5)), "t:".into());
        let got = store.first_use(&[0; NONCE_LEN], 2000, 1000).await;
        assert!(matches!(&got, Err(ReplayError::Unavailable(_))), "{got:?}");
        assert!(store.check().await.is_err());
    }

    #[tokio::test]
    async fn silent_redis_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and never answers.
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let store = RedisReplayStore::new(target(port, Duration::from_millis(100)), "t:".into());
        let got = store.first_use(&[0; NONCE_LEN], 2000, 1000).await;
        assert_eq!(got, Err(ReplayError::Unavailable("no answer within 100 ms".into())));
    }
}
