//! RTMP ingest over real sockets: `sealcast::ingest::serve` on 127.0.0.1:0
//! with the test authorizer of `support::ingest`, driven by the publishing
//! client, raw bytes, and ffmpeg.

use std::time::Duration;

use bytes::Bytes;
use sealcast::amf0::write;
use sealcast::ingest::{IngestLimits, MediaMessage};
use sealcast::rtmp::chunk::{encode_message, message_type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::ingest::{GOOD_KEY, IngestServer, call, collect};
use crate::support::rtmp::{PublishOutcome, Publisher, client_handshake, try_handshake};
use crate::support::{fixture, with_safety_net};

/// Connects to app "live" and asks to publish with `raw_key`; panics unless
/// the server accepts.
async fn publish(addr: std::net::SocketAddr, raw_key: &str) -> Publisher {
    let mut client = Publisher::connect(addr, "live").await;
    assert_eq!(client.request_publish(raw_key).await, PublishOutcome::Accepted);
    client
}

/// What the client sends: an onMetaData script body as an encoder writes it.
fn test_metadata() -> Vec<u8> {
    let mut body = Vec::new();
    write::string(&mut body, "onMetaData");
    write::object_start(&mut body);
    for (name, value) in [
        ("width", 320.0),
        ("height", 240.0),
        ("videocodecid", 7.0),
        ("framerate", 30.0),
        ("audiocodecid", 10.0),
        ("audiosamplerate", 44100.0),
        ("audiochannels", 2.0),
    ] {
        write::name(&mut body, name);
        write::number(&mut body, value);
    }
    write::name(&mut body, "stereo");
    write::boolean(&mut body, true);
    write::name(&mut body, "encoder");
    write::string(&mut body, "sealcast-test");
    write::object_end(&mut body);
    body
}

/// What the server reads back from [`test_metadata`].
fn test_metadata_read() -> sealcast::flv::Metadata {
    sealcast::flv::Metadata {
        width: Some(320.0),
        height: Some(240.0),
        framerate: Some(30.0),
        audio_sample_rate: Some(44100.0),
        encoder: Some("sealcast-test".to_owned()),
        video_codec_id: Some(7.0),
        audio_codec_id: Some(10.0),
        ..Default::default()
    }
}

#[tokio::test]
async fn publish_forwards_metadata_and_media_in_order_then_ends() {
    with_safety_net(async {
        let mut server = IngestServer::start(IngestLimits::default()).await;
        let mut client = publish(server.addr, &format!("{GOOD_KEY}?x=1")).await;
        let (stream, rx) = server.grants.recv().await.unwrap();
        assert_eq!(stream, "live/demo");
        let collector = collect(rx);

        // Larger than the 4096-byte chunk size, so it arrives in several chunks.
        let big: Bytes = (0..10_000_u32).map(|i| (i % 251) as u8).collect();
        let mut keyframe = vec![0x17, 0x01, 0x00, 0x00, 0x00];
        keyframe.extend_from_slice(&big);
        let expected = vec![
            MediaMessage::Metadata(test_metadata_read()),
            MediaMessage::Video {
                timestamp_ms: 0,
                body: Bytes::from_static(&[0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64]),
            },
            MediaMessage::Audio {
                timestamp_ms: 0,
                body: Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]),
            },
            MediaMessage::Video {
                timestamp_ms: 0,
                body: Bytes::from(keyframe),
            },
            MediaMessage::Audio {
                timestamp_ms: 23,
                body: Bytes::from_static(&[0xAF, 0x01, 0x21, 0x00]),
            },
            MediaMessage::Video {
                timestamp_ms: 33,
                body: Bytes::from_static(&[0x27, 0x01, 0x00, 0x00, 0x21, 0x41, 0x9A]),
            },
            MediaMessage::Audio {
                timestamp_ms: 46,
                body: Bytes::from_static(&[0xAF, 0x01, 0x21, 0x01]),
            },
            // Past 0xFFFFFF: the chunk header switches to an extended timestamp.
            MediaMessage::Video {
                timestamp_ms: 0x0100_0010,
                body: Bytes::from_static(&[0x27, 0x01, 0x00, 0x00, 0x00, 0x41]),
            },
        ];
        for message in &expected {
            match message {
                MediaMessage::Metadata(_) => client.send_metadata(&test_metadata()).await,
                MediaMessage::Video { timestamp_ms, body } => client.send_video(*timestamp_ms, body).await,
                MediaMessage::Audio { timestamp_ms, body } => client.send_audio(*timestamp_ms, body).await,
            }
        }
        client.close().await;

        let got = collector.await.unwrap();
        assert_eq!(got, expected);
        assert_eq!(server.calls(), vec![call("live", "sk_good", Some("x=1"))]);
    })
    .await;
}

#[tokio::test]
async fn wrong_key_is_refused_without_a_grant() {
    with_safety_net(async {
        let mut server = IngestServer::start(IngestLimits::default()).await;
        let mut client = Publisher::connect(server.addr, "live").await;
        // A refused publish is answered with an error-level onStatus, as
        // nginx-rtmp does, and the server closes the connection.
        assert_eq!(
            client.request_publish("sk_bad").await,
            PublishOutcome::Refused {
                code: Some("NetStream.Publish.Denied".to_owned()),
                closed: true
            }
        );
        assert_eq!(server.calls(), vec![call("live", "sk_bad", None)]);
        assert!(server.grants.try_recv().is_err(), "no grant was made");
    })
    .await;
}

/// Reads until the server closes; returns how many bytes it sent.
async fn read_until_closed(socket: &mut TcpStream) -> usize {
    let mut buf = vec![0_u8; 4096];
    let mut total = 0;
    while let Ok(n) = socket.read(&mut buf).await {
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}

#[tokio::test]
async fn garbage_and_hostile_peers_are_closed_and_serving_continues() {
    with_safety_net(async {
        let mut server = IngestServer::start(IngestLimits::default()).await;

        // Not an RTMP handshake at all (C0 must be 3).
        let mut garbage = TcpStream::connect(server.addr).await.unwrap();
        garbage
            .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_until_closed(&mut garbage).await, 0);

        // A valid handshake, then a message that made rml_rtmp 0.8 panic.
        let mut hostile = TcpStream::connect(server.addr).await.unwrap();
        client_handshake(&mut hostile).await;
        // A bare "@setDataFrame" data message on stream 1.
        let mut set_data_frame = Vec::new();
        write::string(&mut set_data_frame, "@setDataFrame");
        let mut bytes = Vec::new();
        encode_message(&mut bytes, 128, 5, message_type::DATA_AMF0, 1, 0, &set_data_frame);
        hostile.write_all(&bytes).await.unwrap();
        // It is ignored now: the connection still answers a ping (user
        // control event 6, timestamp 77).
        let mut ping = Vec::new();
        encode_message(
            &mut ping,
            128,
            2,
            message_type::USER_CONTROL,
            0,
            0,
            &[0, 6, 0, 0, 0, 77],
        );
        hostile.write_all(&ping).await.unwrap();
        let mut pong = [0_u8; 18];
        hostile.read_exact(&mut pong).await.unwrap();
        // Type 0 header on chunk stream 2, user control, event 7, timestamp 77.
        assert_eq!(pong[0], 0x02);
        assert_eq!(pong[7], 4);
        assert_eq!(pong[12..], [0, 7, 0, 0, 0, 77]);
        drop(hostile);

        assert!(!server.task.is_finished(), "serve must survive bad peers");
        let mut client = publish(server.addr, GOOD_KEY).await;
        let (_, rx) = server.grants.recv().await.unwrap();
        let collector = collect(rx);
        let body = Bytes::from_static(&[0x17, 0x00, 0x00, 0x00, 0x00]);
        client.send_video(7, &body).await;
        client.close().await;
        assert_eq!(
            collector.await.unwrap(),
            vec![MediaMessage::Video { timestamp_ms: 7, body }]
        );
    })
    .await;
}

#[tokio::test]
async fn idle_publisher_is_closed_and_its_channel_ends() {
    with_safety_net(async {
        let limits = IngestLimits {
            idle_timeout: Duration::from_millis(300),
            ..IngestLimits::default()
        };
        let mut server = IngestServer::start(limits).await;
        let mut client = publish(server.addr, GOOD_KEY).await;
        let (_, mut rx) = server.grants.recv().await.unwrap();
        // The client now sends nothing: the server must end the publish.
        assert_eq!(rx.recv().await, None);
        client.wait_closed().await;
        assert!(!server.task.is_finished());
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_live_publishes_and_serve_returns() {
    with_safety_net(async {
        let mut server = IngestServer::start(IngestLimits::default()).await;
        let mut client = publish(server.addr, GOOD_KEY).await;
        let (_, mut rx) = server.grants.recv().await.unwrap();
        let body = Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]);
        client.send_audio(5, &body).await;
        assert_eq!(rx.recv().await, Some(MediaMessage::Audio { timestamp_ms: 5, body }));

        server.shutdown.take().unwrap().send(()).unwrap();
        assert_eq!(rx.recv().await, None, "the media sender must be dropped");
        server.task.await.unwrap().unwrap();
        client.wait_closed().await;
    })
    .await;
}

#[tokio::test]
async fn ffmpeg_publish_delivers_sequence_headers_and_frames() {
    with_safety_net(async {
        let mut server = IngestServer::start(IngestLimits::default()).await;
        let url = format!("rtmp://{}/live/{GOOD_KEY}", server.addr);
        let ffmpeg = tokio::task::spawn_blocking(move || {
            std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
                .args(["-f", "lavfi", "-i", "sine", "-t", "2"])
                .args(["-c:v", "libx264", "-g", "60", "-c:a", "aac", "-f", "flv"])
                .arg(url)
                .output()
                .expect("ffmpeg is required (scripts/test.sh installs it)")
        });
        let (stream, rx) = server.grants.recv().await.unwrap();
        assert_eq!(stream, "live/demo");
        let got = collect(rx).await.unwrap();
        let output = ffmpeg.await.unwrap();
        assert!(
            output.status.success(),
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );

        assert_eq!(server.calls(), vec![call("live", "sk_good", None)]);
        let videos: Vec<&Bytes> = got
            .iter()
            .filter_map(|m| match m {
                MediaMessage::Video { body, .. } => Some(body),
                _ => None,
            })
            .collect();
        let audios: Vec<&Bytes> = got
            .iter()
            .filter_map(|m| match m {
                MediaMessage::Audio { body, .. } => Some(body),
                _ => None,
            })
            .collect();
        assert!(
            videos.first().is_some_and(|b| b.starts_with(&[0x17, 0x00])),
            "first video message is the AVC sequence header"
        );
        assert!(
            audios.first().is_some_and(|b| b.starts_with(&[0xAF, 0x00])),
            "first audio message is the AAC sequence header"
        );
        assert!(videos.len() >= 50, "only {} video messages", videos.len());
        let metadata = got.iter().find_map(|m| match m {
            MediaMessage::Metadata(metadata) => Some(metadata),
            _ => None,
        });
        let metadata = metadata.expect("ffmpeg sends onMetaData");
        assert_eq!((metadata.width, metadata.height), (Some(320.0), Some(240.0)));
        // Video timestamps never go backwards within this short publish.
        let stamps: Vec<u32> = got
            .iter()
            .filter_map(|m| match m {
                MediaMessage::Video { timestamp_ms, .. } => Some(*timestamp_ms),
                _ => None,
            })
            .collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    })
    .await;
}

#[tokio::test]
async fn connections_beyond_the_per_ip_cap_are_closed_at_once() {
    with_safety_net(async {
        let limits = IngestLimits {
            max_connections_per_ip: 2,
            ..IngestLimits::default()
        };
        let server = IngestServer::start(limits).await;
        let mut first = TcpStream::connect(server.addr).await.unwrap();
        assert!(try_handshake(&mut first).await);
        let mut second = TcpStream::connect(server.addr).await.unwrap();
        assert!(try_handshake(&mut second).await);
        // The third from this address is closed without a single byte.
        let mut third = TcpStream::connect(server.addr).await.unwrap();
        let _ = third.write_all(&[3]).await;
        assert_eq!(read_until_closed(&mut third).await, 0);
        // Closing one frees its slot once the server has seen it go; until
        // then a newcomer may still be refused, so retry.
        drop(first);
        loop {
            let mut next = TcpStream::connect(server.addr).await.unwrap();
            if try_handshake(&mut next).await {
                break;
            }
        }
        assert!(!server.task.is_finished());
    })
    .await;
}

/// An encoder pushing faster than real time ends with its last frames and
/// deleteStream in one burst: every frame must reach the pipeline before the
/// publish ends (a regression: the end of a publish once dropped the frames
/// that arrived in the same read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_publish_delivers_every_frame_before_it_ends() {
    with_safety_net(async {
        let mut server = IngestServer::start(IngestLimits::default()).await;
        let url = format!("rtmp://{}/live/{GOOD_KEY}", server.addr);
        let fixture = fixture("high-bframes-aac48k.flv");
        let ffmpeg = tokio::task::spawn_blocking(move || {
            std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
                .arg(fixture)
                .args(["-c", "copy", "-f", "flv"])
                .arg(url)
                .output()
                .expect("ffmpeg is required (scripts/test.sh installs it)")
        });
        let (_, rx) = server.grants.recv().await.unwrap();
        let got = collect(rx).await.unwrap();
        let output = ffmpeg.await.unwrap();
        assert!(
            output.status.success(),
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let count = |video: bool| {
            got.iter()
                .filter(|m| match m {
                    MediaMessage::Video { .. } => video,
                    MediaMessage::Audio { .. } => !video,
                    MediaMessage::Metadata(_) => false,
                })
                .count()
        };
        // The fixture's frames, one sequence header per track, and the AVC
        // end-of-sequence message ffmpeg sends last.
        assert_eq!((count(true), count(false)), (300 + 2, 470 + 1));
    })
    .await;
}
