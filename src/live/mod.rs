//! Live streams: the registry of configured streams and publish decisions
//! ([`registry`]), the task that runs one publish's pipeline ([`publish`]),
//! and the writer that stores its segments ([`writer`]).
//!
//! One task per publish owns its [`crate::pipeline::Pipeline`]; it talks to
//! the outside through the media channel from the RTMP connection, the KMS,
//! the file system and the stream's small shared state (the playlist the HTTP
//! side renders). Streams share nothing mutable but the registry map, so a
//! slow or broken stream never delays another. Where a segment sits in time
//! (its playlist entry, when it may be deleted) is the sans-IO
//! [`crate::timeline`]'s answer.
//!
//! Data keys never sit on the segment path: a [`crate::kms::KeyPrefetcher`]
//! per publish fetches the next key while the current segment is still being
//! filled, and the publish task takes it with a `select!` beside the media
//! channel. When the KMS cannot give a key (down, throttling, access denied)
//! the stream keeps ingesting; a segment that closes without a key is dropped
//! in memory, counted and logged with the KMS error, the next segment is
//! marked as a discontinuity, and encryption resumes by itself once the KMS
//! answers again (the prefetcher retries with backoff). Plaintext media is
//! never written.

mod cluster;
mod control;
mod publish;
mod recent;
mod record;
pub mod recordings;
mod registry;
mod served;
mod stored;
mod stream;
mod upload;
mod writer;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

pub use cluster::leases_from_config;
pub use control::{PublishControl, Stop};
pub use recent::{RecentSegments, SegmentMemory, slice_pieces};
pub use record::key_id_prefix;
pub use recordings::{Manifest, RecordSettings, RecordingState, Recordings};
pub use registry::Registry;
pub use stream::Stream;

use crate::auth::Secret;
use crate::media::Tracks;
use crate::names::StreamName;

/// What the live side needs from the configuration.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub data_dir: PathBuf,
    /// Prefix of key URIs (the server's public URL), or empty for `/keys/...`.
    pub key_uri_base: String,
    pub segment_duration_secs: u32,
    pub playlist_window: usize,
    /// `[hls] dvr_window_secs`: seconds the live playlist keeps listed (0: off).
    pub dvr_window_secs: u32,
    pub segments_per_key: NonZeroU32,
    /// How long a playlist waits for its publisher to return before it ends.
    pub reconnect_grace: Duration,
    /// Where segments and playlists go: `Storage::Local(data_dir)`, or a bucket.
    pub storage: crate::storage::Storage,
    /// `[rtmp] takeover_idle_secs`: a new publish takes over from a live one
    /// that has sent no media this long; `None`: never.
    pub takeover_idle: Option<Duration>,
    /// Recordings (`[record]`): kept in `storage`, listed by the API.
    pub recordings: std::sync::Arc<Recordings>,
    /// `[http.limits] segment_memory_mb`: what every stream's
    /// [`RecentSegments`] draws on.
    pub segment_memory: std::sync::Arc<SegmentMemory>,
}

/// A configured stream as the registry is given it.
pub struct StreamSpec {
    pub name: StreamName,
    pub publish_key: Secret,
    /// Record its publishes; `None`: `[record] enabled`.
    pub record: Option<bool>,
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
