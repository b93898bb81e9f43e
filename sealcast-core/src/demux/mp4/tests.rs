//! Box parsing on hand-built boxes (ISO/IEC 14496-12 layouts).

use super::*;

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// A FullBox body: version, flags, then `fields` as big-endian u32s.
fn full(version: u8, flags: u32, fields: &[u32]) -> Vec<u8> {
    let mut out = (flags | u32::from(version) << 24).to_be_bytes().to_vec();
    for f in fields {
        out.extend_from_slice(&f.to_be_bytes());
    }
    out
}

const AVCC: [u8; 11] = [1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 2, 0x67, 0x64, 0];

fn avc1_stsd() -> Vec<u8> {
    let mut entry = vec![0u8; 78];
    entry.extend(bx(b"avcC", &AVCC));
    let mut stsd = full(0, 0, &[1]);
    stsd.extend(bx(b"avc1", &entry));
    bx(b"stsd", &stsd)
}

/// A video trak with `stbl` children appended after stsd.
fn trak(track_id: u32, stbl_tables: &[Vec<u8>]) -> Vec<u8> {
    let tkhd = bx(b"tkhd", &full(0, 3, &[0, 0, track_id, 0, 0]));
    let mdhd = bx(b"mdhd", &full(0, 0, &[0, 0, 90_000, 0, 0]));
    let mut hdlr = full(0, 0, &[0]);
    hdlr.extend_from_slice(b"vide");
    hdlr.extend_from_slice(&[0; 13]);
    let mut stbl = avc1_stsd();
    for table in stbl_tables {
        stbl.extend_from_slice(table);
    }
    let minf = bx(b"minf", &bx(b"stbl", &stbl));
    let mdia = bx(b"mdia", &[mdhd, bx(b"hdlr", &hdlr), minf].concat());
    bx(b"trak", &[tkhd, mdia].concat())
}

fn moov(traks: &[Vec<u8>], extra: &[u8]) -> Vec<u8> {
    let mut body = bx(b"mvhd", &full(0, 0, &[0, 0, 1000, 0]));
    for t in traks {
        body.extend_from_slice(t);
    }
    body.extend_from_slice(extra);
    body
}

/// 5 samples in 2 chunks (3 + 2), 3000 ticks apart, B-frame offsets,
/// keyframes 1 and 4.
fn progressive_tables() -> Vec<Vec<u8>> {
    vec![
        bx(b"stts", &full(0, 0, &[1, 5, 3000])),
        bx(b"ctts", &full(0, 0, &[4, 1, 6000, 1, 0, 2, 3000, 1, 0])),
        bx(b"stsc", &full(0, 0, &[2, 1, 3, 1, 2, 2, 1])),
        bx(b"stsz", &full(0, 0, &[0, 5, 10, 20, 30, 40, 50])),
        bx(b"stco", &full(0, 0, &[2, 1000, 5000])),
        bx(b"stss", &full(0, 0, &[2, 1, 4])),
    ]
}

#[test]
fn box_headers() {
    assert_eq!(box_header(b"\0\0\0").unwrap(), None);
    let h = box_header(b"\0\0\0\x10moov").unwrap().unwrap();
    assert_eq!((h.kind, h.header_len, h.size), (FourCc(*b"moov"), 8, Some(16)));
    let h = box_header(b"\0\0\0\0mdat").unwrap().unwrap();
    assert_eq!(h.size, None);
    assert_eq!(box_header(b"\0\0\0\x01mdat\0\0\0\0").unwrap(), None);
    let h = box_header(b"\0\0\0\x01mdat\0\0\0\x01\0\0\0\0").unwrap().unwrap();
    assert_eq!((h.header_len, h.size), (16, Some(1 << 32)));
    assert_eq!(
        box_header(b"\0\0\0\x04free").unwrap_err(),
        Error::BadBoxSize {
            kind: FourCc(*b"free"),
            size: 4
        }
    );
}

#[test]
fn sample_tables_give_offsets_times_and_keyframes() {
    let movie = Movie::parse(&moov(&[trak(1, &progressive_tables())], &[])).unwrap();
    let (info, table) = movie.video.as_ref().unwrap();
    assert_eq!(
        (info.track_id, info.timescale, info.config.as_slice()),
        (1, 90_000, &AVCC[..])
    );
    let samples: Vec<Sample> = table.samples().collect::<Result<_, _>>().unwrap();
    let got: Vec<(u64, u32, u64, i64, bool)> = samples
        .iter()
        .map(|s| (s.offset, s.size, s.dts, s.cts, s.keyframe))
        .collect();
    assert_eq!(
        got,
        [
            (1000, 10, 0, 6000, true),
            (1010, 20, 3000, 0, false),
            (1030, 30, 6000, 3000, false),
            (5000, 40, 9000, 3000, true),
            (5040, 50, 12000, 0, false),
        ]
    );
}

#[test]
fn disagreeing_and_absurd_tables_are_errors() {
    let mut tables = progressive_tables();
    tables[0] = bx(b"stts", &full(0, 0, &[1, 4, 3000]));
    assert_eq!(
        Movie::parse(&moov(&[trak(1, &tables)], &[])).unwrap_err(),
        Error::TablesDisagree("stts and stsz count different samples")
    );

    let mut tables = progressive_tables();
    tables[4] = bx(b"stco", &full(0, 0, &[1, 1000]));
    let movie = Movie::parse(&moov(&[trak(1, &tables)], &[])).unwrap();
    let results: Vec<_> = movie.video.as_ref().unwrap().1.samples().collect();
    assert_eq!(results.len(), 4, "the walk ends at the first error");
    assert_eq!(
        results[3].clone().unwrap_err(),
        Error::TablesDisagree("stsc and stsz need more chunks than stco lists")
    );

    let mut tables = progressive_tables();
    tables[3] = bx(b"stsz", &full(0, 0, &[0, u32::MAX, 10]));
    assert_eq!(
        Movie::parse(&moov(&[trak(1, &tables)], &[])).unwrap_err(),
        Error::Truncated("stsz")
    );

    // A child box that claims more than its parent holds.
    let mut bad = moov(&[trak(1, &progressive_tables())], &[]);
    let len = bad.len() as u32 + 100;
    bad.extend(len.to_be_bytes());
    bad.extend_from_slice(b"free");
    assert!(matches!(Movie::parse(&bad), Err(Error::BadBoxSize { .. })));
}

#[test]
fn unsupported_codecs_are_named() {
    let mut entry = vec![0u8; 78];
    entry.extend(bx(b"esds", &[0; 8]));
    let mut stsd = full(0, 0, &[1]);
    stsd.extend(bx(b"mp4v", &entry));
    let mut t = trak(1, &progressive_tables());
    let at = t.windows(4).position(|w| w == b"avc1").unwrap();
    // Same length, so every enclosing size stays right.
    t[at..at + 4].copy_from_slice(b"mp4v");
    assert_eq!(
        Movie::parse(&moov(&[t], &[])).unwrap_err(),
        Error::UnsupportedCodec {
            track: Track::Video,
            codec: "sample entry 'mp4v'".into()
        }
    );
}

#[test]
fn mp3_in_esds_is_refused() {
    // ES_Descriptor(3) { ES_ID, flags, DecoderConfigDescriptor(4) { 0x6B, ... } }
    let esds = [&full(0, 0, &[])[..], &[3, 20, 0, 1, 0, 4, 15, 0x6B, 0x15], &[0; 12]].concat();
    assert_eq!(
        boxes::sample_entry_config(
            &[
                full(0, 0, &[1]),
                bx(b"mp4a", &[&[0u8; 28][..], &bx(b"esds", &esds)].concat())
            ]
            .concat(),
            Track::Audio
        )
        .unwrap_err(),
        Error::UnsupportedCodec {
            track: Track::Audio,
            codec: "MP3 (0x6b)".into()
        }
    );
}

#[test]
fn fragments_use_trex_and_tfhd_defaults() {
    // trex: track 1, default duration 3000, size 7, flags non-sync.
    let trex = bx(b"trex", &full(0, 0, &[1, 1, 3000, 7, 0x0001_0000]));
    // A fragmented file's moov has empty tables.
    let empty = vec![
        bx(b"stts", &full(0, 0, &[0])),
        bx(b"stsc", &full(0, 0, &[0])),
        bx(b"stsz", &full(0, 0, &[0, 0])),
        bx(b"stco", &full(0, 0, &[0])),
    ];
    let mut movie = Movie::parse(&moov(&[trak(1, &empty)], &bx(b"mvex", &trex))).unwrap();
    assert!(movie.video.as_ref().unwrap().1.is_empty());

    // tfhd: default-base-is-moof; tfdt 90000; trun: data_offset 100,
    // first_sample_flags (sync), sizes and composition offsets per sample.
    let tfhd = bx(b"tfhd", &full(0, 0x02_0000, &[1]));
    let tfdt = bx(b"tfdt", &full(1, 0, &[0, 90_000]));
    let trun = bx(b"trun", &full(0, 0x0A05, &[3, 100, 0, 11, 6000, 12, 0, 13, 3000]));
    let moof = bx(b"traf", &[tfhd, tfdt, trun].concat());
    let samples = movie.fragment(&moof, 4000).unwrap();
    let got: Vec<(u64, u32, u64, i64, bool)> = samples
        .iter()
        .map(|s| (s.offset, s.size, s.dts, s.cts, s.keyframe))
        .collect();
    assert_eq!(
        got,
        [
            (4100, 11, 90_000, 6000, true),
            (4111, 12, 93_000, 0, false),
            (4123, 13, 96_000, 3000, false),
        ]
    );

    // A trun declaring millions of samples in a few bytes is refused.
    let tfhd = bx(b"tfhd", &full(0, 0x02_0000, &[1]));
    let trun = bx(b"trun", &full(0, 0x0200, &[5_000_000]));
    let moof = bx(b"traf", &[tfhd, trun].concat());
    assert!(matches!(movie.fragment(&moof, 0), Err(Error::TooManySamples { .. })));
}
