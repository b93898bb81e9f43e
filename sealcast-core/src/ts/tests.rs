//! Tests of the TS muxer. Packets are checked twice: parsed by hand here
//! (independently of mpeg2ts) and decoded with mpeg2ts's readers. PSI goldens
//! are ffmpeg 5.1's bytes for the same program layout.

use super::*;
use crate::media::Payload;
use mpeg2ts::pes::{PesPacketReader, ReadPesPacket};
use mpeg2ts::ts::{ReadTsPacket, TsPacketReader};

const AV: Tracks = Tracks {
    video: Some(VideoCodec::H264),
    audio: Some(AudioCodec::Aac),
};
const VIDEO_ONLY: Tracks = Tracks {
    video: Some(VideoCodec::H264),
    audio: None,
};
const AUDIO_ONLY: Tracks = Tracks {
    video: None,
    audio: Some(AudioCodec::Aac),
};
const NO_TRACKS: Tracks = Tracks {
    video: None,
    audio: None,
};
const WRAP: u64 = 1 << 33;

/// ffmpeg's PAT section: transport_stream_id 1, version 0, program 1 -> PID 0x1000.
const PAT_SECTION: &[u8] = &[
    0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1, 0x04, 0xB2,
];
/// ffmpeg's PMT: PCR 0x100, H.264 on 0x100, ADTS AAC on 0x101.
const PMT_AV: &[u8] = &[
    0x02, 0xB0, 0x17, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00, 0x0F, 0xE1,
    0x01, 0xF0, 0x00, 0x2F, 0x44, 0xB9, 0x9B,
];
/// ffmpeg's PMT (`-streamid 0:0x101`): PCR 0x101, ADTS AAC on 0x101.
const PMT_AUDIO: &[u8] = &[
    0x02, 0xB0, 0x12, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x01, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00, 0xEC, 0xE2,
    0xB0, 0x94,
];
/// ffmpeg's PMT: PCR 0x100, H.264 on 0x100.
const PMT_VIDEO: &[u8] = &[
    0x02, 0xB0, 0x12, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00, 0x15, 0xBD,
    0x4D, 0x56,
];

fn au(track: Track, pts_90k: u64, dts_90k: u64, keyframe: bool, payload: &[u8]) -> AccessUnit<'_> {
    AccessUnit {
        track,
        pts_90k,
        dts_90k,
        keyframe,
        payload: Payload::Bytes(payload),
    }
}

/// One packet parsed by hand (2.4.3.2, 2.4.3.4).
#[derive(Debug)]
struct Raw<'a> {
    pid: u16,
    pusi: bool,
    cc: u8,
    /// The adaptation field after adaptation_field_length, if present.
    af: Option<&'a [u8]>,
    payload: &'a [u8],
}

impl Raw<'_> {
    fn af_flags(&self) -> u8 {
        self.af.and_then(|af| af.first().copied()).unwrap_or(0)
    }

    fn pcr_bytes(&self) -> Option<&[u8]> {
        (self.af_flags() & 0x10 != 0).then(|| &self.af.unwrap()[1..7])
    }

    /// Bytes of the adaptation field after flags and PCR: must all be stuffing.
    fn stuffing(&self) -> &[u8] {
        match self.af {
            None | Some([]) => &[],
            Some(af) if self.pcr_bytes().is_some() => &af[7..],
            Some(af) => &af[1..],
        }
    }
}

fn parse(packet: &[u8]) -> Raw<'_> {
    assert_eq!(packet.len(), PACKET_SIZE);
    assert_eq!(packet[0], 0x47, "sync byte");
    assert_eq!(packet[1] & 0x80, 0, "transport_error_indicator");
    assert_eq!(packet[3] & 0xC0, 0, "scrambling");
    let afc = (packet[3] >> 4) & 0b11;
    assert!(afc == 0b01 || afc == 0b11, "we never write AF-only packets");
    let (af, payload_start) = if afc == 0b11 {
        let len = usize::from(packet[4]);
        assert!(len <= 183);
        (Some(&packet[5..5 + len]), 5 + len)
    } else {
        (None, 4)
    };
    Raw {
        pid: u16::from_be_bytes([packet[1], packet[2]]) & 0x1FFF,
        pusi: packet[1] & 0x40 != 0,
        cc: packet[3] & 0x0F,
        af,
        payload: &packet[payload_start..],
    }
}

fn parse_all(bytes: &[u8]) -> Vec<Raw<'_>> {
    assert_eq!(bytes.len() % PACKET_SIZE, 0, "whole packets only");
    bytes.chunks(PACKET_SIZE).map(parse).collect()
}

fn decode(bytes: &[u8]) -> Vec<TsPacket> {
    let mut reader = TsPacketReader::new(bytes);
    let mut packets = Vec::new();
    while let Some(packet) = reader.read_ts_packet().expect("mpeg2ts decodes our output") {
        packets.push(packet);
    }
    packets
}

#[test]
fn psi_tables_for_all_tracks() {
    /// Tracks, ffmpeg's PMT section, PCR PID, (stream_type, PID) per stream.
    type Row = (Tracks, Option<&'static [u8]>, Option<u16>, &'static [(StreamType, u16)]);
    let cases: [Row; 4] = [
        (
            AV,
            Some(PMT_AV),
            Some(VIDEO_PID),
            &[(StreamType::H264, VIDEO_PID), (StreamType::AdtsAac, AUDIO_PID)],
        ),
        (
            AUDIO_ONLY,
            Some(PMT_AUDIO),
            Some(AUDIO_PID),
            &[(StreamType::AdtsAac, AUDIO_PID)],
        ),
        (
            VIDEO_ONLY,
            Some(PMT_VIDEO),
            Some(VIDEO_PID),
            &[(StreamType::H264, VIDEO_PID)],
        ),
        (NO_TRACKS, None, None, &[]),
    ];
    for (tracks, pmt_golden, pcr_pid, streams) in cases {
        let mut out = Vec::new();
        Muxer::new().start_segment(tracks, &mut out);
        let raw = parse_all(&out);
        assert_eq!(raw.len(), 2, "{tracks:?}");
        for (packet, pid) in raw.iter().zip([0, PMT_PID]) {
            assert_eq!(packet.pid, pid);
            assert!(packet.pusi, "PSI packets start a section");
            assert!(packet.af.is_none(), "PSI is padded after the section");
            assert_eq!(packet.cc, 0);
            assert_eq!(packet.payload[0], 0, "pointer_field");
        }
        let (pat_section, pat_rest) = raw[0].payload[1..].split_at(PAT_SECTION.len());
        assert_eq!(pat_section, PAT_SECTION);
        assert!(pat_rest.iter().all(|&b| b == 0xFF));
        if let Some(golden) = pmt_golden {
            let (section, rest) = raw[1].payload[1..].split_at(golden.len());
            assert_eq!(section, golden, "{tracks:?}");
            assert!(rest.iter().all(|&b| b == 0xFF));
        }

        let decoded = decode(&out);
        let Some(TsPayload::Pat(pat)) = &decoded[0].payload else {
            panic!("first packet is not a PAT: {:?}", decoded[0]);
        };
        assert_eq!(pat.transport_stream_id, 1);
        assert_eq!(pat.table.len(), 1);
        assert_eq!(pat.table[0].program_num, 1);
        assert_eq!(pat.table[0].program_map_pid.as_u16(), PMT_PID);
        let Some(TsPayload::Pmt(pmt)) = &decoded[1].payload else {
            panic!("second packet is not a PMT: {:?}", decoded[1]);
        };
        assert_eq!(pmt.program_num, 1);
        assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), pcr_pid, "{tracks:?}");
        let got: Vec<_> = pmt
            .es_info
            .iter()
            .map(|es| (es.stream_type, es.elementary_pid.as_u16()))
            .collect();
        assert_eq!(got, streams, "{tracks:?}");
    }
}

#[test]
fn pmt_version_changes_with_tracks() {
    let mut muxer = Muxer::new();
    let steps = [(AV, 0), (AV, 0), (VIDEO_ONLY, 1), (VIDEO_ONLY, 1), (AV, 2)];
    let mut out = Vec::new();
    for (tracks, version) in steps {
        muxer.start_segment(tracks, &mut out);
        let decoded = decode(&out);
        let Some(TsPayload::Pmt(pmt)) = &decoded.last().unwrap().payload else {
            panic!("last packet is not a PMT");
        };
        assert_eq!(pmt.version_number.as_u8(), version, "{tracks:?}");
    }
}

struct LayoutCase {
    name: &'static str,
    tracks: Tracks,
    track: Track,
    keyframe: bool,
    with_dts: bool,
    pcr: bool,
    rai: bool,
}

/// Every payload size 0..=400 for each kind of PES: packet count, PUSI, CC,
/// adaptation field contents, stuffing, and exact reassembly.
#[test]
fn pes_layout_for_every_size() {
    let cases = [
        LayoutCase {
            name: "video keyframe with DTS",
            tracks: AV,
            track: Track::Video,
            keyframe: true,
            with_dts: true,
            pcr: true,
            rai: true,
        },
        LayoutCase {
            name: "video non-key, PTS only",
            tracks: AV,
            track: Track::Video,
            keyframe: false,
            with_dts: false,
            pcr: true,
            rai: false,
        },
        LayoutCase {
            name: "audio beside video",
            tracks: AV,
            track: Track::Audio,
            keyframe: true,
            with_dts: false,
            pcr: false,
            rai: false,
        },
        LayoutCase {
            name: "audio-only",
            tracks: AUDIO_ONLY,
            track: Track::Audio,
            keyframe: true,
            with_dts: false,
            pcr: true,
            rai: true,
        },
    ];
    for case in &cases {
        let (pid, stream_id) = match case.track {
            Track::Video => (VIDEO_PID, 0xE0),
            Track::Audio => (AUDIO_PID, 0xC0),
        };
        let pes_header = 14 + if case.with_dts { 5 } else { 0 };
        let first_af = if case.pcr {
            8
        } else if case.rai {
            2
        } else {
            0
        };
        let mut saw_one_byte_af = false;
        let mut saw_exact_fit = false;
        for size in 0..=400usize {
            let what = format!("{} size {size}", case.name);
            let payload: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let mut muxer = Muxer::new();
            let mut psi = Vec::new();
            muxer.start_segment(case.tracks, &mut psi);
            let dts = if case.with_dts { 1000 } else { 4000 };
            let unit = au(case.track, 4000, dts, case.keyframe, &payload);
            let mut out = Vec::new();
            muxer.write(&unit, &mut out).unwrap();

            let raw = parse_all(&out);
            let expected = (first_af + pes_header + size).div_ceil(PAYLOAD_CAPACITY);
            assert_eq!(raw.len(), expected, "{what}");
            let mut pes = Vec::new();
            for (i, packet) in raw.iter().enumerate() {
                assert_eq!(packet.pid, pid, "{what}");
                assert_eq!(packet.pusi, i == 0, "{what} packet {i}");
                assert_eq!(usize::from(packet.cc), i % 16, "{what} packet {i}");
                assert!(!packet.payload.is_empty(), "{what}");
                let last = i + 1 == raw.len();
                if i == 0 {
                    assert_eq!(packet.af_flags() & 0x10 != 0, case.pcr, "{what} PCR");
                    assert_eq!(packet.af_flags() & 0x40 != 0, case.rai, "{what} RAI");
                    if case.pcr || case.rai {
                        assert!(packet.af.is_some_and(|af| !af.is_empty()));
                    }
                } else {
                    assert_eq!(packet.af_flags(), 0, "{what}: flags only in the first packet");
                }
                let stuffing = packet.stuffing();
                assert!(
                    stuffing.iter().all(|&b| b == 0xFF),
                    "{what} packet {i}: stuffing {stuffing:02X?}"
                );
                let af_len = packet.af.map_or(0, |af| af.len() + 1);
                let needed = if i == 0 { first_af } else { 0 };
                if !last {
                    assert_eq!(af_len, needed, "{what}: only the last packet is padded");
                } else if af_len == needed {
                    saw_exact_fit = true;
                }
                if packet.af == Some(&[]) {
                    saw_one_byte_af = true;
                }
                pes.extend_from_slice(packet.payload);
            }

            // PES header (2.4.3.6) then exactly the access unit.
            assert_eq!(&pes[..4], &[0, 0, 1, stream_id], "{what}");
            let pes_len = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
            match case.track {
                Track::Video => assert_eq!(pes_len, 0, "{what}"),
                Track::Audio => assert_eq!(pes_len, pes_header - 6 + size, "{what}"),
            }
            assert_eq!(pes[6], 0x84, "{what}: marker bits + data_alignment_indicator");
            assert_eq!(pes[7], if case.with_dts { 0xC0 } else { 0x80 }, "{what}");
            assert_eq!(usize::from(pes[8]), pes_header - 9, "{what}");
            assert_eq!(&pes[pes_header..], &payload[..], "{what}");

            // Cross-check: mpeg2ts reassembles the same PES.
            let mut stream = psi.clone();
            stream.extend_from_slice(&out);
            let mut reader = PesPacketReader::new(TsPacketReader::new(&stream[..]));
            let decoded = reader.read_pes_packet().unwrap().expect("one PES");
            assert_eq!(decoded.data, payload, "{what}");
            assert_eq!(decoded.header.stream_id.as_u8(), stream_id);
            assert_eq!(decoded.header.pts.map(|t| t.as_u64()), Some(4000 + 126_000));
            assert_eq!(
                decoded.header.dts.map(|t| t.as_u64()),
                case.with_dts.then_some(1000 + 126_000)
            );
            assert!(reader.read_pes_packet().unwrap().is_none(), "{what}");
        }
        assert!(saw_one_byte_af, "{}: adaptation_field_length 0 case", case.name);
        assert!(saw_exact_fit, "{}: a size that fills packets exactly", case.name);
    }
}

/// PTS/DTS fields (2.4.3.7): offset 126000, modulo 2^33, '0010'/'0011'/'0001'
/// prefixes and marker bits. Answers computed from the bit layout by hand;
/// the second row matches ffmpeg's first video PES.
#[test]
fn pts_dts_known_answers() {
    type Row = (u64, u64, u8, &'static [u8]);
    let rows: [Row; 6] = [
        (0, 0, 0x80, &[0x21, 0x00, 0x07, 0xD8, 0x61]),
        (
            7200,
            0,
            0xC0,
            &[0x31, 0x00, 0x09, 0x10, 0xA1, 0x11, 0x00, 0x07, 0xD8, 0x61],
        ),
        (WRAP - 126_000, WRAP - 126_000, 0x80, &[0x21, 0x00, 0x01, 0x00, 0x01]),
        (
            WRAP - 126_000 + 3600,
            WRAP - 126_000 - 3600,
            0xC0,
            &[0x31, 0x00, 0x01, 0x1C, 0x21, 0x1F, 0xFF, 0xFF, 0xE3, 0xE1],
        ),
        (
            2 * WRAP + 5 - 126_000,
            2 * WRAP + 5 - 126_000,
            0x80,
            &[0x21, 0x00, 0x01, 0x00, 0x0B],
        ),
        (
            WRAP - 1 - 126_000,
            WRAP - 1 - 126_000,
            0x80,
            &[0x2F, 0xFF, 0xFF, 0xFF, 0xFF],
        ),
    ];
    for (pts, dts, flags, fields) in rows {
        let mut muxer = Muxer::new();
        let mut psi = Vec::new();
        muxer.start_segment(AUDIO_ONLY, &mut psi);
        let mut out = Vec::new();
        muxer
            .write(&au(Track::Audio, pts, dts, true, &[0xAA; 10]), &mut out)
            .unwrap();
        let raw = parse(&out);
        let pes = raw.payload;
        assert_eq!(pes[7], flags, "pts {pts} dts {dts}");
        assert_eq!(usize::from(pes[8]), fields.len());
        assert_eq!(&pes[9..9 + fields.len()], fields, "pts {pts} dts {dts}");
    }
}

/// PCR (2.4.3.5): in the first packet of each PES on the PCR PID only, equal to
/// the written DTS minus 0.7 s modulo 2^33, reserved bits 1, extension 0.
#[test]
fn pcr_known_answers() {
    type Row = (Tracks, Track, u64, u64, Option<[u8; 6]>);
    let rows: [Row; 6] = [
        (AV, Track::Video, 0, 0, Some([0x00, 0x00, 0x7B, 0x0C, 0x7E, 0x00])),
        // PCR follows the DTS, not the PTS.
        (AV, Track::Video, 7200, 0, Some([0x00, 0x00, 0x7B, 0x0C, 0x7E, 0x00])),
        (AV, Track::Audio, 0, 0, None),
        (
            AUDIO_ONLY,
            Track::Audio,
            0,
            0,
            Some([0x00, 0x00, 0x7B, 0x0C, 0x7E, 0x00]),
        ),
        // Written DTS 0: the PCR wraps below zero to 2^33 - 63000.
        (
            VIDEO_ONLY,
            Track::Video,
            WRAP - 126_000,
            WRAP - 126_000,
            Some([0xFF, 0xFF, 0x84, 0xF4, 0x7E, 0x00]),
        ),
        (
            VIDEO_ONLY,
            Track::Video,
            WRAP - 126_000 + 3600,
            WRAP - 126_000 + 3600,
            Some([0xFF, 0xFF, 0x8B, 0xFC, 0x7E, 0x00]),
        ),
    ];
    for (tracks, track, pts, dts, pcr) in rows {
        let what = format!("{tracks:?} {track:?} pts {pts} dts {dts}");
        let mut muxer = Muxer::new();
        let mut stream = Vec::new();
        muxer.start_segment(tracks, &mut stream);
        let psi_len = stream.len();
        // Three packets, so later packets can be checked for the absence of a PCR.
        muxer
            .write(&au(track, pts, dts, true, &[0x55; 500]), &mut stream)
            .unwrap();
        let raw = parse_all(&stream[psi_len..]);
        assert_eq!(raw.len(), 3, "{what}");
        assert_eq!(raw[0].pcr_bytes(), pcr.as_ref().map(|p| &p[..]), "{what}");
        assert!(raw[1..].iter().all(|p| p.pcr_bytes().is_none()), "{what}");

        let decoded = decode(&stream);
        let pes = &decoded[2];
        let decoded_pcr = pes.adaptation_field.as_ref().and_then(|af| af.pcr).map(|c| c.as_u64());
        assert_eq!(decoded_pcr.is_some(), pcr.is_some(), "{what}");
        if let Some(pcr_27m) = decoded_pcr {
            assert_eq!(pcr_27m % 300, 0, "extension is 0");
            let written_dts = (dts + 126_000) % WRAP;
            // PCR never passes the DTS: exactly 0.7 s behind it, modulo 2^33.
            let lead = (written_dts + WRAP - pcr_27m / 300) % WRAP;
            assert_eq!(lead, 63_000, "{what}");
        }
    }
}

/// Continuity counters run per PID and on across segments (2.4.3.3), PAT and
/// PMT included, wrapping at 16.
#[test]
fn continuity_counters_continue_across_segments() {
    let mut muxer = Muxer::new();
    let mut out = Vec::new();
    let payload = [0x11u8; 2000];
    let mut t = 0u64;
    for segment in 0..20u64 {
        muxer.start_segment(AV, &mut out);
        for frame in 0..3u64 {
            let size = ((segment * 3 + frame) * 97 % 2000) as usize;
            muxer
                .write(&au(Track::Video, t + 3600, t, frame == 0, &payload[..size]), &mut out)
                .unwrap();
            muxer
                .write(&au(Track::Audio, t, t, true, &payload[..size / 8]), &mut out)
                .unwrap();
            t += 3600;
        }
    }
    let mut next_cc = std::collections::HashMap::new();
    let mut counts = std::collections::HashMap::new();
    for packet in parse_all(&out) {
        let expected = next_cc.entry(packet.pid).or_insert(0u8);
        assert_eq!(packet.cc, *expected, "PID {:#x}", packet.pid);
        *expected = (*expected + 1) % 16;
        *counts.entry(packet.pid).or_insert(0usize) += 1;
    }
    assert_eq!(counts[&0], 20);
    assert_eq!(counts[&PMT_PID], 20);
    assert!(counts[&VIDEO_PID] > 32, "video CC wrapped more than once");
    assert!(counts[&AUDIO_PID] > 32, "audio CC wrapped more than once");
    // And mpeg2ts reads the whole stream.
    assert_eq!(decode(&out).len(), out.len() / PACKET_SIZE);
}

#[test]
fn undeclared_track_is_an_error() {
    let rows: [(Option<Tracks>, Track); 5] = [
        (None, Track::Video),
        (None, Track::Audio),
        (Some(VIDEO_ONLY), Track::Audio),
        (Some(AUDIO_ONLY), Track::Video),
        (Some(NO_TRACKS), Track::Video),
    ];
    for (tracks, track) in rows {
        let mut muxer = Muxer::new();
        let mut out = Vec::new();
        if let Some(tracks) = tracks {
            muxer.start_segment(tracks, &mut out);
        }
        let before = out.clone();
        let err = muxer.write(&au(track, 0, 0, true, &[1, 2, 3]), &mut out).unwrap_err();
        assert!(
            matches!(err, Error::TrackNotInProgram(t) if t == track),
            "{tracks:?} {track:?}: {err}"
        );
        assert_eq!(out, before, "nothing written");
    }
    // Declared later, the track starts at CC 0: the failed write moved nothing.
    let mut muxer = Muxer::new();
    let mut out = Vec::new();
    muxer.start_segment(VIDEO_ONLY, &mut out);
    assert!(muxer.write(&au(Track::Audio, 0, 0, true, &[1]), &mut out).is_err());
    muxer.start_segment(AV, &mut out);
    let start = out.len();
    muxer.write(&au(Track::Audio, 0, 0, true, &[1]), &mut out).unwrap();
    assert_eq!(parse(&out[start..]).cc, 0);
}

/// PES_packet_length is 16 bits and 0 is only allowed for video (2.4.3.7).
#[test]
fn audio_too_long_for_pes_packet_length() {
    // 8 header bytes after PES_packet_length (flags, length, PTS) + payload.
    let rows: [(usize, bool); 3] = [(65_527, true), (65_528, false), (100_000, false)];
    let payload = vec![0xA5u8; 100_000];
    for (size, ok) in rows {
        let mut muxer = Muxer::new();
        let mut out = Vec::new();
        muxer.start_segment(AUDIO_ONLY, &mut out);
        let before = out.len();
        let result = muxer.write(&au(Track::Audio, 0, 0, true, &payload[..size]), &mut out);
        if ok {
            result.unwrap();
            let pes = parse(&out[before..before + PACKET_SIZE]).payload;
            assert_eq!(&pes[4..6], &[0xFF, 0xFF]);
        } else {
            assert!(
                matches!(result, Err(Error::AudioTooLong(n)) if n == size),
                "{size}: {result:?}"
            );
            assert_eq!(out.len(), before);
        }
    }
}

/// A 6 KB video frame is 33 packets written into the reserved buffer without
/// reallocating it. (Heap allocations inside mpeg2ts: none on this path, by
/// reading its writer; a counting global allocator would clash with other
/// modules' tests in the same binary.)
#[test]
fn six_kilobyte_frame_is_33_packets_in_place() {
    let mut muxer = Muxer::new();
    let mut out = Vec::with_capacity(64 * 1024);
    muxer.start_segment(AV, &mut out);
    let frame = vec![0x42u8; 6000];
    out.clear();
    let buffer = out.as_ptr();
    muxer
        .write(&au(Track::Video, 7200, 3600, true, &frame), &mut out)
        .unwrap();
    assert_eq!(out.len(), 33 * PACKET_SIZE);
    assert_eq!(out.as_ptr(), buffer, "no reallocation");
}

/// Real-tool check: ffmpeg makes H.264 and AAC, we mux them, ffprobe and an
/// ffmpeg decode read the result without complaint.
#[test]
fn ffprobe_reads_our_stream() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    fn run(program: &str, args: &[&str], stdin: &[u8]) -> Option<(Vec<u8>, String)> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let mut input = child.stdin.take()?;
        let output = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = input.write_all(stdin);
            });
            child.wait_with_output()
        })
        .ok()?;
        assert!(output.status.success(), "{program} {args:?} failed");
        Some((output.stdout, String::from_utf8_lossy(&output.stderr).into()))
    }

    let tools_present = ["ffmpeg", "ffprobe"].iter().all(|tool| {
        Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(
        tools_present,
        "ffmpeg and ffprobe are required for this test (scripts/test.sh installs them)"
    );

    let lavfi = ["-v", "error", "-f", "lavfi", "-i"];
    let video_args: Vec<&str> = lavfi
        .iter()
        .copied()
        .chain([
            "testsrc=size=64x64:rate=25",
            "-frames:v",
            "10",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-g",
            "5",
            "-bf",
            "0",
            "-bsf:v",
            "h264_metadata=aud=insert",
            "-f",
            "h264",
            "-",
        ])
        .collect();
    let (h264, _) = run("ffmpeg", &video_args, &[]).expect("ffmpeg encodes H.264 (libx264)");
    let audio_args: Vec<&str> = lavfi
        .iter()
        .copied()
        .chain([
            "anullsrc=r=48000:cl=stereo",
            "-t",
            "0.4",
            "-c:a",
            "aac",
            "-f",
            "adts",
            "-",
        ])
        .collect();
    let (adts, _) = run("ffmpeg", &audio_args, &[]).expect("ffmpeg runs");

    // Access units: H.264 split at each AUD (NAL type 9), keyframe if an IDR
    // slice (type 5) is inside; ADTS split by frame_length.
    let mut aud_starts: Vec<usize> = (0..h264.len().saturating_sub(4))
        .filter(|&i| h264[i..i + 4] == [0, 0, 1, 0x09])
        .map(|i| if i > 0 && h264[i - 1] == 0 { i - 1 } else { i })
        .collect();
    aud_starts.push(h264.len());
    let video: Vec<(&[u8], bool)> = aud_starts
        .windows(2)
        .map(|w| {
            let unit = &h264[w[0]..w[1]];
            let idr = unit.windows(4).any(|n| n[..3] == [0, 0, 1] && n[3] & 0x1F == 5);
            (unit, idr)
        })
        .collect();
    assert_eq!(video.len(), 10);
    let mut audio = Vec::new();
    let mut rest = &adts[..];
    while rest.len() >= 7 {
        assert_eq!(rest[0], 0xFF, "ADTS syncword");
        let len = (usize::from(rest[3] & 3) << 11) | (usize::from(rest[4]) << 3) | usize::from(rest[5] >> 5);
        let (frame, tail) = rest.split_at(len);
        audio.push(frame);
        rest = tail;
    }
    assert!(audio.len() >= 15, "{} ADTS frames", audio.len());

    // Mux in DTS order; video has a constant 2-frame composition offset so
    // PTS and DTS differ; a new segment (PAT/PMT) starts at the 2nd keyframe.
    let mut muxer = Muxer::new();
    let mut ts = Vec::new();
    muxer.start_segment(AV, &mut ts);
    let (mut v, mut a) = (0usize, 0usize);
    while v < video.len() || a < audio.len() {
        let video_dts = v as u64 * 3600;
        let audio_dts = a as u64 * 1920;
        if v < video.len() && (a == audio.len() || video_dts <= audio_dts) {
            let (unit, key) = video[v];
            if key && v > 0 {
                muxer.start_segment(AV, &mut ts);
            }
            muxer
                .write(&au(Track::Video, video_dts + 7200, video_dts, key, unit), &mut ts)
                .unwrap();
            v += 1;
        } else {
            muxer
                .write(&au(Track::Audio, audio_dts, audio_dts, true, audio[a]), &mut ts)
                .unwrap();
            a += 1;
        }
    }

    let probe_args = [
        "-v",
        "error",
        "-show_entries",
        "stream=codec_type,codec_name:packet=codec_type,pts,dts,flags",
        "-of",
        "json",
        "-i",
        "pipe:0",
    ];
    let (stdout, stderr) = run("ffprobe", &probe_args, &ts).expect("ffprobe runs");
    assert_eq!(stderr, "", "ffprobe complained");
    let probe: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let field = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let streams: Vec<(String, String)> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (field(s, "codec_type"), field(s, "codec_name")))
        .collect();
    assert_eq!(
        streams,
        [("video".into(), "h264".into()), ("audio".into(), "aac".into())]
    );
    let packets = |kind: &str| -> Vec<(i64, i64, String)> {
        probe["packets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["codec_type"] == kind)
            .map(|p| {
                (
                    p["pts"].as_i64().unwrap(),
                    p["dts"].as_i64().unwrap(),
                    field(p, "flags"),
                )
            })
            .collect()
    };
    let video_packets = packets("video");
    assert_eq!(video_packets.len(), 10, "{video_packets:?}");
    for (i, (pts, dts, flags)) in video_packets.iter().enumerate() {
        let dts_expected = 126_000 + i as i64 * 3600;
        assert_eq!((*pts, *dts), (dts_expected + 7200, dts_expected));
        assert_eq!(flags.starts_with('K'), i % 5 == 0, "frame {i}: {flags}");
    }
    let audio_packets = packets("audio");
    assert_eq!(audio_packets.len(), audio.len());
    for (i, (pts, dts, _)) in audio_packets.iter().enumerate() {
        let expected = 126_000 + i as i64 * 1920;
        assert_eq!((*pts, *dts), (expected, expected), "audio frame {i}");
    }

    let decode_args = ["-v", "error", "-i", "pipe:0", "-f", "null", "-"];
    let (_, stderr) = run("ffmpeg", &decode_args, &ts).expect("ffmpeg runs");
    assert_eq!(stderr, "", "ffmpeg decode complained");
}

/// Access units as the demuxer describes them (AVC rewritten to Annex B and
/// ADTS headers added while packetizing) mux to exactly the packets of the
/// same bytes given whole.
#[test]
fn described_payloads_mux_like_their_bytes() {
    let flv = include_bytes!("../../fixtures/high-bframes-aac48k.flv");
    let (_, tags) = crate::flv::tags(flv).unwrap();
    let mut demuxer = crate::flv::Demuxer::new();
    let (mut described, mut whole) = (Muxer::new(), Muxer::new());
    let (mut described_out, mut whole_out) = (Vec::new(), Vec::new());
    let mut frames = 0;
    for tag in tags {
        let tag = tag.unwrap();
        let tracks = demuxer.tracks();
        let Some(unit) = demuxer.push(tag.kind, tag.timestamp_ms, tag.body).unwrap() else {
            continue;
        };
        if frames == 0 {
            described.start_segment(tracks, &mut described_out);
            whole.start_segment(tracks, &mut whole_out);
        }
        frames += 1;
        let bytes = unit.payload.to_vec();
        described.write(&unit, &mut described_out).unwrap();
        let unit = AccessUnit {
            payload: Payload::Bytes(&bytes),
            ..unit
        };
        whole.write(&unit, &mut whole_out).unwrap();
    }
    assert_eq!(frames, 770);
    assert!(
        described_out == whole_out,
        "{} vs {} bytes",
        described_out.len(),
        whole_out.len()
    );
}
