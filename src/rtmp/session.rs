//! The sans-IO half of one RTMP connection, after the handshake.
//!
//! Wraps `rml_rtmp`'s `ServerSession` with sealcast's rules: accept any
//! connect, authorize publishes through the [`PublishAuthorizer`], allow one
//! publish per connection, refuse play, tolerate the commands encoders send
//! that rml_rtmp does not handle. Bytes come in through [`Session::handle_input`];
//! bytes for the peer and media for the pipeline are appended to buffers the
//! caller owns and reuses.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};
use tokio::sync::mpsc;
use tracing::{debug, info, trace, warn};

use super::{Error, MediaMessage, PublishAuthorizer, PublishGrant, PublishRefused};

/// Our outbound chunk size. 4096 is what OBS, ffmpeg and nginx-rtmp use; the
/// RTMP default of 128 would split every command into many chunks.
pub(crate) const CHUNK_SIZE_BYTES: u32 = 4096;

/// What the driver does after handing the session some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep reading.
    Continue,
    /// Flush the outbound bytes and media already produced, then close: the
    /// publish finished or a request was refused.
    Close,
}

pub(crate) struct Session {
    server: ServerSession,
    authorizer: Arc<dyn PublishAuthorizer>,
    peer: SocketAddr,
    /// The app from the accepted connect.
    app: Option<String>,
    /// The accepted publish; dropping it ends the pipeline's channel.
    grant: Option<PublishGrant>,
}

impl Session {
    /// Creates the session and appends its opening messages (chunk size,
    /// window ack size, stream begin, peer bandwidth) to `out`; they must be
    /// sent before anything else.
    pub(crate) fn new(
        authorizer: Arc<dyn PublishAuthorizer>,
        peer: SocketAddr,
        out: &mut Vec<u8>,
    ) -> Result<Self, Error> {
        let mut config = ServerSessionConfig::new();
        config.chunk_size = CHUNK_SIZE_BYTES;
        let (server, opening) = ServerSession::new(config)?;
        let mut session = Self {
            server,
            authorizer,
            peer,
            app: None,
            grant: None,
        };
        let mut unused = Vec::new();
        session.handle_results(opening, out, &mut unused)?;
        Ok(session)
    }

    /// Feeds bytes received from the peer. Bytes for the peer are appended
    /// to `out`, media of the accepted publish to `media`, both in order.
    ///
    /// On `Err` the connection must close, but `out` and `media` may still
    /// hold what was produced before the error, to be flushed first.
    pub(crate) fn handle_input(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        media: &mut Vec<MediaMessage>,
    ) -> Result<Flow, Error> {
        let server = &mut self.server;
        // rml_rtmp 0.8 indexes into peer-controlled vectors (e.g. a bare
        // "@setDataFrame" data message); a panic there must end only this
        // connection. The session is dropped right after, so its possibly
        // broken state is never observed again.
        let results =
            catch_unwind(AssertUnwindSafe(|| server.handle_input(bytes))).map_err(|_| Error::ParserPanic)??;
        self.handle_results(results, out, media)
    }

    /// The accepted publish's media sender, if a publish is live.
    pub(crate) fn media_sender(&self) -> Option<&mpsc::Sender<MediaMessage>> {
        self.grant.as_ref().map(|grant| &grant.media)
    }

    fn handle_results(
        &mut self,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<u8>,
        media: &mut Vec<MediaMessage>,
    ) -> Result<Flow, Error> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    out.extend_from_slice(&packet.bytes);
                }
                ServerSessionResult::RaisedEvent(event) => {
                    if self.handle_event(event, out, media)? == Flow::Close {
                        return Ok(Flow::Close);
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(payload) => {
                    trace!(type_id = payload.type_id, "ignoring unhandled rtmp message");
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn handle_event(
        &mut self,
        event: ServerSessionEvent,
        out: &mut Vec<u8>,
        media: &mut Vec<MediaMessage>,
    ) -> Result<Flow, Error> {
        // Never log `event` itself: publish-related events carry the key.
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, app_name } => {
                if self.app.is_some() {
                    warn!(app = %app_name, "second connect on one connection refused");
                    self.reject(request_id, "NetConnection.Connect.Rejected", "already connected", out)?;
                    return Ok(Flow::Close);
                }
                let results = self.server.accept_request(request_id)?;
                debug!(app = %app_name, "connected");
                self.app = Some(app_name);
                self.handle_results(results, out, media)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                mode: _,
            } => self.on_publish(request_id, &app_name, &stream_key, out, media),
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(grant) = &self.grant {
                    info!(stream = %grant.stream, "publish finished");
                }
                Ok(Flow::Close)
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                // rml_rtmp raises media events only for a stream we accepted,
                // and we accept at most one; the check keeps that local.
                if self.grant.is_some() {
                    media.push(MediaMessage::Metadata(metadata));
                }
                Ok(Flow::Continue)
            }
            ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
                if self.grant.is_some() {
                    media.push(MediaMessage::Video {
                        timestamp_ms: timestamp.value,
                        body: data,
                    });
                }
                Ok(Flow::Continue)
            }
            ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
                if self.grant.is_some() {
                    media.push(MediaMessage::Audio {
                        timestamp_ms: timestamp.value,
                        body: data,
                    });
                }
                Ok(Flow::Continue)
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id, app_name, ..
            } => {
                info!(app = %app_name, "play request refused: this server only ingests (viewers use HLS)");
                self.reject(
                    request_id,
                    "NetStream.Play.Failed",
                    "playback is not served over RTMP",
                    out,
                )?;
                Ok(Flow::Close)
            }
            ServerSessionEvent::UnhandleableAmf0Command {
                command_name,
                transaction_id,
                ..
            } => {
                // OBS and ffmpeg send releaseStream and FCPublish before
                // createStream, FCUnpublish before deleteStream, and ffmpeg
                // answers onBWDone with _checkbw. Neither client waits for a
                // reply to these (they only wait for connect, createStream
                // and publish), so ignoring them is safe; answering would
                // need messages ServerSession cannot serialize. The
                // arguments hold the stream key, so only the name is logged.
                debug!(command = %command_name, transaction_id, "ignoring rtmp command");
                Ok(Flow::Continue)
            }
            ServerSessionEvent::ReleaseStreamRequested { .. }
            | ServerSessionEvent::PlayStreamFinished { .. }
            | ServerSessionEvent::ClientChunkSizeChanged { .. }
            | ServerSessionEvent::AcknowledgementReceived { .. }
            | ServerSessionEvent::PingResponseReceived { .. } => Ok(Flow::Continue),
        }
    }

    fn on_publish(
        &mut self,
        request_id: u32,
        app: &str,
        raw_key: &str,
        out: &mut Vec<u8>,
        media: &mut Vec<MediaMessage>,
    ) -> Result<Flow, Error> {
        if let Some(grant) = &self.grant {
            // The first publish stays live; the second is simply not allowed.
            warn!(stream = %grant.stream, "second publish on one connection refused");
            self.reject(
                request_id,
                "NetStream.Publish.BadName",
                "already publishing on this connection",
                out,
            )?;
            return Ok(Flow::Continue);
        }
        let (stream_key, query) = split_stream_key(raw_key);
        match self.authorizer.authorize(app, stream_key, query, self.peer) {
            Ok(grant) => {
                // If accepting fails, `grant` drops here and the pipeline
                // sees its channel close at once.
                let results = self.server.accept_request(request_id)?;
                tracing::Span::current().record("stream", grant.stream.as_str());
                info!(stream = %grant.stream, "publish started");
                self.grant = Some(grant);
                self.handle_results(results, out, media)
            }
            Err(refused) => {
                match refused {
                    PublishRefused::BadKey => warn!(%app, "publish refused: {refused}"),
                    PublishRefused::AlreadyLive | PublishRefused::ShuttingDown => {
                        info!(%app, "publish refused: {refused}");
                    }
                }
                let code = match refused {
                    PublishRefused::AlreadyLive => "NetStream.Publish.BadName",
                    PublishRefused::BadKey | PublishRefused::ShuttingDown => "NetStream.Publish.Denied",
                };
                self.reject(request_id, code, &refused.to_string(), out)?;
                Ok(Flow::Close)
            }
        }
    }

    fn reject(&mut self, request_id: u32, code: &str, description: &str, out: &mut Vec<u8>) -> Result<(), Error> {
        for result in self.server.reject_request(request_id, code, description)? {
            if let ServerSessionResult::OutboundResponse(packet) = result {
                out.extend_from_slice(&packet.bytes);
            }
        }
        Ok(())
    }
}

/// Splits `key?query` as OBS and ffmpeg send it; an empty query is `None`.
fn split_stream_key(raw: &str) -> (&str, Option<&str>) {
    match raw.split_once('?') {
        Some((key, "")) => (key, None),
        Some((key, query)) => (key, Some(query)),
        None => (raw, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::sync::Mutex;

    use bytes::Bytes;
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::RtmpMessage;
    use rml_rtmp::rml_amf0::Amf0Value;
    use rml_rtmp::sessions::StreamMetadata;
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

    /// Grants "live"/"sk_good" with a capacity-64 channel, or refuses with a
    /// fixed answer; records every call.
    struct TestAuthorizer {
        refuse: Option<PublishRefused>,
        calls: Mutex<Vec<Call>>,
        receivers: Mutex<Vec<mpsc::Receiver<MediaMessage>>>,
    }

    impl TestAuthorizer {
        fn new(refuse: Option<PublishRefused>) -> Arc<Self> {
            Arc::new(Self {
                refuse,
                calls: Mutex::new(Vec::new()),
                receivers: Mutex::new(Vec::new()),
            })
        }
        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl PublishAuthorizer for TestAuthorizer {
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
            if let Some(refused) = self.refuse {
                return Err(refused);
            }
            if app != "live" || stream_key != "sk_good" {
                return Err(PublishRefused::BadKey);
            }
            let (media, rx) = mpsc::channel(64);
            self.receivers.lock().unwrap().push(rx);
            Ok(PublishGrant {
                stream: "live/demo".to_owned(),
                media,
            })
        }
    }

    /// A hand-built client (what OBS sends, message by message) wired to a
    /// `Session` without sockets.
    struct Harness {
        session: Session,
        out: Vec<u8>,
        media: Vec<MediaMessage>,
        serializer: ChunkSerializer,
        deserializer: ChunkDeserializer,
        /// (command name, status `code`) of every command the server sent.
        replies: Vec<(String, Option<String>)>,
    }

    impl Harness {
        fn new(authorizer: Arc<TestAuthorizer>) -> Self {
            let mut out = Vec::new();
            let peer = SocketAddr::from(([127, 0, 0, 1], 50000));
            let session = Session::new(authorizer, peer, &mut out).unwrap();
            let mut harness = Self {
                session,
                out,
                media: Vec::new(),
                serializer: ChunkSerializer::new(),
                deserializer: ChunkDeserializer::new(),
                replies: Vec::new(),
            };
            harness.drain_server_output();
            harness
        }

        /// Parses what the server wrote, following its SetChunkSize.
        fn drain_server_output(&mut self) {
            let mut input = std::mem::take(&mut self.out);
            while let Some(payload) = self.deserializer.get_next_message(&input).unwrap() {
                input.clear();
                match payload.to_rtmp_message().unwrap() {
                    RtmpMessage::SetChunkSize { size } => {
                        self.deserializer.set_max_chunk_size(size as usize).unwrap();
                    }
                    RtmpMessage::Amf0Command {
                        command_name,
                        additional_arguments,
                        ..
                    } => {
                        let code = additional_arguments.into_iter().find_map(|arg| {
                            match arg.get_object_properties()?.remove("code")? {
                                Amf0Value::Utf8String(code) => Some(code),
                                _ => None,
                            }
                        });
                        self.replies.push((command_name, code));
                    }
                    _ => {}
                }
            }
        }

        fn send(&mut self, message: RtmpMessage, stream_id: u32, ts: u32) -> Result<Flow, Error> {
            let payload = message.into_message_payload(RtmpTimestamp::new(ts), stream_id).unwrap();
            let packet = self.serializer.serialize(&payload, false, false).unwrap();
            let flow = self.session.handle_input(&packet.bytes, &mut self.out, &mut self.media);
            self.drain_server_output();
            flow
        }

        fn command(
            &mut self,
            name: &str,
            transaction_id: f64,
            stream_id: u32,
            args: Vec<Amf0Value>,
        ) -> Result<Flow, Error> {
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
                transaction_id,
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

        fn codes(&self) -> Vec<(&str, Option<&str>)> {
            self.replies
                .iter()
                .map(|(name, code)| (name.as_str(), code.as_deref()))
                .collect()
        }
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

    fn metadata_message() -> RtmpMessage {
        let mut props = HashMap::new();
        props.insert("width".to_owned(), Amf0Value::Number(320.0));
        props.insert("height".to_owned(), Amf0Value::Number(240.0));
        props.insert("videocodecid".to_owned(), Amf0Value::Number(7.0));
        RtmpMessage::Amf0Data {
            values: vec![
                Amf0Value::Utf8String("@setDataFrame".to_owned()),
                Amf0Value::Utf8String("onMetaData".to_owned()),
                Amf0Value::Object(props),
            ],
        }
    }

    #[test]
    fn obs_style_publish_forwards_media_in_order_and_ends_on_delete_stream() {
        let auth = TestAuthorizer::new(None);
        let mut h = Harness::new(Arc::clone(&auth));
        h.connect_and_create_stream();
        // Media before publish belongs to no stream and is dropped by rml_rtmp.
        assert_eq!(h.send(video(&[0x17, 0x00]), 1, 0).unwrap(), Flow::Continue);
        assert!(h.media.is_empty());

        assert_eq!(h.publish("sk_good?x=1").unwrap(), Flow::Continue);
        assert_eq!(
            auth.calls(),
            vec![("live".to_owned(), "sk_good".to_owned(), Some("x=1".to_owned()))]
        );
        assert!(h.session.media_sender().is_some());
        let codes = h.codes();
        assert!(codes.contains(&("_result", Some("NetConnection.Connect.Success"))));
        assert_eq!(codes.last(), Some(&("onStatus", Some("NetStream.Publish.Start"))));

        h.send(metadata_message(), 1, 0).unwrap();
        h.send(video(&[0x17, 0x00, 0x00, 0x00, 0x00, 0x01]), 1, 0).unwrap();
        h.send(audio(&[0xAF, 0x00, 0x12, 0x10]), 1, 0).unwrap();
        h.send(video(&[0x27, 0x01, 0x00, 0x00, 0x21, 0xAA]), 1, 33).unwrap();
        h.send(audio(&[0xAF, 0x01, 0x55]), 1, 23).unwrap();

        let mut expected_metadata = StreamMetadata::new();
        expected_metadata.video_width = Some(320);
        expected_metadata.video_height = Some(240);
        expected_metadata.video_codec_id = Some(7);
        let expected = vec![
            MediaMessage::Metadata(expected_metadata),
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
        ];
        assert_eq!(h.media, expected);

        let key = vec![Amf0Value::Utf8String("sk_good".to_owned())];
        assert_eq!(h.command("FCUnpublish", 6.0, 1, key).unwrap(), Flow::Continue);
        let delete = vec![Amf0Value::Number(1.0)];
        assert_eq!(h.command("deleteStream", 7.0, 0, delete).unwrap(), Flow::Close);
        assert_eq!(auth.calls().len(), 1);
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
            let auth = TestAuthorizer::new(refuse);
            let mut h = Harness::new(Arc::clone(&auth));
            h.connect_and_create_stream();
            assert_eq!(h.publish(key).unwrap(), Flow::Close, "{refuse:?}");
            assert_eq!(h.codes().last(), Some(&("_error", Some(code))), "{refuse:?}");
            assert!(h.session.media_sender().is_none());
            assert_eq!(auth.calls().len(), 1);
            assert!(auth.receivers.lock().unwrap().is_empty());
        }
    }

    #[test]
    fn second_publish_on_one_connection_is_refused_and_first_continues() {
        let auth = TestAuthorizer::new(None);
        let mut h = Harness::new(Arc::clone(&auth));
        h.connect_and_create_stream();
        assert_eq!(h.publish("sk_good").unwrap(), Flow::Continue);
        assert_eq!(h.command("createStream", 6.0, 0, vec![]).unwrap(), Flow::Continue);
        let args = vec![
            Amf0Value::Utf8String("sk_good".to_owned()),
            Amf0Value::Utf8String("live".to_owned()),
        ];
        assert_eq!(h.command("publish", 0.0, 2, args).unwrap(), Flow::Continue);
        assert_eq!(h.codes().last(), Some(&("_error", Some("NetStream.Publish.BadName"))));
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
    fn play_is_refused() {
        let auth = TestAuthorizer::new(None);
        let mut h = Harness::new(Arc::clone(&auth));
        h.connect_and_create_stream();
        let args = vec![Amf0Value::Utf8String("sk_good".to_owned())];
        assert_eq!(h.command("play", 5.0, 1, args).unwrap(), Flow::Close);
        assert_eq!(h.codes().last(), Some(&("_error", Some("NetStream.Play.Failed"))));
        assert!(auth.calls().is_empty());
    }

    #[test]
    fn second_connect_is_refused() {
        let mut h = Harness::new(TestAuthorizer::new(None));
        assert_eq!(h.command("connect", 1.0, 0, vec![]).unwrap(), Flow::Continue);
        assert_eq!(h.command("connect", 2.0, 0, vec![]).unwrap(), Flow::Close);
        assert_eq!(
            h.codes().last(),
            Some(&("_error", Some("NetConnection.Connect.Rejected")))
        );
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        // Each of these makes rml_rtmp 0.8 index out of bounds.
        let cases: [(&str, bool, Vec<Amf0Value>); 2] = [
            (
                "bare @setDataFrame",
                false,
                vec![Amf0Value::Utf8String("@setDataFrame".to_owned())],
            ),
            (
                "onMetaData without an object while publishing",
                true,
                vec![
                    Amf0Value::Utf8String("@setDataFrame".to_owned()),
                    Amf0Value::Utf8String("onMetaData".to_owned()),
                ],
            ),
        ];
        for (name, publishing, values) in cases {
            let mut h = Harness::new(TestAuthorizer::new(None));
            if publishing {
                h.connect_and_create_stream();
                assert_eq!(h.publish("sk_good").unwrap(), Flow::Continue);
            }
            let result = h.send(RtmpMessage::Amf0Data { values }, 1, 0);
            assert!(matches!(result, Err(Error::ParserPanic)), "{name}: {result:?}");
        }
    }

    #[test]
    fn malformed_chunk_stream_is_an_error() {
        let mut h = Harness::new(TestAuthorizer::new(None));
        h.command("connect", 1.0, 0, vec![]).unwrap();
        // A type-3 chunk on a chunk stream never seen: no header to reuse.
        // Either outcome ends the connection without a panic escaping.
        let result = h
            .session
            .handle_input(&[0xC9, 0x01, 0x02, 0x03], &mut h.out, &mut h.media);
        assert!(result.is_err(), "{result:?}");
    }
}
