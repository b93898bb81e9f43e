use super::*;
use crate::media::AccessUnit;

const HEADER_AV: [u8; 13] = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];

fn tag_bytes(tag_type: u8, timestamp_ms: u32, body: &[u8]) -> Vec<u8> {
    let size = (body.len() as u32).to_be_bytes();
    let ts = timestamp_ms.to_be_bytes();
    let mut v = vec![tag_type, size[1], size[2], size[3], ts[1], ts[2], ts[3], ts[0], 0, 0, 0];
    v.extend_from_slice(body);
    v.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
    v
}

fn video(frame_type: u8, packet_type: u8, cts_ms: i32, data: &[u8]) -> Vec<u8> {
    let cts = cts_ms.to_be_bytes();
    let mut v = vec![(frame_type << 4) | VIDEO_CODEC_AVC, packet_type, cts[1], cts[2], cts[3]];
    v.extend_from_slice(data);
    v
}

fn audio(packet_type: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0xAF, packet_type];
    v.extend_from_slice(data);
    v
}

/// 4-byte length-prefixed NAL units.
fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for nal in nals {
        v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        v.extend_from_slice(nal);
    }
    v
}

fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for nal in nals {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(nal);
    }
    v
}

const SPS: &[u8] = &[
    0x67, 0x42, 0xC0, 0x15, 0xDA, 0x06, 0xC7, 0xF9, 0x3C, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0C,
    0x83, 0xC5, 0x8B, 0xA8,
];
const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];
const AUD_NAL: &[u8] = &[0x09, 0xF0];
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
const SLICE: &[u8] = &[0x41, 0x9A, 0x02, 0x10];
const SEI: &[u8] = &[0x06, 0x05, 0x01, 0xFF, 0x80];
const ASC_48K_STEREO: &[u8] = &[0x11, 0x90];

fn avc_config_body() -> Vec<u8> {
    video(1, 0, 0, avc::tests::BASELINE_RECORD)
}

fn primed() -> Demuxer {
    let mut d = Demuxer::new();
    assert_eq!(d.push(TagKind::Video, 0, &avc_config_body()).map(owned), Ok(None));
    assert_eq!(
        d.push(TagKind::Audio, 0, &audio(0, ASC_48K_STEREO)).map(owned),
        Ok(None)
    );
    d
}

/// (track, pts_90k, dts_90k, keyframe, payload) of an access unit.
type Au = (Track, u64, u64, bool, Vec<u8>);

fn owned(au: Option<AccessUnit<'_>>) -> Option<Au> {
    au.map(|a| (a.track, a.pts_90k, a.dts_90k, a.keyframe, a.payload.to_vec()))
}

type HeaderResult = Result<Option<(FileHeader, usize)>, Error>;

#[test]
fn file_header() {
    let cases: &[(&str, &[u8], HeaderResult)] = &[
        (
            "audio and video",
            &HEADER_AV,
            Ok(Some((
                FileHeader {
                    has_audio: true,
                    has_video: true,
                    header_len: 9,
                },
                13,
            ))),
        ),
        (
            "audio only, longer header",
            &[b'F', b'L', b'V', 1, 0x04, 0, 0, 0, 11, 0xAA, 0xBB, 0, 0, 0, 0],
            Ok(Some((
                FileHeader {
                    has_audio: true,
                    has_video: false,
                    header_len: 11,
                },
                15,
            ))),
        ),
        ("empty", &[], Ok(None)),
        ("header without PreviousTagSize0", &HEADER_AV[..9], Ok(None)),
        (
            "bad signature",
            b"FLX\x01\x05\0\0\0\x09\0\0\0\0",
            Err(Error::BadSignature),
        ),
        ("bad signature, early", b"G", Err(Error::BadSignature)),
        ("bad signature, 2 bytes", b"FX", Err(Error::BadSignature)),
        (
            "header too short",
            &[b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 8, 0, 0, 0, 0],
            Err(Error::BadHeaderLength(8)),
        ),
        (
            "huge header waits",
            &[b'F', b'L', b'V', 1, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0],
            Ok(None),
        ),
    ];
    for (name, buf, want) in cases {
        assert_eq!(&parse_file_header(buf), want, "{name}");
    }
    for len in 0..HEADER_AV.len() {
        assert_eq!(parse_file_header(&HEADER_AV[..len]), Ok(None), "prefix {len}");
    }
}

#[test]
fn tag_parsing() {
    let body = [0xAF, 0x01, 0x21, 0x10];
    let mut buf = tag_bytes(8, 0x7812_3456, &body);
    let tag_len = buf.len();
    assert_eq!(tag_len, 11 + 4 + 4);
    buf.extend_from_slice(&tag_bytes(9, 0, &[0x17, 2, 0, 0, 0])); // a following tag
    let want = Tag {
        kind: TagKind::Audio,
        timestamp_ms: 0x7812_3456,
        body: &body,
    };
    assert_eq!(parse_tag(&buf), Ok(Some((want, tag_len))));
    assert_eq!(parse_tag(&buf[..tag_len]), Ok(Some((want, tag_len))));
    for len in 0..tag_len {
        assert_eq!(parse_tag(&buf[..len]), Ok(None), "prefix {len}");
    }

    let empty = tag_bytes(18, 5, &[]);
    let (tag, used) = parse_tag(&empty).unwrap().unwrap();
    assert_eq!(
        (tag.kind, tag.timestamp_ms, tag.body, used),
        (TagKind::Script, 5, &[][..], 15)
    );

    let cases: &[(&str, Vec<u8>, Error)] = &[
        ("unknown type", tag_bytes(7, 0, &body), Error::UnknownTagType(7)),
        ("unknown type, 1 byte", vec![0x1F], Error::UnknownTagType(0x1F)),
        ("filtered", tag_bytes(0x20 | 9, 0, &body), Error::FilteredTag),
    ];
    for (name, buf, want) in cases {
        assert_eq!(parse_tag(buf), Err(want.clone()), "{name}");
    }
}

#[test]
fn tags_iterator() {
    let bodies: [&[u8]; 3] = [&[0xAF, 0, 0x11, 0x90], &[0x17, 2, 0, 0, 0], &[]];
    let mut file = HEADER_AV.to_vec();
    for (i, b) in bodies.iter().enumerate() {
        file.extend_from_slice(&tag_bytes([8, 9, 18][i], i as u32 * 10, b));
    }
    let (header, it) = tags(&file).unwrap();
    assert!(header.has_audio && header.has_video);
    let got: Vec<_> = it.collect();
    assert_eq!(got.len(), 3);
    for (i, t) in got.iter().enumerate() {
        let t = t.as_ref().unwrap();
        assert_eq!((t.timestamp_ms, t.body), (i as u32 * 10, bodies[i]));
    }

    // Truncated tail: the complete tags, one error, then the end.
    let cut = &file[..file.len() - 2];
    let (_, mut it) = tags(cut).unwrap();
    assert!(matches!(it.next(), Some(Ok(t)) if t.kind == TagKind::Audio));
    assert!(matches!(it.next(), Some(Ok(t)) if t.kind == TagKind::Video));
    assert_eq!(it.next(), Some(Err(Error::Truncated("FLV tag at end of file"))));
    assert_eq!(it.next(), None);

    // Malformed tail.
    let mut bad = HEADER_AV.to_vec();
    bad.extend_from_slice(&tag_bytes(8, 0, &[0xAF]));
    bad.extend_from_slice(&[0x02; 20]);
    let (_, mut it) = tags(&bad).unwrap();
    assert!(matches!(it.next(), Some(Ok(_))));
    assert_eq!(it.next(), Some(Err(Error::UnknownTagType(2))));
    assert_eq!(it.next(), None);

    // Header only: no tags.
    assert_eq!(tags(&HEADER_AV).unwrap().1.count(), 0);
    assert_eq!(tags(&HEADER_AV[..12]).unwrap_err(), Error::Truncated("FLV file header"));
}

#[test]
fn video_frames() {
    let mut d = primed();
    assert_eq!(
        d.tracks(),
        Tracks {
            video: Some(VideoCodec::H264),
            audio: Some(AudioCodec::Aac)
        }
    );
    struct Case {
        name: &'static str,
        ts: u32,
        body: Vec<u8>,
        want: Option<Au>,
    }
    let v = Track::Video;
    let cases = [
        Case {
            name: "IDR: AUD, SPS, PPS, SEI, IDR",
            ts: 0,
            body: video(1, 1, 0, &avcc(&[SEI, IDR])),
            want: Some((v, 0, 0, true, annex_b(&[AUD_NAL, SPS, PPS, SEI, IDR]))),
        },
        Case {
            name: "positive CTS",
            ts: 40,
            body: video(2, 1, 80, &avcc(&[SLICE])),
            want: Some((v, 120 * 90, 40 * 90, false, annex_b(&[AUD_NAL, SLICE]))),
        },
        Case {
            name: "negative CTS",
            ts: 1000,
            body: video(2, 1, -40, &avcc(&[SLICE])),
            want: Some((v, 960 * 90, 1000 * 90, false, annex_b(&[AUD_NAL, SLICE]))),
        },
        Case {
            name: "negative CTS below zero clamps PTS to 0",
            ts: 1000,
            body: video(2, 1, -0x80_0000, &avcc(&[SLICE])),
            want: Some((v, 0, 1000 * 90, false, annex_b(&[AUD_NAL, SLICE]))),
        },
        Case {
            name: "largest positive CTS",
            ts: 1000,
            body: video(2, 1, 0x7F_FFFF, &avcc(&[SLICE])),
            want: Some((v, (1000 + 0x7F_FFFF) * 90, 1000 * 90, false, annex_b(&[AUD_NAL, SLICE]))),
        },
        Case {
            name: "FrameType 1 without IDR is not a keyframe",
            ts: 1040,
            body: video(1, 1, 0, &avcc(&[SLICE])),
            want: Some((v, 1040 * 90, 1040 * 90, false, annex_b(&[AUD_NAL, SLICE]))),
        },
        Case {
            name: "IDR flagged inter is a keyframe",
            ts: 1080,
            body: video(2, 1, 0, &avcc(&[IDR])),
            want: Some((v, 1080 * 90, 1080 * 90, true, annex_b(&[AUD_NAL, SPS, PPS, IDR]))),
        },
        Case {
            name: "no NAL units",
            ts: 1100,
            body: video(2, 1, 0, &[]),
            want: None,
        },
        Case {
            name: "end of sequence",
            ts: 1100,
            body: video(1, 2, 0, &[]),
            want: None,
        },
        Case {
            name: "command frame",
            ts: 1100,
            body: vec![0x57, 0x00],
            want: None,
        },
        Case {
            name: "empty body",
            ts: 1100,
            body: vec![],
            want: None,
        },
    ];
    for case in cases {
        let got = d.push(TagKind::Video, case.ts, &case.body).map(owned);
        assert_eq!(got, Ok(case.want), "{}", case.name);
    }
}

#[test]
fn audio_frames() {
    let mut d = primed();
    let frame: Vec<u8> = (0..100).collect();
    let au = owned(d.push(TagKind::Audio, 21, &audio(1, &frame)).unwrap()).unwrap();
    let mut want = vec![0xFF, 0xF1, 0x4C, 0x80, 0x0D, 0x7F, 0xFC];
    want.extend_from_slice(&frame);
    assert_eq!(au, (Track::Audio, 21 * 90, 21 * 90, true, want));

    // 44.1 kHz config replaces the first one.
    assert_eq!(d.config_changes(), 0);
    assert_eq!(d.push(TagKind::Audio, 0, &audio(0, &[0x12, 0x10])).map(owned), Ok(None));
    assert_eq!(d.config_changes(), 1);
    let au = owned(d.push(TagKind::Audio, 44, &audio(1, &frame)).unwrap()).unwrap();
    assert_eq!(&au.4[..4], &[0xFF, 0xF1, 0x50, 0x80]);

    assert_eq!(d.push(TagKind::Audio, 50, &audio(1, &[])).map(owned), Ok(None));
    assert_eq!(d.push(TagKind::Audio, 50, &[]).map(owned), Ok(None));
    assert_eq!(
        d.push(TagKind::Audio, 50, &audio(1, &[0; 8185])).map(owned),
        Err(Error::AacFrameTooLong(8185))
    );
}

#[test]
fn errors_leave_demuxer_usable() {
    let mut d = Demuxer::new();
    assert_eq!(d.tracks(), Tracks::default());
    let slice = video(2, 1, 0, &avcc(&[SLICE]));
    let cases: &[(&str, TagKind, Vec<u8>, Error)] = &[
        (
            "video before config",
            TagKind::Video,
            slice.clone(),
            Error::NoSequenceHeader(Track::Video),
        ),
        (
            "audio before config",
            TagKind::Audio,
            audio(1, &[1, 2, 3]),
            Error::NoSequenceHeader(Track::Audio),
        ),
        (
            "Sorenson H.263",
            TagKind::Video,
            vec![0x22, 0, 0, 0],
            Error::UnsupportedCodec {
                track: Track::Video,
                codec: CodecId::Flv(2),
            },
        ),
        (
            "Enhanced RTMP HEVC",
            TagKind::Video,
            vec![0x91, b'h', b'v', b'c', b'1', 0, 0, 0],
            Error::UnsupportedCodec {
                track: Track::Video,
                codec: CodecId::FourCc(*b"hvc1"),
            },
        ),
        (
            "Enhanced RTMP ModEx",
            TagKind::Video,
            vec![0x97, 0, 0, 0, 0, 0],
            Error::UnsupportedCodec {
                track: Track::Video,
                codec: CodecId::Enhanced,
            },
        ),
        (
            "Enhanced RTMP, 1 byte",
            TagKind::Video,
            vec![0x90],
            Error::UnsupportedCodec {
                track: Track::Video,
                codec: CodecId::Enhanced,
            },
        ),
        (
            "MP3",
            TagKind::Audio,
            vec![0x2F, 0xFF, 0xFB],
            Error::UnsupportedCodec {
                track: Track::Audio,
                codec: CodecId::Flv(2),
            },
        ),
        (
            "Enhanced RTMP Opus",
            TagKind::Audio,
            vec![0x91, b'O', b'p', b'u', b's'],
            Error::UnsupportedCodec {
                track: Track::Audio,
                codec: CodecId::FourCc(*b"Opus"),
            },
        ),
        (
            "AVC header truncated",
            TagKind::Video,
            vec![0x17, 1, 0],
            Error::Truncated("AVC video tag header"),
        ),
        (
            "AAC header truncated",
            TagKind::Audio,
            vec![0xAF],
            Error::Truncated("AAC audio tag header"),
        ),
        (
            "AVC packet type 3",
            TagKind::Video,
            video(1, 3, 0, &[]),
            Error::BadPacketType {
                track: Track::Video,
                packet_type: 3,
            },
        ),
        (
            "AAC packet type 2",
            TagKind::Audio,
            audio(2, &[]),
            Error::BadPacketType {
                track: Track::Audio,
                packet_type: 2,
            },
        ),
        (
            "bad AVC config",
            TagKind::Video,
            video(1, 0, 0, &[1, 0x42, 0xC0, 0x15, 0xFF, 0xE1, 0, 9, 0x67]),
            Error::BadConfig("AVC parameter set longer than the record"),
        ),
        (
            "bad AAC config",
            TagKind::Audio,
            audio(0, &[0x11, 0x80]),
            Error::BadConfig("AAC channelConfiguration cannot be carried in ADTS (needs 1..=7)"),
        ),
    ];
    for (name, kind, body, want) in cases {
        assert_eq!(d.push(*kind, 0, body).map(owned), Err(want.clone()), "{name}");
    }
    assert_eq!(d.tracks(), Tracks::default(), "failed configs are not tracks");

    // A good config, a bad frame, a bad config, then a good frame: the
    // first config is still in force.
    let mut d = primed();
    assert_eq!(
        d.push(TagKind::Video, 0, &video(1, 1, 0, &[0, 0, 0, 9, 0x65]))
            .map(owned),
        Err(Error::NalLengthPastEnd {
            length: 9,
            remaining: 1
        })
    );
    assert!(d.push(TagKind::Video, 0, &video(1, 0, 0, &[1, 2])).is_err());
    let au = owned(d.push(TagKind::Video, 0, &video(1, 1, 0, &avcc(&[IDR]))).unwrap()).unwrap();
    assert_eq!(au.4, annex_b(&[AUD_NAL, SPS, PPS, IDR]));
}

#[test]
fn config_changes_count_only_different_configurations() {
    // The baseline record with a PPS byte changed: other parameter sets.
    let mut other_record = avc::tests::BASELINE_RECORD.to_vec();
    *other_record.last_mut().unwrap() ^= 0x01;
    let mut two_byte_lengths = avc::tests::BASELINE_RECORD.to_vec();
    two_byte_lengths[4] = 0xFD;
    // (tag kind, body, config_changes after it)
    let table: &[(TagKind, Vec<u8>, u64)] = &[
        (TagKind::Video, avc_config_body(), 0), // the first is no change
        (TagKind::Audio, audio(0, ASC_48K_STEREO), 0),
        (TagKind::Video, avc_config_body(), 0), // repeated header
        (TagKind::Audio, audio(0, ASC_48K_STEREO), 0),
        (TagKind::Video, video(1, 0, 0, &other_record), 1),
        (TagKind::Video, video(1, 0, 0, &other_record), 1),
        (TagKind::Video, video(1, 0, 0, &two_byte_lengths), 2), // NAL length size
        (TagKind::Audio, audio(0, &[0x12, 0x10]), 3),           // 44.1 kHz
        (TagKind::Video, video(1, 0, 0, &[0x01, 0x42]), 3),     // malformed: refused
        (TagKind::Audio, audio(0, &[0x12, 0x10]), 3),
    ];
    let mut d = Demuxer::new();
    for (i, (kind, body, want)) in table.iter().enumerate() {
        let _ = d.push(*kind, 0, body);
        assert_eq!(d.config_changes(), *want, "row {i}");
    }
}

#[test]
fn timestamps_wrap_on_one_timeline() {
    let mut d = primed();
    let slice = video(2, 1, 0, &avcc(&[SLICE]));
    let aac = audio(1, &[0x21, 0x10]);
    let mut push = |kind, ts: u32| {
        let body = if kind == TagKind::Video { &slice } else { &aac };
        let au = d.push(kind, ts, body).unwrap().unwrap();
        (au.dts_90k, au.pts_90k)
    };
    let wrap = 1u64 << 32;
    let steps = [
        (TagKind::Video, 0xFFFF_FF00u32, 0xFFFF_FF00u64),
        (TagKind::Audio, 0xFFFF_FF10, 0xFFFF_FF10),
        (TagKind::Video, 0x0000_0100, wrap + 0x100),
        // Audio still before the wrap lands before the video, not 49 days later.
        (TagKind::Audio, 0xFFFF_FFF0, 0xFFFF_FFF0),
        (TagKind::Audio, 0x0000_0110, wrap + 0x110),
        (TagKind::Video, 0x0000_0200, wrap + 0x200),
    ];
    for (kind, raw, want_ms) in steps {
        assert_eq!(push(kind, raw), (want_ms * 90, want_ms * 90), "{kind:?} {raw:#x}");
    }
}

#[test]
fn metadata_from_script_tags() {
    use metadata::tests::{Amf, full_metadata, on_metadata};
    let mut d = Demuxer::new();
    assert_eq!(d.metadata(), None);
    assert_eq!(
        d.push(TagKind::Script, 0, &on_metadata(Amf::default())).map(owned),
        Ok(None)
    );
    assert_eq!(d.metadata(), Some(&full_metadata()));

    let mut d = Demuxer::new();
    let body = on_metadata(Amf::default().string("@setDataFrame"));
    assert_eq!(d.push(TagKind::Script, 0, &body).map(owned), Ok(None));
    assert_eq!(d.metadata(), Some(&full_metadata()));

    // Other script data leaves metadata alone.
    let cue = Amf::default().string("onCuePoint").object().end().0;
    assert_eq!(d.push(TagKind::Script, 0, &cue).map(owned), Ok(None));
    assert_eq!(d.metadata(), Some(&full_metadata()));

    // Truncated onMetaData: error, and what was read replaces the old.
    let short = Amf::default()
        .string("onMetaData")
        .ecma_array(2)
        .name("width")
        .number(1920.0)
        .name("height")
        .raw(&[0, 0x40])
        .0;
    assert_eq!(
        d.push(TagKind::Script, 0, &short).map(owned),
        Err(Error::BadAmf("truncated"))
    );
    assert_eq!(
        d.metadata(),
        Some(&Metadata {
            width: Some(1920.0),
            ..Metadata::default()
        })
    );

    // Garbage that is not even a name: error, metadata kept.
    assert_eq!(
        d.push(TagKind::Script, 0, &[0x00, 1, 2]).map(owned),
        Err(Error::BadAmf("truncated"))
    );
    assert!(d.metadata().is_some());
    assert_eq!(d.push(TagKind::Script, 0, &[]).map(owned), Ok(None));
}

/// Deterministic xorshift64 (no rand crate).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Checks what any access unit must look like, whatever the input.
fn check_au(au: &AccessUnit<'_>) {
    let p = au.payload.to_vec();
    assert_eq!(p.len(), au.payload.len());
    match au.track {
        Track::Video => {
            assert_eq!(&p[..4], &[0, 0, 0, 1]);
            assert_eq!(p[4] & 0x1F, 9, "AUD first");
        }
        Track::Audio => {
            assert_eq!(&p[..2], &[0xFF, 0xF1]);
            let len = (usize::from(p[3] & 3) << 11) | (usize::from(p[4]) << 3) | usize::from(p[5] >> 5);
            assert_eq!(len, p.len(), "ADTS frame_length");
            assert_eq!(au.pts_90k, au.dts_90k);
            assert!(au.keyframe);
        }
    }
}

#[test]
fn fuzz_push_never_panics() {
    use metadata::tests::{Amf, on_metadata};
    let bodies: Vec<(TagKind, Vec<u8>)> = vec![
        (TagKind::Video, avc_config_body()),
        (TagKind::Video, video(1, 1, 0, &avcc(&[SEI, IDR]))),
        (TagKind::Video, video(2, 1, -33, &avcc(&[AUD_NAL, SLICE, SLICE]))),
        (TagKind::Audio, audio(0, ASC_48K_STEREO)),
        (TagKind::Audio, audio(1, &[0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C])),
        (TagKind::Script, on_metadata(Amf::default().string("@setDataFrame"))),
    ];
    let (mut frames, mut errors) = (0usize, 0usize);
    let mut tally = |r: Result<Option<AccessUnit<'_>>, Error>| match r {
        Ok(Some(au)) => {
            check_au(&au);
            frames += 1;
        }
        Ok(None) => {}
        Err(_) => errors += 1,
    };

    // Every prefix, into a demuxer that has both configurations.
    for (kind, body) in &bodies {
        for len in 0..=body.len() {
            let mut d = primed();
            tally(d.push(*kind, 0, &body[..len]));
        }
    }

    // Mutations, all into one long-lived demuxer so that mutated configs
    // and odd timestamps accumulate.
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut d = primed();
    let mut buf = Vec::new();
    for _ in 0..5000 {
        let (kind, body) = &bodies[rng.below(bodies.len())];
        buf.clear();
        buf.extend_from_slice(body);
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 => buf.truncate(rng.below(buf.len() + 1)),
                1 => buf.push(rng.next() as u8),
                _ if !buf.is_empty() => {
                    let i = rng.below(buf.len());
                    buf[i] = rng.next() as u8;
                }
                _ => {}
            }
        }
        if rng.below(8) == 0 {
            // Now and then re-prime so frames get past the configs.
            d = primed();
        }
        tally(d.push(*kind, rng.next() as u32, &buf));
    }
    assert!(frames > 500, "fuzz produced only {frames} frames");
    assert!(errors > 500, "fuzz produced only {errors} errors");

    // Still usable and exact after all that.
    let mut d = primed();
    let au = owned(d.push(TagKind::Video, 7, &video(1, 1, 0, &avcc(&[IDR]))).unwrap());
    assert_eq!(
        au,
        Some((Track::Video, 630, 630, true, annex_b(&[AUD_NAL, SPS, PPS, IDR])))
    );
}

/// What the fixtures under fixtures/ contain (see fixtures/README.md,
/// counts from ffprobe).
struct Fixture {
    name: &'static str,
    file: &'static [u8],
    video_frames: usize,
    keyframes: usize,
    audio_frames: usize,
    size: Option<(f64, f64)>,
    /// First ADTS header bytes 2..=3 (profile, rate index, channels).
    adts: Option<[u8; 2]>,
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "high-bframes-aac48k",
        file: include_bytes!("../../../fixtures/high-bframes-aac48k.flv"),
        video_frames: 300,
        keyframes: 5,
        audio_frames: 470,
        size: Some((640.0, 360.0)),
        adts: Some([0x4C, 0x80]),
    },
    Fixture {
        name: "baseline-aac44k",
        file: include_bytes!("../../../fixtures/baseline-aac44k.flv"),
        video_frames: 250,
        keyframes: 5,
        audio_frames: 432,
        size: Some((426.0, 240.0)),
        adts: Some([0x50, 0x80]),
    },
    Fixture {
        name: "audio-only-aac48k",
        file: include_bytes!("../../../fixtures/audio-only-aac48k.flv"),
        video_frames: 0,
        keyframes: 0,
        audio_frames: 283,
        size: None,
        adts: Some([0x4C, 0x80]),
    },
    Fixture {
        name: "video-only-main",
        file: include_bytes!("../../../fixtures/video-only-main.flv"),
        video_frames: 180,
        keyframes: 6,
        audio_frames: 0,
        size: Some((320.0, 180.0)),
        adts: None,
    },
];

/// NAL unit types of an Annex B access unit as written by the demuxer
/// (4-byte start codes; scans for 00 00 01, fine for tests).
fn nal_types(annex_b: &[u8]) -> Vec<u8> {
    annex_b
        .windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .map(|w| w[3] & 0x1F)
        .collect()
}

#[test]
fn demuxes_fixtures() {
    for fx in FIXTURES {
        let name = fx.name;
        let (header, tags) = tags(fx.file).unwrap();
        assert_eq!(
            (header.has_audio, header.has_video),
            (fx.audio_frames > 0, fx.video_frames > 0),
            "{name}"
        );
        let mut d = Demuxer::new();
        let (mut video, mut keyframes, mut audio) = (0, 0, 0);
        let mut last_dts = [0u64; 2];
        for tag in tags {
            let tag = tag.unwrap_or_else(|e| panic!("{name}: {e}"));
            let au = d.push(tag.kind, tag.timestamp_ms, tag.body);
            let Some(au) = au.unwrap_or_else(|e| panic!("{name}: {e}")) else {
                continue;
            };
            check_au(&au);
            let slot = &mut last_dts[au.track as usize];
            assert!(au.dts_90k >= *slot, "{name}: DTS went back");
            *slot = au.dts_90k;
            match au.track {
                Track::Video => {
                    video += 1;
                    assert!(au.pts_90k >= au.dts_90k, "{name}: PTS before DTS");
                    let types = nal_types(&au.payload.to_vec());
                    assert_eq!(types[0], 9, "{name}: AUD first");
                    assert_eq!(types.iter().filter(|&&t| t == 9).count(), 1, "{name}");
                    if au.keyframe {
                        keyframes += 1;
                        assert_eq!(&types[1..3], &[7, 8], "{name}: SPS/PPS before IDR");
                        assert!(types.contains(&5), "{name}");
                    } else {
                        assert!(!types.contains(&5), "{name}");
                    }
                }
                Track::Audio => {
                    audio += 1;
                    let p = au.payload.to_vec();
                    assert_eq!(Some([p[2], p[3] & 0xC0]), fx.adts, "{name}");
                }
            }
        }
        assert_eq!(
            (video, keyframes, audio),
            (fx.video_frames, fx.keyframes, fx.audio_frames),
            "{name}"
        );
        assert_eq!(
            d.tracks(),
            Tracks {
                video: (fx.video_frames > 0).then_some(VideoCodec::H264),
                audio: (fx.audio_frames > 0).then_some(AudioCodec::Aac),
            },
            "{name}"
        );
        let md = d.metadata().unwrap();
        assert_eq!(md.width.zip(md.height), fx.size, "{name}");
        assert!(md.encoder.as_deref().unwrap_or_default().starts_with("Lavf"), "{name}");
    }
}
