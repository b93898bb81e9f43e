use super::*;
use crate::media::{AudioCodec, VideoCodec};

const AV: Tracks = Tracks {
    video: Some(VideoCodec::H264),
    audio: Some(AudioCodec::Aac),
};
const V: Tracks = Tracks {
    video: Some(VideoCodec::H264),
    audio: None,
};
const A: Tracks = Tracks {
    video: None,
    audio: Some(AudioCodec::Aac),
};

fn video(dts_ms: u64, keyframe: bool) -> AccessUnit<'static> {
    AccessUnit {
        track: Track::Video,
        pts_90k: dts_ms * 90,
        dts_90k: dts_ms * 90,
        keyframe,
        payload: crate::media::Payload::Bytes(&[]),
    }
}

fn audio(dts_ms: u64) -> AccessUnit<'static> {
    AccessUnit {
        track: Track::Audio,
        pts_90k: dts_ms * 90,
        dts_90k: dts_ms * 90,
        keyframe: true,
        payload: crate::media::Payload::Bytes(&[]),
    }
}

/// 30 fps video with RTMP millisecond timestamps (0, 33, 66, 100, ...),
/// a keyframe every `gop` frames, and AAC at 44.1 kHz interleaved in order.
fn av_stream(frames: u64, gop: u64) -> Vec<AccessUnit<'static>> {
    let mut aus = Vec::new();
    let mut a = 0u64;
    for n in 0..frames {
        let v_ms = n * 1000 / 30;
        while a * 1024 * 1000 / 44_100 <= v_ms {
            aus.push(audio(a * 1024 * 1000 / 44_100));
            a += 1;
        }
        aus.push(video(v_ms, n % gop == 0));
    }
    aus
}

/// (first DTS in ms, closed duration in ms of the previous segment, forced, discontinuity)
type CutRow = (u64, Option<u64>, bool, bool);

fn run(seg: &mut Segmenter, aus: &[AccessUnit<'_>], tracks: Tracks) -> Vec<CutRow> {
    let mut cuts = Vec::new();
    for au in aus {
        if let Decision::Cut {
            closed_duration_secs,
            forced,
            discontinuity,
        } = seg.decide(au, tracks)
        {
            cuts.push((
                au.dts_90k / 90,
                closed_duration_secs.map(|s| (s * 1000.0).round() as u64),
                forced,
                discontinuity,
            ));
        }
    }
    cuts
}

#[test]
fn two_second_gop_four_second_target_cuts_every_four_seconds() {
    for policy in [CutPolicy::KeyframesOnly, CutPolicy::BoundedByTarget] {
        let mut seg = Segmenter::new(4, policy);
        let cuts = run(&mut seg, &av_stream(30 * 13, 60), AV);
        assert_eq!(
            cuts,
            vec![
                (0, None, false, false),
                (4000, Some(4000), false, false),
                (8000, Some(4000), false, false),
                (12000, Some(4000), false, false),
            ],
            "{policy:?}"
        );
        assert_eq!(seg.forced_cuts(), 0);
        assert_eq!(seg.segment_start_dts_90k(), Some(12000 * 90));
        // Last video frame is n = 389 at 12966 ms; one more 33/34 ms step.
        let last = seg.finish().unwrap();
        assert!((last - 1.0).abs() < 0.0015, "{last}");
        assert_eq!(seg.finish(), None);
    }
}

#[test]
fn obs_250_frame_gop_keyframes_only_makes_long_segments() {
    let mut seg = Segmenter::new(4, CutPolicy::KeyframesOnly);
    let cuts = run(&mut seg, &av_stream(751, 250), AV);
    assert_eq!(
        cuts,
        vec![
            (0, None, false, false),
            (8333, Some(8333), false, false),
            (16666, Some(8333), false, false),
            (25000, Some(8334), false, false),
        ]
    );
    assert_eq!(seg.forced_cuts(), 0);
}

#[test]
fn obs_250_frame_gop_bounded_by_target_forces_cuts() {
    let mut seg = Segmenter::new(4, CutPolicy::BoundedByTarget);
    let cuts = run(&mut seg, &av_stream(751, 250), AV);
    // Forced cut at the first frame with elapsed + 34 ms >= 4499.5 ms
    // (frame 134 at 4466 ms); then the keyframe at 8333 ms comes after half
    // the target and the 8.33 s GOP says the next one is too far: cut there.
    assert_eq!(
        cuts,
        vec![
            (0, None, false, false),
            (4466, Some(4466), true, false),
            (8333, Some(3867), false, false),
            (12800, Some(4467), true, false),
            (16666, Some(3866), false, false),
            (21133, Some(4467), true, false),
            (25000, Some(3867), false, false),
        ]
    );
    assert_eq!(seg.forced_cuts(), 3);
    for (_, closed, _, _) in &cuts {
        if let Some(ms) = closed {
            assert!((ms + 500) / 1000 <= 4, "{ms} ms rounds above 4 s");
        }
    }
}

#[test]
fn bounded_by_target_holds_for_many_gops_and_targets() {
    for target in [1u32, 2, 4, 6] {
        for gop in [15u64, 30, 45, 60, 90, 125, 250, 300] {
            let mut seg = Segmenter::new(target, CutPolicy::BoundedByTarget);
            let cuts = run(&mut seg, &av_stream(3000, gop), AV);
            assert!(cuts.len() > 3, "target {target} gop {gop}");
            for (start, closed, forced, disc) in &cuts {
                assert!(!disc);
                if let Some(ms) = closed {
                    assert!(
                        (ms + 500) / 1000 <= u64::from(target),
                        "target {target} gop {gop}: {ms} ms before {start}"
                    );
                    assert!(*ms > 0);
                }
                // A GOP that fits the target never needs a forced cut.
                if gop * 1000 / 30 <= u64::from(target) * 1000 {
                    assert!(!forced, "target {target} gop {gop} at {start}");
                }
            }
        }
    }
}

#[test]
fn three_second_gop_four_second_target_cuts_early_at_keyframes() {
    let mut seg = Segmenter::new(4, CutPolicy::BoundedByTarget);
    let cuts = run(&mut seg, &av_stream(30 * 10, 90), AV);
    assert_eq!(
        cuts,
        vec![
            (0, None, false, false),
            (3000, Some(3000), false, false),
            (6000, Some(3000), false, false),
            (9000, Some(3000), false, false),
        ]
    );
    // KeyframesOnly waits for the target: 6 s segments.
    let mut seg = Segmenter::new(4, CutPolicy::KeyframesOnly);
    let cuts = run(&mut seg, &av_stream(30 * 10, 90), AV);
    assert_eq!(cuts, vec![(0, None, false, false), (6000, Some(6000), false, false)]);
}

#[test]
fn audio_only_cuts_on_duration() {
    for policy in [CutPolicy::KeyframesOnly, CutPolicy::BoundedByTarget] {
        let mut seg = Segmenter::new(4, policy);
        // AAC, 1024 samples at 44.1 kHz: 23.22 ms per frame.
        let aus: Vec<_> = (0..600).map(|a| audio(a * 1024 * 1000 / 44_100)).collect();
        let cuts = run(&mut seg, &aus, A);
        assert_eq!(
            cuts,
            vec![
                (0, None, false, false),
                (4017, Some(4017), false, false),
                (8034, Some(4017), false, false),
                (12051, Some(4017), false, false),
            ],
            "{policy:?}"
        );
        assert_eq!(seg.dropped_access_units(), 0);
    }
}

#[test]
fn drops_everything_before_the_first_video_keyframe() {
    let mut seg = Segmenter::new(4, CutPolicy::BoundedByTarget);
    let table: &[(AccessUnit<'static>, Tracks, Decision)] = &[
        (video(0, false), AV, Decision::Drop),
        (audio(10), AV, Decision::Drop),
        (video(33, false), AV, Decision::Drop),
        (audio(33), V, Decision::Drop), // audio header not seen yet
        (
            video(66, true),
            AV,
            Decision::Cut {
                closed_duration_secs: None,
                forced: false,
                discontinuity: false,
            },
        ),
        (audio(70), AV, Decision::Continue),
        (video(100, false), AV, Decision::Continue),
    ];
    for (i, (au, tracks, want)) in table.iter().enumerate() {
        assert_eq!(seg.decide(au, *tracks), *want, "row {i}");
    }
    assert_eq!(seg.dropped_access_units(), 4);
    assert_eq!(seg.segment_start_dts_90k(), Some(66 * 90));
}

#[test]
fn video_appearing_in_an_audio_only_stream_is_a_discontinuity() {
    let mut seg = Segmenter::new(4, CutPolicy::KeyframesOnly);
    let cut = |closed: Option<f64>, disc| Decision::Cut {
        closed_duration_secs: closed,
        forced: false,
        discontinuity: disc,
    };
    let table: &[(AccessUnit<'static>, Tracks, Decision)] = &[
        (audio(0), A, cut(None, false)),
        (audio(23), A, Decision::Continue),
        (audio(46), A, Decision::Continue),
        (video(40, false), AV, Decision::Drop),
        (audio(69), AV, Decision::Continue),
        // 69 + one 23 ms frame: the audio segment measured to its end.
        (video(73, true), AV, cut(Some(0.092), true)),
        (audio(92), AV, Decision::Continue),
        (video(106, false), AV, Decision::Continue),
    ];
    for (i, (au, tracks, want)) in table.iter().enumerate() {
        assert_eq!(seg.decide(au, *tracks), *want, "row {i}");
    }
    assert_eq!(seg.discontinuities(), 1);
}

#[test]
fn audio_appearing_late_waits_for_the_next_keyframe() {
    let mut seg = Segmenter::new(4, CutPolicy::KeyframesOnly);
    let table: &[(AccessUnit<'static>, Tracks, Decision)] = &[
        (
            video(0, true),
            V,
            Decision::Cut {
                closed_duration_secs: None,
                forced: false,
                discontinuity: false,
            },
        ),
        (audio(10), AV, Decision::Drop), // the open segment's PMT has no audio
        (video(1000, false), AV, Decision::Continue),
        (
            video(2000, true),
            AV,
            Decision::Cut {
                closed_duration_secs: Some(2.0),
                forced: false,
                discontinuity: true,
            },
        ),
        (audio(2010), AV, Decision::Continue),
    ];
    for (i, (au, tracks, want)) in table.iter().enumerate() {
        assert_eq!(seg.decide(au, *tracks), *want, "row {i}");
    }
}

#[test]
fn forced_cut_while_tracks_changed_is_a_discontinuity() {
    let mut seg = Segmenter::new(2, CutPolicy::BoundedByTarget);
    let mut aus: Vec<_> = (0..120).map(|n| (video(n * 1000 / 30, n == 0), AV)).collect();
    aus[0].1 = V;
    aus[1].1 = V;
    let mut cuts = Vec::new();
    for (au, tracks) in &aus {
        if let Decision::Cut {
            forced, discontinuity, ..
        } = seg.decide(au, *tracks)
        {
            cuts.push((au.dts_90k / 90, forced, discontinuity));
        }
    }
    // First frame with elapsed + 34 ms >= 2499.5 ms: 2466 ms.
    assert_eq!(cuts, vec![(0, false, false), (2466, true, true)]);
}

#[test]
fn timestamp_jumps_cut_with_discontinuity() {
    // (second part's first DTS in ms, its first frame is a keyframe, expected forced)
    let cases: &[(u64, bool)] = &[
        (500, false),   // backward, mid-GOP: forced and discontinuous
        (500, true),    // backward at a keyframe
        (60_000, true), // 58.5 s forward with a 4 s target: more than 10x
    ];
    for &(jump_to, key) in cases {
        let mut seg = Segmenter::new(4, CutPolicy::BoundedByTarget);
        let mut aus: Vec<_> = (0..45).map(|n| video(n * 1000 / 30, n == 0)).collect();
        aus.push(video(jump_to, key));
        aus.push(video(jump_to + 33, false));
        let cuts = run(&mut seg, &aus, V);
        // Frames 0..=44 end at 1466 ms + one 33 ms step.
        assert_eq!(
            cuts,
            vec![(0, None, false, false), (jump_to, Some(1499), !key, true)],
            "jump to {jump_to}"
        );
        assert_eq!(seg.discontinuities(), 1);
        assert_eq!(seg.forced_cuts(), u64::from(!key));
        assert_eq!(seg.segment_start_dts_90k(), Some(jump_to * 90));
    }
    // A forward step within 10x target is a pause, not a discontinuity:
    // the keyframe after it cuts normally.
    let mut seg = Segmenter::new(4, CutPolicy::KeyframesOnly);
    let aus = [video(0, true), video(33, false), video(30_000, true)];
    assert_eq!(
        run(&mut seg, &aus, V),
        vec![(0, None, false, false), (30_000, Some(30_000), false, false)]
    );
}

#[test]
fn a_stall_that_would_overrun_the_target_is_a_discontinuity() {
    // (policy, DTS in ms of the frame after the one at 1466 ms, it is a
    // keyframe, expected cuts after the first)
    let cases: &[(CutPolicy, u64, bool, &[CutRow])] = &[
        // A pause that still fits the bound stays inside the segment (a
        // forced cut follows: another 2 s step would overrun).
        (
            CutPolicy::BoundedByTarget,
            3466,
            false,
            &[(3466, Some(3466), true, false)],
        ),
        // 4.5 s past the segment start: EXTINF would round to 5 > 4.
        (
            CutPolicy::BoundedByTarget,
            4500,
            false,
            &[(4500, Some(1499), true, true)],
        ),
        (
            CutPolicy::BoundedByTarget,
            9466,
            true,
            &[(9466, Some(1499), false, true)],
        ),
        // VOD segments may run long: a pause under ten targets is kept.
        (
            CutPolicy::KeyframesOnly,
            9466,
            true,
            &[(9466, Some(9466), false, false)],
        ),
    ];
    for &(policy, after_gap, key, want) in cases {
        let mut seg = Segmenter::new(4, policy);
        let mut aus: Vec<_> = (0..45).map(|n| video(n * 1000 / 30, n == 0)).collect();
        aus.push(video(after_gap, key));
        aus.push(video(after_gap + 33, false));
        let cuts = run(&mut seg, &aus, V);
        assert_eq!(cuts[0], (0, None, false, false));
        assert_eq!(&cuts[1..], want, "{policy:?}, frame at {after_gap} ms");
        for (_, closed, _, _) in &cuts {
            assert!(closed.is_none_or(|ms| policy == CutPolicy::KeyframesOnly || (ms + 500) / 1000 <= 4));
        }
    }
}

#[test]
fn a_new_codec_configuration_cuts_at_the_next_keyframe() {
    let mut seg = Segmenter::new(4, CutPolicy::BoundedByTarget);
    let cut = |closed: Option<f64>, disc| Decision::Cut {
        closed_duration_secs: closed,
        forced: false,
        discontinuity: disc,
    };
    // (config changed before this row, access unit, decision)
    let table: &[(bool, AccessUnit<'static>, Decision)] = &[
        (true, video(0, true), cut(None, false)), // nothing open yet: a plain start
        (false, video(33, false), Decision::Continue),
        (true, video(66, false), Decision::Continue), // waits for a keyframe
        (false, audio(70), Decision::Continue),
        (false, video(100, true), cut(Some(0.1), true)),
        (false, video(133, false), Decision::Continue),
        (false, video(2000, true), Decision::Continue), // the change was handled
        (true, audio(2010), Decision::Continue),
        (false, video(3000, true), cut(Some(2.9), true)),
    ];
    for (i, (changed, au, want)) in table.iter().enumerate() {
        if *changed {
            seg.config_changed();
        }
        assert_eq!(seg.decide(au, AV), *want, "row {i}");
    }
    assert_eq!(seg.discontinuities(), 2);
    // Audio only: the next audio frame is the keyframe.
    let mut seg = Segmenter::new(4, CutPolicy::BoundedByTarget);
    assert_eq!(seg.decide(&audio(0), A), cut(None, false));
    seg.config_changed();
    assert_eq!(seg.decide(&audio(23), A), cut(Some(0.023), true));
}

#[test]
fn finish_measures_to_the_end_of_the_last_frame() {
    let mut seg = Segmenter::new(4, CutPolicy::KeyframesOnly);
    assert_eq!(seg.finish(), None);
    for au in [video(1000, true), video(1040, false), video(1080, false)] {
        seg.decide(&au, V);
    }
    // 1080 - 1000 + 40
    assert_eq!(seg.finish(), Some(0.12));
    assert_eq!(seg.segment_start_dts_90k(), None);
    // A stream after finish() starts afresh, not as a discontinuity.
    assert_eq!(
        seg.decide(&video(5000, true), V),
        Decision::Cut {
            closed_duration_secs: None,
            forced: false,
            discontinuity: false
        }
    );
}

#[test]
fn zero_target_is_clamped() {
    let seg = Segmenter::new(0, CutPolicy::KeyframesOnly);
    assert_eq!(seg.target_duration_secs(), 1);
    assert_eq!(seg.policy(), CutPolicy::KeyframesOnly);
}
