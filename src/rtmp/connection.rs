//! The async driver of one RTMP connection: handshake, then a read loop that
//! feeds the sans-IO [`Session`] and forwards its media with backpressure.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{debug, info};

use super::session::{Flow, Session};
use super::{Error, IngestLimits, MediaMessage, PublishAuthorizer};

/// Size of the per-connection read buffer, reused for every read. A few
/// reads per video frame at typical bitrates; 1000 connections cost 16 MiB.
const READ_BUF_BYTES: usize = 16 * 1024;

/// Runs one connection to its end. Dropping the returned future (server
/// shutdown) or returning drops the session and with it the publish's media
/// sender, which is how the pipeline learns the publish ended.
pub(super) async fn run(
    mut socket: TcpStream,
    peer: SocketAddr,
    authorizer: Arc<dyn PublishAuthorizer>,
    limits: IngestLimits,
) -> Result<(), Error> {
    // Control replies are small; do not let Nagle hold them back.
    socket.set_nodelay(true)?;
    let mut buf = vec![0_u8; READ_BUF_BYTES].into_boxed_slice();

    let leftover = timeout(limits.handshake_timeout, handshake(&mut socket, &mut buf))
        .await
        .map_err(|_| Error::HandshakeTimeout)??;

    let mut out = Vec::with_capacity(1024);
    let mut media: Vec<MediaMessage> = Vec::with_capacity(64);
    let mut session = Session::new(authorizer, peer, &mut out)?;
    let mut step = session.handle_input(&leftover, &mut out, &mut media);
    drop(leftover);

    loop {
        // Media first: it was accepted before any error or close in this
        // batch, and the peer may already be gone for writes. A full
        // channel parks us here, so the socket is not read and TCP flow
        // control slows the encoder; nothing accepted is dropped.
        match session.media_sender() {
            Some(sender) => {
                for message in media.drain(..) {
                    sender.send(message).await.map_err(|_| Error::MediaClosed)?;
                }
            }
            None => media.clear(),
        }
        if !out.is_empty() {
            timeout(limits.idle_timeout, socket.write_all(&out))
                .await
                .map_err(|_| Error::WriteStalled(limits.idle_timeout))??;
            out.clear();
        }
        if step? == Flow::Close {
            return Ok(());
        }

        let read = timeout(limits.idle_timeout, socket.read(&mut buf))
            .await
            .map_err(|_| Error::IdleTimeout(limits.idle_timeout))??;
        // `read` returns at most `buf.len()`, so the slice below is in bounds.
        let Some(input) = buf.get(..read).filter(|input| !input.is_empty()) else {
            if session.media_sender().is_some() {
                info!("publisher disconnected");
            } else {
                debug!("peer disconnected");
            }
            return Ok(());
        };
        step = session.handle_input(input, &mut out, &mut media);
    }
}

/// Server side of the RTMP handshake (C0/C1/C2 in, S0/S1/S2 out). Returns
/// the bytes the peer sent after C2, which are already RTMP chunks.
async fn handshake(socket: &mut TcpStream, buf: &mut [u8]) -> Result<Vec<u8>, Error> {
    let mut handshake = Handshake::new(PeerType::Server);
    loop {
        let read = socket.read(buf).await?;
        let Some(input) = buf.get(..read).filter(|input| !input.is_empty()) else {
            return Err(Error::HandshakeEof);
        };
        // Same reason as `Session::handle_input`: rml_rtmp must not take the
        // task down on hostile bytes.
        let result =
            catch_unwind(AssertUnwindSafe(|| handshake.process_bytes(input))).map_err(|_| Error::ParserPanic)??;
        match result {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}
