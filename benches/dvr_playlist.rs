//! What a DVR window costs per playlist request: bytes of the personalized
//! playlist and time to make it, for a 2-hour window, by segment duration,
//! segments per key and credential (token written into every key URI, or a
//! one-time ticket minted per key URI).
//!
//! `cargo bench --bench dvr_playlist` prints a table (the fastest of 41
//! renders, wall time on one core); `cargo test --all-targets` runs each case
//! once as a smoke test. The numbers are in docs/performance.md.

// Bench code: an unwrap that fails is a bench that fails, with its cause.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcast::auth::{self, Claims, Secret};
use sealcast::crypto::{self, KeyId, WrappedKey};
use sealcast::hls::{KeyTag, MediaPlaylist, SegmentEntry};
use sealcast::keyservice::{self, KeyService, KeySettings, MemoryReplayStore};
use sealcast::kms::local::LocalKms;
use sealcast::names::{KeyUri, StreamName};

const STREAM: &str = "live/bench";
const WINDOW_SECS: u32 = 2 * 3600;
const SECRET: &[u8] = b"bench-secret-bench-secret-bench!";

/// A live playlist holding a full `WINDOW_SECS` DVR window.
fn playlist(segment_secs: u32, segments_per_key: u64) -> MediaPlaylist {
    let stream = StreamName::parse(STREAM).unwrap();
    // Random wrapped keys, as real ones are (they decide how playlists compress).
    let rng = ring::rand::SystemRandom::new();
    let mut wrapped = WrappedKey::from_bytes(vec![0; crypto::WRAPPED_KEY_LEN]);
    let mut playlist = MediaPlaylist::live(segment_secs, 6, 0, 0).with_dvr_window_secs(WINDOW_SECS);
    let segments = u64::from(WINDOW_SECS / segment_secs);
    for seq in 0..segments {
        let key_id = KeyId::new(&format!("3f2a9c01-{}", seq / segments_per_key)).unwrap();
        if seq % segments_per_key == 0 {
            let mut bytes = vec![0; crypto::WRAPPED_KEY_LEN];
            ring::rand::SecureRandom::fill(&rng, &mut bytes).unwrap();
            wrapped = WrappedKey::from_bytes(bytes);
        }
        playlist.push(SegmentEntry {
            uri: format!("3f2a9c01-{seq}.ts"),
            duration_secs: f64::from(segment_secs),
            key: Some(KeyTag {
                uri: KeyUri::render(&stream, &key_id, &wrapped, "https://media.example.com"),
                iv: u128::from(seq).to_be_bytes(),
            }),
            program_date_time_ms: Some(1_700_000_000_000 + seq as i64 * i64::from(segment_secs) * 1000),
            discontinuity: false,
            sequence: 0,
        });
    }
    assert_eq!(playlist.len() as u64, segments);
    playlist
}

/// Fastest time of `runs` calls of `f` (on a shared machine other work only
/// ever adds time), and the length of what it made.
fn measure(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut len = 0;
    for _ in 0..runs {
        let start = Instant::now();
        len = black_box(f());
        times.push(start.elapsed());
    }
    times.sort();
    (times[0], len)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs each case once.
    let runs = if std::env::args().any(|a| a == "--bench") {
        41
    } else {
        1
    };
    let dir = tempfile::tempdir().unwrap();
    let kms = LocalKms::open_or_create(&dir.path().join("keyring.json")).unwrap();
    let keys = KeyService::new(
        KeySettings {
            token_secret: Secret::new(SECRET.to_vec()),
            audience: None,
            ticket_ttl_secs: Some(60),
            cache_max_entries: 100,
            cache_ttl_secs: 600,
            offline_ttl_secs: 0,
        },
        Arc::new(kms),
        Arc::new(MemoryReplayStore::new(1000)),
        sealcast::clock::system(),
    );
    let claims = Claims {
        exp: 4_000_000_000,
        stream: STREAM.to_owned(),
        sub: Some("viewer-1".to_owned()),
        jti: Some("c0ffee".to_owned()),
        recording: None,
    };
    let token = auth::mint(&Secret::new(SECRET.to_vec()), &claims);
    let query = format!("token={token}");
    let viewer = auth::ticket::viewer_tag(&claims, &token);
    println!(
        "2 h DVR window | segments | key URIs | canonical: bytes, time (once per change) | token: bytes, time | tickets: bytes, time"
    );
    for (segment_secs, per_key) in [(2, 1), (2, 10), (4, 1), (4, 10)] {
        let playlist = playlist(segment_secs, per_key);
        let (plain_time, plain) = measure(runs, || playlist.render(None).len());
        // Tokens and tickets are written into the canonical text, which the
        // server renders once per playlist change (`live::served`), not per
        // request.
        let canonical = playlist.render(None);
        let (token_time, token_bytes) = measure(runs, || keyservice::with_key_query(&canonical, &query).len());
        assert_eq!(
            keyservice::with_key_query(&canonical, &query),
            playlist.render(Some(&query))
        );
        let (ticket_time, ticket_bytes) = measure(runs, || {
            keys.ticket_playlist(&canonical, &claims, viewer).unwrap().len()
        });
        let key_uris = canonical.matches("#EXT-X-KEY").count();
        // DVR_PLAYLIST_DUMP=DIR keeps one of each, to see how they compress.
        if let Some(dir) = std::env::var_os("DVR_PLAYLIST_DUMP") {
            let dir = std::path::Path::new(&dir);
            let name = format!("{segment_secs}s-{per_key}perkey");
            std::fs::write(
                dir.join(format!("{name}-token.m3u8")),
                keyservice::with_key_query(&canonical, &query),
            )
            .unwrap();
            let tickets = keys.ticket_playlist(&canonical, &claims, viewer).unwrap();
            std::fs::write(dir.join(format!("{name}-tickets.m3u8")), tickets).unwrap();
        }
        println!(
            "{segment_secs} s segments, {per_key} per key | {} | {key_uris} | {plain}, {:.2} ms | {token_bytes}, {:.2} ms | {ticket_bytes}, {:.2} ms",
            playlist.len(),
            plain_time.as_secs_f64() * 1e3,
            token_time.as_secs_f64() * 1e3,
            ticket_time.as_secs_f64() * 1e3,
        );
    }
}
