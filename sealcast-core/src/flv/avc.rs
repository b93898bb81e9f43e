//! H.264 in FLV: the AVCDecoderConfigurationRecord (ISO/IEC 14496-15
//! 5.2.4.1), and which AVC samples become which Annex B access units (the
//! rewrite itself is [`crate::media::h264::AnnexB`]).

use super::Error;

use crate::media::h264::{AnnexB, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, START_CODE, nal_type, nals};

/// A parsed decoder configuration: what framing the NAL units use and the
/// parameter sets to put in front of IDR pictures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Bytes in each NAL unit's length prefix: 1, 2 or 4.
    nal_length_size: u8,
    /// Every SPS then every PPS of the record, each with a start code.
    param_sets: Vec<u8>,
}

impl Config {
    pub(crate) fn new(nal_length_size: u8, param_sets: &[u8]) -> Self {
        Config {
            nal_length_size,
            param_sets: param_sets.to_vec(),
        }
    }

    /// Whether this configuration is the one given (a repeated sequence header).
    pub(crate) fn is(&self, nal_length_size: u8, param_sets: &[u8]) -> bool {
        self.nal_length_size == nal_length_size && self.param_sets == param_sets
    }

    /// Replaces the configuration in place, reusing the allocation.
    pub(crate) fn replace(&mut self, nal_length_size: u8, param_sets: &[u8]) {
        self.nal_length_size = nal_length_size;
        self.param_sets.clear();
        self.param_sets.extend_from_slice(param_sets);
    }
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1.1).
///
/// Writes the SPS and PPS in Annex B form into `out` (cleared first) and
/// returns the NAL length size. Only the fields up to the PPS list are read;
/// the high-profile extension (chroma_format etc.) that may follow is not
/// needed for remuxing. A record with no SPS or PPS is accepted (the stream
/// then has to carry them in band).
pub(crate) fn parse_config(record: &[u8], out: &mut Vec<u8>) -> Result<u8, Error> {
    out.clear();
    let Some(&[version, _profile, _compat, _level, length_size_byte, sps_count_byte]) = record.get(..6) else {
        return Err(Error::BadConfig("AVCDecoderConfigurationRecord too short"));
    };
    if version != 1 {
        return Err(Error::BadConfig(
            "AVCDecoderConfigurationRecord configurationVersion is not 1",
        ));
    }
    // lengthSizeMinusOne: "shall be one of 0, 1, or 3" (14496-15 5.2.4.1.2).
    let nal_length_size = match length_size_byte & 0x03 {
        0 => 1,
        1 => 2,
        3 => 4,
        _ => {
            return Err(Error::BadConfig(
                "AVC lengthSizeMinusOne 2 (3-byte NAL lengths) is not allowed",
            ));
        }
    };
    let mut rest = &record[6..];
    for _ in 0..(sps_count_byte & 0x1F) {
        rest = copy_param_set(rest, NAL_SPS, out)?;
    }
    let Some((&pps_count, after)) = rest.split_first() else {
        return Err(Error::BadConfig(
            "AVCDecoderConfigurationRecord ends before numOfPictureParameterSets",
        ));
    };
    rest = after;
    for _ in 0..pps_count {
        rest = copy_param_set(rest, NAL_PPS, out)?;
    }
    Ok(nal_length_size)
}

/// Reads one 16-bit-length-prefixed parameter set, checks its NAL type and
/// appends it to `out` with a start code. Returns the bytes after it.
fn copy_param_set<'a>(buf: &'a [u8], nal_type: u8, out: &mut Vec<u8>) -> Result<&'a [u8], Error> {
    let Some(&[hi, lo]) = buf.get(..2) else {
        return Err(Error::BadConfig("AVC parameter set length truncated"));
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let Some(nal) = buf.get(2..2 + len) else {
        return Err(Error::BadConfig("AVC parameter set longer than the record"));
    };
    match nal.first() {
        None => return Err(Error::BadConfig("empty AVC parameter set")),
        Some(&header) if header & 0x1F != nal_type => {
            return Err(Error::BadConfig(if nal_type == NAL_SPS {
                "AVC SPS entry is not NAL unit type 7"
            } else {
                "AVC PPS entry is not NAL unit type 8"
            }));
        }
        Some(_) => {}
    }
    out.extend_from_slice(START_CODE);
    out.extend_from_slice(nal);
    Ok(&buf[2 + len..])
}

/// Checks one AVC sample and describes it as an Annex B access unit (see
/// [`AnnexB`] for the output order). Every NAL length is checked here, so a
/// malformed sample is an error and nothing of it is written.
///
/// Returns `Some((access_unit, is_idr))`, where `is_idr` is the keyframe flag
/// taken from the NAL units (an IDR slice present) rather than from the FLV
/// FrameType, or `None` when the sample holds no NAL unit besides AUDs
/// (nothing to decode; the caller treats it as ignorable).
pub(crate) fn annex_b<'a>(sample: &'a [u8], cfg: &'a Config) -> Result<Option<(AnnexB<'a>, bool)>, Error> {
    let nals = nals(sample, cfg.nal_length_size);
    let mut first_type = None;
    let (mut has_idr, mut has_sps, mut has_pps, mut pictures) = (false, false, false, 0usize);
    for nal in nals {
        let Some(t) = nal_type(nal.map_err(Error::from)?) else {
            continue;
        };
        first_type.get_or_insert(t);
        match t {
            NAL_IDR => has_idr = true,
            NAL_SPS => has_sps = true,
            NAL_PPS => has_pps = true,
            _ => {}
        }
        if t != NAL_AUD {
            pictures += 1;
        }
    }
    if pictures == 0 {
        return Ok(None);
    }
    let param_sets: &[u8] = if has_idr && !(has_sps && has_pps) {
        &cfg.param_sets
    } else {
        &[]
    };
    let insert_aud = first_type != Some(NAL_AUD);
    Ok(Some((
        AnnexB::new(sample, cfg.nal_length_size, param_sets, insert_aud),
        has_idr,
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::Payload;

    /// AVCDecoderConfigurationRecord of the baseline fixture (x264,
    /// Constrained Baseline level 2.1, 426x240), 4-byte NAL lengths.
    pub(crate) const BASELINE_RECORD: &[u8] = &[
        0x01, 0x42, 0xC0, 0x15, 0xFF, 0xE1, 0x00, 0x17, 0x67, 0x42, 0xC0, 0x15, 0xDA, 0x06, 0xC7, 0xF9, 0x3C, 0x04,
        0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0C, 0x83, 0xC5, 0x8B, 0xA8, 0x01, 0x00, 0x04, 0x68, 0xCE,
        0x3C, 0x80,
    ];
    const BASELINE_SPS: &[u8] = &[
        0x67, 0x42, 0xC0, 0x15, 0xDA, 0x06, 0xC7, 0xF9, 0x3C, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00,
        0x0C, 0x83, 0xC5, 0x8B, 0xA8,
    ];
    const BASELINE_PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];

    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for nal in nals {
            v.extend_from_slice(START_CODE);
            v.extend_from_slice(nal);
        }
        v
    }

    /// The sample converted: (is_idr, Annex B bytes). Also checks that the
    /// announced length is the length of the bytes.
    fn convert(sample: &[u8], cfg: &Config) -> Result<Option<(bool, Vec<u8>)>, Error> {
        Ok(super::annex_b(sample, cfg)?.map(|(au, idr)| {
            let payload = Payload::AnnexB(au);
            let bytes = payload.to_vec();
            assert_eq!(payload.len(), bytes.len());
            (idr, bytes)
        }))
    }

    fn length_prefixed(size: usize, nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for nal in nals {
            let len = (nal.len() as u32).to_be_bytes();
            v.extend_from_slice(&len[4 - size..]);
            v.extend_from_slice(nal);
        }
        v
    }

    fn config(size: u8) -> Config {
        Config::new(size, &annex_b(&[&[0x67, 0xAA], &[0x68, 0xBB]]))
    }

    #[test]
    fn parses_real_record() {
        let mut out = Vec::new();
        assert_eq!(parse_config(BASELINE_RECORD, &mut out), Ok(4));
        assert_eq!(out, annex_b(&[BASELINE_SPS, BASELINE_PPS]));
    }

    #[test]
    fn parses_length_sizes_and_multiple_sets() {
        // version, profile, compat, level, 0xFC|lsmo, 0xE0|nsps, ...
        for (lsmo, want) in [(0u8, 1u8), (1, 2), (3, 4)] {
            let record = [
                1,
                0x64,
                0,
                0x1F,
                0xFC | lsmo,
                0xE2,
                0,
                2,
                0x67,
                1,
                0,
                3,
                0x67,
                2,
                3,
                2,
                0,
                2,
                0x68,
                4,
                0,
                1,
                0x68,
            ];
            let mut out = Vec::new();
            assert_eq!(parse_config(&record, &mut out), Ok(want));
            assert_eq!(out, annex_b(&[&[0x67, 1], &[0x67, 2, 3], &[0x68, 4], &[0x68]]));
        }
    }

    #[test]
    fn rejects_bad_records() {
        let cases: &[(&str, &[u8])] = &[
            ("empty", &[]),
            ("short", &[1, 0x42, 0xC0, 0x15, 0xFF]),
            ("version 0", &[0, 0x42, 0xC0, 0x15, 0xFF, 0xE0, 0]),
            ("3-byte lengths", &[1, 0x42, 0xC0, 0x15, 0xFE, 0xE0, 0]),
            ("no pps count", &[1, 0x42, 0xC0, 0x15, 0xFF, 0xE0]),
            ("sps length truncated", &[1, 0x42, 0xC0, 0x15, 0xFF, 0xE1, 0]),
            ("sps past end", &[1, 0x42, 0xC0, 0x15, 0xFF, 0xE1, 0, 3, 0x67, 1]),
            ("empty sps", &[1, 0x42, 0xC0, 0x15, 0xFF, 0xE1, 0, 0, 0]),
            ("sps of wrong type", &[1, 0x42, 0xC0, 0x15, 0xFF, 0xE1, 0, 1, 0x68, 0]),
            ("pps of wrong type", &[1, 0x42, 0xC0, 0x15, 0xFF, 0xE0, 1, 0, 1, 0x67]),
            ("pps missing", &[1, 0x42, 0xC0, 0x15, 0xFF, 0xE0, 1]),
        ];
        for (name, record) in cases {
            let mut out = Vec::new();
            assert!(
                matches!(parse_config(record, &mut out), Err(Error::BadConfig(_))),
                "{name}"
            );
        }
        // Every strict prefix of the real record is rejected.
        for len in 0..BASELINE_RECORD.len() {
            let mut out = Vec::new();
            assert!(parse_config(&BASELINE_RECORD[..len], &mut out).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn converts_samples() {
        const IDR: &[u8] = &[0x65, 0x88, 0x84];
        const NON_IDR: &[u8] = &[0x41, 0x9A, 0x02];
        const SEI: &[u8] = &[0x06, 0x05, 0x01, 0xFF];
        const OWN_AUD: &[u8] = &[0x09, 0x10];
        const SPS: &[u8] = &[0x67, 0xCC];
        const PPS: &[u8] = &[0x68, 0xDD];
        const AUD_NAL: &[u8] = &[0x09, 0xF0];
        const CFG_SPS: &[u8] = &[0x67, 0xAA];
        const CFG_PPS: &[u8] = &[0x68, 0xBB];
        struct Case {
            name: &'static str,
            nals: &'static [&'static [u8]],
            want: Option<(bool, &'static [&'static [u8]])>,
        }
        let cases = [
            Case {
                name: "non-IDR gets an AUD",
                nals: &[NON_IDR],
                want: Some((false, &[AUD_NAL, NON_IDR])),
            },
            Case {
                name: "IDR gets AUD, SPS, PPS; SEI kept after them",
                nals: &[SEI, IDR],
                want: Some((true, &[AUD_NAL, CFG_SPS, CFG_PPS, SEI, IDR])),
            },
            Case {
                name: "own AUD first is kept, not doubled",
                nals: &[OWN_AUD, IDR],
                want: Some((true, &[OWN_AUD, CFG_SPS, CFG_PPS, IDR])),
            },
            Case {
                name: "misplaced AUD is dropped",
                nals: &[NON_IDR, OWN_AUD],
                want: Some((false, &[AUD_NAL, NON_IDR])),
            },
            Case {
                name: "in-band SPS and PPS are not doubled",
                nals: &[SPS, PPS, IDR],
                want: Some((true, &[AUD_NAL, SPS, PPS, IDR])),
            },
            Case {
                name: "in-band SPS alone still gets the config's",
                nals: &[SPS, IDR],
                want: Some((true, &[AUD_NAL, CFG_SPS, CFG_PPS, SPS, IDR])),
            },
            Case {
                name: "empty NAL units skipped",
                nals: &[&[], NON_IDR, &[]],
                want: Some((false, &[AUD_NAL, NON_IDR])),
            },
            Case {
                name: "no NAL units",
                nals: &[],
                want: None,
            },
            Case {
                name: "only an AUD",
                nals: &[OWN_AUD],
                want: None,
            },
        ];
        for size in [1usize, 2, 4] {
            let cfg = config(size as u8);
            for case in &cases {
                let sample = length_prefixed(size, case.nals);
                let got = convert(&sample, &cfg);
                let want = case.want.map(|(idr, nals)| (idr, annex_b(nals)));
                assert_eq!(got, Ok(want), "{} size {size}", case.name);
            }
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        let cases: &[(usize, &[u8], Error)] = &[
            (
                4,
                &[0, 0, 0, 5, 0x41, 1, 2],
                Error::NalLengthPastEnd {
                    length: 5,
                    remaining: 3,
                },
            ),
            (
                2,
                &[0, 1, 0x41, 0xFF, 0xFF],
                Error::NalLengthPastEnd {
                    length: 0xFFFF,
                    remaining: 0,
                },
            ),
            (
                1,
                &[2, 0x41, 0, 9],
                Error::NalLengthPastEnd {
                    length: 9,
                    remaining: 0,
                },
            ),
            (4, &[0, 0, 0, 1, 0x41, 0, 0], Error::Truncated("NAL unit length prefix")),
        ];
        for (size, sample, want) in cases {
            assert_eq!(
                convert(sample, &config(*size as u8)),
                Err(want.clone()),
                "{sample:02x?}"
            );
        }
    }
}
