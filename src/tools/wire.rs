//! How a real encoder puts media messages on the wire: header compression
//! and the write calls, without IO. `bench-push --pattern realtime` sends
//! through this so a server sees what it sees from ffmpeg.
//!
//! What ffmpeg 5.1 (`libavformat/rtmppkt.c`, `ff_rtmp_packet_write`) does,
//! checked with `strace -e sendto` on `ffmpeg -re -c copy -f flv rtmp://...`:
//! - Set Chunk Size 4096 after `connect`; audio on chunk stream 4, video on 6;
//! - the first message of a chunk stream has a type 0 header (absolute
//!   timestamp); later ones type 1 (timestamp delta, length, type), type 2
//!   (delta only) when length and type repeat, type 3 when the delta repeats
//!   too (RTMP 1.0, 5.3.1.2);
//! - one `send` for the header, one per chunk body and one per 1-byte type 3
//!   continuation header, with Nagle's algorithm on (no `TCP_NODELAY`), so
//!   the kernel, not the encoder, decides how the pieces coalesce.
//!
//! OBS (librtmp, `RTMP_SendPacket`) also writes once per chunk, header
//! included, with `TCP_NODELAY` set.

/// Type 0/1/2 header timestamp field maximum; larger values go to the
/// extended timestamp (RTMP 1.0, 5.3.1.3).
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

/// What the previous message on one chunk stream looked like.
#[derive(Debug, Clone, Copy)]
struct Previous {
    timestamp_ms: u32,
    delta_ms: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Per-chunk-stream header state of one connection's sending side.
#[derive(Debug)]
pub struct EncoderWire {
    chunk_size: usize,
    /// Indexed by chunk stream id (small: 2..=8).
    previous: Vec<Option<Previous>>,
}

impl EncoderWire {
    pub fn new(chunk_size: u32) -> Self {
        Self {
            chunk_size: (chunk_size as usize).max(1),
            previous: Vec::new(),
        }
    }

    /// Appends one message to `out` and the end offset of every piece an
    /// encoder writes separately to `pieces` (header, each chunk body, each
    /// continuation header). `csid` must be below 64 (a one-byte basic
    /// header), as ffmpeg's and OBS's are.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &mut self,
        out: &mut Vec<u8>,
        pieces: &mut Vec<usize>,
        csid: u8,
        type_id: u8,
        stream_id: u32,
        timestamp_ms: u32,
        payload: &[u8],
    ) {
        let csid = csid.clamp(2, 63);
        let slot = usize::from(csid);
        if self.previous.len() <= slot {
            self.previous.resize(slot + 1, None);
        }
        let length = payload.len().min(EXTENDED_TIMESTAMP as usize) as u32;
        let payload = payload.get(..length as usize).unwrap_or(payload);
        let prev = self.previous.get(slot).copied().flatten();
        let delta_ms = prev.map_or(0, |p| timestamp_ms.wrapping_sub(p.timestamp_ms));
        // ffmpeg's choice: compress only against the same message stream,
        // and never a delta that would need the extended field.
        let fmt = match prev {
            Some(p) if p.stream_id == stream_id && delta_ms < EXTENDED_TIMESTAMP => {
                if p.type_id == type_id && p.length == length {
                    if p.delta_ms == delta_ms { 3 } else { 2 }
                } else {
                    1
                }
            }
            _ => 0,
        };
        let field = if fmt == 0 { timestamp_ms } else { delta_ms };
        let extended = fmt == 0 && timestamp_ms >= EXTENDED_TIMESTAMP;
        out.push((fmt << 6) | csid);
        if fmt <= 2 {
            out.extend_from_slice(&field.min(EXTENDED_TIMESTAMP).to_be_bytes()[1..]);
        }
        if fmt <= 1 {
            out.extend_from_slice(&length.to_be_bytes()[1..]);
            out.push(type_id);
        }
        if fmt == 0 {
            out.extend_from_slice(&stream_id.to_le_bytes());
        }
        if extended {
            out.extend_from_slice(&timestamp_ms.to_be_bytes());
        }
        pieces.push(out.len());
        for (i, chunk) in payload.chunks(self.chunk_size).enumerate() {
            if i > 0 {
                out.push((3 << 6) | csid);
                if extended {
                    out.extend_from_slice(&timestamp_ms.to_be_bytes());
                }
                pieces.push(out.len());
            }
            out.extend_from_slice(chunk);
            pieces.push(out.len());
        }
        self.previous[slot] = Some(Previous {
            timestamp_ms,
            delta_ms,
            length,
            type_id,
            stream_id,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::{ChunkDecoder, ChunkLimits, message_type};

    /// Headers as ffmpeg writes them (bytes from an strace of ffmpeg 5.1):
    /// type 0 first, then type 1, type 2 and type 3 as fields repeat.
    #[test]
    fn header_types_follow_what_repeats() {
        let mut wire = EncoderWire::new(4096);
        let (mut out, mut pieces) = (Vec::new(), Vec::new());
        let cases: &[(u32, usize, &[u8])] = &[
            // first on csid 6: type 0, 12 bytes
            (0, 5, &[0x06, 0, 0, 0, 0, 0, 5, 9, 1, 0, 0, 0]),
            // new length: type 1, delta 33
            (33, 6, &[0x46, 0, 0, 33, 0, 0, 6, 9]),
            // same length and type, new delta: type 2
            (67, 6, &[0x86, 0, 0, 34]),
            // same delta too: type 3, one byte
            (101, 6, &[0xC6]),
        ];
        for (i, &(ts, len, header)) in cases.iter().enumerate() {
            out.clear();
            pieces.clear();
            wire.encode(&mut out, &mut pieces, 6, message_type::VIDEO, 1, ts, &vec![0xAB; len]);
            assert_eq!(&out[..header.len()], header, "case {i}");
            assert_eq!(pieces, [header.len(), header.len() + len], "case {i}");
        }
    }

    /// A 10,000-byte message at chunk size 4096: header, body, marker,
    /// body, marker, body: six writes, as in the strace.
    #[test]
    fn large_message_is_written_chunk_by_chunk() {
        let mut wire = EncoderWire::new(4096);
        let (mut out, mut pieces) = (Vec::new(), Vec::new());
        wire.encode(&mut out, &mut pieces, 6, message_type::VIDEO, 1, 0, &[7; 10_000]);
        assert_eq!(pieces, [12, 12 + 4096, 12 + 4097, 12 + 8193, 12 + 8194, 12 + 10_002]);
        assert_eq!(out[12 + 4096], 0xC6);
        assert_eq!(out[12 + 8193], 0xC6);
    }

    /// What the writer produces decodes, with the server's own decoder, to
    /// the messages that went in: timestamps, lengths, types and bodies.
    #[test]
    fn round_trips_through_the_server_decoder() {
        let mut wire = EncoderWire::new(4096);
        let (mut out, mut pieces) = (Vec::new(), Vec::new());
        // Set Chunk Size 4096 first, as ffmpeg sends it.
        crate::rtmp::chunk::encode_message(
            &mut out,
            128,
            2,
            message_type::SET_CHUNK_SIZE,
            0,
            0,
            &4096u32.to_be_bytes(),
        );
        let sent: Vec<(u8, u8, u32, Vec<u8>)> = vec![
            (4, message_type::AUDIO, 0, vec![1; 300]),
            (6, message_type::VIDEO, 0, vec![2; 9000]),
            (4, message_type::AUDIO, 21, vec![3; 300]),
            (4, message_type::AUDIO, 42, vec![4; 300]),
            (6, message_type::VIDEO, 33, vec![5; 700]),
            (4, message_type::AUDIO, 64, vec![6; 301]),
            (6, message_type::VIDEO, 67, vec![7; 700]),
            (6, message_type::VIDEO, 101, vec![8; 700]),
        ];
        for (csid, type_id, ts, body) in &sent {
            wire.encode(&mut out, &mut pieces, *csid, *type_id, 1, *ts, body);
        }
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        let mut messages = Vec::new();
        // Fed piece by piece, as the server would read them at worst.
        let mut start = 0;
        for end in pieces.iter().copied().chain([out.len()]) {
            decoder.handle_input(&out[start..end], &mut messages).unwrap();
            start = end;
        }
        let media: Vec<_> = messages
            .iter()
            .filter(|m| m.type_id != message_type::SET_CHUNK_SIZE)
            .collect();
        assert_eq!(media.len(), sent.len());
        for (m, (_, type_id, ts, body)) in media.iter().zip(&sent) {
            assert_eq!((m.type_id, m.timestamp_ms, &m.payload[..]), (*type_id, *ts, &body[..]));
        }
    }
}
