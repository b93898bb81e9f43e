//! The RTMP chunk stream (Adobe RTMP 1.0 specification, 2012, section 5.3),
//! sans-IO: bytes in, whole messages out, and the encoder for our replies.
//!
//! Why sealcast owns this layer rather than using rml_rtmp 0.8's
//! `ChunkDeserializer`: that crate is unmaintained and panics on input any
//! client can send. It keeps one payload buffer for all chunk streams, so
//! audio and video interleaved chunk by chunk on two chunk stream ids (legal
//! RTMP) overflow it, and a type 1 header that shrinks the message length
//! mid-message underflows it. The chunk layer is also where every memory
//! limit has to live (message size, chunk size, chunk streams, bytes held in
//! unfinished messages), and it is small enough to own, test exhaustively and
//! fuzz. rml_rtmp is still used for the handshake, which is fixed-size and
//! bounded.
//!
//! [`ChunkDecoder::handle_input`] takes whatever bytes the socket gave and
//! appends every message completed by them; a partial header or payload is
//! kept for the next call ("need more bytes" is not an error). Set Chunk Size
//! and Abort (protocol control messages 1 and 2, spec 5.4.1 and 5.4.2) change
//! how the following chunks are read, so the decoder applies them itself and
//! does not return them.

use bytes::{Bytes, BytesMut};

/// The chunk size both directions start with (spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// The 24-bit timestamp field value announcing a 4-byte extended timestamp
/// (spec 5.3.1.3).
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

/// Longest chunk header: 3-byte basic header, 11-byte type 0 message header,
/// 4-byte extended timestamp.
const MAX_HEADER_BYTES: usize = 3 + 11 + 4;

/// Buffer reserved when a message starts, at most: a peer announcing an
/// 8 MiB message gets memory as its bytes arrive, not on its word.
const INITIAL_RESERVE_BYTES: usize = 64 * 1024;

/// Lowest and highest chunk stream ids (spec 5.3.1.1; 0 and 1 are escapes).
pub const MIN_CSID: u32 = 2;
pub const MAX_CSID: u32 = 65599;

/// RTMP message type ids (spec 5.4 and 7.1).
pub mod message_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// What the decoder accepts from one peer. Memory held by one decoder is at
/// most `max_buffered_bytes` plus a few bytes per chunk stream; it does not
/// depend on the chunk size, since payload goes straight into the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest Set Chunk Size accepted (the spec allows up to 2^31-1).
    pub max_chunk_size: u32,
    /// Largest message length accepted.
    pub max_message_bytes: u32,
    /// Most distinct chunk stream ids the peer may use.
    pub max_chunk_streams: usize,
    /// Most messages assembled at once (interleaved on distinct csids).
    pub max_partial_messages: usize,
    /// Most payload bytes held in unfinished messages, all csids together.
    pub max_buffered_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            max_chunk_size: 65536,
            max_message_bytes: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            max_partial_messages: 8,
            max_buffered_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The chunk stream it arrived on.
    pub csid: u32,
    pub type_id: u8,
    /// Message stream id (little-endian on the wire, spec 5.3.1.2.1).
    pub stream_id: u32,
    /// Milliseconds, absolute: type 0 timestamps and summed deltas, wrapping
    /// at 2^32 like the protocol's clock.
    pub timestamp_ms: u32,
    pub payload: Bytes,
}

/// Why the chunk stream is unusable; the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A type 1, 2 or 3 header on a chunk stream with no earlier header to
    /// take the omitted fields from.
    #[error("chunk stream {csid}: type {fmt} header with no previous header")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    /// A type 0, 1 or 2 header on a chunk stream whose message is not
    /// complete (e.g. a type 1 header shrinking the length mid-message).
    #[error("chunk stream {csid}: new message header after {received} of {length} bytes")]
    HeaderMidMessage { csid: u32, received: u32, length: u32 },
    /// A message longer than `max_message_bytes`.
    #[error("message of {length} bytes exceeds the limit of {max}")]
    MessageTooLarge { length: u32, max: u32 },
    /// Set Chunk Size with 0 or with the reserved top bit set.
    #[error("invalid chunk size {0}")]
    InvalidChunkSize(u32),
    /// Set Chunk Size above `max_chunk_size`.
    #[error("chunk size {size} exceeds the limit of {max}")]
    ChunkSizeTooLarge { size: u32, max: u32 },
    /// More chunk stream ids than `max_chunk_streams`.
    #[error("more than {0} chunk streams")]
    TooManyChunkStreams(usize),
    /// More unfinished messages than `max_partial_messages`.
    #[error("more than {0} messages in progress")]
    TooManyPartialMessages(usize),
    /// More bytes in unfinished messages than `max_buffered_bytes`.
    #[error("more than {0} bytes buffered in unfinished messages")]
    TooMuchBuffered(usize),
    /// A Set Chunk Size or Abort message shorter than its 4-byte body.
    #[error("protocol control message type {type_id} has {length} bytes, needs 4")]
    ShortControlMessage { type_id: u8, length: usize },
}

/// Per chunk stream: the last header's fields (later headers omit them) and
/// the message being assembled.
#[derive(Debug)]
struct ChunkStream {
    csid: u32,
    /// Timestamp of the last message started on this chunk stream.
    timestamp: u32,
    /// What a type 3 header starting a new message adds (spec 5.3.1.2.4: a
    /// type 0 timestamp counts as the delta too).
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The 4-byte extended timestamp field of the last type 0, 1 or 2
    /// header, when it had one; type 3 chunks may then repeat it.
    extended: Option<u32>,
    in_progress: bool,
    /// Payload received so far; its length is the bytes received.
    buf: BytesMut,
}

/// A parsed chunk header.
#[derive(Debug, Clone, Copy)]
struct Header {
    fmt: u8,
    csid: u32,
    /// The timestamp or delta, with the extended timestamp applied.
    timestamp: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

enum Parse {
    /// The header is this many bytes at least; wait for them.
    Need(usize),
    /// The header is complete. `refeed` holds bytes that were read to look
    /// for a repeated extended timestamp and turned out to be payload.
    Done { header: Header, refeed: Option<[u8; 4]> },
}

/// Reassembles RTMP messages from chunks. Interleaved chunk streams each
/// keep their own header state and buffer. One allocation per message, not
/// per chunk: payload is copied into the message's own buffer (once more for
/// the first 64 KB of a longer message), which is handed out as [`Bytes`]
/// without another copy and freed when its consumer is done with it. Between
/// messages a decoder holds no payload memory.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: ChunkLimits,
    chunk_size: u32,
    streams: Vec<ChunkStream>,
    header: [u8; MAX_HEADER_BYTES],
    header_len: usize,
    /// While reading a chunk's payload: index into `streams` and the bytes
    /// of this chunk still to come.
    payload: Option<(usize, u32)>,
    partial_messages: usize,
    buffered_bytes: usize,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER_BYTES],
            header_len: 0,
            payload: None,
            partial_messages: 0,
            buffered_bytes: 0,
        }
    }

    /// Replaces the limits (e.g. raised once a publish is authorized). They
    /// apply to messages started and chunk sizes set from now on.
    pub fn set_limits(&mut self, limits: ChunkLimits) {
        self.limits = limits;
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Consumes `input` and appends every message it completes to `out`, in
    /// order of completion. On `Err` the messages completed before the
    /// problem are in `out`; the decoder must not be used again.
    pub fn handle_input(&mut self, input: &[u8], out: &mut Vec<Message>) -> Result<(), ChunkError> {
        let mut input = input;
        while !input.is_empty() {
            if let Some((index, left)) = self.payload {
                let n = input.len().min(left as usize);
                let (now, rest) = input.split_at(n);
                input = rest;
                self.append(index, now)?;
                // n <= left, so this cannot wrap.
                let left = left - n as u32;
                if left > 0 {
                    self.payload = Some((index, left));
                } else {
                    self.payload = None;
                    self.end_of_chunk(index, out)?;
                }
                continue;
            }
            match self.parse_header()? {
                Parse::Need(total) => {
                    let have = self.header_len;
                    let n = total.saturating_sub(have).min(input.len());
                    let (now, rest) = input.split_at(n);
                    input = rest;
                    // total <= MAX_HEADER_BYTES, so the range is in bounds.
                    if let Some(slot) = self.header.get_mut(have..have + n) {
                        slot.copy_from_slice(now);
                    }
                    self.header_len = have + n;
                }
                Parse::Done { header, refeed } => {
                    self.header_len = 0;
                    self.start_chunk(header, out)?;
                    if let Some(bytes) = refeed {
                        // At most one level deep: deciding about a repeated
                        // extended timestamp takes a basic header plus 4
                        // bytes, more than these 4 bytes can hold.
                        self.handle_input(&bytes, out)?;
                    }
                }
            }
        }
        // A header completed by the last bytes of the input is processed
        // now, so a zero-length message or final chunk is not held back.
        if self.payload.is_none()
            && self.header_len > 0
            && let Parse::Done { header, refeed } = self.parse_header()?
        {
            self.header_len = 0;
            self.start_chunk(header, out)?;
            if let Some(bytes) = refeed {
                self.handle_input(&bytes, out)?;
            }
        }
        Ok(())
    }

    fn find(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.csid == csid)
    }

    /// Parses the header bytes gathered so far.
    fn parse_header(&self) -> Result<Parse, ChunkError> {
        let h = self.header.get(..self.header_len).unwrap_or(&[]);
        let Some(&first) = h.first() else {
            return Ok(Parse::Need(1));
        };
        let fmt = first >> 6;
        // Basic header (spec 5.3.1.1): 6-bit id, or 0/1 escaping to 1 or 2
        // more bytes holding id - 64 (little-endian for the 3-byte form).
        let (basic, csid) = match first & 0x3F {
            0 => match h {
                [_, b1, ..] => (2, 64 + u32::from(*b1)),
                _ => return Ok(Parse::Need(2)),
            },
            1 => match h {
                [_, b1, b2, ..] => (3, 64 + u32::from(*b1) + 256 * u32::from(*b2)),
                _ => return Ok(Parse::Need(3)),
            },
            id => (1, u32::from(id)),
        };
        let message_header = match fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        let fixed = basic + message_header;
        let Some(m) = h.get(basic..fixed) else {
            return Ok(Parse::Need(fixed));
        };

        if fmt == 3 {
            return self.continuation_header(h, basic, csid);
        }

        let (timestamp24, length, type_id, stream_id) = match *m {
            [t0, t1, t2, l0, l1, l2, ty, s0, s1, s2, s3] => (
                u32::from_be_bytes([0, t0, t1, t2]),
                u32::from_be_bytes([0, l0, l1, l2]),
                ty,
                u32::from_le_bytes([s0, s1, s2, s3]),
            ),
            [t0, t1, t2, l0, l1, l2, ty] => (
                u32::from_be_bytes([0, t0, t1, t2]),
                u32::from_be_bytes([0, l0, l1, l2]),
                ty,
                0,
            ),
            [t0, t1, t2] => (u32::from_be_bytes([0, t0, t1, t2]), 0, 0, 0),
            _ => return Ok(Parse::Need(fixed)),
        };
        let (timestamp, extended) = if timestamp24 == EXTENDED_TIMESTAMP {
            match h.get(fixed..fixed + 4) {
                Some(&[a, b, c, d]) => (u32::from_be_bytes([a, b, c, d]), true),
                _ => return Ok(Parse::Need(fixed + 4)),
            }
        } else {
            (timestamp24, false)
        };
        Ok(Parse::Done {
            header: Header {
                fmt,
                csid,
                timestamp,
                extended,
                length,
                type_id,
                stream_id,
            },
            refeed: None,
        })
    }

    /// A type 3 header (no message header of its own): the chunk continues
    /// the chunk stream's last header.
    fn continuation_header(&self, h: &[u8], basic: usize, csid: u32) -> Result<Parse, ChunkError> {
        let fmt = 3;
        let index = self.find(csid).ok_or(ChunkError::NoPreviousHeader { csid, fmt })?;
        let stream = &self.streams[index];
        let header = Header {
            fmt,
            csid,
            timestamp: stream.delta,
            extended: false,
            length: stream.length,
            type_id: stream.type_id,
            stream_id: stream.stream_id,
        };
        let Some(extended) = stream.extended else {
            return Ok(Parse::Done { header, refeed: None });
        };
        // Spec 5.3.1.3: a type 3 chunk repeats the extended timestamp of
        // the header it continues. ffmpeg, librtmp and FMS write it;
        // some encoders do not. Peek: the 4 bytes count as the field
        // when they equal it (or the message's absolute timestamp, which
        // a few encoders write instead), else they are payload.
        let Some(&[a, b, c, d]) = h.get(basic..basic + 4) else {
            return Ok(Parse::Need(basic + 4));
        };
        let field = u32::from_be_bytes([a, b, c, d]);
        let absolute = if stream.in_progress {
            stream.timestamp
        } else {
            stream.timestamp.wrapping_add(stream.delta)
        };
        let refeed = (field != extended && field != absolute).then_some([a, b, c, d]);
        Ok(Parse::Done {
            header: Header {
                extended: refeed.is_none(),
                ..header
            },
            refeed,
        })
    }

    /// Applies a complete header: starts a message or continues one.
    fn start_chunk(&mut self, header: Header, out: &mut Vec<Message>) -> Result<(), ChunkError> {
        let index = match (self.find(header.csid), header.fmt) {
            (Some(index), _) => index,
            (None, 0) => {
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams(self.limits.max_chunk_streams));
                }
                self.streams.push(ChunkStream {
                    csid: header.csid,
                    timestamp: 0,
                    delta: 0,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    extended: None,
                    in_progress: false,
                    buf: BytesMut::new(),
                });
                self.streams.len() - 1
            }
            (None, fmt) => return Err(ChunkError::NoPreviousHeader { csid: header.csid, fmt }),
        };
        let chunk_size = self.chunk_size;
        let stream = &mut self.streams[index];
        if stream.in_progress {
            if header.fmt != 3 {
                return Err(ChunkError::HeaderMidMessage {
                    csid: stream.csid,
                    received: stream.buf.len() as u32,
                    length: stream.length,
                });
            }
            let left = stream.length.saturating_sub(stream.buf.len() as u32);
            self.payload = Some((index, left.min(chunk_size)));
            return Ok(());
        }
        match header.fmt {
            0 => {
                stream.timestamp = header.timestamp;
                stream.delta = header.timestamp;
                stream.length = header.length;
                stream.type_id = header.type_id;
                stream.stream_id = header.stream_id;
                stream.extended = header.extended.then_some(header.timestamp);
            }
            1 | 2 => {
                stream.delta = header.timestamp;
                stream.timestamp = stream.timestamp.wrapping_add(header.timestamp);
                if header.fmt == 1 {
                    stream.length = header.length;
                    stream.type_id = header.type_id;
                }
                stream.extended = header.extended.then_some(header.timestamp);
            }
            _ => stream.timestamp = stream.timestamp.wrapping_add(stream.delta),
        }
        self.begin_message(index, out)
    }

    fn begin_message(&mut self, index: usize, out: &mut Vec<Message>) -> Result<(), ChunkError> {
        let limits = self.limits;
        let chunk_size = self.chunk_size;
        let stream = &mut self.streams[index];
        if stream.length > limits.max_message_bytes {
            return Err(ChunkError::MessageTooLarge {
                length: stream.length,
                max: limits.max_message_bytes,
            });
        }
        if stream.length == 0 {
            let message = Message {
                csid: stream.csid,
                type_id: stream.type_id,
                stream_id: stream.stream_id,
                timestamp_ms: stream.timestamp,
                payload: Bytes::new(),
            };
            return self.dispatch(message, out);
        }
        if self.partial_messages >= limits.max_partial_messages {
            return Err(ChunkError::TooManyPartialMessages(limits.max_partial_messages));
        }
        self.partial_messages += 1;
        stream.in_progress = true;
        // A buffer of its own per message (see `end_of_chunk`).
        stream.buf = BytesMut::with_capacity((stream.length as usize).min(INITIAL_RESERVE_BYTES));
        self.payload = Some((index, stream.length.min(chunk_size)));
        Ok(())
    }

    fn append(&mut self, index: usize, bytes: &[u8]) -> Result<(), ChunkError> {
        self.buffered_bytes += bytes.len();
        if self.buffered_bytes > self.limits.max_buffered_bytes {
            return Err(ChunkError::TooMuchBuffered(self.limits.max_buffered_bytes));
        }
        let stream = &mut self.streams[index];
        let needed = stream.buf.len() + bytes.len();
        if needed > stream.buf.capacity() {
            // Double what has arrived, but never past the announced length:
            // a 100 KB keyframe gets 64 KB, then exactly 100 KB, not the
            // 128 KB a Vec's growth would give it.
            let capacity = (2 * stream.buf.capacity()).clamp(needed, (stream.length as usize).max(needed));
            let mut grown = BytesMut::with_capacity(capacity);
            grown.extend_from_slice(&stream.buf);
            stream.buf = grown;
        }
        stream.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn end_of_chunk(&mut self, index: usize, out: &mut Vec<Message>) -> Result<(), ChunkError> {
        let stream = &mut self.streams[index];
        if stream.buf.len() < stream.length as usize {
            return Ok(());
        }
        stream.in_progress = false;
        self.partial_messages = self.partial_messages.saturating_sub(1);
        self.buffered_bytes = self.buffered_bytes.saturating_sub(stream.buf.len());
        let message = Message {
            csid: stream.csid,
            type_id: stream.type_id,
            stream_id: stream.stream_id,
            timestamp_ms: stream.timestamp,
            // Hands the bytes out without copying, and the allocation with
            // them: a buffer shared with the next messages would stay alive
            // (whole, ~100 KB after a keyframe) as long as any of them.
            payload: std::mem::take(&mut stream.buf).freeze(),
        };
        self.dispatch(message, out)
    }

    /// Applies Set Chunk Size and Abort; passes every other message on.
    fn dispatch(&mut self, message: Message, out: &mut Vec<Message>) -> Result<(), ChunkError> {
        match message.type_id {
            message_type::SET_CHUNK_SIZE => {
                let size = control_value(&message)?;
                // Spec 5.4.1: the top bit must be zero; 0 would never finish
                // a chunk.
                if size == 0 || size > 0x7FFF_FFFF {
                    return Err(ChunkError::InvalidChunkSize(size));
                }
                if size > self.limits.max_chunk_size {
                    return Err(ChunkError::ChunkSizeTooLarge {
                        size,
                        max: self.limits.max_chunk_size,
                    });
                }
                self.chunk_size = size;
            }
            message_type::ABORT => {
                let csid = control_value(&message)?;
                if let Some(index) = self.find(csid) {
                    let stream = &mut self.streams[index];
                    if stream.in_progress {
                        self.buffered_bytes = self.buffered_bytes.saturating_sub(stream.buf.len());
                        self.partial_messages = self.partial_messages.saturating_sub(1);
                        stream.buf.clear();
                        stream.in_progress = false;
                    }
                }
            }
            _ => out.push(message),
        }
        Ok(())
    }
}

/// The 4-byte big-endian body of Set Chunk Size and Abort.
fn control_value(message: &Message) -> Result<u32, ChunkError> {
    match message.payload.get(..4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(ChunkError::ShortControlMessage {
            type_id: message.type_id,
            length: message.payload.len(),
        }),
    }
}

/// Appends `payload` as one message: a type 0 header, then type 3 headers
/// for each further `chunk_size` bytes. A timestamp at or above 0xFFFFFF
/// goes in the extended field, repeated on every type 3 chunk (spec 5.3.1.3,
/// as ffmpeg and librtmp expect). `csid` is clamped to 2..=65599.
pub fn encode_message(
    out: &mut Vec<u8>,
    chunk_size: u32,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp_ms: u32,
    payload: &[u8],
) {
    let chunk_size = (chunk_size as usize).max(1);
    let csid = csid.clamp(MIN_CSID, MAX_CSID);
    let extended = timestamp_ms >= EXTENDED_TIMESTAMP;
    // The length field is 24 bits; longer payloads are the caller's bug and
    // are cut rather than written with a wrong length.
    let payload = payload.get(..0xFF_FFFF).unwrap_or(payload);
    let length = payload.len() as u32;
    let mut chunks = payload.chunks(chunk_size);
    write_basic_header(out, 0, csid);
    out.extend_from_slice(&timestamp_ms.min(EXTENDED_TIMESTAMP).to_be_bytes()[1..]);
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp_ms.to_be_bytes());
    }
    if let Some(first) = chunks.next() {
        out.extend_from_slice(first);
    }
    for chunk in chunks {
        write_basic_header(out, 3, csid);
        if extended {
            out.extend_from_slice(&timestamp_ms.to_be_bytes());
        }
        out.extend_from_slice(chunk);
    }
}

fn write_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        // The match arms bound csid, so the casts are exact.
        2..=63 => out.push(fmt | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let [lo, hi] = ((csid - 64) as u16).to_le_bytes();
            out.extend_from_slice(&[fmt | 1, lo, hi]);
        }
    }
}

#[cfg(test)]
mod tests;
