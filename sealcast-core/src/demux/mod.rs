//! Input demuxers for `sealcast package`: MP4 (progressive and fragmented)
//! and MPEG-TS files, turned into the FLV tag bodies the [`crate::pipeline`]
//! already takes from FLV files and RTMP. Feeding the same tags means the
//! output is made by exactly the code the FLV path runs: H.264 access units
//! with SPS/PPS at every IDR, AAC in ADTS, the same segmenter and cipher.
//!
//! Sans-IO like the other cores: [`mp4`] parses boxes handed to it and says
//! where each sample's bytes are (the caller reads them, so a 2 GB file is
//! never held in memory); [`ts`] takes 188-byte packets and returns frames.
//! Every size read from the input is bounded before anything is allocated.

pub mod mp4;
pub mod ts;

use crate::media::Track;

/// Why an input file cannot be demuxed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A structure ends before the bytes its size fields promise.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A box's size field is smaller than its own header or past its parent.
    #[error("box '{kind}' has an impossible size {size}")]
    BadBoxSize { kind: FourCc, size: u64 },
    /// A box sealcast must hold in memory is larger than the limit.
    #[error("box '{kind}' of {size} bytes exceeds the limit of {limit} bytes")]
    BoxTooLarge { kind: FourCc, size: u64, limit: u64 },
    /// A box every file of this kind must have is absent.
    #[error("no '{0}' box")]
    Missing(&'static str),
    /// Sample tables that must describe the same samples do not.
    #[error("sample tables disagree: {0}")]
    TablesDisagree(&'static str),
    /// More samples than sealcast accepts in one table or fragment.
    #[error("{what} has {count} samples, more than the limit of {limit}")]
    TooManySamples { what: &'static str, count: u64, limit: u64 },
    /// A track's codec is not H.264 (video) or AAC (audio).
    #[error("unsupported {track:?} codec: {codec} (sealcast packages H.264 video and AAC audio)")]
    UnsupportedCodec { track: Track, codec: String },
    /// The file has neither an H.264 nor an AAC track.
    #[error("no H.264 or AAC track")]
    NoTracks,
    /// A field holds a value the specification does not allow.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// A box type, printed as text where it is printable.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl std::fmt::Display for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// What kind of file an input is, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Flv,
    Mp4,
    Ts,
}

/// Top-level box types an ISO BMFF file may start with (ISO/IEC 14496-12, 4.2).
const MP4_FIRST_BOXES: [&[u8; 4]; 8] = [b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"styp", b"moof"];

/// Detects the container from the first bytes of a file (at least 377 for
/// TS, where three sync bytes 188 bytes apart are required), not from its
/// name: uploads are often misnamed.
pub fn detect(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"FLV") {
        return Some(Format::Flv);
    }
    if head.len() >= 8 && MP4_FIRST_BOXES.iter().any(|kind| &head[4..8] == *kind) {
        return Some(Format::Mp4);
    }
    // ISO/IEC 13818-1 2.4.3.2: every transport packet starts with 0x47.
    let ts = (0..3).all(|i| head.get(i * crate::ts::PACKET_SIZE) == Some(&0x47));
    ts.then_some(Format::Ts)
}

/// The FLV tag bodies (FLV v10.1 E.4.2, E.4.3) the pipeline takes: a
/// demuxed frame is written behind these few header bytes.
pub mod flv_body {
    /// FrameType 1 (key frame) or 2 (inter frame), CodecID 7 (AVC).
    pub fn video_header(keyframe: bool, sequence_header: bool, cts_ms: i32) -> [u8; 5] {
        let frame_type = if keyframe || sequence_header { 0x17 } else { 0x27 };
        let cts = cts_ms.clamp(-(1 << 23), (1 << 23) - 1).to_be_bytes();
        [frame_type, u8::from(!sequence_header), cts[1], cts[2], cts[3]]
    }

    /// SoundFormat 10 (AAC), 44 kHz, 16 bit, stereo (fixed for AAC), then
    /// AACPacketType 0 (AudioSpecificConfig) or 1 (raw frame).
    pub fn audio_header(sequence_header: bool) -> [u8; 2] {
        [0xAF, u8::from(!sequence_header)]
    }

    /// Length of [`video_header`].
    pub const VIDEO_HEADER_LEN: usize = 5;
    /// Length of [`audio_header`].
    pub const AUDIO_HEADER_LEN: usize = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content() {
        assert_eq!(detect(b"FLV\x01\x05"), Some(Format::Flv));
        assert_eq!(detect(b"\0\0\0\x20ftypisom"), Some(Format::Mp4));
        assert_eq!(detect(b"\0\0\0\x08mdat"), Some(Format::Mp4));
        let mut ts = vec![0u8; 400];
        for i in [0, 188, 376] {
            ts[i] = 0x47;
        }
        assert_eq!(detect(&ts), Some(Format::Ts));
        assert_eq!(detect(&ts[..300]), None);
        assert_eq!(detect(b"ID3\x03 mp3"), None);
    }

    #[test]
    fn flv_headers() {
        assert_eq!(flv_body::video_header(true, false, 80), [0x17, 1, 0, 0, 80]);
        assert_eq!(flv_body::video_header(false, false, -1), [0x27, 1, 0xFF, 0xFF, 0xFF]);
        assert_eq!(flv_body::video_header(true, true, 0), [0x17, 0, 0, 0, 0]);
        assert_eq!(flv_body::audio_header(true), [0xAF, 0]);
    }
}
