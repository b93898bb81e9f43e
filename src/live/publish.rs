//! The task of one publish: media in from the RTMP connection, data keys in
//! from the prefetcher, sealed segments out to the [`SegmentWriter`] and the
//! stream's playlist.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::registry::Registry;
use super::stream::Stream;
use super::upload::Uploader;
use super::writer::SegmentWriter;
use super::{PublishControl, Stop};
use crate::flv::TagKind;
use crate::hls::CutPolicy;
use crate::kms::{Backoff, KeyPrefetcher, PrefetchedKey};
use crate::pipeline::{ClosedSegment, Output, Pipeline, PipelineConfig, SegmentKey};
use crate::rtmp::MediaMessage;
use crate::timeline::{Continuation, Timeline};

/// Data keys fetched ahead, besides the one the pipeline holds ready: with
/// one, the KMS has a whole segment's duration to answer before a segment
/// would have to wait.
const KEYS_AHEAD: usize = 1;

/// How long the last segment of a publish may wait for its key when the
/// publisher leaves before the KMS answered; and how long a publish waits
/// for its first key before it takes its first frame.
const FINAL_KEY_WAIT: Duration = Duration::from_secs(2);

/// One publish: from the first media message until the publisher leaves.
pub(super) struct Publish {
    registry: Arc<Registry>,
    stream: Arc<Stream>,
    publish_id: String,
    pipeline: Pipeline,
    timeline: Timeline,
    writer: SegmentWriter,
    skipped_tags: u64,
    /// See [`super::StreamInfo::max_media_gap_us`].
    max_media_gap: Duration,
    meters: crate::metrics::StreamMeters,
    /// With object storage: the upload queue, and the open segment's
    /// ciphertext buffered until it closes (sequence, pieces).
    uploader: Option<Uploader>,
    buffered: (u64, Vec<Vec<u8>>),
    /// Set by `run`: stop requests and the write deadline.
    control: Option<Arc<PublishControl>>,
}

impl Publish {
    pub(super) fn new(
        registry: Arc<Registry>,
        stream: Arc<Stream>,
        publish_id: String,
        continuation: Continuation,
    ) -> Self {
        let settings = registry.settings();
        let pipeline = Pipeline::new(PipelineConfig {
            target_duration_secs: settings.segment_duration_secs,
            segments_per_key: settings.segments_per_key,
            cut_policy: CutPolicy::BoundedByTarget,
            first_sequence: continuation.first_sequence,
            discontinuity_at_start: continuation.discontinuity,
        });
        let timeline = Timeline::live(
            stream.name.clone(),
            publish_id.clone(),
            settings.key_uri_base.clone(),
            continuation.previous_end_unix_ms,
        );
        let writer = SegmentWriter::new(stream.dir().to_owned(), publish_id.clone());
        let meters = registry.stream_meters(&stream.name);
        let uploader = registry.storage().local_dir().is_none().then(|| {
            Uploader::spawn(
                Arc::clone(&registry),
                Arc::clone(&stream),
                registry.storage().clone(),
                timeline.clone(),
                publish_id.clone(),
            )
        });
        Self {
            uploader,
            buffered: (0, Vec::new()),
            meters,
            registry,
            stream,
            publish_id,
            pipeline,
            timeline,
            writer,
            skipped_tags: 0,
            max_media_gap: Duration::ZERO,
            control: None,
        }
    }

    /// Runs until the media channel closes (the publisher left), then
    /// flushes the last segment and ends the publish.
    ///
    /// `control` may ask it to stop: [`Stop::TakenOver`] closes the channel
    /// (the connection sees it and closes) and stores what was accepted;
    /// [`Stop::LeaseLost`] ends at once and writes nothing more.
    pub(super) async fn run(mut self, mut media: mpsc::Receiver<MediaMessage>, control: Arc<PublishControl>) {
        self.control = Some(Arc::clone(&control));
        if let Some(uploader) = &self.uploader {
            uploader.bind(Arc::clone(&control));
        }
        let mut stop = control.stop_requested();
        let mut keys = KeyPrefetcher::spawn(
            Arc::clone(self.registry.kms()),
            self.stream.name.to_string(),
            // A recorded publish's key ids name its recording.
            self.stream.key_id_prefix(&self.publish_id),
            KEYS_AHEAD,
            Backoff::default(),
        );
        let mut keys_open = true;
        // The first key before the first frame. A publisher that starts with
        // a burst (a relay's GOP cache, a push faster than real time) would
        // otherwise close its first segments before the KMS answered, and a
        // segment without a key is dropped. Meanwhile the media channel
        // fills and TCP slows the encoder: nothing is lost. Bounded, so a
        // KMS outage still drops segments rather than stalling the publish.
        match tokio::time::timeout(FINAL_KEY_WAIT, keys.recv()).await {
            Ok(Some(key)) => self.pipeline.provide_key(segment_key(key)),
            Ok(None) => keys_open = false,
            Err(_) => debug!("no data key yet; taking media without one"),
        }
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
                    Some(key) => self.pipeline.provide_key(segment_key(key)),
                    None => keys_open = false,
                },
                Ok(()) = stop.changed() => match *stop.borrow_and_update() {
                    Some(Stop::TakenOver) => {
                        info!("taken over by a new publish: storing the media already accepted");
                        // Closed: the sender sees it and the connection
                        // ends; what is queued is still received below.
                        media.close();
                    }
                    Some(Stop::LeaseLost) => break,
                    None => {}
                },
                (message, was_queued) = next_message => {
                    let Some(message) = message else { break };
                    let now = Instant::now();
                    if was_queued && let Some(previous) = last_message_at {
                        self.max_media_gap = self.max_media_gap.max(now - previous);
                    }
                    last_message_at = Some(now);
                    control.media_at(now);
                    self.handle(message, &keys).await;
                }
            }
        }
        self.finish(&mut keys, keys_open, &control).await;
    }

    /// The publish is over: store the open segment (unless the lease is
    /// gone), let the uploads drain, and end the publish.
    async fn finish(mut self, keys: &mut KeyPrefetcher, keys_open: bool, control: &PublishControl) {
        // The last segment may still be waiting for its key (a short publish
        // against a slow KMS): give it a bounded moment.
        if keys_open
            && self.pipeline.waiting_for_key()
            && let Ok(Some(key)) = tokio::time::timeout(FINAL_KEY_WAIT, keys.recv()).await
        {
            self.pipeline.provide_key(segment_key(key));
        }
        if !control.may_write(Instant::now()) {
            // The lease is gone: another publisher owns the playlist now.
            warn!("publish lease lost: the open segment is dropped, nothing more is written");
            self.writer.discard().await;
            if let Some(uploader) = self.uploader.take() {
                uploader.abandon();
            }
            self.end(false).await;
            return;
        }
        if let Some(output) = self.pipeline.finish() {
            self.store(output, Instant::now(), keys).await;
        }
        // Only a segment that never closed leaves a temporary file behind.
        self.writer.discard().await;
        if let Some(uploader) = self.uploader.take() {
            uploader.finish().await;
        }
        self.end(true).await;
    }

    async fn handle(&mut self, message: MediaMessage, keys: &KeyPrefetcher) {
        let result = match message {
            MediaMessage::Video { timestamp_ms, body } => {
                self.meters.ingest_bytes.increment(body.len() as u64);
                self.pipeline.push(TagKind::Video, timestamp_ms, &body)
            }
            MediaMessage::Audio { timestamp_ms, body } => {
                self.meters.ingest_bytes.increment(body.len() as u64);
                self.pipeline.push(TagKind::Audio, timestamp_ms, &body)
            }
            MediaMessage::Metadata(metadata) => {
                let mut state = self.stream.lock();
                // Saturating float-to-int casts: a peer's absurd value is clamped.
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

    /// Hands the open segment's full pieces of ciphertext (usually none, one
    /// every ~190 ms at 2.7 Mb/s, a few after a large keyframe) to the writer.
    async fn write_pieces(&mut self) {
        let Some((sequence, first)) = self.pipeline.take_piece() else {
            return;
        };
        let mut pieces = vec![first];
        while let Some((_, piece)) = self.pipeline.take_piece() {
            pieces.push(piece);
        }
        if self.uploader.is_some() {
            // Object storage takes a segment whole, when it closes.
            if self.buffered.0 != sequence {
                self.buffered = (sequence, Vec::new());
            }
            self.buffered.1.extend(pieces);
            return;
        }
        self.writer.append(sequence, pieces).await;
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
                self.registry.event(
                    "segment.dropped",
                    &self.stream.name,
                    serde_json::json!({
                        "publish_id": self.publish_id,
                        "seq": sequence,
                        "reason": format!("{reason:?}"),
                    }),
                );
                let stats = self.pipeline.stats();
                let storage_dropped = self.uploader.as_ref().map_or(0, Uploader::dropped);
                let mut state = self.stream.lock();
                state.info.segments_dropped = stats.segments_dropped + storage_dropped;
                state.info.key_waits = stats.key_waits;
                state.info.kms_failures = keys.failures();
            }
        }
    }

    /// Segment file first (atomically), then the playlist: a listed segment is
    /// always there to fetch.
    async fn store_segment(
        &mut self,
        mut segment: ClosedSegment,
        closed_at: Instant,
        keys: &KeyPrefetcher,
    ) -> std::io::Result<()> {
        let sequence = segment.sequence;
        if segment.forced_cut {
            warn!(
                seq = sequence,
                "cut without a keyframe: set the encoder's keyframe interval to 2 s"
            );
        }
        if !self.may_write() {
            warn!(
                seq = sequence,
                "publish lease about to expire or lost: segment not stored"
            );
            return Ok(());
        }
        if self.uploader.is_some() {
            self.submit_segment(segment, closed_at, keys);
            return Ok(());
        }
        let pieces = std::mem::take(&mut segment.pieces);
        let stored_bytes = self.writer.complete(sequence, pieces).await?;
        if !self.may_write() {
            warn!(
                seq = sequence,
                "publish lease about to expire or lost: segment not listed"
            );
            return Ok(());
        }

        let now_unix_ms = crate::clock::now_unix_ms();
        let stats = self.pipeline.stats();
        let tracks = self.pipeline.tracks();
        let max_media_gap_us = u64::try_from(self.max_media_gap.as_micros()).unwrap_or(u64::MAX);
        let recorded;
        let (text, expired) = {
            let mut state = self.stream.lock();
            let state = &mut *state;
            let Some(playlist) = state.playlist.edit() else {
                return Ok(());
            };
            let listed = self.timeline.list(&segment, now_unix_ms, playlist);
            // The entry just listed (an ended playlist lists nothing more).
            let file = crate::names::segment_file_name(&self.publish_id, sequence);
            recorded = (state.recording.as_mut())
                .zip(playlist.segments().last().filter(|entry| entry.uri == file))
                .map(|(recording, entry)| recording.add(entry, stored_bytes, now_unix_ms));
            let info = &mut state.info;
            info.tracks = tracks;
            info.video_frames = stats.video_frames;
            info.audio_frames = stats.audio_frames;
            info.segments = stats.segments;
            info.media_sequence = playlist.media_sequence();
            info.stored_bytes += stored_bytes;
            info.stored_media_ms += (segment.duration_secs * 1000.0).round() as u64;
            info.segments_dropped = stats.segments_dropped;
            info.key_waits = stats.key_waits;
            info.kms_failures = keys.failures();
            info.max_media_gap_us = max_media_gap_us;
            // Rendered once, for the file and for every viewer until the
            // next change; it lists the segment just added, so it is there.
            let Some(text) = state.playlist.text() else {
                return Ok(());
            };
            (text, listed.expired)
        };
        self.stream.write_playlist(text).await;
        let latency = segment_listed(&self.registry, &self.stream, &self.meters, recorded, closed_at, expired).await;
        debug!(
            seq = sequence,
            duration_secs = segment.duration_secs,
            publish_latency_us = latency.as_micros() as u64,
            "segment published"
        );
        Ok(())
    }

    /// Object storage: hands the closed segment, whole, to the upload queue
    /// (never waiting for storage), and updates what the pipeline counted.
    fn submit_segment(&mut self, mut segment: ClosedSegment, closed_at: Instant, keys: &KeyPrefetcher) {
        let (sequence, mut pieces) = std::mem::take(&mut self.buffered);
        if sequence == segment.sequence {
            pieces.append(&mut segment.pieces);
            segment.pieces = pieces;
        }
        let stats = self.pipeline.stats();
        let tracks = self.pipeline.tracks();
        let max_media_gap_us = u64::try_from(self.max_media_gap.as_micros()).unwrap_or(u64::MAX);
        let Some(uploader) = self.uploader.as_mut() else {
            return;
        };
        uploader.submit(segment, closed_at);
        let mut state = self.stream.lock();
        let info = &mut state.info;
        info.tracks = tracks;
        info.video_frames = stats.video_frames;
        info.audio_frames = stats.audio_frames;
        info.segments = stats.segments;
        info.segments_dropped = stats.segments_dropped + uploader.dropped();
        info.key_waits = stats.key_waits;
        info.kms_failures = keys.failures();
        info.max_media_gap_us = max_media_gap_us;
    }

    /// The publisher left: free the stream for the next publish, and end the
    /// playlist unless the publisher returns within the grace period.
    /// `owner`: whether this publish may still decide the playlist's end
    /// (not after its cluster lease was lost).
    async fn end(self, owner: bool) {
        let stats = self.pipeline.stats();
        let generation = {
            let mut state = self.stream.lock();
            state.live = false;
            state.control = None;
            state.info.live = false;
            state.info.max_media_gap_us = u64::try_from(self.max_media_gap.as_micros()).unwrap_or(u64::MAX);
            state.generation
        };
        self.registry.event(
            "stream.unpublished",
            &self.stream.name,
            serde_json::json!({
                "publish_id": self.publish_id,
                "segments": stats.segments,
                "segments_dropped": stats.segments_dropped,
            }),
        );
        if owner {
            self.registry.end_after_grace(&self.stream, generation).await;
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

impl Publish {
    /// Whether a segment or the playlist may still be written (always on a
    /// single node; in cluster mode, before the lease's write deadline).
    fn may_write(&self) -> bool {
        self.control.as_ref().is_none_or(|c| c.may_write(Instant::now()))
    }
}

fn segment_key(key: PrefetchedKey) -> SegmentKey {
    SegmentKey {
        id: key.id,
        key: key.key,
        wrapped: key.wrapped,
    }
}

/// What follows a segment's listing, on disk or in object storage: the
/// recording's playlist, the publication latency (segment closed → listed),
/// and the deletion, after their grace, of the segments that left the window.
pub(super) async fn segment_listed(
    registry: &Registry,
    stream: &Stream,
    meters: &crate::metrics::StreamMeters,
    recorded: Option<super::record::Snapshot>,
    closed_at: Instant,
    expired: Vec<crate::timeline::Expiry>,
) -> Duration {
    if let Some(recorded) = recorded {
        registry.recordings().store(&recorded).await;
    }
    let latency = closed_at.elapsed();
    stream.lock().info.publish_latency.record(latency);
    meters.segments.increment(1);
    meters.publish_seconds.record(latency.as_secs_f64());
    for expiry in expired {
        let key = crate::storage::segment_key(stream.name.app(), stream.name.name(), &expiry.uri);
        registry.delete_after(key, Duration::from_millis(expiry.after_ms));
    }
    latency
}
