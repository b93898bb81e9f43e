//! Hostile RTMP clients against the real server (in process, real sockets).
//! Every case is a raw TCP client built from rml_rtmp's client handshake and
//! hand-made chunks; the table says what the server must do: keep the
//! connection serving (it still answers a ping), close it (before the
//! handshake deadline could have, so the close is the server's verdict on
//! the bytes), or refuse it outright.
//!
//! Each row of the table is a test of its own ([`hostile_rows!`]), against
//! its own server while a good publisher holds `live/demo`, so a failure
//! names its row and the other rows still run. One more test runs the whole
//! table, a slow loris and a flood while ffmpeg pushes a good stream in real
//! time: afterwards the server is still running, the good stream's playlist
//! has a segment every 2 s with no discontinuity, and a whole fixture pushed
//! with audio and video interleaved chunk by chunk decrypts to every one of
//! its frames.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::playlist::{until_ended, until_listed};
use crate::support::process::Proc;
use crate::support::rtmp::{Fixture, Publisher};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer};
use crate::support::{count_frames, fixture};
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use sealcast::flv::{self, TagKind};
use sealcast::hls::parse_media_playlist;
use sealcast::kms::local::LocalKms;
use sealcast::rtmp::chunk::{encode_message, message_type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Start deadline (handshake to publish) of the server the slow-loris and
/// flood cases run against.
const SHORT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(6);
/// Start deadline of the server the table cases run against: longer than any
/// wait here, so a close the table sees is the server's reaction to the bytes,
/// never the deadline, and no assertion needs a clock.
const LONG_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(600);
const SEGMENT_SECS: f64 = 2.0;
/// Safety net for any single wait; no assertion depends on it.
const SAFETY: Duration = Duration::from_secs(60);
const GOOD_FIXTURE: &str = "high-bframes-aac48k.flv";
const MIXED_KEY: &str = "sk_mixed_0123456789abcdef";

fn hostile_key(i: usize) -> String {
    format!("sk_hostile_{i:02}_0123456789")
}

fn extra_toml(handshake_timeout: Duration) -> String {
    let mut toml = format!(
        "[rtmp]\nhandshake_timeout_secs = {}\nmax_connections_per_ip = 100\n\
         [hls]\nsegment_duration_secs = {SEGMENT_SECS}\nplaylist_window = 60\n\
         [[streams]]\napp = \"live\"\nname = \"mixed\"\nkey = \"{MIXED_KEY}\"\n",
        handshake_timeout.as_secs()
    );
    for i in 0..16 {
        toml.push_str(&format!(
            "[[streams]]\napp = \"live\"\nname = \"h{i:02}\"\nkey = \"{}\"\n",
            hostile_key(i)
        ));
    }
    toml
}

/// Tags of the good fixture: (kind, timestamp, body).
fn fixture_tags() -> &'static [(TagKind, u32, Vec<u8>)] {
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

fn first_body(kind: TagKind) -> Vec<u8> {
    fixture_tags().iter().find(|t| t.0 == kind).unwrap().2.clone()
}

/// One message in chunks of 128 (the chunk size the server assumes until a
/// client sets another), type 0 header on `csid`.
fn message(csid: u32, type_id: u8, stream_id: u32, timestamp_ms: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(&mut out, 128, csid, type_id, stream_id, timestamp_ms, body);
    out
}

fn command(name: &str, tx: f64, stream_id: u32, object: Amf0Value, args: Vec<Amf0Value>) -> Vec<u8> {
    let message = RtmpMessage::Amf0Command {
        command_name: name.to_owned(),
        transaction_id: tx,
        command_object: object,
        additional_arguments: args,
    };
    let payload = message.into_message_payload(RtmpTimestamp::new(0), stream_id).unwrap();
    self::message(3, payload.type_id, stream_id, 0, &payload.data)
}

fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_owned())
}

fn connect_command(app: &str) -> Vec<u8> {
    let mut props = HashMap::new();
    props.insert("app".to_owned(), string(app));
    props.insert("tcUrl".to_owned(), string(&format!("rtmp://127.0.0.1/{app}")));
    command("connect", 1.0, 0, Amf0Value::Object(props), vec![])
}

fn ping() -> Vec<u8> {
    message(2, message_type::USER_CONTROL, 0, 0, &[0, 6, 0, 0, 0x30, 0x39])
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    message(2, message_type::SET_CHUNK_SIZE, 0, 0, &size.to_be_bytes())
}

/// An AMF0 body: a string, a number, then `levels` nested objects.
fn nested_command(name: &str, levels: usize) -> Vec<u8> {
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
struct Observed {
    /// It answered our ping after the hostile bytes.
    pong: bool,
    /// The server closed the connection.
    closed: bool,
    /// Bytes it sent at all.
    bytes: usize,
    /// Status codes of every command it sent.
    codes: Vec<String>,
}

/// A raw client: real socket, rml_rtmp's client handshake, our own chunks;
/// the server's replies read with rml_rtmp's deserializer.
struct Raw {
    socket: TcpStream,
    /// Whether the handshake was done (and replies are RTMP chunks).
    rtmp: bool,
    reader: ChunkDeserializer,
    received: Vec<RtmpMessage>,
    observed: Observed,
}

impl Raw {
    async fn tcp(addr: SocketAddr) -> Self {
        Self {
            socket: TcpStream::connect(addr).await.unwrap(),
            rtmp: false,
            reader: ChunkDeserializer::new(),
            received: Vec::new(),
            observed: Observed::default(),
        }
    }

    async fn handshaken(addr: SocketAddr) -> Self {
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
    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.socket.write_all(bytes).await;
    }

    fn decode(&mut self, bytes: &[u8]) {
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
    async fn read_some(&mut self) -> bool {
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
    async fn wait_for(&mut self, done: impl Fn(&Raw) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.read_some().await {
                return done(self);
            }
        }
    }

    async fn wait_for_code(&mut self, code: &str) -> bool {
        self.wait_for(|raw| raw.observed.codes.iter().any(|c| c == code)).await
    }

    async fn connect_app(&mut self, app: &str) {
        self.send(&connect_command(app)).await;
        assert!(
            self.wait_for_code("NetConnection.Connect.Success").await,
            "connect failed"
        );
    }

    /// connect, createStream, publish; returns the publish status code.
    async fn publish(&mut self, app: &str, key: &str) -> String {
        self.connect_app(app).await;
        self.publish_again(key).await
    }

    /// createStream and publish on an already connected client.
    async fn publish_again(&mut self, key: &str) -> String {
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
    async fn observe(mut self) -> Observed {
        if self.rtmp {
            self.send(&ping()).await;
        }
        self.wait_for(|raw| raw.observed.pong).await;
        self.observed
    }
}

/// What the server must do with a case's connection.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Keep serving: it answers a ping afterwards. These status codes came.
    Open(&'static [&'static str]),
    /// Close the connection promptly, without answering the ping, after
    /// sending these status codes.
    Closed(&'static [&'static str]),
    /// Close without sending a single byte.
    Refused,
}

type Run = fn(SocketAddr) -> Pin<Box<dyn Future<Output = Raw> + Send>>;

struct Case {
    name: &'static str,
    expect: Expect,
    run: Run,
}

fn check(name: &str, expect: Expect, observed: &Observed) {
    let codes = match expect {
        Expect::Open(codes) => {
            assert!(observed.pong, "{name}: no pong: {observed:?}");
            codes
        }
        Expect::Closed(codes) => {
            assert!(!observed.pong, "{name}: still serving: {observed:?}");
            assert!(observed.closed, "{name}: not closed");
            codes
        }
        Expect::Refused => {
            assert_eq!(observed.bytes, 0, "{name}: {observed:?}");
            assert!(observed.closed, "{name}: not closed");
            &[]
        }
    };
    for code in codes {
        assert!(
            observed.codes.iter().any(|c| c == code),
            "{name}: no {code}: {observed:?}"
        );
    }
}

const PUBLISH_START: &[&str] = &["NetStream.Publish.Start"];

/// A client publishing on hostile stream `i`.
async fn publisher(addr: SocketAddr, i: usize) -> Raw {
    let mut raw = Raw::handshaken(addr).await;
    assert_eq!(raw.publish("live", &hostile_key(i)).await, "NetStream.Publish.Start");
    raw
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "garbage before the handshake (an HTTP request)",
            expect: Expect::Refused,
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::tcp(addr).await;
                    raw.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").await;
                    raw
                })
            },
        },
        Case {
            name: "wrong handshake version (C0 = 6, RTMPE)",
            expect: Expect::Refused,
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::tcp(addr).await;
                    let mut c0c1 = vec![6_u8];
                    c0c1.extend_from_slice(&[0; 1536]);
                    raw.send(&c0c1).await;
                    raw
                })
            },
        },
        Case {
            name: "truncated handshake, then end of stream",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::tcp(addr).await;
                    let c0c1 = Handshake::new(PeerType::Client).generate_outbound_p0_and_p1().unwrap();
                    raw.send(&c0c1[..700]).await;
                    raw.socket.shutdown().await.unwrap();
                    raw
                })
            },
        },
        Case {
            name: "garbage after the handshake",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").await;
                    raw
                })
            },
        },
        Case {
            name: "type 3 chunk on a chunk stream never used",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.send(&[0xC9, 1, 2, 3, 4, 5]).await;
                    raw
                })
            },
        },
        Case {
            name: "rml_rtmp panic (a): bare @setDataFrame before publish",
            expect: Expect::Open(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    let mut body = vec![0x02, 0x00, 0x0D];
                    body.extend_from_slice(b"@setDataFrame");
                    raw.send(&message(4, message_type::DATA_AMF0, 1, 0, &body)).await;
                    raw
                })
            },
        },
        Case {
            name: "rml_rtmp panic (c): type 1 header shrinking the length mid-message",
            expect: Expect::Closed(&["NetConnection.Connect.Success"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.connect_app("live").await;
                    let whole = message(6, message_type::VIDEO, 1, 0, &[0x27; 300]);
                    raw.send(&whole[..12 + 128]).await;
                    raw.send(&[0x46, 0, 0, 33, 0, 0, 10, message_type::VIDEO]).await;
                    raw.send(&[0x27; 10]).await;
                    raw
                })
            },
        },
        Case {
            name: "chunk size 0",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.send(&set_chunk_size(0)).await;
                    raw
                })
            },
        },
        Case {
            name: "chunk size 2^31-1",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.send(&set_chunk_size(0x7FFF_FFFF)).await;
                    raw
                })
            },
        },
        Case {
            name: "message length of 16 MB before publish",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.send(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, message_type::VIDEO, 1, 0, 0, 0])
                        .await;
                    raw.send(&[0; 128]).await;
                    raw
                })
            },
        },
        Case {
            name: "message length of 16 MB while publishing",
            expect: Expect::Closed(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 0).await;
                    raw.send(&[0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, message_type::VIDEO, 1, 0, 0, 0])
                        .await;
                    raw.send(&[0x17; 128]).await;
                    raw
                })
            },
        },
        Case {
            name: "unknown message types",
            expect: Expect::Open(&["NetConnection.Connect.Success"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.connect_app("live").await;
                    for type_id in [0x07, 0x0A, 0x0B, 0x10, 0x13, 0x30, 0x7F, 0xFF] {
                        raw.send(&message(7, type_id, 0, 0, &[1, 2, 3, 4, 5])).await;
                    }
                    raw
                })
            },
        },
        Case {
            name: "tag bodies of zero bytes",
            expect: Expect::Open(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 1).await;
                    raw.send(&message(4, message_type::AUDIO, 1, 0, &[])).await;
                    raw.send(&message(6, message_type::VIDEO, 1, 0, &[])).await;
                    raw.send(&message(6, message_type::VIDEO, 1, 40, &first_body(TagKind::Video)))
                        .await;
                    raw.send(&message(6, message_type::VIDEO, 1, 80, &[])).await;
                    raw
                })
            },
        },
        Case {
            name: "AVC NALU lengths past the end of the tag",
            expect: Expect::Open(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 2).await;
                    raw.send(&message(6, message_type::VIDEO, 1, 0, &first_body(TagKind::Video)))
                        .await;
                    let frames: [&[u8]; 3] = [
                        &[0x17, 0x01, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x65, 0x88],
                        &[0x27, 0x01, 0, 0, 0, 0x00, 0x00, 0x00, 0x10, 0x41, 0x9A],
                        &[0x27, 0x01, 0, 0, 0, 0x00, 0x00, 0x00],
                    ];
                    for (i, frame) in frames.iter().enumerate() {
                        raw.send(&message(6, message_type::VIDEO, 1, 33 * i as u32, frame))
                            .await;
                    }
                    raw
                })
            },
        },
        Case {
            name: "video before its sequence header",
            expect: Expect::Open(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 3).await;
                    let frames: [&[u8]; 2] = [
                        &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9A],
                        &[0x17, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88],
                    ];
                    for (i, frame) in frames.iter().enumerate() {
                        raw.send(&message(6, message_type::VIDEO, 1, 33 * i as u32, frame))
                            .await;
                    }
                    raw
                })
            },
        },
        Case {
            name: "AAC config with an invalid sample-rate index",
            expect: Expect::Open(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 4).await;
                    // AudioSpecificConfig: AAC LC, sampling index 13
                    // (reserved), then 15 (escape) cut short; raw frames.
                    let tags: [&[u8]; 4] = [
                        &[0xAF, 0x00, 0x16, 0x90],
                        &[0xAF, 0x00, 0x17, 0x90],
                        &[0xAF, 0x01, 0x21, 0x10, 0x04],
                        &[0xAF, 0x01],
                    ];
                    for (i, tag) in tags.iter().enumerate() {
                        raw.send(&message(4, message_type::AUDIO, 1, 21 * i as u32, tag)).await;
                    }
                    raw
                })
            },
        },
        Case {
            name: "publish without connect",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    let args = vec![string(OTHER_KEY), string("live")];
                    raw.send(&command("publish", 0.0, 1, Amf0Value::Null, args)).await;
                    raw
                })
            },
        },
        Case {
            name: "publish to an app that does not exist",
            expect: Expect::Closed(&["NetStream.Publish.Denied"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.publish("nope", OTHER_KEY).await;
                    raw
                })
            },
        },
        Case {
            name: "publish with a wrong key",
            expect: Expect::Closed(&["NetStream.Publish.Denied"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.publish("live", "sk_wrong_0123456789abcdef").await;
                    raw
                })
            },
        },
        Case {
            name: "publish to the good stream while it is live",
            expect: Expect::Closed(&["NetStream.Publish.BadName"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.publish("live", DEMO_KEY).await;
                    raw
                })
            },
        },
        Case {
            name: "two publishes on one connection",
            expect: Expect::Open(&["NetStream.Publish.Start", "NetStream.Publish.BadName"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 5).await;
                    assert_eq!(raw.publish_again(&hostile_key(6)).await, "NetStream.Publish.BadName");
                    raw
                })
            },
        },
        Case {
            name: "play request",
            expect: Expect::Closed(&["NetStream.Play.Failed"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.connect_app("live").await;
                    let args = vec![string(DEMO_KEY)];
                    raw.send(&command("play", 0.0, 1, Amf0Value::Null, args)).await;
                    raw
                })
            },
        },
        Case {
            name: "second connect on one connection",
            expect: Expect::Closed(&["NetConnection.Connect.Rejected"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    raw.connect_app("live").await;
                    raw.send(&connect_command("live")).await;
                    raw
                })
            },
        },
        Case {
            name: "AMF0 command nested 100,000 levels before publish",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    let body = nested_command("connect", 100_000);
                    raw.send(&message(3, message_type::COMMAND_AMF0, 0, 0, &body)).await;
                    raw
                })
            },
        },
        Case {
            name: "AMF0 command nested 100,000 levels while publishing",
            expect: Expect::Closed(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 7).await;
                    let body = nested_command("FCUnpublish", 100_000);
                    raw.send(&message(3, message_type::COMMAND_AMF0, 1, 0, &body)).await;
                    raw
                })
            },
        },
        Case {
            name: "AMF0 metadata nested 100,000 levels while publishing",
            expect: Expect::Open(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 8).await;
                    let body = nested_command("onMetaData", 100_000);
                    raw.send(&message(5, message_type::DATA_AMF0, 1, 0, &body)).await;
                    raw
                })
            },
        },
        Case {
            name: "AMF0 string whose length runs past the message",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    let body = [
                        0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0x02, 0xFF, 0x00, b'x',
                    ];
                    raw.send(&message(3, message_type::COMMAND_AMF0, 0, 0, &body)).await;
                    raw
                })
            },
        },
        Case {
            name: "Abort message in the middle of a message",
            expect: Expect::Open(&["NetConnection.Connect.Success"]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    // Half of a 300-byte command on csid 3, aborted; then a
                    // whole connect on csid 3 is read normally.
                    let partial = message(3, message_type::COMMAND_AMF0, 0, 0, &[0x05; 300]);
                    raw.send(&partial[..12 + 128]).await;
                    raw.send(&message(2, message_type::ABORT, 0, 0, &3_u32.to_be_bytes()))
                        .await;
                    raw.connect_app("live").await;
                    raw
                })
            },
        },
        Case {
            name: "malformed aggregate message",
            expect: Expect::Open(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = publisher(addr, 9).await;
                    // An audio tag, then a video tag claiming 64 KiB, then
                    // a header cut short.
                    let mut body = vec![8, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0xAF, 0x01, 0, 0, 0, 13];
                    body.extend_from_slice(&[9, 0x01, 0x00, 0x00, 0, 0, 40, 0, 0, 0, 0, 0x27, 0x01]);
                    raw.send(&message(6, message_type::AGGREGATE, 1, 0, &body)).await;
                    raw.send(&message(6, message_type::AGGREGATE, 1, 0, &[9, 0, 0])).await;
                    raw
                })
            },
        },
        Case {
            name: "too many chunk streams",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    let mut bytes = Vec::new();
                    for csid in 10..90 {
                        bytes.extend(message(csid, 0x30, 0, 0, &[]));
                    }
                    raw.send(&bytes).await;
                    raw
                })
            },
        },
        Case {
            name: "too many unfinished messages",
            expect: Expect::Closed(&[]),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    let mut bytes = Vec::new();
                    for csid in 10..30 {
                        let whole = message(csid, 0x30, 0, 0, &[0; 1000]);
                        bytes.extend_from_slice(&whole[..12 + 128]);
                    }
                    raw.send(&bytes).await;
                    raw
                })
            },
        },
        Case {
            name: "rml_rtmp panic (b): a whole fixture, audio and video interleaved chunk by chunk",
            expect: Expect::Open(PUBLISH_START),
            run: |addr| {
                Box::pin(async move {
                    let mut raw = Raw::handshaken(addr).await;
                    assert_eq!(raw.publish("live", MIXED_KEY).await, "NetStream.Publish.Start");
                    raw.send(&interleaved_fixture()).await;
                    raw
                })
            },
        },
    ]
}

/// Chunks with compressed headers as encoders write them (RTMP spec
/// 5.3.1.2): type 0 for a chunk stream's first message (and whenever
/// asked), type 1 when length or type changed, type 2 when only the delta
/// changed, type 3 when nothing did. Extended timestamps go on type 0/1/2
/// headers when the field reaches 0xFFFFFF, repeated on type 3 chunks or
/// not, per chunk stream (both behaviours exist in encoders).
struct Chunker {
    /// Per csid: (timestamp, length, type, last type 0/1/2 timestamp field).
    last: HashMap<u32, (u32, usize, u8, u32)>,
}

impl Chunker {
    const CHUNK: usize = 128;

    fn chunks(&mut self, csid: u32, type_id: u8, ts: u32, body: &[u8], type0: bool, repeat_ext: bool) -> Vec<Vec<u8>> {
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
fn interleaved_fixture() -> Vec<u8> {
    const BASE_MS: u32 = 0x00FF_F000;
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

/// A client that sends its handshake one byte per second.
async fn slow_loris(addr: SocketAddr) -> usize {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let c0c1 = Handshake::new(PeerType::Client).generate_outbound_p0_and_p1().unwrap();
    for (sent, byte) in c0c1.iter().enumerate() {
        // The first write after the server's close may still succeed; the
        // next one fails.
        if socket.write_all(&[*byte]).await.is_err() {
            return sent;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    c0c1.len()
}

/// 300 connections at once, idle. The per-IP cap (100) closes the excess
/// at once and the start deadline the rest; while they are held, one more
/// connection from this address is refused; afterwards publishing works.
async fn flood(addr: SocketAddr) {
    let mut sockets = Vec::with_capacity(300);
    for _ in 0..300 {
        sockets.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut extra = Raw::tcp(addr).await;
    extra
        .send(&Handshake::new(PeerType::Client).generate_outbound_p0_and_p1().unwrap())
        .await;
    let observed = extra.observe().await;
    check(
        "connection while the flood holds the per-IP slots",
        Expect::Refused,
        &observed,
    );
    for mut socket in sockets {
        let mut buf = [0_u8; 64];
        let read = tokio::time::timeout(SAFETY, socket.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "an idle flood connection got data or stayed open"
        );
    }
    let mut raw = publisher(addr, 10).await;
    let observed = {
        raw.send(&ping()).await;
        raw.wait_for(|raw| raw.observed.pong).await;
        raw.observed
    };
    check("publish after the flood", Expect::Open(PUBLISH_START), &observed);
}

/// Runs one case against `server` and checks the verdict; the server must
/// still run afterwards.
async fn run_case(case: &Case, server: &TestServer) {
    let raw = tokio::time::timeout(SAFETY, (case.run)(server.rtmp))
        .await
        .unwrap_or_else(|_| panic!("{}: stuck", case.name));
    let observed = tokio::time::timeout(SAFETY, raw.observe())
        .await
        .unwrap_or_else(|_| panic!("{}: no verdict", case.name));
    check(case.name, case.expect, &observed);
    assert!(server.is_running(), "server exited after: {}", case.name);
}

/// The row called `name`, alone: its own server, `live/demo` held live by
/// a good publisher (as the row about publishing to a live stream needs),
/// the verdict checked, and the server still running.
async fn run_row(name: &str) {
    let case = cases()
        .into_iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("no row {name:?}"));
    let server = TestServer::start(&extra_toml(LONG_HANDSHAKE_TIMEOUT)).await;
    let good_fixture = Fixture::load(GOOD_FIXTURE);
    let mut good = Publisher::publish(server.rtmp, DEMO_KEY).await;
    good.send_metadata(&good_fixture.metadata).await;
    good.send_tags(good_fixture.split_at_ms(3000).0).await;
    run_case(&case, &server).await;
    good.finish().await;
    server.stop().await;
}

/// A test per row of [`cases`], named after it, and a test that no row
/// lacks one.
macro_rules! hostile_rows {
    ($($test:ident => $row:literal,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run_row($row).await;
            }
        )*

        #[test]
        fn every_row_has_its_test() {
            let tested = [$($row),*];
            let rows: Vec<&str> = cases().iter().map(|case| case.name).collect();
            assert_eq!(rows, tested);
        }
    };
}

hostile_rows! {
    garbage_before_the_handshake => "garbage before the handshake (an HTTP request)",
    wrong_handshake_version => "wrong handshake version (C0 = 6, RTMPE)",
    truncated_handshake_then_end_of_stream => "truncated handshake, then end of stream",
    garbage_after_the_handshake => "garbage after the handshake",
    type_3_chunk_on_an_unused_chunk_stream => "type 3 chunk on a chunk stream never used",
    bare_set_data_frame_before_publish => "rml_rtmp panic (a): bare @setDataFrame before publish",
    type_1_header_shrinking_the_length_mid_message =>
        "rml_rtmp panic (c): type 1 header shrinking the length mid-message",
    chunk_size_0 => "chunk size 0",
    chunk_size_2_pow_31_minus_1 => "chunk size 2^31-1",
    message_of_16_mb_before_publish => "message length of 16 MB before publish",
    message_of_16_mb_while_publishing => "message length of 16 MB while publishing",
    unknown_message_types => "unknown message types",
    tag_bodies_of_zero_bytes => "tag bodies of zero bytes",
    avc_nalu_lengths_past_the_end_of_the_tag => "AVC NALU lengths past the end of the tag",
    video_before_its_sequence_header => "video before its sequence header",
    aac_config_with_an_invalid_sample_rate_index => "AAC config with an invalid sample-rate index",
    publish_without_connect => "publish without connect",
    publish_to_an_app_that_does_not_exist => "publish to an app that does not exist",
    publish_with_a_wrong_key => "publish with a wrong key",
    publish_to_the_good_stream_while_it_is_live => "publish to the good stream while it is live",
    two_publishes_on_one_connection => "two publishes on one connection",
    play_request => "play request",
    second_connect_on_one_connection => "second connect on one connection",
    amf0_command_nested_100000_levels_before_publish => "AMF0 command nested 100,000 levels before publish",
    amf0_command_nested_100000_levels_while_publishing => "AMF0 command nested 100,000 levels while publishing",
    amf0_metadata_nested_100000_levels_while_publishing => "AMF0 metadata nested 100,000 levels while publishing",
    amf0_string_whose_length_runs_past_the_message => "AMF0 string whose length runs past the message",
    abort_message_in_the_middle_of_a_message => "Abort message in the middle of a message",
    malformed_aggregate_message => "malformed aggregate message",
    too_many_chunk_streams => "too many chunk streams",
    too_many_unfinished_messages => "too many unfinished messages",
    whole_fixture_interleaved_chunk_by_chunk =>
        "rml_rtmp panic (b): a whole fixture, audio and video interleaved chunk by chunk",
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_while_a_good_stream_is_pushed() {
    let server = TestServer::start(&extra_toml(LONG_HANDSHAKE_TIMEOUT)).await;
    let deadline_server = TestServer::start(&extra_toml(SHORT_HANDSHAKE_TIMEOUT)).await;
    let addr = server.rtmp;
    let url = format!("rtmp://{addr}/live/{DEMO_KEY}");
    let log = server.dir.path().join("ffmpeg.log");
    let mut ffmpeg = Proc::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "1",
                "-i",
            ])
            .arg(fixture(GOOD_FIXTURE))
            .args(["-c", "copy", "-f", "flv"])
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    // The good stream is live once its first segment is out.
    until_listed(server.http, "/live/demo/index.m3u8").await;

    let loris = tokio::spawn(slow_loris(deadline_server.rtmp));
    let cases = cases();
    assert!(cases.len() + 2 >= 25, "{} cases", cases.len() + 2);
    for case in &cases {
        run_case(case, &server).await;
    }

    // Slow loris: cut off at the start deadline, long before its handshake.
    // One byte a second, so the byte count bounds how long it was let in.
    let sent = loris.await.unwrap();
    assert!(sent < 1537, "slow loris finished its handshake");

    tokio::time::timeout(SAFETY, flood(deadline_server.rtmp))
        .await
        .expect("flood case stuck");
    assert!(deadline_server.is_running(), "server exited after the flood");

    // The good stream: ffmpeg pushed all of it without an error.
    let status = tokio::task::spawn_blocking(move || ffmpeg.wait(SAFETY)).await.unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "ffmpeg failed: {stderr}");

    // Its playlist: a segment every 2 s, no gap, no discontinuity.
    let text = until_ended(server.http, "/live/demo/index.m3u8").await;
    let playlist = parse_media_playlist(&text).unwrap();
    assert!(!text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    let durations: Vec<f64> = playlist.segments.iter().map(|s| s.duration_secs).collect();
    assert!((9..=11).contains(&durations.len()), "{text}");
    let (last, full) = durations.split_last().unwrap();
    for d in full {
        assert!((d - SEGMENT_SECS).abs() < 0.1, "segment of {d} s: {text}");
    }
    assert!(*last <= SEGMENT_SECS + 0.1, "{text}");
    let total: f64 = durations.iter().sum();
    assert!((total - 20.0).abs() < 0.5, "{total} s of 20: {text}");

    // The interleaved publish plays: every frame of the fixture is there.
    until_ended(server.http, "/live/mixed/index.m3u8").await;
    let mixed = server.data_dir().join("live/mixed/index.m3u8");
    let decrypted = server.dir.path().join("mixed.ts");
    let kms = LocalKms::open_or_create(&server.data_dir().join("keyring.json")).unwrap();
    let segments = sealcast::tools::package::decrypt(&mixed, &decrypted, &kms)
        .await
        .unwrap();
    assert!(segments >= 5, "{segments} segments");
    assert_eq!(count_frames(&decrypted), count_frames(&fixture(GOOD_FIXTURE)));
    assert_eq!(crate::support::ffmpeg_errors(Path::new(&decrypted)), "");

    assert!(server.is_running());
    server.stop().await;
}
