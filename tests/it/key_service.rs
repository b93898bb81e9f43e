//! The key service end to end: one-time key tickets with ffmpeg as the
//! player, replayed / foreign / expired tickets (expiry by an injected
//! clock), the key cache under 100 concurrent requests, and two
//! `sealcast keyserver` processes sharing one real redis-server.

use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sealcast::clock::ManualClock;
use sealcast::crypto::{DataKey, decrypt_segment};
use sealcast::keyservice::Clock;

use crate::support::http;
use crate::support::playlist::{self, KeyedSegment, distinct_keys, query_param};
use crate::support::process::{Proc, free_port, redis_command, start_keyserver, start_redis};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer};
use crate::support::{count_frames, fixture, has_ts_sync, with_safety_net};

const FIXTURE: &str = "high-bframes-aac48k.flv";
/// Bound for a child process to finish.
const CHILD_LIMIT: Duration = Duration::from_secs(120);
/// 2 s segments of a 10 s fixture with a keyframe every 2 s: 5 segments,
/// and with one key per segment, 5 keys (4 rotations).
const SHORT_SEGMENTS: &str = "[hls]\nsegment_duration_secs = 2\n[encryption]\nsegments_per_key = 1\n";

/// A clock stopped at the time it was made, which the test moves; and that start.
fn test_clock() -> (Arc<ManualClock>, u64) {
    let start = sealcast::clock::now_unix_secs();
    (Arc::new(ManualClock::at_unix_secs(start)), start)
}

/// `ffmpeg` pushing the fixture to `rtmp://addr/live/<key>`, at real-time
/// speed or as fast as it can.
fn push(rtmp: SocketAddr, key: &str, realtime: bool) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.arg("-i")
        .arg(fixture(FIXTURE))
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/{key}"))
        .stdin(Stdio::null());
    Proc::spawn("ffmpeg publisher", &mut cmd)
}

/// Waits (off the runtime's threads) for a child to exit.
async fn wait(mut process: Proc) -> ExitStatus {
    tokio::task::spawn_blocking(move || process.wait(CHILD_LIMIT))
        .await
        .unwrap()
}

/// The playlist at `path_and_query` once it lists a segment (or, with
/// `ended`, once it has `#EXT-X-ENDLIST`).
async fn wait_for_playlist(http: SocketAddr, path_and_query: &str, ended: bool) -> String {
    if ended {
        playlist::until_ended(http, path_and_query).await
    } else {
        playlist::until_listed(http, path_and_query).await
    }
}

/// The value of `name` in a key URI's query.
fn param<'a>(uri: &'a str, name: &str) -> &'a str {
    query_param(uri, name).unwrap_or_else(|| panic!("{uri} has no {name}"))
}

/// Fetches a segment and decrypts it with `key`: MPEG-TS comes out.
async fn assert_key_decrypts(http: SocketAddr, stream_dir: &str, key: &[u8], key_ref: &KeyedSegment) {
    let segment = http::get(http, &format!("{stream_dir}/{}", key_ref.segment)).await;
    assert_eq!(segment.status, 200);
    assert!(!has_ts_sync(&segment.body), "segments are stored encrypted");
    let data_key = DataKey::from_bytes(key.try_into().expect("a 16-byte key"));
    let mut body = segment.body;
    decrypt_segment(&data_key, key_ref.iv, &mut body).expect("the key decrypts the segment");
    assert!(has_ts_sync(&body), "decrypted segment is MPEG-TS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_live_with_one_time_tickets_across_key_rotations() {
    with_safety_net(async {
        let server = TestServer::start_with_config(SHORT_SEGMENTS, |c| c.auth.one_time_key_tickets = true).await;
        let token = server.token("live/demo", 3600);
        let url = format!("http://{}/live/demo/index.m3u8?token={token}", server.http);
        let publisher = push(server.rtmp, DEMO_KEY, true);
        // Start reading as soon as the playlist exists.
        let first = wait_for_playlist(server.http, &format!("/live/demo/index.m3u8?token={token}"), false).await;
        assert!(first.contains("&ticket="), "{first}");
        assert!(
            !first.contains("token="),
            "the token is never written into key URIs: {first}"
        );

        let out = server.dir.path().join("played.ts");
        let player = Proc::spawn(
            "ffmpeg player",
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-live_start_index", "0", "-i", &url])
                .args(["-c", "copy", "-f", "mpegts"])
                .arg(&out)
                .stdin(Stdio::null()),
        );
        assert!(wait(publisher).await.success());
        assert!(wait(player).await.success(), "ffmpeg played to the end of the playlist");

        let want = count_frames(&fixture(FIXTURE));
        let got = count_frames(&out);
        assert!(want.video > 0 && want.audio > 0);
        assert!(got.video * 100 >= want.video * 95, "video {got:?} of {want:?}");
        assert!(got.audio * 100 >= want.audio * 95, "audio {got:?} of {want:?}");

        let last = wait_for_playlist(server.http, &format!("/live/demo/index.m3u8?token={token}"), true).await;
        let keys = distinct_keys(&last);
        assert!(keys.len() >= 4, "at least 3 key rotations: {last}");
        let stats = server.keys.stats();
        // Every key the player fetched came with a ticket, once.
        assert!(stats.tickets_accepted >= keys.len() as u64, "{stats:?}");
        assert_eq!(stats.token_key_requests, 0, "{stats:?}");
        assert_eq!((stats.tickets_replayed, stats.tickets_refused), (0, 0), "{stats:?}");
        assert!(stats.cache.kms_calls >= keys.len() as u64, "{stats:?}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_foreign_and_expired_tickets_are_refused() {
    with_safety_net(async {
        let (clock, start) = test_clock();
        let server = TestServer::start_custom(
            SHORT_SEGMENTS,
            |c| c.auth.one_time_key_tickets = true,
            Some(Arc::clone(&clock) as Clock),
        )
        .await;
        let token = server.token("*", 3600);
        assert!(wait(push(server.rtmp, DEMO_KEY, false)).await.success());
        let playlist_url = format!("/live/demo/index.m3u8?token={token}");
        let keys = distinct_keys(&wait_for_playlist(server.http, &playlist_url, true).await);
        assert!(keys.len() >= 4, "{keys:?}");

        // First use: the key, which decrypts its segment. Second use: 403.
        let first = http::get(server.http, &keys[0].uri).await;
        assert_eq!(first.status, 200);
        assert_eq!(first.header("cache-control"), Some("no-store"));
        assert_key_decrypts(server.http, "/live/demo", &first.body, &keys[0]).await;
        let again = http::get(server.http, &keys[0].uri).await;
        assert_eq!((again.status, again.text().as_str()), (403, "forbidden\n"));

        // A ticket presented for another key id, or another stream: 403,
        // and the refused ticket is not spent by it.
        let ticket_1 = param(&keys[1].uri, "ticket");
        let for_other_key = format!(
            "/keys/live/demo/{}?edk={}&ticket={ticket_1}",
            keys[2].key_id(),
            param(&keys[2].uri, "edk")
        );
        assert_eq!(http::get(server.http, &for_other_key).await.status, 403);
        let for_other_stream = keys[1].uri.replace("/keys/live/demo/", "/keys/live/other/");
        assert_eq!(http::get(server.http, &for_other_stream).await.status, 403);
        assert_eq!(http::get(server.http, &keys[1].uri).await.status, 200);

        // Expiry by the injected clock: tickets last 60 s.
        clock.set_unix_secs(start + 60);
        assert_eq!(http::get(server.http, &keys[2].uri).await.status, 403);
        clock.set_unix_secs(start + 59);
        assert_eq!(http::get(server.http, &keys[2].uri).await.status, 200);

        // A playlist fetched later hands out fresh tickets for the same keys.
        let fresh = distinct_keys(&http::get(server.http, &playlist_url).await.text());
        assert_eq!(fresh[0].key_id(), keys[0].key_id());
        assert_ne!(fresh[0].uri, keys[0].uri);
        let refetched = http::get(server.http, &fresh[0].uri).await;
        assert_eq!((refetched.status, &refetched.body), (200, &first.body));

        // A playback token still works on the key endpoint (query or
        // Bearer): a token holder can get tickets anyway.
        let plain = format!(
            "/keys/live/demo/{}?edk={}",
            keys[3].key_id(),
            param(&keys[3].uri, "edk")
        );
        let bearer = format!("Bearer {token}");
        let by_header = http::get_with(server.http, &plain, &[("Authorization", &bearer)]).await;
        assert_eq!(by_header.status, 200);
        assert_eq!(
            http::get(server.http, &format!("{plain}&token={token}")).await.status,
            200
        );
        assert_eq!(http::get(server.http, &plain).await.status, 401);
        // A bad ticket is not rescued by a good token.
        let bad = format!("{plain}&token={token}&ticket={ticket_1}");
        assert_eq!(
            http::get_with(server.http, &bad, &[("Authorization", &bearer)])
                .await
                .status,
            403
        );

        let stats = server.keys.stats();
        assert_eq!(stats.tickets_accepted, 4, "{stats:?}");
        assert_eq!(stats.tickets_replayed, 1, "{stats:?}");
        assert_eq!(stats.tickets_refused, 4, "{stats:?}");
        assert_eq!(stats.token_key_requests, 2, "{stats:?}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_requests_for_one_key_make_one_kms_call() {
    with_safety_net(async {
        let server = TestServer::start(SHORT_SEGMENTS).await;
        let token = server.token("live/demo", 3600);
        assert!(wait(push(server.rtmp, DEMO_KEY, false)).await.success());
        let playlist = wait_for_playlist(server.http, &format!("/live/demo/index.m3u8?token={token}"), true).await;
        let key = distinct_keys(&playlist).remove(0);
        assert!(key.uri.contains("&token="), "{}", key.uri);
        assert_eq!(server.keys.stats().cache.kms_calls, 0);

        let requests: Vec<_> = (0..100)
            .map(|_| {
                let (addr, uri) = (server.http, key.uri.clone());
                tokio::spawn(async move { http::get(addr, &uri).await })
            })
            .collect();
        let mut bodies = Vec::new();
        for request in requests {
            let response = request.await.unwrap();
            assert_eq!(response.status, 200);
            bodies.push(response.body);
        }
        assert!(bodies.iter().all(|b| b.len() == 16 && *b == bodies[0]));
        assert_key_decrypts(server.http, "/live/demo", &bodies[0], &key).await;

        let cache = server.keys.stats().cache;
        assert_eq!(cache.kms_calls, 1, "{cache:?}");
        assert_eq!(cache.hits + cache.misses, 100, "{cache:?}");
        assert_eq!(cache.entries, 1, "{cache:?}");
        server.stop().await;
    })
    .await;
}

// --- key servers sharing Redis -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyservers_sharing_redis_refuse_each_others_used_tickets() {
    with_safety_net(async {
        let shared = tempfile::tempdir().unwrap();
        let keyring = shared.path().join("keyring.json");
        let with_keyring = format!("{SHORT_SEGMENTS}[kms]\nkeyring = {:?}\n", keyring.display().to_string());
        // Two ingest servers ("sealcast serve") with one keyring; their token
        // secrets are the same (TestServer's).
        let ingest_a = TestServer::start_with_config(&with_keyring, |c| c.auth.one_time_key_tickets = true).await;
        let ingest_b = TestServer::start_with_config(&with_keyring, |c| c.auth.one_time_key_tickets = true).await;
        assert!(wait(push(ingest_a.rtmp, DEMO_KEY, false)).await.success());
        assert!(wait(push(ingest_b.rtmp, OTHER_KEY, false)).await.success());
        let token = ingest_a.token("*", 3600);

        let redis_port = free_port();
        let mut redis = start_redis(redis_port, &[]).await;
        let secret_file = shared.path().join("token_secret");
        std::fs::write(&secret_file, ingest_a.secret.expose()).unwrap();
        crate::support::process::make_private(&secret_file);
        let keyserver_data = shared.path().join("keyserver-data");
        let config = shared.path().join("keyserver.toml");
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = {:?}\n[kms]\nkeyring = {:?}\n\
                 [auth]\ntoken_secret_file = {:?}\n[auth.replay]\nbackend = \"redis\"\n\
                 url = \"redis://127.0.0.1:{redis_port}\"\ntimeout_ms = 1000\n",
                keyserver_data.display().to_string(),
                keyring.display().to_string(),
                secret_file.display().to_string(),
            ),
        )
        .unwrap();
        let (_ks1, ks1) = start_keyserver(&config, &shared.path().join("ks1.log"));
        let (_ks2, ks2) = start_keyserver(&config, &shared.path().join("ks2.log"));
        assert_eq!(http::get(ks1, "/healthz").await.text(), "ok\n");
        // Only keys and health: no playlists, no segments.
        assert_eq!(http::get(ks1, "/live/demo/index.m3u8").await.status, 404);

        let a_keys = distinct_keys(
            &wait_for_playlist(ingest_a.http, &format!("/live/demo/index.m3u8?token={token}"), true).await,
        );
        let b_keys = distinct_keys(
            &wait_for_playlist(ingest_b.http, &format!("/live/other/index.m3u8?token={token}"), true).await,
        );
        // (ticketed key URI, key server that uses it first, the other one)
        let cases = [
            (&a_keys[0], ingest_a.http, "/live/demo", ks1, ks2),
            (&a_keys[1], ingest_a.http, "/live/demo", ks2, ks1),
            (&b_keys[0], ingest_b.http, "/live/other", ks2, ks1),
            (&b_keys[1], ingest_b.http, "/live/other", ks1, ks2),
        ];
        for (key, ingest, dir, first, second) in cases {
            let got = http::get(first, &key.uri).await;
            assert_eq!(got.status, 200, "{}", key.uri);
            assert_key_decrypts(ingest, dir, &got.body, key).await;
            assert_eq!(
                http::get(second, &key.uri).await.status,
                403,
                "replay on the other key server"
            );
            assert_eq!(
                http::get(first, &key.uri).await.status,
                403,
                "replay on the same key server"
            );
        }
        // Redis holds the four used tickets, each expiring with its ticket.
        assert_eq!(redis_command(redis_port, "DBSIZE\r\n").await.as_deref(), Some(":4"));

        // Redis down: fail closed (503), and the ticket is not spent...
        drop(redis);
        let unspent = &a_keys[2];
        let down = http::get(ks1, &unspent.uri).await;
        assert_eq!((down.status, down.header("retry-after")), (503, Some("2")));
        // ...so once Redis is back, the key servers reconnect and it works once.
        redis = start_redis(redis_port, &[]).await;
        assert_eq!(http::get(ks1, &unspent.uri).await.status, 200);
        assert_eq!(http::get(ks2, &unspent.uri).await.status, 403);

        // A key server writes nothing: no data dir appeared.
        assert!(!keyserver_data.exists());
        drop(redis);
        ingest_a.stop().await;
        ingest_b.stop().await;
    })
    .await;
}
