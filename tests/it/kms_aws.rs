//! The AWS KMS provider against moto's server (a real implementation of the
//! KMS API that checks SigV4 signatures): a live push encrypted under moto's
//! data keys plays with ffmpeg through the key endpoint, and a KMS outage in
//! the middle of a stream is fail-closed and heals by itself.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::kms::{FPS, Moto, Proxy, fetch_key, files_under, moto_decrypt};
use crate::support::playlist::{self, KeyedSegment, keyed_segments, wait_for};
use crate::support::process::Proc;
use crate::support::process::parse_running_line;
use crate::support::server::{DEMO_KEY, TestServer, mint_token, streams_toml};
use crate::support::{count_frames, has_ts_sync};
use sealcast::crypto::{DataKey, decrypt_segment};

/// Runs `sealcast serve --config FILE` with AWS credentials in its environment
/// only; returns the child and its RTMP and HTTP addresses from the banner.
fn serve_binary(config: &std::path::Path, access_key_id: &str, secret: &str) -> (Proc, SocketAddr, SocketAddr) {
    let log_path = config.with_file_name("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Proc::spawn(
        "sealcast serve",
        Command::new(env!("CARGO_BIN_EXE_sealcast"))
            .args(["serve", "--config"])
            .arg(config)
            .env("AWS_ACCESS_KEY_ID", access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", "sealcast=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log),
    );
    let stdout = child.child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let banner = lines.next().and_then(Result::ok).unwrap_or_else(|| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("sealcast serve printed no banner:\n{log}")
    });
    let (rtmp, http) = parse_running_line(&banner).unwrap_or_else(|| panic!("{banner}"));
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, rtmp, http)
}

fn token(secret: &str, stream: &str) -> String {
    mint_token(&sealcast::auth::Secret::new(secret.as_bytes().to_vec()), stream, 3600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_push_under_moto_keys_plays_through_the_key_endpoint() {
    let moto = Moto::start().await;
    let provisioned = moto.provision().await;
    let key_id = provisioned.key_id.clone();
    let moto_kms = moto.client(&provisioned.credentials, &key_id);

    let dir = tempfile::tempdir().unwrap();
    let secret = "aws-test-secret-0123456789-0123456789-abcdef";
    std::fs::write(dir.path().join("token_secret"), secret).unwrap();
    crate::support::process::make_private(&dir.path().join("token_secret"));
    std::fs::set_permissions(
        dir.path().join("token_secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = dir.path().join("sealcast.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[rtmp]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[storage]
data_dir = "{data}"
[hls]
segment_duration_secs = 2
playlist_window = 20
reconnect_grace_secs = 0
[kms]
provider = "aws"
key_id = "{key_id}"
region = "us-east-1"
endpoint = "{endpoint}"
request_timeout_ms = 2000
[auth]
token_secret_file = "{secret_file}"
{streams}"#,
            data = dir.path().join("data").display(),
            endpoint = moto.endpoint(),
            streams = streams_toml(),
            secret_file = dir.path().join("token_secret").display(),
        ),
    )
    .unwrap();
    // The binary gets its credentials through its environment, as in production.
    let (mut server, rtmp, http) = serve_binary(&config, &provisioned.access_key_id, &provisioned.secret_access_key);

    let seconds = 8;
    crate::support::kms::finished(crate::support::kms::publish(rtmp, DEMO_KEY, seconds, true)).await;
    let playlist = playlist::until_ended(http, "/live/demo/index.m3u8").await;

    // Playback through the key endpoint: at least 95% of the frames pushed.
    let demo_token = token(secret, "live/demo");
    let played = dir.path().join("played.ts");
    crate::support::kms::play(http, "live/demo", &demo_token, &played).await;
    let frames = count_frames(&played);
    let pushed = u64::from(seconds * FPS);
    assert!(
        frames.video * 100 >= pushed * 95,
        "played {} of {pushed} video frames",
        frames.video
    );
    assert!(frames.audio > 0, "{frames:?}");

    // Every key URI carries moto's CiphertextBlob: moto's blobs begin with
    // the KMS key id, and moto unwraps each under {stream, key_id} to the
    // key the key endpoint returns.
    let keyed = keyed_segments(&playlist);
    assert!(keyed.len() >= 4, "{playlist}");
    let keys: BTreeSet<(String, Vec<u8>)> = keyed
        .iter()
        .map(|k| (k.key_id(), k.key.wrapped.as_bytes().to_vec()))
        .collect();
    assert_eq!(keys.len(), keyed.len(), "segments_per_key = 1: a key per segment");
    let mut endpoint_keys = Vec::new();
    for key in &keyed {
        let segment = &key.segment;
        assert!(
            key.key.wrapped.as_bytes().starts_with(key_id.as_bytes()),
            "edk of {segment} is not a moto blob"
        );
        let (status, body, _) = fetch_key(http, &key.uri, &demo_token).await;
        assert_eq!(status, 200, "{}", key.uri);
        assert_eq!(body.len(), 16);
        let from_moto = moto_decrypt(&moto_kms, key.key.wrapped.as_bytes(), "live/demo", &key.key_id())
            .await
            .unwrap();
        assert_eq!(from_moto, body, "{}", key.uri);
        // And the key decrypts the segment on disk into MPEG-TS.
        let mut bytes = std::fs::read(dir.path().join("data/live/demo").join(segment)).unwrap();
        assert!(!has_ts_sync(&bytes), "{segment} is stored encrypted");
        let data_key = DataKey::from_bytes(body.clone().try_into().unwrap());
        decrypt_segment(&data_key, key.iv, &mut bytes).unwrap();
        assert!(has_ts_sync(&bytes), "{segment} decrypts to TS");
        endpoint_keys.push(body);
    }

    // The context is authenticated: the same blob under another stream's
    // key path (with a valid token for that stream), or under another key id,
    // is refused with 403, and so is a tampered blob.
    let first = &keyed[0];
    let second = &keyed[1];
    let other_token = token(secret, "live/other");
    let edk = first.key.wrapped.to_base64url();
    let cases: Vec<(String, String, &str)> = vec![
        (
            format!("/keys/live/other/{}?edk={edk}", first.key_id()),
            other_token.clone(),
            "another stream",
        ),
        (
            format!("/keys/live/demo/{}?edk={edk}", second.key_id()),
            demo_token.clone(),
            "another key id",
        ),
        (tampered(first), demo_token.clone(), "a tampered blob"),
    ];
    for (uri, token, what) in cases {
        let (status, body, _) = fetch_key(http, &uri, &token).await;
        assert_eq!(status, 403, "{what}: {uri}");
        assert!(!endpoint_keys.contains(&body), "{what}");
    }
    // Moto itself says the same about the foreign context.
    let refused = moto_decrypt(&moto_kms, first.key.wrapped.as_bytes(), "live/other", &first.key_id()).await;
    assert!(refused.unwrap_err().contains("InvalidCiphertextException"));

    server.kill();
}

/// The key URI with one byte of its blob's ciphertext flipped.
fn tampered(key: &KeyedSegment) -> String {
    let mut edk = key.key.wrapped.as_bytes().to_vec();
    let last = edk.len() - 1;
    edk[last] ^= 0x01;
    use base64::Engine as _;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(edk);
    format!("{}?edk={text}", key.uri.split('?').next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_outage_mid_stream_is_fail_closed_and_heals() {
    let moto = Moto::start().await;
    let provisioned = moto.provision().await;
    let proxy = Proxy::start(moto.addr).await;
    let aws = moto.client_at(
        &proxy.endpoint(),
        &provisioned.credentials,
        &provisioned.key_id,
        Duration::from_millis(1000),
    );
    let server = TestServer::start_wrapping_kms(
        "[hls]\nsegment_duration_secs = 2\nplaylist_window = 30\n",
        move |_local| Arc::new(aws),
    )
    .await;
    let data_dir = server.data_dir();

    // Watch the data dir throughout: every segment file (and any temporary
    // file) ever seen must be ciphertext.
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicUsize::new(0));
    let seen_during_outage: crate::support::kms::Shared<BTreeSet<String>> = Default::default();
    let outage = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, checked, seen, outage, dir) = (
            Arc::clone(&stop),
            Arc::clone(&checked),
            Arc::clone(&seen_during_outage),
            Arc::clone(&outage),
            data_dir.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut plaintext = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                for path in files_under(&dir) {
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    if !(name.ends_with(".ts") || name.ends_with(".tmp")) || name.ends_with(".m3u8.tmp") {
                        continue;
                    }
                    let Ok(bytes) = std::fs::read(&path) else { continue };
                    checked.fetch_add(1, Ordering::SeqCst);
                    if bytes.len() >= 376 && has_ts_sync(&bytes) {
                        plaintext.push(name.clone());
                    }
                    if outage.load(Ordering::SeqCst) && name.ends_with(".ts") {
                        seen.lock().unwrap().insert(name);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            plaintext
        })
    };

    let publisher = crate::support::kms::publish(server.rtmp, DEMO_KEY, 24, true);
    wait_for("two segments before the outage", Duration::from_secs(30), || async {
        (server.stream_info("live/demo").segments >= 2).then_some(())
    })
    .await;
    let live = crate::support::http::get(server.http, "/live/demo/index.m3u8")
        .await
        .text();
    let early_key = keyed_segments(&live).remove(0);

    // The KMS goes away.
    let before = server.stream_info("live/demo");
    outage.store(true, Ordering::SeqCst);
    proxy.cut();
    let token = server.token("live/demo", 3600);
    let (status, body, retry_after) = fetch_key(server.http, &early_key.uri, &token).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(retry_after.as_deref(), Some("2"));
    assert_eq!(body, b"key service unavailable\n", "a terse body, no key");
    let during = wait_for("a dropped segment", Duration::from_secs(20), || async {
        let info = server.stream_info("live/demo");
        (info.segments_dropped >= 1).then_some(info)
    })
    .await;
    assert!(during.kms_failures >= 1, "{during:?}");
    // Still ingesting: frames keep arriving while segments are dropped.
    assert!(during.video_frames >= before.video_frames);

    // The KMS comes back: encryption resumes by itself.
    outage.store(false, Ordering::SeqCst);
    proxy.restore();
    let healed_from = server.stream_info("live/demo").segments;
    wait_for("segments after the outage", Duration::from_secs(30), || async {
        (server.stream_info("live/demo").segments >= healed_from + 2).then_some(())
    })
    .await;
    crate::support::kms::finished(publisher).await;
    let playlist = playlist::until_ended(server.http, "/live/demo/index.m3u8").await;
    stop.store(true, Ordering::SeqCst);
    let plaintext = watcher.await.unwrap();

    let info = server.stream_info("live/demo");
    assert!(info.segments_dropped >= 1);
    assert!(plaintext.is_empty(), "plaintext segment files seen: {plaintext:?}");
    assert!(checked.load(Ordering::SeqCst) > 10, "the watcher checked files");
    // What was written during the outage (segments whose key came before the
    // cut) is ciphertext too; the watcher checked each one.
    for name in seen_during_outage.lock().unwrap().iter() {
        let bytes = std::fs::read(data_dir.join("live/demo").join(name)).unwrap();
        assert!(!has_ts_sync(&bytes), "{name}");
    }

    // The playlist marks the gap: a discontinuity right after the last
    // segment before the drop, none elsewhere in this single publish.
    let lines: Vec<&str> = playlist.lines().collect();
    let discontinuities = lines.iter().filter(|l| **l == "#EXT-X-DISCONTINUITY").count();
    assert!(discontinuities >= 1, "{playlist}");
    let listed = keyed_segments(&playlist).len() as u64;
    assert_eq!(listed, info.segments, "{playlist}");
    let sequences: Vec<u64> = keyed_segments(&playlist)
        .iter()
        .map(|k| {
            k.segment
                .trim_end_matches(".ts")
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let gaps = sequences.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert_eq!(gaps, discontinuities, "each gap in {sequences:?} is marked");

    // Playback works across the gap, with the keys from the healed KMS.
    let played = server.dir.path().join("played.ts");
    crate::support::kms::play(server.http, "live/demo", &token, &played).await;
    let frames = count_frames(&played);
    let listed_secs: f64 = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    let expected = (listed_secs * f64::from(FPS)) as u64;
    assert!(
        frames.video * 100 >= expected * 95,
        "played {} of {expected} listed frames",
        frames.video
    );

    println!(
        "outage: {} segments published, {} dropped, {} KMS failures, {} files checked",
        info.segments,
        info.segments_dropped,
        info.kms_failures,
        checked.load(Ordering::SeqCst)
    );
    server.stop().await;
}
