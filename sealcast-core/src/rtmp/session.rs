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
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::{MessagePayload, RtmpMessage};
    use rml_rtmp::rml_amf0::Amf0Value;
    use rml_rtmp::time::RtmpTimestamp;

    #[test]
    fn split_stream_key_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("sk_good", "sk_good", None),
            ("sk_good?x=1", "sk_good", Some("x=1")),
            ("sk_good?", "sk_good", None),
            ("sk?a=1?b=2", "sk", Some("a=1?b=2")),
            ("?x=1", "", Some("x=1")),
            ("", "", None),
        ];
        for &(raw, key, query) in cases {
            assert_eq!(split_stream_key(raw), (key, query), "input {raw:?}");
        }
    }

    type Call = (String, String, Option<String>);

    /// The test's answers to publish requests: accepts "live"/"sk_good" as
    /// "live/demo", or refuses with a fixed answer; records every request.
    struct Answers {
        refuse: Option<PublishRefused>,
        calls: Mutex<Vec<Call>>,
    }

    impl Answers {
        fn new(refuse: Option<PublishRefused>) -> Arc<Self> {
            Arc::new(Self {
                refuse,
                calls: Mutex::new(Vec::new()),
            })
        }

        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        fn answer(&self, request: &PublishRequest) -> Result<&'static str, PublishRefused> {
            self.calls
                .lock()
                .unwrap()
                .push((request.app.clone(), request.stream_key.clone(), request.query.clone()));
            if let Some(refused) = self.refuse {
                return Err(refused);
            }
            if request.app != "live" || request.stream_key != "sk_good" {
                return Err(PublishRefused::BadKey);
            }
            Ok("live/demo")
        }
    }

    /// A hand-built client (what OBS sends, message by message) wired to a
    /// `Session` without sockets, answering publish requests as a driver
    /// does. rml_rtmp's serializer writes its bytes (an independent
    /// implementation of the chunk format) and its deserializer reads ours.
    struct Harness {
        session: Session,
        answers: Arc<Answers>,
        out: Vec<u8>,
        events: Vec<Event>,
        /// Media of the publish, in order.
        media: Vec<MediaMessage>,
        /// Whether the session reported the publish's end.
        ended: bool,
        serializer: ChunkSerializer,
        deserializer: ChunkDeserializer,
        /// Every message the server sent.
        sent: Vec<RtmpMessage>,
    }

    impl Harness {
        fn new(answers: Arc<Answers>) -> Self {
            Self::with_limits(answers, SessionLimits::default())
        }

        fn with_limits(answers: Arc<Answers>, limits: SessionLimits) -> Self {
            Self {
                session: Session::new(&limits),
                answers,
                out: Vec::new(),
                events: Vec::new(),
                media: Vec::new(),
                ended: false,
                serializer: ChunkSerializer::new(),
                deserializer: ChunkDeserializer::new(),
                sent: Vec::new(),
            }
        }

        /// Parses what the server wrote, following its SetChunkSize.
        fn drain_server_output(&mut self) {
            let mut input = std::mem::take(&mut self.out);
            while let Some(payload) = self.deserializer.get_next_message(&input).unwrap() {
                input.clear();
                let message = payload.to_rtmp_message().unwrap();
                if let RtmpMessage::SetChunkSize { size } = message {
                    self.deserializer.set_max_chunk_size(size as usize).unwrap();
                }
                self.sent.push(message);
            }
        }

        fn raw(&mut self, bytes: &[u8]) -> Result<Flow, Error> {
            let mut flow = self.session.handle_input(bytes, &mut self.out, &mut self.events);
            // Handle events as the driver does: media in order, each publish
            // request answered before the messages after it are read.
            let mut handled = 0;
            while handled < self.events.len() {
                let event = self.events[handled].clone();
                handled += 1;
                match event {
                    Event::Media(message) => self.media.push(message),
                    Event::PublishEnded => self.ended = true,
                    Event::PublishRequested(request) => {
                        flow = match self.answers.answer(&request) {
                            Ok(stream) => self.session.accept_publish(stream, &mut self.out, &mut self.events),
                            Err(refused) => Ok(self.session.refuse_publish(refused, &mut self.out)),
                        };
                    }
                }
            }
            self.events.clear();
            self.drain_server_output();
            flow
        }

        fn send(&mut self, message: RtmpMessage, stream_id: u32, ts: u32) -> Result<Flow, Error> {
            let payload = message.into_message_payload(RtmpTimestamp::new(ts), stream_id).unwrap();
            self.send_payload(&payload)
        }

        fn send_payload(&mut self, payload: &MessagePayload) -> Result<Flow, Error> {
            let packet = self.serializer.serialize(payload, false, false).unwrap();
            self.raw(&packet.bytes)
        }

        fn command(&mut self, name: &str, tx: f64, stream_id: u32, args: Vec<Amf0Value>) -> Result<Flow, Error> {
            let command_object = if name == "connect" {
                let mut props = HashMap::new();
                props.insert("app".to_owned(), Amf0Value::Utf8String("live".to_owned()));
                props.insert(
                    "tcUrl".to_owned(),
                    Amf0Value::Utf8String("rtmp://127.0.0.1/live".to_owned()),
                );
                Amf0Value::Object(props)
            } else {
                Amf0Value::Null
            };
            let message = RtmpMessage::Amf0Command {
                command_name: name.to_owned(),
                transaction_id: tx,
                command_object,
                additional_arguments: args,
            };
            self.send(message, stream_id, 0)
        }

        fn connect_and_create_stream(&mut self) {
            let key = || vec![Amf0Value::Utf8String("sk_good".to_owned())];
            assert_eq!(self.command("connect", 1.0, 0, vec![]).unwrap(), Flow::Continue);
            assert_eq!(self.command("releaseStream", 2.0, 0, key()).unwrap(), Flow::Continue);
            assert_eq!(self.command("FCPublish", 3.0, 0, key()).unwrap(), Flow::Continue);
            assert_eq!(self.command("createStream", 4.0, 0, vec![]).unwrap(), Flow::Continue);
        }

        fn publish(&mut self, raw_key: &str) -> Result<Flow, Error> {
            let args = vec![
                Amf0Value::Utf8String(raw_key.to_owned()),
                Amf0Value::Utf8String("live".to_owned()),
            ];
            self.command("publish", 5.0, 1, args)
        }

        /// (command name, transaction id, status code or createStream's
        /// number) of every command the server sent.
        fn replies(&self) -> Vec<(String, f64, Option<String>)> {
            self.sent
                .iter()
                .filter_map(|m| match m {
                    RtmpMessage::Amf0Command {
                        command_name,
                        transaction_id,
                        additional_arguments,
                        ..
                    } => {
                        let detail = additional_arguments.iter().find_map(|arg| match arg {
                            Amf0Value::Object(props) => match props.get("code") {
                                Some(Amf0Value::Utf8String(code)) => Some(code.clone()),
                                _ => None,
                            },
                            Amf0Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        });
                        Some((command_name.clone(), *transaction_id, detail))
                    }
                    _ => None,
                })
                .collect()
        }

        fn last_reply(&self) -> Option<(String, f64, Option<String>)> {
            self.replies().pop()
        }
    }

    fn reply(name: &str, tx: f64, detail: Option<&str>) -> (String, f64, Option<String>) {
        (name.to_owned(), tx, detail.map(str::to_owned))
    }

    fn video(body: &'static [u8]) -> RtmpMessage {
        RtmpMessage::VideoData {
            data: Bytes::from_static(body),
        }
    }

    fn audio(body: &'static [u8]) -> RtmpMessage {
        RtmpMessage::AudioData {
            data: Bytes::from_static(body),
        }
    }

    fn data(values: Vec<Amf0Value>) -> RtmpMessage {
        RtmpMessage::Amf0Data { values }
    }

    fn string(s: &str) -> Amf0Value {
        Amf0Value::Utf8String(s.to_owned())
    }

    fn metadata_object() -> Amf0Value {
        let mut props = HashMap::new();
        props.insert("width".to_owned(), Amf0Value::Number(320.0));
        props.insert("height".to_owned(), Amf0Value::Number(240.0));
        props.insert("videocodecid".to_owned(), Amf0Value::Number(7.0));
        props.insert("framerate".to_owned(), Amf0Value::Number(29.97));
        props.insert("stereo".to_owned(), Amf0Value::Boolean(true));
        props.insert("encoder".to_owned(), string("obs-output module"));
        props.insert("audiosamplerate".to_owned(), Amf0Value::Number(48000.0));
        Amf0Value::Object(props)
    }

    fn expected_metadata() -> Metadata {
        Metadata {
            width: Some(320.0),
            height: Some(240.0),
            video_codec_id: Some(7.0),
            framerate: Some(29.97),
            encoder: Some("obs-output module".to_owned()),
            audio_sample_rate: Some(48000.0),
            ..Metadata::default()
        }
    }

    #[test]
    fn obs_style_publish_forwards_media_in_order_and_ends_on_fc_unpublish() {
        let auth = Answers::new(None);
        let mut h = Harness::new(Arc::clone(&auth));
        h.connect_and_create_stream();
        // What nginx-rtmp sends around the connect result.
        assert_eq!(
            h.sent[..3],
            [
                RtmpMessage::WindowAcknowledgement { size: 5_000_000 },
                RtmpMessage::SetPeerBandwidth {
                    size: 5_000_000,
                    limit_type: rml_rtmp::messages::PeerBandwidthLimitType::Dynamic
                },
                RtmpMessage::SetChunkSize { size: 4096 },
            ]
        );
        // Media before publish belongs to no stream and is dropped.
        assert_eq!(h.send(video(&[0x17, 0x00]), 1, 0).unwrap(), Flow::Continue);
        assert!(h.media.is_empty());

        assert_eq!(h.publish("sk_good?x=1").unwrap(), Flow::Continue);
        assert_eq!(
            auth.calls(),
            vec![("live".to_owned(), "sk_good".to_owned(), Some("x=1".to_owned()))]
        );
        assert!(h.session.is_publishing());
        assert_eq!(
            h.replies(),
            vec![
                reply("_result", 1.0, Some("NetConnection.Connect.Success")),
                reply("_result", 2.0, None),
                reply("_result", 3.0, None),
                reply("_result", 4.0, Some("1")),
                reply("onStatus", 0.0, Some("NetStream.Publish.Start")),
            ]
        );
        assert!(h.sent.contains(&RtmpMessage::UserControl {
            event_type: rml_rtmp::messages::UserControlEventType::StreamBegin,
            stream_id: Some(1),
            buffer_length: None,
            timestamp: None,
        }));

        h.send(
            data(vec![string("@setDataFrame"), string("onMetaData"), metadata_object()]),
            1,
            0,
        )
        .unwrap();
        h.send(video(&[0x17, 0x00, 0x00, 0x00, 0x00, 0x01]), 1, 0).unwrap();
        h.send(audio(&[0xAF, 0x00, 0x12, 0x10]), 1, 0).unwrap();
        h.send(video(&[0x27, 0x01, 0x00, 0x00, 0x21, 0xAA]), 1, 33).unwrap();
        h.send(audio(&[0xAF, 0x01, 0x55]), 1, 23).unwrap();
        // Without the @setDataFrame prefix too (as in FLV files).
        h.send(data(vec![string("onMetaData"), metadata_object()]), 1, 40)
            .unwrap();

        let expected = vec![
            MediaMessage::Metadata(expected_metadata()),
            MediaMessage::Video {
                timestamp_ms: 0,
                body: Bytes::from_static(&[0x17, 0x00, 0x00, 0x00, 0x00, 0x01]),
            },
            MediaMessage::Audio {
                timestamp_ms: 0,
                body: Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]),
            },
            MediaMessage::Video {
                timestamp_ms: 33,
                body: Bytes::from_static(&[0x27, 0x01, 0x00, 0x00, 0x21, 0xAA]),
            },
            MediaMessage::Audio {
                timestamp_ms: 23,
                body: Bytes::from_static(&[0xAF, 0x01, 0x55]),
            },
            MediaMessage::Metadata(expected_metadata()),
        ];
        assert_eq!(h.media, expected);

        let key = vec![string("sk_good")];
        // The publish ends; the encoder closes the connection itself.
        assert_eq!(h.command("FCUnpublish", 6.0, 1, key).unwrap(), Flow::Continue);
        assert!(!h.session.is_publishing());
        assert!(h.ended, "the end of the publish is an event, after its media");
        assert_eq!(auth.calls().len(), 1);
    }

    #[test]
    fn delete_and_close_stream_end_only_our_publish() {
        // (name, message, its stream id, whether it ends our publish)
        type Case = (&'static str, RtmpMessage, u32, bool);
        let delete = |id: f64| RtmpMessage::Amf0Command {
            command_name: "deleteStream".to_owned(),
            transaction_id: 0.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![Amf0Value::Number(id)],
        };
        let close = RtmpMessage::Amf0Command {
            command_name: "closeStream".to_owned(),
            transaction_id: 0.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![],
        };
        let cases: Vec<Case> = vec![
            ("deleteStream(1)", delete(1.0), 0, true),
            ("deleteStream(2)", delete(2.0), 0, false),
            ("closeStream on 1", close.clone(), 1, true),
            ("closeStream on 0", close, 0, false),
        ];
        for (name, message, stream_id, ends) in cases {
            let mut h = Harness::new(Answers::new(None));
            h.connect_and_create_stream();
            h.publish("sk_good").unwrap();
            assert_eq!(h.send(message, stream_id, 0).unwrap(), Flow::Continue, "{name}");
            assert_eq!(h.session.is_publishing(), !ends, "{name}");
        }
        // Before any publish, deleteStream does nothing.
        let mut h = Harness::new(Answers::new(None));
        h.connect_and_create_stream();
        assert_eq!(h.send(delete(1.0), 0, 0).unwrap(), Flow::Continue);
    }

    #[test]
    fn refusals_send_an_error_status_and_close() {
        let cases = [
            (None, "sk_bad", "NetStream.Publish.Denied"),
            (Some(PublishRefused::BadKey), "sk_good", "NetStream.Publish.Denied"),
            (
                Some(PublishRefused::AlreadyLive),
                "sk_good",
                "NetStream.Publish.BadName",
            ),
            (
                Some(PublishRefused::ShuttingDown),
                "sk_good",
                "NetStream.Publish.Denied",
            ),
        ];
        for (refuse, key, code) in cases {
            let auth = Answers::new(refuse);
            let mut h = Harness::new(Arc::clone(&auth));
            h.connect_and_create_stream();
            assert_eq!(h.publish(key).unwrap(), Flow::Close, "{refuse:?}");
            assert_eq!(h.last_reply(), Some(reply("onStatus", 0.0, Some(code))), "{refuse:?}");
            assert!(!h.session.is_publishing());
            assert_eq!(auth.calls().len(), 1);
        }
    }

    #[test]
    fn second_publish_on_one_connection_is_refused_and_first_continues() {
        let auth = Answers::new(None);
        let mut h = Harness::new(Arc::clone(&auth));
        h.connect_and_create_stream();
        assert_eq!(h.publish("sk_good").unwrap(), Flow::Continue);
        assert_eq!(h.command("createStream", 6.0, 0, vec![]).unwrap(), Flow::Continue);
        assert_eq!(h.last_reply(), Some(reply("_result", 6.0, Some("2"))));
        let args = vec![string("sk_good"), string("live")];
        assert_eq!(h.command("publish", 0.0, 2, args).unwrap(), Flow::Continue);
        assert_eq!(
            h.last_reply(),
            Some(reply("onStatus", 0.0, Some("NetStream.Publish.BadName")))
        );
        assert_eq!(auth.calls().len(), 1, "second publish never reaches the registry");
        // Media on the refused stream id is ignored; the first still flows.
        h.send(video(&[0x27, 0x01]), 2, 10).unwrap();
        h.send(video(&[0x17, 0x01]), 1, 20).unwrap();
        assert_eq!(
            h.media,
            vec![MediaMessage::Video {
                timestamp_ms: 20,
                body: Bytes::from_static(&[0x17, 0x01]),
            }]
        );
    }

    #[test]
    fn play_and_second_connect_are_refused() {
        let auth = Answers::new(None);
        let mut h = Harness::new(Arc::clone(&auth));
        h.connect_and_create_stream();
        assert_eq!(h.command("play", 5.0, 1, vec![string("sk_good")]).unwrap(), Flow::Close);
        assert_eq!(
            h.last_reply(),
            Some(reply("onStatus", 0.0, Some("NetStream.Play.Failed")))
        );
        assert!(auth.calls().is_empty());

        let mut h = Harness::new(Answers::new(None));
        assert_eq!(h.command("connect", 1.0, 0, vec![]).unwrap(), Flow::Continue);
        assert_eq!(h.command("connect", 2.0, 0, vec![]).unwrap(), Flow::Close);
        assert_eq!(
            h.last_reply(),
            Some(reply("_error", 2.0, Some("NetConnection.Connect.Rejected")))
        );
    }

    /// The connect command a client sends, as raw AMF0 with `object` as
    /// its command object.
    fn connect_payload(object: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        write::string(&mut body, "connect");
        write::number(&mut body, 1.0);
        body.extend_from_slice(object);
        body
    }

    fn raw_message(type_id: u8, stream_id: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        chunk::encode_message(&mut bytes, 128, 3, type_id, stream_id, 0, body);
        bytes
    }

    #[test]
    fn hostile_input_is_an_error_or_ignored_never_a_panic() {
        let mut nested = Vec::new();
        for _ in 0..100_000 {
            nested.extend_from_slice(&[0x03, 0x00, 0x03, b'a', b'p', b'p']);
        }
        // 100,000 levels do not fit in a message before publish (64 KiB);
        // 10,000 do, and meet the AMF0 depth limit.
        let huge_connect = raw_message(message_type::COMMAND_AMF0, 0, &connect_payload(&nested));
        let deep_connect = raw_message(message_type::COMMAND_AMF0, 0, &connect_payload(&nested[..60_000]));
        let mut long_string = Vec::new();
        write::string(&mut long_string, "connect");
        write::number(&mut long_string, 1.0);
        long_string.extend_from_slice(&[0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0xFF, 0xF0, b'l']);
        let long_string = raw_message(message_type::COMMAND_AMF0, 0, &long_string);

        type Case = (&'static str, bool, Vec<u8>, Result<Flow, &'static str>);
        let cases: Vec<Case> = vec![
            (
                "connect nested 100,000 levels",
                false,
                huge_connect,
                Err("rtmp chunk stream: message of 600019 bytes exceeds the limit of 65536"),
            ),
            (
                "connect nested 10,000 levels",
                false,
                deep_connect,
                Err("rtmp command: AMF0 values nested deeper than 32 levels"),
            ),
            (
                "command nested 100,000 levels while publishing",
                true,
                raw_message(message_type::COMMAND_AMF0, 1, &{
                    let mut b = Vec::new();
                    write::string(&mut b, "FCUnpublish");
                    write::number(&mut b, 0.0);
                    b.extend_from_slice(&nested);
                    b
                }),
                Err("rtmp command: AMF0 values nested deeper than 32 levels"),
            ),
            (
                "string past the end of the message",
                false,
                long_string,
                Err("rtmp command: AMF0 value runs past the end of the message"),
            ),
            (
                "publish without connect",
                false,
                raw_message(message_type::COMMAND_AMF0, 1, &{
                    let mut b = Vec::new();
                    write::string(&mut b, "publish");
                    write::number(&mut b, 5.0);
                    write::null(&mut b);
                    write::string(&mut b, "sk_good");
                    b
                }),
                Err("rtmp protocol error: publish before connect"),
            ),
            (
                "createStream without connect",
                false,
                raw_message(message_type::COMMAND_AMF0, 0, &{
                    let mut b = Vec::new();
                    write::string(&mut b, "createStream");
                    write::number(&mut b, 2.0);
                    b
                }),
                Err("rtmp protocol error: command before connect"),
            ),
            (
                "command without a name",
                false,
                raw_message(message_type::COMMAND_AMF0, 0, &[0x05]),
                Err("rtmp command: AMF0 command does not start with a name"),
            ),
            (
                "type 3 chunk on an unknown chunk stream",
                false,
                vec![0xC9, 0x01, 0x02, 0x03],
                Err("rtmp chunk stream: chunk stream 9: type 3 header with no previous header"),
            ),
            (
                "100 KB message before publish",
                false,
                {
                    let mut b = Vec::new();
                    chunk::encode_message(&mut b, 128, 4, message_type::VIDEO, 1, 0, &[0; 100_000]);
                    b
                },
                Err("rtmp chunk stream: message of 100000 bytes exceeds the limit of 65536"),
            ),
            (
                "bare @setDataFrame before publish (rml_rtmp 0.8 panics)",
                false,
                raw_message(
                    message_type::DATA_AMF0,
                    1,
                    &[
                        0x02, 0x00, 0x0D, b'@', b's', b'e', b't', b'D', b'a', b't', b'a', b'F', b'r', b'a', b'm', b'e',
                    ],
                ),
                Ok(Flow::Continue),
            ),
            (
                "bare @setDataFrame while publishing",
                true,
                raw_message(
                    message_type::DATA_AMF0,
                    1,
                    &[
                        0x02, 0x00, 0x0D, b'@', b's', b'e', b't', b'D', b'a', b't', b'a', b'F', b'r', b'a', b'm', b'e',
                    ],
                ),
                Ok(Flow::Continue),
            ),
            (
                "onMetaData without an object while publishing",
                true,
                raw_message(
                    message_type::DATA_AMF0,
                    1,
                    &[
                        0x02, 0x00, 0x0A, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a',
                    ],
                ),
                Ok(Flow::Continue),
            ),
            (
                "onMetaData nested 100,000 levels while publishing",
                true,
                raw_message(message_type::DATA_AMF0, 1, &{
                    let mut b = Vec::new();
                    write::string(&mut b, "onMetaData");
                    b.extend_from_slice(&nested);
                    b
                }),
                Ok(Flow::Continue),
            ),
            (
                "unknown message types",
                false,
                [0x30_u8, 0x7F, 0xFF, 7, 10]
                    .iter()
                    .flat_map(|&t| raw_message(t, 0, &[1, 2, 3]))
                    .collect(),
                Ok(Flow::Continue),
            ),
        ];
        for (name, publishing, bytes, want) in cases {
            let mut h = Harness::new(Answers::new(None));
            if publishing {
                h.connect_and_create_stream();
                assert_eq!(h.publish("sk_good").unwrap(), Flow::Continue);
            }
            let got = h.raw(&bytes).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "{name}");
            assert!(h.media.is_empty(), "{name}: {:?}", h.media);
        }
    }

    #[test]
    fn large_messages_are_accepted_once_publishing() {
        let limits = SessionLimits {
            max_message_bytes: 200_000,
            ..SessionLimits::default()
        };
        let mut h = Harness::with_limits(Answers::new(None), limits);
        h.connect_and_create_stream();
        h.publish("sk_good").unwrap();
        let frame: Bytes = (0..150_000_u32).map(|i| i as u8).collect();
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(5),
            type_id: message_type::VIDEO,
            message_stream_id: 1,
            data: frame.clone(),
        };
        assert_eq!(h.send_payload(&payload).unwrap(), Flow::Continue);
        let too_big = MessagePayload {
            data: vec![0; 200_001].into(),
            ..payload
        };
        assert_eq!(
            h.send_payload(&too_big).map_err(|e| e.to_string()),
            Err("rtmp chunk stream: message of 200001 bytes exceeds the limit of 200000".to_owned())
        );
        assert_eq!(
            h.media,
            vec![MediaMessage::Video {
                timestamp_ms: 5,
                body: frame
            }]
        );
    }

    #[test]
    fn ping_is_answered_and_acknowledgements_follow_the_window() {
        let mut h = Harness::new(Answers::new(None));
        let ping = RtmpMessage::UserControl {
            event_type: rml_rtmp::messages::UserControlEventType::PingRequest,
            stream_id: None,
            buffer_length: None,
            timestamp: Some(RtmpTimestamp::new(0x01020304)),
        };
        h.send(ping, 0, 0).unwrap();
        assert_eq!(
            h.sent,
            vec![RtmpMessage::UserControl {
                event_type: rml_rtmp::messages::UserControlEventType::PingResponse,
                stream_id: None,
                buffer_length: None,
                timestamp: Some(RtmpTimestamp::new(0x01020304)),
            }]
        );

        let mut h = Harness::new(Answers::new(None));
        h.send(RtmpMessage::WindowAcknowledgement { size: 1000 }, 0, 0).unwrap();
        let sent_before = h.session.bytes_received;
        assert!(h.sent.is_empty());
        // Unknown message types fill the window without meaning anything.
        let filler = raw_message(0x30, 0, &[0; 600]);
        h.raw(&filler).unwrap();
        h.raw(&filler).unwrap();
        let total = sent_before + 2 * filler.len() as u64;
        assert_eq!(
            h.sent,
            vec![RtmpMessage::Acknowledgement {
                sequence_number: total as u32
            }]
        );
    }

    /// An aggregate of FLV tags: audio, video, metadata, then a tag whose
    /// size runs past the end (ignored, the earlier ones kept).
    #[test]
    fn aggregate_messages_are_split_with_rebased_timestamps() {
        let mut h = Harness::new(Answers::new(None));
        h.connect_and_create_stream();
        h.publish("sk_good").unwrap();
        let tag = |kind: u8, ts: u32, body: &[u8]| {
            let mut t = vec![kind];
            t.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            t.extend_from_slice(&ts.to_be_bytes()[1..]);
            t.push((ts >> 24) as u8);
            t.extend_from_slice(&[0, 0, 0]);
            t.extend_from_slice(body);
            t.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
            t
        };
        let mut meta = Vec::new();
        write::string(&mut meta, "onMetaData");
        write::object_start(&mut meta);
        write::name(&mut meta, "width");
        write::number(&mut meta, 640.0);
        write::object_end(&mut meta);
        let mut payload = tag(8, 1000, &[0xAF, 0x01, 0x10]);
        payload.extend(tag(9, 1033, &[0x27, 0x01, 0, 0, 0]));
        payload.extend(tag(18, 1033, &meta));
        payload.extend(tag(9, 0x0100_0000 + 1000, &[0x17]));
        let mut broken = tag(9, 1066, &[0x27; 8]);
        broken[3] = 0xFF; // size 255, past the end
        payload.extend(broken);
        let aggregate = MessagePayload {
            timestamp: RtmpTimestamp::new(50_000),
            type_id: message_type::AGGREGATE,
            message_stream_id: 1,
            data: payload.into(),
        };
        assert_eq!(h.send_payload(&aggregate).unwrap(), Flow::Continue);
        let width = Metadata {
            width: Some(640.0),
            ..Metadata::default()
        };
        assert_eq!(
            h.media,
            vec![
                MediaMessage::Audio {
                    timestamp_ms: 50_000,
                    body: Bytes::from_static(&[0xAF, 0x01, 0x10]),
                },
                MediaMessage::Video {
                    timestamp_ms: 50_033,
                    body: Bytes::from_static(&[0x27, 0x01, 0, 0, 0]),
                },
                MediaMessage::Metadata(width),
                MediaMessage::Video {
                    timestamp_ms: 50_000 + 0x0100_0000,
                    body: Bytes::from_static(&[0x17]),
                },
            ]
        );
        assert_eq!(h.session.ignored, 1);
    }

    #[test]
    fn amf3_command_and_data_messages_are_read() {
        let mut h = Harness::new(Answers::new(None));
        let mut body = vec![0x00];
        let mut app = Vec::new();
        write::object_start(&mut app);
        write::name(&mut app, "app");
        write::string(&mut app, "live");
        write::object_end(&mut app);
        body.extend(connect_payload(&app));
        assert_eq!(
            h.raw(&raw_message(message_type::COMMAND_AMF3, 0, &body)).unwrap(),
            Flow::Continue
        );
        assert_eq!(
            h.last_reply(),
            Some(reply("_result", 1.0, Some("NetConnection.Connect.Success")))
        );
    }

    /// Every prefix of a whole OBS-style session, and the same bytes in
    /// every piece size: no panic, the same outcome.
    #[test]
    fn session_bytes_in_any_split() {
        let mut script = Harness::new(Answers::new(None));
        let mut bytes = Vec::new();
        let mut record = |h: &mut Harness, message: RtmpMessage, stream_id: u32| {
            let payload = message.into_message_payload(RtmpTimestamp::new(0), stream_id).unwrap();
            bytes.extend(h.serializer.serialize(&payload, false, false).unwrap().bytes);
        };
        let command = |name: &str, tx: f64, object: Amf0Value, args: Vec<Amf0Value>| RtmpMessage::Amf0Command {
            command_name: name.to_owned(),
            transaction_id: tx,
            command_object: object,
            additional_arguments: args,
        };
        let mut app = HashMap::new();
        app.insert("app".to_owned(), string("live"));
        record(&mut script, command("connect", 1.0, Amf0Value::Object(app), vec![]), 0);
        record(&mut script, command("createStream", 2.0, Amf0Value::Null, vec![]), 0);
        record(
            &mut script,
            command("publish", 3.0, Amf0Value::Null, vec![string("sk_good")]),
            1,
        );
        record(&mut script, video(&[0x17, 0x00, 0x01]), 1);
        record(&mut script, audio(&[0xAF, 0x00, 0x12, 0x10]), 1);
        let want = vec![
            MediaMessage::Video {
                timestamp_ms: 0,
                body: Bytes::from_static(&[0x17, 0x00, 0x01]),
            },
            MediaMessage::Audio {
                timestamp_ms: 0,
                body: Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]),
            },
        ];
        for piece in 1..=bytes.len() {
            let mut h = Harness::new(Answers::new(None));
            for part in bytes.chunks(piece) {
                assert_eq!(h.raw(part).unwrap(), Flow::Continue, "piece {piece}");
            }
            assert_eq!(h.media, want, "piece {piece}");
        }
        for len in 0..bytes.len() {
            let mut h = Harness::new(Answers::new(None));
            assert_eq!(h.raw(&bytes[..len]).unwrap(), Flow::Continue, "prefix {len}");
        }
    }
}
