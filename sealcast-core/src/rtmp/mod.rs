//! The RTMP protocol, sans-IO: everything after the TCP socket and before
//! the stream registry (RTMP 1.0 specification, sections 5 to 7).
//!
//! - [`handshake`]: C0/C1/C2 in, S0/S1/S2 out (rml_rtmp's, fixed-size, run
//!   under `catch_unwind` because it reads peer bytes).
//! - [`chunk`]: the chunk stream decoder and encoder, with every size limit.
//! - [`Session`]: commands and media. Bytes in through
//!   [`Session::handle_input`]; bytes for the peer and [`Event`]s out. A
//!   publish request is an event; the driver asks whoever decides and hands
//!   the answer back with [`Session::accept_publish`] or
//!   [`Session::refuse_publish`]. The session holds no channel, no socket
//!   address, no callback: it cannot block, read the clock or spawn.
//!
//! Why not rml_rtmp's `ServerSession`: rml_rtmp 0.8 (unmaintained since
//! 2023) panics on input any client can send (a bare `@setDataFrame` data
//! message; chunk streams interleaved chunk by chunk, because its chunk
//! deserializer keeps one payload buffer for all chunk streams; a type 1
//! header shrinking the length mid-message), and rml_amf0 decodes nested
//! values recursively, so a deeply nested AMF0 value overflows the stack,
//! which aborts the whole process where `catch_unwind` cannot help. So no
//! peer byte after the handshake reaches either crate: [`chunk`],
//! [`crate::amf0`] (bounded, iterative) and [`Session`] are ours, sans-IO and
//! fuzzable.

pub mod chunk;
pub mod handshake;
mod session;

pub use chunk::ChunkError;
pub use handshake::{Handshake, HandshakeError};
pub use session::{CHUNK_SIZE_BYTES, Session};

use crate::amf0::Amf0Error;
use crate::flv;

/// Longest prefix of a peer-chosen string, in bytes, that [`printable`]
/// puts in a log line.
pub const PRINTABLE_MAX_BYTES: usize = 64;

/// A peer-chosen string (app name, command name) made safe for a log line:
/// at most [`PRINTABLE_MAX_BYTES`] bytes of it, as lossy UTF-8, with every
/// control character (newline, carriage return, ESC, DEL, C1 controls),
/// invisible format character (bidi overrides) and backslash written as a
/// Rust escape (`\n`, `\u{1b}`, `\\`), and `...` appended when it was
/// cut. A peer can then neither start a forged log line nor send terminal
/// escape sequences, and one line stays a few hundred bytes at most.
///
/// Never pass a stream key: secrets are not logged at all.
pub fn printable(text: &[u8]) -> String {
    let cut = text.len() > PRINTABLE_MAX_BYTES;
    let head = String::from_utf8_lossy(&text[..text.len().min(PRINTABLE_MAX_BYTES)]);
    let mut out = String::with_capacity(head.len() + 3);
    for c in head.chars() {
        // Quotes are printable; escape_debug would add a backslash to them.
        if matches!(c, '"' | '\'') {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    if cut {
        out.push_str("...");
    }
    out
}

/// One media message of a publish, in arrival order. Bodies are FLV tag
/// bodies (what RTMP audio/video messages carry, FLV spec v10.1 E.4.2/E.4.3).
#[derive(Debug, Clone, PartialEq)]
pub enum MediaMessage {
    /// An RTMP video message (message type 9).
    Video {
        /// RTMP message timestamp (the FLV tag's DTS), 32-bit ms, wraps.
        timestamp_ms: u32,
        /// The FLV VIDEODATA body: frame type/codec byte, then codec payload.
        body: bytes::Bytes,
    },
    /// An RTMP audio message (message type 8).
    Audio {
        /// RTMP message timestamp, 32-bit ms, wraps.
        timestamp_ms: u32,
        /// The FLV AUDIODATA body: format byte, then codec payload.
        body: bytes::Bytes,
    },
    /// onMetaData (with or without the @setDataFrame prefix).
    Metadata(flv::Metadata),
}

/// What the session asks of its driver, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A publish was requested: decide, then answer with
    /// [`Session::accept_publish`] or [`Session::refuse_publish`]. Until
    /// then the session holds every later message unread.
    PublishRequested(PublishRequest),
    /// Media of the accepted publish.
    Media(MediaMessage),
    /// The accepted publish ended (FCUnpublish, deleteStream, closeStream);
    /// every media message of it came before this event.
    PublishEnded,
}

/// A publish request as the encoder sent it. The key is a secret: never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// `app` from connect.
    pub app: String,
    /// The publish name with any `?query` stripped: the stream key.
    pub stream_key: String,
    /// The query of `key?query` (OBS and ffmpeg pass one through), `None`
    /// when absent or empty.
    pub query: Option<String>,
}

impl std::fmt::Debug for PublishRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishRequest")
            .field("app", &self.app)
            .field("stream_key", &"..")
            .field("query", &self.query.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Why a publish request was refused. The text is sent to the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    /// Unknown app or wrong key (deliberately not saying which).
    #[error("unknown app or stream key")]
    BadKey,
    /// Another connection is already publishing this stream.
    #[error("stream is already live")]
    AlreadyLive,
    /// The server no longer starts publishes.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The server could not start the publish (for example, the operating
    /// system's random number generator failed).
    #[error("server error, try again")]
    Unavailable,
}

/// What the driver does after handing the session some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Flush the outbound bytes and events already produced, then close: a
    /// request was refused or the peer broke the protocol.
    Close,
}

/// Size limits of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest RTMP message accepted from a publisher (before the publish
    /// is accepted, at most 64 KiB: commands are small).
    pub max_message_bytes: u32,
    /// Largest chunk size a peer may set. Memory does not grow with it.
    pub max_chunk_size_bytes: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 8 * 1024 * 1024,
            max_chunk_size_bytes: 65536,
        }
    }
}

/// Why a session must close. The driver logs it in the connection's span.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The chunk stream broke the protocol or a limit.
    #[error("rtmp chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A command's AMF0 was malformed.
    #[error("rtmp command: {0}")]
    Amf0(#[from] Amf0Error),
    /// A command out of order (e.g. publish before connect).
    #[error("rtmp protocol error: {0}")]
    Protocol(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile app names from issue 18, finding 4: a newline and a forged
    /// log line, terminal escapes, a 60,000-byte name.
    #[test]
    fn printable_escapes_and_caps_peer_text() {
        let forged = b"live\n2026-01-01T00:00:00Z  INFO sealcast: publish accepted stream=live/demo";
        let cases: &[(&[u8], &str)] = &[
            (b"live", "live"),
            (b"", ""),
            (b"live\r\nINFO publish accepted", "live\\r\\nINFO publish accepted"),
            (b"\x1b[2J\x1b[31mred", "\\u{1b}[2J\\u{1b}[31mred"),
            (b"a\x07b\x7fc\x00d\te", "a\\u{7}b\\u{7f}c\\0d\\te"),
            ("x\u{202e}y\u{85}z".as_bytes(), "x\\u{202e}y\\u{85}z"),
            (b"back\\slash \"quoted\" 'single'", "back\\\\slash \"quoted\" 'single'"),
            (b"\xff\xfeok", "\u{fffd}\u{fffd}ok"),
            ("caf\u{e9}".as_bytes(), "caf\u{e9}"),
        ];
        for (input, want) in cases {
            assert_eq!(printable(input), *want, "{input:?}");
        }

        let escaped = printable(forged);
        assert!(!escaped.contains('\n'), "{escaped}");
        assert!(escaped.starts_with("live\\n2026"), "{escaped}");

        let huge = vec![b'a'; 60_000];
        assert_eq!(printable(&huge), format!("{}...", "a".repeat(PRINTABLE_MAX_BYTES)));
        // The worst case: every byte a control character, each escaped.
        let worst = printable(&[0x1b; 60_000]);
        assert!(worst.len() <= PRINTABLE_MAX_BYTES * 6 + 3, "{}", worst.len());
        assert!(!worst.bytes().any(|b| b.is_ascii_control()), "{worst}");
        // Exactly at the cap: nothing cut, no ellipsis.
        assert_eq!(printable(&[b'b'; PRINTABLE_MAX_BYTES]), "b".repeat(PRINTABLE_MAX_BYTES));
    }
}
