//! RTMP ingest over real sockets: `serve` on 127.0.0.1:0, driven by
//! rml_rtmp's client session, raw bytes, and (when installed) ffmpeg.

// Test code: an unwrap that fails is a test that fails, with its cause.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::rtmp_client::client_handshake;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use sealcast::ingest::{IngestLimits, MediaMessage, PublishAuthorizer, PublishGrant, PublishRefused, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Safety net around each whole test; no assertion depends on it.
const SAFETY: Duration = Duration::from_secs(30);

type Call = (String, String, Option<String>);
type Grant = (String, mpsc::Receiver<MediaMessage>);

/// Grants app "live" + key "sk_good" with a small channel (so backpressure is
/// exercised) and hands the receiver to the test.
struct Registry {
    calls: Mutex<Vec<Call>>,
    grants: mpsc::UnboundedSender<Grant>,
}

impl PublishAuthorizer for Registry {
    fn authorize(
        &self,
        app: &str,
        stream_key: &str,
        query: Option<&str>,
        _peer: SocketAddr,
    ) -> Result<PublishGrant, PublishRefused> {
        self.calls
            .lock()
            .unwrap()
            .push((app.to_owned(), stream_key.to_owned(), query.map(str::to_owned)));
        if app != "live" || stream_key != "sk_good" {
            return Err(PublishRefused::BadKey);
        }
        let (media, rx) = mpsc::channel(4);
        let stream = format!("{app}/demo");
        self.grants.send((stream.clone(), rx)).unwrap();
        Ok(PublishGrant { stream, media })
    }
}

struct Server {
    addr: SocketAddr,
    registry: Arc<Registry>,
    grants: mpsc::UnboundedReceiver<Grant>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(limits: IngestLimits) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (grants_tx, grants) = mpsc::unbounded_channel();
        let registry = Arc::new(Registry {
            calls: Mutex::new(Vec::new()),
            grants: grants_tx,
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let authorizer: Arc<dyn PublishAuthorizer> = registry.clone();
        let task = tokio::spawn(serve(listener, authorizer, limits, async move {
            let _ = shutdown_rx.await;
        }));
        Self {
            addr,
            registry,
            grants,
            shutdown: Some(shutdown_tx),
            task,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.registry.calls.lock().unwrap().clone()
    }
}

fn call(app: &str, key: &str, query: Option<&str>) -> Call {
    (app.to_owned(), key.to_owned(), query.map(str::to_owned))
}

/// Collects a publish's media until its channel closes.
fn collect(mut rx: mpsc::Receiver<MediaMessage>) -> JoinHandle<Vec<MediaMessage>> {
    tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(message) = rx.recv().await {
            got.push(message);
        }
        got
    })
}

async fn with_safety_net(test: impl Future<Output = ()>) {
    tokio::time::timeout(SAFETY, test)
        .await
        .expect("test did not finish within the safety timeout");
}

struct Client {
    socket: TcpStream,
    session: ClientSession,
    events: VecDeque<ClientSessionEvent>,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let remaining = client_handshake(&mut socket).await;
        let (session, initial) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut client = Self {
            socket,
            session,
            events: VecDeque::new(),
            buf: vec![0_u8; 4096],
        };
        client.apply(initial).await;
        client.feed(&remaining).await;
        client
    }

    async fn apply(&mut self, results: Vec<ClientSessionResult>) {
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    self.socket.write_all(&packet.bytes).await.unwrap();
                }
                ClientSessionResult::RaisedEvent(event) => self.events.push_back(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
    }

    async fn send(&mut self, result: ClientSessionResult) {
        self.apply(vec![result]).await;
    }

    async fn feed(&mut self, bytes: &[u8]) {
        let results = self.session.handle_input(bytes).unwrap();
        self.apply(results).await;
    }

    /// The next event from the server, or `None` once it closed the socket.
    async fn next_event(&mut self) -> Option<ClientSessionEvent> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            let n = match self.socket.read(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            let input = self.buf[..n].to_vec();
            self.feed(&input).await;
        }
    }

    async fn wait_for(&mut self, wanted: impl Fn(&ClientSessionEvent) -> bool) {
        loop {
            match self.next_event().await {
                Some(event) if wanted(&event) => return,
                Some(_) => {}
                None => panic!("server closed the connection first"),
            }
        }
    }

    async fn connect_and_publish(addr: SocketAddr, raw_key: &str) -> Self {
        let mut client = Self::connect(addr).await;
        let request = client.session.request_connection("live".to_owned()).unwrap();
        client.send(request).await;
        client
            .wait_for(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))
            .await;
        let request = client
            .session
            .request_publishing(raw_key.to_owned(), PublishRequestType::Live)
            .unwrap();
        client.send(request).await;
        client
    }

    /// Half-closes and drains until the server closes too, so the server
    /// reads every byte we sent before it sees EOF (no RST).
    async fn close(mut self) {
        self.socket.shutdown().await.unwrap();
        while let Ok(n) = self.socket.read(&mut self.buf).await {
            if n == 0 {
                break;
            }
        }
    }
}

/// What the client sends (rml_rtmp's type) and what the server reads back.
fn test_metadata() -> StreamMetadata {
    let mut metadata = StreamMetadata::new();
    metadata.video_width = Some(320);
    metadata.video_height = Some(240);
    metadata.video_codec_id = Some(7);
    metadata.video_frame_rate = Some(30.0);
    metadata.audio_codec_id = Some(10);
    metadata.audio_sample_rate = Some(44100);
    metadata.audio_channels = Some(2);
    metadata.audio_is_stereo = Some(true);
    metadata.encoder = Some("sealcast-test".to_owned());
    metadata
}

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
        let mut server = Server::start(IngestLimits::default()).await;
        let mut client = Client::connect_and_publish(server.addr, "sk_good?x=1").await;
        client
            .wait_for(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await;
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
            let result = match message.clone() {
                MediaMessage::Metadata(_) => client.session.publish_metadata(&test_metadata()).unwrap(),
                MediaMessage::Video { timestamp_ms, body } => client
                    .session
                    .publish_video_data(body, RtmpTimestamp::new(timestamp_ms), false)
                    .unwrap(),
                MediaMessage::Audio { timestamp_ms, body } => client
                    .session
                    .publish_audio_data(body, RtmpTimestamp::new(timestamp_ms), false)
                    .unwrap(),
            };
            client.send(result).await;
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
        let mut server = Server::start(IngestLimits::default()).await;
        let mut client = Client::connect_and_publish(server.addr, "sk_bad").await;
        let mut refusal_code = None;
        while let Some(event) = client.next_event().await {
            match event {
                ClientSessionEvent::PublishRequestAccepted => panic!("bad key was accepted"),
                // A refused publish is answered with an error-level
                // onStatus, as nginx-rtmp does.
                ClientSessionEvent::UnhandleableOnStatusCode { code } => refusal_code = Some(code),
                _ => {}
            }
        }
        // The loop above ended, so the server closed the connection.
        assert_eq!(refusal_code.as_deref(), Some("NetStream.Publish.Denied"));
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
        let mut server = Server::start(IngestLimits::default()).await;

        // Not an RTMP handshake at all (C0 must be 3).
        let mut garbage = TcpStream::connect(server.addr).await.unwrap();
        garbage
            .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_until_closed(&mut garbage).await, 0);

        // A valid handshake, then a message that made rml_rtmp 0.8 panic.
        let mut hostile = TcpStream::connect(server.addr).await.unwrap();
        let _ = client_handshake(&mut hostile).await;
        let message = RtmpMessage::Amf0Data {
            values: vec![Amf0Value::Utf8String("@setDataFrame".to_owned())],
        };
        let mut serializer = ChunkSerializer::new();
        let payload = message.into_message_payload(RtmpTimestamp::new(0), 1).unwrap();
        let packet = serializer.serialize(&payload, false, false).unwrap();
        hostile.write_all(&packet.bytes).await.unwrap();
        // It is ignored now: the connection still answers a ping.
        let ping = RtmpMessage::UserControl {
            event_type: UserControlEventType::PingRequest,
            stream_id: None,
            buffer_length: None,
            timestamp: Some(RtmpTimestamp::new(77)),
        };
        let payload = ping.into_message_payload(RtmpTimestamp::new(0), 0).unwrap();
        let packet = serializer.serialize(&payload, false, false).unwrap();
        hostile.write_all(&packet.bytes).await.unwrap();
        let mut pong = [0_u8; 18];
        hostile.read_exact(&mut pong).await.unwrap();
        // Type 0 header on chunk stream 2, user control, event 7, timestamp 77.
        assert_eq!(pong[0], 0x02);
        assert_eq!(pong[7], 4);
        assert_eq!(pong[12..], [0, 7, 0, 0, 0, 77]);
        drop(hostile);

        assert!(!server.task.is_finished(), "serve must survive bad peers");
        let mut client = Client::connect_and_publish(server.addr, "sk_good").await;
        client
            .wait_for(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await;
        let (_, rx) = server.grants.recv().await.unwrap();
        let collector = collect(rx);
        let body = Bytes::from_static(&[0x17, 0x00, 0x00, 0x00, 0x00]);
        let result = client
            .session
            .publish_video_data(body.clone(), RtmpTimestamp::new(7), false)
            .unwrap();
        client.send(result).await;
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
        let mut server = Server::start(limits).await;
        let mut client = Client::connect_and_publish(server.addr, "sk_good").await;
        client
            .wait_for(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await;
        let (_, mut rx) = server.grants.recv().await.unwrap();
        // The client now sends nothing: the server must end the publish.
        assert_eq!(rx.recv().await, None);
        while client.next_event().await.is_some() {}
        assert!(!server.task.is_finished());
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_live_publishes_and_serve_returns() {
    with_safety_net(async {
        let mut server = Server::start(IngestLimits::default()).await;
        let mut client = Client::connect_and_publish(server.addr, "sk_good").await;
        client
            .wait_for(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await;
        let (_, mut rx) = server.grants.recv().await.unwrap();
        let body = Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]);
        let result = client
            .session
            .publish_audio_data(body.clone(), RtmpTimestamp::new(5), false)
            .unwrap();
        client.send(result).await;
        assert_eq!(rx.recv().await, Some(MediaMessage::Audio { timestamp_ms: 5, body }));

        server.shutdown.take().unwrap().send(()).unwrap();
        assert_eq!(rx.recv().await, None, "the media sender must be dropped");
        server.task.await.unwrap().unwrap();
        while client.next_event().await.is_some() {}
    })
    .await;
}

#[tokio::test]
async fn ffmpeg_publish_delivers_sequence_headers_and_frames() {
    if std::process::Command::new("ffmpeg").arg("-version").output().is_err() {
        println!("skipping: ffmpeg is not on PATH");
        return;
    }
    with_safety_net(async {
        let mut server = Server::start(IngestLimits::default()).await;
        let url = format!("rtmp://{}/live/sk_good", server.addr);
        let ffmpeg = tokio::task::spawn_blocking(move || {
            std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
                .args(["-f", "lavfi", "-i", "sine", "-t", "2"])
                .args(["-c:v", "libx264", "-g", "60", "-c:a", "aac", "-f", "flv"])
                .arg(url)
                .output()
        });
        let (stream, rx) = server.grants.recv().await.unwrap();
        assert_eq!(stream, "live/demo");
        let got = collect(rx).await.unwrap();
        let output = ffmpeg.await.unwrap().unwrap();
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

/// The RTMP handshake, or `false` when the server closes first.
async fn try_handshake(socket: &mut TcpStream) -> bool {
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake.generate_outbound_p0_and_p1().unwrap();
    if socket.write_all(&c0c1).await.is_err() {
        return false;
    }
    let mut buf = vec![0_u8; 4096];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        match handshake.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                if socket.write_all(&response_bytes).await.is_err() {
                    return false;
                }
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                return socket.write_all(&response_bytes).await.is_ok();
            }
        }
    }
}

#[tokio::test]
async fn connections_beyond_the_per_ip_cap_are_closed_at_once() {
    with_safety_net(async {
        let limits = IngestLimits {
            max_connections_per_ip: 2,
            ..IngestLimits::default()
        };
        let server = Server::start(limits).await;
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
        let mut server = Server::start(IngestLimits::default()).await;
        let url = format!("rtmp://{}/live/sk_good", server.addr);
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/high-bframes-aac48k.flv");
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
