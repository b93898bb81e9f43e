//! Throughput of the sans-IO stages and of the whole packaging path
//! (FLV → TS → AES-128-CBC segments) on a real fixture.
//!
//! `cargo bench --bench pipeline` measures (3 s per bench); `cargo test
//! --all-targets` runs every routine once as a smoke test, so everything
//! expensive (demuxing for the mux bench, key generation) happens once, outside
//! the timed closures. `scripts/bench-pipeline.sh` also records the machine's
//! AES-128-CBC rate from `openssl speed` to compare against.
//!
//! Byte throughput is reported in decimal MB/s (10^6 bytes), the unit `openssl
//! speed` uses, so the two can be divided directly.

// Test code: an unwrap that fails is a test that fails, with its cause.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use ring::rand::SystemRandom;
use sealcast::auth::{self, Claims, Secret};
use sealcast::crypto::{self, DataKey, EncryptionContext, KeyId, MasterKey, SegmentEncryptor, WrappedKey};
use sealcast::flv;
use sealcast::hls::{CutPolicy, KeyTag, MediaPlaylist, SegmentEntry};
use sealcast::media::{AccessUnit, Payload, Track, Tracks};
use sealcast::names::{KeyUri, StreamName};
use sealcast::pipeline::{Output, Pipeline, PipelineConfig, SegmentKey};
use sealcast::ts;

/// H.264 High with B-frames, 640x360 30 fps, AAC-LC 48 kHz; 10 s, 1 MB.
const FLV: &[u8] = include_bytes!("../fixtures/high-bframes-aac48k.flv");
/// Frames in [`FLV`] (fixtures/README.md: 300 video + 470 audio).
const FLV_FRAMES: usize = 300 + 470;

const STREAM: &str = "live/bench";
/// The server's defaults: 4 s target, one key per segment.
const TARGET_DURATION_SECS: u32 = 4;
const SEGMENTS_PER_KEY: u32 = 1;

/// Seven TS packets: what one UDP datagram carries, and a typical muxer write.
const CHUNK_BYTES: usize = 188 * 7;
const ENCRYPT_BYTES: usize = 1 << 20;

fn tags() -> impl Iterator<Item = flv::Tag<'static>> {
    // The fixture is a constant, checked by the smoke run; not peer input.
    let (_, tags) = flv::tags(FLV).expect("fixture has an FLV header");
    tags.map(|tag| tag.expect("fixture tags are well-formed"))
}

/// An access unit with its payload copied out of the tag body.
struct OwnedAu {
    track: Track,
    pts_90k: u64,
    dts_90k: u64,
    keyframe: bool,
    payload: Vec<u8>,
}

impl OwnedAu {
    fn as_au(&self) -> AccessUnit<'_> {
        AccessUnit {
            track: self.track,
            pts_90k: self.pts_90k,
            dts_90k: self.dts_90k,
            keyframe: self.keyframe,
            payload: Payload::Bytes(&self.payload),
        }
    }
}

fn demux_owned() -> (Tracks, Vec<OwnedAu>) {
    let mut demuxer = flv::Demuxer::new();
    let mut aus = Vec::with_capacity(FLV_FRAMES);
    for tag in tags() {
        if let Some(au) = demuxer
            .push(tag.kind, tag.timestamp_ms, tag.body)
            .expect("fixture demuxes")
        {
            aus.push(OwnedAu {
                track: au.track,
                pts_90k: au.pts_90k,
                dts_90k: au.dts_90k,
                keyframe: au.keyframe,
                payload: au.payload.to_vec(),
            });
        }
    }
    (demuxer.tracks(), aus)
}

/// Demuxes the whole fixture; returns (access units, payload bytes).
fn demux_all(file: &[u8]) -> (usize, usize) {
    let (_, tags) = flv::tags(file).expect("fixture has an FLV header");
    let mut demuxer = flv::Demuxer::new();
    let (mut frames, mut bytes) = (0, 0);
    for tag in tags {
        let tag = tag.expect("fixture tags are well-formed");
        if let Some(au) = demuxer
            .push(tag.kind, tag.timestamp_ms, tag.body)
            .expect("fixture demuxes")
        {
            frames += 1;
            bytes += au.payload.len();
        }
    }
    (frames, bytes)
}

/// Muxes every access unit into `out` (cleared first), starting a segment
/// (PAT + PMT) at the start and at every video keyframe, as the pipeline does.
fn mux_all(muxer: &mut ts::Muxer, tracks: Tracks, aus: &[OwnedAu], out: &mut Vec<u8>) {
    out.clear();
    muxer.start_segment(tracks, out);
    for au in aus {
        if au.track == Track::Video && au.keyframe && !out.is_empty() {
            muxer.start_segment(tracks, out);
        }
        muxer
            .write(&au.as_au(), out)
            .expect("fixture tracks are in the program");
    }
}

fn bench_flv_demux(c: &mut Criterion) {
    assert_eq!(demux_all(FLV).0, FLV_FRAMES);
    let mut group = heavy_group(c, "flv_demux");
    group.throughput(Throughput::BytesDecimal(FLV.len() as u64));
    group.bench_function("tags+push", |b| b.iter(|| demux_all(black_box(FLV))));
    group.finish();
}

fn bench_ts_mux(c: &mut Criterion) {
    let (tracks, aus) = demux_owned();
    assert_eq!(aus.len(), FLV_FRAMES);
    let mut muxer = ts::Muxer::new();
    let mut out = Vec::new();
    mux_all(&mut muxer, tracks, &aus, &mut out);
    assert_eq!(out.len() % ts::PACKET_SIZE, 0);
    let ts_bytes = out.len() as u64;

    let mut group = heavy_group(c, "ts_mux");
    group.throughput(Throughput::BytesDecimal(ts_bytes));
    group.bench_function("start_segment+write", |b| {
        b.iter(|| {
            mux_all(&mut muxer, tracks, black_box(&aus), &mut out);
            out.len()
        })
    });
    group.finish();
}

fn bench_segment_encrypt(c: &mut Criterion) {
    let key = DataKey::from_bytes(*b"0123456789abcdef");
    let iv = crypto::segment_iv(&key, 42);
    // Not all-zero, so nothing can special-case it.
    let plaintext: Vec<u8> = (0..ENCRYPT_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let mut buf = Vec::with_capacity(ENCRYPT_BYTES + 16);

    let stream_into = |buf: &mut Vec<u8>| {
        buf.clear();
        let mut cipher = SegmentEncryptor::new(&key, iv);
        for chunk in plaintext.chunks(CHUNK_BYTES) {
            buf.extend_from_slice(chunk);
            cipher.encrypt_available(buf);
        }
        cipher.finish(buf);
    };
    stream_into(&mut buf);
    assert_eq!(buf, crypto::encrypt_segment(&key, iv, &plaintext));

    let mut group = heavy_group(c, "segment_encrypt");
    group.throughput(Throughput::BytesDecimal(ENCRYPT_BYTES as u64));
    group.bench_function("streaming_1316B_chunks", |b| {
        b.iter(|| {
            stream_into(&mut buf);
            black_box(buf.len())
        })
    });
    group.bench_function("encrypt_segment_one_shot", |b| {
        b.iter(|| crypto::encrypt_segment(&key, iv, black_box(&plaintext)))
    });
    // Pure CBC over a buffer already in place: no copy, no allocation, the
    // figure to hold against `openssl speed -evp aes-128-cbc`.
    buf.clear();
    buf.extend_from_slice(&plaintext);
    group.bench_function("in_place_cbc_only", |b| {
        b.iter(|| {
            let mut cipher = SegmentEncryptor::new(&key, iv);
            cipher.encrypt_available(black_box(&mut buf));
            cipher.encrypted_len()
        })
    });
    group.finish();
}

/// Keys made the way the local KMS makes them, ahead of the timed loop.
fn make_keys(count: usize) -> Vec<SegmentKey> {
    let rng = SystemRandom::new();
    let master = MasterKey::generate(&rng).expect("OS randomness");
    (0..count)
        .map(|i| {
            let id = KeyId::new(&format!("bench-{i}")).expect("valid key id");
            let key = DataKey::generate(&rng).expect("OS randomness");
            let wrapped = crypto::seal_data_key(&master, 1, &key, &EncryptionContext::new(STREAM, &id), &rng)
                .expect("sealing a data key");
            SegmentKey { id, key, wrapped }
        })
        .collect()
}

fn clone_key(key: &SegmentKey) -> SegmentKey {
    SegmentKey {
        id: key.id.clone(),
        key: key.key.clone(),
        wrapped: key.wrapped.clone(),
    }
}

/// Packages the whole fixture as `sealcast package` does, minus the file
/// writes; returns (segments, ciphertext bytes).
fn package_all(file: &[u8], mut next_key: impl FnMut() -> SegmentKey) -> (u64, usize) {
    let mut pipeline = Pipeline::new(PipelineConfig {
        target_duration_secs: TARGET_DURATION_SECS,
        segments_per_key: NonZeroU32::new(SEGMENTS_PER_KEY).expect("non-zero"),
        cut_policy: CutPolicy::KeyframesOnly,
        first_sequence: 0,
        discontinuity_at_start: false,
    });
    let (_, tags) = flv::tags(file).expect("fixture has an FLV header");
    let mut ciphertext_bytes = 0;
    let mut store = |output: Output| {
        if let Output::Segment(segment) = output {
            ciphertext_bytes += black_box(&segment).ciphertext_len();
        }
    };
    for tag in tags {
        let tag = tag.expect("fixture tags are well-formed");
        while pipeline.wants_key() {
            pipeline.provide_key(next_key());
        }
        if let Some(output) = pipeline
            .push(tag.kind, tag.timestamp_ms, tag.body)
            .expect("fixture demuxes")
        {
            store(output);
        }
    }
    if let Some(output) = pipeline.finish() {
        store(output);
    }
    (pipeline.stats().segments, ciphertext_bytes)
}

fn bench_pipeline_package(c: &mut Criterion) {
    // One key per segment plus the one kept ready ahead of need.
    let keys = make_keys(8);
    let keys = &keys;
    let pooled = || {
        let mut i = 0;
        move || {
            let key = clone_key(&keys[i % keys.len()]);
            i += 1;
            key
        }
    };
    let (segments, ciphertext_bytes) = package_all(FLV, pooled());
    assert!(segments >= 2, "fixture makes {segments} segments");
    assert!(
        ciphertext_bytes > FLV.len() / 2,
        "{ciphertext_bytes} bytes of ciphertext"
    );

    let mut group = heavy_group(c, "pipeline_package");
    group.throughput(Throughput::BytesDecimal(FLV.len() as u64));
    group.bench_function("flv_to_encrypted_ts", |b| {
        b.iter(|| package_all(black_box(FLV), pooled()))
    });
    // The same with each data key drawn and sealed (AES-256-GCM) in the loop,
    // as the local KMS would: shows what key generation adds per segment.
    let rng = SystemRandom::new();
    let master = MasterKey::generate(&rng).expect("OS randomness");
    group.bench_function("flv_to_encrypted_ts_sealing_keys", |b| {
        b.iter(|| {
            let mut n = 0u32;
            package_all(black_box(FLV), || {
                let id = KeyId::new(&format!("bench-{n}")).expect("valid key id");
                n += 1;
                let key = DataKey::generate(&rng).expect("OS randomness");
                let wrapped = crypto::seal_data_key(&master, 1, &key, &EncryptionContext::new(STREAM, &id), &rng)
                    .expect("sealing a data key");
                SegmentKey { id, key, wrapped }
            })
        })
    });
    group.finish();
}

fn bench_playlist_render(c: &mut Criterion) {
    let stream = StreamName::parse(STREAM).expect("valid stream name");
    let wrapped = WrappedKey::from_bytes(vec![0xA5; crypto::WRAPPED_KEY_LEN]);
    let mut playlist = MediaPlaylist::live(TARGET_DURATION_SECS, 6, 0, 0);
    for seq in 0..6u64 {
        let key_id = KeyId::new(&format!("3f2a9c01-{seq}")).expect("valid key id");
        let removed = playlist.push(SegmentEntry {
            uri: format!("3f2a9c01-{seq}.ts"),
            duration_secs: 4.004,
            key: Some(KeyTag {
                uri: KeyUri::render(&stream, &key_id, &wrapped, "https://media.example.com"),
                iv: u128::from(seq).to_be_bytes(),
            }),
            program_date_time_ms: Some(1_700_000_000_000 + seq as i64 * 4004),
            discontinuity: false,
            sequence: 0,
        });
        assert!(removed.is_empty());
    }
    let token = auth::mint(&Secret::new(b"bench-secret-bench-secret-bench!".to_vec()), &claims());
    let query = format!("token={token}");
    let rendered = playlist.render(Some(&query));
    assert_eq!(rendered.matches("#EXT-X-KEY:").count(), 6);
    assert_eq!(rendered.matches(&query).count(), 6);

    let mut group = c.benchmark_group("playlist_render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("live_6_segments_token", |b| {
        b.iter(|| black_box(&playlist).render(Some(black_box(&query))))
    });
    let mut out = String::new();
    group.bench_function("live_6_segments_token_reused_buffer", |b| {
        b.iter(|| {
            out.clear();
            black_box(&playlist).render_into(&mut out, Some(black_box(&query)));
            out.len()
        })
    });
    group.finish();
}

fn claims() -> Claims {
    Claims {
        exp: 2_000_000_000,
        stream: STREAM.to_owned(),
        sub: Some("viewer-1".to_owned()),
        jti: Some("c0ffee".to_owned()),
        recording: None,
    }
}

fn bench_token_verify(c: &mut Criterion) {
    let secret = Secret::new(b"bench-secret-bench-secret-bench!".to_vec());
    let token = auth::mint(&secret, &claims());
    const NOW: u64 = 1_700_000_000;
    assert_eq!(auth::verify(&secret, &token, STREAM, NOW), Ok(claims()));

    let mut group = c.benchmark_group("token_verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hs256", |b| {
        b.iter(|| auth::verify(&secret, black_box(&token), STREAM, NOW))
    });
    group.finish();
}

fn bench_key_unwrap_local(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let master = MasterKey::generate(&rng).expect("OS randomness");
    let id = KeyId::new("3f2a9c01-0").expect("valid key id");
    let ctx = EncryptionContext::new(STREAM, &id);
    let key = DataKey::generate(&rng).expect("OS randomness");
    let wrapped = crypto::seal_data_key(&master, 1, &key, &ctx, &rng).expect("sealing a data key");
    let opened = crypto::open_data_key(&master, &wrapped, &ctx).expect("opens");
    assert_eq!(opened.as_bytes(), key.as_bytes());

    let mut group = c.benchmark_group("key_unwrap_local");
    group.throughput(Throughput::Elements(1));
    group.bench_function("open_data_key", |b| {
        b.iter(|| crypto::open_data_key(&master, black_box(&wrapped), &ctx))
    });
    group.bench_function("seal_data_key", |b| {
        b.iter(|| crypto::seal_data_key(&master, 1, black_box(&key), &ctx, &rng))
    });
    group.finish();
}

/// Benches whose one iteration takes milliseconds: fewer samples, so 3 s is
/// enough without criterion stretching the run.
fn heavy_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(30);
    group
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_flv_demux, bench_ts_mux, bench_segment_encrypt, bench_pipeline_package,
        bench_playlist_render, bench_token_verify, bench_key_unwrap_local
}
criterion_main!(benches);
