//! A publish's segments on their way to object storage. The publish task
//! never waits for storage: it hands each closed segment (its ciphertext,
//! buffered in memory while the segment was filled) to this task through a
//! bounded queue and goes on. Here each segment is PUT, retried with
//! exponential backoff until its deadline, and only then listed in the
//! stream's playlist, which is PUT after it: a listed segment is always
//! stored. A segment that cannot be stored in time, or that finds the queue
//! full, is dropped; the next listed segment carries `EXT-X-DISCONTINUITY`
//! (RFC 8216 4.3.2.3), so players skip the gap instead of stalling on it.
//!
//! Memory per stream: the segment being filled, [`QUEUED_SEGMENTS`] waiting
//! and one being uploaded: at most `QUEUED_SEGMENTS + 2` segments of
//! ciphertext (about 4 × 700 KB for 2 s segments at 2.7 Mb/s) on the way
//! to storage, and after it the stored ones this node keeps to serve them
//! itself ([`super::RecentSegments`]: `2 × playlist_window + 1` segments).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{Instrument as _, debug, error, warn};

use super::control::PublishControl;
use super::registry::Registry;
use super::stream::{Stream, playlist_body};
use crate::pipeline::ClosedSegment;
use crate::storage::{self, Storage};
use crate::timeline::Timeline;

/// Closed segments waiting for the one being uploaded.
pub(super) const QUEUED_SEGMENTS: usize = 2;

/// Target durations a segment may take from closing to being stored: a
/// player starts about three target durations behind the live edge (RFC
/// 8216 6.3.3), so a segment later than that no longer helps anyone live.
const DEADLINE_TARGET_DURATIONS: u32 = 3;

/// First wait between two attempts; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One closed segment to store.
struct Job {
    segment: ClosedSegment,
    closed_at: Instant,
}

/// The publish task's end of the upload queue.
pub(super) struct Uploader {
    jobs: mpsc::Sender<Job>,
    task: JoinHandle<()>,
    /// A segment was dropped at the queue: the next one submitted follows a gap.
    gap: bool,
    /// Segments dropped for storage, by either end.
    dropped: Arc<AtomicU64>,
    registry: Arc<Registry>,
    stream: Arc<Stream>,
    publish_id: String,
    /// The publish's control, once it runs: its cluster lease's write deadline.
    control: Arc<OnceLock<Arc<PublishControl>>>,
}

impl Uploader {
    pub(super) fn spawn(
        registry: Arc<Registry>,
        stream: Arc<Stream>,
        storage: Storage,
        timeline: Timeline,
        publish_id: String,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUED_SEGMENTS);
        let dropped = Arc::new(AtomicU64::new(0));
        let settings = registry.settings();
        let deadline = Duration::from_secs(u64::from(settings.segment_duration_secs * DEADLINE_TARGET_DURATIONS));
        let meters = registry.stream_meters(&stream.name);
        let control = Arc::new(OnceLock::new());
        let task = UploadTask {
            control: Arc::clone(&control),
            registry: Arc::clone(&registry),
            stream: Arc::clone(&stream),
            storage,
            timeline,
            publish_id: publish_id.clone(),
            deadline,
            gap: false,
            playlist_pending: None,
            dropped: Arc::clone(&dropped),
            meters,
        };
        let task = tokio::spawn(task.run(rx).in_current_span());
        Self {
            jobs,
            task,
            gap: false,
            dropped,
            registry,
            stream,
            publish_id,
            control,
        }
    }

    /// Binds the publish's control: nothing is listed once its lease's write
    /// deadline passed or the lease was lost.
    pub(super) fn bind(&self, control: Arc<PublishControl>) {
        let _ = self.control.set(control);
    }

    /// The lease is gone: whatever is queued or in flight is abandoned,
    /// nothing more is listed (the next holder owns the playlist).
    pub(super) fn abandon(self) {
        self.task.abort();
    }

    /// Queues `segment` (closed at `closed_at`) without waiting; with the
    /// queue full it is dropped here.
    pub(super) fn submit(&mut self, mut segment: ClosedSegment, closed_at: Instant) {
        if std::mem::take(&mut self.gap) {
            segment.discontinuity = true;
        }
        let sequence = segment.sequence;
        if let Err(error) = self.jobs.try_send(Job { segment, closed_at }) {
            let reason = match error {
                mpsc::error::TrySendError::Full(_) => "the upload queue is full (storage is slow or down)",
                mpsc::error::TrySendError::Closed(_) => "the upload task ended",
            };
            self.gap = true;
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.registry.count_storage_drop();
            error!(
                stream = %self.stream.name,
                seq = sequence,
                reason,
                "segment dropped: not stored; the playlist marks the gap"
            );
            self.registry.event(
                "segment.dropped",
                &self.stream.name,
                serde_json::json!({ "publish_id": self.publish_id, "seq": sequence, "reason": "Storage" }),
            );
        }
    }

    /// Segments dropped so far because storage did not take them.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every queued segment is stored or dropped (bounded by
    /// their deadlines) and the playlist is written.
    pub(super) async fn finish(self) {
        drop(self.jobs);
        if let Err(error) = self.task.await {
            error!(%error, "the upload task failed");
        }
    }
}

/// The other end: uploads, lists, writes the playlist.
struct UploadTask {
    registry: Arc<Registry>,
    stream: Arc<Stream>,
    storage: Storage,
    timeline: Timeline,
    publish_id: String,
    deadline: Duration,
    /// A segment was dropped here: the next one listed follows a gap.
    gap: bool,
    /// A playlist whose PUT failed, written again with the next one (or at the end).
    playlist_pending: Option<Arc<str>>,
    dropped: Arc<AtomicU64>,
    meters: crate::metrics::StreamMeters,
    control: Arc<OnceLock<Arc<PublishControl>>>,
}

impl UploadTask {
    /// Whether the publish may still list segments (see [`Uploader::bind`]).
    fn may_write(&self) -> bool {
        self.control
            .get()
            .is_none_or(|control| control.may_write(Instant::now()))
    }

    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            self.store(job).await;
        }
        if let Some(text) = self.playlist_pending.take() {
            let until = Instant::now() + self.deadline;
            if !self
                .put_until(&self.playlist_key(), &[playlist_body(&text)], until)
                .await
            {
                error!("the playlist could not be written before the publish ended");
            }
        }
    }

    fn playlist_key(&self) -> String {
        storage::playlist_key(self.stream.name.app(), self.stream.name.name())
    }

    /// PUTs `bytes`, retrying with backoff until `until`; whether it got stored.
    async fn put_until(&self, key: &str, pieces: &[Bytes], until: Instant) -> bool {
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0u32;
        loop {
            let remaining = until.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return false;
            }
            match tokio::time::timeout(remaining, self.storage.put(key, pieces)).await {
                Ok(Ok(())) => return true,
                Ok(Err(error)) => {
                    attempts += 1;
                    // The first failure and every tenth: a long outage must not flood the log.
                    if attempts % 10 == 1 {
                        warn!(stream = %self.stream.name, %error, attempts, "storing an object failed; retrying");
                    }
                }
                Err(_) => {
                    // The storage's own limit is longer than what was left.
                    warn!(
                        stream = %self.stream.name,
                        "S3 put of {key} in {} failed: status=timeout: no answer before the deadline",
                        self.storage.location()
                    );
                    return false;
                }
            }
            tokio::time::sleep(backoff.min(until.saturating_duration_since(Instant::now()))).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Stores one segment, then lists it; or drops it at its deadline.
    async fn store(&mut self, job: Job) {
        let Job { mut segment, closed_at } = job;
        let sequence = segment.sequence;
        let file = crate::names::segment_file_name(&self.publish_id, sequence);
        let key = storage::segment_key(self.stream.name.app(), self.stream.name.name(), &file);
        // The pieces as they are: no copy into one buffer.
        let body: Vec<Bytes> = std::mem::take(&mut segment.pieces)
            .into_iter()
            .map(Bytes::from)
            .collect();
        let stored_bytes: u64 = body.iter().map(|piece| piece.len() as u64).sum();
        if !self.put_until(&key, &body, closed_at + self.deadline).await {
            self.drop_segment(sequence);
            return;
        }
        if !self.may_write() {
            // Stored but never listed: the next holder deletes it after the
            // RFC 8216 window.
            warn!(
                seq = sequence,
                "publish lease about to expire or lost: segment not listed"
            );
            return;
        }
        if std::mem::take(&mut self.gap) {
            segment.discontinuity = true;
        }
        let recorded;
        let (text, expired) = {
            let mut state = self.stream.lock();
            let state = &mut *state;
            let Some(playlist) = state.playlist.edit() else {
                return;
            };
            let now_unix_ms = crate::clock::now_unix_ms();
            let listed = self.timeline.list(&segment, now_unix_ms, playlist);
            // The entry just listed (an ended playlist lists nothing more).
            recorded = (state.recording.as_mut())
                .zip(playlist.segments().last().filter(|entry| entry.uri == file))
                .map(|(recording, entry)| recording.add(entry, stored_bytes, now_unix_ms));
            state.info.media_sequence = playlist.media_sequence();
            state.info.stored_bytes += stored_bytes;
            state.info.stored_media_ms += (segment.duration_secs * 1000.0).round() as u64;
            // Rendered once, for storage and for every viewer until the
            // next change; it lists the segment just added, so it is there.
            let Some(text) = state.playlist.text() else {
                return;
            };
            (text, listed.expired)
        };
        // Stored and listed: from now on this node serves it from memory.
        let window = self.registry.settings().playlist_window;
        self.stream
            .recent()
            .insert(file, body.into(), super::RecentSegments::capacity(window));
        self.playlist_pending = None;
        // The playlist gets until the next segment is due; if it fails, the
        // next segment's playlist (a superset) replaces it.
        let until = Instant::now() + Duration::from_secs_f64(segment.duration_secs.max(1.0));
        if !self
            .put_until(&self.playlist_key(), &[playlist_body(&text)], until)
            .await
        {
            error!(stream = %self.stream.name, seq = sequence, "writing the playlist failed; it is written again with the next segment");
            self.playlist_pending = Some(text);
        }
        let latency =
            super::publish::segment_listed(&self.registry, &self.stream, &self.meters, recorded, closed_at, expired)
                .await;
        debug!(
            seq = sequence,
            publish_latency_us = latency.as_micros() as u64,
            "segment stored and listed"
        );
    }

    fn drop_segment(&mut self, sequence: u64) {
        self.gap = true;
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.registry.count_storage_drop();
        error!(
            stream = %self.stream.name,
            seq = sequence,
            deadline_secs = self.deadline.as_secs(),
            "segment dropped: storage did not take it by its deadline; the playlist marks the gap"
        );
        self.registry.event(
            "segment.dropped",
            &self.stream.name,
            serde_json::json!({
                "publish_id": self.publish_id,
                "seq": sequence,
                "reason": "Storage",
            }),
        );
    }
}
