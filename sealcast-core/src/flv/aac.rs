//! AAC in FLV: the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) and raw AAC
//! frames to ADTS (ISO/IEC 14496-3 1.A.2.2).

use super::Error;

/// ADTS header without CRC (protection_absent = 1).
const ADTS_HEADER_LEN: usize = 7;
/// frame_length is 13 bits and counts the header.
const ADTS_MAX_FRAME_LEN: usize = (1 << 13) - 1;

/// samplingFrequencyIndex table, ISO/IEC 14496-3 1.6.3.4 (indexes 13, 14 reserved).
const SAMPLING_FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Audio object types that mean "SBR/PS on top of another object type"
/// (explicit HE-AAC v1/v2 signalling, 14496-3 1.6.2.1).
const AOT_SBR: u8 = 5;
const AOT_PS: u8 = 29;

/// What an ADTS header needs from the AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    /// ADTS profile: audio object type - 1, 0..=3.
    profile: u8,
    /// samplingFrequencyIndex, 0..=12.
    frequency_index: u8,
    /// channelConfiguration, 1..=7.
    channels: u8,
}

/// Reads big-endian bit fields.
struct Bits<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self
                .buf
                .get(self.pos / 8)
                .ok_or(Error::BadConfig("AudioSpecificConfig truncated"))?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }

    /// GetAudioObjectType() (14496-3 1.6.2.1): 5 bits, 31 escapes to 32 + 6 bits.
    fn object_type(&mut self) -> Result<u8, Error> {
        let aot = self.read(5)? as u8;
        if aot == 31 {
            return Ok(32 + self.read(6)? as u8);
        }
        Ok(aot)
    }

    /// samplingFrequencyIndex, with index 15 (an explicit 24-bit frequency)
    /// mapped back to the table, since ADTS can only carry an index.
    fn frequency_index(&mut self) -> Result<u8, Error> {
        match self.read(4)? as u8 {
            15 => {
                let hz = self.read(24)?;
                SAMPLING_FREQUENCIES
                    .iter()
                    .position(|&f| f == hz)
                    .map(|i| i as u8)
                    .ok_or(Error::BadConfig("AAC explicit sampling frequency has no ADTS index"))
            }
            13 | 14 => Err(Error::BadConfig("AAC samplingFrequencyIndex is reserved")),
            index => Ok(index),
        }
    }
}

/// Parses the AudioSpecificConfig of an AAC sequence header.
///
/// Explicitly signalled HE-AAC (object type 5 or 29) is reduced to its
/// underlying object type and core sampling frequency, as ADTS carries
/// HE-AAC with implicit SBR/PS signalling. The result must fit an ADTS
/// header: object type 1..=4 (Main, LC, SSR, LTP) and channelConfiguration
/// 1..=7 (0, a program_config_element, is not supported).
pub(crate) fn parse_audio_specific_config(asc: &[u8]) -> Result<Config, Error> {
    let mut bits = Bits { buf: asc, pos: 0 };
    let mut object_type = bits.object_type()?;
    let frequency_index = bits.frequency_index()?;
    let channels = bits.read(4)? as u8;
    if object_type == AOT_SBR || object_type == AOT_PS {
        let _extension_frequency_index = bits.frequency_index()?;
        object_type = bits.object_type()?;
    }
    if !(1..=4).contains(&object_type) {
        return Err(Error::BadConfig(
            "AAC audio object type cannot be carried in ADTS (needs 1..=4)",
        ));
    }
    if !(1..=7).contains(&channels) {
        return Err(Error::BadConfig(
            "AAC channelConfiguration cannot be carried in ADTS (needs 1..=7)",
        ));
    }
    Ok(Config {
        profile: object_type - 1,
        frequency_index,
        channels,
    })
}

/// The ADTS header (no CRC) that goes before a raw frame of `frame_len` bytes.
pub(crate) fn adts_header(cfg: Config, frame_len: usize) -> Result<[u8; ADTS_HEADER_LEN], Error> {
    let len = frame_len + ADTS_HEADER_LEN;
    if len > ADTS_MAX_FRAME_LEN {
        return Err(Error::AacFrameTooLong(frame_len));
    }
    // 14496-3 1.A.2.2.1: syncword 0xFFF, ID 0 (MPEG-4), layer 0,
    // protection_absent 1 | profile, sampling_frequency_index, private_bit,
    // channel_configuration, original_copy, home | copyright bits,
    // frame_length (13), adts_buffer_fullness 0x7FF (VBR),
    // number_of_raw_data_blocks_in_frame 0.
    Ok([
        0xFF,
        0xF1,
        (cfg.profile << 6) | (cfg.frequency_index << 2) | (cfg.channels >> 2),
        ((cfg.channels & 0x03) << 6) | (len >> 11) as u8,
        (len >> 3) as u8,
        (((len & 0x07) as u8) << 5) | 0x1F,
        0xFC,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_configs() {
        let lc = |frequency_index, channels| {
            Ok(Config {
                profile: 1,
                frequency_index,
                channels,
            })
        };
        let cases: &[(&str, &[u8], Result<Config, Error>)] = &[
            ("AAC-LC 48 kHz stereo", &[0x11, 0x90], lc(3, 2)),
            ("AAC-LC 44.1 kHz stereo", &[0x12, 0x10], lc(4, 2)),
            ("with sync extension bytes", &[0x11, 0x90, 0x56, 0xE5, 0x00], lc(3, 2)),
            ("AAC-LC 22.05 kHz mono", &[0x13, 0x88], lc(7, 1)),
            (
                "AAC Main 8 kHz 5.1",
                &[0x0D, 0xB0],
                Ok(Config {
                    profile: 0,
                    frequency_index: 11,
                    channels: 6,
                }),
            ),
            // AOT 2, index 15, 48000 = 0x00BB80, channels 2.
            ("explicit 48000 Hz", &[0x17, 0x80, 0x5D, 0xC0, 0x10], lc(3, 2)),
            (
                "explicit 12345 Hz",
                &[0x17, 0x80, 0x18, 0x1C, 0x90],
                Err(Error::BadConfig("AAC explicit sampling frequency has no ADTS index")),
            ),
            // HE-AAC: AOT 5, core 24 kHz (6), stereo, ext index 3 (48 kHz), AOT 2.
            ("HE-AAC explicit", &[0x2B, 0x11, 0x88, 0x00], lc(6, 2)),
            // AOT 31 escape + 6 bits 0 = AOT 32 (Layer-1).
            (
                "escaped object type",
                &[0xF8, 0x06, 0x40, 0x00],
                Err(Error::BadConfig(
                    "AAC audio object type cannot be carried in ADTS (needs 1..=4)",
                )),
            ),
            (
                "object type 0",
                &[0x01, 0x90],
                Err(Error::BadConfig(
                    "AAC audio object type cannot be carried in ADTS (needs 1..=4)",
                )),
            ),
            (
                "channel configuration 0 (PCE)",
                &[0x11, 0x80],
                Err(Error::BadConfig(
                    "AAC channelConfiguration cannot be carried in ADTS (needs 1..=7)",
                )),
            ),
            (
                "reserved frequency index 13",
                &[0x16, 0x90],
                Err(Error::BadConfig("AAC samplingFrequencyIndex is reserved")),
            ),
            (
                "truncated",
                &[0x11],
                Err(Error::BadConfig("AudioSpecificConfig truncated")),
            ),
            ("empty", &[], Err(Error::BadConfig("AudioSpecificConfig truncated"))),
        ];
        for (name, asc, want) in cases {
            assert_eq!(&parse_audio_specific_config(asc), want, "{name}");
        }
    }

    #[test]
    fn writes_adts_headers() {
        let cases: &[(&[u8], usize, [u8; 7])] = &[
            // 48 kHz stereo LC, 100-byte frame: length 107 = 0x06B.
            (&[0x11, 0x90], 100, [0xFF, 0xF1, 0x4C, 0x80, 0x0D, 0x7F, 0xFC]),
            // 44.1 kHz stereo LC, 232-byte frame: length 239 = 0x0EF.
            (&[0x12, 0x10], 232, [0xFF, 0xF1, 0x50, 0x80, 0x1D, 0xFF, 0xFC]),
            // Longest frame: length 8191 = 0x1FFF.
            (&[0x11, 0x90], 8184, [0xFF, 0xF1, 0x4C, 0x83, 0xFF, 0xFF, 0xFC]),
        ];
        for (asc, frame_len, header) in cases {
            let cfg = parse_audio_specific_config(asc).unwrap();
            assert_eq!(adts_header(cfg, *frame_len), Ok(*header), "{asc:02x?} {frame_len}");
        }
    }

    #[test]
    fn rejects_frames_too_long_for_adts() {
        let cfg = parse_audio_specific_config(&[0x11, 0x90]).unwrap();
        assert_eq!(adts_header(cfg, 8185), Err(Error::AacFrameTooLong(8185)));
    }
}
