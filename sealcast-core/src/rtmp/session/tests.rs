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
