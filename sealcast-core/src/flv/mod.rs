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

/// The NAL reader's errors, as the demuxer has always reported them.
impl From<crate::media::h264::NalError> for Error {
    fn from(error: crate::media::h264::NalError) -> Self {
        match error {
            crate::media::h264::NalError::TruncatedLength => Error::Truncated("NAL unit length prefix"),
            crate::media::h264::NalError::LengthPastEnd { length, remaining } => {
                Error::NalLengthPastEnd { length, remaining }
            }
        }
    }
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
mod tests;
