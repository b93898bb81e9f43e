//! Live streams: the registry of configured streams, publish authorization, and
//! the task that runs one publish's pipeline and stores what it produces.
//!
//! One task per publish owns its [`Pipeline`]; it talks to the outside through
//! the media channel from the RTMP connection, the KMS, the file system and the
//! stream's small shared state (the playlist the HTTP side renders). Streams
//! share nothing mutable but the registry map, so a slow or broken stream never
//! delays another.
//!
//! Data keys never sit on the segment path: a [`KeyPrefetcher`] per publish
//! fetches the next key while the current segment is still being filled, and
//! the publish task takes it with a `select!` beside the media channel. When
//! the KMS cannot give a key (down, throttling, access denied) the stream keeps
//! ingesting; a segment that closes without a key is dropped in memory,
//! counted and logged with the KMS error, the next segment is marked as a
//! discontinuity, and encryption resumes by itself once the KMS answers again
//! (the prefetcher retries with backoff). Plaintext media is never written.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use ring::digest;
use tokio::sync::{Notify, mpsc};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::auth::Secret;
use crate::flv::TagKind;
use crate::hls::{CutPolicy, KeyTag, MediaPlaylist, SegmentEntry, parse_media_playlist};
use crate::ingest::{PublishAuthorizer, PublishGrant};
use crate::kms::{Backoff, KeyPrefetcher, Kms};
use crate::media::{CLOCK_90K, Tracks};
use crate::names::{self, KeyUri, StreamName};
use crate::pipeline::{ClosedSegment, Output, Pipeline, PipelineConfig, SegmentKey};
use crate::rtmp::{MediaMessage, PublishRefused};
use crate::storage;

/// Media messages buffered between an RTMP connection and its pipeline. When
/// full, the connection stops reading: backpressure, never loss.
const MEDIA_CHANNEL_CAPACITY: usize = 512;

/// Data keys fetched ahead, besides the one the pipeline holds ready: with
/// one, the KMS has a whole segment's duration to answer before a segment
/// would have to wait.
const KEYS_AHEAD: usize = 1;

/// How long the last segment of a publish may wait for its key when the
/// publisher leaves before the KMS answered.
const FINAL_KEY_WAIT: Duration = Duration::from_secs(2);

/// What the live side needs from the configuration.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub data_dir: PathBuf,
    /// Prefix of key URIs (the server's public URL), or empty for `/keys/...`.
    pub key_uri_base: String,
    pub segment_duration_secs: u32,
    pub playlist_window: usize,
    pub segments_per_key: NonZeroU32,
    /// How long a playlist waits for its publisher to return before it ends.
    pub reconnect_grace: Duration,
}

/// A configured stream as the registry is given it.
pub struct StreamSpec {
    pub name: StreamName,
    pub publish_key: Secret,
}

/// All configured streams, their live state, and publish authorization.
pub struct Registry {
    settings: LiveSettings,
    kms: Arc<dyn Kms>,
    streams: DashMap<StreamName, Arc<Stream>>,
    /// SHA-256 of each publish key → stream. Looking up a digest reveals
    /// nothing about the key through timing, unlike comparing keys directly.
    by_key_digest: HashMap<[u8; 32], StreamName>,
    /// Publish tasks still running, and a wake-up for when that reaches zero.
    active_publishes: AtomicUsize,
    idle: Notify,
}

/// One configured stream: its directory and what the HTTP side reads.
pub struct Stream {
    pub name: StreamName,
    dir: PathBuf,
    state: Mutex<StreamState>,
}

/// A stream's shared state. Locked only for short, non-async sections.
#[derive(Default)]
struct StreamState {
    /// A publisher is connected (or its pipeline is still flushing).
    live: bool,
    /// Counts publishes, so a grace timer can tell whether the publish it
    /// waits on is still the latest one.
    generation: u64,
    publish_id: String,
    playlist: Option<MediaPlaylist>,
    info: StreamInfo,
}

/// What an operator page or API shows about a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamInfo {
    pub live: bool,
    pub started_unix_ms: Option<u64>,
    pub tracks: Tracks,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub segments: u64,
    pub media_sequence: u64,
    /// Bytes of segment ciphertext stored by this publish (what players
    /// download), and the media duration they hold: the average bitrate.
    pub stored_bytes: u64,
    pub stored_media_ms: u64,
    /// Segments dropped because no data key came in time (KMS down or slow);
    /// each gap is marked with `#EXT-X-DISCONTINUITY` in the playlist.
    pub segments_dropped: u64,
    /// Segments that opened with no key ready (zero while prefetching keeps
    /// ahead of the KMS).
    pub key_waits: u64,
    /// Failed KMS calls for data keys during this publish.
    pub kms_failures: u64,
    /// From a segment's last frame arriving to the playlist listing it.
    pub publish_latency: PublishLatency,
    /// Longest time between the publish task taking two media messages while
    /// the second was already waiting in the channel: how long the media loop
    /// was busy elsewhere (demuxing, muxing, encrypting, storing a segment).
    /// KMS calls never add to it, since keys are fetched beside the loop.
    pub max_media_gap_us: u64,
}

/// Time from a segment closing (the pipeline returning it, right after its
/// last frame came in) to the playlist listing it, written to disk, over
/// this publish's segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishLatency {
    pub samples: u64,
    pub last_us: u64,
    pub max_us: u64,
    pub total_us: u64,
}

impl PublishLatency {
    fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.samples += 1;
        self.last_us = us;
        self.max_us = self.max_us.max(us);
        self.total_us = self.total_us.saturating_add(us);
    }

    /// The mean in microseconds (0 before the first segment).
    pub fn mean_us(&self) -> u64 {
        self.total_us.checked_div(self.samples).unwrap_or(0)
    }
}

impl Registry {
    pub fn new(settings: LiveSettings, kms: Arc<dyn Kms>, specs: Vec<StreamSpec>) -> Self {
        let streams = DashMap::new();
        let mut by_key_digest = HashMap::new();
        for spec in specs {
            let dir = settings.data_dir.join(spec.name.app()).join(spec.name.name());
            by_key_digest.insert(key_digest(spec.publish_key.expose()), spec.name.clone());
            let playlist = restore_playlist(&dir, &settings);
            let stream = Stream {
                name: spec.name.clone(),
                dir,
                state: Mutex::new(StreamState {
                    playlist,
                    ..StreamState::default()
                }),
            };
            streams.insert(spec.name, Arc::new(stream));
        }
        Self {
            settings,
            kms,
            streams,
            by_key_digest,
            active_publishes: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// Resolves once no publish task is running (after shutdown stopped ingest,
    /// every pipeline has flushed and ended its playlist).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active_publishes.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub fn settings(&self) -> &LiveSettings {
        &self.settings
    }

    /// Picks up where a previous run left off, once the runtime runs: a
    /// playlist left open (its server was stopped or killed mid-publish) gets
    /// the reconnect grace period to see its publisher return, and segments
    /// the previous run would have deleted by now are deleted on schedule.
    pub fn resume(self: &Arc<Self>) {
        for stream in self.all() {
            let (generation, open, listed, window_secs) = {
                let state = stream.lock();
                let Some(playlist) = state.playlist.as_ref() else {
                    continue;
                };
                let listed: Vec<String> = playlist.segments().map(|s| s.uri.clone()).collect();
                (state.generation, !playlist.is_ended(), listed, playlist.duration_secs())
            };
            if open {
                info!(stream = %stream.name, "resuming a playlist left open by the previous run");
                self.end_after_grace(&stream, generation);
            }
            let delay = Duration::from_secs_f64(window_secs + f64::from(self.settings.segment_duration_secs));
            let dir = stream.dir.clone();
            tokio::spawn(async move {
                // Which files are the previous run's is decided now: a publish
                // that starts during the delay writes segments this list must
                // not name.
                let expired = unlisted_segments(&dir, &listed).await;
                tokio::time::sleep(delay).await;
                for path in expired {
                    if let Err(error) = tokio::fs::remove_file(&path).await {
                        debug!(%error, path = %path.display(), "removing a segment left by the previous run");
                    }
                }
            });
        }
    }

    /// Ends the stream's playlist after the grace period unless a new publish
    /// (a later generation) started meanwhile.
    fn end_after_grace(&self, stream: &Arc<Stream>, generation: u64) {
        let grace = self.settings.reconnect_grace;
        let stream = Arc::clone(stream);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            stream.end_playlist_if(generation).await;
        });
    }

    pub fn kms(&self) -> &Arc<dyn Kms> {
        &self.kms
    }

    /// The stream, cloned out of the map so no map guard is held by the caller.
    pub fn get(&self, name: &StreamName) -> Option<Arc<Stream>> {
        self.streams.get(name).map(|entry| Arc::clone(entry.value()))
    }

    /// Every configured stream, sorted by name.
    pub fn all(&self) -> Vec<Arc<Stream>> {
        let mut all: Vec<_> = self.streams.iter().map(|entry| Arc::clone(entry.value())).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

fn key_digest(key: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key).as_ref());
    out
}

impl PublishAuthorizer for Arc<Registry> {
    fn authorize(
        &self,
        app: &str,
        stream_key: &str,
        _query: Option<&str>,
        peer: std::net::SocketAddr,
    ) -> Result<PublishGrant, PublishRefused> {
        let stream = self
            .by_key_digest
            .get(&key_digest(stream_key.as_bytes()))
            .filter(|name| name.app() == app)
            .and_then(|name| self.get(name))
            .ok_or(PublishRefused::BadKey)?;
        // Without randomness the server cannot name segments safely; refusing
        // is all it can do, and "unavailable" is the nearest refusal.
        let publish_id = names::random_publish_id().map_err(|_| PublishRefused::ShuttingDown)?;
        let continuation = {
            let mut state = stream.lock();
            if state.live {
                return Err(PublishRefused::AlreadyLive);
            }
            state.live = true;
            state.generation += 1;
            state.publish_id = publish_id.clone();
            state.info = StreamInfo {
                live: true,
                started_unix_ms: Some(unix_ms_now()),
                ..StreamInfo::default()
            };
            let (playlist, continuation) = continue_playlist(state.playlist.take(), &self.settings);
            state.playlist = Some(playlist);
            continuation
        };
        let (tx, rx) = mpsc::channel(MEDIA_CHANNEL_CAPACITY);
        let span = info_span!("publish", stream = %stream.name);
        let publish = Publish::new(Arc::clone(self), Arc::clone(&stream), publish_id, continuation);
        self.active_publishes.fetch_add(1, Ordering::AcqRel);
        let registry = Arc::clone(self);
        tokio::spawn(
            async move {
                publish.run(rx).await;
                if registry.active_publishes.fetch_sub(1, Ordering::AcqRel) == 1 {
                    registry.idle.notify_waiters();
                }
            }
            .instrument(span),
        );
        info!(stream = %stream.name, %peer, "publish accepted");
        Ok(PublishGrant {
            stream: stream.name.to_string(),
            media: tx,
        })
    }
}

impl Stream {
    fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A panic while holding this lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The directory holding this stream's segments and playlist.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The playlist rendered with `key_query` appended to every key URI, or
    /// `None` before the first segment.
    pub fn render_playlist(&self, key_query: Option<&str>) -> Option<String> {
        self.lock()
            .playlist
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(|p| p.render(key_query))
    }

    pub fn info(&self) -> StreamInfo {
        self.lock().info.clone()
    }

    /// Writes the playlist file. It doubles as the stream's persisted state:
    /// after a restart, [`restore_playlist`] reads it back, so media and
    /// discontinuity sequence numbers continue where they were.
    async fn write_playlist(&self, text: String) {
        let path = self.dir.join(PLAYLIST_FILE);
        let result = tokio::task::spawn_blocking(move || storage::replace_atomic(&path, text.as_bytes())).await;
        match result {
            // Closing the old playlist may stall (see `replace_atomic`):
            // done in the background, after the new one is in place.
            Ok(Ok(replaced)) => {
                if let Some(replaced) = replaced {
                    drop(tokio::task::spawn_blocking(move || drop(replaced)));
                }
            }
            Ok(Err(error)) => error!(stream = %self.name, %error, "writing the playlist failed"),
            Err(error) => error!(stream = %self.name, %error, "playlist writer task failed"),
        }
    }

    /// Ends the playlist with `#EXT-X-ENDLIST` if no publish started after
    /// `generation`.
    async fn end_playlist_if(&self, generation: u64) {
        let text = {
            let mut state = self.lock();
            if state.live || state.generation != generation {
                return;
            }
            match state.playlist.as_mut() {
                Some(playlist) if playlist.is_empty() => {
                    // A publish that produced no segment leaves nothing behind.
                    state.playlist = None;
                    return;
                }
                Some(playlist) if !playlist.is_ended() => {
                    playlist.end();
                    playlist.render(None)
                }
                _ => return,
            }
        };
        info!(stream = %self.name, "playlist ended");
        self.write_playlist(text).await;
    }
}

/// The live playlist's file name, in the stream's directory.
const PLAYLIST_FILE: &str = "index.m3u8";

/// Reads a stream's playlist as the previous run left it, or `None` when
/// there is none (or it cannot be read: then the stream starts afresh at
/// sequence 0, which is logged, since players may see numbers reused).
fn restore_playlist(dir: &Path, settings: &LiveSettings) -> Option<MediaPlaylist> {
    let path = dir.join(PLAYLIST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read the previous playlist; starting afresh");
            return None;
        }
    };
    let parsed = match parse_media_playlist(&text) {
        Ok(parsed) => parsed,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot parse the previous playlist; starting afresh");
            return None;
        }
    };
    let mut playlist = MediaPlaylist::live(
        settings.segment_duration_secs,
        settings.playlist_window,
        parsed.media_sequence,
        parsed.discontinuity_sequence,
    );
    for segment in parsed.segments {
        playlist.push(segment);
    }
    if parsed.ended {
        playlist.end();
    }
    Some(playlist)
}

/// Segment files in a stream's directory that `listed` does not name: those
/// a previous run removed from its window but had not deleted yet, and the
/// partial (ciphertext) files of segments it never finished.
async fn unlisted_segments(dir: &Path, listed: &[String]) -> Vec<PathBuf> {
    let mut unlisted = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return unlisted;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let unfinished = storage::unfinished_name(name).is_some_and(names::is_segment_file_name);
        if unfinished || (names::is_segment_file_name(name) && !listed.iter().any(|l| l == name)) {
            unlisted.push(entry.path());
        }
    }
    unlisted
}

/// One publish: from the first media message until the publisher leaves.
struct Publish {
    registry: Arc<Registry>,
    stream: Arc<Stream>,
    publish_id: String,
    pipeline: Pipeline,
    /// Wall clock and DTS of the first segment: `EXT-X-PROGRAM-DATE-TIME`
    /// follows the media timeline from there.
    anchor: Option<(u64, u64)>,
    previous_end_unix_ms: u64,
    skipped_tags: u64,
    /// See [`StreamInfo::max_media_gap_us`].
    max_media_gap: Duration,
    /// The open segment's file, written as ciphertext comes out of the
    /// pipeline; renamed into place when the segment closes.
    segment_file: Option<SegmentFile>,
    /// A segment whose file could not be written: it is not listed.
    failed_sequence: Option<u64>,
}

/// The open segment's file, written as ciphertext comes out of the
/// pipeline and renamed into place when the segment closes (so a listed
/// segment is always whole).
struct SegmentFile {
    sequence: u64,
    file: storage::AtomicFile,
}

impl SegmentFile {
    /// Creates the temporary file (and the stream's directory).
    fn create(dir: &Path, file_name: &str, sequence: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = storage::AtomicFile::create(&dir.join(file_name))?;
        Ok(Self { sequence, file })
    }

    fn append(&mut self, pieces: &[Vec<u8>]) -> std::io::Result<()> {
        pieces.iter().try_for_each(|piece| self.file.append(piece))
    }

    /// Appends the last pieces and renames the file into place.
    fn complete(mut self, pieces: &[Vec<u8>]) -> std::io::Result<()> {
        match self.append(pieces) {
            Ok(()) => self.file.commit(),
            Err(error) => {
                self.file.discard();
                Err(error)
            }
        }
    }

    fn discard(self) {
        self.file.discard();
    }
}

impl Publish {
    fn new(registry: Arc<Registry>, stream: Arc<Stream>, publish_id: String, continuation: Continuation) -> Self {
        let settings = registry.settings();
        let pipeline = Pipeline::new(PipelineConfig {
            target_duration_secs: settings.segment_duration_secs,
            segments_per_key: settings.segments_per_key,
            cut_policy: CutPolicy::BoundedByTarget,
            first_sequence: continuation.first_sequence,
            discontinuity_at_start: continuation.discontinuity,
        });
        Self {
            registry,
            stream,
            publish_id,
            pipeline,
            anchor: None,
            previous_end_unix_ms: continuation.previous_end_unix_ms,
            skipped_tags: 0,
            max_media_gap: Duration::ZERO,
            segment_file: None,
            failed_sequence: None,
        }
    }

    async fn run(mut self, mut media: mpsc::Receiver<MediaMessage>) {
        let mut keys = KeyPrefetcher::spawn(
            Arc::clone(self.registry.kms()),
            self.stream.name.to_string(),
            self.publish_id.clone(),
            KEYS_AHEAD,
            Backoff::default(),
        );
        let mut keys_open = true;
        let mut last_message_at: Option<Instant> = None;
        // Whether the loop found the media channel empty since the last
        // message: if not, the time since that message was time spent busy.
        // (An atomic only because the task must be Send; one thread uses it.)
        let waited = AtomicBool::new(false);
        loop {
            let next_message = std::future::poll_fn(|cx| match media.poll_recv(cx) {
                Poll::Ready(message) => Poll::Ready((message, !waited.swap(false, Ordering::Relaxed))),
                Poll::Pending => {
                    waited.store(true, Ordering::Relaxed);
                    Poll::Pending
                }
            });
            tokio::select! {
                // A ready key goes to the pipeline before the next frame, so a
                // segment opened after it finds it there.
                biased;
                key = keys.recv(), if keys_open && self.pipeline.wants_key() => match key {
                    Some(key) => self.pipeline.provide_key(SegmentKey {
                        id: key.id,
                        key: key.key,
                        wrapped: key.wrapped,
                    }),
                    None => keys_open = false,
                },
                (message, was_queued) = next_message => {
                    let Some(message) = message else { break };
                    let now = Instant::now();
                    if was_queued && let Some(previous) = last_message_at {
                        self.max_media_gap = self.max_media_gap.max(now - previous);
                    }
                    last_message_at = Some(now);
                    self.handle(message, &keys).await;
                }
            }
        }
        // The last segment may still be waiting for its key (a short publish
        // against a slow KMS): give it a bounded moment.
        if keys_open
            && self.pipeline.waiting_for_key()
            && let Ok(Some(key)) = tokio::time::timeout(FINAL_KEY_WAIT, keys.recv()).await
        {
            self.pipeline.provide_key(SegmentKey {
                id: key.id,
                key: key.key,
                wrapped: key.wrapped,
            });
        }
        if let Some(output) = self.pipeline.finish() {
            self.store(output, Instant::now(), &keys).await;
        }
        if let Some(file) = self.segment_file.take() {
            // Only a segment that never closed (dropped for want of a key
            // after pieces were written cannot happen) leaves one behind.
            let _ = tokio::task::spawn_blocking(move || file.discard()).await;
        }
        self.end().await;
    }

    async fn handle(&mut self, message: MediaMessage, keys: &KeyPrefetcher) {
        let result = match message {
            MediaMessage::Video { timestamp_ms, body } => self.pipeline.push(TagKind::Video, timestamp_ms, &body),
            MediaMessage::Audio { timestamp_ms, body } => self.pipeline.push(TagKind::Audio, timestamp_ms, &body),
            MediaMessage::Metadata(metadata) => {
                let mut state = self.stream.lock();
                state.info.width = metadata.width.map(|w| w as u32);
                state.info.height = metadata.height.map(|h| h as u32);
                return;
            }
        };
        match result {
            Ok(Some(output)) => {
                self.store(output, Instant::now(), keys).await;
                self.write_pieces().await;
            }
            Ok(None) => self.write_pieces().await,
            Err(error) => {
                self.skipped_tags += 1;
                // One line per 100 bad tags: a broken encoder must not flood the log.
                if self.skipped_tags % 100 == 1 {
                    warn!(%error, skipped = self.skipped_tags, "skipping a tag the demuxer refused");
                }
            }
        }
    }

    /// Appends the open segment's full pieces of ciphertext (usually none,
    /// one every ~190 ms at 2.7 Mb/s, a few after a large keyframe) to its
    /// temporary file, in one trip to the blocking pool: file IO never runs
    /// on a runtime thread, so a slow disk cannot stall other streams. A
    /// stream thus holds about one piece of its segment in memory, not the
    /// segment (~700 KB at 2.7 Mb/s and 2 s). A failed write is logged and
    /// leaves the segment without a file: it is then not listed when it closes.
    async fn write_pieces(&mut self) {
        let Some((sequence, first)) = self.pipeline.take_piece() else {
            return;
        };
        let mut pieces = vec![first];
        while let Some((_, piece)) = self.pipeline.take_piece() {
            pieces.push(piece);
        }
        if self.failed_sequence == Some(sequence) {
            return;
        }
        let file = match self.segment_file.take() {
            Some(file) if file.sequence == sequence => Some(file),
            stale => {
                if let Some(stale) = stale {
                    // Cannot happen: store_segment takes the file of the
                    // segment it closes. Never rename a partial file.
                    stale.discard();
                }
                None
            }
        };
        let dir = self.stream.dir.clone();
        let file_name = names::segment_file_name(&self.publish_id, sequence);
        let result = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => SegmentFile::create(&dir, &file_name, sequence)?,
            };
            file.append(&pieces)?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match result {
            Ok(file) => self.segment_file = Some(file),
            Err(error) => {
                error!(seq = sequence, %error, "writing a segment failed; it will not be listed");
                self.failed_sequence = Some(sequence);
            }
        }
    }

    /// Stores what the pipeline produced; `closed_at` is when it returned it.
    async fn store(&mut self, output: Output, closed_at: Instant, keys: &KeyPrefetcher) {
        match output {
            Output::Segment(segment) => {
                if let Err(error) = self.store_segment(segment, closed_at, keys).await {
                    error!(%error, "storing a segment failed");
                }
            }
            Output::Dropped { sequence, reason } => {
                let kms_error = keys
                    .last_error()
                    .unwrap_or_else(|| "the KMS did not answer before the segment closed".to_owned());
                error!(
                    stream = %self.stream.name,
                    seq = sequence,
                    ?reason,
                    %kms_error,
                    "segment dropped: no data key in time (no plaintext is ever written); the playlist marks the gap"
                );
                let stats = self.pipeline.stats();
                let mut state = self.stream.lock();
                state.info.segments_dropped = stats.segments_dropped;
                state.info.key_waits = stats.key_waits;
                state.info.kms_failures = keys.failures();
            }
        }
    }

    /// Segment file first (atomically), then the playlist: a listed segment is
    /// always there to fetch.
    async fn store_segment(
        &mut self,
        segment: ClosedSegment,
        closed_at: Instant,
        keys: &KeyPrefetcher,
    ) -> std::io::Result<()> {
        let settings = self.registry.settings();
        let file_name = names::segment_file_name(&self.publish_id, segment.sequence);
        let tail_bytes = segment.ciphertext_len() as u64;
        let dir = self.stream.dir.clone();
        let path = dir.join(&file_name);
        let ClosedSegment {
            sequence,
            duration_secs,
            start_dts_90k,
            pieces,
            key,
            discontinuity,
            forced_cut,
            ..
        } = segment;
        if forced_cut {
            warn!(
                seq = sequence,
                "cut without a keyframe: set the encoder's keyframe interval to 2 s"
            );
        }
        if self.failed_sequence.take() == Some(sequence) {
            if let Some(file) = self.segment_file.take() {
                let _ = tokio::task::spawn_blocking(move || file.discard()).await;
            }
            return Err(std::io::Error::other("an earlier write of this segment failed"));
        }
        // Pieces already written (write_pieces) are in the temporary file;
        // `pieces` are the rest. The segment is complete and renamed into
        // place before the playlist lists it.
        let file = self.segment_file.take().filter(|f| f.sequence == sequence);
        let stored_bytes = tail_bytes + file.as_ref().map_or(0, |f| f.file.written());
        tokio::task::spawn_blocking(move || match file {
            Some(file) => file.complete(&pieces),
            None => {
                std::fs::create_dir_all(&dir)?;
                storage::write_atomic_pieces(&path, &pieces)
            }
        })
        .await
        .map_err(std::io::Error::other)??;

        // The first segment began its duration ago; later ones follow the media clock.
        let (anchor_ms, anchor_dts) = *self.anchor.get_or_insert_with(|| {
            let began = unix_ms_now().saturating_sub((duration_secs * 1000.0) as u64);
            (began.max(self.previous_end_unix_ms), start_dts_90k)
        });
        let program_date_time_ms = anchor_ms + start_dts_90k.saturating_sub(anchor_dts) * 1000 / CLOCK_90K;
        let entry = SegmentEntry {
            uri: file_name,
            duration_secs,
            key: Some(KeyTag {
                uri: KeyUri::render(&self.stream.name, &key.id, &key.wrapped, &settings.key_uri_base),
                iv: key.iv,
            }),
            program_date_time_ms: i64::try_from(program_date_time_ms).ok(),
            discontinuity,
            sequence,
        };
        let stats = self.pipeline.stats();
        let tracks = self.pipeline.tracks();
        let (text, removed, window_secs) = {
            let mut state = self.stream.lock();
            let Some(playlist) = state.playlist.as_mut() else {
                return Ok(());
            };
            let removed = playlist.push(entry);
            let window_secs: f64 = playlist.segments().map(|s| s.duration_secs).sum();
            let text = playlist.render(None);
            let media_sequence = playlist.media_sequence();
            let info = &mut state.info;
            info.tracks = tracks;
            info.video_frames = stats.video_frames;
            info.audio_frames = stats.audio_frames;
            info.segments = stats.segments;
            info.media_sequence = media_sequence;
            info.stored_bytes += stored_bytes;
            info.stored_media_ms += (duration_secs * 1000.0).round() as u64;
            info.segments_dropped = stats.segments_dropped;
            info.key_waits = stats.key_waits;
            info.kms_failures = keys.failures();
            info.max_media_gap_us = u64::try_from(self.max_media_gap.as_micros()).unwrap_or(u64::MAX);
            (text, removed, window_secs)
        };
        self.stream.write_playlist(text).await;
        let latency = closed_at.elapsed();
        self.stream.lock().info.publish_latency.record(latency);
        // RFC 8216 6.2.2: a removed segment stays available for its duration
        // plus the playlist's duration; keys are stateless, so this covers them.
        for old in removed {
            let path = self.stream.dir.join(&old.uri);
            let delay = Duration::from_secs_f64(old.duration_secs + window_secs);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Err(error) = tokio::fs::remove_file(&path).await {
                    debug!(%error, path = %path.display(), "removing an expired segment");
                }
            });
        }
        debug!(
            seq = sequence,
            duration_secs,
            publish_latency_us = latency.as_micros() as u64,
            "segment published"
        );
        Ok(())
    }

    /// The publisher left: free the stream for the next publish, and end the
    /// playlist unless the publisher returns within the grace period.
    async fn end(self) {
        let stats = self.pipeline.stats();
        let generation = {
            let mut state = self.stream.lock();
            state.live = false;
            state.info.live = false;
            state.info.max_media_gap_us = u64::try_from(self.max_media_gap.as_micros()).unwrap_or(u64::MAX);
            state.generation
        };
        if self.registry.settings.reconnect_grace.is_zero() {
            self.stream.end_playlist_if(generation).await;
        } else {
            self.registry.end_after_grace(&self.stream, generation);
        }
        info!(
            segments = stats.segments,
            segments_dropped = stats.segments_dropped,
            key_waits = stats.key_waits,
            video_frames = stats.video_frames,
            audio_frames = stats.audio_frames,
            skipped_tags = self.skipped_tags,
            "publish ended"
        );
    }
}

/// Where a new publish starts numbering, and whether it follows an earlier one.
struct Continuation {
    first_sequence: u64,
    discontinuity: bool,
    /// Wall-clock end of the previous publish's last segment: program date
    /// times never go backwards, even when an encoder sent faster than real time.
    previous_end_unix_ms: u64,
}

/// The playlist for a new publish. A republish continues the stream's last
/// playlist rather than starting over: media sequence numbers keep growing
/// and the new segments follow an `EXT-X-DISCONTINUITY` (RFC 8216 6.2.1,
/// 6.2.2), so a player or CDN never sees a sequence number reused.
fn continue_playlist(previous: Option<MediaPlaylist>, settings: &LiveSettings) -> (MediaPlaylist, Continuation) {
    let (target, window) = (settings.segment_duration_secs, settings.playlist_window);
    let Some(previous) = previous else {
        let first = Continuation {
            first_sequence: 0,
            discontinuity: false,
            previous_end_unix_ms: 0,
        };
        return (MediaPlaylist::live(target, window, 0, 0), first);
    };
    // Re-list the old segments in a playlist that is not ended; same target
    // and window, so nothing slides out while doing so.
    let mut playlist = MediaPlaylist::live(
        target,
        window,
        previous.media_sequence(),
        previous.discontinuity_sequence(),
    );
    for segment in previous.segments() {
        playlist.push(segment.clone());
    }
    let previous_end_unix_ms = previous
        .segments()
        .next_back()
        .and_then(|last| {
            let start = u64::try_from(last.program_date_time_ms?).ok()?;
            Some(start.saturating_add((last.duration_secs * 1000.0) as u64))
        })
        .unwrap_or(0);
    let next = Continuation {
        first_sequence: playlist.next_sequence(),
        discontinuity: !playlist.is_empty(),
        previous_end_unix_ms,
    };
    (playlist, next)
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unlisted_segments_are_the_previous_runs_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        // (file, listed in the restored playlist, expected in the answer)
        let table = [
            ("aaaa-4.ts", false, true),
            ("aaaa-5.ts", false, true),
            ("aaaa-6.ts", true, false),
            ("index.m3u8", false, false),
            // An unfinished segment (ciphertext pieces) of the killed run.
            (".aaaa-7.ts.tmp", false, true),
            ("notes.txt", false, false),
        ];
        for (file, ..) in table {
            std::fs::write(dir.path().join(file), b"x").unwrap();
        }
        let listed: Vec<String> = table.iter().filter(|t| t.1).map(|t| t.0.to_owned()).collect();
        let mut got = unlisted_segments(dir.path(), &listed).await;
        got.sort();
        let mut want: Vec<PathBuf> = table.iter().filter(|t| t.2).map(|t| dir.path().join(t.0)).collect();
        want.sort();
        assert_eq!(got, want);
        // A segment written afterwards (a new publish) is not in an answer
        // already given; a missing directory has no leftovers.
        std::fs::write(dir.path().join("bbbb-7.ts"), b"x").unwrap();
        assert!(!got.contains(&dir.path().join("bbbb-7.ts")));
        assert!(unlisted_segments(&dir.path().join("nope"), &listed).await.is_empty());
    }
}
