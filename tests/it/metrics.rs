//! `/metrics`: Prometheus's own `promtool check metrics` accepts it, viewers
//! are counted on a moved clock (no sleeping), and the counters agree with
//! what the test did: key requests by answer, KMS decrypts, cache hits, the
//! bytes the publisher sent.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use sealcast::auth::{self, Claims};
use sealcast::clock::ManualClock;

use crate::support::http;
use crate::support::playlist::{query_param, until_segments};
use crate::support::rtmp::{Fixture, Publisher};
use crate::support::server::{DEMO_KEY, TestServer};
use crate::support::with_safety_net;

const FIXTURE: &str = "baseline-aac44k.flv";

async fn scrape(addr: SocketAddr) -> String {
    let response = http::get(addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.text()
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// `promtool check metrics` (Debian's `prometheus` package): the format and
/// Prometheus's naming rules (units, `_total`, help text).
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test.sh installs the prometheus package)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused /metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn token_for(server: &TestServer, sub: &str, now: u64) -> String {
    let claims = Claims {
        exp: now + 3600,
        stream: "live/demo".to_owned(),
        sub: Some(sub.to_owned()),
        jti: None,
        recording: None,
    };
    auth::mint(&server.secret, &claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_viewers_keys_and_kms_calls() {
    with_safety_net(async {
        let now = sealcast::clock::now_unix_secs();
        let clock = Arc::new(ManualClock::at_unix_secs(now));
        let server = TestServer::start_custom("[hls]\nsegment_duration_secs = 2\n", |_| {}, Some(clock.clone())).await;

        // Before anything happened: valid, every configured stream at 0 viewers.
        let idle = scrape(server.metrics).await;
        promtool_check(&idle);
        assert_eq!(sample(&idle, "sealcast_viewers{stream=\"live/demo\"}"), 0.0);
        assert_eq!(sample(&idle, "sealcast_streams_live"), 0.0);
        assert_eq!(sample(&idle, "sealcast_segment_memory_bytes"), 0.0);

        let fixture = Fixture::load(FIXTURE);
        let mut publisher = Publisher::publish(server.rtmp, DEMO_KEY).await;
        publisher.send_fixture(&fixture).await;
        let first = token_for(&server, "alice", now);
        let text = until_segments(server.http, &format!("/live/demo/index.m3u8?token={first}"), 3).await;
        let key_uris: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.split("URI=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .map(|uri| uri.split("&token=").next().unwrap().to_owned())
            .collect();
        assert!(key_uris.len() >= 3, "{text}");

        // Three viewers with distinct `sub`: a playlist and every key each.
        let mut keys_fetched = 0u64;
        for sub in ["alice", "bob", "carol"] {
            let token = token_for(&server, sub, now);
            let playlist = http::get(server.http, &format!("/live/demo/index.m3u8?token={token}")).await;
            assert_eq!(playlist.status, 200);
            for uri in &key_uris {
                assert!(query_param(uri, "edk").is_some(), "{uri}");
                let response = http::get(server.http, &format!("{uri}&token={token}")).await;
                assert_eq!(response.status, 200, "{uri}");
                keys_fetched += 1;
            }
        }
        // A segment asked for is kept in the node's segment memory.
        let segment = text.lines().find(|l| l.ends_with(".ts")).unwrap();
        let segment = http::get(server.http, &format!("/live/demo/{segment}?token={first}")).await;
        assert_eq!(segment.status, 200);

        // One key request without a token (401), one with a bad one (403).
        let uri = key_uris.iter().next().unwrap();
        assert_eq!(http::get(server.http, uri).await.status, 401);
        assert_eq!(
            http::get(server.http, &format!("{uri}&token=not-a-token")).await.status,
            403
        );

        let live = scrape(server.metrics).await;
        promtool_check(&live);
        assert_eq!(sample(&live, "sealcast_viewers{stream=\"live/demo\"}"), 3.0);
        assert_eq!(sample(&live, "sealcast_viewers{stream=\"live/other\"}"), 0.0);
        assert_eq!(sample(&live, "sealcast_streams_live"), 1.0);
        assert_eq!(sample(&live, "sealcast_rtmp_connections"), 1.0);
        assert_eq!(
            sample(&live, "sealcast_segment_memory_bytes"),
            segment.body.len() as f64
        );
        assert_eq!(
            sample(&live, "sealcast_key_requests_total{result=\"ok\"}"),
            keys_fetched as f64
        );
        assert_eq!(
            sample(&live, "sealcast_key_requests_total{result=\"unauthorized\"}"),
            1.0
        );
        assert_eq!(sample(&live, "sealcast_key_requests_total{result=\"forbidden\"}"), 1.0);
        // Each distinct key was unwrapped once (the first viewer), then served
        // from the cache (the other two).
        let distinct = key_uris.len() as f64;
        assert_eq!(sample(&live, "sealcast_key_cache_misses_total"), distinct);
        assert_eq!(
            sample(&live, "sealcast_key_cache_hits_total"),
            keys_fetched as f64 - distinct
        );
        assert_eq!(
            sample(&live, "sealcast_kms_requests_total{op=\"decrypt\",result=\"ok\"}"),
            distinct
        );
        assert_eq!(
            sample(&live, "sealcast_kms_request_seconds_count{op=\"decrypt\"}"),
            distinct
        );
        let generated = sample(
            &live,
            "sealcast_kms_requests_total{op=\"generate_data_key\",result=\"ok\"}",
        );
        assert!(
            generated >= distinct,
            "{generated} data keys for {distinct} listed keys"
        );
        let segments = sample(&live, "sealcast_segments_total{stream=\"live/demo\"}");
        assert!(segments >= 3.0, "{live}");
        assert_eq!(sample(&live, "sealcast_segment_publish_seconds_count"), segments);

        publisher.finish().await;
        crate::support::playlist::until_ended(server.http, "/live/demo/index.m3u8").await;

        // The viewers stop; 30 s later (on the key service's clock) they are gone.
        clock.advance_secs(29);
        assert_eq!(
            sample(&scrape(server.metrics).await, "sealcast_viewers{stream=\"live/demo\"}"),
            3.0
        );
        clock.advance_secs(1);
        let after = scrape(server.metrics).await;
        promtool_check(&after);
        assert_eq!(sample(&after, "sealcast_viewers{stream=\"live/demo\"}"), 0.0);
        assert_eq!(sample(&after, "sealcast_streams_live"), 0.0);
        assert_eq!(sample(&after, "sealcast_rtmp_connections"), 0.0);
        // An ended playlist holds no segment memory.
        assert_eq!(sample(&after, "sealcast_segment_memory_bytes"), 0.0);
        // Every audio and video byte the publisher sent.
        let sent: usize = fixture.tags.iter().map(|tag| tag.body.len()).sum();
        assert_eq!(
            sample(&after, "sealcast_ingest_bytes_total{stream=\"live/demo\"}"),
            sent as f64
        );
        server.stop().await;
    })
    .await;
}

/// `[metrics] enabled = false`: the server closes the metrics listener it
/// was given, so nothing answers there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off() {
    with_safety_net(async {
        let server = TestServer::start("[metrics]\nenabled = false\n").await;
        // The server is up (it answers playback) before the check below.
        assert_eq!(http::get(server.http, "/healthz").await.status, 200);
        let connected = tokio::net::TcpStream::connect(server.metrics).await;
        assert!(connected.is_err(), "a disabled /metrics listener accepted a connection");
        server.stop().await;
    })
    .await;
}
