//! sealcast's sans-IO cores: everything between the bytes an encoder sends and
//! the sealed segments and playlists a server stores, with no IO of its own.
//!
//! Nothing in this crate opens a socket or a file, reads the clock or spawns a
//! task: bytes and times come in as arguments, output comes back as values
//! (quinn-proto's rule). The crate has no tokio, axum or hyper dependency, so
//! the compiler holds the line; `scripts/check-sans-io.sh` catches what it
//! cannot see (`std::net`, `std::fs`, `SystemTime::now`, `Instant::now`).
//! Every core can be fuzzed and unit-tested with byte literals.
//!
//! # The data path, in module order
//! - [`rtmp`]: the RTMP protocol after the TCP socket: handshake, chunk
//!   stream, and the server [`rtmp::Session`] (bytes in; bytes out, media and
//!   publish requests as events; the answer to a publish request comes back
//!   as an input).
//! - [`amf0`]: the AMF0 reader (bounded, iterative, borrowing) and writer that
//!   RTMP commands and FLV script data use.
//! - [`flv`]: FLV files and tag bodies; AVC/AAC configs; onMetaData.
//! - [`demux`]: MP4 and MPEG-TS input files as FLV tag bodies, for `sealcast package`.
//! - [`media`]: what the stages pass each other: access units, tracks, codecs,
//!   and the H.264 Annex B rewrite of a length-prefixed sample.
//! - [`ts`]: the MPEG-TS muxer (PAT/PMT/PES/PCR) on the `mpeg2ts` crate.
//! - [`hls`]: the segmenter (where to cut) and media playlists (render, parse).
//! - [`crypto`]: data keys, the streaming segment cipher (AES-128-CBC), the
//!   AES-256-GCM envelope that wraps data keys.
//! - [`pipeline`]: FLV tags in, sealed segments out: the stages above joined.
//! - [`timeline`]: a closed segment and the time it was stored in; its
//!   playlist entry and the moments its file and key may go.
//!
//! Shared by the cores and the adapters:
//! - [`names`]: stream names, segment names and key URIs, validated.
//! - [`auth`]: the `Secret` wrapper, HS256 playback tokens and one-time
//!   tickets (time is an argument).
//! - [`clock`]: the [`clock::Clock`] trait, Unix times and UTC date-times.

// Stricter than the workspace (which allows unsafe code in one ingest module).
#![forbid(unsafe_code)]

pub mod amf0;
pub mod auth;
pub mod clock;
pub mod crypto;
pub mod demux;
pub mod flv;
pub mod hls;
pub mod license;
pub mod media;
pub mod names;
pub mod pipeline;
pub mod rtmp;
pub mod timeline;
pub mod ts;
