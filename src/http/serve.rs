//! The HTTP accept loop: what one slow or greedy client may hold.
//!
//! `axum::serve` has no header timeout and no connection cap, so a client
//! that opens connections and never finishes a request could hold
//! descriptors until the process had none left for RTMP or segment files.
//! Here (mini-redis's shape, like [`crate::ingest::serve`]) a `Semaphore`
//! caps connections, a per-address count closes the excess from one address
//! at once, and hyper closes a connection whose request headers (or whose
//! next request on a kept-alive connection) do not arrive within the header
//! timeout. Each connection is a task of its own; nothing it does reaches
//! the loop.
//!
//! With TLS (`[http] tls_cert_file`), the handshake runs in the connection's
//! task, and handshake plus first request headers must arrive within the
//! header timeout counted from the accept, so a client that stalls its
//! handshake holds its slot no longer than one that stalls its headers.
//! ALPN then picks hyper's HTTP/2 (`h2`) or HTTP/1.1 connection. Plain
//! connections are HTTP/1.1 only: guessing the version would wait for bytes
//! with no timeout.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;
use tracing::{debug, info, warn};

/// Failed `accept` calls (out of descriptors, most likely) are retried after
/// this, doubling up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What one HTTP listener allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time to send a request's headers, and to start the next request on a
    /// kept-alive connection.
    pub header_timeout: Duration,
    /// Connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections open at once from one address; further ones are closed.
    pub max_connections_per_ip: usize,
}

impl ServeLimits {
    /// `[http.limits]`, with the total capped by the open-file budget
    /// ([`crate::fd_limit::http_connection_budget`]).
    pub fn from_config(limits: &crate::config::HttpLimits, open_files: crate::fd_limit::OpenFiles) -> Self {
        Self {
            header_timeout: Duration::from_secs(limits.header_timeout_secs),
            max_connections: crate::fd_limit::http_connection_budget(limits.max_connections as usize, open_files),
            max_connections_per_ip: limits.max_connections_per_ip as usize,
        }
    }
}

/// Connections per address, shared by the loop and the connection tasks.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

impl PerIp {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Plain counts: a panic elsewhere leaves nothing half-done.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One connection's place in its address's count, given back on drop.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl IpSlot {
    fn take(per_ip: &Arc<PerIp>, ip: IpAddr, cap: usize) -> Option<Self> {
        let mut counts = per_ip.lock();
        let count = counts.entry(ip).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Self {
            per_ip: Arc::clone(per_ip),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` (HTTP/1.1) within `limits` until
/// `shutdown` resolves; then stops accepting, lets requests in flight
/// finish, and returns. Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_tls(listener, router, limits, None, shutdown).await
}

/// [`serve`], speaking HTTPS (HTTP/2 or HTTP/1.1 by ALPN) when `tls` is
/// given; the acceptor should offer [`crate::tls::ALPN_HTTP`].
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<crate::tls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let per_ip_cap = limits.max_connections_per_ip.max(1);
    let semaphore = Arc::new(Semaphore::new(permits));
    let per_ip = Arc::new(PerIp::default());
    let graceful = GracefulShutdown::new();
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    // hyper's HTTP/2 has no header timeout: `ReadDeadline` closes a connection
    // whose peer sends nothing for the header timeout instead (no pings,
    // whose answers would count as activity).
    http2.timer(TokioTimer::new());
    let builders = Arc::new(Builders {
        http1,
        http2,
        tls,
        handshake_timeout: limits.header_timeout,
    });
    info!(
        addr = %listener.local_addr()?,
        tls = builders.tls.is_some(),
        max_connections = permits,
        max_connections_per_ip = per_ip_cap,
        header_timeout_secs = limits.header_timeout.as_secs(),
        "http listening"
    );
    let mut refused_per_ip: u64 = 0;
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(shutdown);
    loop {
        // A free slot first, then accept: at the cap, new peers queue in the
        // kernel backlog and hold no descriptor of ours. Both are cancel safe.
        let accept = async {
            let permit = Arc::clone(&semaphore).acquire_owned().await;
            (permit, listener.accept().await)
        };
        tokio::select! {
            () = &mut shutdown => break,
            (permit, accepted) = accept => {
                // The semaphore is never closed.
                let Ok(permit) = permit else { break };
                let (socket, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "http accept failed, retrying in {backoff:?}");
                        drop(permit);
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                        continue;
                    }
                };
                backoff = ACCEPT_BACKOFF_MIN;
                let Some(slot) = IpSlot::take(&per_ip, peer.ip(), per_ip_cap) else {
                    // Dropping the socket closes it; one line per 1000.
                    refused_per_ip += 1;
                    if refused_per_ip % 1000 == 1 {
                        warn!(%peer, refused = refused_per_ip, "http connection refused: per-IP limit reached");
                    }
                    continue;
                };
                serve_connection(&builders, &graceful, socket, peer, router.clone(), (permit, slot));
            }
        }
    }
    drop(listener);
    debug!("http: no longer accepting; finishing requests in flight");
    graceful.shutdown().await;
    Ok(())
}

/// How connections are served: shared by the loop and the connection tasks.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    tls: Option<crate::tls::TlsAcceptor>,
    /// The TLS handshake's deadline: the header timeout.
    handshake_timeout: Duration,
}

/// Runs one connection in a task of its own, holding `slots` until it ends.
fn serve_connection<S: Send + 'static>(
    builders: &Arc<Builders>,
    graceful: &GracefulShutdown,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    slots: S,
) {
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let Some(acceptor) = builders.tls.clone() else {
        let connection = graceful.watch(builders.http1.serve_connection(TokioIo::new(socket), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%peer, %error, "http connection ended");
            }
            drop(slots);
        });
        return;
    };
    let builders = Arc::clone(builders);
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let first_request_by = tokio::time::Instant::now() + builders.handshake_timeout;
        let tls = match tokio::time::timeout_at(first_request_by, acceptor.accept(socket)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                debug!(%peer, %error, "tls handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "tls handshake timed out");
                return;
            }
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let result = if h2 {
            let io = TokioIo::new(ReadDeadline::idle(tls, builders.handshake_timeout));
            watcher.watch(builders.http2.serve_connection(io, service)).await
        } else {
            let io = TokioIo::new(ReadDeadline::until_first_write(tls, first_request_by));
            watcher.watch(builders.http1.serve_connection(io, service)).await
        };
        if let Err(error) = result {
            debug!(%peer, %error, "https connection ended");
        }
        drop(slots);
    });
}

/// A transport whose reads fail at a deadline:
/// - [`ReadDeadline::idle`]: once the peer has sent nothing for `timeout`
///   (each byte read pushes it back). HTTP/2's stand-in for HTTP/1.1's
///   header and keep-alive timeout, so a client that opens an HTTP/2
///   connection and goes quiet (sends no request, reads no response, which
///   would send window updates) cannot hold its slot.
/// - [`ReadDeadline::until_first_write`]: at a fixed instant, unless the
///   server has written something by then. For HTTPS/1.1: the first request's
///   headers must arrive within the header timeout counted from the accept,
///   TLS handshake included (hyper's own timer starts after the handshake);
///   the first response disarms it and hyper's timer governs what follows.
struct ReadDeadline<T> {
    inner: T,
    /// `Some`: the idle timeout each byte read restarts.
    idle: Option<Duration>,
    /// Disarmed by the first write.
    until_first_write: bool,
    /// `None` once disarmed.
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> ReadDeadline<T> {
    fn idle(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            idle: Some(timeout),
            until_first_write: false,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }

    fn until_first_write(inner: T, at: tokio::time::Instant) -> Self {
        Self {
            inner,
            idle: None,
            until_first_write: true,
            deadline: Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn wrote(&mut self, result: &std::task::Poll<std::io::Result<usize>>) {
        if self.until_first_write && matches!(result, std::task::Poll::Ready(Ok(n)) if *n > 0) {
            self.deadline = None;
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ReadDeadline<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let (Some(timeout), Some(deadline)) = (this.idle, this.deadline.as_mut())
                    && buf.filled().len() > before
                {
                    deadline.as_mut().reset(tokio::time::Instant::now() + timeout);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "peer too slow for the header timeout",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ReadDeadline<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&result);
        result
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: ServeLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/peer",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// A resolver with no certificate: enough for clients that never get as
    /// far as asking for one.
    #[derive(Debug)]
    struct NoCertificate;

    impl rustls::server::ResolvesServerCert for NoCertificate {
        fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }

    async fn start_tls(limits: ServeLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCertificate));
        let acceptor = crate::tls::TlsAcceptor::from(Arc::new(config));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_tls(listener, Router::new(), limits, Some(acceptor), async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// A TLS client that stalls its handshake (silent, or a ClientHello cut
    /// short) is closed after the header timeout, and its slot is free again.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_tls_handshake_is_closed_after_the_header_timeout() {
        let limits = ServeLimits {
            max_connections: 2,
            ..LIMITS
        };
        let (addr, _stop) = start_tls(limits).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut cut_short = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A TLS record header announcing a 512-byte handshake message, then nothing.
        cut_short
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        assert!(read_to_close(&mut silent).await.is_empty());
        assert!(read_to_close(&mut cut_short).await.is_empty());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // Both slots are free: a third connection is accepted and timed out too.
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(read_to_close(&mut third).await.is_empty());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    /// `ReadDeadline::until_first_write` fails reads at its instant, however
    /// the bytes trickle in, unless something was written first.
    #[tokio::test(start_paused = true)]
    async fn the_first_request_deadline_holds_until_the_first_write() {
        let started = tokio::time::Instant::now();
        for answer in [false, true] {
            let (mut client, server) = tokio::io::duplex(64);
            let mut server = ReadDeadline::until_first_write(server, started + Duration::from_secs(5));
            let trickle = tokio::spawn(async move {
                for _ in 0..20 {
                    client.write_all(b"x").await.unwrap();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                client
            });
            if answer {
                server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
            }
            let mut got = 0;
            let mut byte = [0u8; 1];
            let ended = loop {
                match server.read(&mut byte).await {
                    Ok(0) => break None,
                    Ok(_) => got += 1,
                    Err(error) => break Some(error.kind()),
                }
                if got == 20 {
                    break None;
                }
            };
            if answer {
                assert_eq!((ended, got), (None, 20));
            } else {
                assert_eq!(ended, Some(std::io::ErrorKind::TimedOut));
                assert_eq!(started.elapsed(), Duration::from_secs(5));
            }
            trickle.abort();
        }
    }

    /// `ReadDeadline::idle` fails a read once nothing came for its timeout,
    /// and data pushes the deadline back.
    #[tokio::test(start_paused = true)]
    async fn idle_read_times_out_only_when_nothing_comes() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = ReadDeadline::idle(server, Duration::from_secs(5));
        let mut client = client;
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            client.write_all(b"x").await.unwrap();
            // Held open, silent, until the reader gives up.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(client);
        });
        let mut byte = [0u8; 1];
        server.read_exact(&mut byte).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        let error = server.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(9));
    }

    const LIMITS: ServeLimits = ServeLimits {
        header_timeout: Duration::from_secs(5),
        max_connections: 100,
        max_connections_per_ip: 3,
    };

    /// Reads until the server closes; what it sent.
    async fn read_to_close(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = socket.read_to_end(&mut out).await;
        out
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connections_are_closed_after_the_header_timeout() {
        let (addr, _stop) = start(LIMITS).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut trickling = tokio::net::TcpStream::connect(addr).await.unwrap();
        trickling.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(read_to_close(&mut silent).await.is_empty());
        let answer = read_to_close(&mut trickling).await;
        // hyper answers a header timeout with nothing, or with a 408.
        assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"), "{answer:?}");
        // Paused clock: exactly the timeout passed, however long the machine took.
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_too() {
        let (addr, _stop) = start(LIMITS).await;
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        socket.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        let started = tokio::time::Instant::now();
        read_to_close(&mut socket).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn one_address_gets_its_cap_and_the_excess_is_closed_at_once() {
        let (addr, _stop) = start(LIMITS).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // The fourth is accepted and closed without an answer, before any timeout.
        let mut excess = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = excess.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(read_to_close(&mut excess).await.is_empty());
        // One held connection leaves: its slot is free again, and the handler
        // sees the peer address.
        drop(held.pop());
        let answered = loop {
            let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = socket
                .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let answer = read_to_close(&mut socket).await;
            if !answer.is_empty() {
                break String::from_utf8(answer).unwrap();
            }
            // The server had not yet seen the close; try again.
            tokio::task::yield_now().await;
        };
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(answered.ends_with("127.0.0.1"), "{answered}");
    }
}
