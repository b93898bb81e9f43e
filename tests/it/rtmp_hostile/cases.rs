//! The table: what each hostile client does, and what the server must do
//! with its connection.

use super::raw::*;
use super::*;

/// What the server must do with a case's connection.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expect {
    /// Keep serving: it answers a ping afterwards. These status codes came.
    Open(&'static [&'static str]),
    /// Close the connection promptly, without answering the ping, after
    /// sending these status codes.
    Closed(&'static [&'static str]),
    /// Close without sending a single byte.
    Refused,
}

pub(super) type Run = fn(SocketAddr) -> Pin<Box<dyn Future<Output = Raw> + Send>>;

pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) expect: Expect,
    pub(super) run: Run,
}

pub(super) fn check(name: &str, expect: Expect, observed: &Observed) {
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

pub(super) const PUBLISH_START: &[&str] = &["NetStream.Publish.Start"];

/// A client publishing on hostile stream `i`.
pub(super) async fn publisher(addr: SocketAddr, i: usize) -> Raw {
    let mut raw = Raw::handshaken(addr).await;
    assert_eq!(raw.publish("live", &hostile_key(i)).await, "NetStream.Publish.Start");
    raw
}

pub(super) fn cases() -> Vec<Case> {
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
