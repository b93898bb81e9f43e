//! Types shared by the format cores: what the FLV demuxer produces and the TS
//! muxer, the segmenter and the pipeline consume.

/// The 90 kHz clock of MPEG-TS timestamps (ISO/IEC 13818-1, 2.4.3.7).
pub const CLOCK_90K: u64 = 90_000;

/// Which elementary stream an access unit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    Video,
    Audio,
}

/// Video codecs sealcast can carry in MPEG-TS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 / AVC, MPEG-TS stream_type 0x1B.
    H264,
}

/// Audio codecs sealcast can carry in MPEG-TS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC in ADTS framing, MPEG-TS stream_type 0x0F.
    Aac,
}

/// The elementary streams of one program, as far as they are known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracks {
    pub video: Option<VideoCodec>,
    pub audio: Option<AudioCodec>,
}

/// One decodable unit: a video frame or an audio frame, ready for PES.
///
/// Timestamps are on the 90 kHz clock and already extended across the 32-bit
/// millisecond wrap of FLV/RTMP, so they only grow; the TS muxer reduces them
/// modulo 2^33. `payload` borrows the demuxer's reusable buffer, so producing
/// an access unit allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct AccessUnit<'a> {
    pub track: Track,
    pub pts_90k: u64,
    pub dts_90k: u64,
    /// An IDR picture (video) or always true for audio.
    pub keyframe: bool,
    /// H.264 in Annex B (AUD first, SPS/PPS before every IDR) or AAC in ADTS.
    pub payload: &'a [u8],
}
