//! The server side of the RTMP handshake (RTMP 1.0 section 5.2): C0/C1/C2
//! in, S0/S1/S2 out.
//!
//! rml_rtmp's handshake does the work (it is fixed-size and sans-IO); this
//! wrapper keeps any panic of that third-party code on peer bytes inside the
//! connection that sent them.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rml_rtmp::handshake::{Handshake as RmlHandshake, HandshakeProcessResult, PeerType};

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer's bytes were not an RTMP handshake.
    #[error("bad handshake: {0}")]
    Invalid(#[from] rml_rtmp::handshake::HandshakeError),
    /// rml_rtmp panicked on the peer's bytes; treated as a protocol error.
    #[error("rtmp handshake panicked on peer input")]
    ParserPanic,
}

/// What one input did to the handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes and read more.
    InProgress { response: Vec<u8> },
    /// Send these bytes; the handshake is over and `remaining` (bytes the
    /// peer sent after C2) are already RTMP chunks.
    Done { response: Vec<u8>, remaining: Vec<u8> },
}

/// The server side of one connection's handshake.
pub struct Handshake(RmlHandshake);

impl Default for Handshake {
    fn default() -> Self {
        Self(RmlHandshake::new(PeerType::Server))
    }
}

impl Handshake {
    /// Feeds bytes received from the peer.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Step, HandshakeError> {
        let result = catch_unwind(AssertUnwindSafe(|| self.0.process_bytes(bytes)))
            .map_err(|_| HandshakeError::ParserPanic)??;
        Ok(match result {
            HandshakeProcessResult::InProgress { response_bytes } => Step::InProgress {
                response: response_bytes,
            },
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => Step::Done {
                response: response_bytes,
                remaining: remaining_bytes,
            },
        })
    }
}
