//! A reusable RTMP publishing client for tests: real handshake and chunk
//! stream over a real socket, driven by rml_rtmp's `ClientSession`, pushing
//! the tags of an FLV fixture as fast as the server reads them.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Cursor;
use std::net::SocketAddr;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::rml_amf0::{self, Amf0Value};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use sealcast::flv::{self, TagKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Outbound bytes are batched up to this size per `write_all`.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// One audio or video tag of a fixture, as RTMP carries it.
#[derive(Debug, Clone)]
pub struct MediaTag {
    pub kind: TagKind,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

/// An FLV file split into what a publisher sends: its onMetaData and its
/// audio/video tags in file order.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub metadata: StreamMetadata,
    pub tags: Vec<MediaTag>,
}

impl Fixture {
    /// Reads `fixtures/{name}`.
    pub fn load(name: &str) -> Self {
        let bytes = std::fs::read(super::fixture(name)).unwrap_or_else(|e| panic!("read fixture {name}: {e}"));
        let (_, tags) = flv::tags(&bytes).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
        let mut metadata = StreamMetadata::new();
        let mut media = Vec::new();
        for tag in tags {
            let tag = tag.unwrap_or_else(|e| panic!("fixture {name}: {e}"));
            match tag.kind {
                TagKind::Script => apply_on_metadata(&mut metadata, tag.body),
                kind => media.push(MediaTag {
                    kind,
                    timestamp_ms: tag.timestamp_ms,
                    body: Bytes::copy_from_slice(tag.body),
                }),
            }
        }
        assert!(!media.is_empty(), "fixture {name} has no media tags");
        Self { metadata, tags: media }
    }

    /// Tags with a timestamp below `ms`, and the rest.
    pub fn split_at_ms(&self, ms: u32) -> (&[MediaTag], &[MediaTag]) {
        let at = self
            .tags
            .iter()
            .position(|t| t.timestamp_ms >= ms)
            .unwrap_or(self.tags.len());
        self.tags.split_at(at)
    }
}

/// Reads an FLV script tag `"onMetaData", {…}` into rml_rtmp's metadata.
fn apply_on_metadata(metadata: &mut StreamMetadata, body: &[u8]) {
    let Ok(values) = rml_amf0::deserialize(&mut Cursor::new(body)) else {
        return;
    };
    let mut values = values.into_iter();
    if !matches!(values.next(), Some(Amf0Value::Utf8String(name)) if name == "onMetaData") {
        return;
    }
    if let Some(properties) = values.next().and_then(Amf0Value::get_object_properties) {
        metadata.apply_metadata_values(properties);
    }
}

/// How the server answered a publish request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Accepted,
    /// Refused with the status code it sent (`None` if it closed without
    /// one); `closed` is true when the server then closed the connection.
    Refused {
        code: Option<String>,
        closed: bool,
    },
}

/// Client side of the RTMP handshake; returns the bytes the server sent
/// after S2, which already belong to the chunk stream.
pub async fn client_handshake(socket: &mut TcpStream) -> Vec<u8> {
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake.generate_outbound_p0_and_p1().unwrap();
    socket.write_all(&c0c1).await.unwrap();
    let mut buf = vec![0_u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "server closed during handshake");
        match handshake.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await.unwrap();
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await.unwrap();
                return remaining_bytes;
            }
        }
    }
}

/// A connection publishing (or asking to publish) one stream.
pub struct Publisher {
    socket: TcpStream,
    session: ClientSession,
    events: VecDeque<ClientSessionEvent>,
    read_buf: Vec<u8>,
    /// Outbound bytes not yet written.
    out: Vec<u8>,
    /// The server closed its side (EOF or a socket error on read).
    peer_closed: bool,
}

impl Publisher {
    /// Handshake, then `connect` to `app`; waits for the server to accept it.
    pub async fn connect(addr: SocketAddr, app: &str) -> Self {
        let mut socket = TcpStream::connect(addr).await.expect("connect to the RTMP server");
        socket.set_nodelay(true).unwrap();
        let remaining = client_handshake(&mut socket).await;
        let (session, initial) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut client = Self {
            socket,
            session,
            events: VecDeque::new(),
            read_buf: vec![0_u8; 16 * 1024],
            out: Vec::with_capacity(WRITE_BATCH_BYTES * 2),
            peer_closed: false,
        };
        client.apply(initial);
        client.feed(&remaining);
        let request = client.session.request_connection(app.to_owned()).unwrap();
        client.apply(vec![request]);
        client.flush().await;
        loop {
            match client.next_event().await {
                Some(ClientSessionEvent::ConnectionRequestAccepted) => return client,
                Some(ClientSessionEvent::ConnectionRequestRejected { description }) => {
                    panic!("connect to {app} rejected: {description}")
                }
                Some(_) => {}
                None => panic!("server closed the connection before accepting connect"),
            }
        }
    }

    /// Asks to publish with `stream_key` and waits for the answer. After a
    /// refusal it reads on until the server closes the connection.
    pub async fn request_publish(&mut self, stream_key: &str) -> PublishOutcome {
        let request = self
            .session
            .request_publishing(stream_key.to_owned(), PublishRequestType::Live)
            .unwrap();
        self.apply(vec![request]);
        self.flush().await;
        let mut code = None;
        loop {
            match self.next_event().await {
                Some(ClientSessionEvent::PublishRequestAccepted) => return PublishOutcome::Accepted,
                // rml_rtmp's ServerSession answers a rejected request with
                // `_error` on transaction 0, which the client cannot match.
                Some(ClientSessionEvent::UnknownTransactionResultReceived { additional_values, .. }) => {
                    code = code.or_else(|| status_code(additional_values));
                }
                Some(ClientSessionEvent::UnhandleableOnStatusCode { code: status }) => {
                    code = code.or(Some(status));
                }
                Some(_) => {}
                None => return PublishOutcome::Refused { code, closed: true },
            }
        }
    }

    /// Connects to app "live" and publishes with `stream_key`; panics if refused.
    pub async fn publish(addr: SocketAddr, stream_key: &str) -> Self {
        let mut client = Self::connect(addr, "live").await;
        let outcome = client.request_publish(stream_key).await;
        assert_eq!(outcome, PublishOutcome::Accepted, "publish was refused");
        client
    }

    /// `@setDataFrame onMetaData`.
    pub async fn send_metadata(&mut self, metadata: &StreamMetadata) {
        let result = self.session.publish_metadata(metadata).unwrap();
        self.apply(vec![result]);
        self.flush().await;
    }

    /// Sends tags back to back with their timestamps, batching writes and
    /// consuming whatever the server sends meanwhile (acknowledgements).
    pub async fn send_tags(&mut self, tags: &[MediaTag]) {
        for tag in tags {
            let timestamp = RtmpTimestamp::new(tag.timestamp_ms);
            let result = match tag.kind {
                TagKind::Video => self.session.publish_video_data(tag.body.clone(), timestamp, false),
                TagKind::Audio => self.session.publish_audio_data(tag.body.clone(), timestamp, false),
                TagKind::Script => continue,
            }
            .unwrap();
            self.apply(vec![result]);
            if self.out.len() >= WRITE_BATCH_BYTES {
                self.flush().await;
                self.drain_readable();
            }
        }
        self.flush().await;
    }

    /// Metadata, then every tag of the fixture.
    pub async fn send_fixture(&mut self, fixture: &Fixture) {
        self.send_metadata(&fixture.metadata).await;
        self.send_tags(&fixture.tags).await;
    }

    /// Ends the publish the way encoders do (`deleteStream`), then closes.
    pub async fn finish(mut self) {
        let results = self.session.stop_publishing().unwrap();
        self.apply(results);
        self.flush().await;
        self.close().await;
    }

    /// Closes without unpublishing (an encoder that just disconnects):
    /// half-closes and drains until the server closes too, so the server
    /// reads every byte sent before it sees EOF (no RST).
    pub async fn close(mut self) {
        self.flush().await;
        // The server may already have closed after deleteStream; a failed
        // shutdown then changes nothing.
        let _ = self.socket.shutdown().await;
        while let Ok(n) = self.socket.read(&mut self.read_buf).await {
            if n == 0 {
                break;
            }
        }
    }

    fn apply(&mut self, results: Vec<ClientSessionResult>) {
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => self.out.extend_from_slice(&packet.bytes),
                ClientSessionResult::RaisedEvent(event) => self.events.push_back(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let results = self.session.handle_input(bytes).expect("server sent valid RTMP");
        self.apply(results);
    }

    async fn flush(&mut self) {
        if !self.out.is_empty() {
            self.socket
                .write_all(&self.out)
                .await
                .expect("write to the RTMP server");
            self.out.clear();
        }
    }

    /// Feeds what the server has sent so far, without waiting.
    fn drain_readable(&mut self) {
        while !self.peer_closed {
            match self.socket.try_read(&mut self.read_buf) {
                Ok(0) => self.peer_closed = true,
                Ok(n) => {
                    let input = self.read_buf[..n].to_vec();
                    self.feed(&input);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.peer_closed = true,
            }
        }
    }

    /// The next event from the server, or `None` once it closed the socket.
    async fn next_event(&mut self) -> Option<ClientSessionEvent> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if self.peer_closed {
                return None;
            }
            let n = match self.socket.read(&mut self.read_buf).await {
                Ok(0) | Err(_) => {
                    self.peer_closed = true;
                    return None;
                }
                Ok(n) => n,
            };
            let input = self.read_buf[..n].to_vec();
            self.feed(&input);
            // Replies the session makes (e.g. `publish` after createStream's
            // result). A server that refused may have closed already: a failed
            // write shows up as the missing answer.
            if !self.out.is_empty() {
                let _ = self.socket.write_all(&self.out).await;
                self.out.clear();
            }
        }
    }
}

/// The `code` property of the first status object among `values`.
fn status_code(values: Vec<Amf0Value>) -> Option<String> {
    values
        .into_iter()
        .find_map(|value| match value.get_object_properties()?.remove("code")? {
            Amf0Value::Utf8String(code) => Some(code),
            _ => None,
        })
}
