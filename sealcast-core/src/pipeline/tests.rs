use super::*;
use crate::crypto::{decrypt_segment, segment_iv};

const FIXTURE: &[u8] = include_bytes!("../../../fixtures/high-bframes-aac48k.flv");

fn config(segments_per_key: u32) -> PipelineConfig {
    PipelineConfig {
        target_duration_secs: 2,
        segments_per_key: NonZeroU32::new(segments_per_key).unwrap(),
        cut_policy: CutPolicy::KeyframesOnly,
        first_sequence: 10,
        discontinuity_at_start: false,
    }
}

fn key(n: u8) -> SegmentKey {
    SegmentKey {
        id: KeyId::new(&format!("k{n}")).unwrap(),
        key: DataKey::from_bytes([n; 16]),
        wrapped: WrappedKey::from_bytes(vec![n; 4]),
    }
}

/// Runs the fixture through a pipeline, giving keys whenever asked.
fn run(pipeline: &mut Pipeline, give_keys: bool) -> Vec<Output> {
    let (_, tags) = flv::tags(FIXTURE).unwrap();
    let mut outputs = Vec::new();
    let mut n = 0;
    for tag in tags {
        let tag = tag.unwrap();
        while give_keys && pipeline.wants_key() {
            n += 1;
            pipeline.provide_key(key(n));
        }
        if let Some(output) = pipeline.push(tag.kind, tag.timestamp_ms, tag.body).unwrap() {
            outputs.push(output);
        }
    }
    outputs.extend(pipeline.finish());
    outputs
}

fn segments(outputs: Vec<Output>) -> Vec<ClosedSegment> {
    outputs
        .into_iter()
        .map(|o| match o {
            Output::Segment(s) => s,
            Output::Dropped { sequence, .. } => panic!("segment {sequence} dropped"),
        })
        .collect()
}

/// Taking pieces out as they fill (as the live server does) gives, piece
/// by piece plus the closed segment's rest, exactly the bytes of a
/// pipeline whose segments are taken whole at their close.
#[test]
fn ciphertext_taken_in_pieces_equals_the_whole_segment() {
    let whole = segments(run(&mut Pipeline::new(config(1)), true));
    let mut pipeline = Pipeline::new(config(1));
    let (_, tags) = flv::tags(FIXTURE).unwrap();
    let mut taken: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut n = 0;
    let mut closed = Vec::new();
    for tag in tags {
        let tag = tag.unwrap();
        while pipeline.wants_key() {
            n += 1;
            pipeline.provide_key(key(n));
        }
        if let Some(output) = pipeline.push(tag.kind, tag.timestamp_ms, tag.body).unwrap() {
            closed.push(output);
        }
        while let Some((seq, piece)) = pipeline.take_piece() {
            assert_eq!(piece.len(), PIECE_BYTES);
            assert_ne!(piece[0], 0x47, "ciphertext must not look like TS");
            taken.push((seq, piece));
        }
    }
    closed.extend(pipeline.finish());
    let closed = segments(closed);
    assert_eq!(closed.len(), whole.len());
    assert!(taken.len() >= whole.len(), "{} pieces", taken.len());
    for (segment, want) in closed.iter().zip(&whole) {
        let mut got: Vec<u8> = taken
            .iter()
            .filter(|(s, _)| *s == segment.sequence)
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        got.extend_from_slice(&segment.pieces.concat());
        assert_eq!(segment.pieces.len(), 1, "seq {}: pieces left", segment.sequence);
        assert_eq!(got, want.pieces.concat(), "seq {}", segment.sequence);
        assert!(want.pieces.len() > 1, "segments span several pieces");
    }
}

#[test]
fn every_frame_lands_in_an_encrypted_segment() {
    let mut pipeline = Pipeline::new(config(2));
    let segments = segments(run(&mut pipeline, true));
    assert_eq!(segments.len(), 5, "10 s cut every 2 s");
    let (video, audio): (u32, u32) = segments
        .iter()
        .fold((0, 0), |(v, a), s| (v + s.video_frames, a + s.audio_frames));
    assert_eq!((video, audio), (300, 470));
    assert_eq!(pipeline.stats().frames_before_keyframe, 0);
    for (i, segment) in segments.iter().enumerate() {
        assert_eq!(segment.sequence, 10 + i as u64);
        // Keys change every second segment: k1 k1 k2 k2 k3.
        assert_eq!(segment.key.id.as_str(), format!("k{}", i / 2 + 1));
        let data_key = DataKey::from_bytes([(i / 2 + 1) as u8; 16]);
        assert_eq!(segment.key.iv, segment_iv(&data_key, segment.sequence));
        let mut plain = segment.pieces.concat();
        assert_ne!(plain[0], 0x47, "ciphertext must not look like TS");
        decrypt_segment(&data_key, segment.key.iv, &mut plain).unwrap();
        assert_eq!(plain.len() % 188, 0);
        assert!(plain.chunks(188).all(|p| p[0] == 0x47));
    }
    let total: f64 = segments.iter().map(|s| s.duration_secs).sum();
    assert!((total - 10.0).abs() < 0.05, "{total}");
}

#[test]
fn a_segment_waits_in_memory_for_its_key_and_is_dropped_without_one() {
    let mut pipeline = Pipeline::new(config(1));
    let outputs = run(&mut pipeline, false);
    assert_eq!(outputs.len(), 5);
    assert!(outputs.iter().all(|o| matches!(
        o,
        Output::Dropped {
            reason: DropReason::NoKey,
            ..
        }
    )));
    assert_eq!(pipeline.stats().segments_dropped, 5);

    // A key that arrives while a segment is open encrypts it from its
    // start, full pieces included; until then no piece can be taken.
    let mut pipeline = Pipeline::new(config(1));
    let (_, tags) = flv::tags(FIXTURE).unwrap();
    let mut closed = None;
    for (i, tag) in tags.enumerate() {
        let tag = tag.unwrap();
        if i == 100 {
            pipeline.provide_key(key(7));
        }
        if i < 100 {
            assert!(pipeline.take_piece().is_none(), "plaintext handed out");
        }
        if let Some(output) = pipeline.push(tag.kind, tag.timestamp_ms, tag.body).unwrap() {
            closed = Some(output);
            break;
        }
    }
    let Some(Output::Segment(segment)) = closed else {
        panic!("first segment not encrypted")
    };
    assert!(segment.pieces.len() > 1, "full pieces waited for the key");
    let mut plain = segment.pieces.concat();
    decrypt_segment(&DataKey::from_bytes([7; 16]), segment.key.iv, &mut plain).unwrap();
    assert!(plain.chunks(188).all(|p| p[0] == 0x47));
}

#[test]
fn the_segment_after_a_dropped_one_is_a_discontinuity() {
    let mut pipeline = Pipeline::new(config(1));
    let (_, tags) = flv::tags(FIXTURE).unwrap();
    let mut outputs = Vec::new();
    let mut n = 0;
    for tag in tags {
        let tag = tag.unwrap();
        // A key for the first segment, none for the second (the KMS is
        // down), then keys again: the third segment opens without one and
        // is encrypted from its start when its key arrives.
        let kms_answers = n == 0 || outputs.len() >= 2;
        while kms_answers && pipeline.wants_key() {
            n += 1;
            pipeline.provide_key(key(n));
        }
        if let Some(output) = pipeline.push(tag.kind, tag.timestamp_ms, tag.body).unwrap() {
            outputs.push(output);
        }
    }
    outputs.extend(pipeline.finish());
    let summary: Vec<(u64, &str, bool)> = outputs
        .iter()
        .map(|o| match o {
            Output::Segment(s) => (s.sequence, "segment", s.discontinuity),
            Output::Dropped { sequence, .. } => (*sequence, "dropped", false),
        })
        .collect();
    assert_eq!(
        summary,
        [
            (10, "segment", false),
            (11, "dropped", false),
            (12, "segment", true),
            (13, "segment", false),
            (14, "segment", false)
        ]
    );
    let stats = pipeline.stats();
    assert_eq!((stats.segments, stats.segments_dropped, stats.key_waits), (4, 1, 2));
}

#[test]
fn key_waits_count_segments_opened_without_a_key() {
    let mut pipeline = Pipeline::new(config(1));
    run(&mut pipeline, true);
    assert_eq!(pipeline.stats().key_waits, 0, "a key was always ready");
    let mut pipeline = Pipeline::new(config(1));
    run(&mut pipeline, false);
    assert_eq!(pipeline.stats().key_waits, 5);
}

#[test]
fn new_sequence_headers_mid_stream_cut_with_a_discontinuity() {
    const BASELINE: &[u8] = include_bytes!("../../../fixtures/baseline-aac44k.flv");
    // An encoder restarting with a new resolution: the 640x360 fixture up
    // to its 6 s keyframe, then the 426x240 one from its 6 s keyframe with
    // its sequence headers (its timestamps 23 ms later: continuous
    // enough), the same headers twice.
    let is_key = |t: &flv::Tag<'_>| t.kind == TagKind::Video && t.body.get(..2) == Some(&[0x17, 0x01]);
    let is_header = |t: &flv::Tag<'_>| t.kind != TagKind::Script && t.body.get(1) == Some(&0);
    let high: Vec<_> = flv::tags(FIXTURE).unwrap().1.map(Result::unwrap).collect();
    let baseline: Vec<_> = flv::tags(BASELINE).unwrap().1.map(Result::unwrap).collect();
    let at = high.iter().position(|t| is_key(t) && t.timestamp_ms >= 6000).unwrap();
    let from = baseline
        .iter()
        .position(|t| is_key(t) && t.timestamp_ms >= 6000)
        .unwrap();
    assert_eq!((high[at].timestamp_ms, baseline[from].timestamp_ms), (6000, 6023));
    let headers: Vec<_> = baseline.iter().filter(|t| is_header(t)).collect();
    assert_eq!(headers.len(), 2);
    let tags = high[..at]
        .iter()
        .chain(headers.iter().copied())
        .chain(headers.iter().copied())
        .chain(&baseline[from..]);

    let mut pipeline = Pipeline::new(config(1));
    let mut outputs = Vec::new();
    let mut n = 0;
    for tag in tags {
        while pipeline.wants_key() {
            n += 1;
            pipeline.provide_key(key(n));
        }
        outputs.extend(pipeline.push(tag.kind, tag.timestamp_ms, tag.body).unwrap());
    }
    outputs.extend(pipeline.finish());
    let cuts: Vec<(u64, bool)> = segments(outputs)
        .iter()
        .map(|s| (s.start_dts_90k / 90, s.discontinuity))
        .collect();
    assert_eq!(
        cuts,
        vec![(0, false), (2000, false), (4000, false), (6023, true), (8023, false)]
    );
    assert_eq!(pipeline.stats().non_monotonic_dropped, 0);
}

#[test]
fn audio_not_moving_forward_in_time_is_dropped_not_written() {
    let mut pipeline = Pipeline::new(config(1));
    pipeline.provide_key(key(1));
    pipeline.provide_key(key(2));
    let (_, tags) = flv::tags(FIXTURE).unwrap();
    let tags: Vec<_> = tags.map(Result::unwrap).take(120).collect();
    for tag in &tags {
        pipeline.push(tag.kind, tag.timestamp_ms, tag.body).unwrap();
    }
    let before = pipeline.stats();
    // Replay an early audio frame: its DTS is behind what was written.
    let early_audio = tags.iter().filter(|t| t.kind == TagKind::Audio).nth(5).unwrap();
    pipeline
        .push(early_audio.kind, early_audio.timestamp_ms, early_audio.body)
        .unwrap();
    let after = pipeline.stats();
    assert_eq!(after.non_monotonic_dropped, before.non_monotonic_dropped + 1);
    assert_eq!(after.audio_frames, before.audio_frames);
    // The latest audio frame again: same DTS, dropped too.
    let latest_audio = tags.iter().rfind(|t| t.kind == TagKind::Audio).unwrap();
    pipeline
        .push(latest_audio.kind, latest_audio.timestamp_ms, latest_audio.body)
        .unwrap();
    let again = pipeline.stats();
    assert_eq!(again.non_monotonic_dropped, after.non_monotonic_dropped + 1);
    assert_eq!(again.audio_frames, after.audio_frames);
}
