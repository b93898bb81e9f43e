//! Startover (`[hls] dvr_window_secs`): the live playlist keeps that many
//! seconds listed, with every RFC 8216 6.2.2 rule, and their segments and keys
//! fetchable; what slides out is deleted after the window (local directory,
//! and the S3 bucket through `sealcast edge`). hls.js in headless Chromium
//! joins late, seeks back 60 s and plays from there.
//!
//! ffmpeg is the publisher (`-c copy` of a long FLV from its stdin), fed the
//! first minute or so of media at once and the rest in real time: the window
//! fills in seconds and the stream stays live while it is watched.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fixture;
use crate::support::kms::fetch_key;
use crate::support::playlist::{self, keyed_segments, wait_for};
use crate::support::process::{Proc, read_text};
use crate::support::server::{DEMO_KEY, TestServer, mint_token};
use crate::support::{http, with_safety_net};
use serde_json::Value;

/// A keyframe every 2 s, 10 s long (looped into a long file).
const FIXTURE: &str = "high-bframes-aac48k.flv";
const FIXTURE_SECS: u64 = 10;
const PLAYLIST: &str = "/live/demo/index.m3u8";

/// ffmpeg relaying an FLV from its stdin to RTMP (`-c copy`). A thread feeds
/// it the first `burst_secs` of media at once, then the rest at the file's
/// average byte rate (real time); ended when dropped.
struct PacedPublisher {
    _ffmpeg: Proc,
}

impl PacedPublisher {
    fn start(rtmp: SocketAddr, dir: &Path, total_secs: u64, burst_secs: u64) -> Self {
        let long = dir.join("long.flv");
        let loops = (total_secs / FIXTURE_SECS).saturating_sub(1).to_string();
        let made = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-stream_loop", &loops, "-i"])
            .arg(fixture(FIXTURE))
            .args(["-c", "copy", "-f", "flv", "-y"])
            .arg(&long)
            .status()
            .expect("ffmpeg (apt-get install ffmpeg)");
        assert!(made.success(), "making {}", long.display());
        let bytes = std::fs::read(&long).unwrap();
        let mut ffmpeg = Proc::spawn(
            "ffmpeg relay",
            Command::new("ffmpeg")
                .args([
                    "-nostdin", "-v", "error", "-f", "flv", "-i", "pipe:0", "-c", "copy", "-f", "flv",
                ])
                .arg(format!("rtmp://{rtmp}/live/{DEMO_KEY}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null()),
        );
        let mut stdin = ffmpeg.child.stdin.take().unwrap();
        let per_sec = bytes.len() as u64 / total_secs;
        std::thread::spawn(move || {
            let burst = usize::try_from(per_sec * burst_secs).unwrap().min(bytes.len());
            let started = Instant::now();
            let mut sent = 0;
            // A write fails once the relay is gone: the test is over.
            while sent < bytes.len() && stdin.write_all(&bytes[sent..(sent + 16_384).min(bytes.len())]).is_ok() {
                sent = (sent + 16_384).min(bytes.len());
                if sent > burst {
                    let due = Duration::from_secs_f64((sent - burst) as f64 / per_sec as f64);
                    std::thread::sleep(due.saturating_sub(started.elapsed()));
                }
            }
        });
        Self { _ffmpeg: ffmpeg }
    }
}

/// The playlist's sequence numbers from its segment names (`{publish_id}-{seq}.ts`).
fn seq_of(uri: &str) -> u64 {
    let stem = uri.trim_end_matches(".ts");
    stem.rsplit('-').next().unwrap().parse().unwrap()
}

/// Checks one playlist served at `http` (an in-process server or an edge)
/// against a DVR window of `dvr_secs`; returns the oldest segment that has
/// already slid out.
async fn window_holds_dvr_secs(http: SocketAddr, token: &str, dvr_secs: f64) -> String {
    // Once more than the window was pushed, some segments have slid out.
    let text = playlist::poll(http, PLAYLIST, "a slid DVR window", |t| {
        playlist::parse(t).media_sequence > 2
    })
    .await;
    let parsed = playlist::parse(&text);
    let durations: Vec<f64> = parsed.segments.iter().map(|s| s.duration_secs).collect();
    let listed: f64 = durations.iter().sum();
    // Back to dvr_window_secs, and not one segment more (RFC 8216 6.2.2 floor aside).
    assert!(listed >= dvr_secs, "{listed} s listed:\n{text}");
    assert!(listed - durations[0] < dvr_secs, "{listed} s listed:\n{text}");
    assert!(!parsed.ended && parsed.playlist_type.is_none(), "{text}");
    // MEDIA-SEQUENCE names the first listed segment, and numbers are positional.
    for (i, segment) in parsed.segments.iter().enumerate() {
        assert_eq!(seq_of(&segment.uri), parsed.media_sequence + i as u64, "{text}");
    }
    // The first listed segment has its key tag, and it and its key are served.
    let first_line = text.lines().position(|l| l.ends_with(".ts")).unwrap();
    assert!(
        text.lines().take(first_line).any(|l| l.starts_with("#EXT-X-KEY")),
        "{text}"
    );
    let keyed = keyed_segments(&text);
    let oldest = &keyed[0];
    let segment = http::get(http, &format!("/live/demo/{}", oldest.segment)).await;
    assert_eq!(segment.status, 200, "{}", oldest.segment);
    let (status, key, _) = fetch_key(http, &oldest.uri, token).await;
    assert_eq!((status, key.len()), (200, 16), "{}", oldest.uri);
    let publish_id = oldest.segment.rsplit_once('-').unwrap().0;
    format!("{publish_id}-0.ts")
}

/// Waits until the segment `name` (slid out of the window) is gone.
async fn deleted_after_the_window(http: SocketAddr, name: &str) {
    let path = format!("/live/demo/{name}");
    wait_for(
        "the slid-out segment to be deleted",
        Duration::from_secs(120),
        || async {
            let status = http::get(http, &path).await.status;
            assert!(status == 200 || status == 404, "{path}: {status}");
            (status == 404).then_some(())
        },
    )
    .await;
}

const DVR_TOML: &str = "[hls]\nsegment_duration_secs = 2\nplaylist_window = 3\ndvr_window_secs = 20\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_playlist_keeps_the_dvr_window_and_deletes_after_it() {
    with_safety_net(async {
        let server = TestServer::start(DVR_TOML).await;
        let dir = tempfile::tempdir().unwrap();
        let _publisher = PacedPublisher::start(server.rtmp, dir.path(), 120, 50);
        let token = server.token("live/demo", 600);
        let gone = window_holds_dvr_secs(server.http, &token, 20.0).await;
        let file = server.data_dir().join("live/demo").join(&gone);
        deleted_after_the_window(server.http, &gone).await;
        assert!(!file.exists(), "{}", file.display());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_and_edge_keep_the_dvr_window_and_delete_after_it() {
    with_safety_net(async {
        use crate::s3_storage::{BUCKET, PREFIX, S3Server, TOKEN_SECRET, serve, write_config};
        let s3 = S3Server::moto().await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &s3.endpoint(), BUCKET, 3);
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace("playlist_window = 3\n", "playlist_window = 3\ndvr_window_secs = 20\n"),
        )
        .unwrap();
        let (_ingest, rtmp, _) = serve(&config, (s3.access_key_id, s3.secret_access_key)).unwrap();
        let (_edge, edge) = crate::edge::start_edge(&config, &s3, "edge");
        let _publisher = PacedPublisher::start(rtmp, dir.path(), 120, 50);
        let token = mint_token(
            &sealcast::auth::Secret::new(TOKEN_SECRET.as_bytes().to_vec()),
            "live/demo",
            600,
        );
        let gone = window_holds_dvr_secs(edge, &token, 20.0).await;
        deleted_after_the_window(edge, &gone).await;
        // Listed only: segments are being deleted meanwhile.
        use futures_util::TryStreamExt as _;
        use object_store::ObjectStore as _;
        let keys: Vec<String> = s3
            .client()
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        let key = format!("{PREFIX}live/demo/{gone}");
        assert!(keys.iter().any(|k| k.ends_with(".ts")), "{keys:?}");
        assert!(!keys.contains(&key), "{key} still in the bucket");
    })
    .await;
}

/// Runs dvr.mjs with `config`; its JSON report.
async fn run_dvr_page(config: Value) -> Value {
    tokio::task::spawn_blocking(move || {
        let out = tempfile::tempdir().unwrap();
        let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
        let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let mut node = Proc::spawn(
            "node dvr.mjs",
            Command::new("node")
                .arg(browser.join("dvr.mjs"))
                .arg(config.to_string())
                .current_dir(&browser)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_path).unwrap())
                .stderr(std::fs::File::create(&stderr_path).unwrap()),
        );
        node.wait(Duration::from_secs(170));
        let stdout = read_text(&stdout_path);
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("dvr.mjs output ({e}):\n{stdout}\nstderr:\n{}", read_text(&stderr_path)))
    })
    .await
    .unwrap()
}

fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} in {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_seeks_back_a_minute_in_a_live_dvr_window() {
    with_safety_net(seek_back_a_minute(false)).await;
}

/// The same with one-time key tickets: the keys of older segments come with
/// the tickets of the playlist hls.js refreshed last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_seeks_back_a_minute_with_one_time_tickets() {
    with_safety_net(seek_back_a_minute(true)).await;
}

// The positions reached go to the test log (shown with --nocapture).
#[allow(clippy::print_stderr)]
async fn seek_back_a_minute(tickets: bool) {
    {
        crate::browser::require_tools();
        // One Chromium at a time (browser.rs's tests too): frame counts starve otherwise.
        let _turn = crate::browser::ONE_BROWSER_AT_A_TIME.lock().await;
        let server = TestServer::start_with_config("[hls]\nsegment_duration_secs = 2\ndvr_window_secs = 120\n", |c| {
            c.auth.one_time_key_tickets = tickets;
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        // 76 s at once, then real time: the viewer joins a stream with more
        // than a minute behind its live edge.
        let _publisher = PacedPublisher::start(server.rtmp, dir.path(), 160, 76);
        playlist::poll(server.http, PLAYLIST, "70 s listed", |t| {
            playlist::parse(t).segments.iter().map(|s| s.duration_secs).sum::<f64>() >= 70.0
        })
        .await;
        let report = run_dvr_page(serde_json::json!({
            "base": format!("http://{}", server.http),
            "stream": "live/demo",
            "token": server.token("live/demo", 600),
            "seekBackSecs": 60,
            "playSecs": 6,
            "chromium": crate::browser::CHROMIUM,
            "userDataDir": dir.path().join("chromium"),
        }))
        .await;
        assert!(report.get("error").is_none(), "{report:#}");
        let joined = num(&report, &["joined", "currentTime"]);
        let target = num(&report, &["target"]);
        // The seekable range reached back that far.
        assert!(num(&report, &["joined", "seekableStart"]) <= target, "{report:#}");
        // Frames decoded after the seek, from a minute back: playing, not back at the live edge.
        let resumed = num(&report, &["resumed", "currentTime"]);
        let played = num(&report, &["played", "currentTime"]);
        eprintln!(
            "joined at {joined:.1} s (seekable from {:.1}), seeked to {target:.1}, playing at {resumed:.1} then {played:.1}, frames {} -> {}",
            num(&report, &["joined", "seekableStart"]),
            num(&report, &["resumed", "frames"]),
            num(&report, &["played", "frames"])
        );
        assert!(played > resumed + 2.0, "{report:#}");
        assert!(played < joined - 40.0, "{report:#}");
        assert!(
            num(&report, &["played", "frames"]) > num(&report, &["resumed", "frames"]) + 30.0,
            "{report:#}"
        );
        // The fragments around the seek target came with their keys: 200 for each key they named.
        let seeked_at = num(&report, &["joined", "now"]);
        let frags = report["frags"].as_array().unwrap();
        let old: Vec<&Value> = frags
            .iter()
            .filter(|f| num(f, &["at"]) >= seeked_at && num(f, &["start"]) <= target + 4.0)
            .collect();
        assert!(
            !old.is_empty(),
            "no fragment from before the seek target loaded after it: {report:#}"
        );
        let keys = report["keyResponses"].as_array().unwrap();
        for frag in old {
            let key = frag["key"].as_str().unwrap();
            let statuses: Vec<u64> = keys
                .iter()
                .filter(|k| k["path"] == key)
                .map(|k| k["status"].as_u64().unwrap())
                .collect();
            assert!(statuses.contains(&200), "key {key} of {frag}: {statuses:?}");
        }
        assert_eq!(server.keys.tickets_enabled(), tickets);
    }
}
