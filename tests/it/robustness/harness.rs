//! What the robustness tests share: the `sealcast` binary as a child
//! server, a server's HTTP side with its token secret, playlist checks, FLV
//! tag arithmetic, and the decrypted segments' timeline as ffprobe reads it.

use super::*;

// --- child processes -------------------------------------------------------

/// Runs blocking work (child processes, ffprobe) off the async workers; a
/// panic inside keeps its message.
pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

// --- the sealcast binary ---------------------------------------------------

/// `sealcast serve --config ROOT/sealcast.toml` as a child process, on
/// 127.0.0.1:0 ports, with its data dir under ROOT.
pub(super) struct ChildServer {
    pub(super) process: Proc,
    pub(super) rtmp: SocketAddr,
    pub(super) http: SocketAddr,
    pub(super) log: PathBuf,
}

/// Writes ROOT/sealcast.toml: streams `live/NAME` with the given publish keys,
/// `hls` appended under `[hls]`.
pub(super) fn write_child_config(root: &Path, hls: &str, streams: &[(&str, &str)]) {
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
    pub(super) async fn start(root: &Path, label: &str) -> ChildServer {
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

    pub(super) fn spawn(root: &Path, label: &str) -> ChildServer {
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

    pub(super) fn log_text(&self) -> String {
        read_text(&self.log)
    }

    /// SIGKILL: no shutdown, no flush, no ENDLIST.
    pub(super) fn sigkill(&mut self) {
        let status = self.process.kill();
        assert!(
            !status.success(),
            "sealcast exited on its own ({status}) before SIGKILL"
        );
    }

    pub(super) fn endpoint(&self) -> Endpoint {
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
pub(super) struct Endpoint {
    pub(super) http: SocketAddr,
    pub(super) secret: Secret,
}

impl Endpoint {
    pub(super) fn in_process(server: &TestServer) -> Endpoint {
        Endpoint {
            http: server.http,
            secret: server.secret.clone(),
        }
    }

    /// A playback token for `stream`, valid for an hour.
    pub(super) fn token(&self, stream: &str) -> String {
        mint_token(&self.secret, stream, 3600)
    }

    /// The playlist fetched with a token (so key URIs carry it), or `None`
    /// while the server answers 404.
    pub(super) async fn playlist(&self, stream: &str) -> Option<String> {
        playlist::fetch(self.http, &self.playlist_path(stream)).await
    }

    pub(super) fn playlist_path(&self, stream: &str) -> String {
        format!("/{stream}/index.m3u8?token={}", self.token(stream))
    }

    /// Polls the playlist until `done` holds for its text; returns that text.
    pub(super) async fn poll(&self, stream: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        playlist::poll(self.http, &self.playlist_path(stream), what, done).await
    }

    pub(super) async fn wait_for_end(&self, stream: &str) -> String {
        self.poll(stream, "#EXT-X-ENDLIST", ended).await
    }

    /// Fetches a segment and its key (the key URI carries the token) and
    /// decrypts it; checks it is ciphertext on the wire and TS inside.
    pub(super) async fn decrypted(&self, stream: &str, segment: &SegmentEntry) -> Vec<u8> {
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
    pub(super) async fn frames_of(
        &self,
        stream: &str,
        segments: &[SegmentEntry],
        out: &Path,
    ) -> crate::support::FrameCounts {
        let mut ts = Vec::new();
        for segment in segments {
            ts.extend(self.decrypted(stream, segment).await);
        }
        std::fs::write(out, &ts).expect("write decrypted TS");
        let out = out.to_owned();
        blocking(move || crate::support::count_frames(&out)).await
    }

    /// ffmpeg reading the playlist with a token, every frame to framecrc.
    pub(super) fn play(&self, stream: &str, label: &str, dir: &Path) -> Player {
        let url = format!("http://{}/{stream}/index.m3u8?token={}", self.http, self.token(stream));
        Player::start(&url, label, dir)
    }
}

/// Media sequence number → segment URI.
pub(super) fn uris_by_sequence(playlist: &ParsedPlaylist) -> BTreeMap<u64, String> {
    playlist.segments.iter().map(|s| (s.sequence, s.uri.clone())).collect()
}

/// Checks what every playlist must satisfy: `#EXT-X-ENDLIST` at most once and
/// last, consecutive media sequence numbers, every EXTINF rounded to the
/// nearest integer within TARGETDURATION (RFC 8216 4.3.3.1). Returns it parsed.
pub(super) fn check_playlist(text: &str) -> ParsedPlaylist {
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
pub(super) fn discontinuities(playlist: &ParsedPlaylist) -> Vec<usize> {
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
pub(super) async fn played(player: Player) -> Playback {
    blocking(move || player.finish(CHILD_LIMIT)).await
}

// --- FLV tags --------------------------------------------------------------

/// An AVC sequence header or AAC AudioSpecificConfig tag.
pub(super) fn is_sequence_header(tag: &MediaTag) -> bool {
    match tag.kind {
        TagKind::Video => tag.body.len() > 1 && tag.body[0] & 0x0F == 7 && tag.body[1] == 0,
        TagKind::Audio => tag.body.len() > 1 && tag.body[0] >> 4 == 10 && tag.body[1] == 0,
        TagKind::Script => false,
    }
}

/// An AVC NALU tag of a keyframe.
pub(super) fn is_keyframe(tag: &MediaTag) -> bool {
    tag.kind == TagKind::Video && tag.body.len() > 1 && tag.body[0] >> 4 == 1 && tag.body[1] == 1
}

/// Media frames (not sequence headers) among `tags`.
pub(super) fn frames_in(tags: &[MediaTag]) -> crate::support::FrameCounts {
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

pub(super) fn add(a: crate::support::FrameCounts, b: crate::support::FrameCounts) -> crate::support::FrameCounts {
    crate::support::FrameCounts {
        video: a.video + b.video,
        audio: a.audio + b.audio,
    }
}

/// Index of the first video keyframe at or after `ms`.
pub(super) fn keyframe_at_or_after(tags: &[MediaTag], ms: u32) -> usize {
    tags.iter()
        .position(|t| is_keyframe(t) && t.timestamp_ms >= ms)
        .unwrap_or_else(|| panic!("no keyframe at or after {ms} ms"))
}

/// Index of the first video frame at or after `ms` that is not a keyframe.
pub(super) fn inter_frame_at_or_after(tags: &[MediaTag], ms: u32) -> usize {
    tags.iter()
        .position(|t| t.kind == TagKind::Video && !is_keyframe(t) && !is_sequence_header(t) && t.timestamp_ms >= ms)
        .unwrap_or_else(|| panic!("no inter frame at or after {ms} ms"))
}

/// `tags` with `offset_ms` added to every timestamp, modulo 2^32 as RTMP has it.
pub(super) fn shifted(tags: &[MediaTag], offset_ms: i64) -> Vec<MediaTag> {
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
pub(super) async fn publish_when_free(rtmp: SocketAddr, key: &str) -> Publisher {
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
pub(super) async fn push_tags(rtmp: SocketAddr, key: &str, fixture: &Fixture, tags: &[MediaTag]) {
    let mut publisher = publish_when_free(rtmp, key).await;
    publisher.send_metadata(&fixture.metadata).await;
    publisher.send_tags(tags).await;
    publisher.finish().await;
}

// --- decrypted media -------------------------------------------------------

/// One packet as ffprobe reads it from a TS segment: raw 33-bit timestamps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Packet {
    pub(super) video: bool,
    pub(super) pts: i64,
    pub(super) dts: i64,
}

/// Packets of a TS file in file order, timestamps as written (ffprobe's
/// wrap correction off: a stream that starts near 2^33 would otherwise be
/// shifted to negative values).
pub(super) fn probe_packets(path: &Path) -> Vec<Packet> {
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

pub(super) const WRAP_33: i64 = 1 << 33;

/// `to - from` on the 33-bit MPEG-TS clock, read as the nearest signed step.
pub(super) fn step_90k(from: i64, to: i64) -> i64 {
    let d = (to - from).rem_euclid(WRAP_33);
    if d >= WRAP_33 / 2 { d - WRAP_33 } else { d }
}

/// A listed segment with the packets of its decrypted TS.
pub(super) struct ProbedSegment {
    pub(super) entry: SegmentEntry,
    /// The decrypted TS.
    pub(super) path: PathBuf,
    pub(super) packets: Vec<Packet>,
}

impl ProbedSegment {
    pub(super) fn dts(&self, video: bool) -> impl DoubleEndedIterator<Item = i64> + '_ {
        self.packets.iter().filter(move |p| p.video == video).map(|p| p.dts)
    }

    /// Width of the video in the segment, as ffprobe reads its SPS.
    pub(super) fn video_width(&self) -> Option<u32> {
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
pub(super) async fn probe_segments(
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
pub(super) fn check_timeline(segments: &[ProbedSegment], what: &str) {
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
