//! sealcast: live video kept encrypted from the encoder to the player.
//!
//! An encoder pushes FLV-framed audio and video over RTMP; sealcast remuxes it
//! without transcoding into MPEG-TS segments, encrypts each one with
//! AES-128-CBC under a data key from a key management service (envelope
//! encryption), and publishes an HLS media playlist whose `EXT-X-KEY` URIs
//! carry the wrapped data key. The architecture is described in
//! `docs/architecture.md`; this page is its map of the code.
//!
//! # Two kinds of code
//! The format and protocol cores are the `sealcast-core` crate, re-exported
//! here under their own names ([`rtmp`], [`amf0`], [`flv`], [`media`], [`ts`],
//! [`hls`], [`crypto`], [`pipeline`], [`timeline`], [`names`], [`auth`],
//! [`clock`]). They are sans-IO: bytes and times in, values out; that crate
//! has no IO dependency, so the compiler keeps it so.
//!
//! This crate holds the adapters, in data-path order:
//! - [`ingest`]: the RTMP accept loop and the per-connection driver around
//!   [`rtmp::Session`] (socket, timeouts, backpressure, publish decisions).
//! - [`live`]: the stream registry, the publish task that runs one
//!   publish's [`pipeline::Pipeline`], and the segment writer.
//! - [`storage`]: atomic files and the segment directory.
//! - [`kms`]: key providers behind one async trait (the local keyring, AWS
//!   KMS) and the data-key prefetcher.
//! - [`keyservice`]: the key endpoint's logic: token and one-time ticket
//!   checks, the cache of unwrapped keys, replay stores, `sealcast keyserver`.
//! - [`http`]: playlists with token-rewritten key URIs, segments, keys, the
//!   admin API and the web pages.
//! - [`config`]: the TOML schema, its validation and secret references.
//! - [`metrics`]: Prometheus metrics, `GET /metrics` on a listener of its own.
//! - [`tls`]: rustls for HTTPS and RTMPS, certificates swapped on SIGHUP.
//! - [`server`]: `sealcast serve`: RTMP (and RTMPS) and HTTP(S) side by side,
//!   shutdown.
//! - [`clock`] also holds [`clock::SystemClock`], the one reader of the
//!   system clock.
//!
//! Tools that are not the server live in [`tools`]: the `package`/`decrypt`
//! file tools, the RTMP publishing client and the `bench-push` load
//! generator.

pub use sealcast_core::{amf0, auth, crypto, demux, flv, hls, license, media, names, pipeline, rtmp, timeline, ts};

pub mod clock;
pub mod cluster;
pub mod config;
pub mod fd_limit;
pub mod http;
pub mod ingest;
pub mod keyservice;
pub mod kms;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod readiness;
pub mod reload;
pub mod server;
pub mod storage;
pub mod tls;
pub mod tools;
pub mod webhooks;
