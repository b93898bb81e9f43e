//! FLV tags with hostile timestamps through the whole `pipeline::Pipeline`:
//! demuxer, segmenter, TS muxer and segment cipher. No input may panic, and
//! what comes out must hold: sequence numbers count up by one, every segment
//! decrypts under its key and IV to whole 188-byte TS packets, durations are
//! finite and not negative, and the stats agree with the outputs.
//!
//! Input: one config byte, then the same bytes as `flv_demux` (an FLV file,
//! and carved records). Config byte bits: 0-1 target duration 1..=4 s, 2
//! segments per key 1 or 2, 3 cut policy, 4 discontinuity at start, 5 withhold
//! keys (exercises the "no key: drop, never plaintext" path), 6 a first
//! sequence number far from 0, 7 take full pieces after every push (as the
//! live server does) rather than whole segments at their close.
#![no_main]

use std::collections::HashMap;
use std::num::NonZeroU32;

use libfuzzer_sys::fuzz_target;
use sealcast_core::crypto::{DataKey, KeyId, WrappedKey, decrypt_segment, segment_iv};
use sealcast_core::hls::CutPolicy;
use sealcast_core::pipeline::{Output, PIECE_BYTES, Pipeline, PipelineConfig, SegmentKey};
use sealcast_fuzz::for_each_record;

struct Run {
    pipeline: Pipeline,
    withhold_keys: bool,
    take_pieces: bool,
    /// Ciphertext of the open segment taken so far: (sequence, bytes).
    taken: (u64, Vec<u8>),
    keys_made: u8,
    /// Key id -> key bytes, to decrypt what comes out.
    keys: HashMap<String, [u8; 16]>,
    next_sequence: u64,
    outputs: u64,
    plain: Vec<u8>,
}

impl Run {
    fn new(config: &PipelineConfig, withhold_keys: bool, take_pieces: bool) -> Self {
        Self {
            pipeline: Pipeline::new(config.clone()),
            withhold_keys,
            take_pieces,
            taken: (u64::MAX, Vec::new()),
            keys_made: 0,
            keys: HashMap::new(),
            next_sequence: config.first_sequence,
            outputs: 0,
            plain: Vec::new(),
        }
    }

    fn keep_a_key_ready(&mut self) {
        if self.withhold_keys || !self.pipeline.wants_key() {
            return;
        }
        self.keys_made = self.keys_made.wrapping_add(1);
        let n = self.keys_made;
        let id = format!("k{n}");
        let bytes = [n; 16];
        self.keys.insert(id.clone(), bytes);
        self.pipeline.provide_key(SegmentKey {
            id: KeyId::new(&id).expect("k<digits> is a valid key id"),
            key: DataKey::from_bytes(bytes),
            wrapped: WrappedKey::from_bytes(vec![n; 4]),
        });
    }

    fn take_pieces(&mut self) {
        while self.take_pieces
            && let Some((sequence, piece)) = self.pipeline.take_piece()
        {
            assert!(!self.withhold_keys, "a piece without a key came out");
            assert_eq!(piece.len(), PIECE_BYTES, "only full pieces are taken");
            if self.taken.0 != sequence {
                self.taken = (sequence, Vec::new());
            }
            self.taken.1.extend_from_slice(&piece);
        }
    }

    fn check(&mut self, output: Output) {
        self.outputs += 1;
        match output {
            Output::Dropped { sequence, .. } => {
                assert_eq!(sequence, self.next_sequence, "dropped segment out of order");
                self.next_sequence = sequence + 1;
            }
            Output::Segment(segment) => {
                assert_eq!(segment.sequence, self.next_sequence, "segment out of order");
                self.next_sequence = segment.sequence + 1;
                assert!(
                    segment.duration_secs.is_finite() && segment.duration_secs >= 0.0,
                    "duration {}",
                    segment.duration_secs
                );
                let bytes = self.keys[segment.key.id.as_str()];
                let key = DataKey::from_bytes(bytes);
                assert_eq!(segment.key.iv, segment_iv(&key, segment.sequence));
                self.plain.clear();
                if self.taken.0 == segment.sequence {
                    self.plain.append(&mut self.taken.1);
                }
                for piece in &segment.pieces {
                    self.plain.extend_from_slice(piece);
                }
                decrypt_segment(&key, segment.key.iv, &mut self.plain).expect("segment decrypts");
                assert!(!self.plain.is_empty());
                assert_eq!(self.plain.len() % 188, 0, "whole TS packets");
                assert!(self.plain.chunks(188).all(|p| p[0] == 0x47), "TS sync bytes");
            }
        }
    }

    fn finish(mut self) {
        if let Some(output) = self.pipeline.finish() {
            self.check(output);
        }
        let stats = self.pipeline.stats();
        assert_eq!(stats.segments + stats.segments_dropped, self.outputs, "{stats:?}");
        if self.withhold_keys {
            assert_eq!(stats.segments, 0, "a segment without a key came out");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&config_byte, data)) = data.split_first() else {
        return;
    };
    let config = PipelineConfig {
        target_duration_secs: 1 + u32::from(config_byte & 3),
        segments_per_key: NonZeroU32::new(1 + u32::from((config_byte >> 2) & 1)).expect("1 or 2"),
        cut_policy: if config_byte & 8 == 0 {
            CutPolicy::BoundedByTarget
        } else {
            CutPolicy::KeyframesOnly
        },
        first_sequence: if config_byte & 64 == 0 { 0 } else { u64::from(u32::MAX) },
        discontinuity_at_start: config_byte & 16 != 0,
    };
    let withhold_keys = config_byte & 32 != 0;
    let take_pieces = config_byte & 128 != 0;
    let mut runs = [
        Run::new(&config, withhold_keys, take_pieces),
        Run::new(&config, withhold_keys, take_pieces),
    ];
    for_each_record(data, |pass, (kind, timestamp_ms, body)| {
        let run = &mut runs[pass];
        run.keep_a_key_ready();
        if let Ok(Some(output)) = run.pipeline.push(kind, timestamp_ms, body) {
            run.check(output);
        }
        run.take_pieces();
    });
    for run in runs {
        run.finish();
    }
});
