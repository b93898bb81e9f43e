//! Box headers and the few box bodies that are not sample tables: sample
//! entries with their decoder configurations, and edit lists.

use super::{Error, FourCc};
use crate::media::Track;

/// A bounds-checked big-endian reader over one box body.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.buf.len() {
            return Err(Error::Truncated(self.what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(super) fn skip(&mut self, n: usize) -> Result<(), Error> {
        self.take(n).map(|_| ())
    }

    pub(super) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn u64(&mut self) -> Result<u64, Error> {
        let hi = u64::from(self.u32()?);
        Ok(hi << 32 | u64::from(self.u32()?))
    }

    pub(super) fn fourcc(&mut self) -> Result<FourCc, Error> {
        let b = self.take(4)?;
        Ok(FourCc([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn rest(self) -> &'a [u8] {
        self.buf
    }
}

/// A box header (ISO/IEC 14496-12 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    pub kind: FourCc,
    /// 8, or 16 with a 64-bit largesize.
    pub header_len: u64,
    /// Header and body; `None` for size 0, "to the end of the file".
    pub size: Option<u64>,
}

/// Parses a box header from the start of `buf`; `Ok(None)` when fewer than
/// the header's 8 or 16 bytes are present.
pub fn box_header(buf: &[u8]) -> Result<Option<BoxHeader>, Error> {
    let Some(head) = buf.get(..8) else {
        return Ok(None);
    };
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = FourCc([head[4], head[5], head[6], head[7]]);
    let (header_len, size) = match size32 {
        0 => (8, None),
        1 => {
            let Some(large) = buf.get(8..16) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            (16, Some(u64::from_be_bytes(b)))
        }
        n => (8, Some(u64::from(n))),
    };
    if size.is_some_and(|size| size < header_len) {
        return Err(Error::BadBoxSize {
            kind,
            size: size.unwrap_or(0),
        });
    }
    Ok(Some(BoxHeader { kind, header_len, size }))
}

/// The child boxes of a container body, each as (type, body). A child whose
/// size runs past its parent is an error, not a shorter box.
pub(super) fn children(mut buf: &[u8]) -> impl Iterator<Item = Result<(FourCc, &[u8]), Error>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let header = match box_header(buf) {
            Ok(Some(header)) => header,
            Ok(None) => {
                buf = &[];
                return Some(Err(Error::Truncated("box header")));
            }
            Err(error) => {
                buf = &[];
                return Some(Err(error));
            }
        };
        let size = header.size.unwrap_or(buf.len() as u64);
        if size > buf.len() as u64 {
            buf = &[];
            return Some(Err(Error::BadBoxSize {
                kind: header.kind,
                size,
            }));
        }
        // size <= buf.len() and header_len <= size, both checked above.
        let (this, rest) = buf.split_at(size as usize);
        buf = rest;
        Some(Ok((header.kind, &this[header.header_len as usize..])))
    })
}

/// The body of the first child of type `kind`.
pub(super) fn find<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, Error> {
    for child in children(buf) {
        let (found, body) = child?;
        if &found.0 == kind {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// The decoder configuration of the first sample entry of an stsd (8.5.2):
/// avcC for `avc1`/`avc3` (ISO/IEC 14496-15 5.4.2.1), the AudioSpecificConfig
/// from esds for `mp4a` (ISO/IEC 14496-14 5.6). Anything else is
/// [`Error::UnsupportedCodec`].
pub(super) fn sample_entry_config(stsd: &[u8], track: Track) -> Result<Vec<u8>, Error> {
    let mut r = Reader::new(stsd, "stsd");
    r.skip(4)?;
    if r.u32()? == 0 {
        return Err(Error::Missing("sample entry"));
    }
    let (kind, entry) = children(r.rest()).next().ok_or(Error::Missing("sample entry"))??;
    let unsupported = |codec: String| Error::UnsupportedCodec { track, codec };
    match (track, &kind.0) {
        (Track::Video, b"avc1" | b"avc3") => {
            // VisualSampleEntry: SampleEntry (8) + 70 bytes of picture fields.
            let mut r = Reader::new(entry, "avc1 sample entry");
            r.skip(78)?;
            let avcc = find(r.rest(), b"avcC")?.ok_or(Error::Missing("avcC"))?;
            if avcc.len() < 7 || avcc[0] != 1 {
                return Err(Error::Invalid("avcC (not an AVCDecoderConfigurationRecord version 1)"));
            }
            Ok(avcc.to_vec())
        }
        (Track::Audio, b"mp4a") => {
            // AudioSampleEntry: SampleEntry (8) + 20; QuickTime sound
            // description versions 1 and 2 add 16 and 36 bytes.
            let mut r = Reader::new(entry, "mp4a sample entry");
            r.skip(8)?;
            let version = r.u16()?;
            r.skip(18)?;
            r.skip(match version {
                0 => 0,
                1 => 16,
                2 => 36,
                _ => return Err(Error::Invalid("mp4a sound description version")),
            })?;
            let esds = find(r.rest(), b"esds")?.ok_or(Error::Missing("esds"))?;
            esds_audio_config(esds).map_err(|error| match error {
                Error::UnsupportedCodec { codec, .. } => unsupported(codec),
                other => other,
            })
        }
        _ => Err(unsupported(format!("sample entry '{kind}'"))),
    }
}

/// MPEG-4 objectTypeIndication values of AAC (ISO/IEC 14496-1 Table 5):
/// MPEG-4 audio and MPEG-2 AAC Main, LC, SSR.
const AAC_OBJECT_TYPES: [u8; 4] = [0x40, 0x66, 0x67, 0x68];

/// The DecoderSpecificInfo of an esds (ISO/IEC 14496-1 7.2.6.5, 7.2.6.6):
/// ES_Descriptor (tag 3) → DecoderConfigDescriptor (tag 4) → tag 5.
fn esds_audio_config(esds: &[u8]) -> Result<Vec<u8>, Error> {
    let mut r = Reader::new(esds, "esds");
    r.skip(4)?;
    let mut es = descriptor(&mut r, 0x03)?;
    es.skip(2)?; // ES_ID
    let flags = es.u8()?;
    if flags & 0x80 != 0 {
        es.skip(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let len = es.u8()?;
        es.skip(usize::from(len))?; // URL
    }
    if flags & 0x20 != 0 {
        es.skip(2)?; // OCR_ES_Id
    }
    let mut config = descriptor(&mut es, 0x04)?;
    let object_type = config.u8()?;
    if !AAC_OBJECT_TYPES.contains(&object_type) {
        let name = match object_type {
            0x69 | 0x6B => "MP3",
            0xA5 => "AC-3",
            0xA6 => "E-AC-3",
            _ => "objectTypeIndication",
        };
        return Err(Error::UnsupportedCodec {
            track: Track::Audio,
            codec: format!("{name} (0x{object_type:02x})"),
        });
    }
    config.skip(12)?; // streamType, bufferSizeDB, maxBitrate, avgBitrate
    let asc = descriptor(&mut config, 0x05)?.rest();
    if asc.len() < 2 {
        return Err(Error::Truncated("AudioSpecificConfig"));
    }
    Ok(asc.to_vec())
}

/// A descriptor of `tag` with its expandable size (ISO/IEC 14496-1 8.3.3),
/// as a reader over its body.
fn descriptor<'a>(r: &mut Reader<'a>, tag: u8) -> Result<Reader<'a>, Error> {
    if r.u8()? != tag {
        return Err(Error::Invalid("esds descriptor tag"));
    }
    let mut len = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        len = len << 7 | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            break;
        }
    }
    // A sizeInstance past the enclosing body: take what is there (ffmpeg
    // writes exact sizes; some muxers round up).
    let len = len.min(r.remaining());
    Ok(Reader::new(r.take(len)?, "esds descriptor"))
}

/// The presentation shift of an edit list (8.6.6), in media timescale:
/// the first non-empty edit's media_time, less the duration of empty edits
/// before it (segment_duration is in the movie timescale).
pub(super) fn edit_shift(elst: &[u8], movie_timescale: u32, media_timescale: u32) -> Result<i64, Error> {
    let mut r = Reader::new(elst, "elst");
    let version = r.u8()?;
    r.skip(3)?;
    let count = r.u32()?;
    let mut empty = 0i128;
    for _ in 0..count.min(64) {
        let (duration, media_time) = if version == 1 {
            (r.u64()?, r.u64()? as i64)
        } else {
            (u64::from(r.u32()?), i64::from(r.u32()? as i32))
        };
        r.skip(4)?; // media_rate
        if media_time == -1 {
            empty += i128::from(duration);
            continue;
        }
        let empty_media = empty * i128::from(media_timescale) / i128::from(movie_timescale.max(1));
        let shift = i128::from(media_time) - empty_media;
        return Ok(shift.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i64);
    }
    Ok(0)
}
