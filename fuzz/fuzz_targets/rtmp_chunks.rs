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
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use sealcast::flv::{Demuxer, TagKind};
use sealcast::rtmp::{Flow, IngestLimits, MediaMessage, PublishAuthorizer, PublishGrant, PublishRefused, Session};
use sealcast_fuzz::check_access_unit;
use tokio::sync::mpsc;

/// Grants every publish except the keys "bad" and "busy", so both paths run.
struct Authorizer {
    /// Receivers kept alive so grants look like a live pipeline.
    receivers: Mutex<Vec<mpsc::Receiver<MediaMessage>>>,
}

impl PublishAuthorizer for Authorizer {
    fn authorize(
        &self,
        _app: &str,
        stream_key: &str,
        _query: Option<&str>,
        _peer: SocketAddr,
    ) -> Result<PublishGrant, PublishRefused> {
        match stream_key {
            "bad" => Err(PublishRefused::BadKey),
            "busy" => Err(PublishRefused::AlreadyLive),
            _ => {
                let (media, rx) = mpsc::channel(1);
                let mut receivers = self.receivers.lock().unwrap_or_else(|e| e.into_inner());
                receivers.clear();
                receivers.push(rx);
                Ok(PublishGrant {
                    stream: "live/fuzz".to_owned(),
                    media,
                })
            }
        }
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
    let authorizer = Arc::new(Authorizer {
        receivers: Mutex::new(Vec::new()),
    });
    let peer = SocketAddr::from(([192, 0, 2, 1], 40000));
    let mut out = Vec::new();
    let mut media = Vec::new();
    let mut session = Session::new(authorizer, peer, &IngestLimits::default());
    let mut demuxer = Demuxer::new();
    let piece = if piece == 0 { usize::MAX } else { piece };
    let prologue: &[Vec<u8>] = if flags & 1 != 0 { prologue() } else { &[] };
    let pieces = prologue.iter().map(Vec::as_slice).chain(rest.chunks(piece));
    for input in pieces {
        out.clear();
        let step = session.handle_input(input, &mut out, &mut media);
        for message in media.drain(..) {
            let (kind, timestamp_ms, body) = match message {
                MediaMessage::Video { timestamp_ms, body } => (TagKind::Video, timestamp_ms, body),
                MediaMessage::Audio { timestamp_ms, body } => (TagKind::Audio, timestamp_ms, body),
                MediaMessage::Metadata(_) => continue,
            };
            if let Ok(Some(au)) = demuxer.push(kind, timestamp_ms, &body) {
                check_access_unit(&au);
            }
        }
        session.release_finished();
        match step {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) | Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| run(data));
