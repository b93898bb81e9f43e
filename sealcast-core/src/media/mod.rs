//! Types shared by the format cores: what the FLV demuxer produces and the TS
//! muxer, the segmenter and the pipeline consume.

pub mod h264;

pub use h264::{AnnexB, AnnexBSlices};

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
/// modulo 2^33. `payload` borrows the tag body it came from, so producing an
/// access unit neither allocates nor copies the frame.
#[derive(Debug, Clone, Copy)]
pub struct AccessUnit<'a> {
    pub track: Track,
    pub pts_90k: u64,
    pub dts_90k: u64,
    /// An IDR picture (video) or always true for audio.
    pub keyframe: bool,
    /// H.264 in Annex B (AUD first, SPS/PPS before every IDR) or AAC in ADTS.
    pub payload: Payload<'a>,
}

/// The bytes of an access unit, described rather than assembled: the muxer
/// copies them straight from the tag body into TS packets, so a frame is
/// never held a second time in a reassembly buffer (a keyframe is ~100 KB).
/// All variants are validated by whoever built them; iterating cannot fail.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Bytes exactly as they are written.
    Bytes(&'a [u8]),
    /// An ADTS header, then the raw AAC frame.
    Adts { header: [u8; 7], frame: &'a [u8] },
    /// An AVC sample rewritten to Annex B as it is read.
    AnnexB(AnnexB<'a>),
}

impl<'a> Payload<'a> {
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Bytes(bytes) => bytes.len(),
            Payload::Adts { header, frame } => header.len() + frame.len(),
            Payload::AnnexB(annex_b) => annex_b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload as consecutive slices, in order.
    pub fn slices(&self) -> Slices<'_> {
        match self {
            Payload::Bytes(bytes) => Slices::Fixed([*bytes, &[]].into_iter()),
            Payload::Adts { header, frame } => Slices::Fixed([header.as_slice(), *frame].into_iter()),
            Payload::AnnexB(annex_b) => Slices::AnnexB(annex_b.slices()),
        }
    }

    /// A contiguous copy (tests, and audio held before the first keyframe).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for slice in self.slices() {
            out.extend_from_slice(slice);
        }
        out
    }
}

/// Iterator over a [`Payload`]'s slices.
pub enum Slices<'a> {
    Fixed(std::array::IntoIter<&'a [u8], 2>),
    AnnexB(AnnexBSlices<'a>),
}

impl<'a> Iterator for Slices<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Slices::Fixed(slices) => slices.next(),
            Slices::AnnexB(slices) => slices.next(),
        }
    }
}

/// Reads a [`Payload`] front to back into fixed-size destinations (TS
/// packet payloads) without gathering it anywhere first.
pub struct PayloadReader<'a> {
    slices: Slices<'a>,
    current: &'a [u8],
}

impl<'a> PayloadReader<'a> {
    pub fn new(payload: &'a Payload<'a>) -> Self {
        Self {
            slices: payload.slices(),
            current: &[],
        }
    }

    /// Fills `dst` from the payload; returns how many bytes were copied,
    /// less than `dst.len()` only at the payload's end.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let mut filled = 0;
        while filled < dst.len() {
            if self.current.is_empty() {
                match self.slices.next() {
                    Some(next) => self.current = next,
                    None => break,
                }
                continue;
            }
            let n = self.current.len().min(dst.len() - filled);
            let (now, rest) = self.current.split_at(n);
            dst[filled..filled + n].copy_from_slice(now);
            self.current = rest;
            filled += n;
        }
        filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading in any chunk size gives the slices' bytes, in order.
    #[test]
    fn reader_gives_the_payload_in_any_chunk_size() {
        // Two NAL units with 2-byte lengths (an IDR slice, then a misplaced
        // AUD that is dropped) and SPS/PPS to insert.
        let sample = [0, 3, 0x65, 1, 2, 0, 2, 0x09, 0xF0];
        let param_sets = [0, 0, 0, 1, 0x67, 7, 0, 0, 0, 1, 0x68, 8];
        let annex_b = Payload::AnnexB(AnnexB::new(&sample, 2, &param_sets, true));
        let want_annex_b = [&[0, 0, 0, 1, 0x09, 0xF0][..], &param_sets, &[0, 0, 0, 1, 0x65, 1, 2]].concat();
        let frame: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let header = [0xFF, 0xF1, 1, 2, 3, 4, 5];
        let adts = Payload::Adts { header, frame: &frame };
        let want_adts = [&header[..], &frame].concat();
        for (payload, want) in [
            (annex_b, want_annex_b),
            (adts, want_adts),
            (Payload::Bytes(&frame), frame.clone()),
        ] {
            assert_eq!(payload.len(), want.len());
            assert_eq!(payload.to_vec(), want);
            for chunk in [1, 5, 7, 184, 1000] {
                let mut reader = PayloadReader::new(&payload);
                let mut got = Vec::new();
                let mut dst = vec![0; chunk];
                loop {
                    let n = reader.read(&mut dst);
                    got.extend_from_slice(&dst[..n]);
                    if n < chunk {
                        break;
                    }
                }
                assert_eq!(got, want, "chunk {chunk}");
            }
        }
    }
}
