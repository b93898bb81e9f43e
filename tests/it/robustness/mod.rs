//! Ingest that survives what real deployments do to it (issue 4):
//!
//! - real encoders: ffmpeg, GStreamer `rtmp2sink` and GStreamer `rtmpsink`
//!   (librtmp, the RTMP stack OBS derives from) push a fixture without
//!   transcoding; ffmpeg plays each back through the key endpoint;
//! - a publisher that drops (no unpublish, or SIGKILLed) and comes back within
//!   the reconnect grace period, and after it;
//! - the server SIGKILLed mid-stream and started again on its data dir;
//! - timestamps and codecs that misbehave: backward and forward jumps, the
//!   32-bit millisecond wrap, late audio, a new AVC sequence header
//!   mid-stream, audio-only and video-only streams.
//!
//! Each is judged on the playlist text (media and discontinuity sequence
//! numbers, `#EXT-X-DISCONTINUITY`, `#EXT-X-ENDLIST`), on the decrypted
//! segments (per-stream DTS within each discontinuity-delimited run, probed
//! by ffprobe), and by ffmpeg playing the playlist with a playback token.
//!
//! The restart test runs the `sealcast` binary as a child process; the others
//! run the server in process. Every child process belongs to a guard that
//! ends it when dropped. Waiting is polling with a bound; no assertion
//! depends on how long something took.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::http;
use crate::support::playlist::{self, POLL_EVERY, POLL_LIMIT, ended, parse, segment_count};
use crate::support::process::{
    self, Playback, Player, Proc, STOP_LIMIT, framecrc_counts, parse_running_line, path_str, read_text, spawn_sealcast,
    write_private,
};
use crate::support::rtmp::{Fixture, MediaTag, PublishOutcome, Publisher};
use crate::support::server::{DEMO_KEY, TestServer, mint_token};
use crate::support::with_safety_net;
use bytes::Bytes;
use sealcast::auth::Secret;
use sealcast::crypto::{self, DataKey};
use sealcast::flv::TagKind;
use sealcast::hls::{ParsedPlaylist, SegmentEntry, parse_media_playlist};

use self::harness::*;

mod harness;
mod timestamps;

/// 10 s, H.264 High with B-frames 640x360 30 fps, AAC 48 kHz, keyframe every 2 s.
const HIGH: &str = "high-bframes-aac48k.flv";
/// 10 s, H.264 Constrained Baseline 426x240 25 fps, AAC 44.1 kHz, keyframe every 2 s.
const BASELINE: &str = "baseline-aac44k.flv";
/// 6 s of AAC 48 kHz, no video.
const AUDIO_ONLY: &str = "audio-only-aac48k.flv";
/// 6 s of H.264 Main 320x180 30 fps, keyframe every 1 s, no audio.
const VIDEO_ONLY: &str = "video-only-main.flv";

/// Bound for a child process to finish (a real-time push of a 10 s fixture
/// takes about 10 s; a live read ends shortly after it).
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// The token secret of child servers (in-process servers have their own).
const TOKEN_SECRET: &str = "robustness-token-secret-0123456789-0123456789";

// --- real encoders ---------------------------------------------------------

/// GStreamer remuxing a fixture to RTMP without transcoding, through `sink`
/// (`rtmp2sink` or `rtmpsink`), in real time.
fn gstreamer_publish(sink: &str, fixture: &str, url: &str, log: &Path) -> Proc {
    let location = crate::support::fixture(fixture);
    let pipeline = format!(
        "filesrc location={location} ! flvdemux name=d d.video ! queue ! h264parse ! flvmux name=m streamable=true ! \
         {sink} location={url} d.audio ! queue ! aacparse ! m.",
        location = location.display()
    );
    Proc::spawn(
        &format!("gst-launch-1.0 {sink}"),
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log).expect("create a publisher log")),
    )
}

/// `ffmpeg [-re] -i FIXTURE -c copy -f flv URL`.
fn ffmpeg_publish(fixture: &str, url: &str, real_time: bool, log: &Path) -> Proc {
    process::ffmpeg_publish(&format!("ffmpeg publisher {fixture}"), fixture, url, real_time, log)
}

/// ffmpeg, GStreamer rtmp2sink and GStreamer rtmpsink (librtmp) each push a
/// fixture to their own stream at the same time, without transcoding; each
/// playlist ends as one run (no discontinuity), and ffmpeg plays each back
/// through the key endpoint with a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_encoders_push_and_ffmpeg_plays_back() {
    with_safety_net(async {
        let root = tempfile::tempdir().unwrap();
        let encoders = [
            ("ffmpeg", "sk_robust_ffmpeg_0123456789", HIGH),
            ("rtmp2sink", "sk_robust_rtmp2sink_0123456789", BASELINE),
            ("rtmpsink", "sk_robust_rtmpsink_0123456789", BASELINE),
        ];
        let streams: Vec<(&str, &str)> = encoders.iter().map(|(name, key, _)| (*name, *key)).collect();
        write_child_config(root.path(), "reconnect_grace_secs = 1", &streams);
        let server = ChildServer::start(root.path(), "server").await;
        let endpoint = server.endpoint();

        let publishers: Vec<(&str, Proc)> = encoders
            .iter()
            .map(|(name, key, fixture)| {
                let url = format!("rtmp://{}/live/{key}", server.rtmp);
                let log = root.path().join(format!("publish-{name}.log"));
                let publisher = match *name {
                    "ffmpeg" => ffmpeg_publish(fixture, &url, false, &log),
                    sink => gstreamer_publish(sink, fixture, &url, &log),
                };
                (*name, publisher)
            })
            .collect();
        for (name, mut publisher) in publishers {
            let status = blocking(move || publisher.wait(CHILD_LIMIT)).await;
            let log = read_text(&root.path().join(format!("publish-{name}.log")));
            assert!(status.success(), "{name} publisher failed ({status}): {log}");
        }

        for (name, _, fixture) in encoders {
            let stream = format!("live/{name}");
            let text = endpoint.wait_for_end(&stream).await;
            let playlist = check_playlist(&text);
            assert_eq!(playlist.media_sequence, 0, "{name}\n{text}");
            assert!(playlist.segments.len() >= 3, "{name}\n{text}");
            assert!(discontinuities(&playlist).is_empty(), "{name}: a discontinuity\n{text}");
            let listed: f64 = playlist.segments.iter().map(|s| s.duration_secs).sum();
            assert!((listed - 10.0).abs() < 0.5, "{name}: {listed} s listed\n{text}");

            let want = blocking(move || crate::support::count_frames(&crate::support::fixture(fixture))).await;
            let playback = played(endpoint.play(&stream, name, root.path())).await;
            playback.assert_plays(want, name);
        }
        let log = server.log_text();
        assert!(!log.contains("skipping a tag"), "a tag was refused:\n{log}");
    })
    .await;
}

// --- reconnects ------------------------------------------------------------

/// The encoder drops (closes without unpublishing) after 6 s of the B-frame
/// fixture and comes back within the grace period with the whole fixture,
/// timestamps starting over. The partial segment is flushed; the playlist
/// never ends in between; it goes on with growing sequence numbers and one
/// `#EXT-X-DISCONTINUITY`; it ends only after the final publish plus the
/// grace. A live ffmpeg started before the reconnect plays across it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnect_within_grace_continues_the_playlist() {
    with_safety_net(async {
        let server = TestServer::start("[hls]\nreconnect_grace_secs = 3\n").await;
        let endpoint = Endpoint::in_process(&server);
        let scratch = tempfile::tempdir().unwrap();
        let stream = "live/demo";
        let fixture = Fixture::load(HIGH);
        let split = keyframe_at_or_after(&fixture.tags, 6000);
        let first_part = &fixture.tags[..split];

        let mut first = Publisher::publish(server.rtmp, DEMO_KEY).await;
        first.send_metadata(&fixture.metadata).await;
        first.send_tags(first_part).await;
        first.close().await;
        // Cut at the 4 s keyframe, then the 4-6 s tail flushed on the drop.
        let text = endpoint
            .poll(stream, "the flushed partial segment", |t| segment_count(t) == 2)
            .await;
        assert!(!ended(&text), "the playlist ended right after the drop\n{text}");
        let before = check_playlist(&text);
        let listed: f64 = before.segments.iter().map(|s| s.duration_secs).sum();
        assert!((listed - 6.0).abs() < 0.1, "{listed} s listed after the drop\n{text}");

        let player = endpoint.play(stream, "within-grace", scratch.path());
        let mut second = publish_when_free(server.rtmp, DEMO_KEY).await;
        let text = endpoint.playlist(stream).await.expect("a playlist");
        assert!(!ended(&text), "ENDLIST within the grace period\n{text}");
        second.send_fixture(&fixture).await;
        second.finish().await;
        let text = endpoint
            .poll(stream, "the second publish's segments", |t| segment_count(t) == 5)
            .await;
        assert!(!ended(&text), "ENDLIST right after the publisher left\n{text}");

        let text = endpoint.wait_for_end(stream).await;
        let after = check_playlist(&text);
        assert_eq!(after.media_sequence, 0, "{text}");
        assert_eq!(after.discontinuity_sequence, 0, "{text}");
        assert_eq!(
            discontinuities(&after),
            vec![2],
            "one discontinuity, at the reconnect\n{text}"
        );
        for (seq, uri) in uris_by_sequence(&before) {
            assert_eq!(
                uris_by_sequence(&after).get(&seq),
                Some(&uri),
                "segment {seq} changed\n{text}"
            );
        }

        let playback = played(player).await;
        playback.assert_plays(
            add(frames_in(first_part), frames_in(&fixture.tags)),
            "across the reconnect",
        );
        server.stop().await;
    })
    .await;
}

/// The encoder dies (ffmpeg SIGKILLed mid-push); the playlist ends after the
/// grace period. A later publish continues it: no sequence number reused,
/// old segments listed as they were, a discontinuity at the boundary; ffmpeg
/// plays the whole of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnect_after_grace_continues_the_sequence() {
    with_safety_net(async {
        let server =
            TestServer::start("[hls]\nreconnect_grace_secs = 1\nsegment_duration_secs = 2\nplaylist_window = 10\n")
                .await;
        let endpoint = Endpoint::in_process(&server);
        let scratch = tempfile::tempdir().unwrap();
        let stream = "live/demo";

        let url = format!("rtmp://{}/live/{DEMO_KEY}", server.rtmp);
        let log = scratch.path().join("publish-killed.log");
        let mut encoder = ffmpeg_publish(BASELINE, &url, true, &log);
        endpoint
            .poll(stream, "a first segment", |t| segment_count(t) >= 1)
            .await;
        let status = blocking(move || encoder.kill()).await;
        assert!(!status.success(), "the encoder finished before it was killed");

        let text = endpoint.wait_for_end(stream).await;
        let before = check_playlist(&text);
        let listed: f64 = before.segments.iter().map(|s| s.duration_secs).sum();
        assert!(listed < 9.0, "the killed push lists {listed} s\n{text}");
        let first_part = endpoint
            .frames_of(stream, &before.segments, &scratch.path().join("first.ts"))
            .await;
        let old = uris_by_sequence(&before);
        let next = before.media_sequence + before.segments.len() as u64;

        let fixture = Fixture::load(HIGH);
        push_tags(server.rtmp, DEMO_KEY, &fixture, &fixture.tags).await;
        let text = endpoint
            .poll(stream, "the new publish, ended", |t| {
                ended(t) && segment_count(t) > before.segments.len()
            })
            .await;
        let after = check_playlist(&text);
        assert_eq!(after.media_sequence, before.media_sequence, "{text}");
        let new = uris_by_sequence(&after);
        for (seq, uri) in &old {
            assert_eq!(new.get(seq), Some(uri), "segment {seq} changed\n{text}");
        }
        let boundary = usize::try_from(next - after.media_sequence).unwrap();
        assert_eq!(discontinuities(&after), vec![boundary], "{text}");
        for (seq, uri) in new.range(next..) {
            assert!(!old.values().any(|u| u == uri), "{uri} (segment {seq}) reused\n{text}");
        }

        let playback = played(endpoint.play(stream, "after-grace", scratch.path())).await;
        playback.assert_plays(add(first_part, frames_in(&fixture.tags)), "across the republish");
        server.stop().await;
    })
    .await;
}

// --- SIGKILL and restart ---------------------------------------------------

/// Segment files in a stream directory.
fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".ts"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The server is SIGKILLed while a publish is live, after an earlier
/// reconnect left a discontinuity that has slid out of the window (so
/// DISCONTINUITY-SEQUENCE is 1). Started again on the same data dir, it serves
/// the playlist as it was; a republish (ffmpeg, real time) continues MEDIA-
/// and DISCONTINUITY-SEQUENCE, no sequence number names other content, and a
/// live ffmpeg started on the restored playlist plays across the boundary.
/// Segments that had left the window before the kill are deleted on
/// schedule by the new process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_restart_continue_the_sequences() {
    with_safety_net(async {
        let root = tempfile::tempdir().unwrap();
        write_child_config(
            root.path(),
            "segment_duration_secs = 2\nplaylist_window = 3\nreconnect_grace_secs = 5",
            &[("demo", DEMO_KEY)],
        );
        let stream = "live/demo";
        let stream_dir = root.path().join("data/live/demo");
        let mut server = ChildServer::start(root.path(), "first").await;
        let endpoint = server.endpoint();
        let high = Fixture::load(HIGH);
        let baseline = Fixture::load(BASELINE);

        // Segments 0-4, the reconnect, then 5-8 cut while the publish is live
        // (the 8-10 s tail is still open when the server dies).
        let mut publisher = Publisher::publish(server.rtmp, DEMO_KEY).await;
        publisher.send_fixture(&high).await;
        publisher.close().await;
        endpoint
            .poll(stream, "segment 4", |t| {
                parse(t).segments.last().is_some_and(|s| s.sequence == 4)
            })
            .await;
        let mut live = publish_when_free(server.rtmp, DEMO_KEY).await;
        live.send_fixture(&baseline).await;
        let persisted_path = stream_dir.join("index.m3u8");
        let persisted = playlist::wait_for("segment 8 in the persisted playlist", POLL_LIMIT, || async {
            let text = read_text(&persisted_path);
            parse_media_playlist(&text)
                .is_ok_and(|p| p.segments.last().is_some_and(|s| s.sequence == 8))
                .then_some(text)
        })
        .await;
        server.sigkill();
        drop(live);
        let before = check_playlist(&persisted);
        assert!(!before.ended, "{persisted}");
        assert_eq!(
            (before.media_sequence, before.discontinuity_sequence),
            (6, 1),
            "{persisted}"
        );
        let listed_before: Vec<String> = before.segments.iter().map(|s| s.uri.clone()).collect();
        let orphans: Vec<String> = segment_files(&stream_dir)
            .into_iter()
            .filter(|f| !listed_before.contains(f))
            .collect();
        assert_eq!(orphans.len(), 6, "segments 0-5 left the window, not yet deleted");

        let server = ChildServer::start(root.path(), "second").await;
        let endpoint = server.endpoint();
        let files = segment_files(&stream_dir);
        assert!(
            orphans.iter().all(|o| files.contains(o)),
            "orphans deleted at once, not on schedule"
        );
        let text = endpoint.playlist(stream).await.expect("the restored playlist");
        let restored = check_playlist(&text);
        assert_eq!(uris_by_sequence(&restored), uris_by_sequence(&before), "{text}");
        assert_eq!(
            (restored.media_sequence, restored.discontinuity_sequence, restored.ended),
            (6, 1, false),
            "{text}"
        );

        // A live player on the restored playlist, then the encoder returns.
        let player = endpoint.play(stream, "restart", root.path());
        let url = format!("rtmp://{}/live/{DEMO_KEY}", server.rtmp);
        let mut encoder = ffmpeg_publish(HIGH, &url, true, &root.path().join("publish-after-restart.log"));
        let restored_frames = endpoint
            .frames_of(stream, &restored.segments, &root.path().join("restored.ts"))
            .await;
        let text = endpoint
            .poll(stream, "segment 9", |t| {
                parse(t).segments.iter().any(|s| s.sequence == 9)
            })
            .await;
        let first_new = check_playlist(&text);
        let nine = first_new.segments.iter().find(|s| s.sequence == 9).expect("segment 9");
        assert!(nine.discontinuity, "no discontinuity at the restart boundary\n{text}");
        assert!(!listed_before.contains(&nine.uri), "{} reused\n{text}", nine.uri);

        // The previous run's expired segments go on schedule; what is listed stays.
        let deadline = Instant::now() + POLL_LIMIT;
        loop {
            // Playlist first: a segment is written before it is listed.
            let listed = endpoint.playlist(stream).await.map(|t| parse(&t)).expect("a playlist");
            let files = segment_files(&stream_dir);
            if orphans.iter().all(|o| !files.contains(o)) {
                for segment in &listed.segments {
                    assert!(files.contains(&segment.uri), "listed {} is gone", segment.uri);
                }
                break;
            }
            assert!(
                Instant::now() < deadline,
                "orphans still there: {orphans:?}\n{}",
                server.log_text()
            );
            tokio::time::sleep(POLL_EVERY).await;
        }

        let status = blocking(move || encoder.wait(CHILD_LIMIT)).await;
        assert!(status.success(), "publisher after the restart failed: {status}");
        let text = endpoint.wait_for_end(stream).await;
        let after = check_playlist(&text);
        assert!(after.media_sequence > before.media_sequence, "{text}");
        let (old, new) = (uris_by_sequence(&before), uris_by_sequence(&after));
        for (seq, uri) in &new {
            match old.get(seq) {
                Some(old_uri) => assert_eq!(uri, old_uri, "segment {seq} renamed\n{text}"),
                None => {
                    assert!(*seq > 8, "segment {seq} reused a number\n{text}");
                    assert!(!listed_before.contains(uri), "{uri} reused\n{text}");
                }
            }
        }
        // One discontinuity more than before the kill, counted whether its
        // segment is still listed or has slid out.
        let total = after.discontinuity_sequence + discontinuities(&after).len() as u64;
        assert_eq!(total, 2, "{text}");

        let playback = played(player).await;
        let want = add(
            restored_frames,
            blocking(|| crate::support::count_frames(&crate::support::fixture(HIGH))).await,
        );
        playback.assert_plays(want, "across the restart");
    })
    .await;
}
