//! The RTMP chunk/message layer as the server feeds it: the bytes a peer sends
//! after the handshake, in arbitrary pieces, into the connection's sans-IO
//! `Session` (our own chunk decoder, AMF0 reader and server state machine;
//! no peer byte reaches rml_rtmp), and the media it yields into an
//! `flv::Demuxer`. The driver's rules apply: after an error or `Flow::Close`
//! the connection ends. Any panic is a bug.
//!
//! Input: byte 0 bit 0 feeds a canned OBS-style prologue first (connect,
//! releaseStream, FCPublish, createStream, publish), so the fuzzer starts in
//! the publishing state; byte 1 is the size of the pieces the rest is fed in
//! (0 = all at once), as TCP reads would split it.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use sealcast_core::flv::{Demuxer, TagKind};
use sealcast_core::rtmp::{
    Event, Flow, MediaMessage, PRINTABLE_MAX_BYTES, PublishRefused, PublishRequest, Session, SessionLimits, printable,
};
use sealcast_fuzz::check_access_unit;

/// The driver's answer: every publish is accepted except the keys "bad" and
/// "busy", so both paths run.
fn answer(request: &PublishRequest) -> Result<&'static str, PublishRefused> {
    match request.stream_key.as_str() {
        "bad" => Err(PublishRefused::BadKey),
        "busy" => Err(PublishRefused::AlreadyLive),
        _ => Ok("live/fuzz"),
    }
}

/// What OBS sends after the handshake up to and including publish, one
/// message per entry (a client waits for the reply to each), chunked by
/// rml_rtmp's serializer (128-byte chunks).
fn prologue() -> &'static [Vec<u8>] {
    static PROLOGUE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PROLOGUE.get_or_init(|| {
        let mut serializer = ChunkSerializer::new();
        let mut messages = Vec::new();
        let key = || Amf0Value::Utf8String("sk".to_owned());
        let mut connect = HashMap::new();
        connect.insert("app".to_owned(), Amf0Value::Utf8String("live".to_owned()));
        connect.insert(
            "tcUrl".to_owned(),
            Amf0Value::Utf8String("rtmp://127.0.0.1/live".to_owned()),
        );
        let commands = [
            ("connect", 1.0, 0, Amf0Value::Object(connect), vec![]),
            ("releaseStream", 2.0, 0, Amf0Value::Null, vec![key()]),
            ("FCPublish", 3.0, 0, Amf0Value::Null, vec![key()]),
            ("createStream", 4.0, 0, Amf0Value::Null, vec![]),
            (
                "publish",
                5.0,
                1,
                Amf0Value::Null,
                vec![key(), Amf0Value::Utf8String("live".to_owned())],
            ),
        ];
        for (name, transaction_id, stream_id, command_object, additional_arguments) in commands {
            let message = RtmpMessage::Amf0Command {
                command_name: name.to_owned(),
                transaction_id,
                command_object,
                additional_arguments,
            };
            let payload = message
                .into_message_payload(RtmpTimestamp::new(0), stream_id)
                .expect("a fixed command serializes");
            let packet = serializer
                .serialize(&payload, false, false)
                .expect("a fixed command chunks");
            messages.push(packet.bytes);
        }
        messages
    })
}

fn run(data: &[u8]) {
    let (flags, piece, rest) = match data {
        [flags, piece, rest @ ..] => (*flags, usize::from(*piece), rest),
        _ => return,
    };
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut session = Session::new(&SessionLimits::default());
    let mut demuxer = Demuxer::new();
    let piece = if piece == 0 { usize::MAX } else { piece };
    let prologue: &[Vec<u8>] = if flags & 1 != 0 { prologue() } else { &[] };
    let pieces = prologue.iter().map(Vec::as_slice).chain(rest.chunks(piece));
    for input in pieces {
        out.clear();
        let mut step = session.handle_input(input, &mut out, &mut events);
        // As the driver does: events in order, a publish request answered
        // before the session reads on.
        while !events.is_empty() {
            let mut request = None;
            for event in events.drain(..) {
                let (kind, timestamp_ms, body) = match event {
                    Event::Media(MediaMessage::Video { timestamp_ms, body }) => (TagKind::Video, timestamp_ms, body),
                    Event::Media(MediaMessage::Audio { timestamp_ms, body }) => (TagKind::Audio, timestamp_ms, body),
                    Event::Media(MediaMessage::Metadata(_)) | Event::PublishEnded => continue,
                    Event::PublishRequested(asked) => {
                        // The app is peer text: what the log gets of it is
                        // escaped and capped (issue 18, finding 4).
                        let logged = printable(asked.app.as_bytes());
                        assert!(!logged.chars().any(char::is_control), "{logged:?}");
                        assert!(logged.len() <= PRINTABLE_MAX_BYTES * 10 + 3, "{}", logged.len());
                        request = Some(asked);
                        continue;
                    }
                };
                if let Ok(Some(au)) = demuxer.push(kind, timestamp_ms, &body) {
                    check_access_unit(&au);
                }
            }
            if let Some(request) = request {
                step = match answer(&request) {
                    Ok(stream) => session.accept_publish(stream, &mut out, &mut events),
                    Err(refused) => Ok(session.refuse_publish(refused, &mut out)),
                };
            }
        }
        match step {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) | Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| run(data));
