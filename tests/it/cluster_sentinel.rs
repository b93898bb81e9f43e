//! Redis Sentinel (`redis+sentinel://`), with real processes on loopback:
//! a primary, a replica and one sentinel (quorum 1). Two `sealcast serve`
//! nodes take their leases and keep their one-time-ticket replay set through
//! the sentinel; node A publishes, node B is refused; the primary is
//! SIGKILLed, the sentinel promotes the replica, and node A's publish goes on
//! without a break (its renewals reach the new primary before its write
//! deadline), node B is still refused, and the lease on the new primary is
//! node A's. No timing is asserted: every wait is for a condition.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sealcast::auth::ticket::NONCE_LEN;
use sealcast::cluster::redis::RedisTarget;
use sealcast::config::RedisUrl;
use sealcast::keyservice::redis::RedisReplayStore;
use sealcast::keyservice::replay::ReplayStore;

use crate::support::playlist::{self, wait_for};
use crate::support::process::{
    Proc, free_port, parse_running_line, path_str, spawn_sealcast, start_redis, write_private,
};
use crate::support::rtmp::{PublishOutcome, Publisher};
use crate::support::server::{DEMO_KEY, streams_toml};
use crate::support::with_safety_net;

const MASTER: &str = "sealcast-primary";
const LIMIT: Duration = Duration::from_secs(60);

/// A primary, a replica of it, and a sentinel watching them.
struct SentinelSetup {
    primary: Proc,
    primary_port: u16,
    _replica: Proc,
    replica_port: u16,
    _sentinel: Proc,
    sentinel_port: u16,
}

impl SentinelSetup {
    async fn start(dir: &Path) -> Self {
        let (primary_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
        // Their own directory: a replica's full sync writes dump.rdb there,
        // and a server started in a directory holding one loads it.
        let (primary_dir, replica_dir) = (dir.join("primary"), dir.join("replica"));
        for d in [&primary_dir, &replica_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        let primary = start_redis(primary_port, &["--dir", path_str(&primary_dir)]).await;
        let replica = start_redis(
            replica_port,
            &[
                "--dir",
                path_str(&replica_dir),
                "--replicaof",
                "127.0.0.1",
                &primary_port.to_string(),
            ],
        )
        .await;
        // Sentinel rewrites its configuration file: it must be its own.
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndaemonize no\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 10000\n\
                 sentinel parallel-syncs {MASTER} 1\n"
            ),
        )
        .unwrap();
        let sentinel = Proc::spawn(
            "redis-server --sentinel",
            Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(dir.join("sentinel.log")).unwrap()),
        );
        let setup = Self {
            primary,
            primary_port,
            _replica: replica,
            replica_port,
            _sentinel: sentinel,
            sentinel_port,
        };
        // The sentinel knows the replica (it learns it from the primary's INFO).
        wait_for("the sentinel to see the replica", LIMIT, || async {
            let replicas = sentinel_field(sentinel_port, "num-slaves").await?;
            (replicas != "0").then_some(())
        })
        .await;
        setup
    }

    fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{MASTER}", self.sentinel_port)
    }

    /// `command`'s reply from the first primary.
    async fn on_primary(&self, command: &str) -> String {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", self.primary_port))
            .await
            .unwrap();
        roundtrip(&mut socket, command).await.unwrap_or_default()
    }

    /// A write, then `WAIT` for the replica to have it, and with it every
    /// write before it (one replication stream); the `WAIT` reply.
    async fn sync_replica(&self) -> String {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", self.primary_port))
            .await
            .unwrap();
        roundtrip(&mut socket, "SET sealcast:test:fence 1\r\n").await.unwrap();
        roundtrip(&mut socket, "WAIT 1 5000\r\n").await.unwrap_or_default()
    }

    /// The port the sentinel names as the primary now.
    async fn primary_now(&self) -> Option<u16> {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", self.sentinel_port))
            .await
            .ok()?;
        let reply = roundtrip(&mut socket, &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER}\r\n")).await?;
        reply
            .lines()
            .filter(|l| !l.starts_with(['*', '$']))
            .nth(1)?
            .parse()
            .ok()
    }
}

/// One RESP command, the whole (small) reply.
async fn roundtrip(socket: &mut tokio::net::TcpStream, command: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    socket.write_all(command.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 8192];
    let n = socket.read(&mut buf).await.ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A field of `SENTINEL MASTER` (a flat list of names and values).
async fn sentinel_field(port: u16, name: &str) -> Option<String> {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let reply = roundtrip(&mut socket, &format!("SENTINEL MASTER {MASTER}\r\n")).await?;
    let values: Vec<&str> = reply.lines().filter(|l| !l.starts_with(['*', '$'])).collect();
    let at = values.iter().position(|v| *v == name)?;
    values.get(at + 1).map(|v| (*v).to_owned())
}

fn node_config(dir: &Path, data_dir: &Path, url: &str, node: &str) -> PathBuf {
    let config = dir.join(format!("{node}.toml"));
    let toml = format!(
        "[rtmp]\nlisten = \"127.0.0.1:0\"\ntakeover_idle_secs = 0\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[metrics]\nenabled = false\n\
         [storage]\ndata_dir = {:?}\n[hls]\nsegment_duration_secs = 1\nplaylist_window = 60\n\
         [auth.replay]\nbackend = \"redis\"\nurl = \"{url}\"\n\
         [cluster]\nredis_url = \"{url}\"\nnode_id = \"{node}\"\nlease_ttl_secs = 30\n{}",
        path_str(data_dir),
        streams_toml()
    );
    write_private(&config, &toml);
    config
}

fn start_node(dir: &Path, config: &Path, node: &str) -> (Proc, SocketAddr, SocketAddr) {
    let log = dir.join(format!("{node}.log"));
    let (process, lines) = spawn_sealcast(&["serve", "--config", path_str(config)], dir, &log);
    let banner = lines.recv_timeout(Duration::from_secs(60)).expect("the node's banner");
    let (rtmp, http) = parse_running_line(&banner).unwrap_or_else(|| panic!("banner {banner:?}"));
    (process, rtmp, http)
}

async fn refused(rtmp: SocketAddr) -> bool {
    let mut client = Publisher::connect(rtmp, "live").await;
    matches!(client.request_publish(DEMO_KEY).await, PublishOutcome::Refused { .. })
}

/// Segments listed in the node's playlist file, and whether any follows a
/// discontinuity.
fn listed(data_dir: &Path) -> (usize, bool) {
    let text = std::fs::read_to_string(data_dir.join("live/demo/index.m3u8")).unwrap_or_default();
    (playlist::segment_count(&text), text.contains("#EXT-X-DISCONTINUITY"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_tickets_through_sentinel_survive_a_failover() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let mut redis = SentinelSetup::start(dir.path()).await;
        let data_dir = dir.path().join("shared");
        let a = node_config(dir.path(), &data_dir, &redis.url(), "node-a");
        let b = node_config(dir.path(), &data_dir, &redis.url(), "node-b");
        let (mut node_a, rtmp_a, http_a) = start_node(dir.path(), &a, "node-a");
        let (_node_b, rtmp_b, _) = start_node(dir.path(), &b, "node-b");
        let ready = crate::support::http::get(http_a, "/readyz").await;
        assert_eq!(
            ready.status,
            200,
            "the replay store answers through the sentinel: {}",
            ready.text()
        );

        // A test pattern for as long as the test needs.
        let _ffmpeg = crate::support::kms::publish(rtmp_a, DEMO_KEY, 150, true);
        wait_for("node A's segments", LIMIT, || async {
            (listed(&data_dir).0 >= 2).then_some(())
        })
        .await;
        assert!(refused(rtmp_b).await, "node B refuses while node A holds the lease");
        let lease_before = redis.on_primary("GET sealcast:lease:live/demo\r\n").await;
        assert!(
            lease_before.contains("node-a "),
            "the lease is node A's, on the primary: {lease_before}"
        );

        // A ticket nonce spent before the failover.
        let target = RedisTarget {
            url: RedisUrl::parse(&redis.url()).unwrap(),
            username: None,
            password: None,
            tls_ca_file: None,
            timeout: Duration::from_secs(2),
        };
        let store = RedisReplayStore::new(target, "t:".into());
        let now = sealcast::clock::now_unix_secs();
        assert_eq!(store.first_use(&[1u8; NONCE_LEN], now + 600, now).await, Ok(true));

        // Everything written so far is on the replica (Redis replicates
        // asynchronously: see docs/cluster.md for what a failover can lose).
        assert_eq!(redis.sync_replica().await.trim(), ":1", "the replica acknowledged");
        // The primary dies; the sentinel promotes the replica.
        redis.primary.kill();
        let promoted = redis.replica_port;
        wait_for("the sentinel to promote the replica", LIMIT, || async {
            (redis.primary_now().await == Some(promoted)).then_some(())
        })
        .await;

        // Node A's publish goes on, on the new primary: more segments, no
        // discontinuity (no stop, no new publish), the lease is A's there.
        let (before, _) = listed(&data_dir);
        let (after, broken) = wait_for("node A's publish to go on", LIMIT, || async {
            let (n, broken) = listed(&data_dir);
            (n >= before + 5 || broken).then_some((n, broken))
        })
        .await;
        assert!(!broken && after >= before + 5, "the publish continued unbroken");
        assert!(node_a.try_status().is_none(), "node A runs");
        // Renewed on the new primary: node A's value, with a newer time.
        let lease = wait_for("a renewal on the new primary", LIMIT, || async {
            let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", promoted)).await.ok()?;
            let reply = roundtrip(&mut socket, "GET sealcast:lease:live/demo\r\n").await?;
            (reply != lease_before).then_some(reply)
        })
        .await;
        assert!(lease.contains("node-a "), "{lease}");
        assert!(refused(rtmp_b).await, "node B still refuses after the failover");
        let log = std::fs::read_to_string(dir.path().join("node-a.log")).unwrap();
        assert!(!log.contains("publish lease not renewed in time"), "{log}");
        assert!(!log.contains("taken by another publisher"), "{log}");

        // The spent nonce is still spent on the new primary; a new one is not.
        let now = sealcast::clock::now_unix_secs();
        let again = wait_for("the replay store on the new primary", LIMIT, || async {
            store.first_use(&[1u8; NONCE_LEN], now + 600, now).await.ok()
        })
        .await;
        assert!(!again, "a nonce spent before the failover is refused after it");
        assert_eq!(store.first_use(&[2u8; NONCE_LEN], now + 600, now).await, Ok(true));
    })
    .await;
}
