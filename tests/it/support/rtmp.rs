//! Publishing over real RTMP from tests: FLV fixtures split into what a
//! publisher sends, and a thin wrapper over `sealcast::tools::publisher` (the
//! client `bench-push` uses too) whose methods panic instead of returning
//! errors, pushing tags as fast as the server reads them.

use std::net::SocketAddr;

use bytes::Bytes;
use sealcast::flv::{self, TagKind};
use sealcast::tools::publisher::{self, Error};
use tokio::net::TcpStream;

/// Outbound bytes are batched up to this size per write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// One audio or video tag of a fixture, as RTMP carries it.
#[derive(Debug, Clone)]
pub struct MediaTag {
    pub kind: TagKind,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

/// An FLV file split into what a publisher sends: its onMetaData script tag
/// body and its audio/video tags in file order.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub metadata: Bytes,
    pub tags: Vec<MediaTag>,
}

impl Fixture {
    /// Reads `fixtures/{name}`.
    pub fn load(name: &str) -> Self {
        let bytes = std::fs::read(super::fixture(name)).unwrap_or_else(|e| panic!("read fixture {name}: {e}"));
        let (_, tags) = flv::tags(&bytes).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
        let mut metadata = None;
        let mut media = Vec::new();
        for tag in tags {
            let tag = tag.unwrap_or_else(|e| panic!("fixture {name}: {e}"));
            match tag.kind {
                TagKind::Script => {
                    metadata.get_or_insert_with(|| Bytes::copy_from_slice(tag.body));
                }
                kind => media.push(MediaTag {
                    kind,
                    timestamp_ms: tag.timestamp_ms,
                    body: Bytes::copy_from_slice(tag.body),
                }),
            }
        }
        assert!(!media.is_empty(), "fixture {name} has no media tags");
        Self {
            metadata: metadata.unwrap_or_else(|| panic!("fixture {name} has no onMetaData")),
            tags: media,
        }
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

/// Client side of the RTMP handshake on a fresh connection; panics if the
/// server closes first.
pub async fn client_handshake(socket: &mut TcpStream) {
    publisher::handshake(socket)
        .await
        .unwrap_or_else(|e| panic!("RTMP handshake: {e}"));
}

/// The RTMP handshake, or `false` when the server closes first.
pub async fn try_handshake(socket: &mut TcpStream) -> bool {
    publisher::handshake(socket).await.is_ok()
}

/// A connection publishing (or asking to publish) one stream.
pub struct Publisher {
    inner: publisher::Publisher,
    key: String,
}

impl Publisher {
    /// Handshake, then `connect` to `app`; waits for the server to accept it.
    pub async fn connect(addr: SocketAddr, app: &str) -> Self {
        // tcUrl names the app, as encoders send it; a hostile app of tens of
        // kilobytes is sent once (the server ignores tcUrl), so that the
        // connect fits the 64 KiB a peer may send before it publishes.
        let tc_url = if app.len() <= 1024 {
            format!("rtmp://{addr}/{app}")
        } else {
            format!("rtmp://{addr}/")
        };
        let inner = publisher::Publisher::connect(addr, app, &tc_url)
            .await
            .unwrap_or_else(|e| panic!("connect to {app}: {e}"));
        Self {
            inner,
            key: String::new(),
        }
    }

    /// Asks to publish with `stream_key` and waits for the answer. After a
    /// refusal it reads on until the server closes the connection.
    pub async fn request_publish(&mut self, stream_key: &str) -> PublishOutcome {
        self.key = stream_key.to_owned();
        match self.inner.publish(stream_key).await {
            Ok(()) => PublishOutcome::Accepted,
            Err(Error::Refused { code, .. }) => {
                self.inner.wait_closed().await;
                PublishOutcome::Refused { code, closed: true }
            }
            // Closed (or reset) before it answered.
            Err(Error::Closed | Error::Io(_)) => PublishOutcome::Refused {
                code: None,
                closed: true,
            },
            Err(e) => panic!("publish {stream_key}: {e}"),
        }
    }

    /// Connects to app "live" and publishes with `stream_key`; panics if refused.
    pub async fn publish(addr: SocketAddr, stream_key: &str) -> Self {
        let mut client = Self::connect(addr, "live").await;
        let outcome = client.request_publish(stream_key).await;
        assert_eq!(outcome, PublishOutcome::Accepted, "publish was refused");
        client
    }

    /// `@setDataFrame` with an onMetaData script tag body.
    pub async fn send_metadata(&mut self, on_metadata: &[u8]) {
        self.inner
            .send_metadata(on_metadata)
            .await
            .expect("send metadata to the RTMP server");
    }

    /// One audio message now.
    pub async fn send_audio(&mut self, timestamp_ms: u32, body: &[u8]) {
        self.inner
            .send_audio(timestamp_ms, body)
            .await
            .expect("send audio to the RTMP server");
    }

    /// One video message now.
    pub async fn send_video(&mut self, timestamp_ms: u32, body: &[u8]) {
        self.inner
            .send_video(timestamp_ms, body)
            .await
            .expect("send video to the RTMP server");
    }

    /// Sends tags back to back with their timestamps, batching writes and
    /// consuming whatever the server sends meanwhile (acknowledgements).
    pub async fn send_tags(&mut self, tags: &[MediaTag]) {
        for tag in tags {
            match tag.kind {
                TagKind::Video => self.inner.push_video(tag.timestamp_ms, &tag.body),
                TagKind::Audio => self.inner.push_audio(tag.timestamp_ms, &tag.body),
                TagKind::Script => continue,
            }
            if self.inner.buffered_bytes() >= WRITE_BATCH_BYTES {
                self.flush().await;
                // A server that closed shows up at the next write.
                let _ = self.inner.read_available();
            }
        }
        self.flush().await;
    }

    /// Metadata, then every tag of the fixture.
    pub async fn send_fixture(&mut self, fixture: &Fixture) {
        self.send_metadata(&fixture.metadata).await;
        self.send_tags(&fixture.tags).await;
    }

    /// Ends the publish the way encoders do (`FCUnpublish`, `deleteStream`),
    /// then closes.
    pub async fn finish(mut self) {
        let key = std::mem::take(&mut self.key);
        self.inner.unpublish(&key).await.expect("unpublish");
        self.close().await;
    }

    /// Closes without unpublishing (an encoder that just disconnects):
    /// half-closes and drains until the server closes too, so the server
    /// reads every byte sent before it sees EOF (no RST).
    pub async fn close(self) {
        // The server may already have closed after deleteStream; a failed
        // write then changes nothing.
        let _ = self.inner.close().await;
    }

    /// Reads until the server closes the connection.
    pub async fn wait_closed(&mut self) {
        self.inner.wait_closed().await;
    }

    async fn flush(&mut self) {
        self.inner.flush().await.expect("write to the RTMP server");
    }
}
