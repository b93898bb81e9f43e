//! MPEG-TS muxer (ISO/IEC 13818-1): access units in, whole 188-byte packets out.
//!
//! Sans-IO: [`Muxer`] appends packets to a caller-owned [`PacketSink`] (a
//! `Vec<u8>`, or the live pipeline's bounded pieces) and never
//! touches files, sockets or the clock. One muxer lives for a whole live stream,
//! so continuity counters run on across segments; the segmenter calls
//! [`Muxer::start_segment`] at every cut and [`Muxer::write`] per access unit.
//!
//! What comes from `mpeg2ts` and what does not:
//! - PAT and PMT sections (with their CRC) are serialized by `mpeg2ts`. Its packet
//!   writer pads a short PSI payload with an adaptation field placed before the
//!   section; we re-frame its section so the packet carries 0xFF stuffing after
//!   the section instead (2.4.4), which is what every other muxer writes.
//! - The first packet of each PES (TS header, adaptation field with PCR, RAI
//!   and stuffing, PES header, PTS/DTS) is an `mpeg2ts` `TsPacket`, built on
//!   the stack. `mpeg2ts` writes the six reserved bits of the PCR (2.4.3.5) as
//!   0; we set them to 1 after it has written the packet.
//! - The packets after it carry only payload (the last one also stuffing);
//!   they are written here, straight from the access unit's [`Payload`] into
//!   the [`PacketSink`]'s packets, so a frame's bytes are copied once. (Through
//!   `mpeg2ts` each 184 bytes would first be copied into a temporary.)
//!
//! [`Payload`]: crate::media::Payload

use mpeg2ts::es::{StreamId, StreamType};
use mpeg2ts::pes::PesHeader;
use mpeg2ts::time::{ClockReference, Timestamp};
use mpeg2ts::ts::payload::{Bytes, Pat, Pes, Pmt};
use mpeg2ts::ts::{
    AdaptationField, ContinuityCounter, EsInfo, Pid, ProgramAssociation, TransportScramblingControl, TsHeader,
    TsPacket, TsPacketWriter, TsPayload, VersionNumber, WriteTsPacket,
};

use crate::media::{AccessUnit, AudioCodec, PayloadReader, Track, Tracks, VideoCodec};

/// Size of every transport stream packet (2.4.3.2).
pub const PACKET_SIZE: usize = 188;
/// PID of the program map table (ffmpeg's default, so segments look familiar).
pub const PMT_PID: u16 = 0x1000;
/// PID of the H.264 elementary stream; also the PCR PID when there is video.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the AAC (ADTS) elementary stream; the PCR PID for audio-only streams.
pub const AUDIO_PID: u16 = 0x101;
/// The one program of every segment.
pub const PROGRAM_NUMBER: u16 = 1;
/// Added to every PTS/DTS (1.4 s, ffmpeg's default), so that the PCR, which runs
/// [`PCR_DELAY_90K`] behind the DTS, never has to go below zero at the start.
pub const TIMESTAMP_OFFSET_90K: u64 = 126_000;
/// The PCR is the written DTS minus this (0.7 s): the decoder's buffer delay.
pub const PCR_DELAY_90K: u64 = 63_000;

/// transport_stream_id in the PAT (ffmpeg writes 1 too).
const TRANSPORT_STREAM_ID: u16 = 1;
/// PTS, DTS and PCR base are 33-bit counters that wrap (2.4.3.7).
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
const HEADER_SIZE: usize = 4;
const SYNC_BYTE: u8 = 0x47;
/// Payload bytes of a packet without adaptation field.
const PAYLOAD_CAPACITY: usize = PACKET_SIZE - HEADER_SIZE;
/// stream_id of the first video / audio stream (Table 2-22).
const STREAM_ID_VIDEO: u8 = 0xE0;
const STREAM_ID_AUDIO: u8 = 0xC0;
/// PES header up to and including PES_header_data_length, plus the PTS (2.4.3.6).
const PES_HEADER_SIZE_PTS: usize = 9 + 5;
/// The bytes of a PES header that PES_packet_length does not count.
const PES_LENGTH_EXCLUDED: usize = 6;
/// adaptation_field_length + flags, then a PCR (2.4.3.4).
const AF_FLAGS_SIZE: usize = 2;
const PCR_SIZE: usize = 6;
/// Offset of the PCR byte holding base bit 0, the 6 reserved bits and ext bit 8.
const PCR_RESERVED_BYTE: usize = HEADER_SIZE + AF_FLAGS_SIZE + 4;
const PCR_RESERVED_BITS: u8 = 0b0111_1110;

/// Errors of [`Muxer::write`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The access unit's track is not in the program the last `start_segment` declared.
    #[error("{0:?} access unit, but the program declares no {0:?} track")]
    TrackNotInProgram(Track),
    /// An audio access unit too long for the 16-bit PES_packet_length (2.4.3.7);
    /// one ADTS frame is at most 8191 bytes, so this is malformed input.
    #[error("audio access unit of {0} bytes does not fit one PES packet")]
    AudioTooLong(usize),
    /// `mpeg2ts` refused to serialize a packet: a muxer bug, not bad input.
    #[error("mpeg2ts could not encode a packet: {0}")]
    Encode(#[from] mpeg2ts::Error),
}

/// Packetizes access units of one live stream into MPEG-TS.
#[derive(Debug, Default)]
pub struct Muxer {
    /// Tracks of the last PMT written; `None` before the first segment.
    program: Option<Tracks>,
    pmt_version: VersionNumber,
    pat_cc: ContinuityCounter,
    pmt_cc: ContinuityCounter,
    video_cc: ContinuityCounter,
    audio_cc: ContinuityCounter,
}

impl Muxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes PAT and PMT (for the given tracks) at the start of a segment.
    ///
    /// Every HLS segment must start with them so that it decodes on its own.
    /// The PMT version_number goes up when the tracks differ from the last PMT
    /// (2.4.4.9), so a demuxer reading segments back to back re-reads it.
    pub fn start_segment(&mut self, tracks: Tracks, out: &mut impl PacketSink) {
        if self.program.is_some_and(|last| last != tracks) {
            self.pmt_version.increment();
        }
        self.program = Some(tracks);
        match self.psi(tracks) {
            Ok([pat, pmt]) => {
                *out.next_packet() = pat;
                *out.next_packet() = pmt;
            }
            // Cannot fail: the PIDs are constants below 0x1FFF and the tables hold at
            // most two entries, far below every size limit; `psi_tables_for_all_tracks`
            // runs every possible `Tracks` value through this.
            Err(err) => {
                debug_assert!(false, "PSI encoding failed: {err}");
                tracing::error!(%err, "PSI encoding failed");
            }
        }
    }

    /// The PAT and PMT packets.
    fn psi(&mut self, tracks: Tracks) -> Result<[[u8; PACKET_SIZE]; 2], mpeg2ts::Error> {
        let pat = Pat {
            transport_stream_id: TRANSPORT_STREAM_ID,
            version_number: VersionNumber::new(),
            table: vec![ProgramAssociation {
                program_num: PROGRAM_NUMBER,
                program_map_pid: Pid::new(PMT_PID)?,
            }],
        };
        let pat = psi_packet(Pid::PAT, &mut self.pat_cc, TsPayload::Pat(pat))?;

        let mut es_info = Vec::with_capacity(2);
        if let Some(codec) = tracks.video {
            let stream_type = match codec {
                VideoCodec::H264 => StreamType::H264,
            };
            es_info.push(EsInfo {
                stream_type,
                elementary_pid: Pid::new(VIDEO_PID)?,
                descriptors: Vec::new(),
            });
        }
        if let Some(codec) = tracks.audio {
            let stream_type = match codec {
                AudioCodec::Aac => StreamType::AdtsAac,
            };
            es_info.push(EsInfo {
                stream_type,
                elementary_pid: Pid::new(AUDIO_PID)?,
                descriptors: Vec::new(),
            });
        }
        let pmt = Pmt {
            program_num: PROGRAM_NUMBER,
            // `None` is written as 0x1FFF: no PCR in an empty program (2.4.4.9).
            pcr_pid: pcr_pid(tracks).map(Pid::new).transpose()?,
            version_number: self.pmt_version,
            program_info: Vec::new(),
            es_info,
        };
        Ok([pat, psi_packet(PMT_PID, &mut self.pmt_cc, TsPayload::Pmt(pmt))?])
    }

    /// Packetizes one access unit as one PES into whole 188-byte packets appended to `out`.
    ///
    /// Video PES packets are unbounded (PES_packet_length 0, allowed for video
    /// in a transport stream, 2.4.3.7); audio PES packets carry their length.
    /// The first packet of a PES on the PCR PID carries a PCR; the first packet
    /// of a video keyframe (or of any audio frame in an audio-only program) sets
    /// random_access_indicator. On error nothing is appended and no counter moves.
    pub fn write(&mut self, au: &AccessUnit<'_>, out: &mut impl PacketSink) -> Result<(), Error> {
        let tracks = self.program.unwrap_or_default();
        let (pid, stream_id, cc) = match au.track {
            Track::Video if tracks.video.is_some() => (VIDEO_PID, STREAM_ID_VIDEO, &mut self.video_cc),
            Track::Audio if tracks.audio.is_some() => (AUDIO_PID, STREAM_ID_AUDIO, &mut self.audio_cc),
            track => return Err(Error::TrackNotInProgram(track)),
        };

        let dts = wrap_33(au.dts_90k);
        let (header, pes_header_size) = pes_header(au, stream_id)?;
        let pes_packet_len = match au.track {
            Track::Video => 0,
            Track::Audio => u16::try_from(pes_header_size - PES_LENGTH_EXCLUDED + au.payload.len())
                .map_err(|_| Error::AudioTooLong(au.payload.len()))?,
        };

        let pcr = if pcr_pid(tracks) == Some(pid) {
            // Base only, extension 0; the written DTS never precedes it.
            let base = dts.wrapping_sub(PCR_DELAY_90K) & TIMESTAMP_MASK;
            Some(ClockReference::new(base * 300)?)
        } else {
            None
        };
        let random_access = match au.track {
            Track::Video => au.keyframe,
            Track::Audio => tracks.video.is_none(),
        };
        let (adaptation_field, af_size) = first_adaptation_field(pcr, random_access);

        // Everything fallible happens on this first packet, built on the
        // stack: an error leaves `out` and the counter untouched.
        let total = au.payload.len();
        let mut reader = PayloadReader::new(&au.payload);
        let mut first = [0u8; PAYLOAD_CAPACITY];
        let first_capacity = PAYLOAD_CAPACITY - af_size - pes_header_size;
        let first_len = reader.read(&mut first[..first_capacity.min(total)]);
        let mut packet = [0u8; PACKET_SIZE];
        // mpeg2ts puts the room a short payload leaves into adaptation-field
        // stuffing (2.4.3.5), so a one-packet PES is padded correctly.
        TsPacketWriter::new(&mut packet[..]).write_ts_packet(&TsPacket {
            header: ts_header(Pid::new(pid)?, *cc),
            adaptation_field,
            payload: Some(TsPayload::PesStart(Pes {
                header,
                pes_packet_len,
                data: Bytes::new(&first[..first_len])?,
            })),
        })?;
        if pcr.is_some() {
            packet[PCR_RESERVED_BYTE] |= PCR_RESERVED_BITS;
        }
        *out.next_packet() = packet;
        cc.increment();

        // The rest goes straight from the payload into the sink's packets.
        let mut left = total - first_len;
        while left > 0 {
            let carried = left.min(PAYLOAD_CAPACITY);
            let (head, payload) = out.next_packet().split_at_mut(PACKET_SIZE - carried);
            write_continuation_head(head, pid, *cc);
            let read = reader.read(payload);
            debug_assert_eq!(read, carried, "Payload::len agrees with its slices");
            cc.increment();
            left -= carried;
        }
        Ok(())
    }
}

/// The PES header of an access unit (2.4.3.7): PTS always, DTS when it
/// differs; and its size in bytes.
fn pes_header(au: &AccessUnit<'_>, stream_id: u8) -> Result<(PesHeader, usize), Error> {
    let with_dts = au.pts_90k != au.dts_90k;
    let header = PesHeader {
        stream_id: StreamId::new(stream_id),
        priority: false,
        // Every PES starts with an access unit (AUD or ADTS syncword).
        data_alignment_indicator: true,
        copyright: false,
        original_or_copy: false,
        pts: Some(Timestamp::new(wrap_33(au.pts_90k))?),
        dts: if with_dts {
            Some(Timestamp::new(wrap_33(au.dts_90k))?)
        } else {
            None
        },
        escr: None,
    };
    Ok((header, PES_HEADER_SIZE_PTS + if with_dts { 5 } else { 0 }))
}

/// The adaptation field of a PES's first packet, when it carries a PCR or
/// marks a random access point (2.4.3.4); and its size in bytes.
fn first_adaptation_field(pcr: Option<ClockReference>, random_access: bool) -> (Option<AdaptationField>, usize) {
    if pcr.is_none() && !random_access {
        return (None, 0);
    }
    let af = AdaptationField {
        discontinuity_indicator: false,
        random_access_indicator: random_access,
        es_priority_indicator: false,
        pcr,
        opcr: None,
        splice_countdown: None,
        transport_private_data: Vec::new(), // empty: no allocation
        extension: None,
    };
    (Some(af), AF_FLAGS_SIZE + if pcr.is_some() { PCR_SIZE } else { 0 })
}

/// Fills the bytes before a continuation packet's payload: the TS header
/// and, when the payload is shorter than 184 bytes (the PES's last packet),
/// an adaptation field of stuffing that takes up the rest (2.4.3.4, 2.4.3.5).
/// `head` is 4 bytes long for a full packet, else `188 - payload length`.
fn write_continuation_head(head: &mut [u8], pid: u16, cc: ContinuityCounter) {
    let [pid_hi, pid_lo] = pid.to_be_bytes();
    let stuffed = head.len() > HEADER_SIZE;
    // adaptation_field_control: 01 payload only, 11 adaptation field then payload.
    let control = if stuffed { 0x30 } else { 0x10 };
    for (byte, value) in head
        .iter_mut()
        .zip([SYNC_BYTE, pid_hi & 0x1F, pid_lo, control | cc.as_u8()])
    {
        *byte = value;
    }
    if let Some((length, field)) = head.get_mut(HEADER_SIZE..).and_then(|af| af.split_first_mut()) {
        // adaptation_field_length counts the bytes after itself; a length of
        // 0 is the one-byte form. Otherwise: flags all 0, then 0xFF stuffing.
        *length = field.len() as u8;
        if let Some((flags, stuffing)) = field.split_first_mut() {
            *flags = 0;
            stuffing.fill(0xFF);
        }
    }
}

/// The PID that carries the PCR: video if there is video, else audio (2.4.4.9).
fn pcr_pid(tracks: Tracks) -> Option<u16> {
    if tracks.video.is_some() {
        Some(VIDEO_PID)
    } else if tracks.audio.is_some() {
        Some(AUDIO_PID)
    } else {
        None
    }
}

/// An input 90 kHz timestamp as written: offset, then reduced modulo 2^33.
fn wrap_33(ts_90k: u64) -> u64 {
    // 2^33 divides 2^64, so wrapping in u64 first keeps the result right.
    ts_90k.wrapping_add(TIMESTAMP_OFFSET_90K) & TIMESTAMP_MASK
}

fn ts_header(pid: Pid, cc: ContinuityCounter) -> TsHeader {
    TsHeader {
        transport_error_indicator: false,
        transport_priority: false,
        pid,
        transport_scrambling_control: TransportScramblingControl::NotScrambled,
        continuity_counter: cc,
    }
}

/// One PSI packet: payload_unit_start_indicator 1, pointer_field 0, the
/// section as `mpeg2ts` serializes it, then 0xFF up to the packet end.
fn psi_packet(pid: u16, cc: &mut ContinuityCounter, payload: TsPayload) -> Result<[u8; PACKET_SIZE], mpeg2ts::Error> {
    let mut packet = [0u8; PACKET_SIZE];
    TsPacketWriter::new(&mut packet[..]).write_ts_packet(&TsPacket {
        header: ts_header(Pid::new(pid)?, *cc),
        adaptation_field: None,
        payload: Some(payload),
    })?;
    // mpeg2ts placed an adaptation field of stuffing before the payload when the
    // payload is short; keep its header bytes and pointer_field + section only.
    let has_adaptation_field = packet[3] & 0x20 != 0;
    let payload_start = if has_adaptation_field {
        HEADER_SIZE + 1 + usize::from(packet[4])
    } else {
        HEADER_SIZE
    };
    let mut psi = [0xFF; PACKET_SIZE];
    // adaptation_field_control 01: payload only.
    psi[..HEADER_SIZE].copy_from_slice(&[packet[0], packet[1], packet[2], 0x10 | cc.as_u8()]);
    let section = packet.get(payload_start..).unwrap_or_default();
    psi[HEADER_SIZE..HEADER_SIZE + section.len()].copy_from_slice(section);
    cc.increment();
    Ok(psi)
}

/// Where the muxer puts packets, one 188-byte slot at a time, so that a
/// caller can cut its output into bounded pieces at packet boundaries.
pub trait PacketSink {
    /// The next packet's bytes, which the muxer overwrites entirely.
    fn next_packet(&mut self) -> &mut [u8; PACKET_SIZE];
}

impl PacketSink for Vec<u8> {
    fn next_packet(&mut self) -> &mut [u8; PACKET_SIZE] {
        let start = self.len();
        self.resize(start + PACKET_SIZE, 0);
        self.last_chunk_mut().expect("the vector was just extended by a packet")
    }
}

#[cfg(test)]
mod tests;
