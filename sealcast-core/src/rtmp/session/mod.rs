//! The sans-IO server side of one RTMP connection, after the handshake:
//! chunk stream, protocol control, commands and media (RTMP 1.0
//! specification sections 5 to 7).
//!
//! sealcast's rules: accept any connect, let the driver decide each publish
//! ([`Event::PublishRequested`], answered by [`Session::accept_publish`] or
//! [`Session::refuse_publish`]), allow one publish per connection, refuse
//! play, answer the commands encoders send around publishing the way
//! nginx-rtmp and SRS do. Bytes come in through [`Session::handle_input`];
//! bytes for the peer and events for the driver are appended to buffers the
//! caller owns and reuses. No peer byte reaches rml_rtmp or rml_amf0: chunks are read by
//! [`super::chunk`], AMF0 by [`crate::amf0`], both bounded and iterative.
//! Our own replies are written by the same modules (a few fixed messages,
//! serialized straight into the caller's buffer, in a fixed property order).

use std::collections::VecDeque;

use bytes::Bytes;
use tracing::{debug, info, trace, warn};

use super::chunk::{self, ChunkDecoder, ChunkLimits, Message, message_type};
use super::{Error, Event, Flow, MediaMessage, PublishRefused, PublishRequest, SessionLimits, printable};
use crate::amf0::{self, Command, write};
use crate::flv::Metadata;

/// Our outbound chunk size. 4096 is what OBS, ffmpeg and nginx-rtmp use; the
/// RTMP default of 128 would split every command into many chunks.
pub const CHUNK_SIZE_BYTES: u32 = 4096;

/// Window acknowledgement size and peer bandwidth we announce (nginx-rtmp's
/// and rml_rtmp's value).
const WINDOW_ACK_BYTES: u32 = 5_000_000;

/// Until a publish is authorized, messages are commands of a few hundred
/// bytes: an unauthenticated peer may make the decoder hold this much.
const PRE_PUBLISH_MAX_MESSAGE_BYTES: u32 = 64 * 1024;

/// createStream calls allowed per connection (encoders make one).
const MAX_CREATED_STREAMS: u32 = 16;

/// Chunk stream ids of our messages: protocol control on 2 (spec 5.4),
/// commands on 3 (as nginx-rtmp and ffmpeg do).
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;

/// User control event types (spec 7.1.7).
const EVENT_STREAM_BEGIN: u16 = 0;
const EVENT_PING_REQUEST: u16 = 6;
const EVENT_PING_RESPONSE: u16 = 7;

/// FLV tag header size inside aggregate messages (FLV spec v10.1 E.4.1).
const FLV_TAG_HEADER_BYTES: usize = 11;

/// The accepted publish.
#[derive(Debug)]
struct Publish {
    /// "app/name" as the driver named it, for log lines (never the key).
    stream: String,
    /// The message stream the publish runs on; media elsewhere is ignored.
    stream_id: u32,
}

/// One connection's RTMP state after the handshake. Public so a fuzz target
/// can drive it exactly as the server does.
pub struct Session {
    decoder: ChunkDecoder,
    /// Limits once a publish is authorized.
    publish_limits: ChunkLimits,
    /// Messages decoded from one input, reused.
    decoded: Vec<Message>,
    /// Decoded messages not handled yet: those after a publish request wait
    /// here for its answer.
    queue: VecDeque<Message>,
    /// A chunk stream error met after the queued messages: reported once
    /// they are handled (they were sent before it).
    deferred_error: Option<Error>,
    /// One outgoing message body, reused.
    scratch: Vec<u8>,
    out_chunk_size: u32,
    /// The message stream of a publish request awaiting its answer.
    awaiting_answer: Option<u32>,
    /// The app from the accepted connect.
    app: Option<String>,
    /// Message stream ids handed out by createStream: 1..=streams_created.
    streams_created: u32,
    publish: Option<Publish>,
    /// The peer's Window Acknowledgement Size; 0 until it sends one.
    peer_window_bytes: u32,
    bytes_received: u64,
    acknowledged_at: u64,
    /// Ignored malformed data, aggregates and media; logged sparsely.
    ignored: u64,
}

impl Session {
    /// A session that accepts what `limits` allow once publishing, and
    /// much less before (commands only).
    pub fn new(limits: &SessionLimits) -> Self {
        let publish_limits = ChunkLimits {
            max_chunk_size: limits.max_chunk_size_bytes,
            max_message_bytes: limits.max_message_bytes,
            // Room for one large video frame in progress next to another
            // whole one (interleaving encoders) and small audio.
            max_buffered_bytes: (limits.max_message_bytes as usize).saturating_mul(2),
            ..ChunkLimits::default()
        };
        let pre_publish = ChunkLimits {
            max_message_bytes: publish_limits.max_message_bytes.min(PRE_PUBLISH_MAX_MESSAGE_BYTES),
            max_buffered_bytes: 2 * PRE_PUBLISH_MAX_MESSAGE_BYTES as usize,
            ..publish_limits
        };
        Self {
            decoder: ChunkDecoder::new(pre_publish),
            publish_limits,
            decoded: Vec::with_capacity(16),
            queue: VecDeque::with_capacity(16),
            deferred_error: None,
            scratch: Vec::with_capacity(512),
            out_chunk_size: chunk::DEFAULT_CHUNK_SIZE,
            awaiting_answer: None,
            app: None,
            streams_created: 0,
            publish: None,
            peer_window_bytes: 0,
            bytes_received: 0,
            acknowledged_at: 0,
            ignored: 0,
        }
    }

    /// Feeds bytes received from the peer. Bytes for the peer are appended
    /// to `out`, events for the driver to `events`, both in order.
    ///
    /// On `Err` the connection must close, but `out` and `events` may still
    /// hold what was produced before the error, to be handled first. After
    /// an [`Event::PublishRequested`], later messages wait for the answer.
    pub fn handle_input(&mut self, bytes: &[u8], out: &mut Vec<u8>, events: &mut Vec<Event>) -> Result<Flow, Error> {
        self.bytes_received += bytes.len() as u64;
        let decoded = self.decoder.handle_input(bytes, &mut self.decoded);
        self.queue.extend(self.decoded.drain(..));
        // Messages completed before a chunk error still count: they were
        // sent before it.
        if let Err(error) = decoded {
            self.deferred_error.get_or_insert(error.into());
        }
        self.process(out, events)
    }

    /// Answers the pending [`Event::PublishRequested`]: the publish starts,
    /// named `stream` ("app/name") in log lines, and the messages that
    /// waited for the answer are handled.
    pub fn accept_publish(&mut self, stream: &str, out: &mut Vec<u8>, events: &mut Vec<Event>) -> Result<Flow, Error> {
        let Some(stream_id) = self.awaiting_answer.take() else {
            return Err(Error::Protocol("publish accepted without a request"));
        };
        info!(%stream, "publish started");
        self.decoder.set_limits(self.publish_limits);
        let mut begin = [0; 6];
        begin[..2].copy_from_slice(&EVENT_STREAM_BEGIN.to_be_bytes());
        begin[2..].copy_from_slice(&stream_id.to_be_bytes());
        self.control(out, message_type::USER_CONTROL, &begin);
        self.status(out, stream_id, "status", "NetStream.Publish.Start", "publish started");
        self.publish = Some(Publish {
            stream: stream.to_owned(),
            stream_id,
        });
        self.process(out, events)
    }

    /// Answers the pending [`Event::PublishRequested`] with a refusal: an
    /// error status for the encoder, then [`Flow::Close`].
    pub fn refuse_publish(&mut self, refused: PublishRefused, out: &mut Vec<u8>) -> Flow {
        let Some(stream_id) = self.awaiting_answer.take() else {
            return Flow::Close;
        };
        // No log line here: the driver writes it, throttled per address (a
        // wrong-key flood must not flood the log).
        let code = match refused {
            PublishRefused::AlreadyLive => "NetStream.Publish.BadName",
            PublishRefused::BadKey | PublishRefused::ShuttingDown | PublishRefused::Unavailable => {
                "NetStream.Publish.Denied"
            }
        };
        self.status(out, stream_id, "error", code, &refused.to_string());
        Flow::Close
    }

    /// Handles queued messages until the queue is empty, a publish request
    /// awaits its answer, or the connection must close.
    fn process(&mut self, out: &mut Vec<u8>, events: &mut Vec<Event>) -> Result<Flow, Error> {
        while self.awaiting_answer.is_none() {
            let Some(message) = self.queue.pop_front() else {
                break;
            };
            if self.handle_message(message, out, events)? == Flow::Close {
                return Ok(Flow::Close);
            }
        }
        if self.awaiting_answer.is_some() {
            return Ok(Flow::Continue);
        }
        if let Some(error) = self.deferred_error.take() {
            return Err(error);
        }
        self.acknowledge(out);
        Ok(Flow::Continue)
    }

    /// Whether `stream_id` is the message stream of the accepted publish.
    fn is_publish_stream(&self, stream_id: u32) -> bool {
        self.publish.as_ref().is_some_and(|p| p.stream_id == stream_id)
    }

    /// True while a publish is running (not after it finished).
    pub fn is_publishing(&self) -> bool {
        self.publish.is_some()
    }

    /// True while a publish request waits for its answer.
    pub fn is_awaiting_answer(&self) -> bool {
        self.awaiting_answer.is_some()
    }

    fn handle_message(&mut self, message: Message, out: &mut Vec<u8>, events: &mut Vec<Event>) -> FlowResult {
        match message.type_id {
            message_type::COMMAND_AMF0 => self.on_command(&message.payload, message.stream_id, out, events),
            // AMF3 command and data: a format byte (0 for AMF0 content, all
            // that encoders send), then AMF0 (as nginx-rtmp reads them).
            message_type::COMMAND_AMF3 => {
                self.on_command(message.payload.get(1..).unwrap_or(&[]), message.stream_id, out, events)
            }
            message_type::DATA_AMF0 => {
                self.on_data(&message.payload, message.stream_id, events);
                Ok(Flow::Continue)
            }
            message_type::DATA_AMF3 => {
                self.on_data(message.payload.get(1..).unwrap_or(&[]), message.stream_id, events);
                Ok(Flow::Continue)
            }
            message_type::AUDIO | message_type::VIDEO => {
                self.on_media(
                    message.type_id,
                    message.stream_id,
                    message.timestamp_ms,
                    message.payload,
                    events,
                );
                Ok(Flow::Continue)
            }
            message_type::AGGREGATE => {
                self.on_aggregate(&message, events);
                Ok(Flow::Continue)
            }
            message_type::USER_CONTROL => {
                self.on_user_control(&message.payload, out);
                Ok(Flow::Continue)
            }
            message_type::WINDOW_ACK_SIZE => {
                if let Some(&[a, b, c, d]) = message.payload.get(..4) {
                    self.peer_window_bytes = u32::from_be_bytes([a, b, c, d]);
                }
                Ok(Flow::Continue)
            }
            // Acknowledgement and Set Peer Bandwidth need nothing from us:
            // we never wait for acknowledgements.
            other => {
                trace!(type_id = other, "ignoring rtmp message");
                Ok(Flow::Continue)
            }
        }
    }

    fn on_command(&mut self, payload: &[u8], stream_id: u32, out: &mut Vec<u8>, events: &mut Vec<Event>) -> FlowResult {
        let command = amf0::parse_command(payload)?;
        match command.name {
            b"connect" => self.on_connect(&command, out),
            b"releaseStream" | b"FCPublish" => {
                self.require_connected()?;
                // OBS and ffmpeg do not wait for these replies; SRS sends
                // them and some older encoders do wait.
                self.reply_result(command.transaction_id, out, write::undefined);
                Ok(Flow::Continue)
            }
            b"createStream" => {
                self.require_connected()?;
                if self.streams_created >= MAX_CREATED_STREAMS {
                    return Err(Error::Protocol("too many createStream calls"));
                }
                self.streams_created += 1;
                let id = self.streams_created;
                self.reply_result(command.transaction_id, out, |b| write::number(b, f64::from(id)));
                Ok(Flow::Continue)
            }
            b"publish" => self.on_publish(command, stream_id, out, events),
            b"FCUnpublish" | b"deleteStream" | b"closeStream" => Ok(self.on_unpublish(command, stream_id, events)),
            b"play" | b"play2" => {
                info!("play request refused: this server only ingests (viewers use HLS)");
                self.status(
                    out,
                    stream_id,
                    "error",
                    "NetStream.Play.Failed",
                    "playback is not served over RTMP",
                );
                Ok(Flow::Close)
            }
            name => {
                // The arguments may hold the stream key: log the name only.
                debug!(command = %printable(name), "ignoring rtmp command");
                Ok(Flow::Continue)
            }
        }
    }

    fn require_connected(&self) -> Result<(), Error> {
        match self.app {
            Some(_) => Ok(()),
            None => Err(Error::Protocol("command before connect")),
        }
    }

    fn on_connect(&mut self, command: &Command<'_>, out: &mut Vec<u8>) -> FlowResult {
        let tx = command.transaction_id;
        if self.app.is_some() {
            warn!("second connect on one connection refused");
            self.connect_rejected(tx, "already connected", out);
            return Ok(Flow::Close);
        }
        let app = command
            .object
            .as_object()
            .and_then(|props| props.get("app"))
            .and_then(|app| app.as_str());
        let Some(app) = app else {
            warn!("connect without an app refused");
            self.connect_rejected(tx, "connect needs an app", out);
            return Ok(Flow::Close);
        };
        debug!(app = %printable(app.as_bytes()), "connected");
        self.app = Some(app.to_owned());

        // What nginx-rtmp sends before the connect result.
        self.control(out, message_type::WINDOW_ACK_SIZE, &WINDOW_ACK_BYTES.to_be_bytes());
        let mut bandwidth = [2; 5]; // limit type 2: dynamic
        bandwidth[..4].copy_from_slice(&WINDOW_ACK_BYTES.to_be_bytes());
        self.control(out, message_type::SET_PEER_BANDWIDTH, &bandwidth);
        self.control(out, message_type::SET_CHUNK_SIZE, &CHUNK_SIZE_BYTES.to_be_bytes());
        self.out_chunk_size = CHUNK_SIZE_BYTES;

        let body = &mut self.scratch;
        body.clear();
        write::string(body, "_result");
        write::number(body, tx);
        write::object_start(body);
        write::name(body, "fmsVer");
        write::string(body, "FMS/3,0,1,123");
        write::name(body, "capabilities");
        write::number(body, 31.0);
        write::object_end(body);
        write::object_start(body);
        write_status_fields(body, "status", "NetConnection.Connect.Success", "Connection succeeded.");
        write::name(body, "objectEncoding");
        write::number(body, 0.0);
        write::object_end(body);
        self.send_scratch(out, CSID_COMMAND, message_type::COMMAND_AMF0, 0);
        Ok(Flow::Continue)
    }

    fn connect_rejected(&mut self, tx: f64, description: &str, out: &mut Vec<u8>) {
        let body = &mut self.scratch;
        body.clear();
        write::string(body, "_error");
        write::number(body, tx);
        write::null(body);
        write_status(body, "error", "NetConnection.Connect.Rejected", description);
        self.send_scratch(out, CSID_COMMAND, message_type::COMMAND_AMF0, 0);
    }

    fn on_publish(
        &mut self,
        command: Command<'_>,
        stream_id: u32,
        out: &mut Vec<u8>,
        events: &mut Vec<Event>,
    ) -> FlowResult {
        let Some(app) = self.app.clone() else {
            return Err(Error::Protocol("publish before connect"));
        };
        if let Some(publish) = &self.publish {
            // The first publish stays live; the second is simply not allowed.
            warn!(stream = %publish.stream, "second publish on one connection refused");
            self.status(
                out,
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "already publishing on this connection",
            );
            return Ok(Flow::Continue);
        }
        if stream_id == 0 || stream_id > self.streams_created {
            warn!(stream_id, "publish on a stream never created refused");
            self.status(
                out,
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "publish needs createStream first",
            );
            return Ok(Flow::Close);
        }
        let mut args = command.args;
        let raw_key = match args.next_value().transpose()? {
            Some(key) => key.as_str(),
            None => None,
        };
        let Some(raw_key) = raw_key else {
            warn!(app = %printable(app.as_bytes()), "publish without a stream name refused");
            self.status(
                out,
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "publish needs a stream name",
            );
            return Ok(Flow::Close);
        };
        let (stream_key, query) = split_stream_key(raw_key);
        let request = PublishRequest {
            app,
            stream_key: stream_key.to_owned(),
            query: query.map(str::to_owned),
        };
        self.awaiting_answer = Some(stream_id);
        events.push(Event::PublishRequested(request));
        Ok(Flow::Continue)
    }

    /// FCUnpublish, deleteStream or closeStream: the end of our publish when
    /// it names it; otherwise nothing (encoders clean up other streams too).
    fn on_unpublish(&mut self, command: Command<'_>, stream_id: u32, events: &mut Vec<Event>) -> Flow {
        let Some(publish) = &self.publish else {
            return Flow::Continue;
        };
        let ends = match command.name {
            // deleteStream's argument is the stream id (spec 7.2.2.3).
            b"deleteStream" => {
                let mut args = command.args;
                let target = args.next_value().and_then(Result::ok).and_then(|v| v.as_number());
                target == Some(f64::from(publish.stream_id))
            }
            b"closeStream" => stream_id == publish.stream_id,
            // FCUnpublish names the stream by key; one publish per
            // connection, so it can only mean ours.
            _ => true,
        };
        if ends {
            info!(stream = %publish.stream, "publish finished");
            // The connection stays open for the encoder to close: some
            // (GStreamer's rtmp2sink) report an error when the server hangs
            // up first.
            self.publish = None;
            events.push(Event::PublishEnded);
        }
        Flow::Continue
    }

    /// @setDataFrame/onMetaData (with or without the @setDataFrame prefix)
    /// on the publish's stream. Anything else, or malformed AMF0, is ignored:
    /// a broken metadata message must not end a publish.
    fn on_data(&mut self, payload: &[u8], stream_id: u32, events: &mut Vec<Event>) {
        if !self.is_publish_stream(stream_id) {
            return;
        }
        match Metadata::parse(payload) {
            Ok(Some(metadata)) => events.push(Event::Media(MediaMessage::Metadata(metadata))),
            Ok(None) => trace!("ignoring data message"),
            Err(error) => self.note_ignored(format_args!("malformed data message: {error}")),
        }
    }

    fn on_media(&mut self, type_id: u8, stream_id: u32, timestamp_ms: u32, body: Bytes, events: &mut Vec<Event>) {
        if !self.is_publish_stream(stream_id) {
            trace!(type_id, stream_id, "ignoring media outside the publish");
            return;
        }
        events.push(Event::Media(if type_id == message_type::VIDEO {
            MediaMessage::Video { timestamp_ms, body }
        } else {
            MediaMessage::Audio { timestamp_ms, body }
        }));
    }

    /// Aggregate message (spec 7.1.6): FLV tags (header, body, back
    /// pointer), timestamps relative to the first tag, rebased on the
    /// message's. Split without copying; a malformed tag ends the split.
    fn on_aggregate(&mut self, message: &Message, events: &mut Vec<Event>) {
        let payload = &message.payload;
        let mut pos = 0;
        let mut first_ts = None;
        while pos < payload.len() {
            let Some(&[tag_type, s0, s1, s2, t0, t1, t2, t3, ..]) = payload.get(pos..pos + FLV_TAG_HEADER_BYTES) else {
                self.note_ignored(format_args!("aggregate message with a truncated tag header"));
                return;
            };
            let size = u32::from_be_bytes([0, s0, s1, s2]) as usize;
            let tag_ts = u32::from_be_bytes([t3, t0, t1, t2]);
            let start = pos + FLV_TAG_HEADER_BYTES;
            let end = start + size;
            if end > payload.len() {
                self.note_ignored(format_args!("aggregate message with a tag past its end"));
                return;
            }
            let first = *first_ts.get_or_insert(tag_ts);
            let timestamp_ms = message.timestamp_ms.wrapping_add(tag_ts.wrapping_sub(first));
            // FLV tag type: low 5 bits (bit 5 is the encryption filter flag).
            match tag_type & 0x1F {
                message_type::AUDIO | message_type::VIDEO => self.on_media(
                    tag_type & 0x1F,
                    message.stream_id,
                    timestamp_ms,
                    payload.slice(start..end),
                    events,
                ),
                message_type::DATA_AMF0 => {
                    self.on_data(payload.get(start..end).unwrap_or(&[]), message.stream_id, events);
                }
                _ => {}
            }
            // Skip the 4-byte back pointer; a missing last one is tolerated.
            pos = end + 4;
        }
    }

    fn on_user_control(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        if let Some(&[e0, e1, a, b, c, d]) = payload.get(..6)
            && u16::from_be_bytes([e0, e1]) == EVENT_PING_REQUEST
        {
            let mut pong = [0; 6];
            pong[..2].copy_from_slice(&EVENT_PING_RESPONSE.to_be_bytes());
            pong[2..].copy_from_slice(&[a, b, c, d]);
            self.control(out, message_type::USER_CONTROL, &pong);
        }
    }

    /// Acknowledgement (spec 5.4.3) each time the peer's window fills.
    fn acknowledge(&mut self, out: &mut Vec<u8>) {
        let window = u64::from(self.peer_window_bytes);
        if window > 0 && self.bytes_received - self.acknowledged_at >= window {
            self.acknowledged_at = self.bytes_received;
            // The sequence number wraps like everything else in RTMP.
            let sequence = self.bytes_received as u32;
            self.control(out, message_type::ACKNOWLEDGEMENT, &sequence.to_be_bytes());
        }
    }

    fn note_ignored(&mut self, what: std::fmt::Arguments<'_>) {
        self.ignored += 1;
        // A broken or hostile encoder must not flood the log.
        if self.ignored % 100 == 1 {
            warn!(ignored = self.ignored, "ignoring {what}");
        }
    }

    /// A protocol control or user control message on chunk stream 2.
    fn control(&mut self, out: &mut Vec<u8>, type_id: u8, body: &[u8]) {
        chunk::encode_message(out, self.out_chunk_size, CSID_CONTROL, type_id, 0, 0, body);
    }

    /// `_result(tx, null, <value>)`; nothing for transaction 0, which asks
    /// for no reply.
    fn reply_result(&mut self, tx: f64, out: &mut Vec<u8>, value: impl FnOnce(&mut Vec<u8>)) {
        if tx == 0.0 {
            return;
        }
        let body = &mut self.scratch;
        body.clear();
        write::string(body, "_result");
        write::number(body, tx);
        write::null(body);
        value(body);
        self.send_scratch(out, CSID_COMMAND, message_type::COMMAND_AMF0, 0);
    }

    /// `onStatus(0, null, {level, code, description})` on a message stream.
    fn status(&mut self, out: &mut Vec<u8>, stream_id: u32, level: &str, code: &str, description: &str) {
        let body = &mut self.scratch;
        body.clear();
        write::string(body, "onStatus");
        write::number(body, 0.0);
        write::null(body);
        write_status(body, level, code, description);
        self.send_scratch(out, CSID_COMMAND, message_type::COMMAND_AMF0, stream_id);
    }

    fn send_scratch(&mut self, out: &mut Vec<u8>, csid: u32, type_id: u8, stream_id: u32) {
        chunk::encode_message(out, self.out_chunk_size, csid, type_id, stream_id, 0, &self.scratch);
    }
}

type FlowResult = Result<Flow, Error>;

/// A NetConnection/NetStream status object.
fn write_status(body: &mut Vec<u8>, level: &str, code: &str, description: &str) {
    write::object_start(body);
    write_status_fields(body, level, code, description);
    write::object_end(body);
}

fn write_status_fields(body: &mut Vec<u8>, level: &str, code: &str, description: &str) {
    write::name(body, "level");
    write::string(body, level);
    write::name(body, "code");
    write::string(body, code);
    write::name(body, "description");
    write::string(body, description);
}

/// Splits `key?query` as OBS and ffmpeg send it; an empty query is `None`.
fn split_stream_key(raw: &str) -> (&str, Option<&str>) {
    match raw.split_once('?') {
        Some((key, "")) => (key, None),
        Some((key, query)) => (key, Some(query)),
        None => (raw, None),
    }
}

#[cfg(test)]
mod tests;
