//! Publish leases and takeover: a quiet publisher (its connection open and
//! silent, as when an encoder's network drops) is taken over by a reconnect
//! with the same key, on one node and across two `sealcast serve` nodes
//! sharing one real redis-server and one segment directory; a still-sending
//! publisher is not; after a node is SIGKILLed an encoder's push to the other
//! node takes the lease once it expires. The replay store through the
//! `redis` crate with an ACL user and password. No timing is asserted: every
//! wait is for a condition, with a generous bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sealcast::auth::ticket::NONCE_LEN;
use sealcast::cluster::redis::RedisTarget;
use sealcast::config::RedisUrl;
use sealcast::keyservice::redis::RedisReplayStore;
use sealcast::keyservice::replay::{ReplayError, ReplayStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::playlist::{self, POLL_LIMIT, wait_for};
use crate::support::process::{
    Proc, ffmpeg_publish, free_port, parse_running_line, path_str, spawn_sealcast, start_redis, write_private,
};
use crate::support::rtmp::{Fixture, PublishOutcome, Publisher};
use crate::support::server::{DEMO_KEY, TestServer, streams_toml};
use crate::support::with_safety_net;

const FIXTURE: &str = "high-bframes-aac48k.flv";

/// The stream's playlist file in a data directory, once it satisfies `done`.
async fn stored_playlist(data_dir: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let path = data_dir.join("live/demo/index.m3u8");
    let deadline = std::time::Instant::now() + POLL_LIMIT;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; last:\n{text}"
        );
        tokio::time::sleep(playlist::POLL_EVERY).await;
    }
}

/// (last media sequence number listed, publish ids of the listed segments).
fn last_seq_and_publishes(text: &str) -> (u64, Vec<String>) {
    let parsed = playlist::parse(text);
    let last = parsed.media_sequence + parsed.segments.len() as u64 - 1;
    let mut ids: Vec<String> = text
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .filter_map(|l| l.split('-').next().map(str::to_owned))
        .collect();
    ids.dedup();
    (last, ids)
}

fn discontinuities(text: &str) -> usize {
    text.lines().filter(|l| l.trim() == "#EXT-X-DISCONTINUITY").count()
}

/// A publish with DEMO_KEY, retried until the server admits it.
async fn publish_when_admitted(rtmp: SocketAddr) -> Publisher {
    wait_for("the new publish to be admitted", POLL_LIMIT, || async move {
        let mut client = Publisher::connect(rtmp, "live").await;
        (client.request_publish(DEMO_KEY).await == PublishOutcome::Accepted).then_some(client)
    })
    .await
}

async fn refused(rtmp: SocketAddr) -> bool {
    let mut client = Publisher::connect(rtmp, "live").await;
    matches!(client.request_publish(DEMO_KEY).await, PublishOutcome::Refused { .. })
}

/// Checks the takeover left one playlist: sequence numbers only grew, the
/// new publish's segments follow a discontinuity.
fn assert_continued(before: &str, after: &str) {
    let (last_before, ids_before) = last_seq_and_publishes(before);
    let (last_after, ids_after) = last_seq_and_publishes(after);
    assert!(
        last_after > last_before,
        "sequence numbers grow:\n{before}\n---\n{after}"
    );
    let new_id = ids_after.last().expect("segments listed");
    assert!(
        !ids_before.contains(new_id),
        "a new publish wrote the last segments:\n{after}"
    );
    let parsed_before = playlist::parse(before);
    let parsed_after = playlist::parse(after);
    assert!(parsed_after.media_sequence >= parsed_before.media_sequence);
    assert!(
        discontinuities(after) + (parsed_after.discontinuity_sequence - parsed_before.discontinuity_sequence) as usize
            > discontinuities(before),
        "a discontinuity marks the takeover:\n{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_node_reconnect_takes_over_a_quiet_publisher_not_a_sending_one() {
    with_safety_net(async {
        let server = TestServer::start_with_config("[hls]\nsegment_duration_secs = 1\nplaylist_window = 30\n", |c| {
            c.rtmp.takeover_idle_secs = 2;
        })
        .await;
        let data_dir = server.data_dir();
        let fixture = Fixture::load(FIXTURE);
        let (first, _) = fixture.split_at_ms(4000);

        let mut old = Publisher::publish(server.rtmp, DEMO_KEY).await;
        old.send_metadata(&fixture.metadata).await;
        // Still sending (a tag every few ms): a second publisher is refused.
        let (half, second_half) = first.split_at(first.len() / 2);
        old.send_tags(half).await;
        assert!(refused(server.rtmp).await, "a sending publisher is protected");
        old.send_tags(second_half).await;
        let before = stored_playlist(&data_dir, "the first publish's segments", |t| {
            playlist::segment_count(t) >= 2
        })
        .await;

        // Now quiet, its connection open: a reconnect takes over.
        let mut new = publish_when_admitted(server.rtmp).await;
        old.wait_closed().await;
        new.send_metadata(&fixture.metadata).await;
        // A reconnecting encoder starts over: sequence headers, keyframe.
        new.send_tags(&fixture.tags).await;
        new.finish().await;
        let after = stored_playlist(&data_dir, "the new publish's segments", |t| {
            let (_, ids) = last_seq_and_publishes(t);
            ids.len() >= 2 && playlist::ended(t)
        })
        .await;
        assert_continued(&before, &after);
        server.stop().await;
    })
    .await;
}

/// One `sealcast serve` node of a two-node cluster.
struct Node {
    process: Proc,
    rtmp: SocketAddr,
}

fn node_config(dir: &Path, data_dir: &Path, redis_port: u16, node: &str, takeover_idle_secs: u64) -> PathBuf {
    let config = dir.join(format!("{node}.toml"));
    let toml = format!(
        "[rtmp]\nlisten = \"127.0.0.1:0\"\ntakeover_idle_secs = {takeover_idle_secs}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[metrics]\nenabled = false\n\
         [storage]\ndata_dir = {:?}\n[hls]\nsegment_duration_secs = 1\nplaylist_window = 30\n\
         [cluster]\nredis_url = \"redis://127.0.0.1:{redis_port}\"\nnode_id = \"{node}\"\nlease_ttl_secs = 5\n{}",
        path_str(data_dir),
        streams_toml()
    );
    write_private(&config, &toml);
    config
}

fn start_node(dir: &Path, config: &Path, node: &str) -> Node {
    let log = dir.join(format!("{node}.log"));
    let (process, lines) = spawn_sealcast(&["serve", "--config", path_str(config)], dir, &log);
    let banner = lines.recv_timeout(Duration::from_secs(60)).expect("the node's banner");
    let (rtmp, _) = parse_running_line(&banner).unwrap_or_else(|| panic!("banner {banner:?}"));
    Node { process, rtmp }
}

/// Two nodes sharing a redis-server and a data directory.
async fn cluster(takeover_idle_secs: u64) -> (tempfile::TempDir, Proc, PathBuf, Node, Node) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("shared");
    let redis_port = free_port();
    let redis = start_redis(redis_port, &[]).await;
    let a = node_config(dir.path(), &data_dir, redis_port, "node-a", takeover_idle_secs);
    let b = node_config(dir.path(), &data_dir, redis_port, "node-b", takeover_idle_secs);
    // A first: it generates the shared keyring and token secret.
    let node_a = start_node(dir.path(), &a, "node-a");
    let node_b = start_node(dir.path(), &b, "node-b");
    (dir, redis, data_dir, node_a, node_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_refuses_a_second_publisher_and_fails_over_after_kill_9() {
    with_safety_net(async {
        // No takeover of quiet publishers: only the lease's expiry frees it.
        let (dir, _redis, data_dir, mut node_a, node_b) = cluster(0).await;
        let url = format!("rtmp://{}/live/{DEMO_KEY}", node_a.rtmp);
        let _ffmpeg = ffmpeg_publish("ffmpeg to node A", FIXTURE, &url, true, &dir.path().join("ff.log"));
        let before = stored_playlist(&data_dir, "node A's segments", |t| playlist::segment_count(t) >= 2).await;
        assert!(
            refused(node_b.rtmp).await,
            "node B refuses while node A holds the lease"
        );

        node_a.process.kill();
        let before = std::fs::read_to_string(data_dir.join("live/demo/index.m3u8")).unwrap_or(before);
        let fixture = Fixture::load(FIXTURE);
        let mut new = publish_when_admitted(node_b.rtmp).await;
        new.send_metadata(&fixture.metadata).await;
        new.send_tags(&fixture.tags).await;
        new.finish().await;
        let after = stored_playlist(&data_dir, "node B continuing the playlist", |t| {
            let (_, ids) = last_seq_and_publishes(t);
            ids.len() >= 2 && playlist::segment_count(t) > playlist::segment_count(&before)
        })
        .await;
        assert_continued(&before, &after);
    })
    .await;
}

/// A TCP relay between an encoder and the server that, once frozen, stops
/// forwarding without closing anything: the encoder's network silently
/// dropped. It notes when the server closes its side.
struct FreezingRelay {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    server_closed: Arc<AtomicBool>,
}

impl FreezingRelay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let server_closed = Arc::new(AtomicBool::new(false));
        let (f, closed) = (Arc::clone(&frozen), Arc::clone(&server_closed));
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            let f2 = Arc::clone(&f);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                loop {
                    if f2.load(Ordering::SeqCst) {
                        // Frozen: hold both sockets open, forward nothing.
                        std::future::pending::<()>().await;
                    }
                    match client_rx.read(&mut buf).await {
                        Ok(n) if n > 0 && !f2.load(Ordering::SeqCst) => {
                            if server_tx.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                std::future::pending::<()>().await;
            });
            let mut buf = vec![0u8; 16384];
            loop {
                match server_rx.read(&mut buf).await {
                    Ok(n) if n > 0 => {
                        if !f.load(Ordering::SeqCst) {
                            let _ = client_tx.write_all(&buf[..n]).await;
                        }
                    }
                    _ => break,
                }
            }
            closed.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        });
        Self {
            addr,
            frozen,
            server_closed,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reconnect_takes_over_a_frozen_publisher_on_another_node() {
    with_safety_net(async {
        let (dir, _redis, data_dir, node_a, node_b) = cluster(1).await;
        let fixture = Fixture::load(FIXTURE);
        // ffmpeg pushes to node A through the relay, which then freezes.
        let relay = FreezingRelay::start(node_a.rtmp).await;
        let url = format!("rtmp://{}/live/{DEMO_KEY}", relay.addr);
        let _ffmpeg = ffmpeg_publish("ffmpeg via relay", FIXTURE, &url, true, &dir.path().join("ff.log"));
        let before = stored_playlist(&data_dir, "node A's segments", |t| playlist::segment_count(t) >= 2).await;
        relay.frozen.store(true, Ordering::SeqCst);

        let mut new = publish_when_admitted(node_b.rtmp).await;
        // Node A learns at its next renewal and closes the old connection.
        wait_for("node A to close the frozen connection", POLL_LIMIT, || async {
            relay.server_closed.load(Ordering::SeqCst).then_some(())
        })
        .await;
        new.send_metadata(&fixture.metadata).await;
        // A reconnecting encoder starts over: sequence headers, keyframe.
        new.send_tags(&fixture.tags).await;
        new.finish().await;
        let after = stored_playlist(&data_dir, "node B continuing the playlist", |t| {
            let (_, ids) = last_seq_and_publishes(t);
            ids.len() >= 2 && playlist::ended(t)
        })
        .await;
        assert_continued(&before, &after);
        drop(node_a);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_stops_the_running_publish_and_refuses_new_ones() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("shared");
        let redis_port = free_port();
        let redis = start_redis(redis_port, &[]).await;
        let config = node_config(dir.path(), &data_dir, redis_port, "node-a", 0);
        let node = start_node(dir.path(), &config, "node-a");
        let fixture = Fixture::load(FIXTURE);
        let mut publisher = Publisher::publish(node.rtmp, DEMO_KEY).await;
        publisher.send_metadata(&fixture.metadata).await;
        publisher.send_tags(&fixture.tags[..fixture.tags.len() / 2]).await;
        stored_playlist(&data_dir, "the publish's segments", |t| playlist::segment_count(t) >= 2).await;

        // Redis gone: the holder cannot renew, stops before its lease could
        // expire and closes the encoder's connection; new publishes are
        // refused while Redis cannot answer.
        drop(redis);
        publisher.wait_closed().await;
        assert!(refused(node.rtmp).await, "no publish without the lease");
        let log = std::fs::read_to_string(dir.path().join("node-a.log")).unwrap();
        assert!(log.contains("publish lease not renewed in time"), "{log}");

        // Redis back: publishing works again.
        let _redis = start_redis(redis_port, &[]).await;
        let mut again = publish_when_admitted(node.rtmp).await;
        again.send_metadata(&fixture.metadata).await;
        again.send_tags(&fixture.tags).await;
        again.finish().await;
        drop(node);
    })
    .await;
}

fn acl_target(port: u16, user: &str, password: &str) -> RedisTarget {
    RedisTarget {
        url: RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap(),
        username: Some(user.into()),
        password: Some(sealcast::auth::Secret::new(password.as_bytes().to_vec())),
        tls_ca_file: None,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_store_with_an_acl_user() {
    with_safety_net(async {
        let port = free_port();
        let _redis = start_redis(
            port,
            &[
                "--user",
                "default",
                "off",
                "--user",
                "tickets",
                "on",
                ">s3cret-pw",
                "~*",
                "+@all",
            ],
        )
        .await;
        let store = RedisReplayStore::new(acl_target(port, "tickets", "s3cret-pw"), "t:".into());
        let nonce = [7u8; NONCE_LEN];
        let now = sealcast::clock::now_unix_secs();
        assert_eq!(store.check().await, Ok(()));
        assert_eq!(store.first_use(&nonce, now + 60, now).await, Ok(true));
        assert_eq!(store.first_use(&nonce, now + 60, now).await, Ok(false));
        assert_eq!(store.first_use(&[8u8; NONCE_LEN], now + 60, now).await, Ok(true));

        let wrong = RedisReplayStore::new(acl_target(port, "tickets", "wrong"), "t:".into());
        let got = wrong.first_use(&[9u8; NONCE_LEN], now + 60, now).await;
        assert!(matches!(got, Err(ReplayError::Unavailable(_))), "{got:?}");
    })
    .await;
}

/// `openssl` commands making a CA and a server certificate for 127.0.0.1.
fn make_tls_files(dir: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test ca",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost"],
    ]
    .concat());
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_store_over_rediss_with_a_private_ca() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        make_tls_files(dir.path());
        let port = free_port();
        let file = |name: &str| path_str(&dir.path().join(name)).to_owned();
        let _redis = Proc::spawn(
            "redis-server (TLS)",
            std::process::Command::new("redis-server")
                .args(["--port", "0", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .args(["--tls-cert-file", &file("srv.pem"), "--tls-key-file", &file("srv.key")])
                .args(["--tls-ca-cert-file", &file("ca.pem"), "--requirepass", "tls-pw"])
                .stdout(std::process::Stdio::null()),
        );
        let target = RedisTarget {
            url: RedisUrl::parse(&format!("rediss://127.0.0.1:{port}")).unwrap(),
            username: None,
            password: Some(sealcast::auth::Secret::new(b"tls-pw".to_vec())),
            tls_ca_file: Some(dir.path().join("ca.pem")),
            timeout: Duration::from_secs(5),
        };
        let store = RedisReplayStore::new(target.clone(), "t:".into());
        wait_for("redis over TLS to answer", POLL_LIMIT, || async {
            store.check().await.ok()
        })
        .await;
        let now = sealcast::clock::now_unix_secs();
        let nonce = [3u8; NONCE_LEN];
        assert_eq!(store.first_use(&nonce, now + 60, now).await, Ok(true));
        assert_eq!(store.first_use(&nonce, now + 60, now).await, Ok(false));

        // Without the private CA the server's certificate is not trusted.
        let untrusted = RedisReplayStore::new(
            RedisTarget {
                tls_ca_file: None,
                ..target
            },
            "t:".into(),
        );
        let got = untrusted.first_use(&[4u8; NONCE_LEN], now + 60, now).await;
        assert!(matches!(got, Err(ReplayError::Unavailable(_))), "{got:?}");
    })
    .await;
}

/// The lease scripts against a real redis-server, step by step: acquire
/// when free, refusal while the holder is recent, takeover once it is quiet
/// longer than the threshold, renew and release only by the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_scripts_against_redis() {
    use sealcast::cluster::lease::Policy;
    use sealcast::cluster::redis::Redis;
    use sealcast::cluster::{Acquired, Leases};
    with_safety_net(async {
        let port = free_port();
        let _redis = start_redis(port, &[]).await;
        let node = |id: &str| {
            let target = RedisTarget {
                url: RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap(),
                username: None,
                password: None,
                tls_ca_file: None,
                timeout: Duration::from_secs(5),
            };
            let policy = Policy {
                ttl: Duration::from_secs(30),
                takeover_idle: Some(Duration::from_secs(5)),
            };
            Leases::new(Redis::new(target), id.into(), "lease:".into(), policy)
        };
        let (a, b) = (node("a"), node("b"));
        let (ha, hb) = (a.holder("p1"), b.holder("p2"));
        let granted = |got: &Acquired| matches!(got, Acquired::Granted { .. });

        assert!(granted(&a.acquire("live/demo", &ha, true).await.unwrap()));
        // Held and recent: refused, with or without takeover.
        assert!(!granted(&b.acquire("live/demo", &hb, true).await.unwrap()));
        assert!(!granted(&b.acquire("live/demo", &hb, false).await.unwrap()));
        // Only the holder renews or releases.
        assert!(a.renew("live/demo", &ha, 0).await.unwrap());
        assert!(!b.renew("live/demo", &hb, 0).await.unwrap());
        assert!(!b.release("live/demo", &hb).await.unwrap());
        // The holder reports its last media 6 s ago: quiet past 5 s, so a
        // contender with takeover takes it; without takeover it may not.
        assert!(a.renew("live/demo", &ha, 6000).await.unwrap());
        assert!(!granted(&b.acquire("live/demo", &hb, false).await.unwrap()));
        match b.acquire("live/demo", &hb, true).await.unwrap() {
            Acquired::Granted { previous, .. } => assert_eq!(previous.unwrap().holder, ha),
            held => panic!("not taken over: {held:?}"),
        }
        // The old holder learns at its next renewal; its release is a no-op.
        assert!(!a.renew("live/demo", &ha, 0).await.unwrap());
        assert!(!a.release("live/demo", &ha).await.unwrap());
        assert!(b.release("live/demo", &hb).await.unwrap());
        assert!(granted(&a.acquire("live/demo", &ha, false).await.unwrap()));
        // Another stream is another lease.
        assert!(granted(&b.acquire("live/other", &hb, false).await.unwrap()));
    })
    .await;
}
