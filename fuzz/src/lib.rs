//! Helpers shared by the fuzz targets: carving FLV tags out of arbitrary
//! bytes, and the invariants every access unit must hold whatever the input.

use sealcast_core::flv::{self, TagKind};
use sealcast_core::media::{AccessUnit, Track};

/// One tag to feed: what an RTMP audio/video/data message carries.
pub type Record<'a> = (TagKind, u32, &'a [u8]);

/// Calls `f` for every tag of `data` read two ways:
///
/// 1. as an FLV file (`flv::tags`), up to the first malformed tag;
/// 2. as a sequence of records `[kind u8][timestamp_ms u32 BE][len u16 BE][body]`
///    (kind byte modulo 3: audio, video, script; a length past the end takes
///    what is left). This reaches the demuxer with any timestamp and any body,
///    without the fuzzer having to find a valid FLV header first.
///
/// `f` gets the interpretation index (0 or 1) so a target can reset state
/// between the two.
pub fn for_each_record(data: &[u8], mut f: impl FnMut(usize, Record<'_>)) {
    if let Ok((_header, tags)) = flv::tags(data) {
        for tag in tags {
            let Ok(tag) = tag else { break };
            f(0, (tag.kind, tag.timestamp_ms, tag.body));
        }
    }
    for record in Records(data) {
        f(1, record);
    }
}

/// Iterator over the record form described at [`for_each_record`].
pub struct Records<'a>(pub &'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (header, rest) = self.0.split_first_chunk::<7>()?;
        let kind = match header[0] % 3 {
            0 => TagKind::Audio,
            1 => TagKind::Video,
            _ => TagKind::Script,
        };
        let timestamp_ms = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::from(u16::from_be_bytes([header[5], header[6]])).min(rest.len());
        let (body, rest) = rest.split_at(len);
        self.0 = rest;
        Some((kind, timestamp_ms, body))
    }
}

/// What every access unit the demuxer returns must look like (the same checks
/// as the demuxer's own unit tests).
pub fn check_access_unit(au: &AccessUnit<'_>) {
    let p = au.payload.to_vec();
    assert_eq!(p.len(), au.payload.len(), "Payload::len agrees with its bytes");
    match au.track {
        Track::Video => {
            // Annex B, access unit delimiter first.
            assert!(p.len() >= 6, "video AU of {} bytes", p.len());
            assert_eq!(&p[..4], &[0, 0, 0, 1], "start code first");
            assert_eq!(p[4] & 0x1F, 9, "AUD first");
        }
        Track::Audio => {
            // One ADTS frame whose frame_length is the whole payload.
            assert!(p.len() >= 7, "audio AU of {} bytes", p.len());
            assert_eq!(p[0], 0xFF);
            assert_eq!(p[1] & 0xF6, 0xF0, "ADTS syncword, layer 0");
            let len = (usize::from(p[3] & 3) << 11) | (usize::from(p[4]) << 3) | usize::from(p[5] >> 5);
            assert_eq!(len, p.len(), "ADTS frame_length");
            assert_eq!(au.pts_90k, au.dts_90k, "audio PTS == DTS");
            assert!(au.keyframe, "audio is always a keyframe");
        }
    }
}
