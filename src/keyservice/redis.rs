//! The shared replay store: Redis, spoken to with a minimal RESP2 client over
//! tokio TCP (one command, `SET key 1 NX PX ms`, plus `AUTH` and `SELECT` at
//! connect), so several key servers refuse each other's used tickets without
//! a Redis client library in the build.
//!
//! `SET ... NX PX` is atomic in Redis: of two key servers presenting the
//! same ticket at once, exactly one gets `+OK`; the other gets a null reply.
//! The entry expires with the ticket, so Redis holds only live tickets.
//!
//! Connections: a small fixed pool, each connection used by one request at a
//! time. A connection that fails is dropped and reopened by the next request;
//! a request that fails on a connection opened earlier (Redis restarted,
//! idle connection closed) retries once on a fresh one. Every request is
//! bounded by a timeout. When Redis cannot answer, the caller fails closed
//! (HTTP 503).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::replay::{ReplayError, ReplayStore};
use crate::auth::Secret;
use crate::auth::ticket::NONCE_LEN;
use crate::config::RedisUrl;

/// Longest reply line read; `SET` replies are a few bytes, errors a line.
const MAX_REPLY_BYTES: u64 = 4096;

/// How to reach and use Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub target: RedisUrl,
    /// Sent with `AUTH` on each new connection.
    pub password: Option<Secret>,
    /// Prefix of the keys written, e.g. `sealcast:ticket:`; the nonce in hex follows.
    pub key_prefix: String,
    /// Bound on one request (connecting included).
    pub timeout: Duration,
    /// Connections kept open.
    pub pool_size: usize,
}

/// See the module docs.
pub struct RedisReplayStore {
    settings: RedisSettings,
    pool: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
}

struct Connection {
    stream: BufStream<TcpStream>,
    line: Vec<u8>,
}

/// How one attempt failed.
enum Failure {
    /// The connection broke or timed out: drop it.
    Io(String),
    /// Redis answered with an error (`-ERR ...`): the connection is fine.
    Redis(String),
}

impl RedisReplayStore {
    pub fn new(settings: RedisSettings) -> Self {
        let pool = (0..settings.pool_size.max(1)).map(|_| Mutex::new(None)).collect();
        Self {
            settings,
            pool,
            next: AtomicUsize::new(0),
        }
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        let target = &self.settings.target;
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| Failure::Io(format!("connect to {}:{}: {e}", target.host, target.port)))?;
        stream.set_nodelay(true).map_err(|e| Failure::Io(e.to_string()))?;
        let mut conn = Connection {
            stream: BufStream::new(stream),
            line: Vec::with_capacity(64),
        };
        if let Some(password) = &self.settings.password {
            conn.expect_ok(&[b"AUTH", password.expose()]).await?;
        }
        if let Some(db) = target.db {
            conn.expect_ok(&[b"SELECT", db.to_string().as_bytes()]).await?;
        }
        Ok(conn)
    }

    /// One try on `slot`'s connection (opened if absent): `Ok(first use?)`.
    async fn attempt(&self, slot: &mut Option<Connection>, key: &[u8], px: &[u8]) -> Result<bool, Failure> {
        let conn = match slot {
            Some(conn) => conn,
            None => slot.insert(self.connect().await?),
        };
        conn.send(&[b"SET", key, b"1", b"NX", b"PX", px]).await?;
        match conn.reply().await? {
            Reply::Ok => Ok(true),
            Reply::Null => Ok(false),
            Reply::Error(e) => Err(Failure::Redis(e)),
        }
    }
}

#[async_trait]
impl ReplayStore for RedisReplayStore {
    async fn check(&self) -> Result<(), ReplayError> {
        match tokio::time::timeout(self.settings.timeout, self.connect()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(Failure::Io(e) | Failure::Redis(e))) => Err(ReplayError::Unavailable(e)),
            Err(_) => Err(ReplayError::Unavailable(format!(
                "no answer within {} ms",
                self.settings.timeout.as_millis()
            ))),
        }
    }

    async fn first_use(
        &self,
        nonce: &[u8; NONCE_LEN],
        expires_unix_secs: u64,
        now_unix_secs: u64,
    ) -> Result<bool, ReplayError> {
        let mut key = String::with_capacity(self.settings.key_prefix.len() + 2 * NONCE_LEN);
        key.push_str(&self.settings.key_prefix);
        for b in nonce {
            let _ = write!(key, "{b:02x}");
        }
        let px = expires_unix_secs
            .saturating_sub(now_unix_secs)
            .saturating_mul(1000)
            .max(1)
            .to_string();
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        let run = async {
            // The pool has at least one connection (see `new`).
            let mut slot = self.pool[index].lock().await;
            let reused = slot.is_some();
            match self.attempt(&mut slot, key.as_bytes(), px.as_bytes()).await {
                Err(Failure::Io(_)) if reused => {
                    // Most likely a connection Redis closed since its last use.
                    *slot = None;
                    self.attempt(&mut slot, key.as_bytes(), px.as_bytes())
                        .await
                        .inspect_err(|f| {
                            if matches!(f, Failure::Io(_)) {
                                *slot = None;
                            }
                        })
                }
                Err(Failure::Io(e)) => {
                    *slot = None;
                    Err(Failure::Io(e))
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.settings.timeout, run).await {
            Ok(Ok(first)) => Ok(first),
            Ok(Err(Failure::Io(e))) => Err(ReplayError::Unavailable(e)),
            Ok(Err(Failure::Redis(e))) => Err(ReplayError::Unavailable(format!("redis answered {e}"))),
            Err(_) => {
                // The connection may hold a late reply now: drop it. If the
                // slot is busy, its holder has its own timeout.
                if let Ok(mut slot) = self.pool[index].try_lock() {
                    *slot = None;
                }
                Err(ReplayError::Unavailable(format!(
                    "no answer within {} ms",
                    self.settings.timeout.as_millis()
                )))
            }
        }
    }
}

/// The replies this client understands.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// `+OK`.
    Ok,
    /// `$-1` (RESP2) or `_` (RESP3): `SET NX` did not set.
    Null,
    /// `-ERR ...`, `-NOAUTH ...`: the message, for logs.
    Error(String),
}

impl Connection {
    /// Writes a command as a RESP array of bulk strings.
    async fn send(&mut self, args: &[&[u8]]) -> Result<(), Failure> {
        let io = |e: std::io::Error| Failure::Io(e.to_string());
        let mut head = String::with_capacity(16);
        let _ = write!(head, "*{}\r\n", args.len());
        self.stream.write_all(head.as_bytes()).await.map_err(io)?;
        for arg in args {
            head.clear();
            let _ = write!(head, "${}\r\n", arg.len());
            self.stream.write_all(head.as_bytes()).await.map_err(io)?;
            self.stream.write_all(arg).await.map_err(io)?;
            self.stream.write_all(b"\r\n").await.map_err(io)?;
        }
        self.stream.flush().await.map_err(io)
    }

    async fn reply(&mut self) -> Result<Reply, Failure> {
        self.line.clear();
        let n = (&mut self.stream)
            .take(MAX_REPLY_BYTES)
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(|e| Failure::Io(e.to_string()))?;
        if n == 0 {
            return Err(Failure::Io("connection closed by redis".into()));
        }
        parse_reply(&self.line).ok_or_else(|| Failure::Io("unexpected reply from redis".into()))
    }

    async fn expect_ok(&mut self, args: &[&[u8]]) -> Result<(), Failure> {
        self.send(args).await?;
        match self.reply().await? {
            Reply::Ok => Ok(()),
            Reply::Error(e) => Err(Failure::Io(format!("redis refused the connection setup: {e}"))),
            Reply::Null => Err(Failure::Io("unexpected null reply to connection setup".into())),
        }
    }
}

/// Parses one reply line (with its CRLF). `None` for anything else, which
/// leaves the connection in an unknown state.
fn parse_reply(line: &[u8]) -> Option<Reply> {
    let line = line.strip_suffix(b"\r\n")?;
    match line {
        b"+OK" => Some(Reply::Ok),
        b"$-1" | b"_" => Some(Reply::Null),
        [b'-', message @ ..] => Some(Reply::Error(String::from_utf8_lossy(message).into_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn replies() {
        let cases: &[(&[u8], Option<Reply>)] = &[
            (b"+OK\r\n", Some(Reply::Ok)),
            (b"$-1\r\n", Some(Reply::Null)),
            (b"_\r\n", Some(Reply::Null)),
            (b"-ERR wrong\r\n", Some(Reply::Error("ERR wrong".into()))),
            (b"+OK", None),
            (b"+QUEUED\r\n", None),
            (b":1\r\n", None),
            (b"$1\r\n", None),
            (b"\r\n", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_reply(line), *want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    /// A scripted server: reads each command, checks it, answers the next reply.
    async fn fake_redis(script: Vec<(&'static [u8], &'static [u8])>) -> (RedisUrl, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for (want, reply) in script {
                let mut got = vec![0u8; want.len()];
                socket.read_exact(&mut got).await.unwrap();
                assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
                socket.write_all(reply).await.unwrap();
            }
        });
        let target = RedisUrl {
            host: "127.0.0.1".into(),
            port,
            db: Some(3),
        };
        (target, task)
    }

    fn settings(target: RedisUrl) -> RedisSettings {
        RedisSettings {
            target,
            password: Some(Secret::new(b"pw".to_vec())),
            key_prefix: "t:".into(),
            timeout: Duration::from_secs(5),
            pool_size: 1,
        }
    }

    #[tokio::test]
    async fn speaks_resp() {
        let set = |ms: &'static str| -> &'static [u8] {
            match ms {
                "60000" => b"*6\r\n$3\r\nSET\r\n$26\r\nt:010101010101010101010101\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nPX\r\n$5\r\n60000\r\n",
                _ => b"*6\r\n$3\r\nSET\r\n$26\r\nt:020202020202020202020202\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nPX\r\n$1\r\n1\r\n",
            }
        };
        let (target, server) = fake_redis(vec![
            (b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n", b"+OK\r\n"),
            (b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n", b"+OK\r\n"),
            (set("60000"), b"+OK\r\n"),
            (set("60000"), b"$-1\r\n"),
            (set("1"), b"-OOM command not allowed\r\n"),
        ])
        .await;
        let store = RedisReplayStore::new(settings(target));
        let n1 = [1u8; NONCE_LEN];
        let n2 = [2u8; NONCE_LEN];
        assert_eq!(store.first_use(&n1, 1060, 1000).await, Ok(true));
        assert_eq!(store.first_use(&n1, 1060, 1000).await, Ok(false));
        // An expiry already reached still sets a 1 ms entry (never PX 0, an error).
        assert_eq!(
            store.first_use(&n2, 1000, 1000).await,
            Err(ReplayError::Unavailable(
                "redis answered OOM command not allowed".into()
            ))
        );
        server.await.unwrap();
        // The scripted server is gone: reconnecting fails, closed.
        let got = store.first_use(&n1, 1060, 1000).await;
        assert!(matches!(got, Err(ReplayError::Unavailable(_))), "{got:?}");
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
        let store = RedisReplayStore::new(settings(RedisUrl {
            host: "127.0.0.1".into(),
            port,
            db: None,
        }));
        let got = store.first_use(&[0; NONCE_LEN], 2000, 1000).await;
        assert!(
            matches!(&got, Err(ReplayError::Unavailable(e)) if e.starts_with("connect to 127.0.0.1:")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn silent_redis_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and never answers.
        let _server = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let mut s = settings(RedisUrl {
            host: "127.0.0.1".into(),
            port,
            db: None,
        });
        s.password = None;
        s.timeout = Duration::from_millis(100);
        let store = RedisReplayStore::new(s);
        let got = store.first_use(&[0; NONCE_LEN], 2000, 1000).await;
        assert_eq!(got, Err(ReplayError::Unavailable("no answer within 100 ms".into())));
    }
}
