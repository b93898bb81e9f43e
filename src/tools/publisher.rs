//! An RTMP publishing client over a tokio `TcpStream`: the one used by the
//! `bench-push` load generator and by the integration tests.
//!
//! It speaks what encoders speak: the simple handshake (spec 5.2), Set Chunk
//! Size 4096, `connect`, `releaseStream`/`FCPublish`/`createStream`,
//! `publish`, then `@setDataFrame onMetaData` and audio/video messages on
//! ffmpeg's chunk stream ids, and `FCUnpublish`/`deleteStream` at the end.
//! Replies are read with the server's own chunk decoder and AMF0 reader;
//! pings are answered.
//!
//! Sending is split in two so callers control batching: `push_*` appends
//! encoded messages to a buffer, [`Publisher::flush`] writes it with one
//! `write_all`. [`Publisher::send_media_like_encoder`] instead writes one
//! message the way ffmpeg does ([`super::wire`]): compressed headers and a
//! write per chunk.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

use super::wire::EncoderWire;
use crate::amf0::{self, Value, write};
use crate::rtmp::chunk::{self, ChunkDecoder, ChunkLimits, Message, message_type};

/// The chunk size we announce: what OBS and ffmpeg use.
pub const CHUNK_SIZE_BYTES: u32 = 4096;

/// RTMP handshake: C1/S1/S2 size (spec 5.2.3).
const HANDSHAKE_BYTES: usize = 1536;

/// Chunk stream ids, as ffmpeg uses them.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_AUDIO: u32 = 4;
const CSID_DATA: u32 = 5;
const CSID_VIDEO: u32 = 6;

/// Transaction ids of the setup commands, in the order they are sent.
const TX_CONNECT: f64 = 1.0;
const TX_RELEASE_STREAM: f64 = 2.0;
const TX_FC_PUBLISH: f64 = 3.0;
const TX_CREATE_STREAM: f64 = 4.0;
const TX_PUBLISH: f64 = 5.0;

/// Why a publisher could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Socket error.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// The server refused connect or publish; `code` is the status code it
    /// sent, `text` its code and description.
    #[error("refused: {text}")]
    Refused { code: Option<String>, text: String },
    /// The server's chunk stream or AMF0 was malformed.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Client side of the simple RTMP handshake (spec 5.2): C0 = version 3, C1 =
/// time, zero and pseudo-random bytes; reads S0, S1 and S2 and echoes S1 as
/// C2. Whatever the server sends after S2 stays unread on the socket.
pub async fn handshake(socket: &mut TcpStream) -> Result<(), Error> {
    let mut c0c1 = vec![0u8; 1 + HANDSHAKE_BYTES];
    c0c1[0] = 3;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for b in c0c1.iter_mut().skip(9) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    socket.write_all(&c0c1).await?;
    let mut s0s1s2 = vec![0u8; 1 + 2 * HANDSHAKE_BYTES];
    socket.read_exact(&mut s0s1s2).await.map_err(closed_on_eof)?;
    // C2 echoes S1.
    socket.write_all(&s0s1s2[1..1 + HANDSHAKE_BYTES]).await?;
    Ok(())
}

/// One connection that publishes (or asks to publish) a stream.
pub struct Publisher {
    socket: TcpStream,
    decoder: ChunkDecoder,
    /// Messages read but not yet looked at.
    messages: Vec<Message>,
    /// Encoded bytes not yet written.
    out: Vec<u8>,
    scratch: Vec<u8>,
    read_buf: Vec<u8>,
    /// The message stream createStream gave us.
    stream_id: u32,
    /// The server closed its side (EOF or a read error).
    peer_closed: bool,
    /// Header state for [`Publisher::send_media_like_encoder`].
    wire: EncoderWire,
    /// End offsets in `out` of the pieces written separately.
    pieces: Vec<usize>,
}

impl Publisher {
    /// TCP connect, handshake, Set Chunk Size, then `connect` to `app` with
    /// `tc_url`; returns once the server accepted it.
    pub async fn connect(addr: impl ToSocketAddrs, app: &str, tc_url: &str) -> Result<Self, Error> {
        let mut socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        handshake(&mut socket).await?;
        let mut publisher = Self {
            socket,
            decoder: ChunkDecoder::new(ChunkLimits::default()),
            messages: Vec::new(),
            out: Vec::with_capacity(64 * 1024),
            scratch: Vec::with_capacity(512),
            read_buf: vec![0u8; 16 * 1024],
            stream_id: 1,
            peer_closed: false,
            wire: EncoderWire::new(CHUNK_SIZE_BYTES),
            pieces: Vec::new(),
        };
        chunk::encode_message(
            &mut publisher.out,
            chunk::DEFAULT_CHUNK_SIZE,
            CSID_CONTROL,
            message_type::SET_CHUNK_SIZE,
            0,
            0,
            &CHUNK_SIZE_BYTES.to_be_bytes(),
        );
        publisher.command(0, |b| {
            write::string(b, "connect");
            write::number(b, TX_CONNECT);
            write::object_start(b);
            write::name(b, "app");
            write::string(b, app);
            write::name(b, "type");
            write::string(b, "nonprivate");
            write::name(b, "flashVer");
            write::string(b, "FMLE/3.0 (compatible; sealcast bench-push)");
            write::name(b, "tcUrl");
            write::string(b, tc_url);
            write::object_end(b);
        });
        publisher.flush().await?;
        publisher.await_reply(TX_CONNECT).await?;
        Ok(publisher)
    }

    /// `releaseStream`, `FCPublish`, `createStream`, then `publish` with
    /// `stream_key` (which may carry a `?query`); returns once the server
    /// answered `NetStream.Publish.Start`. A refusal is [`Error::Refused`]
    /// with the status code; the server usually closes the connection after
    /// it ([`Publisher::wait_closed`]).
    pub async fn publish(&mut self, stream_key: &str) -> Result<(), Error> {
        for (name, tx) in [("releaseStream", TX_RELEASE_STREAM), ("FCPublish", TX_FC_PUBLISH)] {
            self.command(0, |b| {
                write::string(b, name);
                write::number(b, tx);
                write::null(b);
                write::string(b, stream_key);
            });
        }
        self.command(0, |b| {
            write::string(b, "createStream");
            write::number(b, TX_CREATE_STREAM);
            write::null(b);
        });
        self.flush().await?;
        let stream_id = self.await_reply(TX_CREATE_STREAM).await?.unwrap_or(1.0) as u32;
        self.stream_id = stream_id;
        self.command(stream_id, |b| {
            write::string(b, "publish");
            write::number(b, TX_PUBLISH);
            write::null(b);
            write::string(b, stream_key);
            write::string(b, "live");
        });
        self.flush().await?;
        self.await_publish_start().await
    }

    /// The message stream id the server gave for the publish.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Appends `@setDataFrame` with `on_metadata`, the body of an FLV script
    /// tag (`"onMetaData"` and its properties, AMF0).
    pub fn push_metadata(&mut self, on_metadata: &[u8]) {
        self.scratch.clear();
        write::string(&mut self.scratch, "@setDataFrame");
        self.scratch.extend_from_slice(on_metadata);
        chunk::encode_message(
            &mut self.out,
            CHUNK_SIZE_BYTES,
            CSID_DATA,
            message_type::DATA_AMF0,
            self.stream_id,
            0,
            &self.scratch,
        );
    }

    /// Appends an audio message (an FLV audio tag body).
    pub fn push_audio(&mut self, timestamp_ms: u32, body: &[u8]) {
        self.push_media(message_type::AUDIO, timestamp_ms, body);
    }

    /// Appends a video message (an FLV video tag body).
    pub fn push_video(&mut self, timestamp_ms: u32, body: &[u8]) {
        self.push_media(message_type::VIDEO, timestamp_ms, body);
    }

    /// Appends an audio or video message by RTMP type id (8 or 9), on
    /// ffmpeg's chunk stream for it.
    pub fn push_media(&mut self, type_id: u8, timestamp_ms: u32, body: &[u8]) {
        let csid = if type_id == message_type::VIDEO {
            CSID_VIDEO
        } else {
            CSID_AUDIO
        };
        chunk::encode_message(
            &mut self.out,
            CHUNK_SIZE_BYTES,
            csid,
            type_id,
            self.stream_id,
            timestamp_ms,
            body,
        );
    }

    /// Bytes appended and not yet written.
    pub fn buffered_bytes(&self) -> usize {
        self.out.len()
    }

    /// Writes what was appended with one `write_all`; returns how many bytes.
    pub async fn flush(&mut self) -> Result<usize, Error> {
        let n = self.out.len();
        if n > 0 {
            self.socket.write_all(&self.out).await?;
            self.out.clear();
        }
        self.pieces.clear();
        Ok(n)
    }

    /// Turns Nagle's algorithm off (`true`, the default after connect, as
    /// OBS/librtmp does) or on (ffmpeg's default).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket.set_nodelay(nodelay)
    }

    /// Writes one audio or video message now as ffmpeg does: type 1/2/3
    /// headers after the first, and one write for the header, each chunk
    /// body and each continuation header ([`super::wire`]). Anything
    /// already buffered (a pong) goes out first. Returns the bytes written.
    pub async fn send_media_like_encoder(
        &mut self,
        type_id: u8,
        timestamp_ms: u32,
        body: &[u8],
    ) -> Result<usize, Error> {
        let csid = if type_id == message_type::VIDEO {
            CSID_VIDEO
        } else {
            CSID_AUDIO
        };
        self.pieces.clear();
        if !self.out.is_empty() {
            self.pieces.push(self.out.len());
        }
        // The chunk stream ids are constants below 64.
        self.wire.encode(
            &mut self.out,
            &mut self.pieces,
            csid as u8,
            type_id,
            self.stream_id,
            timestamp_ms,
            body,
        );
        let mut start = 0;
        for &end in &self.pieces {
            if let Some(piece) = self.out.get(start..end) {
                self.socket.write_all(piece).await?;
            }
            start = end;
        }
        let n = self.out.len();
        self.out.clear();
        self.pieces.clear();
        Ok(n)
    }

    /// `@setDataFrame` now.
    pub async fn send_metadata(&mut self, on_metadata: &[u8]) -> Result<(), Error> {
        self.push_metadata(on_metadata);
        self.flush().await.map(drop)
    }

    /// An audio message now.
    pub async fn send_audio(&mut self, timestamp_ms: u32, body: &[u8]) -> Result<(), Error> {
        self.push_audio(timestamp_ms, body);
        self.flush().await.map(drop)
    }

    /// A video message now.
    pub async fn send_video(&mut self, timestamp_ms: u32, body: &[u8]) -> Result<(), Error> {
        self.push_video(timestamp_ms, body);
        self.flush().await.map(drop)
    }

    /// Resolves when the socket has something to read (or is closed): for
    /// `select!` beside a send loop, followed by [`Publisher::read_available`].
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads what the server has sent so far without waiting, and queues a
    /// pong for every ping (written by the next [`Publisher::flush`]).
    /// [`Error::Closed`] once the server closed the connection.
    pub fn read_available(&mut self) -> Result<(), Error> {
        while !self.peer_closed {
            match self.socket.try_read(&mut self.read_buf) {
                Ok(0) => self.peer_closed = true,
                Ok(n) => self.decode(n)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.peer_closed = true;
                    return Err(e.into());
                }
            }
        }
        self.answer_pings();
        if self.peer_closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Waits for the next bytes from the server and reads them, queueing
    /// pongs as [`Publisher::read_available`] does.
    pub async fn read_replies(&mut self) -> Result<(), Error> {
        if self.peer_closed {
            return Err(Error::Closed);
        }
        let n = match self.socket.read(&mut self.read_buf).await {
            Ok(0) => {
                self.peer_closed = true;
                return Err(Error::Closed);
            }
            Ok(n) => n,
            Err(e) => {
                self.peer_closed = true;
                return Err(e.into());
            }
        };
        self.decode(n)?;
        self.answer_pings();
        Ok(())
    }

    /// Ends the publish as encoders do: `FCUnpublish` and `deleteStream`.
    pub async fn unpublish(&mut self, stream_key: &str) -> Result<(), Error> {
        self.command(self.stream_id, |b| {
            write::string(b, "FCUnpublish");
            write::number(b, 0.0);
            write::null(b);
            write::string(b, stream_key);
        });
        let stream_id = self.stream_id;
        self.command(0, |b| {
            write::string(b, "deleteStream");
            write::number(b, 0.0);
            write::null(b);
            write::number(b, f64::from(stream_id));
        });
        self.flush().await.map(drop)
    }

    /// Half-closes the connection after writing what is buffered, without
    /// waiting for the server: a publisher that just stops.
    pub async fn shutdown_write(&mut self) {
        let _ = self.flush().await;
        let _ = self.socket.shutdown().await;
    }

    /// Reads (and drops) whatever comes until the server closes the
    /// connection.
    pub async fn wait_closed(&mut self) {
        while !self.peer_closed {
            match self.socket.read(&mut self.read_buf).await {
                Ok(0) | Err(_) => self.peer_closed = true,
                Ok(_) => {}
            }
        }
    }

    /// Writes what is buffered, half-closes, and reads until the server
    /// closes too, so it reads every byte sent before it sees EOF (no RST).
    pub async fn close(mut self) -> Result<(), Error> {
        let flushed = self.flush().await;
        // The server may already have closed (after deleteStream); a failed
        // shutdown then changes nothing.
        let _ = self.socket.shutdown().await;
        self.wait_closed().await;
        flushed.map(drop)
    }

    /// Appends a command on chunk stream 3 and message stream `stream_id`,
    /// its body built by `body`.
    fn command(&mut self, stream_id: u32, body: impl FnOnce(&mut Vec<u8>)) {
        self.scratch.clear();
        body(&mut self.scratch);
        chunk::encode_message(
            &mut self.out,
            CHUNK_SIZE_BYTES,
            CSID_COMMAND,
            message_type::COMMAND_AMF0,
            stream_id,
            0,
            &self.scratch,
        );
    }

    fn decode(&mut self, n: usize) -> Result<(), Error> {
        let input = self.read_buf.get(..n).unwrap_or_default();
        self.decoder
            .handle_input(input, &mut self.messages)
            .map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Reads until `_result` (or `_error`) for transaction `tx`; returns its
    /// first numeric argument (createStream's stream id).
    async fn await_reply(&mut self, tx: f64) -> Result<Option<f64>, Error> {
        loop {
            self.read_replies().await?;
            self.flush().await?;
            for message in std::mem::take(&mut self.messages) {
                if message.type_id != message_type::COMMAND_AMF0 {
                    continue;
                }
                let command = amf0::parse_command(&message.payload).map_err(|e| Error::Protocol(e.to_string()))?;
                if command.transaction_id != tx {
                    continue;
                }
                match command.name {
                    b"_result" => {
                        let mut args = command.args;
                        return Ok(args.next_value().and_then(|v| v.ok()).and_then(|v| v.as_number()));
                    }
                    b"_error" => return Err(refused(command.args)),
                    _ => {}
                }
            }
        }
    }

    /// Reads until `onStatus` says `NetStream.Publish.Start` (`Ok`) or
    /// reports an error-level status (`Refused`), or `_error` comes.
    async fn await_publish_start(&mut self) -> Result<(), Error> {
        loop {
            self.read_replies().await?;
            self.flush().await?;
            for message in std::mem::take(&mut self.messages) {
                if message.type_id != message_type::COMMAND_AMF0 {
                    continue;
                }
                let command = amf0::parse_command(&message.payload).map_err(|e| Error::Protocol(e.to_string()))?;
                match command.name {
                    b"onStatus" => {
                        let status = Status::of(command.args);
                        if status.code.as_deref() == Some("NetStream.Publish.Start") {
                            return Ok(());
                        }
                        if status.level.as_deref() == Some("error") {
                            return Err(refused(command.args));
                        }
                    }
                    b"_error" => return Err(refused(command.args)),
                    _ => {}
                }
            }
        }
    }

    /// Pong for every ping request read so far (user control event 6, spec
    /// 7.1.7), appended to the send buffer; every other message is dropped.
    fn answer_pings(&mut self) {
        for message in std::mem::take(&mut self.messages) {
            if message.type_id == message_type::USER_CONTROL {
                if let Some(&[0, 6, a, b, c, d]) = message.payload.get(..6) {
                    chunk::encode_message(
                        &mut self.out,
                        CHUNK_SIZE_BYTES,
                        CSID_CONTROL,
                        message_type::USER_CONTROL,
                        0,
                        0,
                        &[0, 7, a, b, c, d],
                    );
                }
            } else {
                self.messages.push(message);
            }
        }
    }
}

/// The level, code and description of the first status object among a
/// command's arguments.
#[derive(Debug, Default)]
struct Status {
    level: Option<String>,
    code: Option<String>,
    description: Option<String>,
}

impl Status {
    fn of(mut args: amf0::Reader<'_>) -> Self {
        while let Some(Ok(value)) = args.next_value() {
            if let Some(object) = value.as_object() {
                let text = |name: &str| match object.get(name) {
                    Some(Value::String(s)) => Some(String::from_utf8_lossy(s).into_owned()),
                    _ => None,
                };
                return Self {
                    level: text("level"),
                    code: text("code"),
                    description: text("description"),
                };
            }
        }
        Self::default()
    }
}

/// [`Error::Refused`] from a status object argument: its code, and its code
/// and description joined for the message.
fn refused(args: amf0::Reader<'_>) -> Error {
    let status = Status::of(args);
    let text = [status.code.as_deref(), status.description.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    Error::Refused {
        code: status.code,
        text,
    }
}

/// An early end of stream is the server closing the connection.
fn closed_on_eof(error: io::Error) -> Error {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        Error::Closed
    } else {
        Error::Io(error)
    }
}
