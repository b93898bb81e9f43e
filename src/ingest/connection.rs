//! The async driver of one RTMP connection: handshake, then a read loop that
//! feeds the sans-IO [`Session`] and forwards its media with backpressure.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, info, warn};

use super::read_batching::{self, ReadBatching, RecvLowWatermark};
use super::{Error, IngestLimits, PublishAuthorizer, PublishGrant, RefusalLog};
use crate::rtmp::handshake::Step;
use crate::rtmp::{Event, Flow, Handshake, MediaMessage, PublishRefused, PublishRequest, Session, printable};

/// Size of the per-connection read buffer, reused for every read: twice the
/// largest receive low-water mark; 1000 connections cost 32 MiB.
const READ_BUF_BYTES: usize = 2 * read_batching::MAX_MARK as usize;

/// Runs one connection to its end. Dropping the returned future (server
/// shutdown) or returning drops the publish's media sender, which is how
/// the pipeline learns the publish ended.
///
/// Until a publish starts, every read and write also races one deadline,
/// `handshake_timeout` after the start: a peer trickling bytes (slow loris)
/// cannot keep its slot by staying just inside the idle timeout.
pub(super) async fn run<S>(
    mut socket: S,
    peer: SocketAddr,
    authorizer: Arc<dyn PublishAuthorizer>,
    refusals: Arc<RefusalLog>,
    limits: IngestLimits,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + RecvLowWatermark + Unpin,
{
    let mut published = false;
    let start_deadline = Instant::now() + limits.handshake_timeout;
    let mut buf = vec![0_u8; READ_BUF_BYTES].into_boxed_slice();

    let leftover = timeout_at(start_deadline, handshake(&mut socket, &mut buf))
        .await
        .map_err(|_| Error::HandshakeTimeout)??;

    let (mut out, mut events) = (Vec::with_capacity(1024), Vec::with_capacity(64));
    let mut session = Session::new(&limits.session());
    // The accepted publish's channel to its pipeline; dropping it ends the publish.
    let mut media: Option<mpsc::Sender<MediaMessage>> = None;
    let mut step = session.handle_input(&leftover, &mut out, &mut events);
    drop(leftover);
    let mut batching = ReadBatching::new(Instant::now());

    loop {
        // Events first, in order: the media was accepted before any error or
        // close in this batch, and the peer may already be gone for writes.
        // A full channel parks us here, so the socket is not read and TCP
        // flow control slows the encoder; nothing accepted is dropped.
        while let Some(request) = forward(&mut events, &mut media).await? {
            // Awaited here, outside any read: while the answer is pending the
            // socket is not read, and the start deadline still runs.
            let before_start = (!published).then_some(start_deadline);
            step = match authorize(&*authorizer, &request, peer, before_start, &limits).await? {
                Ok(grant) => {
                    tracing::Span::current().record("stream", grant.stream.as_str());
                    media = Some(grant.media);
                    batching.start(Instant::now());
                    session.accept_publish(&grant.stream, &mut out, &mut events)
                }
                Err(refused) => {
                    log_refusal(&refusals, peer, &request.app, refused);
                    Ok(session.refuse_publish(refused, &mut out))
                }
            };
        }
        if media.is_none() {
            set_mark(&socket, batching.stop());
        }
        published |= session.is_publishing();
        let wait = Wait::next(published, start_deadline, &limits);
        if !out.is_empty() {
            timeout_at(wait.deadline, socket.write_all(&out))
                .await
                .map_err(|_| wait.timed_out(Error::WriteStalled(limits.idle_timeout)))??;
            out.clear();
        }
        if step? == Flow::Close {
            return Ok(());
        }

        // A publish the server ended (taken over by a new publish of the
        // same stream, or its cluster lease lost) closes its channel: the
        // connection ends then, even when the peer has gone quiet.
        let read = match read_some(&mut socket, &mut buf, &mut batching, wait.deadline, media.as_ref()).await {
            Ok(Some(read)) => read,
            Ok(None) => {
                let idle = wait.timed_out(Error::IdleTimeout(limits.idle_timeout));
                return Err(dropped(media.is_some(), idle));
            }
            Err(Error::MediaClosed) => return Err(Error::MediaClosed),
            Err(error) => return Err(dropped(media.is_some(), error)),
        };
        // `read` returns at most `buf.len()`, so the slice below is in bounds.
        let Some(input) = buf.get(..read).filter(|input| !input.is_empty()) else {
            closed_by_peer(media.is_some());
            return Ok(());
        };
        step = session.handle_input(input, &mut out, &mut events);
    }
}

/// Logs the peer closing the connection: while publishing, an encoder gone
/// without an unpublish.
fn closed_by_peer(publishing: bool) {
    if publishing {
        warn!("publisher dropped: the connection closed without an unpublish");
    } else {
        debug!("peer disconnected");
    }
}

/// How long the next write or read may wait. Before a publish starts, the
/// start deadline bounds every wait; once one has started (even if it has
/// finished since), only idleness does.
#[derive(Clone, Copy)]
struct Wait {
    deadline: Instant,
    /// The start deadline is the one that applies.
    starting: bool,
    handshake_timeout: std::time::Duration,
}

impl Wait {
    fn next(published: bool, start_deadline: Instant, limits: &IngestLimits) -> Self {
        let idle = Instant::now() + limits.idle_timeout;
        let starting = !published && start_deadline <= idle;
        Self {
            deadline: if starting { start_deadline } else { idle },
            starting,
            handshake_timeout: limits.handshake_timeout,
        }
    }

    /// The error for a wait that reached its deadline: the publish did not
    /// start in time, or else `otherwise`.
    fn timed_out(self, otherwise: Error) -> Error {
        if self.starting {
            Error::PublishTimeout(self.handshake_timeout)
        } else {
            otherwise
        }
    }
}

/// Asks the authorizer about a publish request: `before_start` (no publish
/// has started on this connection yet), within the start deadline.
async fn authorize(
    authorizer: &dyn PublishAuthorizer,
    request: &PublishRequest,
    peer: SocketAddr,
    before_start: Option<Instant>,
    limits: &IngestLimits,
) -> Result<Result<PublishGrant, PublishRefused>, Error> {
    let answer = authorizer.authorize(&request.app, &request.stream_key, request.query.as_deref(), peer);
    match before_start {
        None => Ok(answer.await),
        Some(deadline) => timeout_at(deadline, answer)
            .await
            .map_err(|_| Error::PublishTimeout(limits.handshake_timeout)),
    }
}

/// Reads once into `buf`: `Ok(None)` when `deadline` passed first, and
/// [`Error::MediaClosed`] when the server ended the publish meanwhile.
///
/// While a publish runs the read waits for the socket's receive low-water
/// mark; when nothing came for the quiet spell, the mark drops for one read
/// ([`ReadBatching`]).
async fn read_some<S>(
    socket: &mut S,
    buf: &mut [u8],
    batching: &mut ReadBatching,
    deadline: Instant,
    media: Option<&mpsc::Sender<MediaMessage>>,
) -> Result<Option<usize>, Error>
where
    S: AsyncRead + RecvLowWatermark + Unpin,
{
    let started = Instant::now();
    loop {
        let quiet = batching.quiet_deadline(started).filter(|quiet| *quiet < deadline);
        let read = tokio::select! {
            read = timeout_at(quiet.unwrap_or(deadline), socket.read(buf)) => read,
            () = publish_closed(media) => return Err(Error::MediaClosed),
        };
        match read {
            Ok(read) => {
                let read = read?;
                set_mark(socket, batching.on_read(read, Instant::now()));
                return Ok(Some(read));
            }
            Err(_) if quiet.is_some() => set_mark(socket, batching.on_quiet()),
            Err(_) => return Ok(None),
        }
    }
}

/// Applies a new receive low-water mark; where the system refuses it, reads
/// simply stay unbatched.
fn set_mark(socket: &impl RecvLowWatermark, mark: Option<u32>) {
    if let Some(mark) = mark
        && let Err(error) = socket.set_recv_low_watermark(mark)
    {
        debug!(mark, "cannot set the receive low-water mark: {error}");
    }
}

/// Resolves when the publish's receiver is closed; never without a publish.
async fn publish_closed(media: Option<&mpsc::Sender<MediaMessage>>) {
    match media {
        Some(sender) => sender.closed().await,
        None => std::future::pending().await,
    }
}

/// A connection that ends with `error` while it publishes is an encoder that
/// dropped (network loss, a crash): a warning of its own, unlike a clean
/// unpublish.
fn dropped(publishing: bool, error: Error) -> Error {
    if publishing {
        warn!("publisher dropped: {error}");
    }
    error
}

/// The log line of a refused publish: the app escaped and capped (it is
/// whatever the peer sent), never the key. A wrong key is what an
/// unauthenticated peer can repeat at will, so its lines are throttled per
/// address; the other refusals need a valid key and are all logged.
fn log_refusal(refusals: &RefusalLog, peer: SocketAddr, app: &str, refused: PublishRefused) {
    let app = printable(app.as_bytes());
    match refused {
        PublishRefused::BadKey => {
            if let Some(count) = refusals.note(peer.ip()) {
                warn!(%app, refused_from_address = count, "publish refused: {refused}");
            }
        }
        PublishRefused::AlreadyLive | PublishRefused::ShuttingDown | PublishRefused::Unavailable => {
            info!(%app, "publish refused: {refused}");
        }
    }
}

/// Forwards the session's media events to the publish's channel, in order,
/// and ends the publish at its end event. Returns the publish request that
/// stopped the session, if one did: it is always the last event.
async fn forward(
    events: &mut Vec<Event>,
    media: &mut Option<mpsc::Sender<MediaMessage>>,
) -> Result<Option<PublishRequest>, Error> {
    let mut request = None;
    for event in events.drain(..) {
        match event {
            Event::Media(message) => {
                if let Some(sender) = media {
                    sender.send(message).await.map_err(|_| Error::MediaClosed)?;
                }
            }
            Event::PublishEnded => {
                if media.take().is_some() {
                    info!("publisher stopped: unpublish received");
                }
            }
            Event::PublishRequested(asked) => request = Some(asked),
        }
    }
    Ok(request)
}

/// Server side of the RTMP handshake (C0/C1/C2 in, S0/S1/S2 out). Returns
/// the bytes the peer sent after C2, which are already RTMP chunks.
async fn handshake<S>(socket: &mut S, buf: &mut [u8]) -> Result<Vec<u8>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut handshake = Handshake::default();
    loop {
        let read = socket.read(buf).await?;
        let Some(input) = buf.get(..read).filter(|input| !input.is_empty()) else {
            return Err(Error::HandshakeEof);
        };
        match handshake.handle_input(input)? {
            Step::InProgress { response } => socket.write_all(&response).await?,
            Step::Done { response, remaining } => {
                socket.write_all(&response).await?;
                return Ok(remaining);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use rml_rtmp::messages::RtmpMessage;
    use rml_rtmp::rml_amf0::Amf0Value;
    use rml_rtmp::time::RtmpTimestamp;
    use tokio::io::DuplexStream;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

    use super::super::PublishGrant;
    use crate::rtmp::{PublishRefused, chunk};

    /// Grants every publish; keeps the receivers so channels stay open.
    struct Grants(std::sync::Mutex<Vec<mpsc::Receiver<MediaMessage>>>);

    #[async_trait::async_trait]
    impl PublishAuthorizer for Grants {
        async fn authorize(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: SocketAddr,
        ) -> Result<PublishGrant, PublishRefused> {
            let (media, rx) = mpsc::channel(8);
            self.0.lock().unwrap().push(rx);
            Ok(PublishGrant {
                stream: "live/demo".to_owned(),
                media,
            })
        }
    }

    /// Never answers: a publish hook that hangs past any timeout of its own.
    struct NeverAnswers;

    #[async_trait::async_trait]
    impl PublishAuthorizer for NeverAnswers {
        async fn authorize(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: SocketAddr,
        ) -> Result<PublishGrant, PublishRefused> {
            std::future::pending().await
        }
    }

    const LIMITS: IngestLimits = IngestLimits {
        max_connections: 10,
        max_connections_per_ip: 10,
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        max_message_bytes: 1 << 20,
        max_chunk_size_bytes: 65536,
    };

    fn start() -> (DuplexStream, JoinHandle<Result<(), Error>>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([192, 0, 2, 1], 40000));
        let authorizer = Arc::new(Grants(std::sync::Mutex::new(Vec::new())));
        let refusals = Arc::new(RefusalLog::default());
        (client, tokio::spawn(run(server, peer, authorizer, refusals, LIMITS)))
    }

    /// Writes one byte per (virtual) second until the server hangs up;
    /// returns the bytes it accepted.
    fn trickle(mut client: DuplexStream, bytes: Vec<u8>) -> JoinHandle<usize> {
        tokio::spawn(async move {
            for (sent, byte) in bytes.iter().enumerate() {
                if client.write_all(&[*byte]).await.is_err() {
                    return sent;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            bytes.len()
        })
    }

    async fn client_handshake(client: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
        let mut handshake = Handshake::new(PeerType::Client);
        client
            .write_all(&handshake.generate_outbound_p0_and_p1().unwrap())
            .await
            .unwrap();
        let mut buf = [0; 4096];
        loop {
            let n = client.read(&mut buf).await.unwrap();
            match handshake.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    client.write_all(&response_bytes).await.unwrap()
                }
                HandshakeProcessResult::Completed { response_bytes, .. } => {
                    client.write_all(&response_bytes).await.unwrap();
                    return;
                }
            }
        }
    }

    fn command(name: &str, tx: f64, stream_id: u32, object: Amf0Value, args: Vec<Amf0Value>) -> Vec<u8> {
        let message = RtmpMessage::Amf0Command {
            command_name: name.to_owned(),
            transaction_id: tx,
            command_object: object,
            additional_arguments: args,
        };
        let payload = message.into_message_payload(RtmpTimestamp::new(0), stream_id).unwrap();
        let mut bytes = Vec::new();
        chunk::encode_message(&mut bytes, 128, 3, payload.type_id, stream_id, 0, &payload.data);
        bytes
    }

    fn connect() -> Vec<u8> {
        let mut app = std::collections::HashMap::new();
        app.insert("app".to_owned(), Amf0Value::Utf8String("live".to_owned()));
        command("connect", 1.0, 0, Amf0Value::Object(app), vec![])
    }

    fn publish_commands() -> Vec<u8> {
        let mut bytes = connect();
        bytes.extend(command("createStream", 2.0, 0, Amf0Value::Null, vec![]));
        bytes.extend(command(
            "publish",
            3.0,
            1,
            Amf0Value::Null,
            vec![Amf0Value::Utf8String("key".to_owned())],
        ));
        bytes
    }

    fn audio(timestamp_ms: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        chunk::encode_message(&mut bytes, 128, 4, 8, 1, timestamp_ms, body);
        bytes
    }

    /// Over real TCP, a publish at 2.7 Mb/s raises the socket's receive
    /// low-water mark; a last message smaller than the mark is still read,
    /// once the socket has been quiet.
    #[tokio::test]
    async fn a_message_under_the_low_water_mark_is_still_read() {
        use std::os::fd::AsFd;
        use tokio::net::{TcpListener, TcpStream};

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        // The same socket, to read its options while the driver owns it.
        let observer = server.as_fd().try_clone_to_owned().unwrap();
        let mark = || read_batching::sockopt::rcvlowat(&observer).unwrap();
        let grants = Arc::new(Grants(std::sync::Mutex::new(Vec::new())));
        let refusals = Arc::new(RefusalLog::default());
        let driver = tokio::spawn(run(server, peer, grants.clone(), refusals, LIMITS));
        client_handshake(&mut client).await;
        client.write_all(&publish_commands()).await.unwrap();
        let mut media = loop {
            if let Some(media) = grants.0.lock().unwrap().pop() {
                break media;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let last = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let received = Arc::clone(&last);
        tokio::spawn(async move {
            while let Some(message) = media.recv().await {
                if let MediaMessage::Audio { timestamp_ms, .. } = message {
                    received.store(timestamp_ms, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        // 1.5 s of 4 KiB messages every 12 ms: about 2.7 Mb/s.
        let body = vec![0xAF; 4096];
        for i in 1..=125 {
            client.write_all(&audio(i * 12, &body)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(12)).await;
        }
        let raised = tokio::time::timeout(Duration::from_secs(10), async {
            while mark() <= 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        raised.await.expect("the mark was never raised");
        client.write_all(&audio(99_999, &[0xAF, 0x01, 0x21])).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while last.load(std::sync::atomic::Ordering::SeqCst) != 99_999 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        read.await.expect("the small last message was never read");
        // The copy would keep the socket open past the driver.
        drop(observer);
        // Close our half and take the server's replies: a clean end.
        client.shutdown().await.unwrap();
        let mut replies = Vec::new();
        client.read_to_end(&mut replies).await.unwrap();
        assert!(driver.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_loris_handshake_is_closed_at_the_handshake_timeout() {
        let (client, server) = start();
        let started = Instant::now();
        let c0c1 = Handshake::new(PeerType::Client).generate_outbound_p0_and_p1().unwrap();
        let trickler = trickle(client, c0c1);
        assert!(matches!(server.await.unwrap(), Err(Error::HandshakeTimeout)));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        // Bytes at t = 0..=10 s (the last one races the deadline).
        assert!((10..=11).contains(&trickler.await.unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_loris_after_the_handshake_is_closed_before_it_publishes() {
        let (mut client, server) = start();
        let started = Instant::now();
        client_handshake(&mut client).await;
        let trickler = trickle(client, connect());
        assert!(matches!(server.await.unwrap(), Err(Error::PublishTimeout(t)) if t == LIMITS.handshake_timeout));
        // Measured from before the handshake: the deadline covers both.
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!((10..=11).contains(&trickler.await.unwrap()));
    }

    /// The authorizer is awaited under the start deadline: an answer that
    /// never comes closes the connection as a publish that never started.
    #[tokio::test(start_paused = true)]
    async fn a_pending_publish_decision_is_bounded_by_the_start_deadline() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([192, 0, 2, 1], 40000));
        let refusals = Arc::new(RefusalLog::default());
        let server = tokio::spawn(run(server, peer, Arc::new(NeverAnswers), refusals, LIMITS));
        let started = Instant::now();
        client_handshake(&mut client).await;
        client.write_all(&publish_commands()).await.unwrap();
        let mut buf = [0; 4096];
        while client.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        assert!(matches!(server.await.unwrap(), Err(Error::PublishTimeout(t)) if t == LIMITS.handshake_timeout));
        assert_eq!(started.elapsed(), LIMITS.handshake_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_publisher_is_closed_after_the_idle_timeout() {
        let (mut client, server) = start();
        client_handshake(&mut client).await;
        client.write_all(&publish_commands()).await.unwrap();
        let published = Instant::now();
        // Read the replies so writes never block; then stay silent.
        let mut buf = [0; 4096];
        while client.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        assert!(matches!(server.await.unwrap(), Err(Error::IdleTimeout(t)) if t == LIMITS.idle_timeout));
        // Publishing lifts the start deadline: only the idle timeout applies.
        assert_eq!(published.elapsed(), Duration::from_secs(30));
    }
}
