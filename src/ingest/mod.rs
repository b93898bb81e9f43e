//! RTMP ingest: the async adapter between encoders and the stream registry.
//!
//! [`serve`] accepts TCP connections (mini-redis style: a `Semaphore` caps
//! them, a per-IP count refuses floods from one address, one task per
//! connection in a `peer` span). Each connection runs the sans-IO
//! [`crate::rtmp::Handshake`] and [`crate::rtmp::Session`] over its socket;
//! when the session reports a publish request, the driver asks the
//! [`PublishAuthorizer`] (the stream registry) and hands the answer back to
//! the session; then it forwards that publish's media, in arrival order, into
//! the bounded channel of the [`PublishGrant`]. A full channel stops the
//! connection from reading its socket, so a slow pipeline slows the encoder
//! through TCP flow control and no accepted message is ever dropped. The
//! publish ends, and the pipeline learns it by its receiver returning
//! `None`, when the connection drops the grant's sender: on unpublish,
//! disconnect, error, idle timeout or server shutdown.
//!
//! This module knows nothing about FLV demuxing, HLS, files or keys.
//!
//! Pieces:
//! - `connection`: the per-connection driver (socket, timeouts, backpressure).
//! - `read_batching`: the receive low-water mark that lets one wakeup take
//!   several of a publishing encoder's chunks.
//! - [`serve`] here: the accept loop, with an optional second listener for
//!   RTMPS ([`serve_with_tls`]): its TLS handshake runs in the connection's
//!   task and counts against `handshake_timeout`, then the same driver runs
//!   over the TLS stream.

mod connection;
mod read_batching;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{Id, JoinError, JoinSet};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::rtmp::{HandshakeError, SessionLimits};
pub use crate::rtmp::{MediaMessage, PublishRefused};

/// What the server's stream registry answers to a publish request.
#[derive(Debug)]
pub struct PublishGrant {
    /// "app/name" (the PUBLIC name) for logs and spans; never the publish key.
    pub stream: String,
    /// Where the connection sends the publish's media. Dropped by the
    /// connection when the publish ends, which closes the channel.
    pub media: mpsc::Sender<MediaMessage>,
}

/// Decides whether a publish may start (implemented by the stream registry).
///
/// Async, because the answer may come from elsewhere (the publish hook asks
/// the broadcaster's backend over HTTP). The connection's driver awaits it
/// without reading its socket, so nothing the peer sends meanwhile is taken
/// in; the session holds its messages until the answer comes back.
#[async_trait::async_trait]
pub trait PublishAuthorizer: Send + Sync + 'static {
    /// `app` from connect, `stream_key` from publish with any "?query" already
    /// stripped (the query, e.g. OBS/ffmpeg `key?foo=bar`, is passed
    /// separately, `None` when absent or empty).
    ///
    /// Runs on the connection's task: it may wait (bounded by its own
    /// timeout), but must not block the thread.
    async fn authorize(
        &self,
        app: &str,
        stream_key: &str,
        query: Option<&str>,
        peer: SocketAddr,
    ) -> Result<PublishGrant, PublishRefused>;
}

/// Resource limits of the ingest listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Connections served at once; further ones wait in the listen backlog.
    /// 0 is treated as 1.
    pub max_connections: usize,
    /// Connections from one IP address at once; further ones from it are
    /// closed as soon as they are accepted. 0 is treated as 1.
    pub max_connections_per_ip: usize,
    /// Time from accepting a connection until its publish starts: RTMP
    /// handshake, connect, createStream and publish. A peer that is slower
    /// (e.g. one byte per second) is closed, so it cannot hold a slot.
    pub handshake_timeout: Duration,
    /// A peer that sends nothing (or accepts none of our bytes) for this long
    /// is disconnected.
    pub idle_timeout: Duration,
    /// Largest RTMP message accepted from a publisher (before the publish
    /// is authorized, at most 64 KiB: commands are small).
    pub max_message_bytes: u32,
    /// Largest chunk size a peer may set. Memory does not grow with it.
    pub max_chunk_size_bytes: u32,
}

impl IngestLimits {
    /// The limits the RTMP session enforces.
    pub fn session(&self) -> SessionLimits {
        SessionLimits {
            max_message_bytes: self.max_message_bytes,
            max_chunk_size_bytes: self.max_chunk_size_bytes,
        }
    }
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_connections_per_ip: 32,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_message_bytes: 8 * 1024 * 1024,
            max_chunk_size_bytes: 65536,
        }
    }
}

/// Why one connection ended early. Logged in the connection's span; never
/// returned to the accept loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading from or writing to the socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The peer did not finish the handshake within `handshake_timeout`.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer finished the handshake but did not start publishing within
    /// `handshake_timeout` of connecting.
    #[error("no publish within {0:?} of connecting")]
    PublishTimeout(Duration),
    /// The peer closed the connection before the handshake finished.
    #[error("peer closed the connection during the handshake")]
    HandshakeEof,
    /// The peer's handshake bytes were not RTMP (or made the handshake
    /// code panic).
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The RTMP session broke off: a protocol error or a limit.
    #[error(transparent)]
    Session(#[from] crate::rtmp::Error),
    /// The peer sent nothing for `idle_timeout`.
    #[error("peer idle for {0:?}")]
    IdleTimeout(Duration),
    /// The peer accepted none of our bytes for `idle_timeout`.
    #[error("peer did not read for {0:?}")]
    WriteStalled(Duration),
    /// The publish's media receiver was closed: the pipeline ended, or the
    /// server ended the publish (taken over by a new publish of the same
    /// stream, or its cluster lease lost).
    #[error("publish ended by the server (taken over, lease lost, or pipeline gone)")]
    MediaClosed,
}

/// One log line per this many refused publishes from one address.
pub const REFUSALS_PER_LOG_LINE: u64 = 100;
/// Addresses whose refusals [`RefusalLog`] counts at once; past this the
/// counts start over (bounded memory; at worst some more lines).
const REFUSAL_LOG_MAX_ADDRESSES: usize = 4096;

/// Throttles the log lines of refused publishes per address: a wrong-key
/// flood from one client writes the first refusal and then one line per
/// [`REFUSALS_PER_LOG_LINE`], each saying how many were refused. A counter,
/// not a clock, so tests can count lines without timing.
#[derive(Debug, Default)]
pub struct RefusalLog {
    refused: std::sync::Mutex<HashMap<IpAddr, u64>>,
}

impl RefusalLog {
    /// Counts a refusal from `ip`; `Some(count so far)` when it should be
    /// logged.
    pub fn note(&self, ip: IpAddr) -> Option<u64> {
        // A poisoned lock only means another connection panicked mid-count.
        let mut refused = self.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if refused.len() >= REFUSAL_LOG_MAX_ADDRESSES && !refused.contains_key(&ip) {
            refused.clear();
        }
        let count = refused.entry(ip).or_default();
        *count += 1;
        (*count % REFUSALS_PER_LOG_LINE == 1).then_some(*count)
    }
}

/// Back-off after a failed `accept` (e.g. out of file descriptors), doubled
/// up to the maximum while failures continue.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accept loop (mini-redis style): a Semaphore caps connections, a per-IP
/// count closes the excess from one address at once; one task per
/// connection, each in a `peer` span; an error or panic in one connection
/// never reaches the loop or another connection (panics are logged at error).
///
/// Returns when `shutdown` resolves: it stops accepting, tells every live
/// connection to end (which drops their media senders, so pipelines see their
/// channels close and flush), waits for those tasks, and returns `Ok(())`.
/// Failed `accept` calls are logged and retried with back-off, never returned.
pub async fn serve(
    listener: TcpListener,
    authorizer: Arc<dyn PublishAuthorizer>,
    limits: IngestLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_metered(listener, authorizer, limits, metrics::Gauge::noop(), shutdown).await
}

/// [`serve`], keeping `open_connections` (`sealcast_rtmp_connections`) at
/// the number of connection tasks.
pub async fn serve_metered(
    listener: TcpListener,
    authorizer: Arc<dyn PublishAuthorizer>,
    limits: IngestLimits,
    open_connections: metrics::Gauge,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with_tls(listener, None, authorizer, limits, open_connections, shutdown).await
}

/// [`serve_metered`], also accepting RTMPS on `tls`'s listener. Both
/// listeners share one connection cap and one per-address count.
pub async fn serve_with_tls(
    listener: TcpListener,
    tls: Option<(TcpListener, crate::tls::TlsAcceptor)>,
    authorizer: Arc<dyn PublishAuthorizer>,
    limits: IngestLimits,
    open_connections: metrics::Gauge,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let semaphore = Arc::new(Semaphore::new(permits));
    let mut connections = Connections::new(authorizer, limits);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(shutdown);

    match listener.local_addr() {
        Ok(addr) => info!(
            %addr,
            max_connections = permits,
            max_connections_per_ip = connections.per_ip_cap,
            "rtmp ingest listening"
        ),
        Err(err) => warn!("rtmp ingest listening (local address unknown: {err})"),
    }
    if let Some((tls_listener, _)) = &tls {
        info!(addr = %tls_listener.local_addr()?, "rtmps ingest listening");
    }

    loop {
        // Wait for a free slot first, then accept: at the cap, new peers
        // queue in the kernel backlog instead of being accepted and dropped.
        // Both steps are cancel safe, so losing the select! loses nothing.
        let accept = async {
            let permit = Arc::clone(&semaphore).acquire_owned().await;
            let accepted = match &tls {
                None => listener.accept().await.map(|(socket, peer)| (socket, peer, None)),
                Some((tls_listener, acceptor)) => tokio::select! {
                    accepted = listener.accept() => accepted.map(|(socket, peer)| (socket, peer, None)),
                    accepted = tls_listener.accept() => {
                        accepted.map(|(socket, peer)| (socket, peer, Some(acceptor.clone())))
                    }
                },
            };
            (permit, accepted)
        };
        tokio::select! {
            () = &mut shutdown => break,
            Some(joined) = connections.tasks.join_next_with_id() => connections.reap(joined),
            (permit, accepted) = accept => {
                let Ok(permit) = permit else {
                    // The semaphore is never closed; if it were, accepting
                    // more connections would bypass the cap, so stop.
                    error!("connection limit semaphore closed; no longer accepting");
                    break;
                };
                match accepted {
                    Ok((socket, peer, tls)) => {
                        backoff = ACCEPT_BACKOFF_MIN;
                        connections.start(socket, peer, tls, permit);
                    }
                    Err(err) => {
                        warn!("accept failed, retrying in {backoff:?}: {err}");
                        drop(permit);
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                }
            }
        }
        open_connections.set(connections.tasks.len() as f64);
    }

    info!(live = connections.tasks.len(), "rtmp ingest shutting down");
    connections.close_all().await;
    open_connections.set(0.0);
    Ok(())
}

/// The live connection tasks, counted per address.
struct Connections {
    authorizer: Arc<dyn PublishAuthorizer>,
    limits: IngestLimits,
    per_ip_cap: usize,
    tasks: JoinSet<()>,
    /// Task id -> peer, so a panicked task can be reported with its peer and
    /// its address's count released.
    peers: HashMap<Id, SocketAddr>,
    per_ip: HashMap<IpAddr, usize>,
    refused_per_ip: u64,
    /// Refused publishes per address, so a wrong-key flood logs sparsely.
    refusals: Arc<RefusalLog>,
    /// Connections hold receivers; dropping the sender tells them all to end.
    notify_shutdown: watch::Sender<()>,
}

impl Connections {
    fn new(authorizer: Arc<dyn PublishAuthorizer>, limits: IngestLimits) -> Self {
        Self {
            authorizer,
            per_ip_cap: limits.max_connections_per_ip.max(1),
            limits,
            tasks: JoinSet::new(),
            peers: HashMap::new(),
            per_ip: HashMap::new(),
            refused_per_ip: 0,
            refusals: Arc::new(RefusalLog::default()),
            notify_shutdown: watch::channel(()).0,
        }
    }

    /// Runs an accepted connection in a task of its own (in a `peer` span),
    /// or closes it at once when its address is at its cap.
    fn start(
        &mut self,
        socket: TcpStream,
        peer: SocketAddr,
        tls: Option<crate::tls::TlsAcceptor>,
        permit: OwnedSemaphorePermit,
    ) {
        let count = self.per_ip.entry(peer.ip()).or_default();
        if *count >= self.per_ip_cap {
            // Closing at once frees the slot and costs the flood nothing but
            // a SYN; one line per 1000.
            self.refused_per_ip += 1;
            if self.refused_per_ip % 1000 == 1 {
                warn!(%peer, refused = self.refused_per_ip, "connection refused: per-IP limit reached");
            }
            return;
        }
        *count += 1;
        let span = info_span!("rtmp", %peer, stream = tracing::field::Empty);
        let authorizer = Arc::clone(&self.authorizer);
        let refusals = Arc::clone(&self.refusals);
        let limits = self.limits;
        let mut shutdown = self.notify_shutdown.subscribe();
        let task = async move {
            let _permit = permit; // frees the slot when the connection ends
            // Control replies are small; do not let Nagle hold them back.
            if let Err(err) = socket.set_nodelay(true) {
                debug!("cannot set TCP_NODELAY: {err}");
            }
            let run = async move {
                let Some(acceptor) = tls else {
                    return connection::run(socket, peer, authorizer, refusals, limits).await;
                };
                // The TLS handshake is part of the time allowed to start a publish.
                let started = tokio::time::Instant::now();
                let tls = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(socket))
                    .await
                    .map_err(|_| Error::HandshakeTimeout)??;
                let limits = IngestLimits {
                    handshake_timeout: limits.handshake_timeout.saturating_sub(started.elapsed()),
                    ..limits
                };
                connection::run(tls, peer, authorizer, refusals, limits).await
            };
            tokio::select! {
                result = run => log_connection_end(result),
                _ = shutdown.changed() => info!("closing connection: server shutting down"),
            }
        };
        let handle = self.tasks.spawn(task.instrument(span));
        self.peers.insert(handle.id(), peer);
    }

    /// Reaps one connection task and releases its address's count; a panic
    /// is logged here (outside the task's span, so with its peer).
    fn reap(&mut self, joined: Result<(Id, ()), JoinError>) {
        report_task_end(joined, &mut self.peers, &mut self.per_ip);
    }

    /// Tells every live connection to end (which drops their media senders,
    /// so pipelines see their channels close and flush) and waits for them.
    async fn close_all(mut self) {
        drop(self.notify_shutdown);
        while let Some(joined) = self.tasks.join_next_with_id().await {
            report_task_end(joined, &mut self.peers, &mut self.per_ip);
        }
    }
}

/// Reaps one connection task and releases its address's count; a panic is
/// logged here (outside the task's span, so with its peer).
fn report_task_end(
    joined: Result<(Id, ()), JoinError>,
    peers: &mut HashMap<Id, SocketAddr>,
    per_ip: &mut HashMap<IpAddr, usize>,
) {
    let (id, failure) = match joined {
        Ok((id, ())) => (id, None),
        Err(err) => (err.id(), Some(err)),
    };
    let peer = peers.remove(&id);
    if let Some(peer) = peer
        && let Some(count) = per_ip.get_mut(&peer.ip())
    {
        *count = count.saturating_sub(1);
        if *count == 0 {
            per_ip.remove(&peer.ip());
        }
    }
    match failure {
        None => {}
        Some(err) if err.is_panic() => error!(peer = ?peer, "rtmp connection task panicked: {err}"),
        // Only an abort cancels a task, and nothing aborts them.
        Some(_) => debug!(peer = ?peer, "rtmp connection task cancelled"),
    }
}

/// Log level by cause: port scanners, floods and dropped encoders are
/// routine, a protocol violation is worth a warning, a parser panic is an
/// error.
fn log_connection_end(result: Result<(), Error>) {
    match result {
        Ok(()) => debug!("connection closed"),
        Err(err @ Error::Handshake(HandshakeError::ParserPanic)) => error!("closing connection: {err}"),
        Err(err @ (Error::Session(_) | Error::MediaClosed)) => warn!("closing connection: {err}"),
        Err(err @ (Error::Handshake(_) | Error::HandshakeTimeout | Error::HandshakeEof | Error::PublishTimeout(_))) => {
            debug!("closing connection: {err}")
        }
        Err(err @ (Error::Io(_) | Error::IdleTimeout(_) | Error::WriteStalled(_))) => {
            info!("closing connection: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrong-key flood from one address writes one line per
    /// `REFUSALS_PER_LOG_LINE` refusals; another address is counted apart.
    #[test]
    fn refused_publishes_are_logged_once_per_hundred_per_address() {
        let log = RefusalLog::default();
        let flooder: IpAddr = [192, 0, 2, 1].into();
        let other: IpAddr = [192, 0, 2, 2].into();
        let logged: Vec<u64> = (0..250).filter_map(|_| log.note(flooder)).collect();
        assert_eq!(logged, [1, 101, 201]);
        assert_eq!(log.note(other), Some(1));
        assert_eq!(log.note(other), None);
        // Memory stays bounded: past the cap the counts start over.
        for i in 0..REFUSAL_LOG_MAX_ADDRESSES as u32 {
            log.note(IpAddr::from(i.to_be_bytes()));
        }
        assert!(log.refused.lock().unwrap().len() <= REFUSAL_LOG_MAX_ADDRESSES);
    }
}
