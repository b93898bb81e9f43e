//! FLV, sans-IO: the file format (header, tags) and the audio/video tag bodies
//! that FLV files and RTMP audio/video messages share (FLV spec v10.1, Annex E).
//!
//! [`parse_file_header`] and [`parse_tag`] split a byte buffer into tags and
//! report "need more bytes" as `Ok(None)`, apart from invalid input. A
//! [`Demuxer`] (one per stream) turns tag bodies into [`AccessUnit`]s ready for
//! PES: H.264 in Annex B with an access unit delimiter first and SPS/PPS in
//! front of every IDR picture, AAC in ADTS. Nothing here reads a clock or does
//! IO, and no input bytes make it panic.
//!
//! Timestamps: FLV/RTMP carry 32-bit millisecond timestamps that wrap after
//! about 49.7 days. The demuxer extends them with one extender shared by both
//! tracks (see `timestamp.rs`), so audio and video stay on one timeline even
//! when one track crosses the wrap before the other.

mod aac;
mod avc;
mod metadata;
mod timestamp;

use std::fmt;

use crate::media::{AccessUnit, AudioCodec, Payload, Track, Tracks, VideoCodec};

pub use avc::{AnnexB, AnnexBSlices};
pub use metadata::Metadata;

/// Size of the fixed tag header (TagType .. StreamID), FLV v10.1 E.4.1.
const TAG_HEADER_LEN: usize = 11;
/// Size of the PreviousTagSize field that follows the header and every tag.
const PREV_TAG_SIZE_LEN: usize = 4;
/// The v1 FLV header is 9 bytes (FLV v10.1 E.2); DataOffset may not be less.
const MIN_HEADER_LEN: u32 = 9;

/// FLV CodecID of AVC (H.264), FLV v10.1 E.4.3.1.
const VIDEO_CODEC_AVC: u8 = 7;
/// FLV FrameType 5: a video info/command frame, which carries no picture.
const FRAME_TYPE_COMMAND: u8 = 5;
/// IsExHeader bit of the Enhanced RTMP ExVideoTagHeader.
const VIDEO_EX_HEADER: u8 = 0x80;
/// FLV SoundFormat of AAC, FLV v10.1 E.4.2.1.
const SOUND_FORMAT_AAC: u8 = 10;
/// SoundFormat 9 announces the Enhanced RTMP ExAudioTagHeader.
const SOUND_FORMAT_EX_HEADER: u8 = 9;
/// Enhanced RTMP PacketType ModEx: modifier bytes come before the FourCC.
const EX_PACKET_TYPE_MOD_EX: u8 = 7;

/// Errors from FLV parsing and demuxing. None of them leave a [`Demuxer`]
/// unusable: the caller logs the error and feeds the next tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ends inside a structure whose size fields promise more bytes.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// The file does not start with the "FLV" signature.
    #[error("not an FLV file (bad signature)")]
    BadSignature,
    /// The FLV header's DataOffset is smaller than the 9-byte header itself.
    #[error("FLV header length {0} is below the minimum of 9")]
    BadHeaderLength(u32),
    /// A tag's TagType is none of audio (8), video (9) or script data (18).
    #[error("unknown FLV tag type {0}")]
    UnknownTagType(u8),
    /// The tag's Filter bit is set (encrypted, FLV v10.1 Annex F): the body is unreadable.
    #[error("filtered (encrypted) FLV tag")]
    FilteredTag,
    /// A media frame arrived before its track's sequence header.
    #[error("{0:?} frame before its sequence header")]
    NoSequenceHeader(Track),
    /// The track uses a codec sealcast does not remux (yet).
    #[error("unsupported {track:?} codec: {codec}")]
    UnsupportedCodec { track: Track, codec: CodecId },
    /// The AVCPacketType or AACPacketType is not one the FLV spec defines.
    #[error("unknown {track:?} packet type {packet_type}")]
    BadPacketType { track: Track, packet_type: u8 },
    /// A decoder configuration (AVCDecoderConfigurationRecord or
    /// AudioSpecificConfig) is malformed or cannot be carried in MPEG-TS.
    #[error("bad codec configuration: {0}")]
    BadConfig(&'static str),
    /// A NAL unit's length prefix points past the end of the tag body.
    #[error("NAL unit length {length} past the end of the tag body ({remaining} bytes left)")]
    NalLengthPastEnd { length: usize, remaining: usize },
    /// A raw AAC frame is too long for the 13-bit ADTS frame_length.
    #[error("AAC frame of {0} bytes does not fit in an ADTS frame")]
    AacFrameTooLong(usize),
    /// Script data that is not valid AMF0.
    #[error("malformed AMF0 script data: {0}")]
    BadAmf(&'static str),
}

/// How an unsupported codec was identified, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecId {
    /// A legacy FLV CodecID (video) or SoundFormat (audio).
    Flv(u8),
    /// An Enhanced RTMP FourCC such as `hvc1`, `av01`, `Opus`.
    FourCc([u8; 4]),
    /// An Enhanced RTMP header whose FourCC could not be read.
    Enhanced,
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecId::Flv(id) => write!(f, "FLV codec id {id}"),
            CodecId::FourCc(cc) => {
                f.write_str("FourCC ")?;
                for &b in cc {
                    if b.is_ascii_graphic() || b == b' ' {
                        write!(f, "{}", b as char)?;
                    } else {
                        write!(f, "\\x{b:02x}")?;
                    }
                }
                Ok(())
            }
            CodecId::Enhanced => f.write_str("Enhanced RTMP codec"),
        }
    }
}

/// FLV TagType (FLV v10.1 E.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    /// TagType 8.
    Audio,
    /// TagType 9.
    Video,
    /// TagType 18 (script data, AMF0).
    Script,
}

impl TagKind {
    /// Maps a TagType value; `None` for values the spec does not define.
    pub fn from_tag_type(tag_type: u8) -> Option<Self> {
        match tag_type {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        }
    }
}

/// The FLV file header (FLV v10.1 E.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// TypeFlagsAudio.
    pub has_audio: bool,
    /// TypeFlagsVideo.
    pub has_video: bool,
    /// DataOffset: the header's length in bytes (9 for version 1).
    pub header_len: u32,
}

/// One FLV tag, its body borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    pub kind: TagKind,
    /// Timestamp with TimestampExtended as the high byte: 32-bit milliseconds.
    pub timestamp_ms: u32,
    pub body: &'a [u8],
}

/// Parses the FLV header and PreviousTagSize0.
///
/// `Ok(None)` means more bytes are needed. The signature is checked on as many
/// bytes as are present, so garbage is rejected early. The version byte and
/// the value of PreviousTagSize0 are not checked (ffmpeg does not either);
/// bytes between the 9-byte header and DataOffset are skipped.
pub fn parse_file_header(buf: &[u8]) -> Result<Option<(FileHeader, usize)>, Error> {
    let sig_len = buf.len().min(3);
    if buf.get(..sig_len) != b"FLV".get(..sig_len) {
        return Err(Error::BadSignature);
    }
    let Some(fixed) = buf.get(..MIN_HEADER_LEN as usize) else {
        return Ok(None);
    };
    let flags = fixed[4];
    let header_len = u32::from_be_bytes([fixed[5], fixed[6], fixed[7], fixed[8]]);
    if header_len < MIN_HEADER_LEN {
        return Err(Error::BadHeaderLength(header_len));
    }
    let consumed = usize::try_from(header_len)
        .ok()
        .and_then(|n| n.checked_add(PREV_TAG_SIZE_LEN));
    let Some(consumed) = consumed else {
        return Err(Error::BadHeaderLength(header_len));
    };
    if buf.len() < consumed {
        return Ok(None);
    }
    let header = FileHeader {
        has_audio: flags & 0x04 != 0,
        has_video: flags & 0x01 != 0,
        header_len,
    };
    Ok(Some((header, consumed)))
}

/// Parses one tag and the PreviousTagSize after it; returns the tag and the
/// bytes consumed. `Ok(None)` means more bytes are needed.
///
/// The PreviousTagSize value is not checked against the tag (some muxers
/// write DataSize instead of DataSize + 11; ffmpeg only warns), and StreamID
/// is ignored (always 0).
pub fn parse_tag(buf: &[u8]) -> Result<Option<(Tag<'_>, usize)>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // FLV v10.1 E.4.1: Reserved UB[2], Filter UB[1], TagType UB[5].
    if first & 0x20 != 0 {
        return Err(Error::FilteredTag);
    }
    let tag_type = first & 0x1F;
    let kind = TagKind::from_tag_type(tag_type).ok_or(Error::UnknownTagType(tag_type))?;
    let Some(header) = buf.get(..TAG_HEADER_LEN) else {
        return Ok(None);
    };
    let data_size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
    let timestamp_ms = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
    let body_end = TAG_HEADER_LEN + data_size;
    let consumed = body_end + PREV_TAG_SIZE_LEN;
    if buf.len() < consumed {
        return Ok(None);
    }
    let body = &buf[TAG_HEADER_LEN..body_end];
    Ok(Some((
        Tag {
            kind,
            timestamp_ms,
            body,
        },
        consumed,
    )))
}

/// Iterator over the tags of a complete in-memory FLV file; see [`tags`].
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Iterator for Tags<'a> {
    type Item = Result<Tag<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        match parse_tag(self.rest) {
            Ok(Some((tag, consumed))) => {
                // parse_tag only reports consumed <= rest.len().
                self.rest = self.rest.get(consumed..).unwrap_or_default();
                Some(Ok(tag))
            }
            Ok(None) => {
                self.done = true;
                Some(Err(Error::Truncated("FLV tag at end of file")))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Parses the header of a complete in-memory FLV file and returns an iterator
/// over its tags. The iterator yields one `Err` for a malformed or truncated
/// tail (including a last tag without its PreviousTagSize), then ends.
pub fn tags(file: &[u8]) -> Result<(FileHeader, Tags<'_>), Error> {
    let (header, consumed) = parse_file_header(file)?.ok_or(Error::Truncated("FLV file header"))?;
    let rest = file.get(consumed..).unwrap_or_default();
    Ok((header, Tags { rest, done: false }))
}

/// Turns FLV audio/video/script tag bodies of one stream into access units.
///
/// Holds the codec configurations (AVC decoder configuration record, AAC
/// AudioSpecificConfig) and the timestamp extender. A returned
/// [`AccessUnit`] borrows the tag body (and the parameter sets it inserts),
/// so demuxing neither allocates nor copies frames.
pub struct Demuxer {
    avc: Option<avc::Config>,
    aac: Option<aac::Config>,
    clock: timestamp::Extender,
    metadata: Option<Metadata>,
    /// Sequence headers that replaced a different configuration.
    config_changes: u64,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Demuxer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demuxer")
            .field("tracks", &self.tracks())
            .field("clock", &self.clock)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl Demuxer {
    pub fn new() -> Self {
        Demuxer {
            avc: None,
            aac: None,
            clock: timestamp::Extender::default(),
            metadata: None,
            config_changes: 0,
        }
    }

    /// Feeds one tag body with its 32-bit millisecond timestamp.
    ///
    /// Returns `Ok(Some(_))` for a media frame, `Ok(None)` for sequence
    /// headers, metadata and tags with nothing to play (empty bodies, AVC end
    /// of sequence, video command frames, AVC frames without NAL units, empty
    /// AAC frames), and `Err` for a malformed or unsupported tag. After an
    /// error the demuxer is unchanged except where noted on
    /// [`Demuxer::metadata`], and keeps working.
    ///
    /// Timestamps: DTS is the tag timestamp extended across the 32-bit wrap;
    /// for video PTS = DTS + CompositionTime. A negative CompositionTime
    /// that would put PTS below zero is clamped to PTS 0 (only possible in
    /// the first frames of a stream that starts at timestamp 0).
    pub fn push<'a>(
        &'a mut self,
        kind: TagKind,
        timestamp_ms: u32,
        body: &'a [u8],
    ) -> Result<Option<AccessUnit<'a>>, Error> {
        if body.is_empty() {
            return Ok(None);
        }
        match kind {
            TagKind::Video => self.push_video(timestamp_ms, body),
            TagKind::Audio => self.push_audio(timestamp_ms, body),
            TagKind::Script => {
                self.push_script(body)?;
                Ok(None)
            }
        }
    }

    /// Tracks whose sequence header has been seen.
    pub fn tracks(&self) -> Tracks {
        Tracks {
            video: self.avc.as_ref().map(|_| VideoCodec::H264),
            audio: self.aac.map(|_| AudioCodec::Aac),
        }
    }

    /// Sequence headers so far that replaced a different configuration of
    /// their track: an encoder that restarted with new settings (a new
    /// resolution) on the same connection. Encoders that repeat the same
    /// header (some do before every keyframe) do not count.
    pub fn config_changes(&self) -> u64 {
        self.config_changes
    }

    /// The last onMetaData values seen, if any.
    ///
    /// A later onMetaData replaces the earlier one. When an onMetaData
    /// object is cut short or malformed, the properties read before the
    /// problem replace the earlier metadata and `push` returns the error.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// FLV v10.1 E.4.3.1 VIDEODATA; AVCVIDEOPACKET.
    fn push_video<'a>(&'a mut self, timestamp_ms: u32, body: &'a [u8]) -> Result<Option<AccessUnit<'a>>, Error> {
        let Some(&first) = body.first() else {
            return Ok(None);
        };
        if first & VIDEO_EX_HEADER != 0 {
            return Err(Error::UnsupportedCodec {
                track: Track::Video,
                codec: ex_header_fourcc(first & 0x0F, body),
            });
        }
        let frame_type = first >> 4;
        let codec_id = first & 0x0F;
        if frame_type == FRAME_TYPE_COMMAND {
            return Ok(None);
        }
        if codec_id != VIDEO_CODEC_AVC {
            return Err(Error::UnsupportedCodec {
                track: Track::Video,
                codec: CodecId::Flv(codec_id),
            });
        }
        let Some(&[_, packet_type, c0, c1, c2]) = body.get(..5) else {
            return Err(Error::Truncated("AVC video tag header"));
        };
        let data = &body[5..];
        match packet_type {
            0 => {
                // Sequence headers are rare (start, encoder restarts): the
                // scratch buffer is not worth keeping.
                let mut param_sets = Vec::new();
                let nal_length_size = avc::parse_config(data, &mut param_sets)?;
                match &mut self.avc {
                    Some(cfg) if cfg.is(nal_length_size, &param_sets) => {}
                    Some(cfg) => {
                        self.config_changes += 1;
                        cfg.replace(nal_length_size, &param_sets);
                    }
                    None => self.avc = Some(avc::Config::new(nal_length_size, &param_sets)),
                }
                Ok(None)
            }
            1 => {
                let cfg = self.avc.as_ref().ok_or(Error::NoSequenceHeader(Track::Video))?;
                let Some((annex_b, idr)) = avc::annex_b(data, cfg)? else {
                    return Ok(None);
                };
                // CompositionTime is SI24 (FLV v10.1 E.4.3.2): sign-extend.
                let cts_ms = i32::from_be_bytes([c0, c1, c2, 0]) >> 8;
                let dts_ms = self.clock.extend(timestamp_ms);
                // PTS below zero is clamped to 0 (see `push`).
                let pts_ms = dts_ms.saturating_add_signed(i64::from(cts_ms));
                Ok(Some(AccessUnit {
                    track: Track::Video,
                    pts_90k: ms_to_90k(pts_ms),
                    dts_90k: ms_to_90k(dts_ms),
                    keyframe: idr,
                    payload: Payload::AnnexB(annex_b),
                }))
            }
            2 => Ok(None),
            packet_type => Err(Error::BadPacketType {
                track: Track::Video,
                packet_type,
            }),
        }
    }

    /// FLV v10.1 E.4.2.1 AUDIODATA; AACAUDIODATA.
    fn push_audio<'a>(&'a mut self, timestamp_ms: u32, body: &'a [u8]) -> Result<Option<AccessUnit<'a>>, Error> {
        let Some(&first) = body.first() else {
            return Ok(None);
        };
        let sound_format = first >> 4;
        if sound_format == SOUND_FORMAT_EX_HEADER {
            return Err(Error::UnsupportedCodec {
                track: Track::Audio,
                codec: ex_header_fourcc(first & 0x0F, body),
            });
        }
        if sound_format != SOUND_FORMAT_AAC {
            return Err(Error::UnsupportedCodec {
                track: Track::Audio,
                codec: CodecId::Flv(sound_format),
            });
        }
        let Some(&packet_type) = body.get(1) else {
            return Err(Error::Truncated("AAC audio tag header"));
        };
        let data = &body[2..];
        match packet_type {
            0 => {
                let cfg = aac::parse_audio_specific_config(data)?;
                if self.aac.is_some_and(|old| old != cfg) {
                    self.config_changes += 1;
                }
                self.aac = Some(cfg);
                Ok(None)
            }
            1 => {
                let cfg = self.aac.ok_or(Error::NoSequenceHeader(Track::Audio))?;
                if data.is_empty() {
                    return Ok(None);
                }
                let header = aac::adts_header(cfg, data.len())?;
                let ts_90k = ms_to_90k(self.clock.extend(timestamp_ms));
                Ok(Some(AccessUnit {
                    track: Track::Audio,
                    pts_90k: ts_90k,
                    dts_90k: ts_90k,
                    keyframe: true,
                    payload: Payload::Adts { header, frame: data },
                }))
            }
            packet_type => Err(Error::BadPacketType {
                track: Track::Audio,
                packet_type,
            }),
        }
    }

    /// Script data: only onMetaData is read; other names are ignored.
    fn push_script(&mut self, body: &[u8]) -> Result<(), Error> {
        let mut md = Metadata::default();
        match metadata::parse_on_metadata(body, &mut md) {
            Ok(false) => Ok(()),
            Ok(true) => {
                self.metadata = Some(md);
                Ok(())
            }
            Err((found, e)) => {
                if found {
                    self.metadata = Some(md);
                }
                Err(e)
            }
        }
    }
}

/// Identifies the codec of an Enhanced RTMP ExVideoTagHeader/ExAudioTagHeader
/// for the error message: the FourCC follows the first byte unless the packet
/// type is ModEx (modifier data first).
fn ex_header_fourcc(packet_type: u8, body: &[u8]) -> CodecId {
    match body.get(1..5) {
        Some(&[a, b, c, d]) if packet_type != EX_PACKET_TYPE_MOD_EX => CodecId::FourCc([a, b, c, d]),
        _ => CodecId::Enhanced,
    }
}

/// Milliseconds to the 90 kHz MPEG-TS clock.
fn ms_to_90k(ms: u64) -> u64 {
    ms.saturating_mul(crate::media::CLOCK_90K / 1000)
}

#[cfg(test)]
mod tests {
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
        0x67, 0x42, 0xC0, 0x15, 0xDA, 0x06, 0xC7, 0xF9, 0x3C, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00,
        0x0C, 0x83, 0xC5, 0x8B, 0xA8,
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
}
