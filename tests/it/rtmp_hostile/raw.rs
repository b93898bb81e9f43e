//! The raw hostile client: rml_rtmp's client handshake, hand-made chunks,
//! the server's replies read with rml_rtmp's deserializer; and the good
//! fixture re-chunked the way encoders compress chunk headers.

use super::*;

/// Tags of the good fixture: (kind, timestamp, body).
pub(super) fn fixture_tags() -> &'static [(TagKind, u32, Vec<u8>)] {
    static TAGS: OnceLock<Vec<(TagKind, u32, Vec<u8>)>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let file = std::fs::read(fixture(GOOD_FIXTURE)).unwrap();
        let (_, tags) = flv::tags(&file).unwrap();
        tags.map(|tag| {
            let tag = tag.unwrap();
            (tag.kind, tag.timestamp_ms, tag.body.to_vec())
        })
        .collect()
    })
}

pub(super) fn first_body(kind: TagKind) -> Vec<u8> {
    fixture_tags().iter().find(|t| t.0 == kind).unwrap().2.clone()
}

/// One message in chunks of 128 (the chunk size the server assumes until a
/// client sets another), type 0 header on `csid`.
pub(super) fn message(csid: u32, type_id: u8, stream_id: u32, timestamp_ms: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(&mut out, 128, csid, type_id, stream_id, timestamp_ms, body);
    out
}

pub(super) fn command(name: &str, tx: f64, stream_id: u32, object: Amf0Value, args: Vec<Amf0Value>) -> Vec<u8> {
    let message = RtmpMessage::Amf0Command {
        command_name: name.to_owned(),
        transaction_id: tx,
        command_object: object,
        additional_arguments: args,
    };
    let payload = message.into_message_payload(RtmpTimestamp::new(0), stream_id).unwrap();
    self::message(3, payload.type_id, stream_id, 0, &payload.data)
}

pub(super) fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_owned())
}

pub(super) fn connect_command(app: &str) -> Vec<u8> {
    let mut props = HashMap::new();
    props.insert("app".to_owned(), string(app));
    props.insert("tcUrl".to_owned(), string(&format!("rtmp://127.0.0.1/{app}")));
    command("connect", 1.0, 0, Amf0Value::Object(props), vec![])
}

pub(super) fn ping() -> Vec<u8> {
    message(2, message_type::USER_CONTROL, 0, 0, &[0, 6, 0, 0, 0x30, 0x39])
}

pub(super) fn set_chunk_size(size: u32) -> Vec<u8> {
    message(2, message_type::SET_CHUNK_SIZE, 0, 0, &size.to_be_bytes())
}

/// An AMF0 body: a string, a number, then `levels` nested objects.
pub(super) fn nested_command(name: &str, levels: usize) -> Vec<u8> {
    let mut body = vec![0x02];
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
    for _ in 0..levels {
        body.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    body.push(0x05);
    body
}

/// What the server did with one client.
#[derive(Debug, Default)]
pub(super) struct Observed {
    /// It answered our ping after the hostile bytes.
    pub(super) pong: bool,
    /// The server closed the connection.
    pub(super) closed: bool,
    /// Bytes it sent at all.
    pub(super) bytes: usize,
    /// Status codes of every command it sent.
    pub(super) codes: Vec<String>,
}

/// A raw client: real socket, rml_rtmp's client handshake, our own chunks;
/// the server's replies read with rml_rtmp's deserializer.
pub(super) struct Raw {
    pub(super) socket: TcpStream,
    /// Whether the handshake was done (and replies are RTMP chunks).
    pub(super) rtmp: bool,
    pub(super) reader: ChunkDeserializer,
    pub(super) received: Vec<RtmpMessage>,
    pub(super) observed: Observed,
}

impl Raw {
    pub(super) async fn tcp(addr: SocketAddr) -> Self {
        Self {
            socket: TcpStream::connect(addr).await.unwrap(),
            rtmp: false,
            reader: ChunkDeserializer::new(),
            received: Vec::new(),
            observed: Observed::default(),
        }
    }

    pub(super) async fn handshaken(addr: SocketAddr) -> Self {
        let mut raw = Self::tcp(addr).await;
        let mut handshake = Handshake::new(PeerType::Client);
        raw.send(&handshake.generate_outbound_p0_and_p1().unwrap()).await;
        let mut buf = vec![0_u8; 8192];
        loop {
            let n = raw.socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed during the handshake");
            match handshake.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => raw.send(&response_bytes).await,
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    raw.send(&response_bytes).await;
                    raw.rtmp = true;
                    raw.decode(&remaining_bytes);
                    return raw;
                }
            }
        }
    }

    /// Writes, ignoring errors: the server may already have closed.
    pub(super) async fn send(&mut self, bytes: &[u8]) {
        let _ = self.socket.write_all(bytes).await;
    }

    pub(super) fn decode(&mut self, bytes: &[u8]) {
        let mut input = bytes;
        while let Ok(Some(payload)) = self.reader.get_next_message(input) {
            input = &[];
            let Ok(message) = payload.to_rtmp_message() else {
                continue;
            };
            if let RtmpMessage::SetChunkSize { size } = message {
                self.reader.set_max_chunk_size(size as usize).unwrap();
            }
            if let RtmpMessage::Amf0Command {
                additional_arguments, ..
            } = &message
            {
                for arg in additional_arguments {
                    if let Amf0Value::Object(props) = arg
                        && let Some(Amf0Value::Utf8String(code)) = props.get("code")
                    {
                        self.observed.codes.push(code.clone());
                    }
                }
            }
            if matches!(
                message,
                RtmpMessage::UserControl {
                    event_type: UserControlEventType::PingResponse,
                    ..
                }
            ) {
                self.observed.pong = true;
            }
            self.received.push(message);
        }
    }

    /// Reads once; false once the server closed.
    pub(super) async fn read_some(&mut self) -> bool {
        let mut buf = vec![0_u8; 16 * 1024];
        match tokio::time::timeout(SAFETY, self.socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.observed.bytes += n;
                if self.rtmp {
                    self.decode(&buf[..n]);
                }
                true
            }
            Ok(_) => {
                self.observed.closed = true;
                false
            }
            Err(_) => panic!("no reply and no close within {SAFETY:?}"),
        }
    }

    /// Reads until `done` holds (true) or the server closes (false).
    pub(super) async fn wait_for(&mut self, done: impl Fn(&Raw) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.read_some().await {
                return done(self);
            }
        }
    }

    pub(super) async fn wait_for_code(&mut self, code: &str) -> bool {
        self.wait_for(|raw| raw.observed.codes.iter().any(|c| c == code)).await
    }

    pub(super) async fn connect_app(&mut self, app: &str) {
        self.send(&connect_command(app)).await;
        assert!(
            self.wait_for_code("NetConnection.Connect.Success").await,
            "connect failed"
        );
    }

    /// connect, createStream, publish; returns the publish status code.
    pub(super) async fn publish(&mut self, app: &str, key: &str) -> String {
        self.connect_app(app).await;
        self.publish_again(key).await
    }

    /// createStream and publish on an already connected client.
    pub(super) async fn publish_again(&mut self, key: &str) -> String {
        let codes_before = self.observed.codes.len();
        self.send(&command("createStream", 2.0, 0, Amf0Value::Null, vec![]))
            .await;
        let created = |raw: &Raw| {
            raw.received.iter().rev().find_map(|m| match m {
                RtmpMessage::Amf0Command {
                    command_name,
                    transaction_id,
                    additional_arguments,
                    ..
                } if command_name == "_result" && *transaction_id == 2.0 => match additional_arguments.first() {
                    Some(Amf0Value::Number(id)) => Some(*id as u32),
                    _ => None,
                },
                _ => None,
            })
        };
        let seen = self.received.len();
        assert!(
            self.wait_for(|raw| raw.received.len() > seen && created(raw).is_some())
                .await,
            "no createStream result"
        );
        let stream_id = created(self).unwrap();
        let args = vec![string(key), string("live")];
        self.send(&command("publish", 0.0, stream_id, Amf0Value::Null, args))
            .await;
        self.wait_for(|raw| raw.observed.codes.len() > codes_before).await;
        self.observed.codes.last().cloned().unwrap_or_default()
    }

    /// Sends a ping (when the connection speaks RTMP) and reads until the
    /// pong or the close.
    pub(super) async fn observe(mut self) -> Observed {
        if self.rtmp {
            self.send(&ping()).await;
        }
        self.wait_for(|raw| raw.observed.pong).await;
        self.observed
    }
}

/// Chunks with compressed headers as encoders write them (RTMP spec
/// 5.3.1.2): type 0 for a chunk stream's first message (and whenever
/// asked), type 1 when length or type changed, type 2 when only the delta
/// changed, type 3 when nothing did. Extended timestamps go on type 0/1/2
/// headers when the field reaches 0xFFFFFF, repeated on type 3 chunks or
/// not, per chunk stream (both behaviours exist in encoders).
pub(super) struct Chunker {
    /// Per csid: (timestamp, length, type, last type 0/1/2 timestamp field).
    last: HashMap<u32, (u32, usize, u8, u32)>,
}

impl Chunker {
    pub(super) const CHUNK: usize = 128;

    pub(super) fn chunks(
        &mut self,
        csid: u32,
        type_id: u8,
        ts: u32,
        body: &[u8],
        type0: bool,
        repeat_ext: bool,
    ) -> Vec<Vec<u8>> {
        let previous = self.last.get(&csid).copied();
        let (fmt, field) = match previous {
            Some((prev_ts, prev_len, prev_type, prev_field)) if !type0 => {
                let delta = ts.wrapping_sub(prev_ts);
                if prev_len != body.len() || prev_type != type_id {
                    (1, delta)
                } else if delta != prev_field {
                    (2, delta)
                } else {
                    (3, prev_field)
                }
            }
            _ => (0, ts),
        };
        self.last.insert(csid, (ts, body.len(), type_id, field));
        let ext = field >= 0xFF_FFFF;
        let mut chunks = Vec::new();
        for (i, piece) in body.chunks(Self::CHUNK).enumerate() {
            let fmt = if i == 0 { fmt } else { 3 };
            let mut chunk = vec![(fmt << 6) | csid as u8];
            if fmt < 3 {
                chunk.extend_from_slice(&field.min(0xFF_FFFF).to_be_bytes()[1..]);
            }
            if fmt < 2 {
                chunk.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
                chunk.push(type_id);
            }
            if fmt == 0 {
                chunk.extend_from_slice(&1_u32.to_le_bytes());
            }
            if ext && (fmt < 3 || repeat_ext) {
                chunk.extend_from_slice(&field.to_be_bytes());
            }
            chunk.extend_from_slice(piece);
            chunks.push(chunk);
        }
        chunks
    }
}

/// The good fixture as one byte stream: video on csid 6 (type 0 on
/// keyframes, extended timestamps repeated on continuation chunks, as
/// ffmpeg does), audio on csid 4 (type 0 on every 10th message, extended
/// timestamps not repeated, as some encoders do), metadata on csid 5.
/// Timestamps start just below 0xFFFFFF so extended timestamps begin
/// mid-stream. While a video message is in flight, the audio messages that
/// follow it in the file are sent with one video chunk between each of
/// their chunks: both chunk streams have a message half-assembled at once.
pub(super) fn interleaved_fixture() -> Vec<u8> {
    pub(super) const BASE_MS: u32 = 0x00FF_F000;
    let mut chunker = Chunker { last: HashMap::new() };
    let mut out = Vec::new();
    let mut video_in_flight: VecDeque<Vec<u8>> = VecDeque::new();
    let mut audio_count = 0;
    for (kind, ts, body) in fixture_tags() {
        let ts = ts.wrapping_add(BASE_MS);
        match kind {
            TagKind::Video => {
                out.extend(video_in_flight.drain(..).flatten());
                let keyframe = body.first().is_some_and(|b| b >> 4 == 1);
                video_in_flight.extend(chunker.chunks(6, message_type::VIDEO, ts, body, keyframe, true));
                if let Some(first) = video_in_flight.pop_front() {
                    out.extend(first);
                }
            }
            TagKind::Audio => {
                let type0 = audio_count % 10 == 0;
                audio_count += 1;
                for chunk in chunker.chunks(4, message_type::AUDIO, ts, body, type0, false) {
                    out.extend(chunk);
                    if let Some(video) = video_in_flight.pop_front() {
                        out.extend(video);
                    }
                }
            }
            TagKind::Script => {
                for chunk in chunker.chunks(5, message_type::DATA_AMF0, ts, body, true, true) {
                    out.extend(chunk);
                }
            }
        }
    }
    out.extend(video_in_flight.drain(..).flatten());
    out
}
