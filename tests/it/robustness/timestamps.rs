//! Timestamps and codecs that misbehave, each pushed in process and judged
//! on its playlist, its decrypted timeline and ffmpeg's playback.

use super::harness::*;
use super::*;

// --- timestamps and codecs -------------------------------------------------

/// One misbehaving stream for [`check_stream_case`].
struct Case {
    name: &'static str,
    fixture: Fixture,
    tags: Vec<MediaTag>,
    /// Where `#EXT-X-DISCONTINUITY` must be: the number of them.
    discontinuities: usize,
    /// Frames the player must decode at least 95% of.
    playable: crate::support::FrameCounts,
}

impl Case {
    /// A fixture's tags rewritten by `rewrite`; by default every sent frame
    /// must play.
    fn new(name: &'static str, fixture: &str, rewrite: impl FnOnce(&[MediaTag]) -> Vec<MediaTag>) -> Case {
        let fixture = Fixture::load(fixture);
        let tags = rewrite(&fixture.tags);
        Case {
            name,
            playable: frames_in(&tags),
            fixture,
            tags,
            discontinuities: 0,
        }
    }

    fn discontinuities(mut self, n: usize) -> Case {
        self.discontinuities = n;
        self
    }
}

/// Pushes the case's tags in process, waits for the playlist to end, and
/// checks it: the playlist rules, the number of discontinuities, the
/// timeline of the decrypted segments ([`check_timeline`]), and ffmpeg
/// playing the whole playlist without an error. Returns the probed segments
/// (decrypted under `scratch`) for checks of the case's own.
async fn check_stream_case(case: Case, scratch: &Path) -> Vec<ProbedSegment> {
    let server = TestServer::start("").await;
    let endpoint = Endpoint::in_process(&server);
    let stream = "live/demo";
    push_tags(server.rtmp, DEMO_KEY, &case.fixture, &case.tags).await;
    let text = endpoint.wait_for_end(stream).await;
    let playlist = check_playlist(&text);
    assert_eq!(
        discontinuities(&playlist).len(),
        case.discontinuities,
        "{}: discontinuities\n{text}",
        case.name
    );
    let segments = probe_segments(&endpoint, stream, &playlist, scratch).await;
    check_timeline(&segments, case.name);
    let playback = played(endpoint.play(stream, case.name, scratch)).await;
    playback.assert_plays(case.playable, case.name);
    server.stop().await;
    segments
}

/// Runs a case under the safety net; `more` checks its probed segments.
async fn run_case(case: Case, more: impl FnOnce(&[ProbedSegment])) {
    with_safety_net(async {
        let scratch = tempfile::tempdir().unwrap();
        let segments = check_stream_case(case, scratch.path()).await;
        more(&segments);
    })
    .await;
}

/// Index of the one segment marked as a discontinuity.
fn the_discontinuity(segments: &[ProbedSegment]) -> usize {
    let marked: Vec<usize> = (0..segments.len())
        .filter(|&i| segments[i].entry.discontinuity)
        .collect();
    assert_eq!(marked.len(), 1, "{marked:?}");
    marked[0]
}

/// Video DTS step (seconds) from the last packet before segment `at` to the
/// first in it.
fn video_step_into(segments: &[ProbedSegment], at: usize) -> f64 {
    let before = segments[at - 1].dts(true).next_back().expect("video before");
    let after = segments[at].dts(true).next().expect("video after");
    step_90k(before, after) as f64 / 90_000.0
}

/// (a) Timestamps jump 4 s back mid-GOP, as when an encoder's clock is reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backward_timestamp_jump() {
    let case = Case::new("backward jump", HIGH, |tags| {
        let at = inter_frame_at_or_after(tags, 5000);
        [&tags[..at], &shifted(&tags[at..], -4000)[..]].concat()
    });
    run_case(case.discontinuities(1), |segments| {
        let step = video_step_into(segments, the_discontinuity(segments));
        assert!((-4.0..-3.9).contains(&step), "{step} s at the discontinuity");
    })
    .await;
}

/// (b) Timestamps jump 60 s forward mid-GOP.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forward_timestamp_jump() {
    let case = Case::new("forward jump", HIGH, |tags| {
        let at = inter_frame_at_or_after(tags, 5000);
        [&tags[..at], &shifted(&tags[at..], 60_000)[..]].concat()
    });
    run_case(case.discontinuities(1), |segments| {
        let step = video_step_into(segments, the_discontinuity(segments));
        assert!((60.0..60.1).contains(&step), "{step} s at the discontinuity");
    })
    .await;
}

/// (b) Timestamps jump 8 s forward mid-GOP (an encoder that stalled): less
/// than ten targets, but a segment spanning the gap would last longer than
/// TARGETDURATION, so the gap is a discontinuity too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forward_timestamp_jump_of_a_few_seconds() {
    let case = Case::new("8 s forward jump", HIGH, |tags| {
        let at = inter_frame_at_or_after(tags, 5000);
        [&tags[..at], &shifted(&tags[at..], 8_000)[..]].concat()
    });
    run_case(case.discontinuities(1), |segments| {
        let step = video_step_into(segments, the_discontinuity(segments));
        assert!((8.0..8.1).contains(&step), "{step} s at the discontinuity");
    })
    .await;
}

/// (c) Timestamps start 5 s before the 32-bit millisecond wrap and cross it:
/// one continuous timeline. The 90 kHz clock wraps at the same point
/// (2^32 ms * 90 is a multiple of 2^33), which MPEG-TS readers expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timestamps_wrap_around_32_bits() {
    let case = Case::new("32-bit wrap", HIGH, |tags| shifted(tags, (1 << 32) - 5000));
    run_case(case, |segments| {
        let dts: Vec<i64> = segments.iter().flat_map(|s| s.dts(true)).collect();
        assert!(
            dts.windows(2).any(|w| w[1] < w[0]),
            "the 33-bit clock never wrapped: the case tests nothing"
        );
    })
    .await;
}

/// (d) Audio frames start 3 s after video (the AAC sequence header comes
/// first, as encoders send it): one timeline, audio joins the open segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_frames_start_late() {
    let case = Case::new("late audio frames", HIGH, |tags| {
        tags.iter()
            .filter(|t| t.kind == TagKind::Video || is_sequence_header(t) || t.timestamp_ms >= 3000)
            .cloned()
            .collect()
    });
    run_case(case, |segments| {
        let video = segments[0].dts(true).next().expect("video");
        let audio = segments[0].dts(false).next().expect("audio in the first segment");
        let late = step_90k(video, audio) as f64 / 90_000.0;
        assert!((2.9..3.1).contains(&late), "audio starts {late} s after video");
    })
    .await;
}

/// (d) The audio track itself appears 3 s after video (its sequence header
/// too): the program gains a track, so the next keyframe cuts with a
/// discontinuity (RFC 8216 4.3.2.3); the audio before it cannot be declared
/// in the open segment's PMT and is dropped. ffmpeg keeps the streams it
/// found in the first segment, so only video is required to play; the
/// segments after the discontinuity carry both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_track_appears_late() {
    let mut case = Case::new("late audio track", HIGH, |tags| {
        let header = tags
            .iter()
            .find(|t| t.kind == TagKind::Audio && is_sequence_header(t))
            .expect("an AAC sequence header");
        let mut out = Vec::new();
        for tag in tags {
            if tag.kind == TagKind::Audio {
                if is_sequence_header(tag) || tag.timestamp_ms < 3000 {
                    continue;
                }
                if !out.iter().any(|t: &MediaTag| t.kind == TagKind::Audio) {
                    out.push(MediaTag {
                        timestamp_ms: tag.timestamp_ms,
                        ..header.clone()
                    });
                }
            }
            out.push(tag.clone());
        }
        out
    })
    .discontinuities(1);
    case.playable.audio = 0;
    run_case(case, |segments| {
        let at = the_discontinuity(segments);
        for (i, segment) in segments.iter().enumerate() {
            let audio = segment.dts(false).count();
            assert_eq!(audio > 0, i >= at, "segment {i}: {audio} audio packets");
        }
    })
    .await;
}

/// (d) Audio stamped 200 ms ahead of video from a stream that starts at 0:
/// its first timestamps are "negative" (just below 2^32 as RTMP carries
/// them). The demuxer clamps them to the timeline's start; frames that would
/// repeat a DTS are dropped, never written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_stamped_before_the_start() {
    let mut case = Case::new("audio before zero", HIGH, |tags| {
        let mut out = Vec::new();
        for tag in tags {
            let shift = if tag.kind == TagKind::Audio { -200 } else { 0 };
            out.extend(shifted(std::slice::from_ref(tag), shift));
        }
        out
    });
    // About 200 ms of the audio falls before the start.
    case.playable.audio -= 10;
    run_case(case, |_| {}).await;
}

/// Audio/video drift: audio timestamps run 2% fast and 200 ms late; they are
/// written as sent (players sync on PTS), still monotonic per stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_drifts_from_video() {
    let case = Case::new("drift", HIGH, |tags| {
        tags.iter()
            .map(|t| match t.kind {
                TagKind::Audio => MediaTag {
                    timestamp_ms: t.timestamp_ms * 102 / 100 + 200,
                    ..t.clone()
                },
                _ => t.clone(),
            })
            .collect()
    });
    run_case(case, |segments| {
        let last = segments.last().expect("segments");
        let (video, audio) = (last.dts(true).last(), last.dts(false).last());
        let ahead = step_90k(video.expect("video"), audio.expect("audio")) as f64 / 90_000.0;
        assert!(ahead > 0.3, "audio only {ahead} s ahead at the end: no drift");
    })
    .await;
}

/// (e) An encoder restarting with a new resolution on the same connection:
/// the first 6 s of the 640x360 B-frame fixture, then the 426x240 baseline
/// fixture from its 6 s keyframe, with its sequence headers (new SPS/PPS and
/// a 44.1 kHz AAC config), timestamps continuing. The keyframe with the new
/// parameter sets starts a new segment after a discontinuity (RFC 8216
/// 4.3.2.3, encoding parameters), which hls.js needs to read the new SPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_sequence_headers_mid_stream() {
    let baseline = Fixture::load(BASELINE);
    let case = Case::new("new AVC config", HIGH, |tags| {
        let at = keyframe_at_or_after(tags, 6000);
        let from = keyframe_at_or_after(&baseline.tags, 6000);
        let offset = i64::from(tags[at].timestamp_ms) - i64::from(baseline.tags[from].timestamp_ms);
        let headers: Vec<MediaTag> = baseline
            .tags
            .iter()
            .filter(|t| is_sequence_header(t))
            .map(|t| MediaTag {
                timestamp_ms: tags[at].timestamp_ms,
                ..t.clone()
            })
            .collect();
        assert_eq!(headers.len(), 2, "an AVC and an AAC sequence header");
        [&tags[..at], &headers[..], &shifted(&baseline.tags[from..], offset)[..]].concat()
    });
    run_case(case.discontinuities(1), |segments| {
        let at = the_discontinuity(segments);
        let step = video_step_into(segments, at);
        assert!((0.0..0.1).contains(&step), "timestamps continue: {step} s");
        for (i, segment) in segments.iter().enumerate() {
            let want = if i < at { 640 } else { 426 };
            assert_eq!(segment.video_width(), Some(want), "segment {i}");
        }
    })
    .await;
}

/// (f) Audio only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_only_stream() {
    let case = Case::new("audio only", AUDIO_ONLY, <[MediaTag]>::to_vec);
    assert!(case.playable.video == 0 && case.playable.audio > 0);
    run_case(case, |segments| {
        assert!(segments.len() >= 2 && segments.iter().all(|s| s.dts(true).count() == 0));
    })
    .await;
}

/// (f) Video only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn video_only_stream() {
    let case = Case::new("video only", VIDEO_ONLY, <[MediaTag]>::to_vec);
    assert!(case.playable.video > 0 && case.playable.audio == 0);
    run_case(case, |segments| {
        assert!(segments.len() >= 2 && segments.iter().all(|s| s.dts(false).count() == 0));
    })
    .await;
}

#[test]
fn helpers_read_what_they_parse() {
    let framecrc = "#tb 0: 1/30\n#media_type 0: video\n#tb 1: 1/48000\n#media_type 1: audio\n\
        0, 0, 0, 1, 345600, 0x1\n1, 0, 0, 1024, 4096, 0x2\n1, 1024, 1024, 1024, 4096, 0x3\n";
    assert_eq!(framecrc_counts(framecrc), (1, 2));
    assert_eq!(framecrc_counts("#media_type 0: audio\n0, 0, 0, 1, 4, 0x1\n"), (0, 1));
    assert_eq!(step_90k(10, 20), 10);
    assert_eq!(step_90k(20, 10), -10);
    assert_eq!(step_90k(WRAP_33 - 5, 5), 10, "a wrap is a step forward");
    assert_eq!(step_90k(5, WRAP_33 - 5), -10);
    let tag = |kind, body: &[u8], ms| MediaTag {
        kind,
        timestamp_ms: ms,
        body: Bytes::copy_from_slice(body),
    };
    assert!(is_sequence_header(&tag(TagKind::Video, &[0x17, 0], 0)));
    assert!(is_sequence_header(&tag(TagKind::Audio, &[0xAF, 0], 0)));
    assert!(!is_sequence_header(&tag(TagKind::Audio, &[0xAF, 1], 0)));
    assert!(is_keyframe(&tag(TagKind::Video, &[0x17, 1], 0)));
    assert!(!is_keyframe(&tag(TagKind::Video, &[0x27, 1], 0)));
    let tags = [
        tag(TagKind::Video, &[0x17, 1], 0),
        tag(TagKind::Audio, &[0xAF, 1], 4000),
    ];
    assert_eq!(shifted(&tags, -1000)[0].timestamp_ms, u32::MAX - 999);
    assert_eq!(shifted(&tags, 1000)[1].timestamp_ms, 5000);
    assert_eq!(frames_in(&tags), crate::support::FrameCounts { video: 1, audio: 1 });
    assert_eq!(
        parse_running_line("sealcast is running: RTMP on 127.0.0.1:1935, HTTP on [::1]:8080"),
        Some(("127.0.0.1:1935".parse().unwrap(), "[::1]:8080".parse().unwrap()))
    );
}
