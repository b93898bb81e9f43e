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

// --- child processes -------------------------------------------------------

/// Runs blocking work (child processes, ffprobe) off the async workers; a
/// panic inside keeps its message.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

// --- the sealcast binary ---------------------------------------------------

/// `sealcast serve --config ROOT/sealcast.toml` as a child process, on
/// 127.0.0.1:0 ports, with its data dir under ROOT.
struct ChildServer {
    process: Proc,
    rtmp: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
}

/// Writes ROOT/sealcast.toml: streams `live/NAME` with the given publish keys,
/// `hls` appended under `[hls]`.
fn write_child_config(root: &Path, hls: &str, streams: &[(&str, &str)]) {
    let secret = root.join("token_secret");
    write_private(&secret, TOKEN_SECRET);
    let mut text = format!(
        "[rtmp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [storage]\ndata_dir = {data:?}\n[auth]\ntoken_secret_file = {secret:?}\n[hls]\n{hls}\n",
        data = root.join("data"),
        secret = secret,
    );
    for (name, key) in streams {
        text.push_str(&format!(
            "[[streams]]\napp = \"live\"\nname = \"{name}\"\nkey = \"{key}\"\n"
        ));
    }
    write_private(&root.join("sealcast.toml"), &text);
}

impl ChildServer {
    /// Starts the server on ROOT's config; `label` names its log. Returns once
    /// it answers /healthz.
    async fn start(root: &Path, label: &str) -> ChildServer {
        let root = root.to_owned();
        let label = label.to_owned();
        let server = blocking(move || ChildServer::spawn(&root, &label)).await;
        let deadline = Instant::now() + POLL_LIMIT;
        while http::get(server.http, "/healthz").await.status != 200 {
            assert!(Instant::now() < deadline, "no /healthz:\n{}", server.log_text());
            tokio::time::sleep(POLL_EVERY).await;
        }
        server
    }

    fn spawn(root: &Path, label: &str) -> ChildServer {
        let log = root.join(format!("{label}.log"));
        let config = root.join("sealcast.toml");
        // The banner's first line has the addresses.
        let (mut process, rx) = spawn_sealcast(&["serve", "--config", path_str(&config)], root, &log);
        let first = match rx.recv_timeout(POLL_LIMIT) {
            Ok(line) => line,
            Err(error) => {
                process.wait_within(STOP_LIMIT);
                panic!("sealcast printed no banner ({error}):\n{}", read_text(&log));
            }
        };
        let (rtmp, http) =
            parse_running_line(&first).unwrap_or_else(|| panic!("unexpected first banner line: {first:?}"));
        ChildServer {
            process,
            rtmp,
            http,
            log,
        }
    }

    fn log_text(&self) -> String {
        read_text(&self.log)
    }

    /// SIGKILL: no shutdown, no flush, no ENDLIST.
    fn sigkill(&mut self) {
        let status = self.process.kill();
        assert!(
            !status.success(),
            "sealcast exited on its own ({status}) before SIGKILL"
        );
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            http: self.http,
            secret: Secret::new(TOKEN_SECRET.as_bytes().to_vec()),
        }
    }
}

// --- playlists over HTTP ---------------------------------------------------

/// A server's HTTP side and its token secret, whether it runs in process or
/// as a child.
#[derive(Clone)]
struct Endpoint {
    http: SocketAddr,
    secret: Secret,
}

impl Endpoint {
    fn in_process(server: &TestServer) -> Endpoint {
        Endpoint {
            http: server.http,
            secret: server.secret.clone(),
        }
    }

    /// A playback token for `stream`, valid for an hour.
    fn token(&self, stream: &str) -> String {
        mint_token(&self.secret, stream, 3600)
    }

    /// The playlist fetched with a token (so key URIs carry it), or `None`
    /// while the server answers 404.
    async fn playlist(&self, stream: &str) -> Option<String> {
        playlist::fetch(self.http, &self.playlist_path(stream)).await
    }

    fn playlist_path(&self, stream: &str) -> String {
        format!("/{stream}/index.m3u8?token={}", self.token(stream))
    }

    /// Polls the playlist until `done` holds for its text; returns that text.
    async fn poll(&self, stream: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        playlist::poll(self.http, &self.playlist_path(stream), what, done).await
    }

    async fn wait_for_end(&self, stream: &str) -> String {
        self.poll(stream, "#EXT-X-ENDLIST", ended).await
    }

    /// Fetches a segment and its key (the key URI carries the token) and
    /// decrypts it; checks it is ciphertext on the wire and TS inside.
    async fn decrypted(&self, stream: &str, segment: &SegmentEntry) -> Vec<u8> {
        let path = format!("/{stream}/{}", segment.uri);
        let response = http::get(self.http, &path).await;
        assert_eq!(response.status, 200, "{path}");
        let mut body = response.body;
        assert!(!crate::support::has_ts_sync(&body), "{path} is served as plaintext");
        let tag = segment
            .key
            .as_ref()
            .unwrap_or_else(|| panic!("{path} is not encrypted"));
        let key = http::get(self.http, &tag.uri).await;
        assert_eq!(key.status, 200, "key {}: {}", tag.uri, key.text());
        let key: [u8; 16] = key.body.as_slice().try_into().expect("a 16-byte key");
        crypto::decrypt_segment(&DataKey::from_bytes(key), tag.iv, &mut body)
            .unwrap_or_else(|e| panic!("{path} does not decrypt: {e}"));
        assert!(
            crate::support::has_ts_sync(&body) && body.len() % 188 == 0,
            "{path} does not decrypt to TS"
        );
        body
    }

    /// Decrypts `segments` into one TS file; returns its decoded frame counts.
    async fn frames_of(&self, stream: &str, segments: &[SegmentEntry], out: &Path) -> crate::support::FrameCounts {
        let mut ts = Vec::new();
        for segment in segments {
            ts.extend(self.decrypted(stream, segment).await);
        }
        std::fs::write(out, &ts).expect("write decrypted TS");
        let out = out.to_owned();
        blocking(move || crate::support::count_frames(&out)).await
    }

    /// ffmpeg reading the playlist with a token, every frame to framecrc.
    fn play(&self, stream: &str, label: &str, dir: &Path) -> Player {
        let url = format!("http://{}/{stream}/index.m3u8?token={}", self.http, self.token(stream));
        Player::start(&url, label, dir)
    }
}

/// Media sequence number → segment URI.
fn uris_by_sequence(playlist: &ParsedPlaylist) -> BTreeMap<u64, String> {
    playlist.segments.iter().map(|s| (s.sequence, s.uri.clone())).collect()
}

/// Checks what every playlist must satisfy: `#EXT-X-ENDLIST` at most once and
/// last, consecutive media sequence numbers, every EXTINF rounded to the
/// nearest integer within TARGETDURATION (RFC 8216 4.3.3.1). Returns it parsed.
fn check_playlist(text: &str) -> ParsedPlaylist {
    let endlists = text.lines().filter(|l| l.trim() == "#EXT-X-ENDLIST").count();
    assert!(endlists <= 1, "ENDLIST more than once\n{text}");
    if endlists == 1 {
        assert_eq!(text.lines().last(), Some("#EXT-X-ENDLIST"), "ENDLIST last\n{text}");
    }
    let parsed = parse(text);
    for (i, segment) in parsed.segments.iter().enumerate() {
        assert_eq!(segment.sequence, parsed.media_sequence + i as u64, "{text}");
        assert!(segment.duration_secs > 0.0, "{text}");
        assert!(
            segment.duration_secs.round() as u32 <= parsed.target_duration_secs,
            "EXTINF {} > TARGETDURATION {}\n{text}",
            segment.duration_secs,
            parsed.target_duration_secs
        );
    }
    parsed
}

/// Positions (indexes into the listed segments) of `#EXT-X-DISCONTINUITY`.
fn discontinuities(playlist: &ParsedPlaylist) -> Vec<usize> {
    playlist
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.discontinuity)
        .map(|(i, _)| i)
        .collect()
}

// --- ffmpeg as a player ----------------------------------------------------

/// Waits for a player off the runtime's threads.
async fn played(player: Player) -> Playback {
    blocking(move || player.finish(CHILD_LIMIT)).await
}

// --- FLV tags --------------------------------------------------------------

/// An AVC sequence header or AAC AudioSpecificConfig tag.
fn is_sequence_header(tag: &MediaTag) -> bool {
    match tag.kind {
        TagKind::Video => tag.body.len() > 1 && tag.body[0] & 0x0F == 7 && tag.body[1] == 0,
        TagKind::Audio => tag.body.len() > 1 && tag.body[0] >> 4 == 10 && tag.body[1] == 0,
        TagKind::Script => false,
    }
}

/// An AVC NALU tag of a keyframe.
fn is_keyframe(tag: &MediaTag) -> bool {
    tag.kind == TagKind::Video && tag.body.len() > 1 && tag.body[0] >> 4 == 1 && tag.body[1] == 1
}

/// Media frames (not sequence headers) among `tags`.
fn frames_in(tags: &[MediaTag]) -> crate::support::FrameCounts {
    let mut counts = crate::support::FrameCounts::default();
    for tag in tags.iter().filter(|t| !is_sequence_header(t)) {
        match tag.kind {
            TagKind::Video => counts.video += 1,
            TagKind::Audio => counts.audio += 1,
            TagKind::Script => {}
        }
    }
    counts
}

fn add(a: crate::support::FrameCounts, b: crate::support::FrameCounts) -> crate::support::FrameCounts {
    crate::support::FrameCounts {
        video: a.video + b.video,
        audio: a.audio + b.audio,
    }
}

/// Index of the first video keyframe at or after `ms`.
fn keyframe_at_or_after(tags: &[MediaTag], ms: u32) -> usize {
    tags.iter()
        .position(|t| is_keyframe(t) && t.timestamp_ms >= ms)
        .unwrap_or_else(|| panic!("no keyframe at or after {ms} ms"))
}

/// Index of the first video frame at or after `ms` that is not a keyframe.
fn inter_frame_at_or_after(tags: &[MediaTag], ms: u32) -> usize {
    tags.iter()
        .position(|t| t.kind == TagKind::Video && !is_keyframe(t) && !is_sequence_header(t) && t.timestamp_ms >= ms)
        .unwrap_or_else(|| panic!("no inter frame at or after {ms} ms"))
}

/// `tags` with `offset_ms` added to every timestamp, modulo 2^32 as RTMP has it.
fn shifted(tags: &[MediaTag], offset_ms: i64) -> Vec<MediaTag> {
    tags.iter()
        .map(|t| MediaTag {
            timestamp_ms: (i64::from(t.timestamp_ms) + offset_ms).rem_euclid(1 << 32) as u32,
            ..t.clone()
        })
        .collect()
}

/// Connects to app `live` and publishes as soon as the stream is free. An
/// encoder that reconnects at once can arrive while the server still
/// flushes its previous connection, and is refused until then; encoders
/// retry, and so does this.
async fn publish_when_free(rtmp: SocketAddr, key: &str) -> Publisher {
    let deadline = Instant::now() + POLL_LIMIT;
    loop {
        let mut publisher = Publisher::connect(rtmp, "live").await;
        match publisher.request_publish(key).await {
            PublishOutcome::Accepted => return publisher,
            refused => assert!(Instant::now() < deadline, "publish still refused: {refused:?}"),
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// In-process publish of `tags` after the fixture's metadata; ends with
/// `deleteStream` like an encoder that stops.
async fn push_tags(rtmp: SocketAddr, key: &str, fixture: &Fixture, tags: &[MediaTag]) {
    let mut publisher = publish_when_free(rtmp, key).await;
    publisher.send_metadata(&fixture.metadata).await;
    publisher.send_tags(tags).await;
    publisher.finish().await;
}

// --- decrypted media -------------------------------------------------------

/// One packet as ffprobe reads it from a TS segment: raw 33-bit timestamps.
#[derive(Debug, Clone, Copy)]
struct Packet {
    video: bool,
    pts: i64,
    dts: i64,
}

/// Packets of a TS file in file order, timestamps as written (ffprobe's
/// wrap correction off: a stream that starts near 2^33 would otherwise be
/// shifted to negative values).
fn probe_packets(path: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-correct_ts_overflow", "0", "-f", "mpegts"])
        .args(["-show_entries", "packet=codec_type,pts,dts", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is required (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let packets = json["packets"].as_array().cloned().unwrap_or_default();
    packets
        .iter()
        .map(|p| {
            let dts = p["dts"]
                .as_i64()
                .unwrap_or_else(|| panic!("{}: packet without DTS: {p}", path.display()));
            Packet {
                video: p["codec_type"] == "video",
                pts: p["pts"].as_i64().unwrap_or(dts),
                dts,
            }
        })
        .collect()
}

const WRAP_33: i64 = 1 << 33;

/// `to - from` on the 33-bit MPEG-TS clock, read as the nearest signed step.
fn step_90k(from: i64, to: i64) -> i64 {
    let d = (to - from).rem_euclid(WRAP_33);
    if d >= WRAP_33 / 2 { d - WRAP_33 } else { d }
}

/// A listed segment with the packets of its decrypted TS.
struct ProbedSegment {
    entry: SegmentEntry,
    /// The decrypted TS.
    path: PathBuf,
    packets: Vec<Packet>,
}

impl ProbedSegment {
    fn dts(&self, video: bool) -> impl DoubleEndedIterator<Item = i64> + '_ {
        self.packets.iter().filter(move |p| p.video == video).map(|p| p.dts)
    }

    /// Width of the video in the segment, as ffprobe reads its SPS.
    fn video_width(&self) -> Option<u32> {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v", "-show_entries", "stream=width"])
            .args(["-of", "csv=p=0"])
            .arg(&self.path)
            .output()
            .expect("ffprobe is required");
        String::from_utf8_lossy(&out.stdout).lines().next()?.trim().parse().ok()
    }
}

/// Decrypts and probes every listed segment.
async fn probe_segments(
    endpoint: &Endpoint,
    stream: &str,
    playlist: &ParsedPlaylist,
    dir: &Path,
) -> Vec<ProbedSegment> {
    let mut probed = Vec::new();
    for entry in &playlist.segments {
        let ts = endpoint.decrypted(stream, entry).await;
        let path = dir.join(format!("{}.plain.ts", entry.uri));
        std::fs::write(&path, ts).expect("write decrypted TS");
        let probe_path = path.clone();
        let packets = blocking(move || probe_packets(&probe_path)).await;
        assert!(!packets.is_empty(), "segment {} holds no packets", entry.uri);
        probed.push(ProbedSegment {
            entry: entry.clone(),
            path,
            packets,
        });
    }
    probed
}

/// The timeline rules, on the decrypted segments:
/// - within each run of segments between discontinuities, each stream's DTS
///   strictly increases (on the 33-bit clock, so a wrap is a small step
///   forward), and no PTS is before its DTS;
/// - where no discontinuity separates two segments, the timeline is
///   continuous: the second starts (first DTS of the deciding track: video
///   if any, else audio) where the first's EXTINF says it ends;
/// - each stream of a run starts within 10 s of the run's first packet
///   (audio and video stay together; a "negative" DTS would show here as a
///   start far from the other stream's).
fn check_timeline(segments: &[ProbedSegment], what: &str) {
    let has_video = segments.iter().any(|s| s.packets.iter().any(|p| p.video));
    let first_deciding = |s: &ProbedSegment| s.packets.iter().find(|p| p.video == has_video).map(|p| p.dts);
    let mut last: [Option<i64>; 2] = [None; 2];
    let mut run_start: Option<i64> = None;
    for (i, segment) in segments.iter().enumerate() {
        let uri = &segment.entry.uri;
        if segment.entry.discontinuity {
            last = [None; 2];
            run_start = None;
        } else if let Some(previous) = i.checked_sub(1).map(|p| &segments[p]) {
            let (Some(from), Some(to)) = (first_deciding(previous), first_deciding(segment)) else {
                panic!("{what}: segment without a packet of the deciding track");
            };
            let secs = step_90k(from, to) as f64 / 90_000.0;
            assert!(
                (secs - previous.entry.duration_secs).abs() < 0.005,
                "{what}: {uri} starts {secs} s after {} whose EXTINF is {}, with no discontinuity between",
                previous.entry.uri,
                previous.entry.duration_secs
            );
        }
        for packet in &segment.packets {
            let stream = usize::from(packet.video);
            let kind = if packet.video { "video" } else { "audio" };
            let start = *run_start.get_or_insert(packet.dts);
            match last[stream] {
                Some(previous) => {
                    let step = step_90k(previous, packet.dts);
                    assert!(
                        step > 0,
                        "{what}: {kind} DTS {} after {previous} in {uri} (step {step})",
                        packet.dts
                    );
                }
                None => {
                    let from_start = step_90k(start, packet.dts).abs();
                    assert!(
                        from_start < 10 * 90_000,
                        "{what}: {kind} starts {from_start} ticks away from its run's first packet in {uri}"
                    );
                }
            }
            last[stream] = Some(packet.dts);
            assert!(
                step_90k(packet.dts, packet.pts) >= 0,
                "{what}: {kind} PTS {} before DTS {} in {uri}",
                packet.pts,
                packet.dts
            );
        }
    }
}

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
