//! MPEG-TS input (ISO/IEC 13818-1): PAT and PMT, PES reassembly, H.264 in
//! Annex B (ITU-T H.264 Annex B) and AAC in ADTS (ISO/IEC 14496-3 1.A.2),
//! turned into FLV tag bodies with their decode times.
//!
//! Feed it 188-byte packets with [`Demuxer::push`] and call
//! [`Demuxer::finish`] at the end of the file; frames come out as [`Tag`]s.
//! A PES is held until the next one starts (the only way to know it ended,
//! since video PES_packet_length is 0), bounded by [`MAX_PES_BYTES`].

use super::Error;
use super::flv_body;
use crate::flv::TagKind;
use crate::media::Track;
use crate::ts::PACKET_SIZE;

/// The largest PES held while it is reassembled (a 4K keyframe is ~2 MB).
pub const MAX_PES_BYTES: usize = 16 << 20;

/// ISO/IEC 13818-1 Table 2-34 stream_type values.
const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;

/// samplingFrequencyIndex table, ISO/IEC 14496-3 1.6.3.4.
const SAMPLING_FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// One demuxed frame or decoder configuration as an FLV tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub kind: TagKind,
    /// Decode time on the 90 kHz clock, extended across the 33-bit wrap
    /// (it starts at 2^33 + the first DTS, so it never goes below zero).
    pub dts_90k: u64,
    pub body: Vec<u8>,
}

/// A PES being reassembled for one elementary stream.
#[derive(Debug, Default)]
struct Pes {
    pid: u16,
    buf: Vec<u8>,
    started: bool,
}

/// The TS input demuxer.
#[derive(Debug, Default)]
pub struct Demuxer {
    pmt_pid: Option<u16>,
    video: Option<Pes>,
    audio: Option<Pes>,
    /// Last extended timestamp, the reference for unwrapping the next one.
    last_90k: Option<u64>,
    /// SPS and PPS of the last AVC sequence header sent.
    avc_config: Vec<u8>,
    /// AudioSpecificConfig of the last AAC sequence header sent.
    asc: Option<[u8; 2]>,
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the PMT declared an H.264 and an AAC stream (both false before it).
    pub fn streams(&self) -> (bool, bool) {
        (self.video.is_some(), self.audio.is_some())
    }

    /// Takes one transport packet (2.4.3.2); appends finished frames to `out`.
    pub fn push(&mut self, packet: &[u8], out: &mut Vec<Tag>) -> Result<(), Error> {
        if packet.len() != PACKET_SIZE || packet[0] != 0x47 {
            return Err(Error::Invalid("transport packet (no 0x47 sync byte)"));
        }
        let unit_start = packet[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([packet[1] & 0x1F, packet[2]]);
        let payload = match (packet[3] >> 4) & 0x3 {
            0b01 => &packet[4..],
            0b11 => {
                let af_len = usize::from(packet[4]);
                packet
                    .get(5 + af_len..)
                    .ok_or(Error::Invalid("adaptation_field_length"))?
            }
            _ => return Ok(()),
        };
        if pid == 0 {
            if unit_start && self.pmt_pid.is_none() {
                self.pmt_pid = Some(parse_pat(payload)?);
            }
            return Ok(());
        }
        if Some(pid) == self.pmt_pid {
            if unit_start && self.video.is_none() && self.audio.is_none() {
                self.parse_pmt(payload)?;
            }
            return Ok(());
        }
        let track = match (&self.video, &self.audio) {
            (Some(pes), _) if pes.pid == pid => Track::Video,
            (_, Some(pes)) if pes.pid == pid => Track::Audio,
            _ => return Ok(()),
        };
        if unit_start {
            self.flush(track, out)?;
        }
        let pes = match track {
            Track::Video => self.video.as_mut(),
            Track::Audio => self.audio.as_mut(),
        };
        let Some(pes) = pes else { return Ok(()) };
        if unit_start {
            pes.started = true;
        }
        if pes.started {
            if pes.buf.len() + payload.len() > MAX_PES_BYTES {
                return Err(Error::TooManySamples {
                    what: "PES",
                    count: (pes.buf.len() + payload.len()) as u64,
                    limit: MAX_PES_BYTES as u64,
                });
            }
            pes.buf.extend_from_slice(payload);
        }
        Ok(())
    }

    /// Emits the PES still held for each stream (end of file).
    pub fn finish(&mut self, out: &mut Vec<Tag>) -> Result<(), Error> {
        self.flush(Track::Video, out)?;
        self.flush(Track::Audio, out)
    }

    /// The program's streams (2.4.4.8); the first H.264 and AAC ones are used.
    fn parse_pmt(&mut self, payload: &[u8]) -> Result<(), Error> {
        let section = psi_section(payload, 0x02)?;
        // table_id, section_length (2), program_number (2), version,
        // section_number, last_section_number, PCR_PID (2), program_info_length (2).
        let (Some(&hi), Some(&lo)) = (section.get(10), section.get(11)) else {
            return Err(Error::Truncated("PMT"));
        };
        let info_len = usize::from(u16::from_be_bytes([hi & 0x0F, lo]));
        let mut es = section.get(12 + info_len..).ok_or(Error::Truncated("PMT"))?;
        while es.len() >= 5 {
            let stream_type = es[0];
            let pid = u16::from_be_bytes([es[1] & 0x1F, es[2]]);
            let es_info_len = usize::from(u16::from_be_bytes([es[3] & 0x0F, es[4]]));
            let pes = || Some(Pes { pid, ..Pes::default() });
            match stream_type {
                STREAM_TYPE_H264 if self.video.is_none() => self.video = pes(),
                STREAM_TYPE_AAC_ADTS if self.audio.is_none() => self.audio = pes(),
                0x01 | 0x02 | 0x10 | 0x24 | 0x42 | 0xEA => {
                    return Err(unsupported(Track::Video, stream_type));
                }
                0x03 | 0x04 | 0x11 | 0x81 | 0x87 => return Err(unsupported(Track::Audio, stream_type)),
                _ => {}
            }
            es = es.get(5 + es_info_len..).unwrap_or(&[]);
        }
        if self.video.is_none() && self.audio.is_none() {
            return Err(Error::NoTracks);
        }
        Ok(())
    }

    fn flush(&mut self, track: Track, out: &mut Vec<Tag>) -> Result<(), Error> {
        let pes = match track {
            Track::Video => self.video.as_mut(),
            Track::Audio => self.audio.as_mut(),
        };
        let Some(pes) = pes else { return Ok(()) };
        if pes.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut pes.buf);
        let (pts, dts, data) = parse_pes(&buf)?;
        let Some(pts) = pts else {
            // Without a timestamp the frame cannot be placed: skip it.
            return Ok(());
        };
        let pts = self.extend(pts);
        let dts = dts.map_or(pts, |dts| self.extend(dts));
        let result = match track {
            Track::Video => self.video_frame(pts, dts, data, out),
            Track::Audio => self.audio_frames(pts, data, out),
        };
        // Give the buffer back so the next PES reuses its allocation.
        if let Some(pes) = match track {
            Track::Video => self.video.as_mut(),
            Track::Audio => self.audio.as_mut(),
        } {
            pes.buf = buf;
            pes.buf.clear();
        }
        result
    }

    /// Extends a 33-bit timestamp to the value nearest the last one.
    fn extend(&mut self, raw: u64) -> u64 {
        const WRAP: u64 = 1 << 33;
        let value = match self.last_90k {
            None => WRAP + raw,
            Some(last) => {
                let delta = (raw.wrapping_sub(last) & (WRAP - 1)) as i64;
                let delta = if delta >= (WRAP / 2) as i64 {
                    delta - WRAP as i64
                } else {
                    delta
                };
                last.saturating_add_signed(delta)
            }
        };
        self.last_90k = Some(value);
        value
    }

    /// An H.264 access unit in Annex B: AUDs dropped, SPS/PPS taken out into
    /// an AVC sequence header when they change, the rest length-prefixed.
    fn video_frame(&mut self, pts: u64, dts: u64, data: &[u8], out: &mut Vec<Tag>) -> Result<(), Error> {
        let mut body = Vec::with_capacity(data.len() + 16);
        let mut keyframe = false;
        let (mut sps, mut pps) = (None, None);
        body.extend_from_slice(&[0; flv_body::VIDEO_HEADER_LEN]);
        for nal in annex_b_nals(data) {
            match nal[0] & 0x1F {
                9 => continue,
                7 => sps = sps.or(Some(nal)),
                8 => pps = pps.or(Some(nal)),
                5 => keyframe = true,
                _ => {}
            }
            if matches!(nal[0] & 0x1F, 7 | 8) {
                continue;
            }
            body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            body.extend_from_slice(nal);
        }
        if let (Some(sps), Some(pps)) = (sps, pps) {
            let config = [sps, pps].concat();
            if config != self.avc_config {
                out.push(Tag {
                    kind: TagKind::Video,
                    dts_90k: dts,
                    body: avc_sequence_header(sps, pps)?,
                });
                self.avc_config = config;
            }
        }
        if body.len() == flv_body::VIDEO_HEADER_LEN {
            return Ok(());
        }
        let cts_ms = ((pts as i64 - dts as i64) / 90).clamp(i32::MIN.into(), i32::MAX.into()) as i32;
        body[..flv_body::VIDEO_HEADER_LEN].copy_from_slice(&flv_body::video_header(keyframe, false, cts_ms));
        out.push(Tag {
            kind: TagKind::Video,
            dts_90k: dts,
            body,
        });
        Ok(())
    }

    /// The ADTS frames of one PES, each with its own time (1024 samples a
    /// frame, 14496-3 1.A.2.2), the AudioSpecificConfig rebuilt from the
    /// header when it changes.
    fn audio_frames(&mut self, pts: u64, mut data: &[u8], out: &mut Vec<Tag>) -> Result<(), Error> {
        let mut index = 0u64;
        while data.len() >= 7 {
            let h = &data[..7];
            if h[0] != 0xFF || h[1] & 0xF0 != 0xF0 {
                return Err(Error::Invalid("ADTS syncword"));
            }
            let header_len = if h[1] & 0x01 == 0 { 9 } else { 7 };
            let profile = h[2] >> 6;
            let frequency_index = (h[2] >> 2) & 0x0F;
            let channels = ((h[2] & 0x01) << 2) | (h[3] >> 6);
            let frame_len = (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
            let rate = *SAMPLING_FREQUENCIES
                .get(usize::from(frequency_index))
                .ok_or(Error::Invalid("ADTS sampling_frequency_index"))?;
            if frame_len < header_len {
                return Err(Error::Invalid("ADTS frame_length"));
            }
            let Some(frame) = data.get(header_len..frame_len) else {
                return Err(Error::Truncated("ADTS frame"));
            };
            let asc = [
                ((profile + 1) << 3) | (frequency_index >> 1),
                ((frequency_index & 1) << 7) | (channels << 3),
            ];
            let dts_90k = pts + index * 1024 * 90_000 / u64::from(rate);
            if self.asc != Some(asc) {
                let mut body = flv_body::audio_header(true).to_vec();
                body.extend_from_slice(&asc);
                out.push(Tag {
                    kind: TagKind::Audio,
                    dts_90k,
                    body,
                });
                self.asc = Some(asc);
            }
            let mut body = Vec::with_capacity(flv_body::AUDIO_HEADER_LEN + frame.len());
            body.extend_from_slice(&flv_body::audio_header(false));
            body.extend_from_slice(frame);
            out.push(Tag {
                kind: TagKind::Audio,
                dts_90k,
                body,
            });
            data = &data[frame_len..];
            index += 1;
        }
        Ok(())
    }
}

fn unsupported(track: Track, stream_type: u8) -> Error {
    Error::UnsupportedCodec {
        track,
        codec: format!("MPEG-TS stream_type 0x{stream_type:02x}"),
    }
}

/// A PSI section that starts in this packet (2.4.4): the bytes after the
/// pointer_field, checked to be of `table_id` and to fit the packet.
fn psi_section(payload: &[u8], table_id: u8) -> Result<&[u8], Error> {
    let pointer = usize::from(*payload.first().ok_or(Error::Truncated("PSI"))?);
    let section = payload
        .get(1 + pointer..)
        .ok_or(Error::Truncated("PSI pointer_field"))?;
    if section.first() != Some(&table_id) {
        return Err(Error::Invalid("PSI table_id"));
    }
    let len = usize::from(u16::from_be_bytes([
        section.get(1).copied().unwrap_or(0) & 0x0F,
        *section.get(2).ok_or(Error::Truncated("PSI"))?,
    ]));
    // section_length counts from after itself and includes the CRC_32.
    let section = section
        .get(..3 + len)
        .ok_or(Error::Invalid("PSI section longer than one packet"))?;
    if section.len() < 12 {
        return Err(Error::Truncated("PSI section"));
    }
    Ok(&section[..section.len() - 4])
}

/// The PAT (2.4.4.3): the PID of the first program's PMT.
fn parse_pat(payload: &[u8]) -> Result<u16, Error> {
    let section = psi_section(payload, 0x00)?;
    for entry in section[8..].chunks_exact(4) {
        let program = u16::from_be_bytes([entry[0], entry[1]]);
        if program != 0 {
            return Ok(u16::from_be_bytes([entry[2] & 0x1F, entry[3]]));
        }
    }
    Err(Error::Missing("program in the PAT"))
}

/// PTS, DTS and payload of a PES packet.
type PesParts<'a> = (Option<u64>, Option<u64>, &'a [u8]);

/// A PES packet (2.4.3.6): PTS, DTS and the payload.
fn parse_pes(buf: &[u8]) -> Result<PesParts<'_>, Error> {
    let Some(h) = buf.get(..9) else {
        return Err(Error::Truncated("PES header"));
    };
    if h[..3] != [0, 0, 1] {
        return Err(Error::Invalid("PES packet_start_code_prefix"));
    }
    let header_end = 9 + usize::from(h[8]);
    let fields = buf.get(9..header_end).ok_or(Error::Truncated("PES header"))?;
    let timestamp = |b: &[u8]| -> Option<u64> {
        let b = b.get(..5)?;
        Some(
            (u64::from(b[0] >> 1) & 0x07) << 30
                | u64::from(b[1]) << 22
                | u64::from(b[2] >> 1) << 15
                | u64::from(b[3]) << 7
                | u64::from(b[4] >> 1),
        )
    };
    let (pts, dts) = match h[7] >> 6 {
        0b10 => (timestamp(fields), None),
        0b11 => (timestamp(fields), fields.get(5..).and_then(timestamp)),
        _ => (None, None),
    };
    // PES_packet_length, when set, bounds the payload (stuffing may follow).
    let declared = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let end = if declared == 0 {
        buf.len()
    } else {
        (6 + declared).min(buf.len())
    };
    let payload = buf.get(header_end..end).unwrap_or(&[]);
    Ok((pts, dts, payload))
}

/// The NAL units of an Annex B byte stream, trailing zero bytes removed.
fn annex_b_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        loop {
            let start = find_start_code(rest)?;
            let after = &rest[start + 3..];
            let end = find_start_code(after).unwrap_or(after.len());
            let mut nal = &after[..end];
            rest = &after[end..];
            while let [head @ .., 0] = nal {
                nal = head;
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    })
}

fn find_start_code(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0, 0, 1])
}

/// An AVC sequence header body: AVCDecoderConfigurationRecord (ISO/IEC
/// 14496-15 5.3.3.1) with one SPS and one PPS and 4-byte NAL lengths.
fn avc_sequence_header(sps: &[u8], pps: &[u8]) -> Result<Vec<u8>, Error> {
    if sps.len() < 4 || sps.len() > 0xFFFF || pps.len() > 0xFFFF {
        return Err(Error::Invalid("H.264 SPS/PPS length"));
    }
    let mut body = flv_body::video_header(true, true, 0).to_vec();
    body.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xFF, 0xE1]);
    body.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    body.extend_from_slice(sps);
    body.push(1);
    body.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    body.extend_from_slice(pps);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_nals_with_three_and_four_byte_start_codes() {
        let data = [0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x65, 7, 0];
        let nals: Vec<&[u8]> = annex_b_nals(&data).collect();
        assert_eq!(nals, [&[9, 0xF0][..], &[0x67, 1, 2], &[0x65, 7]]);
    }

    #[test]
    fn timestamps_unwrap_across_33_bits() {
        let mut demuxer = Demuxer::new();
        let first = demuxer.extend((1 << 33) - 90);
        let second = demuxer.extend(90);
        assert_eq!(second - first, 180);
        assert_eq!(demuxer.extend((1 << 33) - 10), second - 100);
    }

    #[test]
    fn garbage_packets_are_errors_not_panics() {
        let mut demuxer = Demuxer::new();
        let mut out = Vec::new();
        assert!(demuxer.push(&[0u8; 188], &mut out).is_err());
        let mut packet = [0xFFu8; 188];
        packet[0] = 0x47;
        packet[1] = 0x40; // PID 0 with unit start
        packet[2] = 0;
        packet[3] = 0x30;
        packet[4] = 200; // adaptation field past the packet
        assert!(demuxer.push(&packet, &mut out).is_err());
    }
}
