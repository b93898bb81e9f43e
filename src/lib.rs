//! sealcast: live video kept encrypted from the encoder to the player.
//!
//! An encoder pushes FLV-framed audio and video; sealcast remuxes it without
//! transcoding into MPEG-TS segments, encrypts each one with AES-128-CBC under a
//! data key from a key management service (envelope encryption), and publishes an
//! HLS media playlist whose `EXT-X-KEY` URIs carry the wrapped data key.
//!
//! # Layout
//! The format cores are sans-IO: bytes and time come in as arguments, output
//! comes back as values. They never touch sockets, files or the clock.
//! - [`media`]: the types the cores share (access units, tracks, codecs).
//! - [`amf0`]: AMF0 reader (bounded, iterative, borrowing) and writer, for
//!   RTMP commands and FLV/RTMP onMetaData.
//! - [`flv`]: FLV file and tag-body parsing; AVC/AAC configs to Annex B / ADTS.
//! - [`ts`]: MPEG-TS muxer (PAT/PMT/PES/PCR) on the `mpeg2ts` crate.
//! - [`hls`]: segmenter and media playlist model (render and parse).
//! - [`crypto`]: data keys, segment cipher (AES-128-CBC), envelope format.
//! - [`pipeline`]: FLV tags in, closed encrypted segments out: the cores joined.
//! - [`auth`]: the `Secret` wrapper and HS256 playback tokens (mint, verify).
//!
//! Adapters with IO:
//! - [`config`]: the TOML config: defaults, validation, secret resolution.
//! - [`kms`]: key providers behind one async trait: the local keyring and AWS
//!   KMS (SigV4, JSON API), key prefetching, a latency wrapper for tests.
//! - [`names`]: stream names, segment names and key URIs, validated.
//! - [`store`]: atomic file writes.
//! - [`package`]: the `sealcast package` / `sealcast decrypt` file tools.
//! - [`live`]: the stream registry, publish authorization, and the task that
//!   runs one publish's pipeline and stores its segments and playlist.
//! - [`http`]: playlists with token-rewritten key URIs, segments, key endpoint.
//! - [`web`]: the operator's stream list at `/` and the watch page (hls.js,
//!   strict Content-Security-Policy) at `/watch/{app}/{name}`.
//! - [`keyservice`]: the key endpoint's logic: token and one-time ticket
//!   checks, the cache of unwrapped keys, replay stores (memory, Redis), and
//!   `sealcast keyserver`.
//! - [`api`]: the admin API (`/api/v1/playback`, `/api/v1/streams`).
//! - [`server`]: `sealcast serve`: RTMP and HTTP side by side, graceful shutdown.
//! - [`rtmp`]: RTMP ingest: accept loop with limits, our own chunk decoder
//!   and server session (sans-IO, fuzzable), publish
//!   authorization, media into a bounded channel per publish.
//! - [`loadgen`]: `sealcast bench-push`, many real-time RTMP publishers in one
//!   process for load tests.

pub mod amf0;
pub mod api;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod flv;
pub mod hls;
pub mod http;
pub mod keyservice;
pub mod kms;
pub mod live;
pub mod loadgen;
pub mod media;
pub mod names;
pub mod package;
pub mod pipeline;
pub mod rtmp;
pub mod server;
pub mod store;
pub mod ts;
pub mod web;
