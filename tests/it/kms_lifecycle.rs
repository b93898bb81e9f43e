//! The key lifecycle with the local keyring: master key rotation between two
//! publishes, refusal of a keyring others can read, and a slow KMS that must
//! not hold up segments (keys are prefetched), shown by counters.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::support::has_ts_sync;
use crate::support::kms::{CountingKms, fetch_key, finished, publish};
use crate::support::playlist::{KeyedSegment, keyed_segments, until_ended};
use crate::support::server::{DEMO_KEY, TestServer};
use sealcast::config::Config;
use sealcast::crypto::{DataKey, decrypt_segment, wrapped_master_version};
use sealcast::kms::Delayed;
use sealcast::kms::local::LocalKms;
use sealcast::server::Server;

const BIN: &str = env!("CARGO_BIN_EXE_sealcast");

fn sealcast(args: &[&str], keyring: &Path) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).arg(keyring).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Publishes 4 s of video, waits for the playlist to end, and returns its
/// keyed segments with each segment file's bytes.
async fn publish_once(server: &TestServer) -> Vec<(KeyedSegment, Vec<u8>)> {
    finished(publish(server.rtmp, DEMO_KEY, 4, true)).await;
    let playlist = until_ended(server.http, "/live/demo/index.m3u8").await;
    keyed_segments(&playlist)
        .into_iter()
        .map(|key| {
            let bytes = std::fs::read(server.data_dir().join("live/demo").join(&key.segment)).unwrap();
            (key, bytes)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_from_before_and_after_a_rotation_all_unwrap() {
    let keys_dir = tempfile::tempdir().unwrap();
    let keyring = keys_dir.path().join("keyring.json");
    let extra = format!(
        "[hls]\nsegment_duration_secs = 2\nplaylist_window = 20\n[kms]\nkeyring = \"{}\"\n",
        keyring.display()
    );

    // A first server and publish: master key version 1.
    let first = TestServer::start(&extra).await;
    let before = publish_once(&first).await;
    first.stop().await;

    let (ok, stdout, stderr) = sealcast(&["kms", "rotate", "--keyring"], &keyring);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("added master key version 2"), "{stdout}");
    assert_eq!(std::fs::metadata(&keyring).unwrap().permissions().mode() & 0o777, 0o600);

    // `kms info` lists both versions, the newest as current, and no key bytes.
    let (ok, info, stderr) = sealcast(&["kms", "info", "--keyring"], &keyring);
    assert!(ok, "{stderr}");
    let rows: Vec<&str> = info.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{info}");
    assert!(rows[0].starts_with("1 ") && !rows[0].contains("current"), "{info}");
    assert!(rows[1].starts_with("2 ") && rows[1].contains("(current"), "{info}");
    // Creation times in UTC, e.g. "2026-11-22T08:25:57.000Z".
    assert!(rows.iter().all(|r| r.contains(".000Z")), "{info}");
    let keyring_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&keyring).unwrap()).unwrap();
    for entry in keyring_json["master_keys"].as_array().unwrap() {
        let key = entry["key"].as_str().unwrap();
        assert!(!info.contains(key), "kms info printed a master key");
    }

    // A server opened after the rotation wraps new keys under version 2.
    let second = TestServer::start(&extra).await;
    let after = publish_once(&second).await;
    assert!(
        before.len() >= 2 && after.len() >= 2,
        "{} {}",
        before.len(),
        after.len()
    );
    let version = |key: &KeyedSegment| wrapped_master_version(&key.key.wrapped).unwrap();
    assert!(before.iter().all(|(k, _)| version(k) == 1));
    assert!(after.iter().all(|(k, _)| version(k) == 2));

    // Every key, old and new, unwraps through the key endpoint of the server
    // running after the rotation, and decrypts its segment.
    let token = second.token("live/demo", 3600);
    for (key, mut bytes) in before.into_iter().chain(after) {
        assert!(!has_ts_sync(&bytes));
        let (status, body, _) = fetch_key(second.http, &key.uri, &token).await;
        assert_eq!(status, 200, "{}", key.uri);
        let data_key = DataKey::from_bytes(body.try_into().unwrap());
        decrypt_segment(&data_key, key.iv, &mut bytes).unwrap();
        assert!(has_ts_sync(&bytes), "{}", key.uri);
    }
    second.stop().await;
}

#[test]
fn a_keyring_others_can_read_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring.json");
    LocalKms::open_or_create(&keyring).unwrap();
    let before = std::fs::read(&keyring).unwrap();
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fix = format!("chmod 600 {}", keyring.display());

    // Through the library…
    let secret = dir.path().join("token_secret");
    std::fs::write(&secret, "test-secret-0123456789-0123456789-abcdef").unwrap();
    crate::support::process::make_private(&secret);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[rtmp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = \"{}\"\n\
         [auth]\ntoken_secret_file = \"{}\"\n[kms]\nkeyring = \"{}\"\n",
        dir.path().join("data").display(),
        secret.display(),
        keyring.display()
    );
    let config = Config::from_toml_str(&text).unwrap();
    let message = match Server::from_config(&config) {
        Ok(_) => panic!("a world-readable keyring was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains(&keyring.display().to_string()), "{message}");
    assert!(message.contains(&fix), "{message}");
    assert!(message.contains("mode 644"), "{message}");

    // …and through the command line, which exits non-zero before listening.
    let config_file = dir.path().join("sealcast.toml");
    std::fs::write(&config_file, &text).unwrap();
    let (ok, _, stderr) = sealcast(&["serve", "--config"], &config_file);
    assert!(!ok);
    assert!(stderr.contains(&fix), "{stderr}");
    let (ok, _, stderr) = sealcast(&["kms", "rotate", "--keyring"], &keyring);
    assert!(!ok && stderr.contains(&fix), "{stderr}");

    // Nothing was changed, and the fix works.
    assert_eq!(std::fs::read(&keyring).unwrap(), before);
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Server::from_config(&config).is_ok());
}

/// With 500 ms added to every KMS call, segments still never wait for their
/// key: keys are fetched ahead of need. Shown by counters, not clocks: each
/// segment has a fresh key from the KMS (a counting wrapper sees at least a
/// call per segment), yet the pipeline opened at most the publish's very
/// first segment without a key ready (`key_waits`), which inline fetching
/// against a 500 ms KMS would do for every segment; and the KMS was asked
/// for keys before segments needed them, a bounded number ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_kms_does_not_delay_publication() {
    let extra = "[hls]\nsegment_duration_secs = 2\nplaylist_window = 20\n";
    let delay = Duration::from_millis(500);
    let (mut slow_kms, mut fast_kms) = (None, None);
    let slow = TestServer::start_wrapping_kms(extra, |kms| {
        let counting = Arc::new(CountingKms::new(Arc::new(Delayed::new(kms, delay))));
        slow_kms = Some(Arc::clone(&counting));
        counting
    })
    .await;
    let fast = TestServer::start_wrapping_kms(extra, |kms| {
        let counting = Arc::new(CountingKms::new(kms));
        fast_kms = Some(Arc::clone(&counting));
        counting
    })
    .await;
    let (slow_kms, fast_kms) = (slow_kms.unwrap(), fast_kms.unwrap());

    let seconds = 12;
    let (slow_push, fast_push) = (
        publish(slow.rtmp, DEMO_KEY, seconds, true),
        publish(fast.rtmp, DEMO_KEY, seconds, true),
    );
    finished(slow_push).await;
    finished(fast_push).await;
    let slow_playlist = until_ended(slow.http, "/live/demo/index.m3u8").await;
    let fast_playlist = until_ended(fast.http, "/live/demo/index.m3u8").await;

    let (s, f) = (slow.stream_info("live/demo"), fast.stream_info("live/demo"));
    println!(
        "{seconds} s of 2 s segments, a key per segment:\n  \
         local KMS:                 {} segments, {} key waits, {} data keys asked\n  \
         local KMS + 500 ms a call: {} segments, {} key waits, {} data keys asked",
        f.segments,
        f.key_waits,
        fast_kms.generated(),
        s.segments,
        s.key_waits,
        slow_kms.generated(),
    );
    for (info, kms, playlist) in [(&s, &slow_kms, &slow_playlist), (&f, &fast_kms, &fast_playlist)] {
        assert!(info.publish_latency.samples >= 5, "{info:?}");
        assert_eq!(info.publish_latency.samples, info.segments);
        assert_eq!(info.segments_dropped, 0, "{info:?}");
        // A fresh key per segment, each from its own KMS call.
        let keyed = keyed_segments(playlist);
        assert_eq!(keyed.len() as u64, info.segments, "{playlist}");
        let distinct: std::collections::HashSet<&str> = keyed.iter().map(|k| k.uri.as_str()).collect();
        assert_eq!(distinct.len(), keyed.len(), "{playlist}");
        // Fetched ahead: more keys were asked for than segments used (the
        // next segment's was on its way before the publish ended), but
        // only a bounded few more (one ready in the pipeline, one parked in
        // the prefetcher, one being fetched).
        let generated = kms.generated();
        assert!(generated > info.segments, "{generated} keys for {info:?}");
        assert!(generated <= info.segments + 3, "{generated} keys for {info:?}");
    }
    // At most the publish's very first key comes after the first keyframe
    // (that segment waits in memory for it and is encrypted when it arrives,
    // long before it closes); every later segment found its key ready,
    // although each key cost the slow KMS 500 ms.
    assert!(s.key_waits <= 1, "{s:?}");
    assert!(f.key_waits <= 1, "{f:?}");

    // The slow KMS's keys still unwrap through the key endpoint.
    let key = keyed_segments(&slow_playlist).pop().unwrap();
    let (status, body, _) = fetch_key(slow.http, &key.uri, &slow.token("live/demo", 60)).await;
    assert_eq!((status, body.len()), (200, 16));
    slow.stop().await;
    fast.stop().await;
}
