//! Recordings (`[record] enabled`) end to end, with the `sealcast` binary:
//! ffmpeg pushes a fixture in two publishes within the reconnect grace
//! period; they make ONE recording whose VOD playlist has one
//! discontinuity, plays in ffmpeg with a token, and decrypts to exactly the
//! pushed frames. The recording outlives a restart, the admin API lists,
//! scopes tokens to it and deletes it (objects gone, playlist 404), the
//! webhook receiver gets `recording.completed` with the EXTINF duration,
//! and nothing written is plaintext TS or a data key. Once on the local
//! directory and once on S3 (moto, played through `sealcast edge` too); and
//! a recording cut by a crash is completed at the next start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sealcast::auth::{Claims, Secret};
use sealcast::crypto::{self, DataKey};

use crate::s3_storage::{BUCKET, PREFIX, S3Server, TOKEN_SECRET, has_ts_run, objects, serve};
use crate::support::http::{self, Response};
use crate::support::kms::files_under;
use crate::support::playlist::{keyed_segments, wait_for};
use crate::support::process::{Player, Proc, free_port, read_text, write_private};
use crate::support::server::{DEMO_KEY, mint_token, streams_toml};
use crate::support::{FrameCounts, contains, count_frames, fixture, with_safety_net};

const ADMIN: &str = "admin-token-0123456789-abcdef";
const FIXTURE: &str = "high-bframes-aac48k.flv";
const LIMIT: Duration = Duration::from_secs(120);

/// Where the server under test stores.
#[derive(Clone, Copy)]
enum Backend<'a> {
    Local,
    S3(&'a S3Server),
}

fn write_config(dir: &Path, backend: Backend<'_>, hook_port: u16) -> PathBuf {
    let secret = dir.join("token_secret");
    write_private(&secret, TOKEN_SECRET);
    let admin = dir.join("admin_token");
    write_private(&admin, ADMIN);
    let hook_secret = dir.join("webhook_secret");
    write_private(&hook_secret, crate::webhooks::SECRET);
    let storage = match backend {
        Backend::Local => String::new(),
        Backend::S3(s3) => format!(
            "backend = \"s3\"\n[storage.s3]\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nprefix = \"{PREFIX}\"\n",
            s3.endpoint()
        ),
    };
    let config = dir.join("sealcast.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[rtmp]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[storage]
data_dir = "{data}"
{storage}
[hls]
segment_duration_secs = 2
playlist_window = 3
reconnect_grace_secs = 4
[record]
enabled = true
[auth]
token_secret_file = "{secret}"
admin_token_file = "{admin}"
[webhooks]
url = "http://127.0.0.1:{hook_port}/hook"
secret_file = "{hook_secret}"
initial_backoff_ms = 100
{streams}"#,
            data = dir.join("data").display(),
            secret = secret.display(),
            admin = admin.display(),
            hook_secret = hook_secret.display(),
            streams = streams_toml(),
        ),
    )
    .unwrap();
    config
}

fn start(config: &Path, backend: Backend<'_>) -> (Proc, SocketAddr, SocketAddr) {
    let credentials = match backend {
        Backend::Local => ("unused", "unused"),
        Backend::S3(s3) => (s3.access_key_id, s3.secret_access_key),
    };
    serve(config, credentials).unwrap_or_else(|log| panic!("sealcast did not start:\n{log}"))
}

async fn api(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    let bearer = format!("Bearer {ADMIN}");
    http::request(addr, method, path, &[("Authorization", &bearer)], body).await
}

async fn api_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let response = api(addr, "GET", path, b"").await;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    serde_json::from_slice(&response.body).unwrap()
}

/// ffmpeg pushes the fixture `1 + loops` times in one publish: as fast as
/// the server takes it (TCP backpressure: nothing is dropped), or in real
/// time (object storage drops a segment that finds its upload queue full,
/// by design, so a burst faster than the bucket takes PUTs would lose some).
async fn push_at(rtmp: SocketAddr, loops: u32, log: &Path, real_time: bool) {
    let mut command = Command::new("ffmpeg");
    command.args(["-nostdin", "-v", "error"]);
    if real_time {
        command.arg("-re");
    }
    command
        .args(["-stream_loop", &loops.to_string(), "-i"])
        .arg(fixture(FIXTURE))
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/{DEMO_KEY}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    let mut publisher = Proc::spawn("ffmpeg publisher", &mut command);
    let status = tokio::task::spawn_blocking(move || publisher.wait(LIMIT))
        .await
        .unwrap();
    assert!(status.success(), "ffmpeg publish failed: {}", read_text(log));
}

async fn push(rtmp: SocketAddr, loops: u32, log: &Path) {
    push_at(rtmp, loops, log, false).await;
}

/// The one recording, once complete.
async fn completed_recording(addr: SocketAddr) -> serde_json::Value {
    wait_for("the recording to complete", LIMIT, || async {
        let listed = api_json(addr, "/api/v1/recordings?stream=live/demo").await;
        let recordings = listed["recordings"].as_array().unwrap().clone();
        assert!(recordings.len() <= 1, "one recording, not {listed}");
        recordings.into_iter().find(|r| r["state"] == "complete")
    })
    .await
}

fn extinf_sum(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse::<f64>().unwrap())
        .sum()
}

fn fixture_secs() -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(fixture(FIXTURE))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Fetches every segment of the recording and its key over HTTP, decrypts,
/// writes the TS to `out`; returns the data keys.
async fn decrypt_recording(addr: SocketAddr, playlist: &str, out: &Path) -> Vec<[u8; 16]> {
    let mut ts = Vec::new();
    let mut keys = Vec::new();
    for segment in keyed_segments(playlist) {
        let file = segment
            .segment
            .strip_prefix("../../")
            .expect("a reference to the live segment");
        let response = http::get(addr, &format!("/live/demo/{file}")).await;
        assert_eq!(response.status, 200, "segment {file}");
        let mut body = response.body;
        assert!(!has_ts_run(&body), "{file} is served as plaintext");
        let key = http::get(addr, &segment.uri).await;
        assert_eq!(key.status, 200, "key of {file}: {}", key.text());
        let key: [u8; 16] = key.body.as_slice().try_into().unwrap();
        crypto::decrypt_segment(&DataKey::from_bytes(key), segment.iv, &mut body).unwrap();
        ts.extend_from_slice(&body);
        keys.push(key);
    }
    std::fs::write(out, &ts).unwrap();
    keys
}

/// ffmpeg plays the recording with the token; its decoded frames.
async fn play(addr: SocketAddr, id: &str, token: &str, dir: &Path, label: &str) -> FrameCounts {
    let url = format!("http://{addr}/live/demo/recordings/{id}/index.m3u8?token={token}");
    let dir = dir.to_owned();
    let label = label.to_owned();
    let playback = tokio::task::spawn_blocking(move || Player::start(&url, &label, &dir).finish(LIMIT))
        .await
        .unwrap();
    assert!(
        playback.status.success() && playback.stderr.is_empty(),
        "ffmpeg playing the recording: {}",
        playback.stderr
    );
    FrameCounts {
        video: playback.video,
        audio: playback.audio,
    }
}

/// Every file or object the server wrote: (name, bytes).
async fn everything_written(backend: Backend<'_>, data: &Path) -> Vec<(String, Vec<u8>)> {
    match backend {
        Backend::Local => files_under(data)
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect(),
        Backend::S3(s3) => objects(&s3.client()).await,
    }
}

/// The recording's events as the receiver got them.
fn completed_events(events: &Path) -> Vec<serde_json::Value> {
    read_text(events)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "recording.completed")
        .collect()
}

async fn record_restart_play_delete(backend: Backend<'_>) {
    let dir = tempfile::tempdir().unwrap();
    let hook_port = free_port();
    let events = dir.path().join("events.jsonl");
    let _receiver = crate::webhooks::start_receiver(hook_port, &events, None);
    let config = write_config(dir.path(), backend, hook_port);
    let (mut server, rtmp, addr) = start(&config, backend);

    // Two publishes within the reconnect grace period: 20 s, then 10 s.
    let real_time = matches!(backend, Backend::S3(_));
    push_at(rtmp, 1, &dir.path().join("push1.log"), real_time).await;
    wait_for("the first publish to end", LIMIT, || async {
        let live = api_json(addr, "/api/v1/streams").await;
        live["streams"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    push_at(rtmp, 0, &dir.path().join("push2.log"), real_time).await;
    let recording = completed_recording(addr).await;
    assert_eq!(
        http::get(addr, "/api/v1/recordings").await.status,
        401,
        "the API needs the admin token"
    );
    let id = recording["id"].as_str().unwrap().to_owned();
    assert_eq!(recording["publish_ids"].as_array().unwrap().len(), 2, "{recording}");
    assert_eq!(recording["encryption"], "AES-128");
    assert_eq!(recording["stream"], "live/demo");
    let path = format!("/live/demo/recordings/{id}/index.m3u8");
    assert!(
        recording["playlist_url"].as_str().unwrap().ends_with(&path),
        "{recording}"
    );

    // The playlist: VOD, one discontinuity, the token in every key URI.
    let secret = Secret::new(TOKEN_SECRET.as_bytes().to_vec());
    let token = mint_token(&secret, "live/demo", 3600);
    let personal = http::get(addr, &format!("{path}?token={token}")).await;
    assert_eq!(personal.status, 200, "{}", personal.text());
    let text = personal.text();
    assert!(
        text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && text.ends_with("#EXT-X-ENDLIST\n"),
        "{text}"
    );
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    let keyed = keyed_segments(&text);
    assert!(
        keyed.iter().all(|k| k.uri.contains(&format!("token={token}"))),
        "{text}"
    );
    assert_eq!(keyed.len() as u64, recording["segments"].as_u64().unwrap());
    let plain = http::get(addr, &path).await.text();
    assert!(!plain.contains("token="), "{plain}");

    // Duration: the EXTINF sum, the pushed media, the API and the webhook agree.
    let listed_secs = extinf_sum(&text);
    let pushed_secs = 3.0 * fixture_secs();
    assert!(
        (listed_secs - pushed_secs).abs() < 0.5,
        "listed {listed_secs} s, pushed {pushed_secs} s; server log:\n{}",
        read_text(&dir.path().join("server.log"))
    );
    assert!((recording["duration_secs"].as_f64().unwrap() - listed_secs).abs() < 0.01);
    let event = wait_for("recording.completed", LIMIT, || async {
        completed_events(&events).into_iter().next()
    })
    .await;
    assert_eq!(event["data"]["id"], id.as_str(), "{event}");
    assert_eq!(event["stream"], "live/demo");
    assert!(
        (event["data"]["duration_secs"].as_f64().unwrap() - listed_secs).abs() < 0.01,
        "{event}"
    );
    assert_eq!(event["data"]["segments"], recording["segments"]);
    assert_eq!(event["data"]["bytes"], recording["bytes"]);

    // Exactly the pushed frames, decrypted by hand and played by ffmpeg.
    let once = count_frames(&fixture(FIXTURE));
    let pushed = FrameCounts {
        video: 3 * once.video,
        audio: 3 * once.audio,
    };
    let decrypted = dir.path().join("decrypted.ts");
    let data_keys = decrypt_recording(addr, &text, &decrypted).await;
    assert_eq!(count_frames(&decrypted), pushed, "decrypted recording");
    assert_eq!(
        play(addr, &id, &token, dir.path(), "first").await,
        pushed,
        "ffmpeg playback"
    );

    // Nothing written holds plaintext TS or a data key.
    let data = dir.path().join("data");
    let written = everything_written(backend, &data).await;
    assert!(
        written
            .iter()
            .any(|(name, _)| name.ends_with(&format!("recordings/{id}/manifest.json"))),
        "no manifest among {:?}",
        written.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, bytes) in &written {
        assert!(!has_ts_run(bytes), "{name} holds plaintext MPEG-TS");
        for key in &data_keys {
            assert!(!contains(bytes, key), "{name} holds a data key");
        }
    }

    // A restart: still listed, still plays.
    server.terminate(LIMIT);
    let (mut server, _rtmp, addr) = start(&config, backend);
    let mut again = api_json(addr, &format!("/api/v1/recordings/{id}")).await;
    assert!(again["playlist_url"].as_str().unwrap().ends_with(&path));
    again["playlist_url"] = recording["playlist_url"].clone();
    assert_eq!(again, recording, "the recording after a restart");
    assert_eq!(
        play(addr, &id, &token, dir.path(), "restarted").await,
        pushed,
        "after a restart"
    );
    assert_eq!(completed_events(&events).len(), 1, "completed once");
    if let Backend::S3(s3) = backend {
        // A stateless edge serves it from the bucket too.
        let (_edge, edge) = crate::edge::start_edge(&config, s3, "edge");
        assert_eq!(
            play(edge, &id, &token, dir.path(), "edge").await,
            pushed,
            "through sealcast edge"
        );
    }

    // A token scoped to this recording: its playlist and keys, nothing else.
    let minted = api(
        addr,
        "POST",
        &format!("/api/v1/recordings/{id}/playback"),
        b"{\"ttl_secs\": 600}",
    )
    .await;
    assert_eq!(minted.status, 200, "{}", minted.text());
    let minted: serde_json::Value = serde_json::from_slice(&minted.body).unwrap();
    let scoped = minted["token"].as_str().unwrap();
    let scoped_text = http::get(addr, &format!("{path}?token={scoped}")).await;
    assert_eq!(scoped_text.status, 200);
    let first_key = &keyed_segments(&scoped_text.text())[0].uri;
    assert_eq!(
        http::get(addr, first_key).await.status,
        200,
        "a scoped token opens its recording's keys"
    );
    let live = http::get(addr, &format!("/live/demo/index.m3u8?token={scoped}")).await;
    assert_eq!(live.status, 403, "a scoped token opens no live playlist");
    let claims = Claims {
        exp: minted["expires_unix_secs"].as_u64().unwrap(),
        stream: "live/demo".into(),
        sub: None,
        jti: None,
        recording: None,
    };
    let other = sealcast::auth::recording::mint_for_recording(&secret, &claims, "0badf00d", None);
    assert_eq!(http::get(addr, &format!("{path}?token={other}")).await.status, 403);
    let other_key = first_key.replace(scoped, &other);
    assert_eq!(
        http::get(addr, &other_key).await.status,
        403,
        "another recording's token opens no key"
    );

    // Deleted: unlisted, its playlist 404, its objects gone.
    let files: Vec<String> = keyed
        .iter()
        .map(|k| k.segment.trim_start_matches("../../").to_owned())
        .collect();
    assert_eq!(
        api(addr, "DELETE", &format!("/api/v1/recordings/{id}"), b"")
            .await
            .status,
        204
    );
    assert_eq!(
        api(addr, "GET", &format!("/api/v1/recordings/{id}"), b"").await.status,
        404
    );
    assert_eq!(http::get(addr, &format!("{path}?token={token}")).await.status, 404);
    let left = everything_written(backend, &data).await;
    for (name, _) in &left {
        assert!(!name.contains(&format!("recordings/{id}")), "{name} left behind");
        assert!(
            !files.iter().any(|f| name.ends_with(&format!("/{f}"))),
            "segment {name} left behind"
        );
    }
    assert_eq!(http::get(addr, &format!("/live/demo/{}", files[0])).await.status, 404);
    server.terminate(LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_recording_of_a_reconnecting_publish_plays_survives_restart_and_deletes() {
    with_safety_net(record_restart_play_delete(Backend::Local)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_recording_of_a_reconnecting_publish_plays_survives_restart_and_deletes() {
    let s3 = S3Server::moto().await;
    with_safety_net(record_restart_play_delete(Backend::S3(&s3))).await;
}

/// A server killed (SIGKILL) while a recording is still open, within the
/// reconnect grace: at the next start the recording is completed as VOD
/// from what it stored, and holds every pushed frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_by_a_crash_is_completed_at_the_next_start() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let hook_port = free_port();
        let events = dir.path().join("events.jsonl");
        let _receiver = crate::webhooks::start_receiver(hook_port, &events, None);
        let config = write_config(dir.path(), Backend::Local, hook_port);
        let (mut server, rtmp, addr) = start(&config, Backend::Local);
        push(rtmp, 1, &dir.path().join("push.log")).await;
        let open = wait_for("the publish to end", LIMIT, || async {
            let live = api_json(addr, "/api/v1/streams").await;
            let listed = api_json(addr, "/api/v1/recordings").await;
            let recording = listed["recordings"][0].clone();
            (live["streams"].as_array().unwrap().is_empty() && recording["state"] == "recording").then_some(recording)
        })
        .await;
        server.kill();

        let (mut server, _rtmp, addr) = start(&config, Backend::Local);
        let recording = completed_recording(addr).await;
        assert_eq!(recording["id"], open["id"]);
        assert_eq!(recording["segments"], open["segments"], "{recording}");
        let id = recording["id"].as_str().unwrap();
        let token = mint_token(&Secret::new(TOKEN_SECRET.as_bytes().to_vec()), "live/demo", 3600);
        let once = count_frames(&fixture(FIXTURE));
        let pushed = FrameCounts {
            video: 2 * once.video,
            audio: 2 * once.audio,
        };
        assert_eq!(play(addr, id, &token, dir.path(), "crashed").await, pushed);
        let event = wait_for("recording.completed", LIMIT, || async {
            completed_events(&events).into_iter().next()
        })
        .await;
        assert_eq!(event["data"]["id"], id);
        server.terminate(LIMIT);
    })
    .await;
}

/// hls.js in headless Chromium plays the recording of two publishes from
/// start to end: its VOD playlist, the discontinuity, every key (200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_plays_a_recording_from_start_to_end_in_chromium() {
    crate::browser::require_tools();
    let _turn = crate::browser::ONE_BROWSER_AT_A_TIME.lock().await;
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), Backend::Local, free_port());
        let (mut server, rtmp, addr) = start(&config, Backend::Local);
        push(rtmp, 0, &dir.path().join("push1.log")).await;
        wait_for("the first publish to end", LIMIT, || async {
            let live = api_json(addr, "/api/v1/streams").await;
            live["streams"].as_array().unwrap().is_empty().then_some(())
        })
        .await;
        push(rtmp, 0, &dir.path().join("push2.log")).await;
        let recording = completed_recording(addr).await;
        let id = recording["id"].as_str().unwrap();
        let duration = recording["duration_secs"].as_f64().unwrap();
        let token = mint_token(&Secret::new(TOKEN_SECRET.as_bytes().to_vec()), "live/demo", 3600);
        let out = crate::browser::artifacts_dir("recording");
        let profile = tempfile::tempdir().unwrap();
        let browser_config = serde_json::json!({
            "base": format!("http://{addr}"),
            "playlist": format!("/live/demo/recordings/{id}/index.m3u8?token={token}"),
            "hlsjs": "/static/hls.js@1.7.4/hls.min.js",
            "chromium": crate::browser::CHROMIUM,
            "userDataDir": profile.path(),
            "outDir": out,
            "rate": 2,
        });
        let report = tokio::task::spawn_blocking(move || {
            let logs = tempfile::tempdir().unwrap();
            let (stdout, stderr) = (logs.path().join("stdout"), logs.path().join("stderr"));
            let mut node = Proc::spawn(
                "node recording.mjs",
                Command::new("node")
                    .arg(crate::browser::browser_dir().join("recording.mjs"))
                    .arg(browser_config.to_string())
                    .current_dir(crate::browser::browser_dir())
                    .stdin(Stdio::null())
                    .stdout(std::fs::File::create(&stdout).unwrap())
                    .stderr(std::fs::File::create(&stderr).unwrap()),
            );
            node.wait(LIMIT);
            let text = read_text(&stdout);
            let line = text.lines().last().unwrap_or_default().to_owned();
            serde_json::from_str::<serde_json::Value>(&line)
                .unwrap_or_else(|e| panic!("recording.mjs ({e}):\n{text}\n{}", read_text(&stderr)))
        })
        .await
        .unwrap();
        assert!(
            report["ended"] == true && report["fatal"].as_array().unwrap().is_empty(),
            "{report:#}"
        );
        assert_eq!(report["levelType"], "VOD", "{report:#}");
        assert_eq!(report["levelLive"], false, "{report:#}");
        assert_eq!(report["lastFragCc"], 1, "ended after the discontinuity: {report:#}");
        let played = report["currentTime"].as_f64().unwrap();
        assert!(
            (played - duration).abs() < 1.0,
            "played to {played} s of {duration} s: {report:#}"
        );
        let keys = report["keyStatuses"].as_array().unwrap();
        assert!(!keys.is_empty() && keys.iter().all(|s| s == 200), "{report:#}");
        let want = 2 * count_frames(&fixture(FIXTURE)).video;
        let decoded = report["totalVideoFrames"].as_u64().unwrap();
        assert!(
            decoded * 100 >= want * 90,
            "decoded {decoded} of {want} frames: {report:#}"
        );
        server.terminate(LIMIT);
    })
    .await;
}

/// `[record] enabled = true` with `record = false` on `live/other`: only
/// `live/demo` is recorded; and the recordings API needs the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_false_on_a_stream_overrides_the_global_switch() {
    use crate::support::playlist::until_ended;
    use crate::support::rtmp::{Fixture, Publisher};
    use crate::support::server::{OTHER_KEY, TestServer};
    with_safety_net(async {
        let server = TestServer::start_with_config("[record]\nenabled = true\n", |config| {
            let other = config.streams.iter_mut().find(|s| s.name == "other").unwrap();
            other.record = Some(false);
        })
        .await;
        let fixture = Fixture::load("baseline-aac44k.flv");
        for (key, stream) in [(DEMO_KEY, "live/demo"), (OTHER_KEY, "live/other")] {
            let mut publisher = Publisher::publish(server.rtmp, key).await;
            publisher.send_fixture(&fixture).await;
            publisher.finish().await;
            until_ended(server.http, &format!("/{stream}/index.m3u8")).await;
        }
        let recordings = server.registry.recordings();
        let all = wait_for("the recording of live/demo", LIMIT, || async {
            let all = recordings.list(None).await;
            all.iter()
                .any(|m| m.state == sealcast::live::RecordingState::Complete)
                .then_some(all)
        })
        .await;
        let streams: Vec<&str> = all.iter().map(|m| m.stream.as_str()).collect();
        assert_eq!(streams, ["live/demo"]);
        assert!(!server.data_dir().join("live/other/recordings").exists());
        assert_eq!(
            http::get(server.http, "/api/v1/recordings").await.status,
            404,
            "no admin token configured"
        );
        server.stop().await;
    })
    .await;
}
