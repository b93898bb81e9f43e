//! The format cores joined: FLV tag bodies in, closed encrypted segments out.
//!
//! A [`Pipeline`] is one stream's remuxer. It is sans-IO like the cores it joins:
//! the live server feeds it RTMP message bodies, `sealcast package` feeds it the
//! tags of an FLV file, and both store the [`ClosedSegment`]s it returns. Data keys
//! come in through [`Pipeline::provide_key`] because fetching them is IO; the
//! caller keeps one key ready ahead of need ([`Pipeline::wants_key`]) so a slow KMS
//! never delays a segment.
//!
//! Each segment's TS bytes are written into pieces of [`PIECE_BYTES`] and encrypted
//! in place as they are produced. A full piece is ciphertext the caller can take
//! ([`Pipeline::take_piece`]) while the segment is still open, so a live stream
//! holds about one piece of its segment in memory, whatever the segment's or a
//! frame's size. A segment opened before any key is ready keeps its plaintext in
//! memory only and is encrypted as soon as a key arrives; one that closes without
//! a key is dropped, never returned: plaintext media never leaves this module.
//! The segment after a dropped one is marked as a discontinuity, so the playlist
//! shows the gap.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::crypto::{self, DataKey, KeyId, SegmentEncryptor, WrappedKey};
use crate::flv::{self, TagKind};
use crate::hls::{CutPolicy, Decision, Segmenter};
use crate::media::{AccessUnit, CLOCK_90K, Payload, Track, Tracks};
use crate::ts;

/// How one stream is cut and keyed.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub target_duration_secs: u32,
    pub segments_per_key: NonZeroU32,
    pub cut_policy: CutPolicy,
    /// Media sequence number of the first segment.
    pub first_sequence: u64,
    /// Mark the first segment as a discontinuity (a republish continuing a playlist).
    pub discontinuity_at_start: bool,
}

/// A data key ready for use: the plaintext (memory only) and its wrapped form.
pub struct SegmentKey {
    pub id: KeyId,
    pub key: DataKey,
    pub wrapped: WrappedKey,
}

/// The public half of a segment's key: what the playlist's `EXT-X-KEY` carries.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: KeyId,
    /// Shared by every segment under this key.
    pub wrapped: Arc<WrappedKey>,
    pub iv: [u8; 16],
}

/// A finished, encrypted segment, ready to be stored and listed.
#[derive(Debug)]
pub struct ClosedSegment {
    pub sequence: u64,
    pub duration_secs: f64,
    /// DTS of the segment's first access unit, for `EXT-X-PROGRAM-DATE-TIME`.
    pub start_dts_90k: u64,
    /// AES-128-CBC ciphertext of the TS bytes, PKCS#7 padded, in order: the
    /// pieces [`Pipeline::take_piece`] did not already hand out. The last one
    /// ends with the padding.
    pub pieces: Vec<Vec<u8>>,
    pub key: KeyInfo,
    pub discontinuity: bool,
    /// Cut without a keyframe because the encoder's GOP exceeds the target.
    pub forced_cut: bool,
    pub video_frames: u32,
    pub audio_frames: u32,
}

impl ClosedSegment {
    /// Bytes of ciphertext in [`ClosedSegment::pieces`].
    pub fn ciphertext_len(&self) -> usize {
        self.pieces.iter().map(Vec::len).sum()
    }
}

/// Why a segment was not returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No data key arrived before the segment closed.
    NoKey,
}

/// What a push produced besides nothing.
#[derive(Debug)]
pub enum Output {
    Segment(ClosedSegment),
    Dropped { sequence: u64, reason: DropReason },
}

/// Counters for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Frames before the first keyframe, which no segment can start with.
    pub frames_before_keyframe: u64,
    pub segments: u64,
    /// Segments closed without a key and dropped (the KMS was down); the
    /// segment after each gap is marked as a discontinuity.
    pub segments_dropped: u64,
    /// Segments opened with no key ready, which had to wait for one (zero
    /// while prefetching keeps ahead of the KMS).
    pub key_waits: u64,
    pub forced_cuts: u64,
    /// Frames dropped because their DTS did not grow within a track's
    /// timeline: it went back, or repeated the previous one (a misbehaving
    /// encoder, or frames stamped before the stream's start, which the
    /// demuxer clamps to its first timestamp). The output's DTS strictly
    /// increases per track between discontinuities.
    pub non_monotonic_dropped: u64,
}

/// The key currently encrypting segments, and how many more it may encrypt.
struct ActiveKey {
    key: DataKey,
    id: KeyId,
    wrapped: Arc<WrappedKey>,
    uses_left: u32,
}

/// Segments are produced in pieces of this size: 348 TS packets, a multiple of
/// both the packet size and the AES block, so a full piece is encrypted whole
/// and can leave while its segment is still open.
pub const PIECE_BYTES: usize = 348 * ts::PACKET_SIZE;
const _: () = assert!(PIECE_BYTES.is_multiple_of(crypto::BLOCK_BYTES));

struct OpenSegment {
    sequence: u64,
    start_dts_90k: u64,
    /// The piece being filled: whole TS packets, encrypted up to the last
    /// complete AES block while there is a key.
    piece: Vec<u8>,
    /// Full pieces not taken yet, oldest first; plaintext while `cipher` is
    /// `None`, else ciphertext.
    full: VecDeque<Vec<u8>>,
    /// `None` while no key is available; the pieces are then plaintext in memory.
    cipher: Option<(SegmentEncryptor, KeyInfo)>,
    discontinuity: bool,
    forced_cut: bool,
    video_frames: u32,
    audio_frames: u32,
}

impl OpenSegment {
    /// Encrypts what it can of the piece being filled (whole blocks).
    fn encrypt_available(&mut self) {
        if let Some((cipher, _)) = self.cipher.as_mut() {
            cipher.encrypt_available(&mut self.piece);
        }
    }

    /// A key for a segment that waited for one: everything so far is
    /// encrypted now, full pieces first.
    fn start_encrypting(&mut self, source: KeyInfoSource) {
        let (mut cipher, info) = start_cipher(source, self.sequence);
        for piece in self.full.iter_mut() {
            cipher.encrypt_available(piece);
            cipher.consumed(piece.len());
        }
        cipher.encrypt_available(&mut self.piece);
        self.cipher = Some((cipher, info));
    }
}

/// The muxer writes into the open segment packet by packet; a full piece is
/// sealed (encrypted whole, when there is a key) and queued for the taking.
impl ts::PacketSink for OpenSegment {
    fn next_packet(&mut self) -> &mut [u8; ts::PACKET_SIZE] {
        if self.piece.len() + ts::PACKET_SIZE > PIECE_BYTES {
            let mut full = std::mem::replace(&mut self.piece, new_piece());
            if let Some((cipher, _)) = self.cipher.as_mut() {
                // Pieces hold whole packets, so a full one is exactly
                // PIECE_BYTES, whole AES blocks: nothing stays plaintext.
                cipher.encrypt_available(&mut full);
                cipher.consumed(full.len());
            }
            self.full.push_back(full);
        }
        self.piece.next_packet()
    }
}

/// An empty piece, with room for the padding a segment's last piece gets.
fn new_piece() -> Vec<u8> {
    Vec::with_capacity(PIECE_BYTES + crypto::BLOCK_BYTES)
}

/// One stream's FLV → TS → encrypted segment remuxer.
pub struct Pipeline {
    demuxer: flv::Demuxer,
    packager: Packager,
}

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Self {
        Self {
            demuxer: flv::Demuxer::new(),
            packager: Packager::new(config),
        }
    }

    /// True while no key is waiting to be used: the caller should fetch one.
    pub fn wants_key(&self) -> bool {
        self.packager.ready_keys.is_empty()
    }

    /// True while the open segment has no key: its plaintext waits in memory,
    /// and it is dropped if it closes before a key arrives.
    pub fn waiting_for_key(&self) -> bool {
        self.packager.open.as_ref().is_some_and(|open| open.cipher.is_none())
    }

    /// Hands over a data key for upcoming segments. If a segment is waiting for
    /// a key, it is encrypted with this one right away.
    pub fn provide_key(&mut self, key: SegmentKey) {
        self.packager.provide_key(key);
    }

    /// Hands out the open segment's oldest full piece of ciphertext, with the
    /// segment's sequence number. A live server appends these to the
    /// segment's file as they come, so a segment is never held whole in
    /// memory; the [`ClosedSegment`] later returned for this sequence carries
    /// only the rest. Plaintext is never handed out: a segment still waiting
    /// for its key has no pieces to take.
    pub fn take_piece(&mut self) -> Option<(u64, Vec<u8>)> {
        let open = self.packager.open.as_mut()?;
        open.cipher.as_ref()?;
        Some((open.sequence, open.full.pop_front()?))
    }

    pub fn stats(&self) -> Stats {
        self.packager.stats
    }

    pub fn tracks(&self) -> Tracks {
        self.demuxer.tracks()
    }

    /// Feeds one FLV tag body (an FLV file tag or an RTMP audio/video/data
    /// message). A malformed or unsupported tag is returned as an error for the
    /// caller to log; the pipeline stays usable.
    ///
    /// A sequence header that changes a track's configuration (an encoder
    /// restarting with a new resolution) makes the next keyframe start a new
    /// segment after a discontinuity ([`Segmenter::config_changed`]).
    pub fn push(&mut self, kind: TagKind, timestamp_ms: u32, body: &[u8]) -> Result<Option<Output>, flv::Error> {
        let tracks = self.demuxer.tracks();
        let config_changes = self.demuxer.config_changes();
        let Some(au) = self.demuxer.push(kind, timestamp_ms, body)? else {
            if self.demuxer.config_changes() != config_changes {
                self.packager.segmenter.config_changed();
            }
            return Ok(None);
        };
        Ok(self.packager.push(&au, tracks))
    }

    /// Closes the last, partial segment (the publisher left or the file ended).
    pub fn finish(&mut self) -> Option<Output> {
        self.packager.finish()
    }
}

/// Access units in, encrypted segments out: everything after the demuxer.
struct Packager {
    segmenter: Segmenter,
    muxer: ts::Muxer,
    segments_per_key: u32,
    ready_keys: VecDeque<SegmentKey>,
    active_key: Option<ActiveKey>,
    open: Option<OpenSegment>,
    next_sequence: u64,
    discontinuity_pending: bool,
    /// Audio held until the first segment opens: (pts, dts, ADTS frame).
    preroll: Vec<(u64, u64, Vec<u8>)>,
    /// Last DTS written per track (indexed by `Track as usize`).
    last_dts_90k: [Option<u64>; 2],
    stats: Stats,
}

/// At most this much audio is held before the first video keyframe.
const MAX_PREROLL_FRAMES: usize = 64;
const PREROLL_WINDOW_90K: u64 = CLOCK_90K;

impl Packager {
    fn new(config: PipelineConfig) -> Self {
        Self {
            segmenter: Segmenter::new(config.target_duration_secs, config.cut_policy),
            muxer: ts::Muxer::new(),
            segments_per_key: config.segments_per_key.get(),
            ready_keys: VecDeque::new(),
            active_key: None,
            open: None,
            next_sequence: config.first_sequence,
            discontinuity_pending: config.discontinuity_at_start,
            preroll: Vec::new(),
            last_dts_90k: [None; 2],
            stats: Stats::default(),
        }
    }

    fn provide_key(&mut self, key: SegmentKey) {
        self.ready_keys.push_back(key);
        let waiting = self.open.as_ref().is_some_and(|open| open.cipher.is_none());
        if waiting && let Some(source) = self.next_key() {
            // Some(open) was just checked.
            if let Some(open) = self.open.as_mut() {
                open.start_encrypting(source);
            }
        }
    }

    fn push(&mut self, au: &AccessUnit<'_>, tracks: Tracks) -> Option<Output> {
        let mut output = None;
        match self.segmenter.decide(au, tracks) {
            Decision::Drop => {
                if self.open.is_none() && au.track == Track::Audio {
                    self.hold_preroll(au);
                } else {
                    self.stats.frames_before_keyframe += 1;
                }
                return None;
            }
            Decision::Continue => {}
            Decision::Cut {
                closed_duration_secs,
                forced,
                discontinuity,
            } => {
                if let (Some(open), Some(duration_secs)) = (self.open.take(), closed_duration_secs) {
                    let closed = close_segment(open, duration_secs, &mut self.stats);
                    // A player must not splice the segments around a gap as if
                    // they were contiguous (RFC 8216 4.3.2.3).
                    self.discontinuity_pending |= matches!(closed, Output::Dropped { .. });
                    output = Some(closed);
                }
                if forced {
                    self.stats.forced_cuts += 1;
                }
                if discontinuity {
                    // A new timeline: DTS may restart lower.
                    self.last_dts_90k = [None; 2];
                }
                let discontinuity = discontinuity || std::mem::take(&mut self.discontinuity_pending);
                self.open_segment(au.dts_90k, tracks, forced, discontinuity);
                self.write_preroll(au.dts_90k);
            }
        }
        self.write(au);
        output
    }

    /// Writes an access unit into the open segment and encrypts what it can.
    fn write(&mut self, au: &AccessUnit<'_>) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let last_dts = &mut self.last_dts_90k[au.track as usize];
        // Two frames of a track never share a DTS (ISO/IEC 13818-1 2.7.5:
        // decoding times increase), so a repeat is dropped as well.
        if last_dts.is_some_and(|last| au.dts_90k <= last) {
            self.stats.non_monotonic_dropped += 1;
            return;
        }
        *last_dts = Some(au.dts_90k);
        if let Err(error) = self.muxer.write(au, open) {
            // The segmenter only lets through tracks the segment's PMT declares.
            tracing::warn!(%error, "access unit not muxed");
            return;
        }
        match au.track {
            Track::Video => {
                open.video_frames += 1;
                self.stats.video_frames += 1;
            }
            Track::Audio => {
                open.audio_frames += 1;
                self.stats.audio_frames += 1;
            }
        }
        open.encrypt_available();
    }

    /// Keeps a copy of audio that arrives before the first video keyframe
    /// (encoders often send the first audio frame a few ms ahead of video).
    fn hold_preroll(&mut self, au: &AccessUnit<'_>) {
        if self.preroll.len() == MAX_PREROLL_FRAMES {
            self.preroll.remove(0);
            self.stats.frames_before_keyframe += 1;
        }
        self.preroll.push((au.pts_90k, au.dts_90k, au.payload.to_vec()));
    }

    /// Writes held audio from up to [`PREROLL_WINDOW_90K`] before the first
    /// segment's start into it; older audio is dropped.
    fn write_preroll(&mut self, start_dts_90k: u64) {
        for (pts_90k, dts_90k, payload) in std::mem::take(&mut self.preroll) {
            if dts_90k + PREROLL_WINDOW_90K < start_dts_90k {
                self.stats.frames_before_keyframe += 1;
                continue;
            }
            let au = AccessUnit {
                track: Track::Audio,
                pts_90k,
                dts_90k,
                keyframe: true,
                payload: Payload::Bytes(&payload),
            };
            self.write(&au);
        }
    }

    fn finish(&mut self) -> Option<Output> {
        let duration_secs = self.segmenter.finish()?;
        let open = self.open.take()?;
        Some(close_segment(open, duration_secs, &mut self.stats))
    }

    fn open_segment(&mut self, start_dts_90k: u64, tracks: Tracks, forced_cut: bool, discontinuity: bool) {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.saturating_add(1);
        let cipher = self.next_key().map(|source| start_cipher(source, sequence));
        if cipher.is_none() {
            self.stats.key_waits += 1;
        }
        let open = self.open.insert(OpenSegment {
            sequence,
            start_dts_90k,
            piece: new_piece(),
            full: VecDeque::new(),
            cipher,
            discontinuity,
            forced_cut,
            video_frames: 0,
            audio_frames: 0,
        });
        self.muxer.start_segment(tracks, open);
        open.encrypt_available();
    }

    /// Picks the key for the next segment: the active key while it has uses
    /// left, else the next ready key. `None` when no key is available.
    fn next_key(&mut self) -> Option<KeyInfoSource> {
        if self.active_key.as_ref().is_none_or(|a| a.uses_left == 0) {
            // Dropping the spent key zeroizes it.
            self.active_key = self.ready_keys.pop_front().map(|k| ActiveKey {
                key: k.key,
                id: k.id,
                wrapped: Arc::new(k.wrapped),
                uses_left: self.segments_per_key,
            });
        }
        let active = self.active_key.as_mut()?;
        active.uses_left -= 1;
        Some(KeyInfoSource {
            key: active.key.clone(),
            id: active.id.clone(),
            wrapped: Arc::clone(&active.wrapped),
        })
    }
}

/// What a segment needs from its key: the key bytes, to build the cipher, and
/// the public half.
struct KeyInfoSource {
    key: DataKey,
    id: KeyId,
    wrapped: Arc<WrappedKey>,
}

fn start_cipher(source: KeyInfoSource, sequence: u64) -> (SegmentEncryptor, KeyInfo) {
    let iv = crypto::segment_iv(&source.key, sequence);
    let cipher = SegmentEncryptor::new(&source.key, iv);
    let info = KeyInfo {
        id: source.id,
        wrapped: source.wrapped,
        iv,
    };
    (cipher, info)
}

fn close_segment(open: OpenSegment, duration_secs: f64, stats: &mut Stats) -> Output {
    let OpenSegment {
        sequence,
        start_dts_90k,
        mut piece,
        full,
        cipher,
        discontinuity,
        forced_cut,
        video_frames,
        audio_frames,
        ..
    } = open;
    let Some((cipher, key)) = cipher else {
        // Never let plaintext out: wipe what we had and report the gap.
        for mut plaintext in full.into_iter().chain([piece]) {
            plaintext.fill(0);
        }
        stats.segments_dropped += 1;
        return Output::Dropped {
            sequence,
            reason: DropReason::NoKey,
        };
    };
    cipher.finish(&mut piece);
    let mut pieces = Vec::from(full);
    pieces.push(piece);
    stats.segments += 1;
    Output::Segment(ClosedSegment {
        sequence,
        duration_secs,
        start_dts_90k,
        pieces,
        key,
        discontinuity,
        forced_cut,
        video_frames,
        audio_frames,
    })
}

#[cfg(test)]
mod tests;
